# The YKC cloud protocol (云快充 1.5/1.6) in evcharge-bridge (--ykc), against
# a YKC pile of our own (test/integration/lib/ykc_pile.py: binary frames over
# TCP, CRC-16/MODBUS, BCD, CP56Time2a).  A pile logs in by its 14-digit
# number, heartbeats, gets its billing model, charges over a tariff boundary
# and sends its record; its bill is the one an OCPP pile gets for the same
# traffic.  A pile that goes silent before its record comes back, logs in
# again, sends it and resends it: one record, one bill, acknowledged each
# time.  Remote start and stop from start_session() and ocpp_stop_charge();
# the billing model pushed when the plan in force changes; unknown piles
# refused; bad frames dropped or closed with a log line and no row.
source "$(dirname "$0")/lib/tap.sh"
plan 58
db=evcharge_it_ykc
work=$(mktemp -d)
bridge_pid=
trap '[ -n "$bridge_pid" ] && kill $bridge_pid 2>/dev/null; rm -rf "$work"' EXIT

OCPP_NODE_MODULES=$(bash -c "source '$EV_ROOT/scripts/lib.sh' && ocpp_rpc_install" 2>/dev/null)
export OCPP_NODE_MODULES
ykc() { python3 "$EV_ROOT/test/integration/lib/ykc_pile.py" "$@"; }
pile() { node "$EV_ROOT/test/integration/lib/ocpp_pile.js" "$@"; }
# jf FILE a.b: a field of a scenario's JSON output ("none" when absent).
jf() { python3 -c 'import json,sys
o = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
	o = o.get(k, "none") if isinstance(o, dict) else o
print(json.dumps(o) if isinstance(o, (dict, list)) else o)' "$1" "$2"; }
bridge=$("${PG_CONFIG:-pg_config}" --bindir)/evcharge-bridge
command -v python3 >/dev/null
ok $? "python3 runs the YKC pile simulator"

fresh_db $db
# Station 1 (AC): its plan's boundary is set below, on the minute ahead, so
# a session crosses it now.  Station 2 (DC): the DOMAIN.md example on
# half-hours, which a YKC billing model can carry.
q -d $db >/dev/null <<'SQL'
INSERT INTO operator VALUES (12, 'ykc test');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'ykc ac'), (2, 12, 'ykc dc');
INSERT INTO station_tariff (station_id, current_type, tariff, valid) VALUES
 (2, 'DC', '00:00-08:00 valley, 08:00-14:00 flat, 14:00-17:00 peak, 17:00-19:00 flat, 19:00-22:00 peak, 22:00-24:00 flat | peak 1.0000+0.4500, flat 0.7000+0.4500, valley 0.3000+0.4500', '[2020-01-01,)');
INSERT INTO pile VALUES ('44200000120000100001', 1, 2, 100000), ('44200000120000100002', 1, 2, 100000),
 ('44200000120000200001', 2, 2, 100000), ('44200000120000200002', 2, 2, 100000);
INSERT INTO ykc_pile (ykc_no, pile_id) VALUES ('32010200000001', '44200000120000100001'),
 ('32010200000003', '44200000120000200001'), ('32010200000004', '44200000120000200002');
INSERT INTO member (member_id, operator_id, card_no) VALUES (501, 12, '1234567890123456');
INSERT INTO member (member_id, operator_id) VALUES (502, 12);
SELECT top_up(member_wallet(502), 50.00, 'ykc-test-1');
SQL

# The boundary: the first local minute at least 25 s ahead (valley before, flat after),
# never on a half-hour.
IFS='|' read -r bnd bnd_epoch <<<"$(q -d $db -c "SELECT to_char(b, 'HH24:MI'), extract(epoch FROM b AT TIME ZONE 'Asia/Shanghai')::bigint FROM (SELECT date_trunc('minute', (now() AT TIME ZONE 'Asia/Shanghai') + interval '85 s') AS b) x")"
# A boundary on a half-hour would be a plan YKC can carry: take the next minute.
case "$bnd" in *:00|*:30) sleep 60; IFS='|' read -r bnd bnd_epoch <<<"$(q -d $db -c "SELECT to_char(b, 'HH24:MI'), extract(epoch FROM b AT TIME ZONE 'Asia/Shanghai')::bigint FROM (SELECT date_trunc('minute', (now() AT TIME ZONE 'Asia/Shanghai') + interval '85 s') AS b) x")";; esac
warn=$(psql -X -q -d $db -c "INSERT INTO station_tariff (station_id, current_type, tariff, valid) VALUES (1, 'AC', '00:00-$bnd valley, $bnd-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500', '[2020-01-01,)')" 2>&1)
echo "$warn" | sed "s/^/# /"
echo "$warn" | grep -q "WARNING:  plan [0-9]* of station 1 (AC) cannot be sent to its 1 YKC pile(s)"
ok $? "a plan off the half-hour stored for a station with YKC piles: a warning names the station"
echo "$warn" | grep -q "DETAIL:  00:00-$bnd valley, $bnd-24:00 flat: a YKC billing model gives whole half-hours"
ok $? "its detail names the segments that cannot be sent"
is "$(q -d $db -c "SELECT count(*) FROM station_tariff WHERE station_id = 1")" "1" "the plan is stored all the same (evcharge bills by it)"
is "$(q -d $db -c "SELECT ykc_plan_problem('00:00-08:00 valley, 08:00-24:00 flat | flat 0.7+0.45, valley 0.3+0.45') IS NULL")" "t" \
	"a plan on half-hours has no YKC problem"

