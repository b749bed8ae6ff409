# The update to 0.2.0 and the time zones 0.1.0 let in: a 0.1.0 database whose
# station, books or statement source holds a POSIX offset ('UTC+8', read as
# UTC-8) does not update silently; the update stops, names every such row
# and changes nothing; once the rows hold zone names it goes through and the
# zones are of the domain time_zone.
source "$(dirname "$0")/lib/tap.sh"
plan 6
db=evcharge_it_upgrade_tz
q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null 2>&1
trap 'q -d postgres -c "DROP DATABASE IF EXISTS '$db' WITH (FORCE)" >/dev/null 2>&1' EXIT

# The 0.1.0 library's is_time_zone accepted these; the library installed now
# is 0.2.0's, whose is_time_zone refuses them, so the rows are written past
# 0.1.0's checks (dropped, then put back NOT VALID), as 0.1.0 let them in.
q -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge VERSION '0.1.0' CASCADE" >/dev/null
q -d $db >/dev/null <<'SQL'
SET session_replication_role = replica;
INSERT INTO evcharge.operator VALUES (12, 'Zhongshan Charging Co.');
ALTER TABLE evcharge.finance_policy DROP CONSTRAINT finance_policy_tz_check;
INSERT INTO evcharge.finance_policy (operator_id, tz) VALUES (12, '+08:00');
ALTER TABLE evcharge.finance_policy ADD CONSTRAINT finance_policy_tz_check CHECK (evcharge.is_time_zone(tz)) NOT VALID;
ALTER TABLE evcharge.station DROP CONSTRAINT station_tz_check;
INSERT INTO evcharge.station (station_id, operator_id, name, tz) VALUES
	(1, 12, 'Shiqi bus depot', 'UTC+8'), (2, 12, 'Xiaolan public', 'Asia/Shanghai');
ALTER TABLE evcharge.station ADD CONSTRAINT station_tz_check CHECK (evcharge.is_time_zone(tz)) NOT VALID;
SQL

out=$(q -d $db -c "SET client_min_messages = warning" -c "ALTER EXTENSION evcharge UPDATE" 2>&1)
rc=$?
ok $((rc == 0)) "the update stops while station 1 holds 'UTC+8' and operator 12's books '+08:00'"
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q "cannot update evcharge to 0.2.0: 2 row(s) hold a time zone that 0.2.0 refuses" &&
	echo "$out" | grep -q "station 1 (tz 'UTC+8')" && echo "$out" | grep -q "finance_policy of operator 12 (tz '+08:00')"
ok $? "its message names both rows and their zones"
is "$(q -d $db -c "SELECT extversion FROM pg_extension WHERE extname = 'evcharge'")" 0.1.0 "nothing changed: still 0.1.0"

q -d $db -c "UPDATE evcharge.station SET tz = 'Asia/Shanghai' WHERE station_id = 1" \
	-c "UPDATE evcharge.finance_policy SET tz = 'Asia/Shanghai' WHERE operator_id = 12" >/dev/null
q -d $db -c "SET client_min_messages = warning" -c "ALTER EXTENSION evcharge UPDATE" >/dev/null 2>&1
ok $? "with zone names in the rows, the update goes through"
is "$(q -d $db -c "SELECT string_agg(c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, NULL), ', ' ORDER BY c.relname)
	FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	WHERE c.relnamespace = 'evcharge'::regnamespace AND c.relkind = 'r' AND a.attname = 'tz'")" \
	"finance_policy.tz evcharge.time_zone, statement_source.tz evcharge.time_zone, station.tz evcharge.time_zone" \
	"every stored zone is a time_zone"
q -d $db -c "UPDATE evcharge.station SET tz = 'UTC+8' WHERE station_id = 2" >/dev/null 2>&1
ok $((! $?)) "and 'UTC+8' is refused from then on"
done_testing
