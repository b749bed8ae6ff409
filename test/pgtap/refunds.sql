-- pgTAP: refunds.  The fee bands' catalogue entries and rule over random
-- amounts; a generated run of refunds of bills (partial and whole, sent
-- twice, to members', departments' and partners' accounts) and of parts of
-- wallets, checked against the ledger and each bill's own figures; a
-- refund on a partner's monthly statement; a card's daily spending limit.
BEGIN;
SELECT plan(46);
SET LOCAL search_path = public, evcharge;
SET LOCAL timezone = 'Asia/Shanghai';
SELECT setseed(0.3);

-- The catalogue.
SELECT has_table('evcharge', 'refund_fee_bands', 'table refund_fee_bands exists');
SELECT has_table('evcharge', 'bill_refund', 'table bill_refund exists');
SELECT has_function('evcharge', 'refund_fee', ARRAY['numeric', 'text'], 'refund_fee(amount, method) is kept');
SELECT has_function('evcharge', 'refund_fee', ARRAY['bigint', 'numeric', 'text'], 'refund_fee(operator, amount, method) exists');
SELECT volatility_is('evcharge', 'refund_fee', ARRAY['numeric', 'text'], 'immutable', 'refund_fee by the default bands is IMMUTABLE');
SELECT volatility_is('evcharge', 'refund_fee', ARRAY['bigint', 'numeric', 'text'], 'stable', 'refund_fee by an operator''s bands is STABLE');
SELECT has_function('evcharge', 'request_refund', ARRAY['bigint', 'text', 'numeric'], 'request_refund(account, method, amount) exists');
SELECT hasnt_function('evcharge', 'request_refund', ARRAY['bigint', 'text'], 'and no two-argument overload beside it (calls with two arguments take the default)');
SELECT is(
	(SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
	 WHERE p.pronamespace = 'evcharge'::regnamespace AND p.proname IN ('refund_bill', 'request_refund')
	   AND NOT (p.provolatile = 'v' AND p.proparallel = 'u' AND 'search_path=pg_catalog, pg_temp' = ANY (p.proconfig))),
	NULL, 'refund_bill and request_refund are VOLATILE PARALLEL UNSAFE with a fixed search_path');
SELECT is(
	(SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
	 WHERE p.pronamespace = 'evcharge'::regnamespace
	   AND p.proname IN ('card_day_spending', 'check_card_limit', 'bill_history', 'bill_refunded', 'ocpp_authorize')
	   AND NOT (p.provolatile = 's' AND p.proparallel = 's' AND 'search_path=pg_catalog, pg_temp' = ANY (p.proconfig))),
	NULL, 'the readers (card_day_spending, check_card_limit, bill_history, bill_refunded, ocpp_authorize) are STABLE PARALLEL SAFE');
SELECT is((SELECT array_agg(r.relname::text ORDER BY r.relname)
           FROM pg_extension x, unnest(x.extconfig) c(oid) JOIN pg_class r ON r.oid = c.oid
           WHERE x.extname = 'evcharge' AND r.relname IN ('refund_fee_bands', 'bill_refund', 'bill_refund_bill_refund_id_seq')),
	ARRAY['bill_refund', 'bill_refund_bill_refund_id_seq', 'refund_fee_bands'],
	'refund_fee_bands, bill_refund and its sequence are dumped with the data');

-- The fee: finance's example, and the rule over 2,000 random amounts up to
-- the last band, truncated to the fen, never above the exact figure.
INSERT INTO operator VALUES (93, 'tap refunds'), (94, 'tap other');
SELECT is((SELECT count(*) FROM refund_fee_bands WHERE operator_id = 93), 2::bigint, 'a new operator gets bank and provider bands');
SELECT is(refund_fee(93, 20000, 'bank'), 132.00::numeric, 'refund_fee(20000, bank) is 12 + 0.6 %: 132.00');
SELECT is(refund_fee(20000, 'bank'), 132.00::numeric, 'and by the default bands too');
SELECT is(
	(SELECT count(*) FROM (SELECT round((random() * 100000)::numeric, 2) AS a FROM generate_series(1, 2000)) x
	 WHERE refund_fee(93, a, 'bank') <> trunc(CASE WHEN a < 10000 THEN 6 ELSE 12 END + a * 0.006, 2)
	    OR refund_fee(93, a, 'provider') <> trunc(a * 0.006, 2)
	    OR refund_fee(93, a, 'bank') > CASE WHEN a < 10000 THEN 6 ELSE 12 END + a * 0.006
	    OR refund_fee(93, a, 'bank') <> refund_fee(a, 'bank')),
	0::bigint, 'bank fees of 2,000 random amounts up to 100,000: 6 yuan under 10,000, 12 from it, plus 0.6 %, to the fen');
SELECT is(refund_fee(93, 10000, 'bank') - refund_fee(93, 9999.99, 'bank'), 6.01::numeric, '10,000.00 is in the second band');
SELECT throws_ok($$SELECT refund_fee(93, 100000.01, 'bank')$$, '22023',
	'a bank refund of 100000.01 yuan is above the last fee band', 'above the last band: refused');
UPDATE refund_fee_bands SET up_to = '{500,1000}', fixed_fee = '{1,2}', rate = 0.01 WHERE operator_id = 94 AND method = 'bank';
SELECT is(ARRAY[refund_fee(94, 500, 'bank'), refund_fee(94, 500.01, 'bank'), refund_fee(93, 500, 'bank')],
	ARRAY[6.00, 7.00, 9.00]::numeric[], 'an operator''s own bands price its refunds only');
SELECT throws_ok($$SELECT refund_fee(94, 1000.01, 'bank')$$, '22023', NULL, 'and end where its last band ends');

-- A generated run: 40 charges at two stations, paid by members, a
-- department and an affiliated partner, all settled.
INSERT INTO station (station_id, operator_id, name) VALUES (931, 93, 'tap A'), (932, 93, 'tap B');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name)
SELECT s, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500', '[2026-01-01,)', 'AC'
FROM unnest(ARRAY[931, 932]) s;
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('44200000930000100001', 931, 40, 7000, 'AC-2.3.1'), ('44200000930000100002', 932, 40, 7000, 'AC-2.3.1');
INSERT INTO customer_group (group_id, operator_id, name, pays_for_members) VALUES (93, 93, 'tap crew', true);
INSERT INTO member (member_id, operator_id, group_id, card_no)
SELECT 9300 + i, 93, CASE WHEN i > 4 THEN 93 END, '93000000000000' || lpad(i::text, 2, '0') FROM generate_series(1, 6) i;
INSERT INTO partner (partner_id, operator_id, name, kind) VALUES (93, 93, 'tap app', 'affiliated');
DO $$
BEGIN
	PERFORM evcharge.maintain_partitions('2026-09-20 12:00+08');
	PERFORM evcharge.top_up(evcharge.member_wallet(9300 + i), 500.00, 'TAP-TOPUP-' || i) FROM generate_series(1, 4) i;
	PERFORM evcharge.top_up(evcharge.account_of(93, 'department_wallet', 93), 500.00, 'TAP-TOPUP-DEPT');
