-- Partners' own order numbers.  Didi's app numbers each of our sessions
-- with 27 digits of its own, and its monthly statement is keyed by them.
-- The session keeps the partner's number beside ours (from the start call
-- or from the pile's record), one session per number and partner; the bill
-- and the evidence show it; and the reconciliation finds a statement line
-- by either number.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'Xiaolan public');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name)
VALUES (1, 'AC', '00:00-24:00 flat | flat 0.7000+0.4500', '[2026-01-01,)', 'AC');
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('44200000120000100001', 1, 9, 7000, 'AC-2.3.1');
SELECT created FROM maintain_partitions('2026-11-20 12:00+08');
-- Each partner says how its numbers look: Didi's have 27 digits; the map
-- app's numbers have no fixed length (letters, digits, "-" and "_").
-- Member 503 is a Didi user who holds one of our cards.
INSERT INTO partner (partner_id, operator_id, name, kind, order_no_digits) VALUES
	(7, 12, 'Didi charging', 'prepaid', 27),
	(8, 12, 'Map app', 'affiliated', NULL);
INSERT INTO member (member_id, operator_id, card_no, partner_id) VALUES (503, 12, '1000200030004002', 7);
SELECT top_up(account_of(12, 'partner_prepaid', 7), 100.00, 'WX-DIDI') IS NOT NULL AS topped_up;

-- An hour at 6 kWh on gun g under order o, and the pile's record, which
-- may carry the partner's number (rec_no) and say who started it.
CREATE FUNCTION pg_temp.charge(g int, o text, rec_no text, card text DEFAULT NULL) RETURNS void LANGUAGE sql AS $$
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, order_no)
	SELECT evcharge.gun_id('44200000120000100001', g), '2026-11-20 08:00+08'::timestamptz + i * interval '5 min',
	       CASE WHEN i = 13 THEN 'idle' ELSE 'charging' END::evcharge.gun_status, 500000 + least(i, 12) * 500,
	       CASE WHEN i < 13 THEN o END
	FROM generate_series(0, 13) i;
	INSERT INTO evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh, start_by, card_no, partner_order_no)
	VALUES (o, evcharge.gun_id('44200000120000100001', g), '2026-11-20 08:00+08', '2026-11-20 09:00+08', 6000,
	        CASE WHEN card IS NOT NULL THEN 'card' END, card, rec_no);
$$;

-- 1. Didi's app starts a charge and passes its own number as the fifth
--    argument of start_session.  The session keeps both numbers.
SELECT start_session('44200000120000100001001', NULL, 'partner', 7, '100000000020261120080000001') AS didi_order \gset
SELECT order_no = :'didi_order' AS ours, partner_id, partner_order_no
FROM charge_session WHERE gun = '44200000120000100001001';