port=18380
while (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$((port + 1)); done
yport=$((port + 1))
while (exec 3<>/dev/tcp/127.0.0.1/$yport) 2>/dev/null; do yport=$((yport + 1)); done
"$bridge" --db "dbname=$db" --ocpp 127.0.0.1:$port --ykc 127.0.0.1:$yport --flush-ms 10 --ykc-model-recheck-s 5 2>>"$work/bridge.log" &
bridge_pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$yport) 2>/dev/null && break; sleep 0.1; done
grep -q "listening for YKC piles on 127.0.0.1:$yport (TCP)" "$work/bridge.log"
ok $? "the bridge listens for YKC piles on 127.0.0.1:$yport beside OCPP on $port"
ya=127.0.0.1:$yport

# Logins that are refused: nothing of them reaches the tables.
ykc login $ya 32010299999999 > "$work/o.json"
is "$(jf "$work/o.json" login.result) $(jf "$work/o.json" after)" "1 closed" "an unmapped pile number: login answered 0x02 with result 1 (refused), then closed"
grep -q "YKC login of pile number 32010299999999 refused (0x02 result 0x01): pile number 32010299999999 is not mapped to a registered pile" "$work/bridge.log"
ok $? "and logged with its number and why"
ykc login $ya 32010200000001 '{"guns":4}' > "$work/o.json"
is "$(jf "$work/o.json" login.result)" "1" "a login with another gun count than the registry's is refused"
grep -q "logs in with 4 gun(s); the registry has 2" "$work/bridge.log"
ok $? "and the log says which count"
ykc login $ya 32010200000001 '{"ac":false}' > "$work/o.json"
is "$(jf "$work/o.json" login.result)" "1" "a login as DC of a pile the registry has AC is refused"

# Bad frames: dropped (not answered) or closed, a log line each, no row.
ykc bad $ya 32010200000004 '{"ac":false}' > "$work/o.json"
cp "$work/o.json" "$work/bad.json"
is "$(jf "$work/bad.json" beforeLogin)" "nothing" "a heartbeat before login is not answered"
grep -q "YKC frame 0x03 before a successful login" "$work/bridge.log"
ok $? "and logged"
is "$(jf "$work/bad.json" crc) $(jf "$work/bad.json" crcAlive)" "nothing True" "a wrong CRC: dropped, and the connection carries on"
grep -q "YKC frame 0x03 (sequence [0-9]*) with a wrong CRC: dropped, not answered" "$work/bridge.log"
ok $? "and logged"
is "$(jf "$work/bad.json" shortBody) $(jf "$work/bad.json" shortBodyAlive)" "nothing True" "a body shorter than its type's: dropped, the connection carries on"
is "$(jf "$work/bad.json" unknownType) $(jf "$work/bad.json" unknownTypeAlive)" "nothing True" "an unknown frame type: not answered, the connection carries on"
grep -q "YKC frame type 0x7F (sequence [0-9]*) is not one this bridge takes" "$work/bridge.log"
ok $? "and logged"
is "$(jf "$work/bad.json" encrypted)" "closed" "a frame flagged 3DES: the connection is closed"
grep -q "with encryption flag 1: this bridge takes no 3DES; closing" "$work/bridge.log"
ok $? "and logged"
is "$(jf "$work/bad.json" startByte)" "closed" "a frame without the start byte 0x68: the stream is lost, closed"
is "$(jf "$work/bad.json" recordBeforeLogin)" "nothing" "a transaction record before login: not answered"
is "$(q -d $db -c "SELECT (SELECT count(*) FROM heartbeat) + (SELECT count(*) FROM pile_record) + (SELECT count(*) FROM quarantine) + (SELECT count(*) FROM ocpp_transaction)")" "0" \
	"no row of any of them, nor of the refused logins"
