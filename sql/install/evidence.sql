-- evidence.sql: what support shows a driver who disputes a bill ("nothing
-- went into my car"): the session's heartbeat curve as the piles sent it,
-- with what the bill counted and what it did not (session_evidence); what
-- caused each anomaly of the bill (anomaly_causes).  The same drawn as SVG
-- charts, for support and for the driver, is chart.sql.  All only read.
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
	       st.tz, evcharge.registered_current_type(cs.gun) AS current_type
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

-- What caused each anomaly of a bill, in the words of support: the figures
-- behind the code (the record's times against when it arrived, the two
-- energies and how far apart they are, the jumps kept out), so a ticket
-- need not look them up.  A code whose figures are not at hand is
-- explained by its description.
CREATE FUNCTION evcharge.anomaly_causes(p_order_no text) RETURNS TABLE (code int, name text, cause text)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	b evcharge.bill;
	s evcharge.charge_session;
	rec evcharge.pile_record;
	has_rec boolean;
	pol evcharge.anomaly_policy;
	tz text;
	smp record;
	measured bigint;
	a record;
	said text;
	tol text;
BEGIN
	SELECT * INTO b FROM evcharge.bill bl WHERE bl.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" has no bill', p_order_no
			USING ERRCODE = 'no_data_found',
			      DETAIL = 'Anomalies are looked for when the bill is made; this order has none yet, or is not known.',
			      HINT = 'Bills are in evcharge.bill; session_evidence(order_no) shows a session before it is billed.';
	END IF;
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = p_order_no;
	SELECT st.tz INTO tz FROM evcharge.station st WHERE st.station_id = b.station_id;
	pol := evcharge.station_policy(b.station_id);
	SELECT * INTO rec FROM evcharge.pile_record r WHERE r.order_no = p_order_no ORDER BY r.received_at, r.ctid LIMIT 1;
	has_rec := FOUND;
	smp := evcharge.session_samples(p_order_no);
	measured := coalesce(smp.meter_wh[cardinality(smp.meter_wh)], 0);
	tol := format('tolerance %s Wh or %s %%', pol.energy_tolerance_wh, pol.energy_tolerance_pct);
	FOR a IN
		SELECT u.code, u.name, c.description
		FROM unnest(evcharge.anomaly_codes(b.anomalies), evcharge.anomaly_names(b.anomalies)) u(code, name)
		LEFT JOIN evcharge.anomaly_code c ON c.code = u.code
		ORDER BY u.code
	LOOP
		said := CASE a.code
			WHEN 1 THEN format('no pile record came within %s of the end: billed from the heartbeats',
			                   evcharge.duration_words(pol.record_wait))
			WHEN 2 THEN 'no pile record, and the gun was offline during the session: billed from the heartbeats'
			WHEN 3 THEN nullif(array_to_string(
				CASE WHEN has_rec THEN evcharge.pile_record_clock_faults(rec, s.started_at, pol, tz) ELSE '{}' END
				|| CASE WHEN b.ended_at < b.started_at THEN
					ARRAY[format('end of charging %s is before its start %s', to_char(b.ended_at AT TIME ZONE tz, 'HH24:MI:SS'),
					             to_char(b.started_at AT TIME ZONE tz, 'HH24:MI:SS'))] ELSE '{}' END, '; '), '')
			WHEN 5 THEN CASE WHEN b.ended_at - b.started_at > pol.max_session
				THEN format('charging lasted %s, longer than %s', evcharge.duration_words(b.ended_at - b.started_at),
				            evcharge.duration_words(pol.max_session))
				ELSE format('%s Wh billed with no charging time', b.energy_wh) END
			WHEN 8 THEN coalesce(
				(SELECT x || format('; the heartbeats measured %s Wh', measured) FROM unnest(b.applied) x
				 WHERE x LIKE 'the pile''s % Wh exceed what % W allow in its span' LIMIT 1),
				CASE WHEN has_rec THEN format('the pile''s record says %s Wh, the heartbeats measured %s Wh: %s Wh apart (%s)',
				                             rec.energy_wh, measured, abs(rec.energy_wh - measured), tol) END)
			WHEN 9 THEN CASE WHEN has_rec AND s.charging_ended_at IS NOT NULL THEN
				format('charging lasted %s by the pile''s record and %s by the heartbeats (tolerance %s)',
				       evcharge.duration_words(rec.ended_at - rec.started_at),
				       evcharge.duration_words(s.charging_ended_at - s.started_at), evcharge.duration_words(pol.duration_tolerance)) END
			WHEN 10 THEN CASE WHEN has_rec AND s.charging_ended_at IS NOT NULL THEN
				format('the pile''s record ends charging at %s, the heartbeats at %s (tolerance %s)',
				       to_char(rec.ended_at AT TIME ZONE tz, 'HH24:MI:SS'), to_char(s.charging_ended_at AT TIME ZONE tz, 'HH24:MI:SS'),
				       evcharge.duration_words(pol.occupancy_tolerance)) END
			WHEN 11 THEN format('meter jumps of %s Wh in all were not billed (%s)', smp.jump_wh,
			                    format('tolerance %s Wh', pol.energy_tolerance_wh))
			WHEN 12 THEN format('no %s plan in force at the station when it charged: nothing could be priced',
			                    evcharge.registered_current_type(b.gun))
			END;
		code := a.code;
		name := a.name;
		cause := coalesce(said, a.description, '');
		RETURN NEXT;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.anomaly_causes(text) IS
	'what caused each anomaly code of a bill, with the figures behind it (3: which time of the pile''s record is not believed and why; 8: the two energies and how far apart; 9, 10: the two durations or ends; 11: the Wh kept out; 1, 2, 5, 12 likewise), else the code''s description; P0002 for an order without a bill';