END $$;
CREATE TEMP TABLE charged (n int, order_no text);
DO $$
DECLARE
	i int;
	o text;
	g evcharge.gun_id;
	t0 timestamptz;
	wh int;
BEGIN
	FOR i IN 1 .. 40 LOOP
		g := evcharge.gun_id(CASE WHEN i % 2 = 0 THEN '44200000930000100001' ELSE '44200000930000100002' END::evcharge.pile_id, i);
		o := CASE WHEN i % 5 = 0 THEN evcharge.start_session(g, NULL, 'partner', 93)
		          ELSE evcharge.start_session(g, 9300 + 1 + i % 6, 'app') END;
		t0 := '2026-09-20 07:00+08'::timestamptz + i * interval '7 min';
		wh := 60 + floor(random() * 60)::int;
		INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, order_no)
		SELECT g, t0 + k * interval '1 min', CASE WHEN k = 60 THEN 'idle' ELSE 'charging' END::evcharge.gun_status,
		       1000 + least(k, 59) * wh, o
		FROM generate_series(0, 60) k;
		INSERT INTO evcharge.pile_record VALUES (o, g, t0, t0 + interval '59 min', 59 * wh);
		INSERT INTO charged VALUES (i, o);
	END LOOP;
END $$;
SELECT is((SELECT settled FROM settle_bills()), 40::bigint, 'the 40 bills are settled');