-- 2. What start_session refuses: a number not in Didi's form (22023, the
--    detail saying what is wrong), a number with no partner (22023), and a
--    number Didi has already used (23505, naming the order that has it).
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT start_session('44200000120000100001002', NULL, 'partner', 7, '10000000002026112008000000');
SELECT start_session('44200000120000100001002', NULL, 'partner', 7, 'DIDI-20261120-0001');
SELECT start_session('44200000120000100001002', NULL, 'app', NULL, 'MA-2026-0001');
CREATE FUNCTION pg_temp.try_start(g int, member bigint, channel text, partner bigint, no text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM evcharge.start_session(evcharge.gun_id('44200000120000100001', g), member, channel, partner, no);
	RETURN 'started';
EXCEPTION WHEN others THEN
	RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
SELECT replace(pg_temp.try_start(2, NULL, 'partner', 7, '100000000020261120080000001'), :'didi_order', '<didi order>') AS same_didi_number,
       pg_temp.try_start(2, NULL, 'partner', 8, 'MA 2026 0001') AS with_spaces,
       pg_temp.try_start(2, 503, 'app', NULL, '1000000000202611200800000012') AS didi_user_28_digits;
-- A refused start leaves nothing behind: gun 2 is free.
SELECT count(*) AS sessions_on_gun_2 FROM charge_session WHERE gun = '44200000120000100001002';

-- 3. The map app's numbers have no fixed length; a call with four
--    arguments, as before, gives no partner number.
SELECT start_session('44200000120000100001002', NULL, 'partner', 8, 'MA-2026-0001') AS map_order \gset
SELECT start_session('44200000120000100001003', NULL, 'partner', 8) AS map_order_2 \gset
SELECT gun, partner_id, partner_order_no FROM charge_session
WHERE order_no IN (:'map_order', :'map_order_2') ORDER BY gun;

-- 4. The charges run and their records come.  Didi's record carries no
--    number (the session has Didi's from the start); the map app's second
--    session's record names a number the map app has used already.
SELECT pg_temp.charge(1, :'didi_order', NULL);
SELECT pg_temp.charge(2, :'map_order', 'MA-2026-0001');
SELECT pg_temp.charge(3, :'map_order_2', 'MA-2026-0001');
-- 5. Charges started at the pile: the records name the card and the
--    partner's number.  The card is a Didi user's, so the session is Didi's
--    and takes the number; a card nobody registered makes a session with no
--    partner, which cannot take one; nor can a Didi session take a number
--    not in Didi's form.
SELECT pg_temp.charge(4, 'P-CARD-DIDI', '100000000020261120080000002', '1000200030004002');
SELECT pg_temp.charge(5, 'P-CARD-UNKNOWN', '100000000020261120080000003', '9999000011112222');
SELECT pg_temp.charge(6, 'P-CARD-DIDI-2', '1000-0000', '1000200030004002');

-- The bills show the partner's number; a number the session could not
-- take is said in applied, and the bill is made all the same.
SELECT CASE b.order_no WHEN :'didi_order' THEN 'didi app' WHEN :'map_order' THEN 'map app'
                       WHEN :'map_order_2' THEN 'map app, 4 arguments' ELSE b.order_no END AS session,
       cs.partner_id, b.partner_order_no, b.total, b.state, replace(b.applied::text, :'map_order', '<map order>') AS applied
FROM bill b JOIN charge_session cs USING (order_no) ORDER BY b.gun;
-- Both numbers, side by side, for each partner:
SELECT partner_id, count(*) AS sessions, count(partner_order_no) AS with_partner_number
FROM charge_session GROUP BY partner_id ORDER BY partner_id;

-- 6. A loader that does not know the new column COPYs records as before
--    (the column is NULL); one that knows it names it.  Both charges were
--    started at the pile with the Didi user's card.
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
SELECT gun_id('44200000120000100001', g), '2026-11-20 10:00+08'::timestamptz + i * interval '5 min',
       CASE WHEN i = 13 THEN 'idle' ELSE 'charging' END::gun_status, 700000 + least(i, 12) * 500,
       CASE WHEN i < 13 THEN CASE g WHEN 7 THEN 'P-COPY-OLD' ELSE 'P-COPY-NEW' END END
FROM generate_series(7, 8) g, generate_series(0, 13) i;
COPY pile_record (order_no, gun, started_at, ended_at, energy_wh, start_by, card_no) FROM stdin;
P-COPY-OLD	44200000120000100001007	2026-11-20 10:00+08	2026-11-20 11:00+08	6000	card	1000200030004002
\.
COPY pile_record (order_no, gun, started_at, ended_at, energy_wh, start_by, card_no, partner_order_no) FROM stdin;
P-COPY-NEW	44200000120000100001008	2026-11-20 10:00+08	2026-11-20 11:00+08	6000	card	1000200030004002	100000000020261120100000004
\.
SELECT r.order_no, r.partner_order_no AS in_record, cs.partner_id, cs.partner_order_no AS on_session,
       b.partner_order_no AS on_bill, b.total
FROM pile_record r JOIN charge_session cs USING (order_no) JOIN bill b USING (order_no)
WHERE r.order_no LIKE 'P-COPY-%' ORDER BY r.order_no;

-- 7. The evidence names both numbers in its header: ours in the title
--    line, the partner's on a line of its own (a session without one has
--    no such line).
SELECT h.i, replace(l.line, :'didi_order', '<didi order>') AS header
FROM regexp_matches(substring(session_chart(:'didi_order') FROM '<g id="header">.*?</g>'), '<text[^>]*>([^<]*)</text>', 'g')
     WITH ORDINALITY h(m, i), LATERAL (SELECT h.m[1] AS line) l
WHERE h.i <= 3;
SELECT count(*) FILTER (WHERE m[1] LIKE 'Partner order%') AS partner_lines
FROM regexp_matches(substring(session_chart('P-CARD-UNKNOWN') FROM '<g id="header">.*?</g>'), '<text[^>]*>([^<]*)</text>', 'g') m;

-- 8. Didi's statement keys each line by Didi's number; a line keyed by
--    ours is found too.  Here Didi has the app start (its number), the
--    card start with 1 yuan less (its number), the first COPY charge by our
--    number, and a number we never had; it lacks the last COPY charge.
--    (The statement is stored as import_statement would store it.)
INSERT INTO statement_source (operator_id, kind, partner_id, url_template, secret, name)
VALUES (12, 'partner', 7, 'https://didi.example/statements/{day}.csv', 'didi-secret-didi-secret', 'didi-7');
INSERT INTO partner_statement_line (source_id, day, order_no, energy_wh, total) VALUES
	(1, '2026-11-20', '100000000020261120080000001', 6000, 6.90),
	(1, '2026-11-20', '100000000020261120080000002', 6000, 5.90),
	(1, '2026-11-20', 'P-COPY-OLD', 6000, 6.90),
	(1, '2026-11-20', '100000000020261120089999999', 6000, 6.90);
SELECT kind, key, ours, theirs FROM reconcile_statement(1, '2026-11-20');

-- Leave the database as found: pg_regress runs every file in one database.
\i sql/include/reset.sql
