-- Money that cannot be wrong without an error: unknown references, amounts
-- and energies beyond what is possible, keys that are not keys, and money
-- posted across operators.  Each case shows the SQLSTATE, the message
-- (quoting the value), the detail and the hint; "accepted" would mean the
-- database took it.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

-- Two operators.  Operator 12 has a 7 kW AC station, a member, a
-- department, a partner and a sub-operator; operator 20 has its own.
INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.'), (20, 'Longgang Power');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'Shiqi bus depot'), (2, 20, 'Longgang depot');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name)
VALUES (1, 'AC', '00:00-24:00 flat | flat 0.8000+0.4500', '[2026-01-01,)', 'AC');
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware)
VALUES ('44200000120000100001', 1, 2, 7000, 'AC-2.3.1');
SELECT created FROM maintain_partitions('2026-11-20 12:00+08');
INSERT INTO customer_group (group_id, operator_id, name, service_fee, pays_for_members) VALUES
	(5, 12, 'Bus company', 0.40, true), (6, 20, 'Longgang fleet', 0.10, true);
INSERT INTO group_station VALUES (5, 1);
INSERT INTO member (member_id, operator_id) VALUES (501, 12), (2001, 20);
INSERT INTO partner (partner_id, operator_id, name, kind) VALUES (7, 12, 'Ride app', 'prepaid'), (27, 20, 'Map app', 'prepaid');
INSERT INTO sub_operator VALUES (31, 12, 'Bus company'), (41, 20, 'Longgang bus');
SELECT member_wallet(501) AS w501, member_wallet(2001) AS w2001, account_of(20, 'unassigned_receivable') AS r20 \gset
SELECT balance FROM top_up(:w501, 100.00, 'WX-0001');

