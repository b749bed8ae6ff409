-- Refunds: what a refund costs (each operator's fee bands), refunding part
-- of a wallet, refunding one disputed bill to whoever paid it, and the
-- daily spending limit of a shared maintenance card.  Each error is shown
-- with its SQLSTATE, message, detail and hint.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';
-- The order numbers start_session() makes, and today's date, change from
-- run to run: an error shows them as <order> and <today>.
CREATE FUNCTION pg_temp.try(q text, mask text DEFAULT NULL, label text DEFAULT '<order>',
	OUT code text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	code := 'accepted';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL,
		hint = PG_EXCEPTION_HINT;
	IF mask IS NOT NULL THEN
		message := replace(message, mask, label);
		detail := replace(detail, mask, label);
	END IF;
END $$;

-- 1. Fee bands.  A new operator gets finance's rule: a bank transfer costs
-- 6 yuan up to 9,999.99 yuan and 12 yuan from 10,000 to 100,000 yuan, plus
-- the provider's 0.6 %, which is all a provider refund costs.
INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.'), (34, 'Longgang Power');
SELECT operator_id, method, up_to, fixed_fee, rate FROM refund_fee_bands ORDER BY operator_id, method;
-- 20,000 yuan by bank: 12 + 120 = 132.00 (the old rule said 126.00).  The
-- band edges: 9,999.99 is the first band, 10,000 the second, 100,000 the
-- last amount a bank refund may have.  Truncated to the fen as before.
SELECT a AS amount, refund_fee(12, a, 'bank') AS bank, refund_fee(12, a, 'provider') AS provider,
       refund_fee(a, 'bank') AS default_bank
FROM unnest(ARRAY[20000, 1000, 9999.99, 10000, 100000, 0.99, 142.63]::numeric[]) a;
-- Above the last band a bank refund is refused, with the limit.
\x on
SELECT * FROM pg_temp.try($$SELECT refund_fee(12, 100000.01, 'bank')$$);
SELECT * FROM pg_temp.try($$SELECT refund_fee(100000.01, 'bank')$$);
-- An unknown operator, an unknown method, a negative amount.
SELECT * FROM pg_temp.try($$SELECT refund_fee(99, 10, 'bank')$$);
SELECT * FROM pg_temp.try($$SELECT refund_fee(12, 10, 'cash')$$);
SELECT * FROM pg_temp.try($$SELECT refund_fee(12, -1, 'bank')$$);
\x off
-- Operator 34 negotiated its own: 5 yuan to 50,000, nothing above; its
-- bands change its fees only.
UPDATE refund_fee_bands SET up_to = '{50000}', fixed_fee = '{5}', updated_at = now()
WHERE operator_id = 34 AND method = 'bank';
SELECT refund_fee(34, 20000, 'bank') AS op34, refund_fee(12, 20000, 'bank') AS op12;
SELECT code, message FROM pg_temp.try($$SELECT refund_fee(34, 60000, 'bank')$$);
-- Bands must be well formed: limits rising, one fixed fee each.
SELECT code, message FROM pg_temp.try($$UPDATE refund_fee_bands SET up_to = '{100000,10000}' WHERE operator_id = 34 AND method = 'bank'$$);
SELECT code, message FROM pg_temp.try($$UPDATE refund_fee_bands SET fixed_fee = '{5,6}' WHERE operator_id = 34 AND method = 'bank'$$);

-- A station, a plan, piles: the setting of the refunds below.
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'Shiqi bus depot'), (2, 12, 'Xiaolan public');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name)
SELECT s, 'AC', '00:00-24:00 flat | flat 0.8000+0.4500', '[2026-01-01,)', 'AC' FROM generate_series(1, 2) s;
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('44200000120000100001', 1, 9, 7000, 'AC-2.3.1'),
	('44200000120000100002', 2, 9, 7000, 'AC-2.3.1');
