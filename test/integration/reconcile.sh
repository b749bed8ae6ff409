# Nightly reconciliation against real HTTPS statement servers on loopback:
# the provider's paid-but-not-credited top-up is found and credited, the
# credited-but-not-paid one reported; a partner's missing, extra, differing
# and negative bills are found; a tampered body, a statement of another day
# or source replayed, a wrong secret, a missing statement and a server that
# does not answer each fail with a clear error (the last within
# evcharge.http_timeout, and at once when cancelled), and in the nightly job
# each is recorded as a failed fetch.  Didi's statement, keyed by Didi's own
# 27-digit order numbers, reconciles clean; reconciled by our numbers only,
# it would list every line as missing on both sides.  statement_fetch.sh
# tests the client's other limits (plain http, certificates, sizes, wait
# event, cancel).
source "$(dirname "$0")/lib/tap.sh"
source "$(dirname "$0")/lib/statement_server.sh"
plan 25
db=evcharge_it_reconcile
fresh_db $db
work=$(mktemp -d)
chmod 755 "$work"
trap 'stop_statement_server; rm -rf "$work"' EXIT
secret=$statement_secret

q -d $db >/dev/null <<'SQL'
INSERT INTO operator VALUES (12, 'reconciliation test');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'reconciliation test');
INSERT INTO station_tariff (station_id, current_type, tariff, valid) VALUES (1, 'AC', '00:00-24:00 flat | flat 0.8+0.45', '[2026-01-01,)');
INSERT INTO pile VALUES ('44200000120000100001', 1, 4, 7000);
INSERT INTO partner (partner_id, operator_id, name) VALUES (8, 12, 'Map app');
INSERT INTO member (member_id, operator_id) VALUES (501, 12);
SELECT top_up(member_wallet(501), 100.00, 'WX-1'), top_up(member_wallet(501), 20.00, 'WX-2');
-- Three partner charges on 20 November, 5900 Wh and 7.37 each.
CREATE FUNCTION pg_temp.charge(g int, o text) RETURNS void LANGUAGE sql AS $$
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, order_no)
	SELECT evcharge.gun_id('44200000120000100001', g), '2026-11-20 08:00+08'::timestamptz + i * interval '1 min',
	       (CASE WHEN i = 60 THEN 'idle' ELSE 'charging' END)::evcharge.gun_status, 100000 + least(i, 59) * 100, o
	FROM generate_series(0, 60) i;
	INSERT INTO evcharge.pile_record VALUES (o, evcharge.gun_id('44200000120000100001', g), '2026-11-20 08:00+08',
		'2026-11-20 08:59+08', 5900);
$$;
SELECT pg_temp.charge(g, evcharge.start_session(evcharge.gun_id('44200000120000100001', g), NULL, 'partner', 8))
FROM generate_series(1, 3) g;
SQL
orders=($(q -d $db -c "SELECT order_no FROM charge_session ORDER BY gun"))
wallet=$(q -d $db -c "SELECT member_wallet(501)")
today=$(q -d $db -c "SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date")
is "${#orders[@]}" 3 "three partner bills on 20 November"

# The provider was paid WX-1 and WX-3 (never credited: its callback was
# lost); WX-2 was credited here but is not in its statement.  The partner
# has the first order with 1 yuan less, not the second, a third with a
# negative amount, and an order we never had.
cat > "$work/provider.csv" <<CSV
provider_txn,account_id,amount,paid_at
WX-1,$wallet,100.00,$today 09:00:00+08
WX-3,$wallet,50.00,$today 10:00:00+08
CSV
cat > "$work/partner.csv" <<CSV
order_no,energy_wh,total
${orders[0]},5900,6.37
${orders[2]},5900,-7.37
DIDI-9999,1200,1.50
CSV
# A certificate for 127.0.0.1, which the server's evcharge trusts through
# evcharge.http_ca_file, and the server.
start_statement_server "$work" "$work/provider.csv" "$work/partner.csv"
ok $? "a certificate for the loopback statement server"
ok $([ -n "$port" ]; echo $?) "the statement server listens on 127.0.0.1:$port"

q -d $db >/dev/null <<SQL
ALTER DATABASE $db SET evcharge.http_ca_file = '$work/cert.pem';
ALTER DATABASE $db SET evcharge.http_timeout = '2s';
INSERT INTO statement_source (operator_id, kind, partner_id, url_template, secret, name) VALUES
	(12, 'provider', NULL, 'https://127.0.0.1:$port/wxpay-12/provider/{day}.csv', '$secret', 'wxpay-12'),
	(12, 'partner', 8, 'https://127.0.0.1:$port/mapapp-8/partner/{day}.csv', '$secret', 'mapapp-8');
SQL

