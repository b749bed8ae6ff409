-- Anomaly statistics: anomaly_report() and anomaly_report_month() over a
-- generated month of one operator's network, made through the real
-- pipeline (start_session, heartbeats, pile records, detect_lost_bills,
-- sweep_offline, a repair), checked against the generator's own record of
-- what it did to each session.
SET search_path = public, evcharge;
SET timezone = 'Asia/Shanghai';
SET datestyle = 'ISO, YMD';

-- Operator 12 has two stations with AC and DC piles; its policy lists the
-- AC firmware line 1.x as defective (code 16 on every bill of those piles).
-- Station 2 has no DC plan before 3 November (code 12 on its DC bills of
-- 1 and 2 November).  Operator 34, whose data must never appear in 12's
-- report, runs one pile on the same firmware version.
INSERT INTO operator VALUES (12, 'Zhongshan Charging Co.'), (34, 'Longgang Power');
UPDATE anomaly_policy SET defective_firmware = '{AC-1.%}' WHERE operator_id = 12;
INSERT INTO station (station_id, operator_id, name) VALUES
	(1, 12, 'Shiqi bus depot'), (2, 12, 'Xiaolan'), (9, 34, 'Longgang depot');
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (1, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500', '[2026-01-01,)', 'AC'),
 (1, 'DC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.6400+0.5100, valley 0.3300+0.5500', '[2026-01-01,)', 'DC'),
 (2, 'AC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.7000+0.4500, valley 0.3000+0.4500', '[2026-01-01,)', 'AC'),
 (2, 'DC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.6400+0.5100, valley 0.3300+0.5500', '[2026-11-03,)', 'DC'),
 (9, 'AC', '00:00-24:00 flat | flat 0.8000+0.4500', '[2026-01-01,)', 'AC');
-- Didi's contract allows starts in its app and by QR scan; Amap's any.
INSERT INTO partner (partner_id, operator_id, name, allowed_channels) VALUES
	(7, 12, 'Didi charging', '{partner,qr}'), (8, 12, 'Amap', NULL);

-- The piles, one gun each: 1-10 at station 1, 11-20 at station 2, 21 is
-- operator 34's.  AC 7 kW, DC 60 kW.
CREATE TABLE pg_temp.gen_pile (n int PRIMARY KEY, operator_id bigint, station_id bigint, dc boolean,
	firmware text, gun gun_id);
INSERT INTO pg_temp.gen_pile
SELECT n, op, st, dc, fw,
       gun_id((CASE WHEN op = 12 THEN '442000' ELSE '440307' END || lpad(op::text, 4, '0') || '000'
               || CASE WHEN dc THEN '02' ELSE '01' END || lpad(serial::text, 5, '0'))::pile_id, 1)
FROM (VALUES
	(1, 12, 1, false, 'AC-2.3.1', 1), (2, 12, 1, false, 'AC-2.3.1', 2), (3, 12, 1, false, 'AC-2.3.1', 3),
	(4, 12, 1, false, 'AC-2.3.1', 4), (5, 12, 1, false, 'AC-1.9.0', 5), (6, 12, 1, false, 'AC-1.9.0', 6),
	(7, 12, 1, true, 'DC-3.1.2', 7), (8, 12, 1, true, 'DC-3.1.2', 8), (9, 12, 1, true, 'DC-3.1.2', 9),
	(10, 12, 1, true, 'DC-3.1.2', 10), (11, 12, 2, false, 'AC-2.3.4', 11), (12, 12, 2, false, 'AC-2.3.4', 12),
	(13, 12, 2, false, 'AC-1.9.0', 13), (14, 12, 2, false, 'AC-2.3.4', 14), (15, 12, 2, false, 'AC-2.3.4', 15),
	(16, 12, 2, false, 'AC-2.3.4', 16), (17, 12, 2, true, 'DC-3.0.4', 17), (18, 12, 2, true, 'DC-3.0.4', 18),
	(19, 12, 2, true, 'DC-3.0.4', 19), (20, 12, 2, true, 'DC-3.0.4', 20), (21, 34, 9, false, 'AC-1.9.0', 1))
	AS t(n, op, st, dc, fw, serial);
INSERT INTO pile (pile_id, station_id, gun_count, rated_power_w, firmware)
SELECT pile(gun), station_id, 1, CASE WHEN dc THEN 60000 ELSE 7000 END, firmware FROM pg_temp.gen_pile;
-- Pile p's driver is member 1000 + p, of the pile's operator.
INSERT INTO member (member_id, operator_id) SELECT 1000 + n, operator_id FROM pg_temp.gen_pile;

-- The generator's ground truth: one row per session, with what it was
-- made to be and the codes that must follow from it, ever and now.
CREATE TABLE pg_temp.truth (
	order_no text PRIMARY KEY,
	operator_id bigint NOT NULL,
	pile int NOT NULL,
	firmware text NOT NULL,
	channel text NOT NULL,
	partner_id bigint,
	partner text,
	ended date NOT NULL,       -- local day charging ended
	kind text NOT NULL,
	billed boolean NOT NULL,
	codes int[] NOT NULL,      -- every code the bill must have carried
	codes_now int[] NOT NULL   -- the codes it must carry at the end
);

-- One session of pile p from t0: a charging heartbeat every 5 minutes for
-- steps intervals (500 Wh each on AC, 4000 on DC), the end of charging 2
-- minutes after the last, the unplug plug minutes later, and the pile's
-- record at once.  The kind makes it anomalous:
--   clean      as above
--   lost       no record ever (code 1)
--   late       no record until the day after, once given up on (1, then cleared)
--   silent     the gun goes silent while charging, no record (2)
--   pending    no record, and not given up on yet: no bill
--   clock      the record is dated 1999 (3)
--   mismatch   the record claims 10 % more energy (8)
--   duration   the record ends 20 minutes early (9 and 10)
--   occupancy  the record's clock is 20 minutes ahead (10)
--   jump       the meter jumps by 50 kWh halfway (11)
--   noflow     the meter stands still, the record claims 2000 Wh (15)
--   password   a Didi user started it by offline password (14)
-- App, QR and partner starts go through start_session(); offline ones are
-- opened by the first heartbeat carrying the pile's own order number.
CREATE FUNCTION pg_temp.gen_session(p int, t0 timestamptz, steps int, plug int, kind text,
	channel text, partner_id bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	g record;
	o text;
	step int;
	meter0 bigint;
	last_i int;
	tc timestamptz;
	energy bigint;
	rs timestamptz;
	re timestamptz;
	codes int[];
BEGIN
	SELECT * INTO g FROM pg_temp.gen_pile WHERE n = p;
	IF kind = 'password' THEN
		channel := 'password';
		partner_id := 7;
	END IF;
	IF channel = 'offline' THEN
		o := to_char(t0, 'YYYYMMDDHH24MISS') || lpad(p::text, 5, '0') || '001';
	ELSE
		o := evcharge.start_session(g.gun, 1000 + p, channel, partner_id);
	END IF;
	step := CASE WHEN g.dc THEN 4000 ELSE 500 END;
	-- A lifetime register, rising from one session to the next.
	meter0 := p * 1000000000::bigint + (extract(epoch FROM t0 - '2026-10-01 00:00+08') / 3600)::bigint * 10000;
	last_i := CASE WHEN kind = 'silent' THEN 4 ELSE steps END;
	INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, power_w, order_no)
	SELECT g.gun, t0 + i * interval '5 min', 'charging',
	       meter0 + CASE WHEN kind = 'noflow' THEN 0 ELSE i * step END
	              + CASE WHEN kind = 'jump' AND i >= steps / 2 THEN 50000 ELSE 0 END,
	       step * 12, o
	FROM generate_series(0, last_i) i;
	tc := t0 + steps * interval '5 min' + interval '2 min';
	IF kind = 'silent' THEN
		tc := t0 + last_i * interval '5 min';
	ELSE
		INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh, power_w, order_no) VALUES
			(g.gun, tc, 'occupied', meter0 + CASE WHEN kind = 'noflow' THEN 0 ELSE steps * step END
			                        + CASE WHEN kind = 'jump' THEN 50000 ELSE 0 END, 0, o),
			(g.gun, tc + plug * interval '1 min', 'idle', meter0 + CASE WHEN kind = 'noflow' THEN 0 ELSE steps * step END
			                        + CASE WHEN kind = 'jump' THEN 50000 ELSE 0 END, 0, NULL);
	END IF;
	energy := CASE kind WHEN 'mismatch' THEN steps * step * 11 / 10 WHEN 'noflow' THEN 2000
	                    WHEN 'jump' THEN (steps - 1) * step ELSE steps * step END;
	rs := CASE kind WHEN 'clock' THEN t0 - interval '27 years' WHEN 'occupancy' THEN t0 + interval '20 min' ELSE t0 END;
	re := CASE kind WHEN 'clock' THEN tc - interval '27 years' WHEN 'occupancy' THEN tc + interval '20 min'
	                WHEN 'duration' THEN tc - interval '20 min' ELSE tc END;
	IF kind NOT IN ('lost', 'late', 'silent', 'pending') THEN
		INSERT INTO evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh, stop_reason)
		VALUES (o, g.gun, rs, re, energy, 'full');
	END IF;
	codes := CASE kind WHEN 'lost' THEN '{1}' WHEN 'late' THEN '{1}' WHEN 'silent' THEN '{2}'
	                   WHEN 'clock' THEN '{3}' WHEN 'mismatch' THEN '{8}' WHEN 'duration' THEN '{9,10}'
	                   WHEN 'occupancy' THEN '{10}' WHEN 'jump' THEN '{11}' WHEN 'noflow' THEN '{15}'
	                   WHEN 'password' THEN '{14}' ELSE '{}' END::int[];
	IF g.operator_id = 12 AND g.firmware LIKE 'AC-1.%' THEN
		codes := codes || 16;
	END IF;
	IF g.station_id = 2 AND g.dc AND t0 < '2026-11-03 00:00+08' THEN
		codes := codes || 12;
	END IF;
	IF kind = 'pending' THEN
		codes := '{}';
	END IF;
	INSERT INTO pg_temp.truth VALUES (o, g.operator_id, p, g.firmware, channel, partner_id,
		(SELECT pa.name FROM evcharge.partner pa WHERE pa.partner_id = gen_session.partner_id),
		(tc AT TIME ZONE 'Asia/Shanghai')::date, kind, kind <> 'pending',
		ARRAY(SELECT DISTINCT c FROM unnest(codes) c ORDER BY c),
		ARRAY(SELECT DISTINCT c FROM unnest(codes) c WHERE NOT (kind = 'late' AND c = 1) ORDER BY c));
