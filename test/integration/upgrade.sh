# The upgrade path, from every earlier release: a database made with release
# R (its install script as it shipped, sql/release/evcharge--R.sql) and
# loaded the way R's users did (R's demo: ids, tariffs, a generated day
# through the pipeline, money; frozen in test/integration/upgrade/*-R.sql),
# then ALTER EXTENSION evcharge UPDATE (PostgreSQL follows the chain of
# sql/upgrade/ scripts):
#   - the catalogue (test/integration/lib/catalogue.sql) equals a fresh
#     install of the current version, line for line;
#   - every row that was there is there unchanged (an md5 per table over the
#     columns R had);
#   - the ledger verifies, and the current demo day runs on it and bills
#     exactly as on a fresh install.
# Every change to the extension's SQL must come with its part of the upgrade
# script, or this test fails.
source "$(dirname "$0")/lib/tap.sh"
releases=(0.1.0 0.2.0)
plan $((12 * ${#releases[@]}))
new=evcharge_up_new
dir=$EV_ROOT/test/integration/upgrade
version=$(sed -nE "s/^default_version = '(.*)'/\1/p" "$EV_ROOT/evcharge.control")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fresh() {
	q -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null 2>&1
	q -d "$1" -c "ALTER DATABASE $1 SET search_path = \"\$user\", public, evcharge" >/dev/null
}
bills() {
	q -d "$1" -c "SELECT md5(string_agg(concat_ws(' ', b.order_no, b.state, b.energy_wh, b.energy_fee, b.service_fee, b.occupancy_fee, b.total, b.anomalies), E'\n' ORDER BY b.order_no))
		FROM evcharge.bill b JOIN evcharge.station s USING (station_id) WHERE s.operator_id = 20"
}

# The generator of today (its output format is every release's).
cc -O2 -Wall -Wextra -Werror -o "$tmp/trafficgen" "$EV_ROOT/bench/trafficgen/trafficgen.c"
"$tmp/trafficgen" --quiet --out "$tmp/day"

# A fresh install of the current version, with today's demo day.
fresh $new
q -d $new -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge CASCADE" >/dev/null
psql -X -q -d $new -f "$EV_ROOT/test/integration/lib/catalogue.sql" >"$tmp/cat_new.txt"
psql -X -q -v ON_ERROR_STOP=1 -v gen_dir="$tmp/day" -d $new -f "$EV_ROOT/demo/day.sql" >"$tmp/day-new.log" 2>&1
new_ran=$?

for r in "${releases[@]}"; do
	old=evcharge_up_${r//./_}
	fresh $old
	q -d $old -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge VERSION '$r' CASCADE" >/dev/null
	is "$(q -d $old -c "SELECT extversion FROM pg_extension WHERE extname = 'evcharge'")" "$r" "release $r installs from its own script"

	loaded=0
	{
		psql -X -q -v ON_ERROR_STOP=1 -d $old -f "$dir/ids-$r.sql" &&
		psql -X -q -v ON_ERROR_STOP=1 -d $old -f "$dir/tariffs-$r.sql" &&
		psql -X -q -v ON_ERROR_STOP=1 -v gen_dir="$tmp/day" -d $old -f "$dir/day-$r.sql" &&
		psql -X -q -v ON_ERROR_STOP=1 -d $old -f "$dir/money-$r.sql"
	} >"$tmp/load-$r.log" 2>&1 || loaded=1
	ok $loaded "the $r demo day and money load into $r"
	# Three more bills of another operator, for the breakdown the update
	# works out: one plan (it can), a promotion, a change of plan (it
	# cannot: left NULL).
	psql -X -q -v ON_ERROR_STOP=1 -d $old >>"$tmp/load-$r.log" 2>&1 <<'SQL'
SET timezone = 'Asia/Shanghai';
INSERT INTO evcharge.operator (operator_id, name) VALUES (98, 'upgrade: bills to break down');
INSERT INTO evcharge.station (station_id, operator_id, name) VALUES (98, 98, 'upgrade breakdown');
INSERT INTO evcharge.station_tariff (station_id, current_type, tariff, valid, name) VALUES
	(98, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500', '[2026-01-01,2026-11-21)', 'old'),
	(98, 'AC', '00:00-24:00 flat | flat 0.8000+0.5000', '[2026-11-21,)', 'winter');
INSERT INTO evcharge.promotion (operator_id, name, valid, service_factor)
VALUES (98, 'half service', '[2026-11-20 12:00,2026-11-20 14:00)', 0.5);
INSERT INTO evcharge.promotion_station SELECT promotion_id, 98 FROM evcharge.promotion WHERE operator_id = 98;
INSERT INTO evcharge.pile (pile_id, station_id, gun_count, rated_power_w) VALUES ('44200000980000100001', 98, 3, 22000);
INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, order_no)
SELECT evcharge.gun_id('44200000980000100001', c.g), c.t0 + i * interval '5 min',
       (CASE WHEN i = 13 THEN 'idle' ELSE 'charging' END)::evcharge.gun_status, 300000 + least(i, 12) * 250,
       CASE WHEN i < 13 THEN c.o END
FROM (VALUES (1, 'UP-PLAIN', '2026-11-20 07:30'::timestamptz), (2, 'UP-PROMO', '2026-11-20 12:30'),
             (3, 'UP-CROSS', '2026-11-20 23:30')) c(g, o, t0), generate_series(0, 13) i;
INSERT INTO evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh)
SELECT c.o, evcharge.gun_id('44200000980000100001', c.g), c.t0, c.t0 + interval '1 hour', 3000
FROM (VALUES (1, 'UP-PLAIN', '2026-11-20 07:30'::timestamptz), (2, 'UP-PROMO', '2026-11-20 12:30'),
             (3, 'UP-CROSS', '2026-11-20 23:30')) c(g, o, t0);
SQL
	is "$(q -d $old -c "SELECT string_agg(order_no || ' ' || total || ' ' || array_to_string(applied, ','), '; ' ORDER BY order_no) FROM evcharge.bill WHERE order_no LIKE 'UP-%'")" \
		"UP-CROSS 3.67 plan: old,plan: winter; UP-PLAIN 2.85 plan: old; UP-PROMO 2.77 plan: old,promotion: half service" \
		"release $r bills three more charges: one plan, a promotion, a change of plan"
	[ $loaded -eq 0 ] || tail -20 "$tmp/load-$r.log" | sed 's/^/# /'
	q -d $old -c "SELECT count(*) FROM evcharge.bill" -c "SELECT count(*) FROM evcharge.ledger_entry" |
		tr '\n' ' ' | sed "s/^/# bills and ledger entries in $r: /"; echo
	psql -X -q -d $old -v save=1 -f "$EV_ROOT/test/integration/lib/digest.sql" >"$tmp/before-$r.txt"

	rc=0
	q -d $old -c "SET client_min_messages = warning" -c "ALTER EXTENSION evcharge UPDATE" >"$tmp/update-$r.log" 2>&1 || rc=$?
	ok $rc "ALTER EXTENSION evcharge UPDATE from $r"
	[ $rc -eq 0 ] || sed 's/^/# /' "$tmp/update-$r.log"
	is "$(q -d $old -c "SELECT extversion FROM pg_extension WHERE extname = 'evcharge'")" "$version" "the database from $r is at $version"

	psql -X -q -d $old -f "$EV_ROOT/test/integration/lib/catalogue.sql" >"$tmp/cat-$r.txt"
	diff "$tmp/cat_new.txt" "$tmp/cat-$r.txt" >"$tmp/cat-$r.diff"
	ok $? "from $r: the upgraded catalogue equals a fresh $version install ($(wc -l <"$tmp/cat_new.txt") lines)"
	head -60 "$tmp/cat-$r.diff" | sed 's/^/# /'

	psql -X -q -d $old -v cols=saved -f "$EV_ROOT/test/integration/lib/digest.sql" >"$tmp/after-$r.txt"
	diff "$tmp/before-$r.txt" "$tmp/after-$r.txt" >"$tmp/data-$r.diff"
	ok $? "from $r: every table's rows are unchanged by the update ($(wc -l <"$tmp/before-$r.txt") tables)"
	sed 's/^/# /' "$tmp/data-$r.diff" | head -20

	is "$(q -d $old -c "SELECT count(*) FROM evcharge.verify_ledger()")" 0 "from $r: verify_ledger() finds nothing after the update"

	# The bills made before the update get their breakdown where price()
	# over their Wh per class gives it exactly (one plan, no group price or
	# promotion, the same fees): it is what compute_bill gives them today.
	q -d $old -c "SELECT count(*), count(breakdown) FROM evcharge.bill" | tr '\n' ' ' | sed "s/^/# bills from $r, and those with a breakdown after the update: /"; echo
	is "$(q -d $old -c "SELECT count(b.breakdown) > 0, count(*) FILTER (WHERE b.breakdown IS DISTINCT FROM c.breakdown
	                                                    AND (b.breakdown IS NOT NULL OR (
	                                                         (SELECT count(DISTINCT a) FROM unnest(b.applied) a WHERE a LIKE 'plan: %') = 1
	                                                         AND NOT EXISTS (SELECT 1 FROM unnest(b.applied) a
	                                                                         WHERE a LIKE 'group: %' OR a LIKE 'promotion: %' OR a LIKE 'no tariff%'))))
		FROM evcharge.bill b CROSS JOIN LATERAL evcharge.compute_bill(b.order_no, 'recompute') c
		WHERE (c.wh_by_class, c.energy_fee, c.service_fee) = (b.wh_by_class, b.energy_fee, b.service_fee)")" "t|0" \
		"from $r: the update fills each old single-plan bill's breakdown with what compute_bill gives it today, and no other"
	is "$(q -d $old -c "SELECT string_agg(order_no || ' ' || coalesce(breakdown::text, 'NULL'), '; ' ORDER BY order_no) FROM evcharge.bill WHERE order_no LIKE 'UP-%'")" \
		'UP-CROSS NULL; UP-PLAIN [{"wh": 1500, "class": "flat", "energy_fee": 1.05, "service_fee": 0.68, "energy_fee_exact": 1.05, "service_fee_exact": 0.675}, {"wh": 1500, "class": "valley", "energy_fee": 0.45, "service_fee": 0.67, "energy_fee_exact": 0.45, "service_fee_exact": 0.675}]; UP-PROMO NULL' \
		"from $r: a bill under a promotion or over a change of plan keeps no breakdown (NULL); a single-plan one gets it, adding up to its fees"

	# The current demo day, on the upgraded database and on the fresh one:
	# the same bills, to the fen.
	ran=$new_ran
	psql -X -q -v ON_ERROR_STOP=1 -v gen_dir="$tmp/day" -d $old -f "$EV_ROOT/demo/day.sql" >"$tmp/day-$r.log" 2>&1 || ran=1
	ok $ran "from $r: today's demo day runs on the upgraded database and on a fresh one"
	[ $ran -eq 0 ] || tail -n 20 "$tmp/day-new.log" "$tmp/day-$r.log" | sed "s/^/# /"
	is "$(bills $old)" "$(bills $new)" "from $r: the upgraded database bills today's day exactly as a fresh install"
	[ -n "${KEEP:-}" ] || q -d postgres -c "DROP DATABASE IF EXISTS $old WITH (FORCE)" >/dev/null 2>&1
done

[ -n "${KEEP:-}" ] || q -d postgres -c "DROP DATABASE IF EXISTS $new WITH (FORCE)" >/dev/null 2>&1
done_testing
