-- Finance: daily_report() and partner statements on a generated month
-- (September 2026) of one operator, made through the real pipeline
-- (start_session, heartbeats, pile records, detect_lost_bills, repairs,
-- settle_bills), and checked against the ledger to the fen.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';
SET datestyle = 'ISO, YMD';

-- Operator 12: station 1 (a bus depot) and 2 (public), one AC plan each
-- with a valley.  The bus company is a department that pays for its
-- drivers and a sub-operator; the owner of station 2 is another.  Didi
-- (prepaid: it deposits, its users' bills debit the deposit) and Amap
-- (affiliated: it owes, up to 800.00).  Operator 34 charges on the same
-- days and must never appear in 12's figures.
INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.'), (34, 'Longgang Power');
INSERT INTO station (station_id, operator_id, name) VALUES
	(1, 12, 'Shiqi bus depot'), (2, 12, 'Xiaolan public'), (9, 34, 'Longgang depot');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name)
SELECT s, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500',
       '[2026-01-01,)', 'AC' FROM unnest(ARRAY[1, 2, 9]) s;
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('44200000120000100001', 1, 9, 7000, 'AC-2.3.1'),
	('44200000120000100002', 2, 9, 7000, 'AC-2.3.1'),
	('44030700340000100001', 9, 9, 7000, 'AC-2.3.1');
INSERT INTO customer_group (group_id, operator_id, name, pays_for_members) VALUES (5, 12, 'Bus company', true);
INSERT INTO sub_operator VALUES (31, 12, 'Bus company'), (32, 12, 'Station 2 owner');
INSERT INTO attribution (sub_operator_id, group_id) VALUES (31, 5);
INSERT INTO attribution (sub_operator_id, station_id) VALUES (32, 2);
INSERT INTO member (member_id, operator_id, group_id) VALUES
	(501, 12, NULL), (502, 12, 5), (503, 12, NULL), (3401, 34, NULL);
INSERT INTO partner (partner_id, operator_id, name, kind, credit_limit) VALUES
	(7, 12, 'Didi charging', 'prepaid', NULL), (8, 12, 'Amap', 'affiliated', 800.00),
	(9, 12, 'Fleet app', 'affiliated', NULL);

-- Wallets: the members' top-ups, the bus company's, Didi's deposit by bank
-- on 31 August.  The money arrives now; the charges are September's.
SELECT balance FROM top_up(member_wallet(501), 2000.00, 'WX-501');
SELECT balance FROM top_up(member_wallet(503), 2000.00, 'WX-503');
SELECT balance FROM top_up(member_wallet(3401), 2000.00, 'WX-3401');
SELECT balance FROM top_up(account_of(12, 'department_wallet', 5), 5000.00, 'WX-BUS');
SELECT owes FROM partner_payment(7, 1000.00, 'BANK-DIDI-0831', '2026-08-31');

-- One charge: heartbeats every 5 minutes for an hour at wh_per_5min, the
-- unplug, the pile's record at once (unless lost).  A lifetime register.
CREATE FUNCTION pg_temp.charge(gun gun_id, o text, t0 timestamptz, wh int, lost boolean DEFAULT false)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	meter0 bigint := extract(epoch FROM t0 - '2026-08-01 00:00+08')::bigint;
BEGIN
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, power_w, order_no)
	SELECT gun, t0 + i * interval '5 min', CASE WHEN i = 13 THEN 'idle' ELSE 'charging' END::evcharge.gun_status,
	       meter0 + least(i, 12) * wh, wh * 12, o
	FROM generate_series(0, 13) i;
	IF NOT lost THEN
		INSERT INTO evcharge.pile_record VALUES (o, gun, t0, t0 + interval '60 min', 12 * wh);
	END IF;
	RETURN o;
