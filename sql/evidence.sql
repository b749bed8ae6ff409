-- Evidence for support: a session's heartbeat curve with what the bill
-- counted and what it did not (session_evidence), and the same as an SVG
-- chart a driver can be sent (session_chart).
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';

INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.');
-- Station names are free text: markup characters and Chinese must come out
-- of the chart escaped and intact.
INSERT INTO station (station_id, operator_id, name) VALUES
	(1, 12, 'Shiqi East & West <Depot> 石岐东站'), (2, 12, 'Xiaolan "public" 小榄站'), (3, 12, 'No plan yet');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (1, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.8000+0.4500, valley 0.3500+0.4500', '[2026-01-01,)', 'AC'),
 (2, 'AC', '00:00-24:00 flat | flat 0.8000+0.4500', '[2026-01-01,)', 'flat rate');
-- 7 kW AC piles: A at station 1 (2 guns), B at station 2, C at station 3.
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES
	('44200000120000100001', 1, 2, 7000, 'AC-2.3.1'),
	('44200000120000100002', 2, 2, 7000, 'AC-2.3.1'),
	('44200000120000100003', 3, 1, 7000, 'AC-2.3.1');
INSERT INTO member (member_id, operator_id) VALUES (501, 12);
SELECT created FROM maintain_partitions('2026-11-20 12:00+08');

-- 1. A disputed charge on gun A1, 07:50 to 08:10, across the valley/flat
-- boundary at 08:00, every minute at 6.9 kW (115 Wh a minute).  Lines 07:55
-- and 07:56 arrive twice, the second 07:56 with a stale reading; the pile is
-- silent from 08:02 to 08:05:30, comes back reading 0, then -1, then its
-- register (460 Wh more: 4 minutes' worth, billed); at 08:08 the meter jumps
-- by 50 kWh in a minute (not billed).  Charging ends at 08:10, the car is
-- unplugged at 08:15.  Gun A2 charges at the same time.
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, soc, order_no)
SELECT '44200000120000100001001'::gun_id, t::timestamptz, st::gun_status, m, p, soc, o FROM (VALUES
	('2026-11-20 07:44+08', 'idle', 100000, 0, NULL, NULL),
	('2026-11-20 07:46+08', 'idle', 100000, 0, NULL, NULL),
	('2026-11-20 07:48+08', 'plugged', 100000, 0, 35, NULL),
	('2026-11-20 08:05:30+08', 'charging', 0, 6900, 48, 'EVIDENCE'),
	('2026-11-20 08:05:45+08', 'charging', -1, 6900, 48, 'EVIDENCE'),
	('2026-11-20 08:06+08', 'charging', 101840, 6900, 49, 'EVIDENCE'),
	('2026-11-20 08:07+08', 'charging', 101955, 6900, 50, 'EVIDENCE'),
	('2026-11-20 08:08+08', 'charging', 151955, 6900, 50, 'EVIDENCE'),
	('2026-11-20 08:09+08', 'charging', 152070, 6900, 51, 'EVIDENCE'),
	('2026-11-20 08:10+08', 'occupied', 152070, 0, 52, 'EVIDENCE'),
	('2026-11-20 08:12+08', 'occupied', 152070, 0, 52, 'EVIDENCE'),
	('2026-11-20 08:15+08', 'idle', 152070, 0, NULL, NULL),
	('2026-11-20 08:16+08', 'idle', 152070, 0, NULL, NULL)) v(t, st, m, p, soc, o)
UNION ALL
SELECT '44200000120000100001001'::gun_id, '2026-11-20 07:50+08'::timestamptz + i * interval '1 min', 'charging',
       100000 + i * 115, 6900, 35 + i, 'EVIDENCE'
FROM generate_series(0, 12) i
UNION ALL
SELECT '44200000120000100001002'::gun_id, '2026-11-20 07:50+08'::timestamptz + i * interval '1 min',
       CASE WHEN i < 20 THEN 'charging' ELSE 'idle' END::gun_status, 500000 + least(i, 19) * 115, 6900, NULL,
       CASE WHEN i < 20 THEN 'OTHER' END
FROM generate_series(0, 25) i;
-- The same lines again, as a loader retrying a batch would send them.
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, soc, order_no) VALUES
	('44200000120000100001001', '2026-11-20 07:55+08', 'charging', 100575, 6900, 40, 'EVIDENCE'),
	('44200000120000100001001', '2026-11-20 07:56+08', 'charging', 100575, 6900, 40, 'EVIDENCE');