-- Refunds of them: each bill gets 0 to 3 requests, of a random part or of
-- what is left, one in four sent twice; some ask too much and are refused.
CREATE TEMP TABLE asked (key text, order_no text, amount numeric, outcome text, account_id bigint);
DO $$
DECLARE
	c record;
	k int;
	key text;
	a numeric;
	r record;
	st text;
BEGIN
	FOR c IN SELECT * FROM charged ORDER BY n LOOP
		FOR k IN 1 .. floor(random() * 4)::int LOOP
			key := format('TAP-%s-%s', c.n, k);
			a := CASE WHEN random() < 0.3 THEN NULL ELSE round((random() * 6)::numeric, 2) END;
			BEGIN
				r := evcharge.refund_bill(c.order_no, 'generated dispute', key, nullif(a, 0));
				INSERT INTO asked VALUES (key, c.order_no, r.refunded, 'refunded', r.account_id);
				IF random() < 0.25 THEN
					r := evcharge.refund_bill(c.order_no, 'generated dispute', key, nullif(a, 0));
					INSERT INTO asked VALUES (key, c.order_no, r.refunded, CASE WHEN r.replayed THEN 'replayed' ELSE 'twice!' END,
						r.account_id);
				END IF;
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
				INSERT INTO asked VALUES (key, c.order_no, a, 'refused ' || st, NULL);
			END;
		END LOOP;
	END LOOP;
END $$;
SELECT ok((SELECT count(*) FROM asked WHERE outcome = 'refunded') > 20
          AND (SELECT count(*) FROM asked WHERE outcome = 'replayed') > 3
          AND (SELECT count(*) FROM asked WHERE outcome LIKE 'refused%') > 3,
	'the run refunded, replayed and refused');
SELECT is((SELECT count(*) FROM asked WHERE outcome = 'twice!'), 0::bigint, 'a request sent twice is a replay');
SELECT is((SELECT array_agg(DISTINCT outcome) FROM asked WHERE outcome LIKE 'refused%'),
	ARRAY['refused 22023', 'refused 55000'], 'refusals are 22023 (more than is left) or 55000 (nothing left)');
SELECT is((SELECT count(*) FROM verify_ledger()), 0::bigint, 'after the run the ledger has no discrepancy');
SELECT is(
	(SELECT count(*) FROM bill b
	 WHERE (SELECT coalesce(sum(r.amount), 0) FROM bill_refund r WHERE r.order_no = b.order_no) > b.total
	    OR (SELECT coalesce(sum(r.energy_fee), 0) FROM bill_refund r WHERE r.order_no = b.order_no) > b.energy_fee
	    OR (SELECT coalesce(sum(r.service_fee), 0) FROM bill_refund r WHERE r.order_no = b.order_no) > b.service_fee - b.discount
	    OR (SELECT coalesce(sum(r.occupancy_fee), 0) FROM bill_refund r WHERE r.order_no = b.order_no) > b.occupancy_fee),
	0::bigint, 'no bill gave back more than it charged, in all or on any line');