kill -0 $bridge_pid
ok $? "the bridge is still running"

# The billing model of station 2's plan (0x09 -> 0x0A).
ykc login $ya 32010200000003 '{"ac":false}' > "$work/o.json"
is "$(jf "$work/o.json" login.result)" "0" "a mapped pile number logs in (0x02 result 0)"
is "$(q -d $db -c "SELECT firmware FROM pile WHERE pile_id = '44200000120000200001'")" "YKC1.6.2" "its firmware is written to the registry"
PYTHONPATH="$EV_ROOT/test/integration/lib" python3 - "$ya" > "$work/model.json" <<'PY'
import json, sys
import ykc_pile as y
p = y.Pile(sys.argv[1], '32010200000003', {'ac': False})
p.connect(); p.login()
m = p.model()
p.send(0x05, y.bcd('32010200000003', 7) + y.bcd(m['id'], 2))
ok = p.expect(0x06)
p.send(0x05, y.bcd('32010200000003', 7) + y.bcd('0000', 2))
ko = p.expect(0x06)
print(json.dumps({'model': m, 'same': ok[9], 'other': ko[9]}))
PY
is "$(jf "$work/model.json" model.energy)" "[0, 100000, 70000, 30000]" "0x0A: electricity prices of sharp, peak, flat, valley in 0.00001 yuan"
is "$(jf "$work/model.json" model.service)" "[0, 45000, 45000, 45000]" "and the service fees"
is "$(jf "$work/model.json" model.classes)" "333333333333333322222222222211111122221111112222" "and the class of each of the 48 half-hours"
is "$(jf "$work/model.json" same) $(jf "$work/model.json" other)" "0 1" "0x05 -> 0x06: the model in force is consistent (0), another is not (1)"

# A session over the boundary of station 1's plan, and its record.
ykc charge $ya 32010200000001 "{\"gun\":1,\"seconds\":20,\"whPerS\":20,\"model\":false,\"waitUntil\":$((bnd_epoch - 10)),\"cross\":$bnd_epoch}" > "$work/o.json"
cp "$work/o.json" "$work/charge.json"
is "$(jf "$work/charge.json" error)" "none" "a YKC session: login, heartbeat, plugged, 21 real-time samples over the boundary, record, unplug"
is "$(jf "$work/charge.json" login.result) $(jf "$work/charge.json" heartbeat) $(jf "$work/charge.json" clockSync)" "0 True True" "login accepted, heartbeat answered (0x04), the clock set (0x56)"
serial=$(jf "$work/charge.json" serial)
is "$(jf "$work/charge.json" ack.result) $(jf "$work/charge.json" ack.serial)" "0 $serial" "the record is acknowledged (0x40, result 0) with its serial"
grep -q "YKC billing model not sent: the plan in force .* cannot be a YKC billing model" "$work/bridge.log"
ok $? "the plan off the half-hour is not sent as a model (logged), never rounded"
order=$(q -d $db -c "SELECT order_no FROM ocpp_transaction WHERE ykc_serial = '$serial'")
is "$(q -d $db -c "SELECT pile_id || ' ' || connector_id || ' ' || meter_stop_wh FROM ocpp_transaction WHERE order_no = '$order'")" "44200000120000100001 1 400" \
	"serial $serial maps to order $order on gun 1, its energy recorded"
cls=$(jf "$work/charge.json" classes | tr -d ' []')
is "$(q -d $db -c "SELECT energy_wh || ' ' || array_to_string(wh_by_class, ',') || ' ' || coalesce(vin, '-') || ' ' || start_by || ' ' || card_no FROM pile_record WHERE order_no = '$order'")" \
	"400 $cls LSVAB4180E2000001 card 1234567890123456" "the pile record: energy, the pile's own energy per class beside it, VIN, card"
is "$(q -d $db -c "SELECT count(*) FILTER (WHERE status = 'charging') || ' ' || count(*) FILTER (WHERE status = 'occupied') || ' ' || max(meter_wh) FILTER (WHERE status = 'charging') FROM heartbeat WHERE order_no = '$order'")" "21 1 400" \
	"21 charging heartbeat rows (energy from 0 to 400 Wh) and the occupied one"
