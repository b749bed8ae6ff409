-- demo/day_load.sql: the first part of the day demo, for both of its
-- replays.  Loads what bench/trafficgen wrote into the directory :gen_dir
-- (registry, heartbeats, pile records, their arrival, the ground truth) into
-- the schema demo_day, takes the demo's earlier data out, registers the
-- operator, stations, plans and piles, and works out the 5-minute step each
-- heartbeat line and pile record reaches the platform in.  Then
-- demo/day_copy.sql replays the day by COPY, or demo/replay.js through the
-- bridge (demo/day.sh), and demo/day_report.sql shows what came of it.
--
--   psql -v gen_dir=DIR -d evcharge -f demo/day_load.sql
--
-- Runs after demo/ids.sql and demo/tariffs.sql: its operator (20) and
-- stations (101+) are not theirs.  Run again, it replaces its own data only.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET timezone = 'Asia/Shanghai';
SET search_path = "$user", public, evcharge;

\if :{?gen_dir}
\else
	\warn 'demo/day_load.sql: give the generator''s directory: psql -v gen_dir=DIR -f demo/day.sql'
	DO $$ BEGIN RAISE EXCEPTION 'gen_dir is not set'; END $$;
\endif

-- What the generator wrote, as it wrote it.  n: the line number, the order
-- of arrival.
DROP SCHEMA IF EXISTS demo_day CASCADE;
CREATE SCHEMA demo_day;
CREATE TABLE demo_day.operator_in (operator_id bigint, name text);
CREATE TABLE demo_day.station_in (station_id bigint, operator_id bigint, name text, tz text, region_code int);
CREATE TABLE demo_day.tariff_in (station_id bigint, current_type text, tariff text, valid text, name text);
CREATE TABLE demo_day.pile_in (pile_id text, station_id bigint, gun_count int, rated_power_w int, firmware text);
CREATE TABLE demo_day.heartbeat_in (n bigserial PRIMARY KEY, gun text, ts timestamptz, status text, meter_wh bigint,
	power_w int, soc smallint, fault_code smallint, order_no text, step timestamptz);
CREATE TABLE demo_day.record_in (n bigserial PRIMARY KEY, order_no text, gun text, started_at timestamptz,
	ended_at timestamptz, energy_wh bigint, stop_reason text, step timestamptz);
CREATE TABLE demo_day.arrival_in (line bigint PRIMARY KEY, arrived_at timestamptz);
CREATE TABLE demo_day.expected (gun text, order_no text, channel text, started_at timestamptz, ended_at timestamptz,
	energy_wh bigint, unplugged_at timestamptz, started_by text, record text, meter_start_wh bigint,
	meter_end_wh bigint, stop text, notes text);
CREATE TABLE demo_day.summary (n serial, kind text, count bigint, detail text);

-- \copy takes no variables; a variable holding the whole command does.
\set f :gen_dir '/operator.copy'
\set cmd '\\copy demo_day.operator_in FROM ' :'f'
:cmd
\set f :gen_dir '/station.copy'
\set cmd '\\copy demo_day.station_in FROM ' :'f'
:cmd
\set f :gen_dir '/station_tariff.copy'
\set cmd '\\copy demo_day.tariff_in FROM ' :'f'
:cmd
\set f :gen_dir '/pile.copy'
\set cmd '\\copy demo_day.pile_in FROM ' :'f'
:cmd
\set f :gen_dir '/heartbeat.copy'
\set cmd '\\copy demo_day.heartbeat_in (gun, ts, status, meter_wh, power_w, soc, fault_code, order_no) FROM ' :'f'
:cmd
\set f :gen_dir '/pile_record.copy'
\set cmd '\\copy demo_day.record_in (order_no, gun, started_at, ended_at, energy_wh, stop_reason) FROM ' :'f'
:cmd
\set f :gen_dir '/pile_record_arrival.tsv'
\set cmd '\\copy demo_day.arrival_in FROM ' :'f' ' WITH (HEADER)'
:cmd
\set f :gen_dir '/sessions_expected.tsv'
\set cmd '\\copy demo_day.expected FROM ' :'f' ' WITH (HEADER)'
:cmd
\set f :gen_dir '/summary.tsv'
\set cmd '\\copy demo_day.summary (kind, count, detail) FROM ' :'f' ' WITH (HEADER)'
:cmd

-- The day: from the local midnight before the first heartbeat to the
-- 5-minute step after the last.
SELECT (SELECT operator_id FROM demo_day.operator_in LIMIT 1) AS op,
       date_trunc('day', min(ts)) AS day_start,
       date_trunc('day', min(ts)) + ceil(extract(epoch FROM max(ts) - date_trunc('day', min(ts))) / 300) * interval '5 min' AS day_end
FROM demo_day.heartbeat_in \gset
CREATE TABLE demo_day.day AS SELECT :op::bigint AS op, :'day_start'::timestamptz AS day_start, :'day_end'::timestamptz AS day_end;

