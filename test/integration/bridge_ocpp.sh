# The OCPP 1.6J bridge (evcharge-bridge) against real charge points: ocpp-rpc
# clients in strict mode (test/integration/lib/ocpp_pile.js), so every answer
# of the bridge is checked against the spec's schemas.  A session booted,
# charged across the 08:00 valley/flat boundary and stopped over OCPP gives
# the right bill with no anomaly codes; the same session resent after a
# reconnect changes nothing; unknown and legacy piles are refused at the
# handshake; bad frames get their CALLERRORs; a pg_ctl restart of the
# database in the middle of a session loses nothing; SIGTERM closes with 1001.
source "$(dirname "$0")/lib/tap.sh"
plan 101
db=evcharge_it_bridge
work=$(mktemp -d)
bridge_pid=
tls_pid=
bp_pid=
trap '[ -n "$bridge_pid" ] && kill $bridge_pid 2>/dev/null; [ -n "$tls_pid" ] && kill $tls_pid 2>/dev/null; [ -n "$bp_pid" ] && kill $bp_pid 2>/dev/null; rm -rf "$work"' EXIT

# Node.js, npm and ocpp-rpc: Debian's nodejs and npm when the machine has no
# npm, ocpp-rpc into an ignored folder (scripts/lib.sh, ocpp_rpc_install).
OCPP_NODE_MODULES=$(bash -c "source '$EV_ROOT/scripts/lib.sh' && ocpp_rpc_install" 2>/dev/null)
export OCPP_NODE_MODULES
[ -n "$OCPP_NODE_MODULES" ] && [ -d "$OCPP_NODE_MODULES/ocpp-rpc" ]
ok $? "ocpp-rpc is installed in ${OCPP_NODE_MODULES#"$EV_ROOT/"}"
pile_js=$EV_ROOT/test/integration/lib/ocpp_pile.js
bridge=$("${PG_CONFIG:-pg_config}" --bindir)/evcharge-bridge

