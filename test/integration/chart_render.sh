# The evidence chart as support and the driver receive it.  session_chart()
# for a charge across a tariff boundary with a silence and a meter jump,
# rendered by a real SVG renderer (rsvg-convert, Debian librsvg2-bin) to a
# PNG of the size the document declares, with the tariff bands, the curve
# and the anomaly box painted (not a blank page).  Then the charts of five
# more charges, support's and the driver's (driver_chart, Chinese and
# English), read part by part (lib/chart_check.py): the parts present, the
# texts (the pile's claim against the heartbeats, the cause of a time
# anomaly, the driver's receipt with no internal word), and the layout as
# rendered: every text inside the picture, no two texts overlapping, no
# label box crossing a curve or another label.
source "$(dirname "$0")/lib/tap.sh"
plan 34
db=evcharge_it_chart
fresh_db $db
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v rsvg-convert >/dev/null
ok $? "rsvg-convert is installed (Debian librsvg2-bin)"
check=$EV_ROOT/test/integration/lib/chart_check.py

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

# Four more charges at station 1 (valley until 08:00, flat after) and
# station 2 (no plan), 07:50 to 08:10 at 6.96 kW, 2320 Wh by the heartbeats:
#   CLAIM   the pile's record says 2700 Wh: billed 2700, held with 8 (the
#           issue's case: the header says 2.700 kWh, the curve ends at 2320);
#   CLOCK   08:20 to 08:40, the record arrives at 08:40 saying it ended at
#           10:40: held with 3;
#   FINE    the record agrees: final;
#   NOPRICE at station 2, which has no plan: held with 12, no price;
#   EDGE    a 30 kWh meter jump 15 s after the start, at the plot's left
#           edge, where the old chart cut its "not billed" note off.
q -d $db >/dev/null <<'SQL'
SET timezone = 'Asia/Shanghai';
INSERT INTO station (station_id, operator_id, name) VALUES (2, 12, 'Xiaolan 小榄站');
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w) VALUES
	('44200000120000100002', 1, 1, 7000), ('44200000120000100003', 1, 1, 7000),
	('44200000120000100004', 1, 1, 7000), ('44200000120000100005', 2, 1, 7000), ('44200000120000100006', 1, 1, 7000);
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
SELECT g::gun_id, t0 + i * interval '15 s', CASE WHEN i < 80 THEN 'charging' ELSE 'occupied' END::gun_status,
       100000 + least(i, 80) * 29, CASE WHEN i < 80 THEN 6960 ELSE 0 END, o
FROM generate_series(0, 84) i,
     (VALUES ('44200000120000100002001', 'CLAIM', '2026-11-20 07:50+08'::timestamptz),
             ('44200000120000100003001', 'CLOCK', '2026-11-20 08:20+08'),
             ('44200000120000100004001', 'FINE', '2026-11-20 07:50+08'),
             ('44200000120000100005001', 'NOPRICE', '2026-11-20 07:50+08'),
             ('44200000120000100006001', 'EDGE', '2026-11-20 07:50+08')) v(g, o, t0);
UPDATE heartbeat SET meter_wh = meter_wh + 30000 WHERE order_no = 'EDGE' AND ts > '2026-11-20 07:50:10+08';
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w)
SELECT g::gun_id, t, 'idle', 102320, 0
FROM (VALUES ('44200000120000100002001', '2026-11-20 08:12+08'::timestamptz), ('44200000120000100003001', '2026-11-20 08:42+08'),
             ('44200000120000100004001', '2026-11-20 08:12+08'), ('44200000120000100005001', '2026-11-20 08:12+08'),
             ('44200000120000100006001', '2026-11-20 08:12+08')) v(g, t);