END $$;

-- The last evening of October: outside November.
SELECT pg_temp.gen_session(1, '2026-10-31 22:00+08', 8, 5, 'clean', 'app', NULL);

-- 1 to 20 November: every pile of operator 12 charges once a day,
-- operator 34's pile on the first five days.  Start time, length, channel
-- and kind follow from the pile p and the day d, without random():
-- channel by ((31p + 17d) mod 23) mod 10: 0-2 own app, 3-5 QR (WeChat),
-- 6 Didi's app, 7 QR in Didi's app, 8 Amap's app, 9 offline card;
-- kind by (13p + 7d) mod 30: 0 lost, 1 late, 2 mismatch, 3 clock,
-- 4 duration, 5 occupancy, 6 jump, 7 noflow, 8 password, otherwise clean.
-- Operator 34's pile: QR on odd days, its own app on even ones, no
-- password.  Pile 1 charges over midnight on the 10th (its charge ends on
-- the 11th).  On the 20th, piles 2 and 8 go silent while charging in the
-- evening, and piles 3 and 14 end late in the evening without a record
-- yet.  Every night: the records of the day before that came late, then
-- the lost-bill job as pg_cron would run it at midnight (2-hour wait).
DO $$
DECLARE
	d int;
	p int;
	day timestamptz;
	c int;
	k int;
	kind text;
	t0 timestamptz;
	steps int;
	r record;