for _ in $(seq 30); do [ -n "$(q -d $db -c "SELECT 1 FROM bill WHERE order_no = '$order'")" ] && break; sleep 0.2; done
ybill=$(q -d $db -c "SELECT energy_wh || ' ' || wh_by_class::text || ' ' || total || ' [' || anomalies::text || '] ' || state || ' ' || coalesce(member_id::text, '-') FROM bill WHERE order_no = '$order'")
echo "# YKC bill: $ybill"
q -d $db -c "SELECT (wh_by_class[3] > 0 AND wh_by_class[4] > 0) FROM bill WHERE order_no = '$order'" | grep -q t
ok $? "the bill has energy on both sides of the boundary (valley and flat)"
is "$(q -d $db -c "SELECT anomalies::text || ' ' || state FROM bill WHERE order_no = '$order'")" " final" "no anomaly: the pile's split agrees with evcharge's"

# The same traffic from an OCPP pile: the YKC session's rows as MeterValues.
samples=$(q -d $db -c "SELECT json_agg(json_build_array(to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), meter_wh) ORDER BY ts) FROM heartbeat WHERE order_no = '$order' AND status = 'charging'")
stop=$(q -d $db -c "SELECT json_build_object('ts', to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 'wh', energy_wh) FROM pile_record WHERE order_no = '$order'")
unplug=$(q -d $db -c "SELECT to_char(min(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM heartbeat WHERE gun = '44200000120000100001001' AND status = 'idle' AND ts > (SELECT ended_at FROM pile_record WHERE order_no = '$order')")
pile samples ws://127.0.0.1:$port/ocpp 44200000120000100002 "{\"samples\":$samples,\"stop\":$stop,\"unplug\":\"$unplug\"}" > "$work/o.json"
otx=$(jf "$work/o.json" transactionId)
oorder=$(q -d $db -c "SELECT order_no FROM ocpp_transaction WHERE transaction_id = $otx")
for _ in $(seq 30); do [ -n "$(q -d $db -c "SELECT 1 FROM bill WHERE order_no = '$oorder'")" ] && break; sleep 0.2; done
obill=$(q -d $db -c "SELECT energy_wh || ' ' || wh_by_class::text || ' ' || total || ' [' || anomalies::text || '] ' || state || ' ' || coalesce(member_id::text, '-') FROM bill WHERE order_no = '$oorder'")
is "$ybill" "$obill" "the YKC pile's bill is the OCPP pile's for the same traffic: energy, split, total, anomalies, member"

# Silent before its record: back, logged in again, the record sent and resent.
# The pile counts it all valley, evcharge flat: anomaly 20, not blocking.
ykc charge $ya 32010200000001 '{"gun":2,"n":2,"seconds":10,"whPerS":20,"model":false,"silentBeforeRecord":true,"resend":true,"classes":[0,0,0,200]}' > "$work/o.json"
cp "$work/o.json" "$work/silent.json"
serial2=$(jf "$work/silent.json" serial)
is "$(jf "$work/silent.json" relogin.result) $(jf "$work/silent.json" ack.result) $(jf "$work/silent.json" resendAck.result)" "0 0 0" "silent, back: logged in again, the record acknowledged, its resend acknowledged again"
order2=$(q -d $db -c "SELECT order_no FROM ocpp_transaction WHERE ykc_serial = '$serial2'")
is "$(q -d $db -c "SELECT count(*) FROM pile_record WHERE order_no = '$order2'")" "1" "one pile record: the resend added nothing"
grep -q "YKC transaction record $serial2 resent: order $order2 has it already; acknowledged again" "$work/bridge.log"
ok $? "the resend is logged"
for _ in $(seq 30); do [ -n "$(q -d $db -c "SELECT 1 FROM bill WHERE order_no = '$order2'")" ] && break; sleep 0.2; done
is "$(q -d $db -c "SELECT energy_wh || ' ' || wh_by_class::text || ' [' || anomalies::text || '] ' || state FROM bill WHERE order_no = '$order2'")" "200 {0,0,200,0} [20] final" \
	"its bill: 200 Wh flat by evcharge, anomaly 20 (the pile said valley), final (20 does not block)"

# Remote start (start_session) and stop (ocpp_stop_charge).
ykc remote $ya 32010200000003 "{\"ac\":false,\"readyFile\":\"$work/ready\",\"timeout\":15}" > "$work/remote.json" &
rpid=$!
for _ in $(seq 50); do [ -f "$work/ready" ] && break; sleep 0.1; done
for _ in $(seq 30); do [ "$(q -d $db -c "SELECT ocpp_pile_connected('44200000120000200001')")" = t ] && break; sleep 0.1; done
rorder=$(q -d $db -c "SELECT start_session('44200000120000200001001', 502, 'app')")
for _ in $(seq 50); do [ -n "$(q -d $db -c "SELECT 1 FROM ocpp_transaction WHERE order_no = '$rorder'")" ] && break; sleep 0.2; done
is "$(q -d $db -c "SELECT remote || ' ' || (ykc_serial IS NOT NULL) FROM ocpp_transaction WHERE order_no = '$rorder'")" "true true" \
	"start_session() on a YKC pile: 0x34 sent, the pile's real-time data took the pending session (remote)"
