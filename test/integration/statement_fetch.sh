# The statement client's limits, against the loopback statement server:
# plain http is refused when a source is stored and when a URL is fetched
# (no request ever leaves), a redirect is not followed, the server's
# certificate and host name are checked, a body over evcharge.http_max_bytes
# and a handshake that never ends are refused, the backend shows wait event
# Extension while it waits, and a cancel, a statement_timeout or a
# termination ends a slow fetch at once, the session fit to fetch again.
# Errors about a source never show its secret.
source "$(dirname "$0")/lib/tap.sh"
source "$(dirname "$0")/lib/statement_server.sh"
plan 23
db=evcharge_it_fetch
fresh_db $db
work=$(mktemp -d)
chmod 755 "$work"
trap 'stop_statement_server; rm -rf "$work"' EXIT
secret=$statement_secret
today=$(q -d $db -c "SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date")
printf 'provider_txn,account_id,amount,paid_at\n' >"$work/provider.csv"
printf 'order_no,energy_wh,total\n' >"$work/partner.csv"
start_statement_server "$work" "$work/provider.csv" "$work/partner.csv"
ok $? "the statement server listens on 127.0.0.1:$port (https), $plain_port (http) and $silent_port (silent)"
q -d $db >/dev/null <<SQL
ALTER DATABASE $db SET evcharge.http_ca_file = '$work/cert.pem';
ALTER DATABASE $db SET evcharge.http_timeout = '5s';
INSERT INTO operator VALUES (12, 'fetch test');
SQL

err() { psql -X -q -tA -v VERBOSITY=verbose -d $db -c "$1" 2>&1 >/dev/null | head -4; }
source_row() { echo "INSERT INTO statement_source (operator_id, kind, url_template, secret, name) VALUES (12, 'provider', '$1', '${2:-$secret}', '${3:-wxpay-12}')"; }
no_secret() { ! echo "$1" | grep -q -- "${2:-$secret}"; }