fresh_db $db
q -d $db >/dev/null <<'SQL'
INSERT INTO operator VALUES (12, 'bridge test');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'bridge test');
INSERT INTO station_tariff (station_id, current_type, tariff, valid) VALUES
 (1, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500', '[2020-01-01,)');
INSERT INTO pile VALUES ('44200000120000100001', 1, 2, 7000), ('44200000120000100002', 1, 2, 7000),
 ('44200000120000100003', 1, 2, 7000);
INSERT INTO member (member_id, operator_id, card_no) VALUES (501, 12, '1234567890123456');
-- Remote starts and the balance guard: an AC 22 kW pile, and a member whose
-- wallet holds 1.50 yuan (the operator's stop threshold is 1.00).
INSERT INTO pile VALUES ('44200000120000100004', 1, 2, 22000), ('44200000120000100005', 1, 2, 7000),
 ('44200000120000100006', 1, 2, 7000);
INSERT INTO member (member_id, operator_id) VALUES (502, 12);
SELECT top_up(member_wallet(502), 1.50, 'bridge-test-1');
SQL

port=18180
while (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$((port + 1)); done
url=ws://127.0.0.1:$port/ocpp
start_bridge() {
	"$bridge" --db "dbname=$db" --ocpp 127.0.0.1:$port --flush-ms 10 "$@" 2>>"$work/bridge.log" &
	bridge_pid=$!
	for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
pile() { node "$pile_js" "$@"; }
jq_() { node -e 'const o=JSON.parse(require("fs").readFileSync(0)); const v=eval("o."+process.argv[1]); console.log(typeof v==="object"?JSON.stringify(v):v)' "$1"; }

"$bridge" --help 2>&1 | grep -q -- '--ocpp HOST:PORT'
ok $? "evcharge-bridge --help shows the interface"
mport=$((port + 10))
while (exec 3<>/dev/tcp/127.0.0.1/$mport) 2>/dev/null; do mport=$((mport + 1)); done
start_bridge --metrics 127.0.0.1:$mport
ok $? "the bridge listens on 127.0.0.1:$port"

# Yesterday 07:30 to 08:30 in the station's zone, a sample a minute, 100 Wh each:
# 3 kWh valley (0.30 + 0.45) and 3 kWh flat (0.70 + 0.45): 3.00 + 2.70 = 5.70.
t0=$(q -d $db -c "SELECT to_char(((((now() AT TIME ZONE 'Asia/Shanghai')::date - 1) + time '07:30') AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
out=$(pile charge $url 44200000120000100001 "{\"start\":\"$t0\",\"minutes\":60,\"whPerMin\":100}")
echo "$out" > "$work/charge.json"
is "$(jq_ error < "$work/charge.json")" "undefined" "a session over OCPP: boot, plug, start, 60 samples, stop, unplug"
is "$(jq_ validationFailures < "$work/charge.json")" "[]" "every answer of the bridge passes ocpp-rpc's strict schema check"
is "$(jq_ boot.status < "$work/charge.json") $(jq_ boot.interval < "$work/charge.json")" "Accepted 60" "BootNotification: Accepted with the heartbeat interval"
is "$(jq_ 'boot.clockSkewMs < 5000' < "$work/charge.json")" "true" "BootNotification's currentTime sets the pile's clock"
is "$(jq_ startStatus < "$work/charge.json")" "Accepted" "StartTransaction: the member's card is Accepted"
txid=$(jq_ transactionId < "$work/charge.json")
is "$(q -d $db -c "SELECT firmware FROM pile WHERE pile_id = '44200000120000100001'")" "AC-2.3.1" "the firmware of the boot is in the registry"
order=$(q -d $db -c "SELECT order_no FROM ocpp_transaction WHERE transaction_id = $txid")
is "$(q -d $db -c "SELECT count(*) FROM ocpp_transaction WHERE transaction_id = $txid AND pile_id = '44200000120000100001' AND connector_id = 1 AND meter_stop_wh = 1006000")" "1" "transactionId $txid maps to order $order, stop recorded"
is "$(q -d $db -c "SELECT state || ' ' || channel FROM charge_session WHERE order_no = '$order'")" "ended card" "the session ended at the unplug; its channel is the card"
is "$(q -d $db -c "SELECT energy_wh || ' ' || wh_by_class::text || ' ' || total || ' [' || anomalies::text || '] ' || state || ' ' || coalesce(member_id::text, '-') FROM bill WHERE order_no = '$order'")" \
	"6000 {0,0,3000,3000} 5.70 [] final 501" "the bill: 3 kWh valley + 3 kWh flat, 5.70 yuan, no anomaly codes, the card's member"
is "$(q -d $db -c "SELECT count(*) FROM quarantine")" "0" "nothing of the session went to quarantine"
is "$(q -d $db -c "SELECT count(DISTINCT ts) FROM heartbeat WHERE order_no = '$order' AND status = 'charging' AND power_w = 7000 AND soc = 55 AND voltage_v = 230.5")" "60" \
	"each sample at its own timestamp, with power (kW to W), voltage and SoC"

# The same session again on a new connection, as after a reboot: the same
# transactionId, and nothing changes.
before=$(q -d $db -c "SELECT count(*) FROM bill")/$(q -d $db -c "SELECT total FROM bill WHERE order_no = '$order'")
again=$(pile charge $url 44200000120000100001 "{\"start\":\"$t0\",\"minutes\":60,\"whPerMin\":100}")
is "$(echo "$again" | jq_ transactionId)" "$txid" "a resent StartTransaction gets the same transactionId"
is "$(q -d $db -c "SELECT count(*) FROM bill")/$(q -d $db -c "SELECT total FROM bill WHERE order_no = '$order'")" "$before" "resending the whole session changes no bill"
is "$(q -d $db -c "SELECT count(*) FROM ocpp_transaction")/$(q -d $db -c "SELECT count(*) FROM charge_session")" "1/1" "and makes no second transaction or session"

# Refused at the handshake.
r=$(pile refused $url 44200000129999900001)
is "$(echo "$r" | jq_ status)" "404" "an unregistered pile is refused with HTTP 404"
grep -q 'pile 44200000129999900001 is not registered' "$work/bridge.log"
ok $? "the log says the pile is not registered"
r=$(pile refused $url 4420000012000001)
is "$(echo "$r" | jq_ status)" "400" "a 16-digit legacy id is refused with HTTP 400"
grep -q '16-digit legacy id.*region (6) operator (4) reserved (1) product (2) detail (2) serial (5)' "$work/bridge.log"
ok $? "the log says why and gives the expected layout"
r=$(pile refused $url 4420-0000-1200-0010-0001)
is "$(echo "$r" | jq_ status)" "400" "an id with hyphens is refused"
is "$(q -d $db -c "SELECT count(*) FROM heartbeat WHERE gun::text LIKE '442000001299999%' OR gun::text LIKE '4420000012000001%'")" "0" "nothing of refused piles reaches the tables"

# Bad frames: a CALLERROR each, and the connection carries on.
bad=$(pile badFrames $url 44200000120000100002)
codes=$(echo "$bad" | node -e 'const o=JSON.parse(require("fs").readFileSync(0)); console.log(o.answers.map(a=>a[0]===4?a[1]+":"+a[2]:a[1]+":ok").join(" "))')
is "$codes" "-1:FormationViolation -1:ProtocolError b1:NotImplemented b2:OccurenceConstraintViolation b3:TypeConstraintViolation b4:PropertyConstraintViolation b5:FormationViolation b6:PropertyConstraintViolation b7:NotSupported b8:ok b9:ok" \
	"bad JSON, not a frame, unknown action, missing, mistyped and invalid fields, a central system's action: the right CALLERRORs; DataTransfer refused politely; the connection carries on"
is "$(echo "$bad" | jq_ bigCloseCode)" "1009" "a message over the size limit closes the connection with 1009"
grep -q 'pile=44200000120000100002 StartTransaction refused: StartTransaction.meterStart is required' "$work/bridge.log"
ok $? "a bad message is logged with the pile id and the reason"

# pg_ctl restart of the database in the middle of a session: the pile gets
# no answers while it is down and resends; once it is back nothing is lost.
t1=$(q -d $db -c "SELECT to_char(((((now() AT TIME ZONE 'Asia/Shanghai')::date - 1) + time '10:00') AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
pile charge $url 44200000120000100003 "{\"start\":\"$t1\",\"minutes\":40,\"whPerMin\":100,\"pauseAfter\":10,\"midFile\":\"$work/mid\",\"sampleDelayMs\":100,\"callTimeoutMs\":2000}" > "$work/restart.json" &
node_pid=$!
for _ in $(seq 100); do [ -f "$work/mid" ] && break; sleep 0.1; done
datadir=$(q -d $db -c "SHOW data_directory")
if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$datadir" -w -m fast restart >/dev/null 2>&1)
else /usr/lib/postgresql/15/bin/pg_ctl -D "$datadir" -w -m fast restart >/dev/null 2>&1; fi
ok $? "pg_ctl restart in the middle of the session"
wait $node_pid
is "$(jq_ error < "$work/restart.json")" "undefined" "the session completes after the restart"
order3=$(q -d $db -c "SELECT order_no FROM ocpp_transaction WHERE pile_id = '44200000120000100003'")
is "$(q -d $db -c "SELECT count(DISTINCT ts) FROM heartbeat WHERE order_no = '$order3' AND status = 'charging'")" "41" "every sample is stored: the start and 40 meter values"
is "$(q -d $db -c "SELECT energy_wh || ' ' || total || ' [' || anomalies::text || ']' FROM bill WHERE order_no = '$order3'")" "4000 4.60 []" "its bill is whole: 4 kWh flat, 4.60 yuan, no anomaly codes"
grep -q 'database down: trying again' "$work/bridge.log"
ok $? "the bridge noticed the database going away and reconnected"

# Commands: a remote start the pile rejects cancels its session, and the
# pile is known to be an OCPP pile from then on.
pile remote $url 44200000120000100005 "{\"reject\":true,\"openFile\":\"$work/open5\"}" > "$work/reject.json" &
node_pid=$!
for _ in $(seq 50); do [ -f "$work/open5" ] && break; sleep 0.1; done
sleep 0.3
order5=$(q -d $db -c "SELECT start_session('44200000120000100005001', 502, 'app')")
wait $node_pid
is "$(jq_ remoteStart.params.idTag < "$work/reject.json")" "$order5" "RemoteStartTransaction reaches the pile, its idTag the order number"
for _ in $(seq 30); do [ "$(q -d $db -c "SELECT state FROM charge_session WHERE order_no = '$order5'")" = cancelled ] && break; sleep 0.1; done
is "$(q -d $db -c "SELECT answer || ' ' || (SELECT state FROM charge_session WHERE order_no = '$order5') FROM ocpp_command WHERE order_no = '$order5'")" "Rejected cancelled" \
	"the pile's Rejected is recorded and cancels the pending session"
for _ in $(seq 30); do [ -n "$(q -d $db -c "SELECT disconnected_at FROM ocpp_connection WHERE pile_id = '44200000120000100005'")" ] && break; sleep 0.1; done
err=$(psql -X -q -tA -d $db -v VERBOSITY=verbose -c "SELECT start_session('44200000120000100005002', 502, 'app')" 2>&1)
echo "$err" | grep -q 'EV003: pile 44200000120000100005 of gun 44200000120000100005002 is not connected'
ok $? "start_session on an OCPP pile that is not connected fails in the app's call with EV003"
echo "$err" | grep -q 'HINT:  A remote start needs the pile online'
ok $? "and says when it was last connected and what to do"

# A pile whose bridge vanished (no sign of life for 30 s) is not connected.
q -d $db -c "INSERT INTO ocpp_bridge (bridge_id, started_at, seen_at) VALUES ('gone', now() - interval '1 hour', now() - interval '1 min');
	UPDATE ocpp_connection SET bridge_id = 'gone', disconnected_at = NULL WHERE pile_id = '44200000120000100003'" >/dev/null
err=$(psql -X -q -tA -d $db -c "SELECT start_session('44200000120000100003002', 502, 'app')" 2>&1)
echo "$err" | grep -q 'DETAIL:  Bridge gone, which holds its connection, was last seen at'
ok $? "a pile held by a bridge that stopped refreshing ocpp_bridge counts as not connected"
q -d $db -c "UPDATE ocpp_connection SET disconnected_at = now() WHERE bridge_id = 'gone'" >/dev/null
is "$(q -d $db -c "SELECT count(*) FROM ocpp_bridge WHERE bridge_id <> 'gone' AND seen_at > now() - interval '30 s'")" "1" "the running bridge keeps its row of ocpp_bridge fresh"

# A stop asked for while the pile is away is sent when it connects again.
order5b=$(q -d $db -c "SELECT order_no FROM ocpp_start_transaction('44200000120000100005', 2, '1234567890123456', 5000, now() - interval '5 min')")
cmd5=$(q -d $db -c "SELECT ocpp_stop_charge('$order5b')")
is "$(q -d $db -c "SELECT sent_at IS NULL AND answered_at IS NULL FROM ocpp_command WHERE command_id = $cmd5")" "t" "ocpp_stop_charge on a pile that is away: the command waits"
pile remote $url 44200000120000100005 '{"stopOnly":true,"waitMs":5000}' > "$work/later.json"
is "$(jq_ remoteStop.params.transactionId < "$work/later.json")" "$(q -d $db -c "SELECT transaction_id FROM ocpp_transaction WHERE order_no = '$order5b'")" \
	"and reaches the pile as RemoteStopTransaction of its transaction when it connects"
for _ in $(seq 30); do [ -n "$(q -d $db -c "SELECT answer FROM ocpp_command WHERE command_id = $cmd5")" ] && break; sleep 0.1; done
is "$(q -d $db -c "SELECT answer FROM ocpp_command WHERE command_id = $cmd5")" "Accepted" "its answer is recorded"

# A remote start: the pile is told within a second, takes the session, and
# the balance guard's stop reaches it before the wallet (1.50) falls below
# the threshold (1.00): 60 Wh a sample at 1.15 yuan/kWh and 22 kW.
pile remote $url 44200000120000100004 "{\"openFile\":\"$work/open4\",\"stepS\":20,\"whPerSample\":60,\"powerKw\":22,\"sampleDelayMs\":150}" > "$work/remote.json" &
node_pid=$!
for _ in $(seq 50); do [ -f "$work/open4" ] && break; sleep 0.1; done
for _ in $(seq 30); do [ "$(q -d $db -c "SELECT ocpp_pile_connected('44200000120000100004')")" = t ] && break; sleep 0.1; done
is "$(q -d $db -c "SELECT bridge_id <> '' AND disconnected_at IS NULL FROM ocpp_connection WHERE pile_id = '44200000120000100004'")" "t" "the bridge records the connected pile in ocpp_connection"
t_call=$(date +%s%3N)
order4=$(q -d $db -c "SELECT start_session('44200000120000100004001', 502, 'app')")
wait $node_pid
lag=$(( $(jq_ remoteStart.at < "$work/remote.json") - t_call ))
[ "$lag" -ge 0 ] && [ "$lag" -lt 1000 ]
ok $? "RemoteStartTransaction reaches the pile within a second of start_session ($lag ms)"
is "$(jq_ validationFailures < "$work/remote.json")" "[]" "the bridge's commands pass ocpp-rpc's strict schema check"
is "$(jq_ startStatus < "$work/remote.json") $(q -d $db -c "SELECT remote FROM ocpp_transaction WHERE order_no = '$order4'")" "Accepted t" \
	"the pile's StartTransaction with the order number takes over the app's session"
is "$(jq_ stoppedRemotely < "$work/remote.json")" "true" "the balance guard's stop reaches the pile as RemoteStopTransaction"
is "$(q -d $db -c "SELECT string_agg(action || ' ' || answer, ', ' ORDER BY command_id) FROM ocpp_command WHERE order_no = '$order4'")" \
	"RemoteStartTransaction Accepted, RemoteStopTransaction Accepted" "both commands and the pile's answers are recorded"
is "$(q -d $db -c "SELECT count(*) FROM stop_request WHERE order_no = '$order4'")" "1" "the guard recorded its stop request"
is "$(q -d $db -c "SELECT 1.50 - total >= 1.00 AND total > 0 FROM bill WHERE order_no = '$order4'")" "t" \
	"the charge stopped before the wallet fell below the threshold (bill $(q -d $db -c "SELECT total FROM bill WHERE order_no = '$order4'"))"
err=$(psql -X -q -tA -d $db -v VERBOSITY=verbose -c "SELECT ocpp_stop_charge('$order4')" 2>&1)
echo "$err" | grep -q '55000: order .* is already stopped'
ok $? "ocpp_stop_charge of a stopped charge is refused (55000)"

# Security profile 1: HTTP Basic with the pile id as user and the password
# whose salted PBKDF2 hash the registry keeps.
pw=Zq3-pile-0006-secret
q -d $db -c "SELECT ocpp_set_password('44200000120000100006', '$pw')" >/dev/null
is "$(q -d $db -c "SELECT length(salt) || ' ' || iterations || ' ' || (hash = ocpp_hash_password('$pw', salt, iterations)) FROM ocpp_credential WHERE pile_id = '44200000120000100006'")" "16 4096 true" \
	"ocpp_set_password keeps a salted PBKDF2-HMAC-SHA256 hash, not the password"
err=$(psql -X -q -tA -d $db -v VERBOSITY=verbose -c "SELECT ocpp_set_password('44200000120000100006', 'short')" 2>&1)
echo "$err" | grep -q '22023: the password for pile 44200000120000100006 is not a valid OCPP password'
ok $? "a password outside OCPP's 16 to 40 printable characters is refused (22023)"
r=$(pile refused $url 44200000120000100006)
is "$(echo "$r" | jq_ status) $(echo "$r" | jq_ challenge)" '401 Basic realm="evcharge", charset="UTF-8"' "a pile with a password that presents none is refused with 401 and a Basic challenge"
r=$(pile refused $url 44200000120000100006 '{"password":"wrong-password-0006"}')
is "$(echo "$r" | jq_ status)" "401" "a wrong password is refused with 401"
r=$(pile refused $url 44200000120000100006 "{\"password\":\"$pw\",\"user\":\"44200000120000100005\"}")
is "$(echo "$r" | jq_ status)" "401" "the right password under another pile's id is refused"
grep -q 'pile 44200000120000100006 sent a wrong password' "$work/bridge.log"
ok $? "the log says why"
is "$(pile boot $url 44200000120000100006 "{\"password\":\"$pw\"}" | jq_ status)" "Accepted" "the right password is admitted (ocpp-rpc with password)"
is "$(pile refused $url 44200000120000100005 | jq_ status)" "101" "a pile without a password is admitted while its operator does not require one"
q -d $db -c "INSERT INTO ocpp_policy (operator_id, require_password) VALUES (12, true)" >/dev/null
r=$(pile refused $url 44200000120000100005)
is "$(echo "$r" | jq_ status)" "401" "once the operator requires passwords, a pile without one is refused with 401"
is "$(pile boot $url 44200000120000100006 "{\"password\":\"$pw\"}" | jq_ status)" "Accepted" "and one with its password still connects"
q -d $db -c "UPDATE ocpp_policy SET require_password = false WHERE operator_id = 12" >/dev/null

# Security profile 2: wss:// with --tls-cert/--tls-key (a self-signed
# certificate made here), with the pile's password.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 2 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
tls_port=$((port + 1))
while (exec 3<>/dev/tcp/127.0.0.1/$tls_port) 2>/dev/null; do tls_port=$((tls_port + 1)); done
"$bridge" --db "dbname=$db" --ocpp 127.0.0.1:$tls_port --bridge-id tls-test --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" 2>>"$work/bridge.log" &
tls_pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$tls_port) 2>/dev/null && break; sleep 0.1; done
is "$(pile boot wss://127.0.0.1:$tls_port/ocpp 44200000120000100006 "{\"password\":\"$pw\",\"ca\":\"$work/cert.pem\"}" | jq_ status)" "Accepted" \
	"wss:// with a self-signed certificate: TLS, HTTP Basic and BootNotification"
is "$(pile refused wss://127.0.0.1:$tls_port/ocpp 44200000120000100006 "{\"password\":\"wrong-password-0006\",\"ca\":\"$work/cert.pem\"}" | jq_ status)" "401" \
	"over TLS too a wrong password is refused with 401"
kill -TERM $tls_pid; wait $tls_pid
is "$?" "0" "the TLS bridge stops cleanly"
tls_pid=

# A database whose search_path lacks evcharge (the test database has it):
# the bridge's own queries name evcharge's operators, so piles are admitted
# and stored there too (a pile of its own, so that the transactions of the
# others stay as the later checks count them).
q -d $db -c "INSERT INTO pile VALUES ('44200000120000100008', 1, 2, 7000)" >/dev/null
sp_port=$((tls_port + 1))
while (exec 3<>/dev/tcp/127.0.0.1/$sp_port) 2>/dev/null; do sp_port=$((sp_port + 1)); done
"$bridge" --db "dbname=$db options=-csearch_path=public" --ocpp 127.0.0.1:$sp_port --bridge-id path-test --flush-ms 10 2>>"$work/bridge.log" &
tls_pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$sp_port) 2>/dev/null && break; sleep 0.1; done
t2=$(q -d $db -c "SELECT to_char(((((now() AT TIME ZONE 'Asia/Shanghai')::date - 1) + time '12:00') AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
out=$(pile charge ws://127.0.0.1:$sp_port/ocpp 44200000120000100008 "{\"start\":\"$t2\",\"minutes\":3,\"whPerMin\":100,\"firmware\":\"AC-2.4.0\"}")
is "$(echo "$out" | jq_ error)" "undefined" "with search_path = public: a pile is admitted and charges (boot, start, samples, stop)"
for _ in $(seq 30); do [ "$(q -d $db -c "SELECT count(*) FROM bill b JOIN ocpp_transaction t USING (order_no) WHERE t.pile_id = '44200000120000100008'")" = 1 ] && break; sleep 0.1; done
is "$(q -d $db -c "SELECT firmware || ' ' || (SELECT energy_wh FROM bill b JOIN ocpp_transaction t USING (order_no) WHERE t.pile_id = '44200000120000100008') FROM pile WHERE pile_id = '44200000120000100008'")" "AC-2.4.0 300" \
	"and its firmware and its bill are stored"
kill -TERM $tls_pid; wait $tls_pid
tls_pid=

# The status endpoint: Prometheus text, with what this test sent.
metric() { grep -E "^$1 " "$work/metrics" | awk '{print $2}'; }
# A card's daily spending limit (a maintenance card shared by several
# cars): member 501's card has charged today (5.70 and more); with a limit
# of 5.00 the pile's Authorize is answered Blocked, raised it is Accepted.
is "$(pile authorize $url 44200000120000100002 '{"idTag":"1234567890123456"}' | jq_ status)" "Accepted" \
	"Authorize: a member's card without a limit is Accepted"
q -d $db -c "UPDATE member SET card_daily_limit = 5.00 WHERE member_id = 501" >/dev/null
is "$(pile authorize $url 44200000120000100002 '{"idTag":"1234567890123456"}' | jq_ status)" "Blocked" \
	"Authorize: a card whose charges of the day reached its daily limit is Blocked"
q -d $db -c "UPDATE member SET card_daily_limit = 1000.00 WHERE member_id = 501" >/dev/null
is "$(pile authorize $url 44200000120000100002 '{"idTag":"1234567890123456"}' | jq_ status)" "Accepted" \
	"and Accepted again once the limit is raised"

curl -sf "http://127.0.0.1:$mport/metrics" > "$work/metrics"
ok $? "--metrics serves http://127.0.0.1:$mport/metrics"
[ "$(metric 'evcharge_bridge_messages_total\{action="MeterValues"\}')" -gt 100 ] && [ "$(metric 'evcharge_bridge_messages_total\{action="StartTransaction"\}')" -ge 4 ]
ok $? "messages by action ($(metric 'evcharge_bridge_messages_total\{action="MeterValues"\}') MeterValues)"
[ "$(metric 'evcharge_bridge_refused_connections_total\{status="401"\}')" -ge 4 ] && [ "$(metric 'evcharge_bridge_refused_connections_total\{status="404"\}')" -ge 1 ] && \
	[ "$(metric 'evcharge_bridge_refused_connections_total\{status="400"\}')" -ge 2 ]
ok $? "refused connections by HTTP status"
[ "$(metric 'evcharge_bridge_callerrors_total\{code="FormationViolation"\}')" -ge 2 ] && [ "$(metric 'evcharge_bridge_callerrors_total\{code="NotImplemented"\}')" -ge 1 ]
ok $? "CALLERRORs sent by code"
[ "$(metric evcharge_bridge_flush_rows_count)" -gt 10 ] && [ "$(metric evcharge_bridge_flush_rows_sum)" -ge "$(metric evcharge_bridge_flush_rows_count)" ] && \
	[ "$(metric 'evcharge_bridge_flush_seconds_bucket\{le="\+Inf"\}')" = "$(metric evcharge_bridge_flush_seconds_count)" ]
ok $? "rows per flush and flush latency as histograms ($(metric evcharge_bridge_flush_rows_count) flushes)"
is "$(metric evcharge_bridge_connected_piles) $(metric evcharge_bridge_queue_depth) $(metric evcharge_bridge_commands_sent_total) $(metric evcharge_bridge_database_up)" "0 0 4 1" \
	"connected piles, queue depth, commands sent, database up"
is "$(grep -c '^# TYPE evcharge_bridge_' "$work/metrics")" "$(grep -c '^# HELP evcharge_bridge_' "$work/metrics")" "every metric has its HELP and TYPE"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/other")" "404" "another path is 404"

# A StopTransaction for a transactionId the bridge never issued (-1: the
# pile started offline and its StartTransaction was never answered): stored
# as a transaction known from its stop alone, with a new order number, its
# start and meter the Transaction.Begin reading of transactionData, its
# connector the one the pile reported Finishing; billed as an offline
# session; the resend changes nothing.
ty=$(q -d $db -c "SELECT to_char(((((now() AT TIME ZONE 'Asia/Shanghai')::date - 1) + time '12:00') AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
pile stopUnknown $url 44200000120000100002 "{\"start\":\"$ty\",\"minutes\":30,\"whPerMin\":100,\"connector\":2}" > "$work/unknown.json"
is "$(jq_ error < "$work/unknown.json") $(jq_ validationFailures < "$work/unknown.json")" "undefined []" "StopTransaction with transactionId -1 and its resend: answered, and the answers pass the strict schema check"
is "$(jq_ stop.idTagInfo.status < "$work/unknown.json") $(jq_ again.idTagInfo.status < "$work/unknown.json")" "Accepted Accepted" "both get idTagInfo Accepted"
orderu=$(q -d $db -c "SELECT order_no FROM ocpp_transaction WHERE pile_id = '44200000120000100002' AND pile_transaction_id = -1")
is "$(q -d $db -c "SELECT count(*) || ' ' || min(connector_id) || ' ' || min(meter_start_wh) || ' ' || min(meter_stop_wh) || ' ' || (min(started_at) = '$ty') FROM ocpp_transaction WHERE pile_id = '44200000120000100002'")" \
	"1 2 3000000 3003000 true" "one transaction made from the stop: connector 2 (Finishing), meter and start from Transaction.Begin, once despite the resend"
is "$(q -d $db -c "SELECT energy_wh || ' ' || total || ' [' || anomalies::text || '] ' || state || ' ' || coalesce(member_id::text, '-') FROM bill WHERE order_no = '$orderu'")" \
	"3000 3.45 [] final 501" "its bill: 3 kWh flat from the pile's readings, 3.45 yuan, the card's member"
is "$(q -d $db -c "SELECT count(*) FROM bill b JOIN charge_session s USING (order_no) WHERE s.gun = '44200000120000100002002'")" "1" "one bill for the gun, not two after the resend"
grep -q 'pile=44200000120000100002 StopTransaction for transaction -1, which this pile was never given: stored as a transaction known from its stop alone' "$work/bridge.log"
ok $? "the log says what was done with it"

# The same when the StartTransaction was stored but its answer lost: the
# stop closes that open transaction instead of making a second session.
ts=$(q -d $db -c "SELECT to_char(((((now() AT TIME ZONE 'Asia/Shanghai')::date - 1) + time '14:00') AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
pile stopUnknown $url 44200000120000100003 "{\"start\":\"$ts\",\"minutes\":20,\"whPerMin\":100,\"sendStart\":true,\"meterStart\":5000000}" > "$work/lost.json"
lost=$(jq_ lostTransactionId < "$work/lost.json")
orderl=$(q -d $db -c "SELECT order_no FROM ocpp_transaction WHERE transaction_id = $lost")
is "$(q -d $db -c "SELECT meter_stop_wh || ' ' || (pile_transaction_id IS NULL) || ' ' || (SELECT count(*) FROM ocpp_transaction WHERE pile_id = '44200000120000100003') FROM ocpp_transaction WHERE transaction_id = $lost")" \
	"5002000 true 2" "a stop with -1 closes the pile's open transaction whose answer was lost, and makes no other"
is "$(q -d $db -c "SELECT energy_wh || ' ' || total || ' [' || anomalies::text || '] ' || state FROM bill WHERE order_no = '$orderl'")" "2000 2.30 [] final" "its bill is whole: 2 kWh flat, 2.30 yuan"

# The per-connection rate limit: a burst over rate_burst (200) is answered
# GenericError, the rest processed.
b=$(pile burst $url 44200000120000100001 '{"n":260}')
okn=$(echo "$b" | jq_ ok); gen=$(echo "$b" | jq_ genericError)
[ "$okn" -ge 200 ] && [ "$okn" -lt 240 ] && [ $((okn + gen)) -eq 260 ]
ok $? "260 Heartbeats at once: $okn answered (the burst of 200 and what the rate refilled), $gen refused with GenericError"
grep -q 'pile=44200000120000100001 Heartbeat over the rate limit of 20 a second: answered GenericError' "$work/bridge.log"
ok $? "the refusals are logged with the pile id"
curl -sf "http://127.0.0.1:$mport/metrics" > "$work/metrics"
[ "$(metric evcharge_bridge_rate_limited_total)" -eq "$gen" ]
ok $? "and counted in evcharge_bridge_rate_limited_total"

# The registry the handshake checks is read on a thread of its own: a pile
# registered while the bridge runs is admitted (NOTIFY evcharge_registry),
# and a registry read held up by a lock does not hold up the handshake of a
# known pile (the unknown one is told to try again: 503).
q -d $db -c "INSERT INTO pile VALUES ('44200000120000100007', 1, 2, 7000)" >/dev/null
is "$(pile boot $url 44200000120000100007 | jq_ status)" "Accepted" "a pile registered while the bridge runs is admitted"
PGAPPNAME=locker psql -X -q -d $db -c "BEGIN; LOCK TABLE evcharge.ocpp_policy IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT" >/dev/null 2>&1 &
lock_pid=$!
for _ in $(seq 50); do [ "$(q -d $db -c "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'locker' AND l.mode = 'AccessExclusiveLock' AND l.granted")" -gt 0 ] && break; sleep 0.1; done
is "$(q -d $db -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'evcharge-bridge registry'")" "1" \
	"the registry thread has its own connection (application_name evcharge-bridge registry)"
for _ in $(seq 50); do [ "$(q -d $db -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'evcharge-bridge registry' AND wait_event_type = 'Lock'")" = 1 ] && break; sleep 0.1; done
r=$(pile refused $url 44200000120000100001)
[ "$(echo "$r" | jq_ status)" = 101 ] && [ "$(echo "$r" | jq_ ms)" -lt 1000 ]
ok $? "while the registry read waits on a lock, a known pile's handshake is admitted in $(echo "$r" | jq_ ms) ms"
is "$(pile refused $url 44200000129999900001 | jq_ status)" "503" "and an unknown pile is told to try again (503), not refused as unregistered"
q -d $db -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'" >/dev/null
wait $lock_pid
for _ in $(seq 50); do [ "$(pile refused $url 44200000129999900001 | jq_ status)" = 404 ] && break; sleep 0.1; done
is "$(pile refused $url 44200000129999900001 | jq_ status)" "404" "once the registry is read again, it is refused with 404"

# A bridge with a small queue_max and a long flush_ms: it stops reading the
# socket when queue_max messages are held, and reads on once the writer has
# flushed; SIGTERM flushes what it holds; its metrics, on loopback by
# default, want the bearer token of --metrics-token-file.
bp_port=$((tls_port + 1))
while (exec 3<>/dev/tcp/127.0.0.1/$bp_port) 2>/dev/null; do bp_port=$((bp_port + 1)); done
bp_mport=$((mport + 1))
while (exec 3<>/dev/tcp/127.0.0.1/$bp_mport) 2>/dev/null; do bp_mport=$((bp_mport + 1)); done
token=tok-$(date +%s%N)-metrics
echo "$token" > "$work/token"
"$bridge" --db "dbname=$db" --ocpp 127.0.0.1:$bp_port --bridge-id bp-test --queue-max 10 --flush-ms 3000 --flush-rows 1000000 \
	--metrics $bp_mport --metrics-token-file "$work/token" 2>>"$work/bridge.log" &
bp_pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$bp_port) 2>/dev/null && break; sleep 0.1; done
tf=$(q -d $db -c "SELECT to_char(((((now() AT TIME ZONE 'Asia/Shanghai')::date - 1) + time '18:00') AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
f=$(pile flood ws://127.0.0.1:$bp_port/ocpp 44200000120000100003 "{\"n\":30,\"peekMs\":1500,\"start\":\"$tf\"}")
is "$(echo "$f" | jq_ atPeek) $(echo "$f" | jq_ all)" "10 30" "30 messages at once: 10 (queue_max) answered before the first flush, all 30 after it"
grep -q 'queue full (10 messages): not reading sockets until the database catches up' "$work/bridge.log" && grep -q 'queue down to 0: reading sockets again' "$work/bridge.log"
ok $? "the log says when it stopped and started reading sockets again"
grep -q "metrics at http://127.0.0.1:$bp_mport/metrics (a bearer token required)" "$work/bridge.log"
ok $? "--metrics PORT listens on loopback"
is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$bp_mport/metrics") $(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong-token-0000000' "http://127.0.0.1:$bp_mport/metrics")" "401 401" \
	"with a token, /metrics without it or with another is 401"
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$bp_mport/metrics" > "$work/metrics"
[ "$(metric evcharge_bridge_metrics_unauthorized_total)" = 2 ]
ok $? "and with it 200, counting the refused requests"
kill -TERM $bp_pid; wait $bp_pid
is "$?" "0" "SIGTERM while it holds messages: exit 0"
bp_pid=
is "$(q -d $db -c "SELECT count(DISTINCT ts) FROM heartbeat WHERE gun = '44200000120000100003001' AND status = 'idle' AND ts >= '$tf' AND ts < '$tf'::timestamptz + interval '30 s'")" "30" \
	"every one of the 30 messages is stored: what it held was flushed before it stopped"

# SIGTERM: every socket closed with 1001, exit 0, the connections closed.
pile waitClose $url 44200000120000100002 "{\"openFile\":\"$work/open\"}" > "$work/close.json" &
node_pid=$!
for _ in $(seq 50); do [ -f "$work/open" ] && break; sleep 0.1; done
kill -TERM $bridge_pid
wait $bridge_pid
is "$?" "0" "SIGTERM: the bridge exits 0"
bridge_pid=
wait $node_pid
is "$(jq_ code < "$work/close.json")" "1001" "and closes every socket with 1001 (going away)"
is "$(q -d $db -c "SELECT count(*) FROM ocpp_connection WHERE disconnected_at IS NULL")" "0" "and marks its piles disconnected"
if [ $_tap_failed -gt 0 ]; then sed 's/^/# /' "$work/bridge.log" | tail -40; fi
done_testing