INSERT INTO pile_record VALUES ('EVIDENCE', '44200000120000100001001', '2026-11-20 07:50+08', '2026-11-20 08:10+08', 2070);

-- The bill: 2070 Wh (1150 valley, 920 flat), the 50 kWh jump kept out and
-- flagged (11), held.
SELECT order_no, anomalies, anomaly_names(anomalies) AS names, state, energy_wh, wh_by_class, total
FROM bill WHERE order_no = 'EVIDENCE';

-- The evidence, one row per heartbeat time from 07:45 (5 minutes before
-- the start) to the unplug at 08:15: energy from the first charging
-- reading, the class in force (valley until 08:00), and the notes.
SELECT to_char(ts, 'HH24:MI:SS') AS time, meter_wh, energy_wh, power_w, status, soc, order_no, tariff_class, note
FROM session_evidence('EVIDENCE');
-- The curve ends at the energy the bill measured, and the jump it marks is
-- what session_samples() kept out of the bill.
SELECT (SELECT energy_wh FROM session_evidence('EVIDENCE') ORDER BY ts DESC LIMIT 1) AS evidence_wh,
       (SELECT energy_wh FROM bill WHERE order_no = 'EVIDENCE') AS billed_wh,
       (session_samples('EVIDENCE')).jump_wh AS jump_wh;

-- 2. The chart of the disputed charge, checked part by part.
CREATE TEMP TABLE chart AS SELECT session_chart('EVIDENCE') AS svg;
-- A well-formed SVG 1.1 document of the declared size, the same every time.
SELECT xml_is_well_formed_document(svg) AS well_formed,
       left(svg, 38) AS declaration,
       substring(svg FROM '<svg [^>]*>') AS root,
       svg = session_chart('EVIDENCE') AS deterministic
FROM chart;
-- Self-contained: the namespace is its only URL; no script, image, link or
-- external style.
SELECT (SELECT count(*) FROM regexp_matches(svg, 'http', 'g')) AS urls,
       svg ~* '<script|<image|<a[ >]|href|url\(|@import|<foreignObject' AS external
FROM chart;
-- Background bands: valley until 08:00, flat after it.
SELECT m[1] AS band, m[2] AS x, m[3] AS width
FROM chart, regexp_matches(substring(svg FROM '<g id="tariff-bands">(.*?)</g>'),
                           '<rect class="band-(\w+)" x="([0-9.]+)" y="[0-9.]+" width="([0-9.]+)"', 'g') m;
-- The legend names the classes shown with the plan's prices.
SELECT m[1] AS legend FROM chart, regexp_matches(svg, '<text[^>]*>((?:valley|flat|peak|sharp) [0-9.]+ \+ [0-9.]+)</text>', 'g') m;
-- The moments, the jump and the silence are marked.
SELECT m[1] AS marked FROM chart,
       regexp_matches(svg, '>((?:start|end of charging|unplugged) [0-9:]+|jump \+[0-9]+ Wh, not billed|no data [0-9]+ min [0-9]+ s)<', 'g') m;
SELECT (SELECT count(*) FROM regexp_matches(substring(svg FROM '<g id="marks">(.*?)</g>'), '<circle class="jump"', 'g')) AS jump_markers,
       (SELECT count(*) FROM regexp_matches(substring(svg FROM '<g id="marks">(.*?)</g>'), '<rect class="gap"', 'g')) AS gap_markers
FROM chart;
-- The anomaly box lists the bill's codes with their names.
SELECT m[1] AS anomaly_box FROM chart, regexp_matches(substring(svg FROM '<g id="anomalies">(.*?)</g>'), '>([^<]+)</text>', 'g') m;
-- The header: order and gun; the station, its name with & < > and Chinese
-- escaped and intact; the bill and where its energy came from; the pile's
-- record; the heartbeats shown.
SELECT m[1] AS heading FROM chart, regexp_matches(substring(svg FROM '<g id="header">(.*?)</g>'), '>([^<]+)</text>', 'g') m;
SELECT position('Shiqi East &amp; West &lt;Depot&gt; 石岐东站' IN svg) > 0 AS escaped,
       position('<Depot>' IN svg) = 0 AND position('& West' IN svg) = 0 AS nothing_raw