-- What the database says about a statement: its SQLSTATE (code), message,
-- detail and hint, or "accepted".
CREATE FUNCTION pg_temp.try(q text, OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	code := 'accepted';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
		hint = PG_EXCEPTION_HINT;
END $$;
\x on

-- 1. An unknown reference is an error: P0002 (no_data_found) for an
-- argument naming something that is not registered, or not the operator's.
-- A quote for a group that does not exist (it priced at the public rate),
-- for another operator's group, for a member nobody registered:
SELECT * FROM pg_temp.try($$SELECT quote(1, 'AC', -5, '2026-11-20 10:00', '2026-11-20 11:00', 5)$$);
SELECT * FROM pg_temp.try($$SELECT quote(1, 'AC', 6, '2026-11-20 10:00', '2026-11-20 11:00', 5)$$);
SELECT * FROM pg_temp.try($$SELECT quote(1, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 5, NULL, 999)$$);
SELECT * FROM pg_temp.try($$SELECT quote(1, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 5, NULL, 2001)$$);
SELECT * FROM pg_temp.try($$SELECT quote(99, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 5)$$);
-- A wallet for a member that does not exist (it was opened), for another
-- operator's member, department or partner; revenue of another operator's
-- sub-operator; an owner where the kind has none; a kind or operator that
-- does not exist.
SELECT * FROM pg_temp.try($$SELECT account_of(12, 'member_wallet', -77, NULL)$$);
SELECT * FROM pg_temp.try($$SELECT account_of(12, 'member_wallet', 2001)$$);
SELECT * FROM pg_temp.try($$SELECT account_of(12, 'department_wallet', 6)$$);
SELECT * FROM pg_temp.try($$SELECT account_of(12, 'partner_prepaid', 27)$$);
SELECT * FROM pg_temp.try($$SELECT account_of(12, 'revenue_service', NULL, 41)$$);
SELECT * FROM pg_temp.try($$SELECT account_of(12, 'bank', 501)$$);
SELECT * FROM pg_temp.try($$SELECT account_of(12, 'member_wallet')$$);
SELECT * FROM pg_temp.try($$SELECT account_of(12, 'wallet', 501)$$);
SELECT * FROM pg_temp.try($$SELECT account_of(99, 'bank')$$);
SELECT count(*) AS accounts_opened_for_nobody FROM account WHERE owner_id IN (-77, 2001, 6, 27) AND operator_id = 12;
-- The operator's own are opened as before.
SELECT account_of(12, 'department_wallet', 5) IS NOT NULL AS department,
       account_of(12, 'partner_prepaid', 7) IS NOT NULL AS partner,
       account_of(12, 'revenue_service', NULL, 31) IS NOT NULL AS revenue;
SELECT kind, owner_id, sub_operator_id FROM account WHERE operator_id = 12 ORDER BY account_id;

-- 2. Amounts and energies have limits.  Per gun: what its rated power can
-- deliver in the span (x 1.2 + 10 Wh).  Per bill: the operator's
-- finance_policy.max_bill_energy_wh (1 MWh) and max_bill_amount (5000.00).
SELECT max_bill_amount, max_bill_energy_wh FROM finance_policy WHERE operator_id = 12;
-- A bill to repair: one hour at the 7 kW gun, 5.9 kWh.
\set o1 O1
INSERT INTO charge_session (order_no, gun, station_id, member_id, channel)
VALUES (:'o1', '44200000120000100001001', 1, 501, 'app');
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
SELECT '44200000120000100001001', '2026-11-20 08:00+08'::timestamptz + i * interval '1 min',
       CASE WHEN i = 60 THEN 'idle' ELSE 'charging' END::gun_status, 100000 + least(i, 59) * 100, :'o1'
FROM generate_series(0, 60) i;
INSERT INTO pile_record VALUES (:'o1', '44200000120000100001001', '2026-11-20 08:00+08', '2026-11-20 08:59+08', 5900);
SELECT energy_wh, total, state FROM bill WHERE order_no = :'o1';
-- 9,223,372,036,854 Wh by hand (it was a 6.9-billion-yuan bill), 60 kWh in
-- an hour at 7 kW, energy given to a repair that does not take it:
SELECT * FROM pg_temp.try(format($$SELECT repair_bill(%L, 'agreed', 'manual', 9223372036854)$$, :'o1'));
SELECT * FROM pg_temp.try(format($$SELECT repair_bill(%L, 'agreed', 'manual', 60000)$$, :'o1'));
SELECT * FROM pg_temp.try(format($$SELECT repair_bill(%L, 'agreed', 'platform', 5000)$$, :'o1'));
-- Within the gun's power but beyond the operator's own limits.
UPDATE finance_policy SET max_bill_energy_wh = 6000, max_bill_amount = 7.00 WHERE operator_id = 12;
SELECT * FROM pg_temp.try(format($$SELECT repair_bill(%L, 'agreed', 'manual', 6500)$$, :'o1'));
SELECT * FROM pg_temp.try(format($$SELECT repair_bill(%L, 'agreed', 'manual', 5800)$$, :'o1'));
SELECT * FROM pg_temp.try($$SELECT quote(1, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 6.5)$$);
SELECT * FROM pg_temp.try($$SELECT quote(1, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 5.8)$$);
UPDATE finance_policy SET max_bill_energy_wh = DEFAULT, max_bill_amount = DEFAULT WHERE operator_id = 12;
-- What the gun can deliver is agreed; what it cannot is not.
SELECT energy_wh, total, state, revision FROM repair_bill(:'o1', 'agreed: the pile''s meter under-read', 'manual', 8410);
SELECT * FROM pg_temp.try(format($$SELECT repair_bill(%L, 'agreed', 'manual', 8411)$$, :'o1'));
SELECT kwh, total FROM quote(1, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 8.41);
SELECT * FROM pg_temp.try($$SELECT quote(1, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 8.411)$$);
SELECT * FROM pg_temp.try($$SELECT quote(2, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 1000.001)$$);

-- 3. NaN, Infinity and negative amounts are refused wherever money or
-- energy enters (NaN compares greater than every number, so a CHECK
-- (x >= 0) alone lets it through).
SELECT * FROM pg_temp.try($$SELECT refund_fee('NaN', 'bank')$$);
SELECT * FROM pg_temp.try($$SELECT refund_fee('Infinity', 'provider')$$);
SELECT * FROM pg_temp.try(format($$SELECT top_up(%s, 'NaN', 'WX-NAN')$$, :w501));
SELECT * FROM pg_temp.try(format($$SELECT top_up(%s, 'Infinity', 'WX-INF')$$, :w501));
SELECT * FROM pg_temp.try(format($$SELECT top_up(%s, 1000000000000, 'WX-BIG')$$, :w501));
SELECT * FROM pg_temp.try(format($$SELECT manual_credit(%s, 'NaN', 'goodwill', 'CS-NAN')$$, :w501));
SELECT * FROM pg_temp.try($$SELECT partner_payment(7, '-Infinity', 'BANK-INF')$$);
SELECT * FROM pg_temp.try(format($$SELECT post_txn(12, 'manual_credit', 'RAW-NAN', ARRAY[%s, %s]::bigint[], ARRAY['NaN', 'NaN']::numeric[])$$,
	:w501, account_of(12, 'adjustments')));
SELECT * FROM pg_temp.try($$SELECT quote(1, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 'NaN')$$);
SELECT * FROM pg_temp.try($$SELECT quote(1, 'AC', NULL, '2026-11-20 10:00', '2026-11-20 11:00', 'Infinity')$$);
SELECT * FROM pg_temp.try($$SELECT quote(1, 'AC', NULL, '2026-11-20 10:00', 'infinity', 5)$$);
-- (the detail names today: not shown)
SELECT code, message, hint FROM pg_temp.try($$SELECT partner_payment(7, 10.00, 'BANK-7-1', 'infinity')$$);
SELECT code, message, hint FROM pg_temp.try($$SELECT partner_payment(7, 10.00, 'BANK-7-1', '2999-01-01')$$);
-- The price rules and the money settings refuse NaN by their checks
-- (the failing row, which holds the time of the run, is not shown).
\x off
SELECT code, message FROM pg_temp.try($$INSERT INTO customer_group (group_id, operator_id, name, service_fee) VALUES (8, 12, 'x', 'NaN')$$);
SELECT code, message FROM pg_temp.try($$INSERT INTO customer_group (group_id, operator_id, name, service_factor) VALUES (8, 12, 'x', 'NaN')$$);
SELECT code, message FROM pg_temp.try($$INSERT INTO promotion (operator_id, name, valid, service_fee) VALUES (12, 'x', '[2026-11-01,2026-12-01)', 'NaN')$$);
SELECT code, message FROM pg_temp.try($$INSERT INTO occupancy_fee VALUES (1, 15, 'NaN', 30.00)$$);
SELECT code, message FROM pg_temp.try($$INSERT INTO occupancy_fee VALUES (1, 15, 0.50, 'NaN')$$);
SELECT code, message FROM pg_temp.try($$INSERT INTO coupon (operator_id, member_id, amount, valid) VALUES (12, 501, 'NaN', '[2026-11-01,2026-12-01)')$$);
SELECT code, message FROM pg_temp.try($$INSERT INTO coupon (operator_id, member_id, amount, min_kwh, valid) VALUES (12, 501, 3, 'NaN', '[2026-11-01,2026-12-01)')$$);
SELECT code, message FROM pg_temp.try($$UPDATE partner SET kind = 'affiliated', credit_limit = 'NaN' WHERE partner_id = 7$$);
SELECT code, message FROM pg_temp.try($$UPDATE finance_policy SET stop_threshold = 'NaN' WHERE operator_id = 12$$);
SELECT code, message FROM pg_temp.try($$UPDATE finance_policy SET max_bill_amount = 'NaN' WHERE operator_id = 12$$);
SELECT code, message FROM pg_temp.try(format($$UPDATE account SET alert_threshold = 'NaN' WHERE account_id = %s$$, :w501));
\x on

-- 4. Keys and references have one rule (check_key): 1 to 128 characters,
-- no white space at either end, no control or invisible character.
SELECT * FROM pg_temp.try(format($$SELECT top_up(%s, 10, ' ')$$, :w501));
SELECT * FROM pg_temp.try(format($$SELECT top_up(%s, 10, E'k\n')$$, :w501));
SELECT * FROM pg_temp.try(format($$SELECT top_up(%s, 10, repeat('k', 100000))$$, :w501));
SELECT * FROM pg_temp.try(format($$SELECT top_up(%s, 10, E'WX-\u200b0002')$$, :w501));
SELECT * FROM pg_temp.try(format($$SELECT top_up(%s, 10, E'WX-0002\u3000')$$, :w501));
SELECT * FROM pg_temp.try(format($$SELECT manual_credit(%s, 5, 'goodwill', E'CS-\t1')$$, :w501));
SELECT * FROM pg_temp.try($$SELECT partner_payment(7, 10.00, ' BANK-7-1')$$);
SELECT * FROM pg_temp.try(format($$SELECT post_txn(12, 'manual_credit', NULL, ARRAY[%s, %s]::bigint[], ARRAY[1, -1])$$,
	account_of(12, 'adjustments'), :w501));
SELECT count(*) AS top_ups FROM ledger_txn WHERE kind = 'top_up';
-- A reference as a bank writes it, spaces and Chinese included, is a key.
SELECT balance, replayed FROM top_up(:w501, 1.00, '工行 2026-11-20 0001');
-- A request id applied once: the same id for another amount is an error,
-- as for a provider's id (it was returned as a replay of the first).
SELECT balance, replayed FROM manual_credit(:w501, 5.00, 'goodwill: pile out of order', 'CS-100');
SELECT * FROM pg_temp.try(format($$SELECT manual_credit(%s, 50.00, 'goodwill: pile out of order', 'CS-100')$$, :w501));

-- 5. One operator per transaction.  Account 1 is operator 12's wallet of
-- member 501; posting it in operator 20's books was accepted.
SELECT * FROM pg_temp.try(format($$SELECT post_txn(20, 'top_up', 'PX5', ARRAY[%s, %s]::bigint[], ARRAY[-1.00, 1.00], NULL, NULL, NULL)$$,
	:w501, :r20));
SELECT * FROM pg_temp.try(format($$SELECT post_txn(20, 'top_up', 'PX6', ARRAY[%s, 999999]::bigint[], ARRAY[-1.00, 1.00])$$, :r20));
-- The same key again from another operator is not a replay of the first.
SELECT * FROM pg_temp.try(format($$SELECT post_txn(20, 'top_up', 'WX-0001', ARRAY[%s, %s]::bigint[], ARRAY[-1.00, 1.00])$$,
	:w2001, :r20));
-- Written around post_txn, the foreign keys of ledger_entry refuse it: an
-- entry is in its transaction's operator's books and on that operator's
-- account.
BEGIN;
INSERT INTO ledger_txn (operator_id, kind, idem_key) VALUES (20, 'manual_credit', 'RAW-20') RETURNING txn_id AS raw \gset
SELECT * FROM pg_temp.try(format($$INSERT INTO ledger_entry (txn_id, account_id, amount, operator_id) VALUES (%s, %s, 1.00, 20)$$,
	:raw, :w501));
SELECT * FROM pg_temp.try(format($$INSERT INTO ledger_entry (txn_id, account_id, amount, operator_id) VALUES (%s, %s, 1.00, 12)$$,
	:raw, :w501));
ROLLBACK;
SELECT count(*) AS cross_operator_entries FROM ledger_entry e JOIN account a USING (account_id) JOIN ledger_txn t USING (txn_id)
WHERE a.operator_id <> t.operator_id OR e.operator_id <> t.operator_id;

-- 6. verify_ledger() checks per operator.  Healthy:
\x off
SELECT * FROM verify_ledger();
-- With the foreign keys and triggers out of the way (replication role, as a
-- restore without checks would): a transaction of operator 20 that takes a
-- yuan from operator 12's wallet, and a wallet of a member nobody
-- registered.  Each is named, with its operator.
BEGIN;
SET LOCAL session_replication_role = replica;
INSERT INTO ledger_txn (operator_id, kind, idem_key) VALUES (20, 'manual_credit', 'CROSS-1') RETURNING txn_id AS cross \gset
INSERT INTO ledger_entry (txn_id, account_id, amount, operator_id) VALUES (:cross, :w501, 1.00, 20), (:cross, :r20, -1.00, 20);
UPDATE account SET balance = balance - 1.00 WHERE account_id = :w501;
UPDATE account SET balance = balance - 1.00 WHERE account_id = :r20;
INSERT INTO account (operator_id, kind, owner_id) VALUES (12, 'member_wallet', -77);
SET LOCAL session_replication_role = origin;
SELECT problem, operator_id, txn_id = :cross AS the_txn, account_id = :w501 AS the_wallet, expected, actual
FROM verify_ledger();
ROLLBACK;
SELECT count(*) AS discrepancies FROM verify_ledger();

\i sql/include/reset.sql
