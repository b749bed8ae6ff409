-- pgTAP: the pipeline's catalogue entries, and start_session over many
-- starts.
BEGIN;
SELECT plan(18);
SET LOCAL search_path = public, evcharge;
SET LOCAL timezone = 'Asia/Shanghai';

SELECT has_table('evcharge', t, format('table %s exists', t))
FROM unnest(ARRAY['pile', 'heartbeat', 'quarantine', 'gun_state', 'offline_period', 'network_incident',
                  'charge_session', 'pile_record', 'bill', 'fault_event']) t;

-- The triggers take whole batches: statement level, with a transition table.
SELECT results_eq(
	$$SELECT tgrelid::regclass::text COLLATE "default", tgname::text COLLATE "default",
	         (tgtype & 1) = 0 AS per_statement, tgnewtable::text COLLATE "default"
	  FROM pg_trigger WHERE tgrelid IN ('evcharge.heartbeat'::regclass, 'evcharge.pile_record'::regclass)
	    AND NOT tgisinternal AND tgparentid = 0 ORDER BY 1$$,
	$$VALUES ('heartbeat', 'heartbeat_ingest', true, 'new_rows'),
	         ('pile_record', 'pile_record_ingest', true, 'new_rows')$$,
	'heartbeat and pile_record have statement-level AFTER INSERT triggers with a transition table');
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
           WHERE p.pronamespace = 'evcharge'::regnamespace AND p.prosecdef), NULL,
          'no evcharge function is SECURITY DEFINER');
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
           WHERE p.pronamespace = 'evcharge'::regnamespace
             AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')
             AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)),
          NULL, 'every PL/pgSQL function of evcharge runs with a fixed search_path');
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
           WHERE p.pronamespace = 'evcharge'::regnamespace
             AND p.proname IN ('start_session', 'finalise_bill', 'try_finalise_bill', 'sweep_offline',
                               'maintain_partitions', 'schedule_jobs', 'replay_quarantine')
             AND (p.provolatile <> 'v' OR p.proparallel <> 'u')),
          NULL, 'functions that write are VOLATILE PARALLEL UNSAFE');

-- start_session: every channel, order numbers of 20 digits, all distinct.
INSERT INTO operator VALUES (90, 'tap');
INSERT INTO station (station_id, operator_id, name) VALUES (90, 90, 'tap');
INSERT INTO pile VALUES ('44200000900000100001', 90, 999, 7000, NULL), ('44200000900000100002', 90, 6, 7000, NULL);
-- The members who start (start_session refuses a member the operator does not have).
INSERT INTO member (member_id, operator_id) SELECT m, 90 FROM generate_series(1, 999) m
UNION ALL SELECT 7000 + n, 90 FROM generate_series(1, 6) n;
CREATE TEMP TABLE started AS
SELECT c, start_session(gun_id('44200000900000100002', n::int), 7000 + n, c) AS order_no
FROM unnest(ARRAY['app', 'qr', 'card', 'password', 'vin', 'partner']) WITH ORDINALITY AS u(c, n);
SELECT is((SELECT array_agg(s.channel ORDER BY s.channel) FROM started t JOIN charge_session s USING (order_no)),
          ARRAY['app', 'card', 'partner', 'password', 'qr', 'vin'], 'each start channel is recorded');
INSERT INTO started SELECT 'app', start_session(gun_id('44200000900000100001', n), n, 'app') FROM generate_series(1, 999) n;
SELECT is((SELECT count(DISTINCT order_no)::int FROM started), 1005, '1005 starts, 1005 distinct order numbers');
SELECT is((SELECT count(*)::int FROM started WHERE order_no !~ '^\d{20}$'), 0, 'every order number has 20 digits');
SELECT is((SELECT count(*)::int FROM started
           WHERE left(order_no, 8) <> to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD')), 0,
          'order numbers begin with the station''s local date');

SELECT * FROM finish();
ROLLBACK;