END $$;
-- The month: every day member 501 at 07:30 (over the valley's end), the bus
-- company's driver at 10:00, Didi's and Amap's users at station 2 at 12:00
-- and 14:00, member 503 on even days at 19:00, operator 34's member at
-- 09:00.  Amap's charge of 10 September loses its record; so does 503's of
-- 20 September.  The last Didi charge starts 30 September 23:30 and ends in
-- October.
CREATE TEMP TABLE made (order_no text PRIMARY KEY, day date, who text);
DO $$
DECLARE
	d int;
	t date;
BEGIN
	FOR d IN 1 .. 30 LOOP
		t := ('2026-09-01'::date + d - 1);
		INSERT INTO made SELECT pg_temp.charge('44200000120000100001001',
			evcharge.start_session('44200000120000100001001', 501, 'app'), t + time '07:30' AT TIME ZONE 'Asia/Shanghai', 80 + d), t, '501';
		INSERT INTO made SELECT pg_temp.charge('44200000120000100001002',
			evcharge.start_session('44200000120000100001002', 502, 'app'), t + time '10:00' AT TIME ZONE 'Asia/Shanghai', 300 + d * 7), t, 'bus';
		INSERT INTO made SELECT pg_temp.charge('44200000120000100002001',
			evcharge.start_session('44200000120000100002001', NULL, 'partner', 7),
			t + CASE WHEN d = 30 THEN time '23:30' ELSE time '12:00' END AT TIME ZONE 'Asia/Shanghai', 300 + d),
			CASE WHEN d = 30 THEN t + 1 ELSE t END, 'didi';
		INSERT INTO made SELECT pg_temp.charge('44200000120000100002002',
			evcharge.start_session('44200000120000100002002', NULL, 'partner', 8), t + time '14:00' AT TIME ZONE 'Asia/Shanghai', 200 + d,
			d = 10), t, 'amap';
		IF d % 2 = 0 THEN
			INSERT INTO made SELECT pg_temp.charge('44200000120000100002003',
				evcharge.start_session('44200000120000100002003', 503, 'qr'), t + time '19:00' AT TIME ZONE 'Asia/Shanghai', 400,
				d = 20), t, '503';
		END IF;
		INSERT INTO made SELECT pg_temp.charge('44030700340000100001001',
			evcharge.start_session('44030700340000100001001', 3401, 'app'), t + time '09:00' AT TIME ZONE 'Asia/Shanghai', 250), t, 'op34';
	END LOOP;
END $$;
SELECT who, count(*) AS sessions FROM made GROUP BY who ORDER BY who;
-- The two lost records become held bills (code 1); everything else is final.
SELECT * FROM detect_lost_bills('2026-10-02 00:00+08');
SELECT state, anomalies::text, count(*) FROM bill GROUP BY 1, 2 ORDER BY 1, 2;
SELECT * FROM settle_bills();

-- 1. A day as the finance team reads it: 20 September, before the held
-- bill of member 503 is repaired.  Station 1 is the operator's and the bus
-- company's; station 2 the owner's.  No money moved on that day (the
-- top-ups arrived now), so there is no wallets line.
SELECT line, station, sub_operator, sessions, held, unsettled, energy_kwh, energy_fee, service_fee,
       occupancy_fee, discount, total
FROM daily_report(12, '2026-09-20');
-- The bus company sees its own line only; the station 2 owner its own.
SELECT line, station, sub_operator, sessions, total FROM daily_report(12, '2026-09-20', 31);
SELECT line, station, sub_operator, sessions, held, total FROM daily_report(12, '2026-09-20', 32);
-- Operator 34's charges are in its own report only.
SELECT line, station, sessions, total FROM daily_report(34, '2026-09-20');

-- 2. The held bills are repaired: 503's from its heartbeats, Amap's with the
-- pile's own figures as support agreed them by phone (12 x 210 Wh).  A
-- settled bill is corrected too: the bus company's of 15 September was
-- 1 kWh short.  Then settlement.
SELECT total, state FROM repair_bill((SELECT order_no FROM made WHERE who = '503' AND day = '2026-09-20'),
	'record lost; billed from the heartbeats', 'recompute');
SELECT total, state FROM repair_bill((SELECT order_no FROM made WHERE who = 'amap' AND day = '2026-09-10'),
	'record lost; energy as Amap''s statement', 'manual', 2520);
SELECT total AS before_total, energy_wh AS before_wh FROM bill
WHERE order_no = (SELECT order_no FROM made WHERE who = 'bus' AND day = '2026-09-15');
SELECT total, energy_wh, state FROM repair_bill((SELECT order_no FROM made WHERE who = 'bus' AND day = '2026-09-15'),
	'meter check: 1 kWh short', 'manual', (SELECT energy_wh + 1000 FROM bill
	WHERE order_no = (SELECT order_no FROM made WHERE who = 'bus' AND day = '2026-09-15')));
SELECT * FROM settle_bills();
SELECT state, count(*) FROM bill GROUP BY 1 ORDER BY 1;

-- 3. Every day of the month against the ledger.  For the bills of the day
-- the ledger holds what the payer was debited and the revenue credited, by
-- the first settlement and every adjustment; the report must show the same
-- to the fen, per sub-operator too.
CREATE TEMP TABLE ledger_day AS
SELECT (coalesce(b.ended_at, b.started_at) AT TIME ZONE 'Asia/Shanghai')::date AS day,
       a.sub_operator_id, a.kind, -sum(e.amount) AS amount
FROM ledger_txn t JOIN ledger_entry e USING (txn_id) JOIN account a USING (account_id)
JOIN bill b ON b.order_no = t.order_no
WHERE t.kind IN ('bill', 'bill_adjustment') AND t.operator_id = 12 AND a.kind LIKE 'revenue\_%'
GROUP BY 1, 2, 3;
CREATE TEMP TABLE report_month AS
SELECT d::date AS day, r.*
FROM generate_series('2026-09-01'::date, '2026-10-01'::date, interval '1 day') d, daily_report(12, d::date) r;
SELECT count(DISTINCT day) AS days, sum(sessions) FILTER (WHERE line = 'total') AS sessions,
       sum(total) FILTER (WHERE line = 'total') AS total,
       sum(energy_fee) FILTER (WHERE line = 'total') AS energy_fee,
       sum(service_fee) FILTER (WHERE line = 'total') AS service_fee
FROM report_month;
-- Per day and sub-operator: electricity, service net of coupons, occupancy.
SELECT count(*) AS day_sub_operator_lines,
       count(*) FILTER (WHERE r.energy_fee = coalesce(l.el, 0) AND r.service_fee - r.discount = coalesce(l.sv, 0)
                          AND r.occupancy_fee = coalesce(l.oc, 0)
                          AND r.total = coalesce(l.el, 0) + coalesce(l.sv, 0) + coalesce(l.oc, 0)) AS agree
FROM (SELECT day, sub_operator_id, sum(energy_fee) AS energy_fee, sum(service_fee) AS service_fee,
             sum(occupancy_fee) AS occupancy_fee, sum(discount) AS discount, sum(total) AS total
      FROM report_month WHERE line = 'station' GROUP BY 1, 2) r
FULL JOIN (SELECT day, sub_operator_id,
                  sum(amount) FILTER (WHERE kind = 'revenue_electricity') AS el,
                  sum(amount) FILTER (WHERE kind = 'revenue_service') AS sv,
                  sum(amount) FILTER (WHERE kind = 'revenue_occupancy') AS oc
           FROM ledger_day GROUP BY 1, 2) l
  ON l.day = r.day AND l.sub_operator_id IS NOT DISTINCT FROM r.sub_operator_id;
-- The month's total is what the payers' accounts were debited for bills.
SELECT (SELECT sum(total) FROM report_month WHERE line = 'total')
     = (SELECT sum(e.amount) FROM ledger_txn t JOIN ledger_entry e USING (txn_id) JOIN account a USING (account_id)
        WHERE t.kind IN ('bill', 'bill_adjustment') AND t.operator_id = 12
          AND a.kind IN ('member_wallet', 'department_wallet', 'partner_prepaid', 'partner_receivable')) AS month_agrees;
-- And the electricity fee is the electricity fee, not the total.
SELECT bool_and(total = energy_fee + service_fee + occupancy_fee - discount) AS total_is_the_sum,
       bool_and(energy_fee < total) FILTER (WHERE total > 0) AS energy_fee_is_not_the_total
FROM report_month WHERE line = 'station';

-- 4. Wallet movements of today: top-ups, a manual credit and an approved
-- refund.  In one transaction, so that "today" is one day however late the
-- test runs; the report's lines are shown as what these moves added.
BEGIN;
CREATE TEMP TABLE today_before AS
SELECT * FROM daily_report(12, (now() AT TIME ZONE 'Asia/Shanghai')::date) WHERE line <> 'station';
SELECT balance FROM top_up(member_wallet(501), 100.00, 'WX-501-2');
SELECT balance FROM top_up(account_of(12, 'department_wallet', 5), 300.00, 'WX-BUS-2');
SELECT balance FROM manual_credit(member_wallet(503), 5.00, 'goodwill: pile 2/3 out of order', 'CS-1');
SELECT amount, fee FROM approve_refund((SELECT refund_id FROM request_refund(member_wallet(503), 'bank')));
SELECT a.line, a.sub_operator, a.top_ups - coalesce(b.top_ups, 0) AS top_ups, a.credits - coalesce(b.credits, 0) AS credits,
       a.refunds - coalesce(b.refunds, 0) AS refunds, a.refund_fees - coalesce(b.refund_fees, 0) AS refund_fees
FROM daily_report(12, (now() AT TIME ZONE 'Asia/Shanghai')::date) a
LEFT JOIN today_before b ON b.line = a.line AND b.sub_operator_id IS NOT DISTINCT FROM a.sub_operator_id
WHERE a.line <> 'station' ORDER BY a.line DESC, a.sub_operator_id NULLS FIRST;
-- The bus company sees its department's top-up and nothing of the public's.
SELECT line, sub_operator, top_ups > 0 AS has_top_ups, refunds
FROM daily_report(12, (now() AT TIME ZONE 'Asia/Shanghai')::date, 31) WHERE line <> 'station';
SELECT (SELECT top_ups + credits FROM daily_report(12, (now() AT TIME ZONE 'Asia/Shanghai')::date) WHERE line = 'total')
     = (SELECT -sum(e.amount) FROM ledger_txn t JOIN ledger_entry e USING (txn_id) JOIN account a USING (account_id)
        WHERE t.operator_id = 12 AND t.kind IN ('top_up', 'manual_credit')
          AND a.kind IN ('member_wallet', 'department_wallet', 'partner_prepaid')
          AND (t.created_at AT TIME ZONE 'Asia/Shanghai')::date = (now() AT TIME ZONE 'Asia/Shanghai')::date)
       AS wallets_agree;
COMMIT;

-- 5. Partner statements for September.  Didi (prepaid): its deposit of
-- 31 August and 29 charges (the 30th's ended in October); we owe it what
-- is left of the deposit.  Amap (affiliated): 30 charges, its lost record
-- repaired before settlement; it owes them all.
SELECT month, partner_kind, opening, sessions, energy_wh, energy_fee, service_fee, occupancy_fee, charges,
       adjustments, earlier_months, payments, closing, partner_owes, we_owe, pending_bills
FROM partner_statement(7, '2026-09-15');
SELECT month, partner_kind, opening, sessions, energy_wh, energy_fee, service_fee, occupancy_fee, charges,
       adjustments, earlier_months, payments, closing, partner_owes, we_owe, pending_bills
FROM partner_statement(8, '2026-09-01');
-- The statement's charges and energy are the partner's bills of the month.
SELECT s.partner_id, s.charges = (SELECT sum(b.total) FROM bill b JOIN charge_session cs USING (order_no)
                                  WHERE cs.partner_id = s.partner_id AND b.ended_at < '2026-10-01 00:00+08')
       AS charges_are_the_bills,
       s.energy_wh = (SELECT sum(b.energy_wh) FROM bill b JOIN charge_session cs USING (order_no)
                      WHERE cs.partner_id = s.partner_id AND b.ended_at < '2026-10-01 00:00+08') AS energy_is_the_bills
FROM partner_month_statement s ORDER BY 1;
-- Booking again returns the booked statement.
SELECT statement_id, booked_at = (SELECT booked_at FROM partner_month_statement WHERE partner_id = 8) AS same
FROM partner_statement(8, '2026-09-30');

-- 6. After the September statements: Amap pays by bank (once, however often
-- the bank file is read); one of its September bills is found 1 kWh short
-- and repaired (settled already: an adjustment); one of Didi's September
-- charges only now gets its bill (its record came weeks late); Amap's users
-- charge in October.  October's statements carry all of it, each
-- transaction once.
SELECT owes, replayed FROM partner_payment(8, 80.00, 'BANK-AMAP-1008', '2026-10-08');
SELECT owes, replayed FROM partner_payment(8, 80.00, 'BANK-AMAP-1008', '2026-10-08');
SELECT total, state FROM repair_bill((SELECT order_no FROM made WHERE who = 'amap' AND day = '2026-09-12'),
	'Amap''s statement: 1 kWh more', 'manual', (SELECT energy_wh + 1000 FROM bill
	WHERE order_no = (SELECT order_no FROM made WHERE who = 'amap' AND day = '2026-09-12')));
SELECT pg_temp.charge('44200000120000100002004', start_session('44200000120000100002004', NULL, 'partner', 7),
	'2026-09-25 16:00+08', 300, true) AS didi_late \gset
SELECT count(*) AS bills_yet FROM bill WHERE order_no = :'didi_late';
INSERT INTO pile_record VALUES (:'didi_late', '44200000120000100002004', '2026-09-25 16:00+08',
	'2026-09-25 17:00+08', 3600);
SELECT * FROM settle_bills();
INSERT INTO made SELECT pg_temp.charge('44200000120000100002002',
	start_session('44200000120000100002002', NULL, 'partner', 8), d + interval '14 hours', 250), d::date, 'amap'
FROM generate_series('2026-10-01'::timestamp AT TIME ZONE 'Asia/Shanghai', '2026-10-05', interval '1 day') d;
SELECT * FROM settle_bills();
SELECT month, opening, sessions, energy_wh, charges, adjustments, earlier_months, payments, closing, partner_owes, we_owe
FROM partner_statement(8, '2026-10-01');
SELECT month, opening, sessions, energy_wh, charges, adjustments, earlier_months, payments, closing, partner_owes, we_owe
FROM partner_statement(7, '2026-10-01');
-- Its lines: what was carried from September, and the payment.
SELECT s.partner_id, i.kind, i.earlier_month, count(*), sum(i.energy_wh) AS energy_wh, sum(i.amount) AS amount
FROM partner_month_item i JOIN partner_month_statement s USING (statement_id)
WHERE s.month = '2026-10-01' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT count(*) AS lines, count(DISTINCT txn_id) AS transactions FROM partner_month_item;
-- The ledger agrees: what each partner owes now is its last statement's
-- closing plus what no statement carries yet (nothing here).
SELECT p.partner_id, partner_owes(p.partner_id) AS owes_now, s.closing,
       partner_owes(p.partner_id) = s.closing + coalesce((
           SELECT sum(e.amount) FROM ledger_entry e JOIN account a USING (account_id)
           WHERE a.owner_id = p.partner_id AND a.kind IN ('partner_prepaid', 'partner_receivable')
             AND NOT EXISTS (SELECT 1 FROM partner_month_item i WHERE i.txn_id = e.txn_id)), 0) AS ledger_agrees
FROM partner p JOIN partner_month_statement s USING (partner_id)
WHERE s.month = '2026-10-01' ORDER BY 1;
\set VERBOSITY default
\set SHOW_CONTEXT never
-- A month that is not over, a partner that does not exist, a month before
-- a booked one, no month, a bank reference reused for another amount.
SELECT partner_statement(8, '2099-01-01');
SELECT partner_statement(99, '2026-10-01');
SELECT partner_statement(8, '2026-08-01');
SELECT partner_statement(8, NULL);
SELECT * FROM partner_payment(8, 40.00, 'BANK-AMAP-1008');
SELECT * FROM partner_payment(8, 0, 'BANK-AMAP-1009');
-- A report of an operator not registered, or of no day, is an error, not
-- a page of zeros.
SELECT * FROM daily_report(99, '2026-09-20');
SELECT * FROM daily_report(12, NULL);
\set VERBOSITY terse

-- 7. The job books last month's statement of every partner that has none
-- (the fleet app, whose users never charged), once.
SELECT booked FROM book_partner_statements('2026-11-02 04:00+08');
SELECT partner_id, month, sessions, closing FROM partner_month_statement WHERE partner_id = 9;
SELECT booked FROM book_partner_statements('2026-11-02 04:00+08');
SELECT * FROM verify_ledger();

\i sql/include/reset.sql