BEGIN
	FOR d IN 1 .. 20 LOOP
		day := ('2026-11-01'::date + (d - 1))::timestamp AT TIME ZONE 'Asia/Shanghai';
		FOR p IN 1 .. 21 LOOP
			CONTINUE WHEN p = 21 AND d > 5;
			c := ((31 * p + 17 * d) % 23) % 10;
			k := (13 * p + 7 * d) % 30;
			kind := CASE k WHEN 0 THEN 'lost' WHEN 1 THEN 'late' WHEN 2 THEN 'mismatch' WHEN 3 THEN 'clock'
			               WHEN 4 THEN 'duration' WHEN 5 THEN 'occupancy' WHEN 6 THEN 'jump' WHEN 7 THEN 'noflow'
			               WHEN 8 THEN 'password' ELSE 'clean' END;
			t0 := day + interval '7 hours' + ((37 * p + 11 * d) % 600) * interval '1 min';
			steps := 6 + (p + d) % 13;
			IF p = 21 THEN
				-- Operator 34 has no partner: its drivers use the app and QR.
				c := d % 2 * 3;
				kind := CASE WHEN kind = 'password' THEN 'clean' ELSE kind END;
			ELSIF d = 10 AND p = 1 THEN
				kind := 'clean';
				t0 := day + interval '23 hours 40 min';
				steps := 8;
			ELSIF d = 20 AND p IN (2, 8) THEN
				kind := 'silent';
				t0 := day + interval '21 hours';
			ELSIF d = 20 AND p IN (3, 14) THEN
				kind := 'pending';
				t0 := day + interval '21 hours 45 min';
				steps := 10;
			END IF;
			PERFORM pg_temp.gen_session(p, t0, steps, 3 + (p * d) % 20, kind,
				CASE WHEN c <= 2 THEN 'app' WHEN c <= 5 THEN 'qr' WHEN c = 6 THEN 'partner' WHEN c = 7 THEN 'qr'
				     WHEN c = 8 THEN 'partner' ELSE 'offline' END,
				CASE c WHEN 6 THEN 7 WHEN 7 THEN 7 WHEN 8 THEN 8 END);
		END LOOP;
		IF d = 20 THEN
			-- Every other gun is heard at 22:59; the two silent ones go
			-- offline at the sweep.
			INSERT INTO evcharge.heartbeat (gun, ts, status, meter_wh)
			SELECT g.gun, day + interval '22 hours 59 min', 'idle', s.meter_wh
			FROM pg_temp.gen_pile g JOIN evcharge.gun_state s ON s.gun OPERATOR(evcharge.=) g.gun
			WHERE g.n NOT IN (2, 8);
			PERFORM evcharge.sweep_offline(day + interval '23 hours');
		END IF;
		FOR r IN SELECT t.order_no, g.gun, h.started, h.ended, h.energy
			FROM pg_temp.truth t JOIN pg_temp.gen_pile g ON g.n = t.pile
			CROSS JOIN LATERAL (SELECT min(hb.ts) AS started, max(hb.ts) FILTER (WHERE hb.status = 'occupied') AS ended,
			                           max(hb.meter_wh) - min(hb.meter_wh) AS energy
			                    FROM evcharge.heartbeat hb WHERE hb.order_no = t.order_no) h
			WHERE t.kind = 'late' AND t.ended = ('2026-11-01'::date + (d - 2))
			ORDER BY t.order_no
		LOOP
			INSERT INTO evcharge.pile_record (order_no, gun, started_at, ended_at, energy_wh, stop_reason)
			VALUES (r.order_no, r.gun, r.started, r.ended, r.energy, 'full');
		END LOOP;
		PERFORM evcharge.detect_lost_bills(day + interval '1 day');
	END LOOP;