SELECT count(*) > 0 AS partitions FROM maintain_partitions('2026-11-20 12:00+08');
INSERT INTO customer_group (group_id, operator_id, name, pays_for_members) VALUES (5, 12, 'Maintenance crew', true);
INSERT INTO sub_operator VALUES (32, 12, 'Station 2 owner');
INSERT INTO attribution (sub_operator_id, station_id) VALUES (32, 2);
INSERT INTO member (member_id, operator_id, group_id, card_no) VALUES
	(501, 12, NULL, NULL), (502, 12, 5, '8800000000000502'), (503, 12, NULL, NULL);
INSERT INTO partner (partner_id, operator_id, name, kind) VALUES (8, 12, 'Map app (affiliated)', 'affiliated');
-- One charge: an hour at wh_per_min, then the pile's record.
CREATE FUNCTION pg_temp.charge(gun gun_id, order_no text, t0 timestamptz, wh_per_min int, minutes int DEFAULT 60)
RETURNS void LANGUAGE sql AS $$
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, order_no)
	SELECT gun, t0 + i * interval '1 min', CASE WHEN i = minutes THEN 'idle' ELSE 'charging' END::evcharge.gun_status,
	       100000 + least(i, minutes - 1) * wh_per_min, order_no
	FROM generate_series(0, minutes) i;
	INSERT INTO evcharge.pile_record VALUES (order_no, gun, t0, t0 + (minutes - 1) * interval '1 min', (minutes - 1) * wh_per_min);
$$;

-- 2. Part of a wallet.  Member 501 tops up 300.00 and asks for 100.00 back
-- by bank: 100.00 is frozen, the fee is 6.60, 200.00 stay in the wallet.
SELECT member_wallet(501) AS w501 \gset
SELECT balance FROM top_up(:w501, 300.00, 'WX-501-1');
SELECT refund_id AS r1, amount, fee, state FROM request_refund(:w501, 'bank', 100.00) \gset
SELECT :amount AS amount, :fee AS fee, :'state' AS state;
SELECT balance FROM account WHERE account_id = :w501;
-- Approved as any refund: 93.40 paid out, 6.60 the fee.
SELECT state, amount - fee AS paid FROM approve_refund(:r1);
-- More than the balance, nothing, or fractions of a fen are refused.
\x on
SELECT * FROM pg_temp.try(format($$SELECT request_refund(%s, 'provider', 200.01)$$, :w501));
SELECT * FROM pg_temp.try(format($$SELECT request_refund(%s, 'provider', 0)$$, :w501));
\x off
SELECT code, message FROM pg_temp.try(format($$SELECT request_refund(%s, 'provider', 10.005)$$, :w501));
-- Without an amount, the whole balance, as before; rejected, it comes back.
SELECT refund_id AS r2, amount, fee FROM request_refund(:w501, 'provider') \gset
SELECT :amount AS amount, :fee AS fee;
SELECT state FROM reject_refund(:r2, 'member changed their mind');
SELECT balance FROM account WHERE account_id = :w501;
-- A wallet of 150,000 yuan cannot go by bank at once: above the last band.
SELECT balance FROM top_up(:w501, 149800.00, 'WX-501-2');
\x on
SELECT * FROM pg_temp.try(format($$SELECT request_refund(%s, 'bank')$$, :w501));
\x off
-- In two parts it can.
SELECT amount, fee FROM approve_refund((request_refund(:w501, 'bank', 100000.00)).refund_id);
SELECT amount, fee FROM approve_refund((request_refund(:w501, 'bank')).refund_id);
SELECT balance FROM account WHERE account_id = :w501;