SELECT is(
	(SELECT count(*) FROM bill_refund r
	 WHERE r.amount <> (SELECT -e.amount FROM ledger_entry e WHERE e.txn_id = r.txn_id AND e.account_id = r.account_id)
	    OR r.energy_fee + r.service_fee + r.occupancy_fee <> (SELECT sum(e.amount) FROM ledger_entry e
	       JOIN account a USING (account_id) WHERE e.txn_id = r.txn_id AND a.kind LIKE 'revenue\_%')),
	0::bigint, 'each refund credits its payer its amount and debits revenue its parts');
SELECT is(
	(SELECT count(*) FROM bill_refund r JOIN charged c USING (order_no)
	 WHERE r.account_id <> (bill_parties(r.order_no)).payer),
	0::bigint, 'each refund went to the account that pays the bill (member, department or partner)');
SELECT is(
	(SELECT array_agg(DISTINCT a.kind ORDER BY a.kind) FROM bill_refund r JOIN account a USING (account_id)),
	ARRAY['department_wallet', 'member_wallet', 'partner_receivable'], 'refunds reached all three kinds of payer');
SELECT is(
	(SELECT count(*) FROM bill_refund r
	 WHERE NOT EXISTS (SELECT 1 FROM bill_revision v WHERE v.bill_refund_id = r.bill_refund_id AND v.method = 'refund'
	                   AND v.order_no = r.order_no AND v.reason = r.reason)),
	0::bigint, 'every refund has the bill revision that names it');
SELECT is(
	(SELECT count(*) FROM bill b WHERE b.revision <> (SELECT count(*) FROM bill_revision v WHERE v.order_no = b.order_no)),
	0::bigint, 'each bill''s revision counts its revisions, refunds among them');
SELECT is(
	(SELECT count(*) FROM charged c
	 WHERE (SELECT coalesce(max(h.refunded), 0) FROM bill_history(c.order_no) h)
	       <> (bill_refunded(c.order_no)).total),
	0::bigint, 'each bill''s history adds up to what its refunds gave back');
SELECT is(
	(SELECT count(*) FROM account a
	 WHERE a.operator_id = 93 AND a.kind IN ('member_wallet', 'department_wallet')
	   AND a.balance <> 500.00
	       - (SELECT coalesce(sum(e.amount), 0) FROM ledger_txn t JOIN ledger_entry e USING (txn_id)
	          WHERE t.kind = 'bill' AND e.account_id = a.account_id)
	       + (SELECT coalesce(sum(r.amount), 0) FROM bill_refund r WHERE r.account_id = a.account_id)),
	0::bigint, 'every wallet holds its top-up less its bills plus its bills'' refunds');

-- Parts of wallets: each member asks for a random part by provider; the
-- wallet keeps the rest, the fee is 0.6 % of the part.
CREATE TEMP TABLE part AS
SELECT a.account_id, a.balance AS before, greatest(round((random() * a.balance)::numeric, 2), 0.01) AS amount
FROM account a WHERE a.operator_id = 93 AND a.kind = 'member_wallet';
SELECT is((SELECT count(*) FROM part p, request_refund(p.account_id, 'provider', p.amount) r
           WHERE r.amount <> p.amount OR r.fee <> trunc(p.amount * 0.006, 2)), 0::bigint,
	'a partial refund freezes the amount asked for, its fee by the bands');
SELECT is((SELECT count(*) FROM part p JOIN account a USING (account_id) WHERE a.balance <> p.before - p.amount),
	0::bigint, 'and the wallet keeps the rest');
SELECT is((SELECT count(*) FROM part p, approve_refund((SELECT f.refund_id FROM refund f WHERE f.account_id = p.account_id
                                                         AND f.state = 'requested')) r WHERE r.state <> 'approved'),
	0::bigint, 'partial refunds are approved as any refund');
SELECT is((SELECT count(*) FROM verify_ledger()), 0::bigint, 'the ledger still has no discrepancy');

