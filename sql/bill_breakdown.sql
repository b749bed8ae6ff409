-- A bill's own breakdown: how its electricity and service fees were made,
-- per class, exact and as charged, kept with the bill (bill.breakdown) and
-- with each revision (bill_revision keeps whole rows), so that
-- SELECT ... FROM bill answers "how was this total made" without price().
-- Keyed by class name: a jsonb array of {class, wh, energy_fee_exact,
-- energy_fee, service_fee_exact, service_fee}, one object per class with
-- energy.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.');
INSERT INTO station (station_id, operator_id, name) VALUES (1, 12, 'Shiqi bus depot');
-- The valley ends at 08:00; from 21 November a winter plan, flat all day.
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
	(1, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500',
	 '[2026-01-01,2026-11-21)', 'AC 2026'),
	(1, 'AC', '00:00-24:00 flat | flat 0.8000+0.5000', '[2026-11-21,)', 'AC winter');
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('44200000120000100001', 1, 4, 22000, 'AC-2.3.1'),
	('44200000120000200001', 1, 1, 60000, 'DC-5.0.2');	-- a DC pile: the station has no DC plan
SELECT created FROM maintain_partitions('2026-11-20 12:00+08');
-- The bus company's drivers pay 0.40 service at this station.
INSERT INTO customer_group (group_id, operator_id, name, service_fee) VALUES (5, 12, 'Bus company', 0.4000);
INSERT INTO group_station VALUES (5, 1);
INSERT INTO member (member_id, operator_id, group_id, card_no) VALUES (502, 12, 5, '1000200030004001');

-- A charge at the pile: the meter at the given times (one heartbeat each,
-- then idle five minutes after the last), and the pile's record.
CREATE FUNCTION pg_temp.charge(gun evcharge.gun_id, o text, t timestamptz[], wh bigint[], card text DEFAULT NULL)
RETURNS void LANGUAGE sql AS $$
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, order_no)
	SELECT gun, u.t, 'charging'::evcharge.gun_status, 100000 + u.w, o FROM unnest(t, wh) u(t, w)
	UNION ALL
	SELECT gun, t[cardinality(t)] + interval '5 min', 'idle'::evcharge.gun_status, 100000 + wh[cardinality(wh)], NULL;
	INSERT INTO evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh, start_by, card_no)
	VALUES (o, gun, t[1], t[cardinality(t)], wh[cardinality(wh)], CASE WHEN card IS NOT NULL THEN 'card' END, card);
$$;

-- 1. The domain's worked example as a real bill: 3.33 kWh in the valley
--    before 08:00 and 12.50 kWh flat after it.
SELECT pg_temp.charge('44200000120000100001001', 'WORKED',
	ARRAY['2026-11-20 07:00', '2026-11-20 07:30', '2026-11-20 08:00', '2026-11-20 08:30', '2026-11-20 09:00']::timestamptz[],
	ARRAY[0, 1665, 3330, 9580, 15830]);
SELECT wh_by_class, energy_fee, service_fee, total, applied FROM bill WHERE order_no = 'WORKED';
-- The breakdown, one row per class.  Electricity: 8.75 + 0.999 = 9.749,
-- charged 9.74: the classes cut to the fen, 8.75 + 0.99, already make it.
-- Service: 5.625 + 1.4985 = 7.1235, charged 7.12; cut one by one they make
-- 5.62 + 1.49 = 7.11, so the fen the single cut kept goes to the class
-- whose own cut lost most, the valley (0.0085 against 0.005): 1.50.
SELECT x.* FROM bill b, jsonb_to_recordset(b.breakdown)
	AS x(class text, wh bigint, energy_fee_exact numeric, energy_fee numeric, service_fee_exact numeric, service_fee numeric)
WHERE b.order_no = 'WORKED';
-- The shares add up to what the bill charged, and the bill to its total.
SELECT b.energy_fee, sum((x->>'energy_fee')::numeric) AS energy_shares,
       b.service_fee, sum((x->>'service_fee')::numeric) AS service_shares,
       b.energy_wh, sum((x->>'wh')::bigint) AS wh_shares, b.total
FROM bill b, jsonb_array_elements(b.breakdown) x WHERE b.order_no = 'WORKED'
GROUP BY b.order_no;
-- The same figures as price() gives for the bill's Wh per class.
SELECT (price(t.tariff, b.wh_by_class)).class_energy_fee, (price(t.tariff, b.wh_by_class)).class_service_fee
FROM bill b, station_tariff t WHERE b.order_no = 'WORKED' AND t.name = 'AC 2026';

-- 2. A group price: the bus company's driver pays 0.40 service, and the
--    breakdown shows the fee that was charged, not the plan's.
SELECT pg_temp.charge('44200000120000100001002', 'GROUP',
	ARRAY['2026-11-20 10:00', '2026-11-20 10:30', '2026-11-20 11:00']::timestamptz[], ARRAY[0, 5000, 10000],
	'1000200030004001');