-- Run again: take this demo's data out first (its operator's guns and
-- stations).  Bill revisions are an audit trail whose trigger refuses
-- deletes: the demo's own go with triggers off for this transaction.
BEGIN;
SET LOCAL session_replication_role = replica;
DELETE FROM customer_notice WHERE order_no IN (SELECT order_no FROM bill WHERE station_id IN (SELECT station_id FROM demo_day.station_in));
DELETE FROM bill_revision WHERE order_no IN (SELECT order_no FROM bill WHERE station_id IN (SELECT station_id FROM demo_day.station_in));
DELETE FROM stop_request WHERE order_no IN (SELECT order_no FROM charge_session WHERE station_id IN (SELECT station_id FROM demo_day.station_in));
DELETE FROM refund WHERE account_id IN (SELECT account_id FROM account WHERE operator_id = :op);
DELETE FROM ledger_entry WHERE txn_id IN (SELECT txn_id FROM ledger_txn WHERE operator_id = :op);
DELETE FROM ledger_txn WHERE operator_id = :op;
DELETE FROM account WHERE operator_id = :op;
COMMIT;
DELETE FROM bill WHERE station_id IN (SELECT station_id FROM demo_day.station_in);
DELETE FROM charge_session WHERE station_id IN (SELECT station_id FROM demo_day.station_in);
DELETE FROM pile_record WHERE operator_code(gun) = :op;
DELETE FROM heartbeat WHERE operator_code(gun) = :op;
DELETE FROM quarantine WHERE operator_code(gun) = :op;
DELETE FROM gun_state WHERE operator_code(gun) = :op;
DELETE FROM fault_event WHERE operator_code(gun) = :op;
DELETE FROM offline_period WHERE operator_code(gun) = :op;
DELETE FROM network_incident WHERE station_id IN (SELECT station_id FROM demo_day.station_in);
DELETE FROM ocpp_command WHERE operator_code(pile_id) = :op;
DELETE FROM ocpp_transaction WHERE operator_code(pile_id) = :op;
DELETE FROM ocpp_connection WHERE operator_code(pile_id) = :op;
DELETE FROM pile WHERE station_id IN (SELECT station_id FROM demo_day.station_in);
DELETE FROM occupancy_fee WHERE station_id IN (SELECT station_id FROM demo_day.station_in);
DELETE FROM station_tariff WHERE station_id IN (SELECT station_id FROM demo_day.station_in);
DELETE FROM station WHERE station_id IN (SELECT station_id FROM demo_day.station_in);
DELETE FROM anomaly_policy WHERE operator_id = :op;
DELETE FROM finance_policy WHERE operator_id = :op;
DELETE FROM member WHERE operator_id = :op;
DELETE FROM operator WHERE operator_id = :op;

-- The registry, and an occupancy fee at every station (15 min free, then
-- 0.50 a minute up to 30.00).
INSERT INTO operator (operator_id, name) SELECT operator_id, name FROM demo_day.operator_in;
INSERT INTO station (station_id, operator_id, name, tz, region_code) SELECT * FROM demo_day.station_in;
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name)
SELECT station_id, current_type, tariff::tou_tariff, valid::tstzrange, name FROM demo_day.tariff_in;
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware)
SELECT pile_id::pile_id, station_id, gun_count, rated_power_w, firmware FROM demo_day.pile_in;
INSERT INTO occupancy_fee (station_id, grace_minutes, fee_per_minute, cap)
SELECT station_id, 15, 0.50, 30.00 FROM demo_day.station_in;
SELECT created AS partitions_made FROM maintain_partitions(:'day_start'::timestamptz + interval '12 hours') \gset

-- The step each line reaches the platform in: a heartbeat goes with the
-- first step after every line before it (a line sent late travels with the
-- later lines around it); a pile record at the step after its arrival
-- (NULL: after the day).  Both replays, by COPY and through the bridge,
-- send what this says.
WITH seen AS (SELECT n, max(ts) OVER (ORDER BY n) AS upto FROM demo_day.heartbeat_in)
UPDATE demo_day.heartbeat_in h
SET step = :'day_start'::timestamptz
           + greatest(1, ceil(extract(epoch FROM s.upto - :'day_start'::timestamptz) / 300)) * interval '5 min'
FROM seen s WHERE s.n = h.n;
CREATE INDEX ON demo_day.heartbeat_in (step);
UPDATE demo_day.record_in r
SET step = CASE WHEN a.arrived_at > :'day_end' THEN NULL
                ELSE :'day_start'::timestamptz
                     + greatest(1, ceil(extract(epoch FROM a.arrived_at - :'day_start'::timestamptz) / 300)) * interval '5 min' END
FROM demo_day.arrival_in a WHERE a.line = r.n;
-- What the replay did per step, and what the lost-bill job found at the end.
CREATE TABLE demo_day.sweep (at timestamptz, heartbeats bigint, records bigint, went_offline int, incidents int);
CREATE TABLE demo_day.lost (sessions_closed bigint, starts_cancelled bigint, bills_lost bigint);