is "$(q -d $db -c "SELECT import_statement(1, '$today')")" 2 "the provider's statement is fetched over HTTPS, signed both ways"
is "$(q -d $db -c "SELECT string_agg(kind || ' ' || key || ' ' || action, '; ' ORDER BY kind, key) FROM reconcile_statement(1, '$today')")" \
	"credited_not_paid WX-2 ask the provider: credited here, not in its statement; paid_not_credited WX-3 credited to the wallet now" \
	"paid but not credited is found and credited, credited but not paid is reported"
is "$(q -d $db -c "SELECT balance FROM account WHERE account_id = $wallet")" 170.00 "the wallet holds WX-1, WX-2 and WX-3"
is "$(q -d $db -c "SELECT count(*) FROM reconcile_statement(1, '$today')")" 0 "reconciling again finds nothing new and credits nothing twice"
is "$(q -d $db -c "SELECT count(*) FROM verify_ledger()")" 0 "the ledger balances"

is "$(q -d $db -c "SELECT import_statement(2, '2026-11-20')")" 3 "the partner's statement is fetched"
is "$(q -d $db -c "SELECT string_agg(kind || ' ' || CASE key WHEN '${orders[0]}' THEN 'first' WHEN '${orders[1]}' THEN 'second' WHEN '${orders[2]}' THEN 'third' ELSE key END, '; ' ORDER BY kind, key) FROM reconcile_statement(2, '2026-11-20')")" \
	"amount_differs first; missing_at_partner second; missing_here DIDI-9999; negative_amount third" \
	"the partner's differences are listed by kind"

# What goes wrong on the way.  fetch ROUTE [SECRET] [SOURCE]: the statement
# of today from /SOURCE/ROUTE/, as import_statement fetches it.
err() { psql -X -q -tA -v VERBOSITY=verbose -d $db -c "$1" 2>&1 >/dev/null | head -3; }
fetch() {
	err "SELECT fetch_statement('${3:-wxpay-12}', '$today', 'https://127.0.0.1:$port/${3:-wxpay-12}/$1/{day}.csv', '${2:-$secret}')"
}
out=$(fetch tampered)
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q "28000.*is not signed for source \"wxpay-12\" and day $today"
ok $? "a body altered on the way is refused (28000)"
out=$(fetch replay)
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q "28000.*the statement from \"https://127.0.0.1:$port/wxpay-12/replay/$today.csv\" is not signed for source \"wxpay-12\" and day $today" &&
	echo "$out" | grep -q 'DETAIL:.*another day or source'
ok $? "yesterday's signed statement served as today's is refused (28000), saying it may be another day's"
out=$(fetch othersource)
echo "$out" | grep -q "28000.*is not signed for source \"wxpay-12\""
ok $? "another source's signed statement is refused (28000)"
out=$(fetch bodyonly)
echo "$out" | grep -q "28000.*is not signed for source"
ok $? "a statement signed over its body alone (release 0.1.0's signature) is refused"
out=$(fetch provider wrong-secret-wrong-secret)
echo "$out" | grep -q 'answered HTTP 401'
ok $? "a request signed with the wrong secret is refused by the server (HTTP 401)"
out=$(err "SELECT fetch_statement('wxpay-12', '$today', 'https://127.0.0.1:$port/nothing-here/{day}', '$secret')")
echo "$out" | grep -q 'answered HTTP 404'
ok $? "a missing statement is an error naming the status"
out=$(fetch slow)
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q 'timed out\|Timeout'
ok $? "a server that does not answer gives up after evcharge.http_timeout"

# Cancelled while waiting: the backend gives up at once, not at the timeout.
psql -X -q -d $db -c "SET evcharge.http_timeout = '60s'" \
	-c "SELECT fetch_statement('wxpay-12', '$today', 'https://127.0.0.1:$port/wxpay-12/slow/{day}.csv', '$secret')" >"$work/cancel.log" 2>&1 &
pc=$!
for _ in $(seq 1 50); do
	[ "$(q -d $db -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%/slow/%' AND pid <> pg_backend_pid()")" -ge 1 ] && break
	sleep 0.1
done
sleep 1
q -d $db -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%/slow/%' AND pid <> pg_backend_pid()" >/dev/null
for _ in $(seq 1 50); do kill -0 $pc 2>/dev/null || break; sleep 0.1; done
kill -0 $pc 2>/dev/null && { kill $pc; still=1; } || still=0
wait $pc 2>/dev/null
grep -q 'canceling statement due to user request' "$work/cancel.log"
ok $([ $still -eq 0 ] && grep -q 'canceling statement due to user request' "$work/cancel.log"; echo $?) \
	"a cancel stops a fetch within 5 s of a 60 s timeout"