q -d $db -c "SELECT ocpp_stop_charge('$rorder')" >/dev/null
wait $rpid
is "$(jf "$work/remote.json" start.gun) $(jf "$work/remote.json" stop.gun) $(jf "$work/remote.json" ack.result)" "01 01 0" "the pile got 0x34 and 0x36 for gun 1, and its record was acknowledged"
is "$(jf "$work/remote.json" start.serial)" "$(q -d $db -c "SELECT ykc_serial FROM ocpp_transaction WHERE order_no = '$rorder'")" "the serial of 0x34 is the transaction's"
is "$(q -d $db -c "SELECT string_agg(action || ' ' || answer, ', ' ORDER BY command_id) FROM ocpp_command WHERE order_no = '$rorder'")" \
	"RemoteStartTransaction Accepted, RemoteStopTransaction Accepted" "both commands answered Accepted (0x33, 0x35)"
for _ in $(seq 30); do [ -n "$(q -d $db -c "SELECT 1 FROM bill WHERE order_no = '$rorder'")" ] && break; sleep 0.2; done
is "$(q -d $db -c "SELECT state || ' ' || channel FROM charge_session WHERE order_no = '$rorder'")" "ended app" "the app's session ran and ended"

# The plan in force changes: the pile gets the new model (0x58).
ykc waitModel $ya 32010200000004 "{\"ac\":false,\"readyFile\":\"$work/ready2\",\"timeout\":20}" > "$work/push.json" &
wpid=$!
for _ in $(seq 50); do [ -f "$work/ready2" ] && break; sleep 0.1; done
q -d $db >/dev/null <<'SQL'
UPDATE station_tariff SET valid = tstzrange(lower(valid), now()) WHERE station_id = 2;
INSERT INTO station_tariff (station_id, current_type, tariff, valid) VALUES
 (2, 'DC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.8000+0.4000, valley 0.3500+0.4000', tstzrange(now(), NULL));
SQL
wait $wpid
is "$(jf "$work/push.json" pushed.energy) $(jf "$work/push.json" pushed.classes)" \
	"[0, 0, 80000, 35000] 333333333333333322222222222222222222222222222222" "a new plan in force: pushed to the pile (0x58) within the recheck"
[ "$(jf "$work/push.json" first.id)" != "$(jf "$work/push.json" pushed.id)" ]
ok $? "under a new model number"

is "$(q -d $db -c "SELECT count(*) FROM quarantine")" "0" "nothing went to quarantine"
kill -TERM $bridge_pid
wait $bridge_pid
is "$?" "0" "SIGTERM: the bridge exits 0"
bridge_pid=

# A bridge for YKC piles only: no --ocpp, no OCPP listener, the same pile logs in.
"$bridge" --db "dbname=$db" 2>"$work/none.log"
is "$?" "2" "neither --ocpp nor --ykc: the bridge does not start (exit 2)"
grep -q "at least one of --ocpp and --ykc are required" "$work/none.log"
ok $? "and says what it needs"
"$bridge" --db "dbname=$db" --ykc 127.0.0.1:$yport --tls-cert /dev/null --tls-key /dev/null 2>"$work/none.log"
grep -q "it needs --ocpp (YKC is plain TCP)" "$work/none.log"
ok $? "a TLS certificate without --ocpp is refused: YKC is plain TCP"
"$bridge" --db "dbname=$db" --ykc 127.0.0.1:$yport --flush-ms 10 2>>"$work/bridge.log" &
bridge_pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$yport) 2>/dev/null && break; sleep 0.1; done
ykc login $ya 32010200000003 '{"ac":false}' > "$work/o.json"
is "$(jf "$work/o.json" login.result) $(jf "$work/o.json" after)" "0 open" "a bridge started with --ykc only: a mapped pile logs in (0x02 result 0)"
if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then ok 1 "and nothing listens on the OCPP port"; else ok 0 "and nothing listens on the OCPP port"; fi
kill -TERM $bridge_pid
wait $bridge_pid
bridge_pid=
if [ $_tap_failed -gt 0 ]; then sed 's/^/# /' "$work/bridge.log" | tail -60; fi
done_testing