END $$;

-- The records of the 20th that were late come on the 21st.
INSERT INTO pile_record (order_no, gun, started_at, ended_at, energy_wh, stop_reason)
SELECT t.order_no, g.gun, min(hb.ts), max(hb.ts) FILTER (WHERE hb.status = 'occupied'),
       max(hb.meter_wh) - min(hb.meter_wh), 'full'
FROM pg_temp.truth t JOIN pg_temp.gen_pile g ON g.n = t.pile JOIN heartbeat hb ON hb.order_no = t.order_no
WHERE t.kind = 'late' AND t.ended = '2026-11-20'
GROUP BY t.order_no, g.gun;

-- One repair: the DC plan of station 2 for 1-2 November is entered late,
-- and the first of those bills that had nothing else wrong is recomputed.
-- It is released with no code left, and still counts under 12.
INSERT INTO station_tariff (station_id, current_type, tariff, valid, name) VALUES
 (2, 'DC', '00:00-08:00 valley, 08:00-24:00 flat | flat 0.6400+0.5100, valley 0.3300+0.5500',
  '[2026-11-01, 2026-11-03)', 'DC, entered late');
SELECT t.order_no AS repaired_order FROM pg_temp.truth t JOIN bill b USING (order_no)
WHERE t.codes = '{12}' AND t.kind = 'clean' ORDER BY b.ended_at, t.order_no LIMIT 1 \gset
SELECT state, anomalies, revision FROM repair_bill(:'repaired_order', 'DC plan for 1-2 November entered late');
UPDATE pg_temp.truth SET codes_now = '{}' WHERE order_no = :'repaired_order';
SELECT revision, method, before->>'anomalies' AS before, after->>'anomalies' AS after
FROM bill_revision WHERE order_no = :'repaired_order';

