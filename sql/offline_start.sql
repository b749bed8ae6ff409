-- Charges started at the pile (card, VIN, the station's password): the
-- platform learns of them from the pile's heartbeats and record.  The
-- record says how the charge was started and names the card or vehicle;
-- the member it belongs to then pays from the right wallet, at the right
-- price, under the right partner contract.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'Shiqi bus depot');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name)
VALUES (1, 'AC', '00:00-24:00 flat | flat 0.7000+0.4500', '[2026-01-01,)', 'AC');
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('44200000120000100001', 1, 9, 7000, 'AC-2.3.1');
SELECT created FROM maintain_partitions('2026-11-20 12:00+08');
-- The bus company pays for its drivers and has a group price (0.40).
-- Didi's contract allows QR starts only; member 503 is a Didi user who
-- holds one of our cards.
INSERT INTO customer_group (group_id, operator_id, name, service_fee, pays_for_members)
VALUES (5, 12, 'Bus company', 0.4000, true);
INSERT INTO group_station VALUES (5, 1);
INSERT INTO partner (partner_id, operator_id, name, kind, allowed_channels)
VALUES (7, 12, 'Didi charging', 'prepaid', '{qr,partner}');
INSERT INTO member (member_id, operator_id, group_id, card_no, vin, partner_id) VALUES
	(501, 12, NULL, '1000200030004000', NULL, NULL),
	(502, 12, 5, '1000200030004001', NULL, NULL),
	(503, 12, NULL, '1000200030004002', NULL, 7),
	(504, 12, NULL, NULL, 'LSVAU2180N2000001', NULL);
SELECT top_up(member_wallet(501), 100.00, 'WX-501') IS NOT NULL AS topped_up;
SELECT top_up(member_wallet(504), 100.00, 'WX-504') IS NOT NULL AS topped_up;
SELECT top_up(account_of(12, 'department_wallet', 5), 100.00, 'WX-BUS') IS NOT NULL AS topped_up;
SELECT top_up(account_of(12, 'partner_prepaid', 7), 100.00, 'WX-DIDI') IS NOT NULL AS topped_up;

-- A charge at the pile: its own order number on the heartbeats (the
-- platform was not asked), an hour at 6 kWh, then the record.
CREATE FUNCTION pg_temp.charge(g int, o text, start_by text, card text, vin text) RETURNS void LANGUAGE sql AS $$
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, order_no)
	SELECT evcharge.gun_id('44200000120000100001', g), '2026-11-20 08:00+08'::timestamptz + i * interval '5 min',
	       CASE WHEN i = 13 THEN 'idle' ELSE 'charging' END::evcharge.gun_status, 500000 + least(i, 12) * 500,
	       CASE WHEN i < 13 THEN o END
	FROM generate_series(0, 13) i;
	INSERT INTO evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh, start_by, card_no, vin)
	VALUES (o, evcharge.gun_id('44200000120000100001', g), '2026-11-20 08:00+08', '2026-11-20 09:00+08', 6000,
	        start_by, card, vin);
$$;
SELECT pg_temp.charge(1, 'P-CARD-501', 'card', '1000 2000 3000 4000', NULL);	-- written in groups of four
SELECT pg_temp.charge(2, 'P-CARD-BUS', 'card', '1000200030004001', NULL);
SELECT pg_temp.charge(3, 'P-CARD-DIDI', 'card', '1000200030004002', NULL);
SELECT pg_temp.charge(4, 'P-VIN-504', 'vin', NULL, 'LSVAU2180N2000001');
SELECT pg_temp.charge(5, 'P-CARD-UNKNOWN', 'card', '9999000011112222', NULL);
SELECT pg_temp.charge(6, 'P-PASSWORD', 'password', NULL, NULL);
SELECT pg_temp.charge(7, 'P-OLD-PILE', NULL, NULL, NULL);	-- a pile that does not say

-- Who started each, and at what price: electricity 4.20; service 2.70, or
-- 2.40 at the bus company's price.  Didi's user started by card, which its
-- contract does not allow: anomaly 14, held.
SELECT s.order_no, s.channel, s.member_id, s.group_id, s.partner_id, s.card_no, s.vin,
       b.service_fee, b.total, b.anomalies, b.state
FROM charge_session s JOIN bill b USING (order_no) ORDER BY s.order_no;
-- Settlement: each from the wallet of whoever the card or vehicle belongs
-- to; the unknown card and the password to unassigned receivable (the card
-- number is kept to find its owner later).  The held one is not charged.
SELECT * FROM settle_bills();
SELECT a.kind, a.owner_id, a.balance FROM account a
WHERE a.kind IN ('member_wallet', 'department_wallet', 'partner_prepaid', 'unassigned_receivable')
ORDER BY a.kind, a.owner_id;

-- A Didi user is Didi's however the charge starts: at the app (start_session)
-- the partner is found from the member, and its contract applies.
SELECT start_session('44200000120000100001008', 503, 'qr') AS o_qr \gset
SELECT start_session('44200000120000100001009', 503, 'app') AS o_app \gset
SELECT channel, partner_id FROM charge_session WHERE order_no IN (:'o_qr', :'o_app') ORDER BY channel;
INSERT INTO heartbeat (gun, ts, status, meter_wh, order_no)
SELECT evcharge.gun_id('44200000120000100001', g), '2026-11-20 10:00+08'::timestamptz + i * interval '5 min',
       CASE WHEN i = 13 THEN 'idle' ELSE 'charging' END::gun_status, 600000 + least(i, 12) * 500,
       CASE WHEN i < 13 THEN CASE g WHEN 8 THEN :'o_qr' ELSE :'o_app' END END
FROM generate_series(0, 13) i, generate_series(8, 9) g;
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh, start_by)
VALUES (:'o_qr', '44200000120000100001008', '2026-11-20 10:00+08', '2026-11-20 11:00+08', 6000, 'remote'),
       (:'o_app', '44200000120000100001009', '2026-11-20 10:00+08', '2026-11-20 11:00+08', 6000, 'remote');
SELECT s.channel, b.anomalies, b.state FROM charge_session s JOIN bill b USING (order_no)
WHERE order_no IN (:'o_qr', :'o_app') ORDER BY s.channel;

-- A card belongs to one member of an operator.
\set VERBOSITY terse
INSERT INTO member (member_id, operator_id, card_no) VALUES (505, 12, '1000200030004000');
\set VERBOSITY default

\i sql/include/reset.sql