-- On the partner's statements: the bills of September on September's; a
-- refund made on 5 October on October's, as a refund that lowers what the
-- partner owes.  (The refund is moved to October by hand: the ledger does
-- not allow it, so its immutability trigger is off for that one update.)
SELECT partner_owes(93) AS owes_before_statements \gset
SELECT coalesce(sum(amount), 0) AS p_refunded_before FROM bill_refund WHERE order_no IN (SELECT order_no FROM charged WHERE n % 5 = 0) \gset
SELECT is((SELECT refunds FROM partner_statement(93, '2026-08-01')), 0::numeric, 'August: nothing');
SET CONSTRAINTS ALL IMMEDIATE;	-- the balance checks now, or the table cannot be altered
ALTER TABLE ledger_txn DISABLE TRIGGER ledger_txn_immutable;
UPDATE ledger_txn SET created_at = '2026-10-05 10:00+08' WHERE kind = 'bill_refund' AND operator_id = 93;
ALTER TABLE ledger_txn ENABLE TRIGGER ledger_txn_immutable;
SET CONSTRAINTS ALL DEFERRED;
SELECT ok((SELECT s.refunds = 0 AND s.charges = s.energy_fee + s.service_fee + s.occupancy_fee AND s.sessions = 8
           FROM partner_statement(93, '2026-09-01') s),
	'September''s statement has the partner''s 8 bills and no refund');
SELECT is((SELECT s.refunds FROM partner_statement(93, '2026-10-01') s), -:p_refunded_before::numeric,
	'October''s has its bills'' refunds, negative');
SELECT is((SELECT s.closing FROM partner_statement(93, '2026-10-01') s), :owes_before_statements::numeric,
	'and closes at what the partner owes');

-- A card's daily limit: member 9301's card may spend 20.00 a day; its
-- charges by card today count, its app charges do not.
UPDATE member SET card_daily_limit = 20.00 WHERE member_id = 9301;
SELECT is(ocpp_authorize('44200000930000100001', '9300000000000001'), 'Accepted', 'under its limit a card is Accepted');
DO $$
BEGIN
	PERFORM evcharge.start_session(evcharge.gun_id('44200000930000100001', 39), 9301, 'card');
	UPDATE evcharge.charge_session SET running_total = 20.00 WHERE member_id = 9301 AND channel = 'card';
END $$;
SELECT is(ocpp_authorize('44200000930000100001', '9300 0000 0000 0001'), 'Blocked', 'at its limit (a charge running) it is Blocked');
SELECT throws_ok($$SELECT start_session(gun_id('44200000930000100001', 40), 9301, 'card')$$, 'EV002', NULL,
	'and a start by card is refused with EV002');

-- A pile that rebooted mid-charge resends its StartTransaction: the charge
-- it starts is not held against itself.  Member 9302's card (limit 10.00)
-- starts at an OCPP pile, the charge comes to 10.00, the start is resent.
UPDATE member SET card_daily_limit = 10.00 WHERE member_id = 9302;
SELECT is((ocpp_start_transaction('44200000930000100001', 37, '9300000000000002', 0, '2026-11-21 08:00+08')).status,
	'Accepted', 'StartTransaction of a card under its limit: Accepted');
INSERT INTO charge_session (order_no, gun, station_id, member_id, channel, state, running_total)
SELECT t.order_no, gun_id(t.pile_id, t.connector_id), 931, 9302, 'card', 'charging', 10.00
FROM ocpp_transaction t WHERE t.id_tag = '9300000000000002';
SELECT is((ocpp_start_transaction('44200000930000100001', 37, '9300000000000002', 0, '2026-11-21 08:00+08')).status,
	'Accepted', 'the same StartTransaction resent once its charge reached the limit: still Accepted');
SELECT is(ocpp_authorize('44200000930000100001', '9300000000000002'), 'Blocked', 'while a new Authorize of the card is Blocked');

SELECT * FROM finish();
ROLLBACK;