-- An app start the pile never began is no session that ended: it is not
-- counted anywhere.
SELECT start_session((SELECT gun FROM pg_temp.gen_pile WHERE n = 4), 1004, 'app') IS NOT NULL AS started;

-- What the generator made: sessions per kind, and per operator with the
-- local days their charging ended on.
SELECT kind, count(*) AS sessions, count(*) FILTER (WHERE operator_id = 12 AND ended >= '2026-11-01') AS op12_november
FROM pg_temp.truth GROUP BY kind ORDER BY kind;
SELECT operator_id, min(ended) AS first_day, max(ended) AS last_day, count(*) AS sessions,
       count(DISTINCT ended) AS days
FROM pg_temp.truth GROUP BY operator_id ORDER BY operator_id;
-- Nothing was quarantined, every session but the pending ones has a bill,
-- and no bill failed.
SELECT (SELECT count(*) FROM quarantine) AS quarantined,
       (SELECT count(*) FROM charge_session WHERE bill_error IS NOT NULL) AS bill_errors,
       (SELECT count(*) FROM pg_temp.truth t WHERE t.billed <> EXISTS (SELECT 1 FROM bill b WHERE b.order_no = t.order_no)) AS billed_wrongly;

-- The same figures counted from the ground truth, in the report's shape.
CREATE FUNCTION pg_temp.truth_report(op bigint, from_day date, to_day date)
RETURNS TABLE (dimension text, value text, code int, bills bigint, bills_now bigint, sessions bigint,
	successful bigint, pending bigint)
