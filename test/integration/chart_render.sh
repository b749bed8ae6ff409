# The evidence chart as a driver receives it: session_chart() for a charge
# across a tariff boundary with a silence and a meter jump, rendered by a
# real SVG renderer (rsvg-convert, Debian librsvg2-bin) to a PNG of the size
# the document declares, with the tariff bands, the curve and the anomaly
# box painted (not a blank page).
source "$(dirname "$0")/lib/tap.sh"
plan 10
db=evcharge_it_chart
fresh_db $db
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v rsvg-convert >/dev/null
ok $? "rsvg-convert is installed (Debian librsvg2-bin)"

# 7 kW AC gun, 07:50 to 08:10 every 15 s at 6.96 kW (29 Wh a sample),
# silent 08:02-08:05, a 30 kWh jump at 08:07, unplugged at 08:15; the
# pile's record agrees with the heartbeats.  The bill is held with 11.
q -d $db >/dev/null <<'SQL'
SET timezone = 'Asia/Shanghai';
INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'Shiqi East & West <Depot> 石岐东站');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (1, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.8000+0.4500, valley 0.3500+0.4500', '[2026-01-01,)', 'AC');
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES ('44200000120000100001', 1, 1, 7000);
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
SELECT '44200000120000100001001'::gun_id, '2026-11-20 07:50+08'::timestamptz + i * interval '15 s',
       CASE WHEN i < 80 THEN 'charging' ELSE 'occupied' END::gun_status,
       100000 + least(i, 80) * 29 + CASE WHEN i >= 68 THEN 30000 ELSE 0 END,
       CASE WHEN i < 80 THEN 6960 ELSE 0 END, 'CHART'
FROM generate_series(0, 80) i WHERE i NOT BETWEEN 49 AND 59;
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w) VALUES
	('44200000120000100001001', '2026-11-20 07:47+08', 'plugged', 100000, 0),
	('44200000120000100001001', '2026-11-20 08:15+08', 'idle', 102320 + 30000, 0);
INSERT INTO pile_record VALUES ('CHART', '44200000120000100001001', '2026-11-20 07:50+08', '2026-11-20 08:10+08', 2291);
SQL
is "$(q -d $db -c "SELECT anomalies || ' ' || state FROM bill WHERE order_no = 'CHART'")" "11 held" \
	"the charge is billed, held with anomaly 11"

q -d $db -c "SELECT session_chart('CHART')" >"$work/chart.svg"
head -c 5 "$work/chart.svg" | grep -q '<?xml'
ok $? "session_chart() gives an SVG document"

rsvg-convert --format=png --output="$work/chart.png" "$work/chart.svg" 2>"$work/rsvg.err"
rc=$?
sed 's/^/# rsvg-convert: /' "$work/rsvg.err"
ok $rc "rsvg-convert renders it without error"

# The PNG's header (IHDR) against the size the SVG declares.
declared=$(sed -nE 's/^<svg [^>]*width="([0-9]+)" height="([0-9]+)".*/\1x\2/p' "$work/chart.svg")
is "$(python3 - "$work/chart.png" <<'PY'
import struct, sys
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n' and data[12:16] == b'IHDR', 'not a PNG'
print('%dx%d' % struct.unpack('>II', data[16:24]))
PY
)" "$declared" "the PNG is ${declared:-?} pixels, the size the SVG declares"

# Decode the pixels (8-bit RGB or RGBA, not interlaced: what rsvg-convert
# writes) and count colours: a blank or half-drawn page fails.
python3 - "$work/chart.png" >"$work/pixels" <<'PY'
import struct, sys, zlib
from collections import Counter
data = open(sys.argv[1], 'rb').read()
pos, idat = 8, b''
while pos < len(data):
    length, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b'IHDR':
        width, height, depth, ctype, _, _, interlace = struct.unpack('>IIBBBBB', body)
    elif kind == b'IDAT':
        idat += body
    pos += 12 + length
assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
bpp = 4 if ctype == 6 else 3
raw = zlib.decompress(idat)
stride = width * bpp
prev = bytearray(stride)
colours = Counter()
for y in range(height):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if f == 1:
            line[i] = (line[i] + a) & 255
        elif f == 2:
            line[i] = (line[i] + b) & 255
        elif f == 3:
            line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    colours.update(bytes(line[i:i + 3]).hex() for i in range(0, stride, bpp))
    prev = line
total = width * height
print('nonwhite_permille', (total - colours['ffffff']) * 1000 // total)
print('colours', len(colours))
for name, rgb in (('valley', 'cfe2f3'), ('flat', 'd9ead3'), ('energy', '1f4e79'), ('box', 'fff8e1')):
    print(name, colours[rgb])
PY
ok $? "the PNG decodes"
sed 's/^/# /' "$work/pixels"
px() { awk -v k="$1" '$1 == k { print $2 }' "$work/pixels"; }
[ "$(px nonwhite_permille)" -ge 300 ] 2>/dev/null
ok $? "not blank: at least 30 % of the pixels are not white"
[ "$(px colours)" -ge 20 ] 2>/dev/null
ok $? "at least 20 distinct colours (bands, curves, text, antialiasing)"
[ "$(px valley)" -ge 10000 ] 2>/dev/null && [ "$(px flat)" -ge 10000 ] 2>/dev/null && [ "$(px box)" -ge 10000 ] 2>/dev/null
ok $? "the valley and flat bands and the anomaly box are painted in their colours (the style sheet was applied)"
[ "$(px energy)" -ge 300 ] 2>/dev/null
ok $? "the energy curve is drawn"
done_testing