FROM chart;
-- Every text goes through xml_escape: markup characters escaped, control
-- characters (not allowed in XML) made spaces.
SELECT xml_escape(E'Tom & Jerry''s <"east">\x01\t小榄') AS escaped_text;
-- Read back as XML, the header's station line holds the original name.
SELECT x.title, x.heading, x.station
FROM chart, XMLTABLE(XMLNAMESPACES('http://www.w3.org/2000/svg' AS s), '/s:svg' PASSING CAST(svg AS xml)
                     COLUMNS title text PATH 's:title', heading text PATH 's:g[@id="header"]/s:text[@class="title"]',
                             station text PATH 's:g[@id="header"]/s:text[2]') x;

-- The legend says what the curve is: measured, whatever the bill counted.
SELECT m[1] AS legend_line FROM chart,
       regexp_matches(substring(svg FROM '<g id="legend">(.*?)</g>'), '<text x="[0-9.]+" y="[0-9.]+">([^<]*(?:heartbeats|record|power|jump)[^<]*)</text>', 'g') m;
-- Every label in the plot sits on a box of its own (rect.label-box
-- before its text): test/integration/chart_render.sh checks that no box
-- crosses a curve or another box.
SELECT (SELECT count(*) FROM regexp_matches(svg, '<rect class="label-box"', 'g')) AS label_boxes FROM chart;

-- 3. A short charge at station 2 with no bill yet: 90 seconds charging at
-- 3.6 kW, still plugged.  Its chart, whole.
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, soc, order_no) VALUES
	('44200000120000100002001', '2026-11-20 10:00+08', 'charging', 20000, 3600, 60, 'SHORT'),
	('44200000120000100002001', '2026-11-20 10:00:30+08', 'charging', 20030, 3600, 60, 'SHORT'),
	('44200000120000100002001', '2026-11-20 10:01+08', 'charging', 20060, 3600, 61, 'SHORT'),
	('44200000120000100002001', '2026-11-20 10:01:30+08', 'occupied', 20090, 0, 61, 'SHORT');
SELECT to_char(ts, 'HH24:MI:SS') AS time, meter_wh, energy_wh, power_w, status, tariff_class, note
FROM session_evidence('SHORT');
\pset format unaligned
\pset tuples_only on
SELECT session_chart('SHORT');
\pset format aligned
\pset tuples_only off
SELECT xml_is_well_formed_document(session_chart('SHORT')) AS well_formed;

-- 4. No plan in force at station 3: no class, no band, and the chart says so.
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no) VALUES
	('44200000120000100003001', '2026-11-20 10:00+08', 'charging', 5000, 7000, 'NOPLAN'),
	('44200000120000100003001', '2026-11-20 10:01+08', 'charging', 5110, 7000, 'NOPLAN');
SELECT to_char(ts, 'HH24:MI:SS') AS time, energy_wh, tariff_class, note FROM session_evidence('NOPLAN');
SELECT svg ~ '<rect class="band-' AS has_bands, substring(svg FROM 'no AC plan in force[^<]*') AS says
FROM (SELECT session_chart('NOPLAN') AS svg) c;

-- 5. An app start the pile has not begun yet: no heartbeats to show.
SELECT start_session('44200000120000100002002', 501, 'app') AS pending_order \gset
SELECT count(*) AS rows FROM session_evidence(:'pending_order');

-- 6. What caused each anomaly: a charge on pile D whose record claims
-- 2700 Wh where the heartbeats measured 1380 (8), and ends at 10:40 though
-- it arrived at 08:40 (3: the pile's clock is not believed).
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware) VALUES ('44200000120000100004', 1, 1, 7000, 'AC-2.3.1');
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w, order_no)
SELECT '44200000120000100004001'::gun_id, '2026-11-20 08:20+08'::timestamptz + i * interval '1 min',
       CASE WHEN i < 12 THEN 'charging' ELSE 'occupied' END::gun_status, 300000 + least(i, 12) * 115,
       CASE WHEN i < 12 THEN 6900 ELSE 0 END, 'CAUSES'
FROM generate_series(0, 14) i;
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w) VALUES ('44200000120000100004001', '2026-11-20 08:36+08', 'idle', 301380, 0);
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh, received_at)
VALUES ('CAUSES', '44200000120000100004001', '2026-11-20 08:20+08', '2026-11-20 10:40+08', 2700, '2026-11-20 08:40+08');
SELECT anomalies, state, energy_wh, energy_source FROM bill WHERE order_no = 'CAUSES';
SELECT * FROM anomaly_causes('CAUSES');
SELECT * FROM anomaly_causes('EVIDENCE');
-- The rule of the pile's clock, one reason a sentence (compute_bill believes
-- a record exactly when there is none), and lengths of time in words.
SELECT unnest(pile_record_clock_faults(ROW('X', NULL, '1999-01-01 00:00+08', '1998-12-31 23:00+08', 10, NULL, NULL,
                                           '2026-11-20 08:40+08', NULL, NULL, NULL, NULL)::pile_record,
                                       '2026-11-20 08:20+08', station_policy(1), 'Asia/Shanghai')) AS fault;