-- 3. Refund of one bill.  Member 503 charges an hour at 100 Wh a minute
-- (5.9 kWh: electricity 4.72, service 2.65, total 7.37) from its wallet.
SELECT member_wallet(503) AS w503 \gset
SELECT balance FROM top_up(:w503, 50.00, 'WX-503');
SELECT start_session('44200000120000100002001', 503, 'app') AS o503 \gset
SELECT pg_temp.charge('44200000120000100002001', :'o503', '2026-11-20 08:00+08', 100);
SELECT * FROM settle_bills();
SELECT energy_fee, service_fee, occupancy_fee, discount, total, state, revision FROM bill WHERE order_no = :'o503';
SELECT balance FROM account WHERE account_id = :w503;
-- Support gives back 2.00 of it: taken from the service fee (there is no
-- occupancy fee), credited to the wallet that paid.
SELECT account_id = :w503 AS to_payer, refunded, refunded_in_all, refundable, revision, replayed
FROM refund_bill(:'o503', 'pile slow to start, ticket 4471', 'CS-4471', 2.00);
SELECT balance FROM account WHERE account_id = :w503;
SELECT order_no = :'o503' AS this_bill, amount, energy_fee, service_fee, occupancy_fee, reason
FROM bill_refund ORDER BY bill_refund_id;
-- The same request again is its first answer; the same id for another
-- amount is refused.
SELECT refunded, refundable, replayed FROM refund_bill(:'o503', 'pile slow to start, ticket 4471', 'CS-4471', 2.00);
\x on
SELECT * FROM pg_temp.try(format($$SELECT refund_bill(%L, 'pile slow', 'CS-4471', 3.00)$$, :'o503'), :'o503');
-- More than is left (5.37) is refused.
SELECT * FROM pg_temp.try(format($$SELECT refund_bill(%L, 'pile slow', 'CS-4472', 6.00)$$, :'o503'), :'o503');
\x off
-- "Refund everything charged for this order": what is left, 5.37: the rest
-- of the service fee (0.65), then the electricity fee (4.72).
SELECT refunded, refunded_in_all, refundable, revision FROM refund_bill(:'o503', 'driver charged twice, ticket 4480', 'CS-4480');
SELECT amount, energy_fee, service_fee, occupancy_fee FROM bill_refund ORDER BY bill_refund_id;
SELECT balance FROM account WHERE account_id = :w503;
\x on
SELECT * FROM pg_temp.try(format($$SELECT refund_bill(%L, 'again', 'CS-4481')$$, :'o503'), :'o503');
\x off
-- The bill's audit trail points at each refund, and its history shows
-- what was charged and given back.
SELECT revision, method, reason, bill_refund_id FROM bill_revision WHERE order_no = :'o503' ORDER BY revision;
SELECT event, revision, total, amount, refunded, reason, bill_refund_id IS NOT NULL AS names_refund
FROM bill_history(:'o503');
-- The revenue the bill earned is given back in full: its revenue lines sum to 0.
SELECT a.kind, sum(e.amount) AS net
FROM ledger_txn t JOIN ledger_entry e USING (txn_id) JOIN account a USING (account_id)
WHERE t.order_no = :'o503' AND a.kind LIKE 'revenue%' GROUP BY a.kind ORDER BY a.kind;
-- A repair of the refunded bill that lowers it gives nothing back twice:
-- 3.0 kWh agreed by hand (electricity 2.40, service 1.35) is below what
-- the refunds took, so no money moves.
SELECT total, revision FROM repair_bill(:'o503', 'agreed: 3 kWh', 'manual', 3000);
SELECT count(*) AS adjustments FROM ledger_txn WHERE order_no = :'o503' AND kind = 'bill_adjustment';
SELECT balance FROM account WHERE account_id = :w503;