UPDATE heartbeat SET meter_wh = 132320 WHERE gun = '44200000120000100006001' AND ts = '2026-11-20 08:12+08';
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh, received_at) VALUES
	('CLAIM', '44200000120000100002001', '2026-11-20 07:50+08', '2026-11-20 08:10+08', 2700, '2026-11-20 08:11+08'),
	('CLOCK', '44200000120000100003001', '2026-11-20 08:20+08', '2026-11-20 10:40+08', 2320, '2026-11-20 08:40+08'),
	('FINE', '44200000120000100004001', '2026-11-20 07:50+08', '2026-11-20 08:10+08', 2320, '2026-11-20 08:11+08'),
	('NOPRICE', '44200000120000100005001', '2026-11-20 07:50+08', '2026-11-20 08:10+08', 2320, '2026-11-20 08:11+08'),
	('EDGE', '44200000120000100006001', '2026-11-20 07:50+08', '2026-11-20 08:10+08', 2291, '2026-11-20 08:11+08');
SQL
is "$(q -d $db -c "SELECT string_agg(concat_ws(' ', order_no, state, anomalies), ', ' ORDER BY order_no) FROM bill WHERE order_no = 'EDGE'")
$(q -d $db -c "SELECT string_agg(concat_ws(' ', order_no, state, anomalies, energy_wh, total), ', ' ORDER BY order_no) FROM bill WHERE order_no NOT IN ('CHART', 'EDGE')")" \
	"EDGE held 11
CLAIM held 8 2700 2.76, CLOCK held 3 2320 2.89, FINE final  2320 2.37, NOPRICE held 12 2320 0.00" \
	"the five charges are billed: CLAIM held (8) at the pile's 2700 Wh, CLOCK held (3), FINE final, NOPRICE held (12) unpriced, EDGE held (11)"

# The charts: support's, and the driver's in Chinese (the default) and English.
charts="CHART CLAIM CLOCK NOPRICE EDGE FINE-zh FINE-en CLAIM-zh NOPRICE-zh"
for c in $charts; do
	case $c in
	*-zh) q -d $db -c "SELECT driver_chart('${c%-zh}')" ;;
	*-en) q -d $db -c "SELECT driver_chart('${c%-en}', 'en')" ;;
	*) q -d $db -c "SELECT session_chart('$c')" ;;
	esac >"$work/$c.svg"
done
failed=
for c in $charts; do
	rsvg-convert --format=png --output="$work/$c.png" "$work/$c.svg" 2>"$work/$c.err" && [ ! -s "$work/$c.err" ] || failed="$failed $c"
	python3 "$check" facts "$work/$c.svg" >"$work/$c.facts" 2>"$work/$c.facts.err" || failed="$failed $c(parse)"
done
is "${failed# }" "" "rsvg-convert renders all nine charts without error or warning, and each parses as XML"
facts() { cat "$work/$1.facts"; }
has_text() { grep -qxF "text $2 $3" "$work/$1.facts"; }

is "$(facts CLAIM | awk '$1 == "group" { print $2 }' | tr '\n' ' ')$(facts CLAIM | awk '$1 == "polyline" { print $2 }' | tr '\n' ' ')" \
	"header tariff-bands axes curves moments marks claim legend anomalies power claim energy " \
	"support's chart has its parts: header, bands, axes, curves (power, the pile's claim, energy), moments, marks, claim, legend, anomalies"
is "$(facts FINE-zh | awk '$1 == "group" { print $2 }' | tr '\n' ' ')$(facts FINE-zh | awk '$1 == "polyline" { print $2 }' | tr '\n' ' ')" \
	"header tariff-bands axes curves moments band-labels legend receipt energy " \
	"the driver's chart has its parts: header, bands, axes, the energy curve alone, moments, band names, legend, receipt (no marks, claim or anomalies)"