SELECT b.member_id, b.service_fee, b.total, b.applied, b.breakdown FROM bill b WHERE b.order_no = 'GROUP';

-- 3. A charge over the change of plan at midnight: 1 kWh flat at 0.70 +
--    0.45 before it, 1 kWh flat at 0.80 + 0.50 after it.  The breakdown is
--    per class: flat, 2 kWh, 1.50 of electricity and 0.95 of service.
SELECT pg_temp.charge('44200000120000100001003', 'CROSSING',
	ARRAY['2026-11-20 23:30', '2026-11-21 00:00', '2026-11-21 00:30']::timestamptz[], ARRAY[0, 1000, 2000]);
SELECT b.wh_by_class, b.energy_fee, b.service_fee, b.applied, b.breakdown FROM bill b WHERE b.order_no = 'CROSSING';

-- 4. No plan in force (the DC pile): the bill is held with anomaly 12, no
--    amount, and nothing to break down.
SELECT pg_temp.charge('44200000120000200001001', 'NO-PLAN',
	ARRAY['2026-11-20 10:00', '2026-11-20 10:30']::timestamptz[], ARRAY[0, 20000]);
SELECT state, anomalies, energy_wh, total, breakdown FROM bill WHERE order_no = 'NO-PLAN';

-- 5. Nothing delivered: an empty breakdown, not NULL (it was priced).
SELECT pg_temp.charge('44200000120000100001004', 'EMPTY',
	ARRAY['2026-11-20 12:00', '2026-11-20 12:10']::timestamptz[], ARRAY[0, 0]);
SELECT energy_wh, total, breakdown FROM bill WHERE order_no = 'EMPTY';

-- 6. A repair keeps the breakdown of both versions.  Support agrees 15 kWh
--    with the driver of the first charge: the same proportions give 3155 Wh
--    valley and 11845 Wh flat; service 6.75, of which the valley's cut
--    (1.41975 to 1.41) lost most and takes the fen: 1.42 + 5.33.
SELECT energy_wh, energy_fee, service_fee, total FROM repair_bill('WORKED', 'driver disputes, 15 kWh agreed by phone', 'manual', 15000);
SELECT r.revision, r.method, v.version, v.bill->'total' AS total, x.*
FROM bill_revision r
CROSS JOIN LATERAL (VALUES (1, 'before', r.before), (2, 'after', r.after)) v(n, version, bill)
CROSS JOIN LATERAL jsonb_to_recordset(v.bill->'breakdown')
	AS x(class text, wh bigint, energy_fee_exact numeric, energy_fee numeric, service_fee_exact numeric, service_fee numeric)
WHERE r.order_no = 'WORKED' ORDER BY r.revision, v.n, x.class;

-- 7. Every bill at once: the charged shares add up to the bill's fees, each
--    share is within a fen of its exact fee, never more than a fen above it
--    and never below its cut.
SELECT count(*) AS bills,
       count(*) FILTER (WHERE breakdown IS NULL) AS without_breakdown,
       bool_and(breakdown IS NULL OR (
           (SELECT sum((x->>'energy_fee')::numeric) FROM jsonb_array_elements(breakdown) x) IS NOT DISTINCT FROM
               nullif(energy_fee, 0.00) AND
           (SELECT sum((x->>'service_fee')::numeric) FROM jsonb_array_elements(breakdown) x) IS NOT DISTINCT FROM
               nullif(service_fee, 0.00))) AS shares_add_up,
       bool_and(NOT EXISTS (SELECT 1 FROM jsonb_array_elements(breakdown) x
                            WHERE (x->>'energy_fee')::numeric NOT IN (trunc((x->>'energy_fee_exact')::numeric, 2),
                                                                      trunc((x->>'energy_fee_exact')::numeric, 2) + 0.01)
                               OR (x->>'service_fee')::numeric NOT IN (trunc((x->>'service_fee_exact')::numeric, 2),
                                                                       trunc((x->>'service_fee_exact')::numeric, 2) + 0.01)))
           AS shares_within_a_fen
FROM bill;

-- bill_breakdown itself, on the arrays price() gives: a class without
-- energy is left out.
SELECT bill_breakdown(ARRAY[0, 0, 12500, 3330], ARRAY[0, 0, 8.75, 0.999], ARRAY[0, 0, 5.625, 1.4985]);
SELECT bill_breakdown(ARRAY[0, 0, 0, 0], ARRAY[0, 0, 0, 0], ARRAY[0, 0, 0, 0]) AS nothing,
       bill_breakdown(NULL, NULL, NULL) AS strict;

-- Leave the database as found: pg_regress runs every file in one database.
\i sql/include/reset.sql
