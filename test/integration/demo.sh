# The demo's SQL runs on a fresh database and reads what it should: every
# raw id is either accepted or quarantined with its reason, none is lost;
# the tariff demo prices its charges and refuses the one with no plan.
source "$(dirname "$0")/lib/tap.sh"
plan 16
db=evcharge_it_demo
fresh_db $db
q -d $db -f "$EV_ROOT/demo/ids.sql" >/dev/null
ok $? "demo/ids.sql runs"
is "$(q -d $db -c "SELECT (SELECT count(*) FROM demo.pile) + (SELECT count(*) FROM demo.gun) + (SELECT count(*) FROM demo.quarantine) = (SELECT count(*) FROM demo.raw_id)")" t \
	"every raw id is accepted or quarantined"
is "$(q -d $db -c "SELECT count(*) FROM demo.quarantine")" 12 "the 12 bad ids are quarantined"
is "$(q -d $db -c "SELECT count(*) FROM demo.quarantine WHERE sqlstate <> '22P02' OR detail IS NULL")" 0 \
	"each with SQLSTATE 22P02 and a detail"
out=$(q -d $db -f "$EV_ROOT/demo/tariffs.sql" 2>&1)
ok $? "demo/tariffs.sql runs"
echo "$out" | grep -qF 'a bus, DC, 13:00-15:00, 60 kWh|60.000|50.10|24.00|0.00|0.00|74.10|'
ok $? "the bus pays its group service fee: 50.10 + 24.00 = 74.10"
echo "$out" | grep -q 'refused (EV001): no tariff in force for station 2 (AC) at 2025-12-31 23:00:00 Asia/Shanghai'
ok $? "a charge before the first plan is refused with EV001"

# The day: generated traffic with its defects, replayed through the pipeline.
"$EV_ROOT/demo/day.sh" --copy $db >/dev/null
ok $? "demo/day.sh --copy builds the generator and replays a day by COPY"
is "$(q -d $db -c "SELECT count(*) FILTER (WHERE b.energy_wh = e.energy_wh) || '/' || count(*) FROM demo_day.expected e LEFT JOIN evcharge.bill b USING (order_no) WHERE e.record <> 'lost'")" \
	"$(q -d $db -c "SELECT count(*) || '/' || count(*) FROM demo_day.expected WHERE record <> 'lost'")" \
	"every session whose record came is billed exactly as metered, defects notwithstanding"
is "$(q -d $db -c "SELECT count(*) FROM evcharge.charge_session s WHERE s.station_id BETWEEN 101 AND 199 AND NOT EXISTS (SELECT 1 FROM demo_day.expected e WHERE e.order_no = s.order_no)")" 0 \
	"no session the ground truth does not know (late and repeated lines make none)"
is "$(q -d $db -c "SELECT count(*) FROM evcharge.network_incident WHERE station_id BETWEEN 101 AND 199")" \
	"$(q -d $db -c "SELECT count FROM demo_day.summary WHERE kind = 'network_incident'")" \
	"the station-wide outage is reported as one network incident"
is "$(q -d $db -c "SELECT count(*) FROM evcharge.charge_session s WHERE s.station_id BETWEEN 101 AND 199 AND s.state = 'ended' AND NOT EXISTS (SELECT 1 FROM evcharge.bill b WHERE b.order_no = s.order_no)")" \
	0 "every ended session has a bill"
is "$(q -d $db -c "SELECT count(*) FROM evcharge.bill b JOIN demo_day.expected e USING (order_no) WHERE e.record = 'lost' AND b.state = 'held' AND b.anomalies && '1+2' AND b.energy_source = 'heartbeats'")" \
	"$(q -d $db -c "SELECT count FROM demo_day.summary WHERE kind = 'record_lost'")" \
	"the sessions whose record was never sent are billed from heartbeats and held as lost (1 or 2)"
is "$(q -d $db -c "SELECT (SELECT sum(total) FROM evcharge.bill WHERE station_id BETWEEN 101 AND 199 AND state = 'settled') = (SELECT sum(balance) FROM evcharge.account WHERE operator_id = 20 AND kind LIKE 'revenue_%') AND (SELECT count(*) FROM evcharge.verify_ledger()) = 0")" t \
	"the day's settled bills are the operator's revenue in the ledger, to the fen, and the ledger balances"
is "$(q -d $db -c "SELECT (SELECT sum(r.total) FROM generate_series((SELECT min(ended_at) FROM evcharge.bill WHERE station_id BETWEEN 101 AND 199)::date - 1, (SELECT max(ended_at) FROM evcharge.bill WHERE station_id BETWEEN 101 AND 199)::date + 1, interval '1 day') d, evcharge.daily_report(20, d::date) r WHERE r.line = 'total') = (SELECT sum(total) FROM evcharge.bill WHERE station_id BETWEEN 101 AND 199 AND state = 'settled')")" t \
	"daily_report() over the demo's days adds up to its settled bills, to the fen"
"$EV_ROOT/demo/day.sh" --copy $db >/dev/null
ok $? "the day replays a second time over its own data (bills, revisions and ledger taken out first)"
done_testing