SELECT d, duration_words(d) FROM unnest(ARRAY[interval '45 s', '3 min 30 s', '5 min', '2 h', '1 h 20 min 5 s', '-26 h']) d;
-- In the chart, the box gives the causes and the pile's claim is drawn and
-- labelled against the measured curve.
SELECT m[1] AS anomaly_box FROM (SELECT session_chart('CAUSES') AS svg) c,
       regexp_matches(substring(svg FROM '<g id="anomalies">(.*?)</g>'), '>([^<]+)</text>', 'g') m;
SELECT substring(svg FROM '<polyline class="claim" points="([^"]+)"') AS claim_line,
       substring(svg FROM '<text class="claim-text"[^>]*>([^<]+)<') AS claim_label
FROM (SELECT session_chart('CAUSES') AS svg) c;

-- 7. The driver's view of the disputed charge, in Chinese (the default) and
-- English: when, how much, at which price, the total; no code, no internal
-- word.  Its texts, in order:
SELECT m[1] AS driver_zh FROM (SELECT driver_chart('EVIDENCE') AS svg) c,
       regexp_matches(svg, '<text[^>]*>([^<]+)</text>', 'g') m
WHERE m[1] !~ '^[0-9.:]+$';
SELECT m[1] AS receipt_en FROM (SELECT driver_chart('EVIDENCE', 'en') AS svg) c,
       regexp_matches(substring(svg FROM '<g id="receipt">(.*?)</g>'), '>([^<]+)</text>', 'g') m;
-- Nothing of support's in it: of all it writes (texts, title, description),
-- no anomaly, code, heartbeat, hold, jump, meter or record; no support-only
-- part.
SELECT xml_is_well_formed_document(svg) AS well_formed,
       (SELECT string_agg(m[1], ' ') FROM regexp_matches(svg, '>([^<]+)<', 'g') m) ~* 'anomal|code|heartbeat|held|jump|meter|energy_lost|record' AS internal_words,
       svg ~ 'class="(warn|jump|gap|claim|power|box)"' AS support_parts,
       svg = driver_chart('EVIDENCE') AS deterministic
FROM (SELECT driver_chart('EVIDENCE') AS svg) c;
-- A bill that could not be priced (the charge at station 3, no plan, now
-- ended and its record in: held with 12): the receipt says the amount
-- follows, and shows no price.
INSERT INTO heartbeat (gun, ts, status, meter_wh, power_w) VALUES
	('44200000120000100003001', '2026-11-20 10:02+08', 'occupied', 5220, 0),
	('44200000120000100003001', '2026-11-20 10:03+08', 'idle', 5220, 0);
INSERT INTO pile_record VALUES ('NOPLAN', '44200000120000100003001', '2026-11-20 10:00+08', '2026-11-20 10:02+08', 220);
SELECT anomalies, state, energy_wh, total FROM bill WHERE order_no = 'NOPLAN';
SELECT m[1] AS receipt_no_plan FROM (SELECT driver_chart('NOPLAN') AS svg) c,
       regexp_matches(substring(svg FROM '<g id="receipt">(.*?)</g>'), '>([^<]+)</text>', 'g') m;
-- The tariff classes the chart knows, and any other, with their colours
-- and the driver's names.
SELECT c, chart_class_rank(c) AS rank, chart_class_colour(c) AS colour, chart_class_name(c, 'zh') AS zh, chart_class_name(c, 'en') AS en
FROM unnest(ARRAY['sharp', 'peak', 'flat', 'valley', 'deep', 'superpeak']) c;

-- 8. Errors: an unknown order is no_data_found, with a hint; NULL gives nothing.
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT * FROM session_evidence('NO-SUCH-ORDER');
SELECT session_chart('NO-SUCH-ORDER');
DO $$
BEGIN
	PERFORM evcharge.session_chart('NO-SUCH-ORDER');
EXCEPTION WHEN no_data_found THEN
	RAISE NOTICE 'no_data_found: %', SQLERRM;
END $$;
SELECT driver_chart('EVIDENCE', 'fr');
SELECT * FROM anomaly_causes('SHORT');
SELECT count(*) AS rows FROM session_evidence(NULL);
SELECT session_chart(NULL) IS NULL AS no_chart;

\i sql/include/reset.sql