# The nightly job: a broken source is recorded and does not stop the others;
# a replayed statement is a failed fetch too, never believed.
q -d $db >/dev/null <<SQL
INSERT INTO statement_source (operator_id, kind, url_template, secret, name) VALUES
	(12, 'provider', 'https://127.0.0.1:$port/tampered-12/tampered/{day}.csv', '$secret', 'tampered-12'),
	(12, 'provider', 'https://127.0.0.1:$port/replay-12/replay/{day}.csv', '$secret', 'replay-12');
SQL
is "$(q -d $db -c "SELECT string_agg(source_id || ':' || coalesce(lines::text, '-') || ':' || (error IS NOT NULL), ' ' ORDER BY source_id) FROM run_reconciliation('$today')")" \
	"1:2:false 2:3:false 3:-:true 4:-:true" "run_reconciliation() goes through every source; the broken one is recorded as fetch_failed"
is "$(q -d $db -c "SELECT kind || ' ' || key || ': ' || (theirs->>'error') FROM reconciliation_finding WHERE source_id = 4 AND day = '$today'")" \
	"fetch_failed statement: the statement from \"https://127.0.0.1:$port/replay-12/replay/$today.csv\" is not signed for source \"replay-12\" and day $today" \
	"the replayed statement is recorded as a failed fetch, with the reason"
is "$(q -d $db -c "SELECT count(*) FROM provider_statement_line WHERE source_id IN (3, 4)")" 0 "nothing of the refused statements is stored"

# Didi numbers each of our sessions its own way, 27 digits, passed to
# start_session; its statement of 21 November is keyed by those numbers
# (the server serves the partner file for every source's partner route).
q -d $db >/dev/null <<'SQL'
INSERT INTO partner (partner_id, operator_id, name, order_no_digits) VALUES (9, 12, 'Didi charging', 27);
CREATE FUNCTION pg_temp.charge(g int, o text) RETURNS void LANGUAGE sql AS $$
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, order_no)
	SELECT evcharge.gun_id('44200000120000100001', g), '2026-11-21 08:00+08'::timestamptz + i * interval '1 min',
	       (CASE WHEN i = 60 THEN 'idle' ELSE 'charging' END)::evcharge.gun_status, 200000 + least(i, 59) * 100, o
	FROM generate_series(0, 60) i;
	INSERT INTO evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh)
	VALUES (o, evcharge.gun_id('44200000120000100001', g), '2026-11-21 08:00+08', '2026-11-21 08:59+08', 5900);
$$;
SELECT pg_temp.charge(g, evcharge.start_session(evcharge.gun_id('44200000120000100001', g), NULL, 'partner', 9,
                                                '1202611210800' || lpad(g::text, 14, '0')))
FROM generate_series(1, 3) g;
SQL
is "$(q -d $db -c "SELECT string_agg(b.partner_order_no || ' ' || b.total, ', ' ORDER BY b.gun) FROM bill b JOIN charge_session cs USING (order_no) WHERE cs.partner_id = 9")" \
	"120261121080000000000000001 7.37, 120261121080000000000000002 7.37, 120261121080000000000000003 7.37" \
	"three Didi bills on 21 November, each with Didi's own number"
cat > "$work/partner.csv" <<CSV
order_no,energy_wh,total
120261121080000000000000001,5900,7.37
120261121080000000000000002,5900,7.37
120261121080000000000000003,5900,7.37
CSV
q -d $db >/dev/null <<SQL
INSERT INTO statement_source (operator_id, kind, partner_id, url_template, secret, name) VALUES
	(12, 'partner', 9, 'https://127.0.0.1:$port/didi-9/partner/{day}.csv', '$secret', 'didi-9');
SQL
didi=$(q -d $db -c "SELECT source_id FROM statement_source WHERE name = 'didi-9'")
is "$(q -d $db -c "SELECT import_statement($didi, '2026-11-21')")" 3 "Didi's statement of 21 November is fetched, keyed by Didi's numbers"
is "$(q -d $db -c "SELECT count(*) FROM reconcile_statement($didi, '2026-11-21')")" 0 \
	"Didi's statement keyed by its own numbers reconciles clean: no line missing on either side"
# What matching by our numbers alone found (release 0.2.0): each line
# missing here, each bill missing at Didi.
is "$(q -d $db -c "SELECT (SELECT count(*) FROM partner_statement_line l WHERE l.source_id = $didi
                           AND NOT EXISTS (SELECT 1 FROM bill b WHERE b.order_no = l.order_no)) || ' ' ||
                          (SELECT count(*) FROM bill b JOIN charge_session cs USING (order_no) WHERE cs.partner_id = 9
                           AND NOT EXISTS (SELECT 1 FROM partner_statement_line l WHERE l.source_id = $didi AND l.order_no = b.order_no))")" \
	"3 3" "by our order numbers alone, all three lines and all three bills would be missing"
done_testing
