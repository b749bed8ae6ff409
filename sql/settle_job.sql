-- The settle job under trouble: a bill whose posting is refused is left
-- final with a WARNING naming it, and the other bills of the batch are
-- settled (bills another session holds: specs/settle_deadlock.spec).
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'Shiqi bus depot');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name)
VALUES (1, 'AC', '00:00-24:00 flat | flat 0.8000+0.4500', '[2026-01-01,)', 'AC');
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware)
VALUES ('44200000120000100001', 1, 9, 7000, 'AC-2.3.1');
INSERT INTO member (member_id, operator_id) VALUES (501, 12), (502, 12), (503, 12);
SELECT count(top_up(member_wallet(m), 100.00, 'WX-' || m)) AS topped_up FROM generate_series(501, 503) m;
-- Three charges of 5 kWh (6.25 yuan each), ended, their pile records in:
-- three final bills.
INSERT INTO charge_session (order_no, gun, station_id, member_id, channel, state, started_at,
	charging_ended_at, occupied_until, last_ts)
SELECT 'J' || (m - 500), gun_id('44200000120000100001', m - 500), 1, m, 'app', 'ended', t, t + interval '1 hour',
       t + interval '1 hour', t + interval '1 hour'
FROM generate_series(501, 503) m, LATERAL (SELECT '2026-11-20 08:00+08'::timestamptz + (m - 500) * interval '1 hour' AS t) x;
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh)
SELECT order_no, gun, started_at, charging_ended_at, 5000 FROM charge_session ORDER BY order_no;
SELECT order_no, member_id, total, state FROM bill ORDER BY order_no;

-- The ledger refuses J2's posting (here a test trigger stands for any
-- error a posting can meet).
CREATE FUNCTION pg_temp.refuse_j2() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.idem_key = 'J2' THEN
		RAISE EXCEPTION 'posting of % refused for the test', NEW.idem_key USING ERRCODE = 'check_violation';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER refuse_j2 BEFORE INSERT ON ledger_txn FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse_j2();
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT * FROM settle_bills();
\set VERBOSITY terse
-- J1 and J3 are charged, J2 is still final and charged nothing.
SELECT order_no, state, (SELECT count(*) FROM ledger_txn t WHERE t.kind = 'bill' AND t.idem_key = b.order_no) AS postings
FROM bill b ORDER BY order_no;
SELECT owner_id, balance FROM account WHERE kind = 'member_wallet' ORDER BY owner_id;
-- Once the posting is accepted again, the next run settles it.
DROP TRIGGER refuse_j2 ON ledger_txn;
SELECT * FROM settle_bills();
SELECT order_no, state FROM bill ORDER BY order_no;
SELECT count(*) AS discrepancies FROM verify_ledger();

\i sql/include/reset.sql