LANGUAGE sql AS $$
	WITH s AS (
		SELECT * FROM pg_temp.truth t WHERE t.operator_id = op AND t.ended BETWEEN from_day AND to_day
	), d AS (
		SELECT 'total' AS dim, 'all' AS val, 'all' AS k, s.* FROM s
		UNION ALL SELECT 'channel', s.channel, s.channel, s.* FROM s
		UNION ALL SELECT 'partner', s.partner, s.partner_id::text, s.* FROM s WHERE s.partner_id IS NOT NULL
		UNION ALL SELECT 'firmware', s.firmware, s.firmware, s.* FROM s
	), g AS (
		SELECT dim, val, k, count(*) AS sessions, count(*) FILTER (WHERE billed AND codes = '{}') AS successful,
		       count(*) FILTER (WHERE NOT billed) AS pending, count(*) FILTER (WHERE codes <> '{}') AS bad,
		       count(*) FILTER (WHERE codes_now <> '{}') AS bad_now
		FROM d GROUP BY dim, val, k
	)
	SELECT g.dim, g.val, NULL::int, g.bad, g.bad_now, g.sessions, g.successful, g.pending FROM g
	UNION ALL
	SELECT g.dim, g.val, c.code, c.n, c.n_now, g.sessions, g.successful, g.pending
	FROM g JOIN (SELECT d.dim, d.k, code, count(*) AS n, count(*) FILTER (WHERE code = ANY (d.codes_now)) AS n_now
	             FROM d, unnest(d.codes) code GROUP BY d.dim, d.k, code) c ON c.dim = g.dim AND c.k = g.k
$$;

-- The report and the ground truth, row against row, both ways: no row of
-- one is missing from the other.  Cases: operator 12's November, the month
-- form, the 11th alone (pile 1's charge over midnight counts there, on
-- the station's wall clock), all time (October's evening too), and
-- operator 34's November (its five sessions only).
CREATE TEMP TABLE cases (name text, op bigint, from_day date, to_day date);
INSERT INTO cases VALUES
	('12 November', 12, '2026-11-01', '2026-11-30'),
	('12 11 November', 12, '2026-11-11', '2026-11-11'),
	('12 all time', 12, '-infinity', 'infinity'),
	('34 November', 34, '2026-11-01', '2026-11-30');
SELECT c.name, x.side, x.dimension, x.value, x.code, x.bills, x.bills_now, x.sessions, x.successful, x.pending
FROM cases c CROSS JOIN LATERAL (
	(SELECT 'report only' AS side, * FROM (
		SELECT r.dimension, r.value, r.code, r.bills, r.bills_now, r.sessions, r.successful, r.pending
		FROM anomaly_report(c.op, c.from_day, c.to_day) r
		EXCEPT SELECT * FROM pg_temp.truth_report(c.op, c.from_day, c.to_day)) a)
	UNION ALL
	(SELECT 'truth only', * FROM (
		SELECT * FROM pg_temp.truth_report(c.op, c.from_day, c.to_day)
		EXCEPT SELECT r.dimension, r.value, r.code, r.bills, r.bills_now, r.sessions, r.successful, r.pending
		FROM anomaly_report(c.op, c.from_day, c.to_day) r) b)) x
ORDER BY 1, 2, 3, 4, 5;
-- How much was compared in each case.
SELECT c.name, count(*) AS report_rows, count(*) FILTER (WHERE r.code IS NOT NULL) AS code_rows,
       max(r.sessions) FILTER (WHERE r.dimension = 'total') AS sessions
FROM cases c CROSS JOIN LATERAL anomaly_report(c.op, c.from_day, c.to_day) r
GROUP BY c.name ORDER BY c.name;
-- The month form is the report from the 1st to the 30th, in the same order.
SELECT (SELECT array_agg(r ORDER BY n) FROM anomaly_report_month(12, '2026-11-17') WITH ORDINALITY AS r(dimension, value, code, code_name, bills, bills_now, sessions, successful, pending, share, n))
     = (SELECT array_agg(r ORDER BY n) FROM anomaly_report(12, '2026-11-01', '2026-11-30') WITH ORDINALITY AS r(dimension, value, code, code_name, bills, bills_now, sessions, successful, pending, share, n))
       AS month_is_the_1st_to_the_30th;

