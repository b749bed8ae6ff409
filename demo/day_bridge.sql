-- demo/day_bridge.sql: the day demo through the bridge, after
-- demo/day_load.sql and before demo/replay.js (demo/day.sh runs them in
-- turn).  Members of the operator who start some of the day's charges from
-- the app, paid from their wallets, which the payment provider tops up
-- first; which charges those are; and the tables the replay reports into.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET timezone = 'Asia/Shanghai';
SET search_path = "$user", public, evcharge;
SELECT op, day_start, day_end FROM demo_day.day \gset

-- What the replay sent, by kind: messages by action, refused piles, resends
-- and the like (demo/replay.js).
CREATE TABLE demo_day.replay_summary (kind text, what text, n bigint);

-- Four members with the app, each topped up with 300.00 by the payment
-- provider's callback (its transaction id is the key: a repeat moves
-- nothing).
INSERT INTO member (member_id, operator_id) SELECT m, :op FROM generate_series(2001, 2004) m;
SELECT count(*) AS topped_up FROM generate_series(2001, 2004) m,
	LATERAL top_up(member_wallet(m), 300.00, 'WX-DEMO-' || :op || '-' || m) \gset

-- The app starts: every tenth of the day's sessions that the pile recorded
-- once and that no defect touches, the members in turn.  The pile's order
-- number names the session in the traffic; order_no is the platform's, from
-- start_session(), and transaction_id the pile's, both filled in by the
-- replay.
CREATE TABLE demo_day.app_start AS
SELECT e.order_no AS pile_order_no, e.gun, e.started_at,
       2001 + ((row_number() OVER (ORDER BY e.started_at, e.gun) - 1) % 4)::int AS member_id,
       NULL::text AS order_no, NULL::int AS transaction_id
FROM (SELECT x.*, row_number() OVER (ORDER BY x.started_at, x.gun) AS k
      FROM demo_day.expected x WHERE x.record = 'once' AND x.notes = '') e
WHERE e.k % 10 = 0;