# Storing a source: plain http, and the other mistakes, each refused with
# its own error, and none of them shows the secret.
out=$(err "$(source_row "http://127.0.0.1:$plain_port/wxpay-12/provider/{day}.csv")")
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q "22023.*statement URL \"http://127.0.0.1:$plain_port/wxpay-12/provider/{day}.csv\" is not https" &&
	echo "$out" | grep -q 'HINT:.*https://' && no_secret "$out"
ok $? "an http:// URL template is refused when stored (22023), with a hint, without the secret"
out=$(err "$(source_row "https://127.0.0.1:$port/wxpay-12/provider/today.csv")")
echo "$out" | grep -q '22023.*has no {day}' && no_secret "$out"
ok $? "a template without {day} is refused (22023)"
out=$(err "$(source_row "https://finance:hunter2@127.0.0.1:$port/wxpay-12/provider/{day}.csv")")
echo "$out" | grep -q '22023.*statement URL of host "127.0.0.1" carries a user name or password' && no_secret "$out" hunter2
ok $? "a template with a password is refused (22023) without showing the password"
out=$(err "$(source_row "ftp://127.0.0.1/{day}.csv")")
echo "$out" | grep -q '22023.*is not https'
ok $? "an ftp:// template is refused (22023)"
out=$(err "$(source_row "https://127.0.0.1:$port/wxpay-12/provider/{day}.csv" short-s3cret)")
echo "$out" | grep -q '23514.*the secret of statement source "wxpay-12" is 12 characters long' && no_secret "$out" short-s3cret
ok $? "a secret shorter than 16 characters is refused (23514) without showing it"
out=$(err "$(source_row "https://127.0.0.1:$port/wxpay-12/provider/{day}.csv" "$secret" 'wx pay')")
echo "$out" | grep -q '23514.*statement source name "wx pay" is not valid' && no_secret "$out"
ok $? "a source name with a space is refused (23514)"
out=$(err "INSERT INTO statement_source (operator_id, kind, url_template, secret) VALUES (12, 'provider', 'https://127.0.0.1:$port/x/provider/{day}.csv', '$secret')")
echo "$out" | grep -q '23502.*the statement source of ".*" has no name' && no_secret "$out"
ok $? "a source without a name is refused (23502) without the row, which holds the secret"
is "$(q -d $db -c "$(source_row "https://127.0.0.1:$port/wxpay-12/provider/{day}.csv") RETURNING name")" wxpay-12 "an https source is stored"
out=$(err "UPDATE statement_source SET url_template = replace(url_template, 'https://', 'http://')")
echo "$out" | grep -q '22023.*is not https'
ok $? "a source cannot be changed to http:// either"

# Fetching: nothing is ever sent over plain http, not even after a redirect.
out=$(err "SELECT fetch_statement('wxpay-12', '$today', 'http://127.0.0.1:$plain_port/wxpay-12/provider/{day}.csv', '$secret')")
echo "$out" | grep -q '22023.*is not https'
ok $? "fetch_statement refuses an http:// URL (22023)"
out=$(err "SELECT fetch_statement('wxpay-12', '$today', 'https://127.0.0.1:$port/wxpay-12/redirect/{day}.csv', '$secret')")
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q 'answered HTTP 302'
ok $? "a redirect (to plain http) is not followed: the 302 is the error"
is "$(grep -c '^http ' "$work/server.log")" 0 "the plain http listener never received a request"

# Certificates and limits.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
	-keyout "$work/other-key.pem" -out "$work/other.pem" >/dev/null 2>&1
chmod 644 "$work/other.pem"
out=$(err "SET evcharge.http_ca_file = '$work/other.pem'; SELECT fetch_statement('wxpay-12', '$today', 'https://127.0.0.1:$port/wxpay-12/provider/{day}.csv', '$secret')")
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q '08006.*could not fetch' && echo "$out" | grep -qi 'certificate'
ok $? "a server whose certificate is not signed by a trusted CA is refused (08006)"
out=$(err "SELECT fetch_statement('wxpay-12', '$today', 'https://localhost:$port/wxpay-12/provider/{day}.csv', '$secret')")
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q '08006.*could not fetch' && echo "$out" | grep -qi 'certificate\|subject\|host'
ok $? "a certificate that is not for the URL's host is refused (08006)"
out=$(err "SET evcharge.http_max_bytes = '1MB'; SELECT fetch_statement('wxpay-12', '$today', 'https://127.0.0.1:$port/wxpay-12/big/{day}.csv', '$secret')")
echo "$out" | grep -q '54000.*is larger than 1024 kB'
ok $? "a statement over evcharge.http_max_bytes is refused (54000)"
t0=$(now_ms)
out=$(err "SET evcharge.http_connect_timeout = '500ms'; SET evcharge.http_timeout = '20s'; SELECT fetch_statement('wxpay-12', '$today', 'https://127.0.0.1:$silent_port/wxpay-12/provider/{day}.csv', '$secret')")
took=$(( $(now_ms) - t0 ))
echo "$out" | sed 's/^/# /'
echo "# gave up after $took ms"
echo "$out" | grep -q 'HINT:.*evcharge.http_connect_timeout (500 ms)' && [ "$took" -lt 3000 ]
ok $? "a TLS handshake that never ends gives up after evcharge.http_connect_timeout, not the whole timeout"

# Waiting on the network: wait event Extension, and a cancel ends it at once.
slow="SELECT fetch_statement('wxpay-12', '$today', 'https://127.0.0.1:$port/wxpay-12/slow/{day}.csv', '$secret')"
psql -X -q -d $db -c "SET evcharge.http_timeout = '60s'" -c "$slow" >"$work/cancel.log" 2>&1 &
pc=$!
pid=$(backend_running /slow/)
seen=
for _ in $(seq 1 30); do
	seen=$(q -d $db -c "SELECT state || ' ' || coalesce(wait_event_type, '-') || ' ' || coalesce(wait_event, '-') FROM pg_stat_activity WHERE pid = '${pid:-0}'")
	[ "$seen" = "active Extension Extension" ] && break
	sleep 0.1
done
is "$seen" "active Extension Extension" "while a fetch waits, pg_stat_activity shows wait event Extension/Extension"
t0=$(now_ms)
q -d $db -c "SELECT pg_cancel_backend(${pid:-0})" >/dev/null
for _ in $(seq 1 50); do kill -0 $pc 2>/dev/null || break; sleep 0.05; done
took=$(( $(now_ms) - t0 ))
kill -0 $pc 2>/dev/null && kill $pc
wait $pc 2>/dev/null
echo "# cancelled after $took ms"
grep -q 'canceling statement due to user request' "$work/cancel.log" && [ "$took" -lt 2000 ]
ok $? "pg_cancel_backend ends a fetch of a 60 s timeout within 2 s"

psql -X -q -tA -d $db -c "SET statement_timeout = '1s'" -c "$slow" \
	-c "SELECT 'again ' || length(fetch_statement('wxpay-12', '$today', 'https://127.0.0.1:$port/wxpay-12/provider/{day}.csv', '$secret'))" \
	-c "SELECT coalesce(wait_event, 'none') FROM pg_stat_activity WHERE pid = pg_backend_pid()" >"$work/timeout.log" 2>&1
sed 's/^/# /' "$work/timeout.log"
grep -q 'canceling statement due to statement timeout' "$work/timeout.log"
ok $? "statement_timeout ends a slow fetch"
is "$(grep -v ERROR "$work/timeout.log" | tr '\n' ' ')" "again 39 none " \
	"the same session fetches again afterwards, with no wait event left behind"

psql -X -q -d $db -c "SET evcharge.http_timeout = '60s'" -c "$slow" >"$work/terminate.log" 2>&1 &
pc=$!
pid=$(backend_running /slow/)
sleep 0.5
t0=$(now_ms)
q -d $db -c "SELECT pg_terminate_backend(${pid:-0})" >/dev/null
for _ in $(seq 1 50); do kill -0 $pc 2>/dev/null || break; sleep 0.05; done
took=$(( $(now_ms) - t0 ))
kill -0 $pc 2>/dev/null && kill $pc
wait $pc 2>/dev/null
echo "# terminated after $took ms"
grep -q 'terminating connection due to administrator command' "$work/terminate.log" && [ "$took" -lt 2000 ]
ok $? "pg_terminate_backend ends a fetch within 2 s"
is "$(q -d $db -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%/slow/%' AND pid <> pg_backend_pid()")" 0 \
	"no backend is left waiting on the slow server"

[ -n "${KEEP:-}" ] || q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
done_testing
