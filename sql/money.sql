-- Money: the ledger, top-ups, manual credits, settlement of bills to the
-- right wallet and sub-operator, adjustments, refunds, partner limits.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'Shiqi bus depot'), (2, 12, 'Xiaolan public');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name)
SELECT s, 'AC', '00:00-24:00 flat | flat 0.8000+0.4500', '[2026-01-01,)', 'AC' FROM generate_series(1, 2) s;
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('44200000120000100001', 1, 9, 7000, 'AC-2.3.1'),
	('44200000120000100002', 2, 9, 7000, 'AC-2.3.1');
SELECT created FROM maintain_partitions('2026-11-20 12:00+08');
-- A bus company's department pays for its drivers; the bus company is a
-- sub-operator, and so is the owner of station 2; one taxi's VIN is the
-- taxi company's.
INSERT INTO customer_group (group_id, operator_id, name, pays_for_members) VALUES (5, 12, 'Bus company', true);
INSERT INTO sub_operator VALUES (31, 12, 'Bus company'), (32, 12, 'Station 2 owner'), (33, 12, 'Taxi company');
INSERT INTO attribution (sub_operator_id, group_id) VALUES (31, 5);
INSERT INTO attribution (sub_operator_id, station_id) VALUES (32, 2);
INSERT INTO attribution (sub_operator_id, vin) VALUES (33, 'LTAXI000000000001');
INSERT INTO member (member_id, operator_id, group_id, vin) VALUES
	(501, 12, NULL, NULL), (502, 12, 5, NULL), (503, 12, NULL, 'LTAXI000000000001');
INSERT INTO partner (partner_id, operator_id, name, kind, credit_limit) VALUES
	(7, 12, 'Ride app (prepaid)', 'prepaid', NULL), (8, 12, 'Map app (affiliated)', 'affiliated', 10.00);

-- 1. Top-ups, as the provider's callback sends them: once per provider
-- transaction id, however often it is sent.
SELECT member_wallet(501) AS w501 \gset
SELECT txn_id IS NOT NULL AS posted, balance, replayed FROM top_up(:w501, 100.00, 'WX-0001');
SELECT txn_id IS NOT NULL AS posted, balance, replayed FROM top_up(:w501, 100.00, 'WX-0001');
SELECT txn_id IS NOT NULL AS posted, balance, replayed FROM top_up(:w501, 50.00, 'WX-0002');
SELECT balance FROM account WHERE account_id = :w501;
-- The provider's clearing account holds the money; the wallet owes it to the member.
SELECT kind, balance FROM account WHERE operator_id = 12 ORDER BY account_id;
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT * FROM top_up(:w501, 70.00, 'WX-0001');
SELECT * FROM top_up(:w501, 0, 'WX-0003');
SELECT * FROM top_up(:w501, 10.005, 'WX-0003');
SELECT * FROM top_up(:w501, 10, '');
SELECT * FROM top_up(999999, 10, 'WX-0003');
SELECT * FROM top_up((SELECT account_id FROM account WHERE kind = 'provider_clearing'), 10, 'WX-0003');

-- 2. Manual credits need a note, and happen once per request.
SELECT balance, replayed FROM manual_credit(:w501, 5.00, 'goodwill: pile out of order 11-19', 'CS-77');
SELECT balance, replayed FROM manual_credit(:w501, 5.00, 'goodwill: pile out of order 11-19', 'CS-77');
SELECT * FROM manual_credit(:w501, 5.00, ' ', 'CS-78');

-- 3. Bills settle to the right wallet and sub-operator.
CREATE FUNCTION pg_temp.charge(gun gun_id, order_no text, t0 timestamptz, wh_per_min int, minutes int DEFAULT 60)
RETURNS void LANGUAGE sql AS $$
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, order_no)
	SELECT gun, t0 + i * interval '1 min', CASE WHEN i = minutes THEN 'idle' ELSE 'charging' END::evcharge.gun_status,
	       100000 + least(i, minutes - 1) * wh_per_min, order_no
	FROM generate_series(0, minutes) i;
	INSERT INTO evcharge.pile_record VALUES (order_no, gun, t0, t0 + (minutes - 1) * interval '1 min', (minutes - 1) * wh_per_min);