-- A department pays for member 502: its bill's refund goes to the
-- department's wallet.  A partner's: to what the partner owes.
SELECT balance FROM top_up(account_of(12, 'department_wallet', 5), 100.00, 'BANK-DEPT-1');
SELECT start_session('44200000120000100001001', 502, 'app') AS o502 \gset
SELECT pg_temp.charge('44200000120000100001001', :'o502', '2026-11-20 09:00+08', 100);
SELECT start_session('44200000120000100002002', NULL, 'partner', 8) AS o8 \gset
SELECT pg_temp.charge('44200000120000100002002', :'o8', '2026-11-20 09:00+08', 100);
SELECT * FROM settle_bills();
SELECT a.kind, r.refunded, a.balance
FROM refund_bill(:'o502', 'gun fault, charge cut short', 'CS-502') r JOIN account a USING (account_id);
SELECT partner_owes(8) AS owes_before;
SELECT a.kind, r.refunded FROM refund_bill(:'o8', 'partner dispute, their ticket D-77', 'CS-D77', 1.00) r
JOIN account a USING (account_id);
SELECT partner_owes(8) AS owes_after;
-- A bill not charged yet is not refunded (it is repaired), nor an order
-- without a bill; a refund needs a reason and a valid request id.
SELECT start_session('44200000120000100002003', 503, 'app') AS o503b \gset
SELECT pg_temp.charge('44200000120000100002003', :'o503b', '2026-11-20 10:00+08', 100);
\x on
SELECT * FROM pg_temp.try(format($$SELECT refund_bill(%L, 'not yet', 'CS-9')$$, :'o503b'), :'o503b');
SELECT * FROM pg_temp.try($$SELECT refund_bill('NO-SUCH-ORDER', 'x', 'CS-10')$$);
SELECT * FROM pg_temp.try(format($$SELECT refund_bill(%L, ' ', 'CS-11')$$, :'o503b'), :'o503b');
SELECT * FROM pg_temp.try(format($$SELECT refund_bill(%L, 'x', E'CS-12\n')$$, :'o503b'), :'o503b');
\x off

-- 4. The day's report: the refunds of bills on their station's line (and
-- its sub-operator's), wallet refunds (whole and partial) on the wallets'.
SELECT line, station_id, sub_operator_id, sessions, total, refunds, refund_fees, bill_refunds
FROM daily_report(12, (now() AT TIME ZONE 'Asia/Shanghai')::date) ORDER BY line, station_id, sub_operator_id;
-- And the ledger, after all of it, has no discrepancy.
SELECT count(*) AS problems FROM verify_ledger();

-- 5. A maintenance card shared by several cars: member 502's card may spend
-- 10.00 a day.  Its first charge today by card (7.37) is allowed; so is a
-- second (still under), after which the day's 14.74 reach the limit and a
-- third start by card is refused, at the platform and at an OCPP pile.
UPDATE member SET card_daily_limit = 10.00 WHERE member_id = 502;
SELECT start_session('44200000120000100001002', 502, 'card') AS c1 \gset
SELECT pg_temp.charge('44200000120000100001002', :'c1', '2026-11-21 08:00+08', 100);
SELECT daily_limit, spent, remaining, day = (now() AT TIME ZONE 'Asia/Shanghai')::date AS today
FROM card_day_spending(12, '8800 0000 0000 0502');
SELECT ocpp_authorize('44200000120000100001', '8800000000000502') AS authorize_under;
SELECT start_session('44200000120000100001003', 502, 'card') AS c2 \gset
SELECT pg_temp.charge('44200000120000100001003', :'c2', '2026-11-21 10:00+08', 100);
SELECT daily_limit, spent, remaining FROM card_day_spending(12, '8800000000000502');
\x on
SELECT * FROM pg_temp.try($$SELECT start_session('44200000120000100001004', 502, 'card')$$,
	to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD'), '<today>');
\x off
SELECT ocpp_authorize('44200000120000100001', '8800000000000502') AS authorize_over,
       ocpp_authorize('44200000120000100001', '8800000000000999') AS unknown_card;
-- The same member through the app is not a start by card; the limit is the card's.
SELECT start_session('44200000120000100001005', 502, 'app') IS NOT NULL AS app_start;
-- Raised, the card charges again.
UPDATE member SET card_daily_limit = 50.00 WHERE member_id = 502;
SELECT ocpp_authorize('44200000120000100001', '8800000000000502') AS authorize_raised;
\i sql/include/reset.sql
