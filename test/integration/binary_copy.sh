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

# Damage the version byte of the first pile_id: header (19 bytes), tuple field
# count (2), field length (4), then the value's version byte.
cp "$work/ids.bin" "$work/bad.bin"
printf '\x09' | dd of="$work/bad.bin" bs=1 seek=25 conv=notrunc status=none
err=$(q -d $db -v VERBOSITY=verbose -c "\\copy ids_back FROM '$work/bad.bin' WITH (FORMAT binary)" 2>&1)
echo "$err" | sed 's/^/# /'
echo "$err" | grep -q '22P03' && echo "$err" | grep -q 'invalid binary format version 9 for type pile_id'
ok $? "a damaged binary pile_id is refused with 22P03 and says why"
# A pile_id whose tail has too many digits (kind 0, tail >= 10^10): bytes
# 35-42 hold the tail; set its top byte.
cp "$work/ids.bin" "$work/bad2.bin"
printf '\x7f' | dd of="$work/bad2.bin" bs=1 seek=35 conv=notrunc status=none
err=$(q -d $db -v VERBOSITY=verbose -c "\\copy ids_back FROM '$work/bad2.bin' WITH (FORMAT binary)" 2>&1)
echo "$err" | sed 's/^/# /'
echo "$err" | grep -q '22P03' && echo "$err" | grep -q 'invalid binary value for type pile_id'
ok $? "a pile_id tail out of range is refused with 22P03"

# The gun_id: after the pile_id (4 + 18 bytes) its length (4), then its version byte.
cp "$work/ids.bin" "$work/bad3.bin"
printf '\x02' | dd of="$work/bad3.bin" bs=1 seek=47 conv=notrunc status=none
err=$(q -d $db -v VERBOSITY=verbose -c "\\copy ids_back FROM '$work/bad3.bin' WITH (FORMAT binary)" 2>&1)
echo "$err" | sed 's/^/# /'
echo "$err" | grep -q '22P03' && echo "$err" | grep -q 'invalid binary format version 2 for type gun_id'
ok $? "a gun_id of an unknown binary version is refused with 22P03"

# A gun_id with gun number 000: its tail (last 8 bytes of the field) rewritten.
cp "$work/ids.bin" "$work/bad4.bin"
printf '\x00\x00\x00\x00\x00\x00\x03\xe8' | dd of="$work/bad4.bin" bs=1 seek=56 conv=notrunc status=none
err=$(q -d $db -v VERBOSITY=verbose -c "\\copy ids_back FROM '$work/bad4.bin' WITH (FORMAT binary)" 2>&1)
echo "$err" | sed 's/^/# /'
echo "$err" | grep -q '22P03' && echo "$err" | grep -q 'invalid binary value for type gun_id'
ok $? "a gun_id with gun number 000 is refused with 22P03"
is "$(q -d $db -c "SELECT 1")" 1 "the server is still up"
done_testing