$$;
-- member 501 (own wallet), 502 (the bus company pays), 503 (the taxi's VIN),
-- the prepaid and the affiliated partner, and a card nobody registered.
SELECT start_session('44200000120000100001001', 501, 'app') AS o501 \gset
SELECT pg_temp.charge('44200000120000100001001', :'o501', '2026-11-20 08:00+08', 100);
SELECT start_session('44200000120000100001002', 502, 'app') AS o502 \gset
SELECT pg_temp.charge('44200000120000100001002', :'o502', '2026-11-20 08:00+08', 100);
SELECT start_session('44200000120000100002001', 503, 'qr') AS o503 \gset
SELECT pg_temp.charge('44200000120000100002001', :'o503', '2026-11-20 08:00+08', 100);
SELECT top_up(account_of(12, 'partner_prepaid', 7), 20.00, 'PARTNER7-DEPOSIT-1') IS NOT NULL AS partner_topped_up;
SELECT start_session('44200000120000100002002', NULL, 'partner', 7) AS o7 \gset
SELECT pg_temp.charge('44200000120000100002002', :'o7', '2026-11-20 08:00+08', 100);
SELECT start_session('44200000120000100002003', NULL, 'partner', 8) AS o8 \gset
SELECT pg_temp.charge('44200000120000100002003', :'o8', '2026-11-20 08:00+08', 100);
SELECT pg_temp.charge('44200000120000100002004', 'CARD-UNKNOWN', '2026-11-20 08:00+08', 100);
-- Each: 5900 Wh, electricity 4.72, service 2.65, total 7.37.
SELECT count(*) AS bills, min(total) AS min_total, max(total) AS max_total, bool_and(state = 'final') AS all_final FROM bill;
SELECT * FROM settle_bills();
SELECT * FROM settle_bills();
SELECT count(*) FILTER (WHERE state = 'settled') AS settled FROM bill;
-- Who paid and who earned.
SELECT a.kind, a.owner_id, a.sub_operator_id, a.balance
FROM account a WHERE a.operator_id = 12 ORDER BY a.kind, a.owner_id NULLS FIRST, a.sub_operator_id NULLS FIRST;
-- The affiliated partner owes 7.37 of its 10.00 limit: one more start is
-- allowed, and after that bill the limit is reached.
SELECT start_session('44200000120000100002005', NULL, 'partner', 8) AS o8b \gset
SELECT pg_temp.charge('44200000120000100002005', :'o8b', '2026-11-20 10:00+08', 100);
SELECT * FROM settle_bills();
SELECT start_session('44200000120000100002006', NULL, 'partner', 8);
-- The prepaid partner has 12.63 left; two more charges start while it has
-- money, and after their bills it owes 2.11: the next start is refused.
SELECT start_session('44200000120000100002006', NULL, 'partner', 7) AS o7b \gset
SELECT pg_temp.charge('44200000120000100002006', :'o7b', '2026-11-20 10:00+08', 100);
SELECT start_session('44200000120000100002007', NULL, 'partner', 7) AS o7c \gset
SELECT pg_temp.charge('44200000120000100002007', :'o7c', '2026-11-20 10:00+08', 100);
SELECT * FROM settle_bills();
SELECT balance FROM account WHERE kind = 'partner_prepaid';
SELECT start_session('44200000120000100002008', NULL, 'partner', 7);
-- Settling again changes nothing; a held bill is not charged.
SELECT kind, idem_key = :'o501' AS same_key FROM settle_bill(:'o501');
SELECT count(*) AS bill_txns FROM ledger_txn WHERE kind = 'bill';
UPDATE bill SET state = 'held' WHERE order_no = 'CARD-UNKNOWN';
SELECT settle_bill('CARD-UNKNOWN');
UPDATE bill SET state = 'settled' WHERE order_no = 'CARD-UNKNOWN';

-- 4. A department wallet's alert fires once per crossing.
SELECT account_of(12, 'department_wallet', 5) AS dept \gset
UPDATE account SET alert_threshold = 50.00 WHERE account_id = :dept;
SELECT balance, alert_armed FROM account WHERE account_id = :dept;
SELECT check_alert(:dept) AS sent, check_alert(:dept) AS sent_again;
SELECT balance FROM top_up(:dept, 100.00, 'BANK-DEPT-1');
SELECT alert_armed FROM account WHERE account_id = :dept;

-- 5. Refunds.  The fee: bank 6 yuan + 0.6 %, provider 0.6 %, to the fen.
SELECT refund_fee(1000, 'bank') AS bank_1000, refund_fee(1000, 'provider') AS provider_1000,
       refund_fee(142.63, 'provider') AS provider_142_63, refund_fee(0.99, 'provider') AS provider_0_99;
SELECT refund_fee(10, 'cash');
SELECT refund_fee(-1, 'bank');
-- Member 501 has 147.63; a refund by provider freezes it all at once.
SELECT balance FROM account WHERE account_id = :w501;
INSERT INTO coupon (operator_id, member_id, amount, valid) VALUES (12, 501, 3.00, '[2026-11-01, 2027-01-01)');
UPDATE finance_policy SET void_coupons_on_refund = true WHERE operator_id = 12;
SELECT refund_id AS r1, method, amount, fee, state, coupons_voided FROM request_refund(:w501, 'provider') \gset
SELECT :'method' AS method, :amount AS amount, :fee AS fee, :'state' AS state, :coupons_voided AS coupons_voided;
SELECT balance FROM account WHERE account_id = :w501;
SELECT count(*) AS coupons_left FROM coupon WHERE member_id = 501;
SELECT request_refund(:w501, 'bank');
SELECT state, decided_by = current_user AS by_me FROM approve_refund(:r1);
SELECT state FROM approve_refund(:r1);
SELECT kind, balance FROM account WHERE kind IN ('refunds_payable', 'fee_income', 'provider_clearing') ORDER BY kind;
-- Rejected: the money goes back.
SELECT balance FROM top_up(:w501, 30.00, 'WX-0004');
SELECT refund_id AS r2 FROM request_refund(:w501, 'bank') \gset
SELECT balance FROM account WHERE account_id = :w501;
SELECT reject_refund(:r2, '');
SELECT state, reason FROM reject_refund(:r2, 'the member asked to keep using the wallet');
SELECT balance FROM account WHERE account_id = :w501;
SELECT approve_refund(:r2);
-- Debts reduce what is refundable: a wallet in debt has nothing to refund.
-- Member 501 charges five hours with 30.00 in the wallet (29.9 kWh, 37.37);
-- 60 kWh agreed by hand would be more than the 7 kW gun can deliver in the
-- five hours, and is refused.
SELECT start_session('44200000120000100001003', 501, 'app') AS o501b \gset
SELECT pg_temp.charge('44200000120000100001003', :'o501b', '2026-11-20 12:00+08', 100, 300);
SELECT total FROM repair_bill(:'o501b', 'agreed: 60 kWh, the pile''s meter was replaced', 'manual', 60000);
SELECT * FROM settle_bills();
SELECT balance < 0 AS in_debt FROM account WHERE account_id = :w501;
SELECT request_refund(:w501, 'provider');
-- A charge running blocks a refund (so does a bill held for repair).
SELECT balance FROM top_up(:w501, 100.00, 'WX-0005');
SELECT start_session('44200000120000100001004', 501, 'app') IS NOT NULL AS started;
SELECT request_refund(:w501, 'provider');

-- 6. The balance guard: member 504 has 2.00 and charges at 7 kW (plan
-- 0.80 + 0.45 a kWh: 0.14 yuan in the guard's 60 s).  Heartbeats arrive
-- every 15 s in batches of a minute; the charge is stopped in the batch
-- after which the next minute could take the wallet below 1.00, once.
INSERT INTO member (member_id, operator_id) VALUES (504, 12);
SELECT balance FROM top_up(member_wallet(504), 2.00, 'WX-504');
CREATE TEMP TABLE guard_order AS SELECT start_session('44200000120000100001005', 504, 'app') AS order_no;
CREATE FUNCTION pg_temp.minute_of_charging(m int) RETURNS void LANGUAGE sql AS $$
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, power_w, order_no)
	SELECT '44200000120000100001005', '2026-11-20 16:00+08'::timestamptz + (m * 4 + i) * interval '15 s',
	       'charging', 300000 + (m * 4 + i) * 29, 7000, (SELECT order_no FROM guard_order)
	FROM generate_series(0, 3) i;
$$;
CREATE TEMP TABLE guard_log (minute int, so_far numeric, stop_requests bigint);
DO $$
BEGIN
	FOR m IN 0 .. 9 LOOP
		PERFORM pg_temp.minute_of_charging(m);
		INSERT INTO guard_log
		SELECT m, (SELECT cs.running_total FROM evcharge.charge_session cs JOIN guard_order g USING (order_no)),
		       (SELECT count(*) FROM evcharge.stop_request);
	END LOOP;
END $$;
SELECT * FROM guard_log ORDER BY minute;
SELECT r.order_no = g.order_no AS this_session, r.balance, r.running_total, r.projected, r.threshold,
       r.balance - r.running_total - r.projected AS left_after_next_minute
FROM stop_request r, guard_order g;

-- 7. The ledger itself: balanced, immutable, verifiable.
SELECT * FROM verify_ledger();
SELECT count(*) AS unbalanced FROM (SELECT txn_id FROM ledger_entry GROUP BY txn_id HAVING sum(amount) <> 0) x;
UPDATE ledger_entry SET amount = amount + 1 WHERE entry_id = (SELECT min(entry_id) FROM ledger_entry);
DELETE FROM ledger_txn WHERE txn_id = (SELECT min(txn_id) FROM ledger_txn);
SELECT * FROM post_txn(12, 'manual_credit', 'BAD-1', ARRAY[:w501, :dept]::bigint[], ARRAY[1.00, -0.99]);
SELECT * FROM post_txn(12, 'manual_credit', 'BAD-2', ARRAY[:w501, :dept]::bigint[], ARRAY[1.001, -1.001]);
-- Entries written around post_txn that do not balance cannot be committed.
BEGIN;
INSERT INTO ledger_txn (operator_id, kind, idem_key) VALUES (12, 'manual_credit', 'RAW-1');
INSERT INTO ledger_entry (txn_id, account_id, amount, operator_id) VALUES (currval('ledger_txn_txn_id_seq'), :w501, 5.00, 12);
COMMIT;
-- A balance changed behind the ledger's back is found.
UPDATE account SET balance = balance + 0.01 WHERE account_id = :w501;
SELECT problem, account_id = :w501 AS the_wallet, expected, actual FROM verify_ledger();
UPDATE account SET balance = balance - 0.01 WHERE account_id = :w501;
SELECT count(*) AS discrepancies FROM verify_ledger();
\set VERBOSITY terse

\i sql/include/reset.sql
