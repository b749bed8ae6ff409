-- evidence.sql: what support shows a driver who disputes a bill ("nothing
-- went into my car"): the session's heartbeat curve as the piles sent it,
-- with what the bill counted and what it did not (session_evidence), and
-- the same as a self-contained SVG chart (session_chart).  Both only read.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- Text for an XML document: the five markup characters escaped, control
-- characters (which XML 1.0 does not allow) replaced by a space.
CREATE FUNCTION evcharge.xml_escape(t text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
	pg_catalog.regexp_replace(t, '[[:cntrl:]]', ' ', 'g'),
	'&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&apos;');
COMMENT ON FUNCTION evcharge.xml_escape(text) IS
	'text made safe for XML content and attribute values: & < > " '' escaped, control characters replaced by a space (session_chart uses it for every text it writes)';

-- The heartbeat curve of one session, one row per heartbeat time.  The
-- window is the session's gun from 5 minutes before charging started to the
-- unplug (or the last heartbeat taken in).  Energy is what session_samples()
-- counts, the samples the bill is measured from, so the curve and the bill
-- cannot disagree; a rise it keeps out is shown as a jump.
CREATE FUNCTION evcharge.session_evidence(p_order_no text)
RETURNS TABLE (ts timestamptz, meter_wh bigint, energy_wh bigint, power_w int, status evcharge.gun_status,
	soc smallint, order_no text, tariff_class text, note text)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	gap_after CONSTANT interval := interval '2 min';
	s record;
	smp record;
	nsamples int;
	i int := 0;				-- the last sample at or before the row
	r record;
	notes text[];
	high bigint;			-- highest reading among the samples so far
	prev_ts timestamptz;
	ended_noted boolean := false;
	unplug_noted boolean := false;
	gap int;
BEGIN
	SELECT cs.gun, cs.station_id, cs.started_at, cs.charging_ended_at, cs.occupied_until,
	       coalesce(cs.started_at, cs.created_at) - interval '5 min' AS lo,
	       coalesce(cs.occupied_until, cs.last_ts, cs.charging_ended_at, cs.started_at, cs.created_at) AS hi,
	       st.tz, evcharge.current_type(cs.gun) AS current_type
	INTO s
	FROM evcharge.charge_session cs JOIN evcharge.station st ON st.station_id = cs.station_id
	WHERE cs.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', p_order_no
			USING ERRCODE = 'no_data_found',
			      DETAIL = 'No charging session has this order number, so there are no heartbeats to show.',
			      HINT = 'Order numbers are in evcharge.charge_session; a charge started at the pile appears there with its first charging heartbeat or its pile record.';
	END IF;
	smp := evcharge.session_samples(p_order_no);
	nsamples := coalesce(array_length(smp.ts, 1), 0);

	FOR r IN
		SELECT d.ts, d.meter_wh, d.power_w, d.status, d.soc, d.order_no, d.copies,
		       (SELECT evcharge.class_at(t.tariff, (d.ts AT TIME ZONE s.tz)::time)
		        FROM evcharge.plan_in_force(s.station_id, s.current_type, d.ts) t) AS tariff_class
		FROM (SELECT DISTINCT ON (h.ts) h.ts, h.meter_wh, h.power_w, h.status, h.soc, h.order_no,
		             count(*) OVER (PARTITION BY h.ts) AS copies
		      FROM evcharge.heartbeat h
		      WHERE h.gun OPERATOR(evcharge.=) s.gun AND h.ts >= s.lo AND h.ts <= s.hi
		      ORDER BY h.ts, h.meter_wh DESC NULLS LAST, h.received_at, h.status, h.power_w) d
		ORDER BY d.ts
	LOOP
		notes := '{}';
		IF r.ts = s.started_at THEN
			notes := notes || 'start of charging'::text;
		END IF;
		-- A silence while charging: the pile was offline or its data lost.
		IF prev_ts >= s.started_at AND prev_ts < coalesce(s.charging_ended_at, 'infinity')
		   AND r.ts - prev_ts > gap_after THEN
			gap := extract(epoch FROM r.ts - prev_ts)::int;
			notes := notes || format('no heartbeat for %s min %s s before this: possible lost data', gap / 60, gap % 60);
		END IF;

		-- Energy so far: the last sample at or before this row.  At a sample,
		-- a rise of the highest reading that the count did not take is a jump.
		IF i < nsamples AND smp.ts[i + 1] = r.ts THEN
			i := i + 1;
			IF high IS NOT NULL AND r.meter_wh > high
			   AND r.meter_wh - high > smp.meter_wh[i] - smp.meter_wh[i - 1] THEN
				notes := notes || format('meter jump of %s Wh, not billed',
					(r.meter_wh - high) - (smp.meter_wh[i] - smp.meter_wh[i - 1]));
			END IF;
			high := greatest(high, r.meter_wh);
		END IF;
		IF r.ts >= s.started_at AND r.ts <= coalesce(s.charging_ended_at, 'infinity') THEN
			IF r.meter_wh < 0 THEN
				notes := notes || 'no meter reading (-1): ignored'::text;
			ELSIF r.meter_wh = 0 AND high > 0 THEN
				notes := notes || 'meter reads 0 (a pile back online): ignored, counting resumes above the highest reading'::text;
			ELSIF r.meter_wh < high THEN
				notes := notes || format('meter below its highest reading (%s Wh): nothing counted', high);
			END IF;
		END IF;

		IF NOT ended_noted AND r.ts >= s.charging_ended_at THEN
			notes := notes || CASE WHEN r.ts = s.charging_ended_at THEN 'end of charging'
				ELSE format('end of charging at %s, before this heartbeat',
				            to_char(s.charging_ended_at AT TIME ZONE s.tz, 'HH24:MI:SS')) END;
			ended_noted := true;
		END IF;
		IF NOT unplug_noted AND r.ts >= s.occupied_until THEN
			notes := notes || CASE WHEN r.ts = s.occupied_until THEN 'unplugged'
				ELSE format('unplugged at %s, before this heartbeat', to_char(s.occupied_until AT TIME ZONE s.tz, 'HH24:MI:SS')) END;
			unplug_noted := true;
		END IF;
		IF r.copies > 1 THEN
			notes := notes || format('received %s times: the highest reading is shown', r.copies);
		END IF;

		ts := r.ts;
		meter_wh := r.meter_wh;
		energy_wh := CASE WHEN i > 0 THEN smp.meter_wh[i] END;
		power_w := r.power_w;
		status := r.status;
		soc := r.soc;
		order_no := r.order_no;
		tariff_class := r.tariff_class;
		note := nullif(array_to_string(notes, '; '), '');
		RETURN NEXT;
		prev_ts := r.ts;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.session_evidence(text) IS
	'the heartbeat curve of a session for support: its gun''s heartbeats from 5 minutes before charging started to the unplug, one row per time (duplicates once, the highest reading), energy delivered so far as the bill counts it (from the first charging reading; jumps not billed), the tariff class in force, and notes: start, end of charging, unplug, jumps, 0 and -1 readings, silences longer than 2 minutes while charging, duplicates';

-- The evidence as a chart a driver can be sent: an SVG 1.1 document with no
-- external reference and no script.  Energy delivered (Wh, left axis) and
-- power (kW, right axis) over the station's wall-clock time, the tariff
-- classes in force as background bands, the start, end of charging and
-- unplug as dashed lines, meter jumps and silences while charging marked,
-- and the bill's anomalies in a box below.  Every number is written with
-- fixed decimals and nothing depends on the time of the call, so the same
-- data always gives the same document.
CREATE FUNCTION evcharge.session_chart(p_order_no text) RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	width CONSTANT int := 960;
	px0 CONSTANT int := 80;				-- the plot area, px
	px1 CONSTANT int := 880;
	py0 CONSTANT int := 90;
	py1 CONSTANT int := 390;
	s record;
	b evcharge.bill;
	has_bill boolean;
	ev_ts timestamptz[];
	ev_wh bigint[];
	ev_w int[];
	ev_note text[];
	n int;
	t0 timestamptz;
	t1 timestamptz;
	span numeric;						-- seconds from t0 to t1
	l0 timestamp;						-- t0 and t1 on the station's wall clock
	l1 timestamp;
	tick_every interval;
	tick timestamp;
	x numeric;
	v numeric;
	e_top numeric;
	e_step numeric;
	p_top numeric;
	p_step numeric;
	r record;
	k int;
	body text[] := '{}';
	shown_plan bigint[] := '{}';		-- the plans and classes drawn as bands
	shown_class text[] := '{}';
	lines text[];
	y numeric;
	height int;
BEGIN
	-- The curve; session_evidence raises the error for an unknown order.
	SELECT array_agg(e.ts ORDER BY e.ts), array_agg(e.energy_wh ORDER BY e.ts),
	       array_agg(e.power_w ORDER BY e.ts), array_agg(e.note ORDER BY e.ts)
	INTO ev_ts, ev_wh, ev_w, ev_note
	FROM evcharge.session_evidence(p_order_no) e;
	n := coalesce(array_length(ev_ts, 1), 0);
	SELECT cs.order_no, cs.gun, cs.station_id, cs.state, cs.started_at, cs.charging_ended_at,
	       cs.occupied_until, cs.created_at, st.name AS station_name, st.tz,
	       evcharge.current_type(cs.gun) AS current_type
	INTO s
	FROM evcharge.charge_session cs JOIN evcharge.station st ON st.station_id = cs.station_id
	WHERE cs.order_no = p_order_no;
	SELECT * INTO b FROM evcharge.bill bl WHERE bl.order_no = p_order_no;
	has_bill := FOUND;

	-- Time axis: the heartbeats shown and the session's moments, at least a
	-- minute; ticks at round local times, at most 8 of them.
	t0 := coalesce(least(ev_ts[1], s.started_at), s.created_at);
	t1 := greatest(ev_ts[n], s.started_at, s.charging_ended_at, s.occupied_until, t0 + interval '1 min');
	span := extract(epoch FROM t1 - t0);
	l0 := t0 AT TIME ZONE s.tz;
	l1 := t1 AT TIME ZONE s.tz;
	SELECT m * interval '1 min' INTO tick_every
	FROM unnest(ARRAY[1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440]) m
	WHERE span / 60 / m <= 8 ORDER BY m LIMIT 1;
	tick_every := coalesce(tick_every, ceil(span / 86400 / 8) * interval '1 day');

	-- Value axes: 0 to a round top, steps of 1, 2 or 5 times a power of ten.
	v := greatest(coalesce((SELECT max(w) FROM unnest(ev_wh) w), 0), 100) / 5.0;
	e_step := 10 ^ floor(log(v));
	e_step := CASE WHEN v <= e_step THEN e_step WHEN v <= 2 * e_step THEN 2 * e_step
	               WHEN v <= 5 * e_step THEN 5 * e_step ELSE 10 * e_step END;
	e_top := greatest(ceil(coalesce((SELECT max(w) FROM unnest(ev_wh) w), 0) / e_step), 1) * e_step;
	v := greatest(coalesce((SELECT max(w) FROM unnest(ev_w) w), 0) / 1000.0, 1) / 5.0;
	p_step := 10 ^ floor(log(v));
	p_step := CASE WHEN v <= p_step THEN p_step WHEN v <= 2 * p_step THEN 2 * p_step
	               WHEN v <= 5 * p_step THEN 5 * p_step ELSE 10 * p_step END;
	p_top := greatest(ceil(coalesce((SELECT max(w) FROM unnest(ev_w) w), 0) / 1000.0 / p_step), 1) * p_step;

	-- Tariff bands: each segment of each plan in force, on every local day
	-- the chart covers, cut to the plan's validity and to the chart.
	body := body || '<g id="tariff-bands">'::text;
	FOR r IN
		SELECT greatest(seg.f, t0, lower(t.valid)) AS f, least(seg.t, t1, upper(t.valid)) AS t, seg.class,
		       t.station_tariff_id
		FROM evcharge.station_tariff t
		CROSS JOIN generate_series((l0::date - 1)::timestamp, l1::date::timestamp, interval '1 day') d
		CROSS JOIN LATERAL (SELECT (d::date + g.starts) AT TIME ZONE s.tz AS f, (d::date + g.ends) AT TIME ZONE s.tz AS t, g.class
		                    FROM evcharge.tariff_segments(t.tariff) g) seg
		WHERE t.station_id = s.station_id AND t.current_type = s.current_type
		  AND t.valid && tstzrange(t0, t1) AND seg.f < t1 AND seg.t > t0
		  AND seg.t > lower(t.valid) AND (upper_inf(t.valid) OR seg.f < upper(t.valid))
		  -- the plan by calendar in force that day (plan_in_force), not every plan valid then
		  AND (SELECT f.station_tariff_id FROM evcharge.plan_in_force(s.station_id, s.current_type,
		           greatest(seg.f, t0, lower(t.valid))) f) = t.station_tariff_id
		ORDER BY 1
	LOOP
		shown_plan := shown_plan || r.station_tariff_id;
		shown_class := shown_class || r.class;
		body := body || format('<rect class="band-%s" x="%s" y="%s" width="%s" height="%s"/>',
			evcharge.xml_escape(r.class), round(px0 + (px1 - px0) * extract(epoch FROM r.f - t0) / span, 1), py0,
			round((px1 - px0) * extract(epoch FROM r.t - r.f) / span, 1), py1 - py0);
	END LOOP;
	body := body || '</g>'::text;

	-- Grid and axes.
	body := body || '<g id="axes">'::text;
	FOR k IN 0 .. round(e_top / e_step)::int LOOP
		y := py1 - (py1 - py0) * k * e_step / e_top;
		body := body || format('<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/>', px0, round(y, 1), px1, round(y, 1))
		             || format('<text x="%s" y="%s" text-anchor="end">%s</text>', px0 - 6, round(y + 4, 1), round(k * e_step));
	END LOOP;
	FOR k IN 0 .. round(p_top / p_step)::int LOOP
		y := py1 - (py1 - py0) * k * p_step / p_top;
		body := body || format('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>', px1, round(y, 1), px1 + 4, round(y, 1))
		             || format('<text x="%s" y="%s">%s</text>', px1 + 7, round(y + 4, 1), round(k * p_step, 1));
	END LOOP;
	tick := date_bin(tick_every, l0, timestamp '2000-01-01');
	IF tick < l0 THEN
		tick := tick + tick_every;
	END IF;
	WHILE tick <= l1 LOOP
		x := px0 + (px1 - px0) * extract(epoch FROM (tick AT TIME ZONE s.tz) - t0) / span;
		body := body || format('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>', round(x, 1), py1, round(x, 1), py1 + 4)
		             || format('<text x="%s" y="%s" text-anchor="middle">%s</text>', round(x, 1), py1 + 17,
		                       to_char(tick, CASE WHEN tick::date = l0::date THEN 'HH24:MI' ELSE 'MM-DD HH24:MI' END));
		tick := tick + tick_every;
	END LOOP;
	body := body
		|| format('<rect class="frame" x="%s" y="%s" width="%s" height="%s"/>', px0, py0, px1 - px0, py1 - py0)
		|| format('<text x="%s" y="%s" text-anchor="middle">%s</text>', (px0 + px1) / 2, py1 + 35,
		          evcharge.xml_escape(format('local time (%s), %s', s.tz,
		              CASE WHEN l0::date = l1::date THEN to_char(l0, 'YYYY-MM-DD')
		                   ELSE to_char(l0, 'YYYY-MM-DD') || ' to ' || to_char(l1, 'YYYY-MM-DD') END)))
		|| format('<text x="20" y="%s" text-anchor="middle" transform="rotate(-90 20 %s)">energy delivered (Wh)</text>',
		          (py0 + py1) / 2, (py0 + py1) / 2)
		|| format('<text x="%s" y="%s" text-anchor="middle" transform="rotate(90 %s %s)">power (kW)</text>',
		          width - 20, (py0 + py1) / 2, width - 20, (py0 + py1) / 2)
		|| '</g>'::text;

	-- The curves.
	body := body || format('<polyline class="power" points="%s"/>', coalesce((
		SELECT string_agg(format('%s,%s', round(px0 + (px1 - px0) * extract(epoch FROM u.t - t0) / span, 1),
		                         round(py1 - (py1 - py0) * u.w / 1000.0 / p_top, 1)), ' ' ORDER BY u.t)
		FROM unnest(ev_ts, ev_w) u(t, w) WHERE u.w IS NOT NULL), ''));
	body := body || format('<polyline class="energy" points="%s"/>', coalesce((
		SELECT string_agg(format('%s,%s', round(px0 + (px1 - px0) * extract(epoch FROM u.t - t0) / span, 1),
		                         round(py1 - (py1 - py0) * u.w / e_top, 1)), ' ' ORDER BY u.t)
		FROM unnest(ev_ts, ev_wh) u(t, w) WHERE u.w IS NOT NULL), ''));
	IF n = 0 THEN
		body := body || format('<text x="%s" y="%s" text-anchor="middle">no heartbeats</text>', (px0 + px1) / 2, (py0 + py1) / 2);
	END IF;

	-- The session's moments.
	body := body || '<g id="moments">'::text;
	FOR r IN
		SELECT m.moment, m.label, m.line_no
		FROM (VALUES (s.started_at, 'start', 1), (s.charging_ended_at, 'end of charging', 2),
		             (s.occupied_until, 'unplugged', 3)) m(moment, label, line_no)
		WHERE m.moment IS NOT NULL ORDER BY m.line_no
	LOOP
		x := px0 + (px1 - px0) * extract(epoch FROM r.moment - t0) / span;
		body := body || format('<line class="mark" x1="%s" y1="%s" x2="%s" y2="%s"/>', round(x, 1), py0, round(x, 1), py1)
		             || (CASE WHEN x < (px0 + px1) / 2
		                 THEN format('<text x="%s" y="%s">', round(x + 3, 1), py0 + 14 * r.line_no)
		                 ELSE format('<text x="%s" y="%s" text-anchor="end">', round(x - 3, 1), py0 + 14 * r.line_no) END
		                 || format('%s %s</text>', r.label, to_char(r.moment AT TIME ZONE s.tz, 'HH24:MI:SS')));
	END LOOP;
	body := body || '</g>'::text;

	-- What the bill did not count: meter jumps, and silences while charging.
	body := body || '<g id="marks">'::text;
	FOR r IN
		SELECT g.prev, g.t, substring(g.note FROM 'no heartbeat for ([0-9]+ min [0-9]+ s)') AS len
		FROM (SELECT u.t, u.note, lag(u.t) OVER (ORDER BY u.t) AS prev FROM unnest(ev_ts, ev_note) u(t, note)) g
		WHERE g.note ~ 'no heartbeat for' ORDER BY g.t
	LOOP
		x := px0 + (px1 - px0) * extract(epoch FROM r.prev - t0) / span;
		body := body || format('<rect class="gap" x="%s" y="%s" width="%s" height="%s"/>', round(x, 1), py0,
		                       round((px1 - px0) * extract(epoch FROM r.t - r.prev) / span, 1), py1 - py0)
		             || format('<text class="warn" x="%s" y="%s">no data %s</text>', round(x + 2, 1), py1 - 6, r.len);
	END LOOP;
	FOR r IN
		SELECT u.t, u.w, substring(u.note FROM 'meter jump of ([0-9]+) Wh') AS jump
		FROM unnest(ev_ts, ev_wh, ev_note) u(t, w, note)
		WHERE u.note ~ 'meter jump of' ORDER BY u.t
	LOOP
		x := px0 + (px1 - px0) * extract(epoch FROM r.t - t0) / span;
		y := py1 - (py1 - py0) * coalesce(r.w, 0) / e_top;
		body := body || format('<circle class="jump" cx="%s" cy="%s" r="5"/>', round(x, 1), round(y, 1))
		             || format('<text class="warn" x="%s" y="%s" text-anchor="end">jump +%s Wh, not billed</text>',
		                       round(x - 8, 1), round(y - 8, 1), r.jump);
	END LOOP;
	body := body || '</g>'::text;

	-- Legend: the two curves, then each class drawn with its plan's prices
	-- (a class twice when a plan change during the session changed them),
	-- four to a line.
	y := py1 + 62;
	body := body || '<g id="legend">'::text
		|| format('<line class="energy" x1="%s" y1="%s" x2="%s" y2="%s"/>', px0, y - 4, px0 + 24, y - 4)
		|| format('<text x="%s" y="%s">energy delivered (Wh), as the bill counts it</text>', px0 + 30, y)
		|| format('<line class="power" x1="%s" y1="%s" x2="%s" y2="%s"/>', px0 + 340, y - 4, px0 + 364, y - 4)
		|| format('<text x="%s" y="%s">power (kW)</text>', px0 + 370, y)
		|| format('<rect class="gap" x="%s" y="%s" width="24" height="10"/>', px0 + 460, y - 9)
		|| format('<text x="%s" y="%s">no heartbeat for over 2 min while charging</text>', px0 + 490, y);
	y := y + 22;
	k := 0;
	FOR r IN
		SELECT DISTINCT seg.class, p.energy_price, p.service_fee,
		       array_position(evcharge.tariff_classes(), seg.class) AS pos
		FROM evcharge.station_tariff t
		CROSS JOIN LATERAL evcharge.tariff_segments(t.tariff) seg
		JOIN LATERAL evcharge.tariff_prices(t.tariff) p ON p.class = seg.class
		WHERE t.station_id = s.station_id AND t.current_type = s.current_type AND t.valid && tstzrange(t0, t1)
		  AND EXISTS (SELECT 1 FROM unnest(shown_plan, shown_class) u(plan, class)
		              WHERE u.plan = t.station_tariff_id AND u.class = seg.class)
		ORDER BY pos, seg.class, p.energy_price, p.service_fee
	LOOP
		IF k = 0 THEN
			body := body || format('<text x="%s" y="%s">tariff classes (electricity + service fee, yuan/kWh):</text>', px0, y);
		END IF;
		IF k % 4 = 0 THEN
			y := y + 20;
		END IF;
		body := body || format('<rect class="band-%s" x="%s" y="%s" width="14" height="10"/>',
		                       evcharge.xml_escape(r.class), px0 + 200 * (k % 4), y - 9)
		             || format('<text x="%s" y="%s">%s %s + %s</text>', px0 + 20 + 200 * (k % 4), y,
		                       evcharge.xml_escape(r.class), round(r.energy_price, 4), round(r.service_fee, 4));
		k := k + 1;
	END LOOP;
	IF k = 0 THEN
		body := body || format('<text class="warn" x="%s" y="%s">no %s plan in force at this station: nothing can be priced</text>',
		                       px0, y, s.current_type);
	END IF;
	body := body || '</g>'::text;

	-- The bill's anomalies.
	IF NOT has_bill THEN
		lines := ARRAY['No bill yet: anomalies are looked for when the bill is made.'];
	ELSIF cardinality(evcharge.anomaly_codes(b.anomalies)) = 0 THEN
		lines := ARRAY[format('No anomalies on the bill (%s).', b.state)];
	ELSE
		lines := ARRAY[format('Anomalies on the bill (%s): %s', b.state, b.anomalies::text)]
			|| ARRAY(SELECT format('%s %s: %s', a.code, a.name, coalesce(c.description, ''))
			         FROM unnest(evcharge.anomaly_codes(b.anomalies), evcharge.anomaly_names(b.anomalies)) a(code, name)
			         LEFT JOIN evcharge.anomaly_code c ON c.code = a.code
			         ORDER BY a.code);
	END IF;
	y := y + 20;
	body := body || '<g id="anomalies">'::text
		|| format('<rect class="box" x="%s" y="%s" width="%s" height="%s"/>', px0, y, px1 - px0, 10 + 16 * cardinality(lines));
	FOR k IN 1 .. cardinality(lines) LOOP
		body := body || format('<text%s x="%s" y="%s">%s</text>', CASE WHEN k = 1 THEN ' class="head"' ELSE '' END,
		                       px0 + 8, y + 16 * k, evcharge.xml_escape(lines[k]));
	END LOOP;
	body := body || '</g>'::text;
	height := y + 10 + 16 * cardinality(lines) + 12;

	RETURN array_to_string(ARRAY[
		'<?xml version="1.0" encoding="UTF-8"?>',
		format('<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%s" height="%s" viewBox="0 0 %s %s">',
		       width, height, width, height),
		format('<title>%s</title>', evcharge.xml_escape(format('Charging evidence for order %s', s.order_no))),
		format('<desc>%s</desc>', evcharge.xml_escape(format(
			'Energy delivered (Wh, left axis) and power (kW, right axis) from the heartbeats of gun %s at station %s, on the station''s local time (%s); background bands are the tariff classes in force.',
			s.gun, s.station_name, s.tz))),
		'<style type="text/css">'
		'text { font-family: sans-serif; font-size: 12px; fill: #222222; } '
		'.title { font-size: 16px; font-weight: bold; } .head { font-weight: bold; } .warn { fill: #cc0000; } '
		'.band-sharp { fill: #f4cccc; } .band-peak { fill: #fce5cd; } .band-flat { fill: #d9ead3; } .band-valley { fill: #cfe2f3; } .band-deep_valley { fill: #9fc5e8; } '
		'.grid { stroke: #cccccc; stroke-width: 1; } .axis { stroke: #444444; stroke-width: 1; } '
		'.frame { fill: none; stroke: #444444; stroke-width: 1; } '
		'.energy { fill: none; stroke: #1f4e79; stroke-width: 2; } '
		'.power { fill: none; stroke: #c55a11; stroke-width: 1.5; stroke-dasharray: 6 3; } '
		'.mark { stroke: #000000; stroke-width: 1; stroke-dasharray: 4 3; } '
		'.jump { fill: #cc0000; } .gap { fill: #888888; fill-opacity: 0.35; } '
		'.box { fill: #fff8e1; stroke: #b58900; stroke-width: 1; }'
		'</style>',
		format('<rect x="0" y="0" width="%s" height="%s" fill="#ffffff"/>', width, height),
		format('<text class="title" x="%s" y="26">%s</text>', px0, evcharge.xml_escape(format('Order %s · gun %s · %s',
			s.order_no, s.gun, s.station_name))),
		format('<text x="%s" y="48">%s</text>', px0, evcharge.xml_escape(CASE WHEN has_bill THEN
			format('Bill: %s kWh, total %s yuan (electricity %s, service %s, occupancy %s, discount %s), %s',
			       to_char(b.energy_wh / 1000.0, 'FM999999990.000'), b.total, b.energy_fee, b.service_fee,
			       b.occupancy_fee, b.discount, b.state)
			ELSE format('No bill yet (session %s); measured so far: %s kWh', s.state,
			            to_char(coalesce((SELECT max(w) FROM unnest(ev_wh) w), 0) / 1000.0, 'FM999999990.000')) END)),
		format('<text x="%s" y="66">%s</text>', px0, evcharge.xml_escape(format('%s heartbeats, %s to %s local time',
			n, to_char(l0, 'HH24:MI:SS'), to_char(l1, 'HH24:MI:SS'))))
	] || body || '</svg>'::text, E'\n') || E'\n';
END $$;
COMMENT ON FUNCTION evcharge.session_chart(text) IS
	'the evidence of a session as a self-contained SVG 1.1 document: energy delivered (Wh) and power (kW) over the station''s local time, tariff classes as background bands with their prices, start, end of charging and unplug, meter jumps and silences while charging marked, the bill''s anomaly codes and names; deterministic';
