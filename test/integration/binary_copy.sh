# Binary COPY of pile and gun ids, and of tariffs of 4 and 5 classes: out
# and back in unchanged, and a damaged binary value is refused with 22P03
# while the server stays up.
source "$(dirname "$0")/lib/tap.sh"
plan 13
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
	cp "$work/${src:-ids}.bin" "$work/bad.bin"
	printf "$2" | dd of="$work/bad.bin" bs=1 seek="$1" conv=notrunc status=none
	err=$(q -d $db -v VERBOSITY=verbose -c "\\copy ${target:-ids_back} FROM '$work/bad.bin' WITH (FORMAT binary)" 2>&1)
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

# Tariffs: a 4-class plan travels as version 1 (0.2.0's form), one with
# deep valley as version 2; both come back equal.  Layout of the first
# row: version at 25, segment count 26-27, first segment start 28-29, end
# 30-31, class 32.
q -d $db <<'SQL'
CREATE TABLE plans (t evcharge.tou_tariff);
INSERT INTO plans VALUES
 ('00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500'),
 ('00:00-06:00 deep_valley, 06:00-08:00 valley, 08:00-24:00 flat | flat 0.70+0.45, valley 0.30+0.45, deep_valley 0.20+0.45');
CREATE TABLE plans_back (LIKE plans);
SQL
q -d $db -c "\\copy plans TO '$work/plans.bin' WITH (FORMAT binary)" &&
	q -d $db -c "\\copy plans_back FROM '$work/plans.bin' WITH (FORMAT binary)"
ok $? "plans of 4 and 5 classes: binary COPY out and in"
is "$(q -d $db -c "SELECT count(*) FROM (SELECT * FROM plans EXCEPT SELECT * FROM plans_back) d")|$(q -d $db -c "SELECT count(*) FROM plans_back WHERE t::text LIKE '%deep_valley 0.2000+0.4500'")" "0|1" \
	"every plan came back unchanged, deep valley included"
src=plans target=plans_back
damaged 25 '\x03' 'invalid binary format version 3 for type tou_tariff' \
	"a tou_tariff of an unknown binary version is refused with 22P03"
damaged 32 '\x04' 'Segment 1 (start 0, end 480, class 4) is not a span of the day with a known class' \
	"deep valley in a version 1 (4-class) value is refused with 22P03"
is "$(q -d $db -c "SELECT 1")" 1 "the server is still up"
done_testing
