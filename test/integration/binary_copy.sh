# Binary COPY of pile and gun ids: out and back in unchanged, and a damaged
# binary value is refused with 22P03 while the server stays up.
source "$(dirname "$0")/lib/tap.sh"
plan 9
db=evcharge_it_binary
fresh_db $db
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

q -d $db <<'SQL'
CREATE TABLE ids (p pile_id, g gun_id);
INSERT INTO ids
SELECT (lpad((i * 7919)::text, 10, '0') || lpad((i * 104729)::text, 10, '0'))::pile_id,
       (lpad((i * 7919)::text, 10, '0') || lpad((i * 104729)::text, 10, '0') || lpad((1 + i % 999)::text, 3, '0'))::gun_id
FROM generate_series(1, 1000) i;
INSERT INTO ids VALUES ('4420 0000 1200 0045', '4420 0000 1200 0020 0045 001');
CREATE TABLE ids_back (LIKE ids);
SQL
q -d $db -c "\\copy ids TO '$work/ids.bin' WITH (FORMAT binary)"
ok $? "binary COPY out"
q -d $db -c "\\copy ids_back FROM '$work/ids.bin' WITH (FORMAT binary)"
ok $? "binary COPY in"
is "$(q -d $db -c "SELECT count(*) FROM (SELECT * FROM ids EXCEPT SELECT * FROM ids_back) d")" 0 \
	"every id came back unchanged"
is "$(q -d $db -c "SELECT count(*) FROM ids_back WHERE is_legacy(p)")" 1 "the legacy id stayed legacy"

# damaged OFFSET BYTES PATTERN DESCRIPTION: a copy of the good file with
# BYTES written at OFFSET must be refused with 22P03 and a message matching
# PATTERN.  Layout: header 19 bytes, field count 2, then the pile_id (length
# 4 + 18 bytes: version at 25, kind 26, head 27-34, tail 35-42) and the
# gun_id (length 4 + 17 bytes: version at 47, head 48-55, tail 56-63).
damaged() {
	cp "$work/ids.bin" "$work/bad.bin"
	printf "$2" | dd of="$work/bad.bin" bs=1 seek="$1" conv=notrunc status=none
	err=$(q -d $db -v VERBOSITY=verbose -c "\\copy ids_back FROM '$work/bad.bin' WITH (FORMAT binary)" 2>&1)
	echo "$err" | sed 's/^/# /'
	echo "$err" | grep -q '22P03' && echo "$err" | grep -q "$3"
	ok $? "$4"
}
damaged 25 '\x09' 'invalid binary format version 9 for type pile_id' \
	"a damaged binary pile_id is refused with 22P03 and says why"
damaged 35 '\x7f' 'invalid binary value for type pile_id' \
	"a pile_id tail out of range is refused with 22P03"
damaged 47 '\x02' 'invalid binary format version 2 for type gun_id' \
	"a gun_id of an unknown binary version is refused with 22P03"
damaged 56 '\x00\x00\x00\x00\x00\x00\x03\xe8' 'invalid binary value for type gun_id' \
	"a gun_id with gun number 000 is refused with 22P03"
is "$(q -d $db -c "SELECT 1")" 1 "the server is still up"
done_testing