-- Operator 12's November as the operator reads it, the total first.
-- 20 piles x 20 days = 400 sessions (the 31 October one is outside), of
-- which 2 still wait for their record (pending), 230 were billed without
-- any anomaly (successful) and 168 carried one at some time (code NULL):
-- 230 + 168 + 2 = 400.  Per code, against the kinds above: 1 = 14 lost +
-- 13 late, of which only the 14 lost carry it now; 2 = the two silent
-- guns; 3 = clock; 8 = mismatch; 9 = duration; 10 = 13 duration + 14
-- occupancy; 11 = jump; 14 = password; 15 = noflow; 12 = station 2's 4 DC
-- piles on the 1st and 2nd, 8 sessions, one repaired since (7 now); 16 =
-- piles 5, 6 and 13 on AC-1.9.0, 3 x 20 = 60.  share = bills / sessions.
SELECT * FROM anomaly_report_month(12, '2026-11-01') WHERE dimension = 'total';
-- The same month as a spreadsheet reads it, one line per start channel:
-- the group's figures and the bills per code.  Every password start was a
-- Didi user's, which the contract does not allow: 13 sessions, each with
-- 14, none successful.  The sessions add up to the 400 of the total.
SELECT value AS channel, max(sessions) AS sessions, max(successful) AS successful, max(pending) AS pending,
       max(bills) FILTER (WHERE code IS NULL) AS anomalous,
       string_agg(code || ':' || bills, ' ' ORDER BY code) AS bills_per_code
FROM anomaly_report_month(12, '2026-11-01') WHERE dimension = 'channel'
GROUP BY value ORDER BY value;
-- One line per firmware version: every one of the 60 bills of AC-1.9.0
-- carries 16, so none is successful; 12 is only on DC-3.0.4 (station 2's
-- DC piles).  Operator 34's pile runs AC-1.9.0 too; its 5 sessions are
-- not among these 60.
SELECT value AS firmware, max(sessions) AS sessions, max(successful) AS successful, max(pending) AS pending,
       max(bills) FILTER (WHERE code IS NULL) AS anomalous,
       string_agg(code || ':' || bills, ' ' ORDER BY code) AS bills_per_code
FROM anomaly_report_month(12, '2026-11-01') WHERE dimension = 'firmware'
GROUP BY value ORDER BY value;
-- Per partner (Didi vs Amap), in full: only Didi's bills carry 14.
SELECT * FROM anomaly_report_month(12, '2026-11-01') WHERE dimension = 'partner';
-- Operator 34: only its own pile and its five sessions; the one whose
-- record came a day late still counts under 1 (bills 1, bills_now 0).
SELECT * FROM anomaly_report_month(34, '2026-11-01');
-- A period without sessions: the total says so.
SELECT * FROM anomaly_report(12, '2026-12-01', '2026-12-31');

-- Errors: each argument is required, the period must not be reversed, the
-- operator must exist.
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT * FROM anomaly_report(NULL, '2026-11-01', '2026-11-30');
SELECT * FROM anomaly_report(12, NULL, '2026-11-30');
SELECT * FROM anomaly_report(12, '2026-11-01', NULL);
SELECT * FROM anomaly_report(12, '2026-11-30', '2026-11-01');
SELECT * FROM anomaly_report(99, '2026-11-01', '2026-11-30');
SELECT * FROM anomaly_report_month(12, NULL);
SELECT * FROM anomaly_report_month(12, 'infinity');
SELECT * FROM anomaly_report_month(99, '2026-11-01');
-- Their SQLSTATEs.
CREATE FUNCTION pg_temp.try_report(op bigint, from_day date, to_day date) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM evcharge.anomaly_report(op, from_day, to_day);
	RETURN 'ok';
EXCEPTION WHEN others THEN
	RETURN SQLSTATE;
END $$;
SELECT pg_temp.try_report(NULL, '2026-11-01', '2026-11-30') AS null_operator,
       pg_temp.try_report(12, '2026-11-30', '2026-11-01') AS reversed,
       pg_temp.try_report(99, '2026-11-01', '2026-11-30') AS unknown_operator,
       pg_temp.try_report(12, '2026-11-30', '2026-11-30') AS one_day;

\i sql/include/reset.sql