has_text CLAIM header "Bill, held (not charged until repaired): 2.700 kWh from the pile's record; the heartbeats measured 2.320 kWh; total"
ok $? "CLAIM's header says the bill's 2.700 kWh came from the pile's record and the heartbeats measured 2.320"
has_text CLAIM claim "pile's record 2700 Wh: 380 Wh above the heartbeats' 2320 Wh"
ok $? "the pile's claim is drawn and labelled: 380 Wh above the heartbeats' 2320"
has_text CLAIM anomalies "8 energy_mismatch: the pile's record says 2700 Wh, the heartbeats measured 2320 Wh: 380 Wh apart (tolerance 100"
ok $? "code 8's line gives the two energies and how far apart they are"
# The claim's line lies above where the measured curve ends (y grows downwards).
python3 - "$work/CLAIM.svg" <<'PY'
import sys, xml.etree.ElementTree as ET
ns = '{http://www.w3.org/2000/svg}'
lines = {e.get('class'): [tuple(map(float, p.split(','))) for p in e.get('points').split()] for e in ET.parse(sys.argv[1]).iter(ns + 'polyline')}
energy_end, claim_y = lines['energy'][-1][1], lines['claim'][0][1]
print('# energy curve ends at y=%s, the claim at y=%s' % (energy_end, claim_y))
sys.exit(0 if claim_y < energy_end - 20 else 1)
PY
ok $? "the claim's line is drawn above the end of the measured curve, by the 380 Wh"
! grep -q "as the bill counts it" "$work/CLAIM.facts" && has_text CLAIM legend "energy measured from the heartbeats (Wh)"
ok $? "on a held bill the legend calls the curve what the heartbeats measured, not what the bill counts"
has_text CLOCK anomalies "3 time_anomaly: end 10:40 is 2 h after it arrived (08:40)"
ok $? "code 3's line gives its cause: the record's end 10:40 is 2 h after it arrived"

total=$(q -d $db -c "SELECT total FROM bill WHERE order_no = 'FINE'")
has_text FINE-zh receipt "低谷 07:50–08:00" && has_text FINE-zh receipt "平段 08:00–08:10" &&
	has_text FINE-zh receipt "1.160 kWh" && has_text FINE-zh receipt "0.3500" && has_text FINE-zh receipt "0.8000" &&
	has_text FINE-zh receipt "0.4500" && has_text FINE-zh receipt "合计 $total 元" && has_text FINE-zh receipt "将从账户扣款。"
ok $? "the driver's receipt in Chinese: when each class was delivered, kWh, prices, 合计 $total 元 (the bill's total), to be paid"
has_text FINE-en receipt "total $total yuan" && has_text FINE-en receipt "valley 07:50–08:00"
ok $? "the driver's receipt in English: total $total yuan"
# What the driver reads: no code, no internal word; in Chinese, no English
# word but the station's and the units (kWh, the zone).
bad=
for c in FINE-zh FINE-en CLAIM-zh NOPRICE-zh; do
	grep '^text ' "$work/$c.facts" | grep -Eiq 'anomal|heartbeat|held|jump|meter|record|energy_|session|code|bill' && bad="$bad $c"
done
for c in FINE-zh CLAIM-zh NOPRICE-zh; do
	grep '^text ' "$work/$c.facts" | cut -d' ' -f3- |
		sed -e 's/Shiqi East & West <Depot>//' -e 's/Xiaolan//' -e 's/Asia\/Shanghai//' -e 's/kWh//g' -e 's/FINE\|CLAIM\|NOPRICE//' | grep -q '[A-Za-z]' && bad="$bad $c(latin)"
done
is "${bad# }" "" "the driver's charts hold no code or internal word, and the Chinese ones no English word"
has_text CLAIM-zh receipt "本单金额正在核实，核实前不扣款。"
ok $? "a held bill reads, for the driver, as an amount being checked and not taken"
has_text NOPRICE-zh receipt "本站电价待确认，金额确认后再结算。" && ! grep -q "合计" "$work/NOPRICE-zh.facts"
ok $? "a bill that could not be priced reads as a price being confirmed, with no total"

# The layout, as rendered: each text alone, its ink measured.
for c in $charts; do
	python3 "$check" layout "$work/$c.svg" >"$work/$c.layout" 2>&1
	rc=$?
	grep -v '^ok ' "$work/$c.layout" | sed "s/^/# $c: /"
	ok $rc "$c: every text inside the picture, no two overlapping, every label inside its box, no label box crossing a curve, the claim or another label"
done
done_testing
