-- bench/reference/pipeline_plpgsql.sql: the heartbeat pipeline written as
-- PL/pgSQL ROW-level triggers, "as a DBA would write it", to compare with the
-- statement-level C trigger evcharge.heartbeat_ingest (src/heartbeat_trigger.c).
-- Used by bench/pipeline.sh as baseline (c).  Not part of the extension.
--
-- Tables: own copies in schema bench_ref, made with LIKE ... INCLUDING ALL
-- from the extension's tables (same columns, defaults, checks, indexes,
-- identity columns; foreign keys are not copied), except:
--   heartbeat_ref        LIKE evcharge.heartbeat INCLUDING DEFAULTS,
--                        partitioned the same way: by RANGE (ts), one
--                        partition per UTC day (bench_ref.make_partitions,
--                        the same days as evcharge.maintain_partitions) plus
--                        a DEFAULT one, and the same (gun, ts) index;
--   quarantine_ref, gun_state_ref, charge_session_ref, fault_event_ref,
--   offline_period_ref, network_incident_ref.
-- Lookups read the extension's registry and prices: evcharge.pile,
-- evcharge.station, evcharge.station_tariff.
--
-- Per row, one BEFORE INSERT ... FOR EACH ROW trigger (bench_ref.heartbeat_row):
--   1. quarantine check, the reasons of evcharge.heartbeat_problem (pile not
--      registered, gun beyond the pile's gun count, a parking ground lock
--      charging, charging without a meter reading, time before 2015 or more
--      than a day ahead, state of charge outside 0-100): the row goes to
--      quarantine_ref and is not stored (RETURN NULL);
--   2. gun_state_ref upsert that keeps the newest heartbeat;
--   3. fault events (open on a fault code, close on the first sample
--      without) and the gun's open offline period ends (and its network
--      incident once all its guns are heard), as the C trigger does;
--   4. the session state machine of RunSessionMachine (src/heartbeat_trigger.c
--      as of commit e437c01): open on charging (offline order number when
--      the pile sends none), but not with a late line of a session that has
--      already ended; a late sample of the open session only moves its start
--      back; charging under another order ends the session and opens the
--      new one; energy is the rise above the high-water mark, a rise above
--      rated_power * (time since the highest reading) * 1.2 + 10 Wh is a
--      jump (not billed), a billed rise is split by class with
--      evcharge.split_energy over the span since the highest reading with
--      the station's plan (the C function, as a DBA would call it),
--      running_total with evcharge.price; end of charging on occupied (or
--      directly idle/plugged), end of the session on idle/plugged/fault.
-- One BEFORE trigger rather than a BEFORE (quarantine) plus an AFTER (side
-- effects) pair: AFTER ROW triggers queue every event until the end of the
-- statement, which is only slower; the baseline is not made weak on purpose.
--
-- Not done here: bills.  The C pipeline finalises a bill when the pile's
-- record (evcharge.pile_record) arrives, or when a session ends and its
-- record is already in; the benchmark loads heartbeats only and no pile
-- record exists, so the C side's finalisation attempt finds nothing to do.
-- Network incidents and offline periods are never opened by heartbeats
-- (sweep_offline does that), so in the benchmark those steps only look.

CREATE SCHEMA IF NOT EXISTS bench_ref;

CREATE TABLE bench_ref.heartbeat_ref (LIKE evcharge.heartbeat INCLUDING DEFAULTS) PARTITION BY RANGE (ts);
CREATE INDEX heartbeat_ref_gun_ts_idx ON bench_ref.heartbeat_ref (gun, ts);
CREATE TABLE bench_ref.heartbeat_ref_default PARTITION OF bench_ref.heartbeat_ref DEFAULT;

CREATE TABLE bench_ref.quarantine_ref (LIKE evcharge.quarantine INCLUDING ALL);
CREATE TABLE bench_ref.gun_state_ref (LIKE evcharge.gun_state INCLUDING ALL);
CREATE TABLE bench_ref.charge_session_ref (LIKE evcharge.charge_session INCLUDING ALL);
CREATE TABLE bench_ref.fault_event_ref (LIKE evcharge.fault_event INCLUDING ALL);
CREATE TABLE bench_ref.network_incident_ref (LIKE evcharge.network_incident INCLUDING ALL);
CREATE TABLE bench_ref.offline_period_ref (LIKE evcharge.offline_period INCLUDING ALL);

-- Daily partitions [00:00, 24:00) UTC from the day before at to days_ahead
-- after, named heartbeat_ref_pYYYYMMDD, as evcharge.maintain_partitions.
CREATE FUNCTION bench_ref.make_partitions(at timestamptz, days_ahead int DEFAULT 7) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
	today date := (at AT TIME ZONE 'UTC')::date;
	d date;
	made int := 0;
BEGIN
	FOR d IN SELECT g::date FROM generate_series((today - 1)::timestamp, (today + days_ahead)::timestamp, interval '1 day') g LOOP
		CONTINUE WHEN to_regclass(format('bench_ref.%I', 'heartbeat_ref_p' || to_char(d, 'YYYYMMDD'))) IS NOT NULL;
		EXECUTE format('CREATE TABLE bench_ref.%I PARTITION OF bench_ref.heartbeat_ref FOR VALUES FROM (%L) TO (%L)',
		               'heartbeat_ref_p' || to_char(d, 'YYYYMMDD'),
		               to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00', to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
		made := made + 1;
	END LOOP;
	RETURN made;
END $$;

CREATE FUNCTION bench_ref.heartbeat_row() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	p record;							-- the pile and its station
	reason text;
	meter bigint := coalesce(NEW.meter_wh, -1);
	charging boolean := NEW.status IN ('charging', 'suspended');
	s bench_ref.charge_session_ref;		-- the gun's open session
	have boolean;
	plan evcharge.tou_tariff;
	rise bigint;
	part bigint[];
	inc bigint;
BEGIN
	SELECT pl.pile_id, pl.station_id, pl.gun_count, pl.rated_power_w, st.tz INTO p
	  FROM evcharge.pile pl JOIN evcharge.station st ON st.station_id = pl.station_id
	 WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(NEW.gun);

	-- 1. What cannot be accepted goes to quarantine, whole.
	reason := CASE
		WHEN p.pile_id IS NULL THEN format('pile %s is not registered', evcharge.pile(NEW.gun))
		WHEN evcharge.gun_no(NEW.gun) > p.gun_count
			THEN format('gun %s of pile %s, which has %s gun(s)', evcharge.gun_no(NEW.gun), p.pile_id, p.gun_count)
		WHEN NEW.status IN ('charging', 'suspended', 'occupied') AND evcharge.product_kind(NEW.gun) = 'ground_lock'
			THEN format('status %s, which a parking ground lock cannot have', NEW.status)
		WHEN NEW.status = 'charging' AND NEW.meter_wh IS NULL THEN 'charging without a meter reading'
		WHEN NEW.ts < '2015-01-01 00:00+08' THEN 'time before 2015: the pile''s clock is not set'
		WHEN NEW.ts > now() + interval '1 day' THEN 'time more than a day ahead: the pile''s clock is wrong'
		WHEN NEW.soc NOT BETWEEN 0 AND 100 THEN format('state of charge %s outside 0-100', NEW.soc)
	END;
	IF reason IS NOT NULL THEN
		INSERT INTO bench_ref.quarantine_ref (source, reason, gun, ts, payload)
		VALUES ('heartbeat', reason, NEW.gun, NEW.ts, to_jsonb(NEW));
		RETURN NULL;
	END IF;

	-- 2. Live state: the newest heartbeat wins.
	INSERT INTO bench_ref.gun_state_ref AS g (gun, station_id, status, online, last_heartbeat, current_order,
	                                          power_w, soc, meter_wh, fault_code, updated_at)
	VALUES (NEW.gun, p.station_id, NEW.status, true, NEW.ts, NEW.order_no, NEW.power_w, NEW.soc, NEW.meter_wh,
	        NEW.fault_code, now())
	ON CONFLICT (gun) DO UPDATE SET station_id = EXCLUDED.station_id, status = EXCLUDED.status, online = true,
		last_heartbeat = EXCLUDED.last_heartbeat, current_order = EXCLUDED.current_order,
		power_w = EXCLUDED.power_w, soc = EXCLUDED.soc, meter_wh = EXCLUDED.meter_wh,
		fault_code = EXCLUDED.fault_code, updated_at = EXCLUDED.updated_at
	WHERE g.last_heartbeat < EXCLUDED.last_heartbeat;

	-- 3. Faults; the end of an offline period (and of its network incident).
	IF NEW.fault_code <> 0 THEN
		INSERT INTO bench_ref.fault_event_ref (gun, fault_code, started_at) VALUES (NEW.gun, NEW.fault_code, NEW.ts)
		ON CONFLICT (gun) WHERE ended_at IS NULL DO NOTHING;
	ELSIF NEW.fault_code = 0 THEN
		UPDATE bench_ref.fault_event_ref SET ended_at = NEW.ts
		 WHERE gun OPERATOR(evcharge.=) NEW.gun AND ended_at IS NULL AND started_at < NEW.ts;
	END IF;
	UPDATE bench_ref.offline_period_ref SET ended_at = NEW.ts
	 WHERE gun OPERATOR(evcharge.=) NEW.gun AND ended_at IS NULL AND started_at < NEW.ts
	RETURNING network_incident_id INTO inc;
	IF inc IS NOT NULL THEN
		UPDATE bench_ref.network_incident_ref i SET ended_at = NEW.ts
		 WHERE i.network_incident_id = inc AND i.ended_at IS NULL
		   AND NOT EXISTS (SELECT 1 FROM bench_ref.offline_period_ref o
		                   WHERE o.network_incident_id = inc AND o.ended_at IS NULL);
	END IF;

	-- 4. The session.
	SELECT * INTO s FROM bench_ref.charge_session_ref
	 WHERE gun OPERATOR(evcharge.=) NEW.gun AND state IN ('pending', 'charging', 'occupied');
	have := FOUND;
	IF NOT have AND NOT charging THEN
		RETURN NEW;
	END IF;

	-- A late sample of the open session only moves its start back.
	IF have AND s.state <> 'pending' AND NEW.ts <= s.last_ts THEN
		IF charging AND s.started_at IS NOT NULL AND NEW.ts < s.started_at
		   AND (NEW.order_no IS NULL OR NEW.order_no = s.order_no) THEN
			UPDATE bench_ref.charge_session_ref
			   SET started_at = NEW.ts, first_meter_wh = CASE WHEN meter >= 0 THEN meter ELSE first_meter_wh END,
			       updated_at = now()
			 WHERE order_no = s.order_no;
		END IF;
		RETURN NEW;
	END IF;

	-- A late line of a session that has already ended opens nothing.
	IF NOT have AND NEW.ts <= (SELECT max(coalesce(c.occupied_until, c.charging_ended_at))
	                             FROM bench_ref.charge_session_ref c
	                            WHERE c.gun OPERATOR(evcharge.=) NEW.gun AND c.state IN ('ended', 'cancelled')
	                              AND c.occupied_until >= NEW.ts - interval '1 day') THEN
		RETURN NEW;
	END IF;

	-- Charging under another order: the pile ended that charge and began a
	-- new one while we did not hear it.
	IF charging AND have AND s.state = 'charging' AND NEW.order_no <> s.order_no THEN
		UPDATE bench_ref.charge_session_ref
		   SET state = 'ended', charging_ended_at = s.last_ts, occupied_until = NEW.ts, updated_at = now()
		 WHERE order_no = s.order_no;
		INSERT INTO bench_ref.charge_session_ref (order_no, gun, station_id, channel, state, started_at, last_ts,
			first_meter_wh, high_meter_wh, high_meter_at, running_total)
		VALUES (NEW.order_no, NEW.gun, p.station_id, 'offline', 'charging', NEW.ts, NEW.ts,
		        nullif(meter, -1), nullif(meter, -1), CASE WHEN meter >= 0 THEN NEW.ts END, 0);
		RETURN NEW;
	END IF;

	IF charging AND (NOT have OR s.state = 'occupied') THEN
		IF have AND NEW.order_no = s.order_no THEN
			s.state := 'charging';		-- charging again in the same order; count the rise below
		ELSE
			IF have THEN				-- a new order after "occupied": the old session ends
				UPDATE bench_ref.charge_session_ref SET state = 'ended', occupied_until = NEW.ts, updated_at = now()
				 WHERE order_no = s.order_no;
			END IF;
			INSERT INTO bench_ref.charge_session_ref (order_no, gun, station_id, channel, state, started_at, last_ts,
				first_meter_wh, high_meter_wh, high_meter_at, running_total)
			VALUES (coalesce(NEW.order_no,		-- offline order number, as the C trigger makes it
			                 NEW.gun::text || '-' || trunc(extract(epoch FROM NEW.ts - '2000-01-01 00:00+00'))::bigint),
			        NEW.gun, p.station_id, 'offline', 'charging', NEW.ts, NEW.ts,
			        nullif(meter, -1), nullif(meter, -1), CASE WHEN meter >= 0 THEN NEW.ts END, 0);
			RETURN NEW;
		END IF;
	ELSIF charging AND s.state = 'pending' THEN
		IF NEW.order_no IS NULL OR NEW.order_no = s.order_no THEN
			UPDATE bench_ref.charge_session_ref
			   SET state = 'charging', started_at = NEW.ts, last_ts = NEW.ts,
			       first_meter_wh = nullif(meter, -1), high_meter_wh = nullif(meter, -1),
			       high_meter_at = CASE WHEN meter >= 0 THEN NEW.ts END, updated_at = now()
			 WHERE order_no = s.order_no;
		ELSE
			-- The pile charges for another order: the app start never came.
			UPDATE bench_ref.charge_session_ref SET state = 'cancelled', updated_at = now() WHERE order_no = s.order_no;
			INSERT INTO bench_ref.charge_session_ref (order_no, gun, station_id, channel, state, started_at, last_ts,
				first_meter_wh, high_meter_wh, high_meter_at, running_total)
			VALUES (NEW.order_no, NEW.gun, p.station_id, 'offline', 'charging', NEW.ts, NEW.ts,
			        nullif(meter, -1), nullif(meter, -1), CASE WHEN meter >= 0 THEN NEW.ts END, 0);
		END IF;
		RETURN NEW;
	END IF;
	IF NOT have OR s.state = 'pending' THEN
		RETURN NEW;
	END IF;

	-- Energy: the rise above the highest reading, which had the time since
	-- that reading; a jump is not billed.
	IF meter >= 0 THEN
		IF s.high_meter_wh IS NULL THEN
			s.high_meter_wh := meter;
			s.high_meter_at := NEW.ts;
			s.first_meter_wh := coalesce(s.first_meter_wh, meter);
		ELSIF meter > s.high_meter_wh THEN
			rise := meter - s.high_meter_wh;
			s.high_meter_at := coalesce(s.high_meter_at, s.last_ts);
			IF rise > p.rated_power_w * extract(epoch FROM NEW.ts - s.high_meter_at) / 3600 * 1.2 + 10 THEN
				s.jump_wh := s.jump_wh + rise;
			ELSE
				SELECT t.tariff INTO plan FROM evcharge.station_tariff t
				 WHERE t.station_id = p.station_id AND t.current_type = evcharge.current_type(NEW.gun)
				   AND t.valid @> s.high_meter_at;
				IF FOUND THEN
					part := evcharge.split_energy(plan, ARRAY[s.high_meter_at, NEW.ts], ARRAY[s.high_meter_wh, meter], p.tz);
					s.wh_by_class := ARRAY[s.wh_by_class[1] + part[1], s.wh_by_class[2] + part[2],
					                       s.wh_by_class[3] + part[3], s.wh_by_class[4] + part[4]];
					s.running_total := (evcharge.price(plan, s.wh_by_class)).total;
				END IF;
			END IF;
			s.high_meter_wh := meter;
			s.high_meter_at := NEW.ts;
		END IF;
	END IF;
	s.last_ts := NEW.ts;
	IF NOT charging AND s.state = 'charging' THEN
		s.charging_ended_at := NEW.ts;
		s.state := 'occupied';
	END IF;
	IF NEW.status IN ('idle', 'plugged', 'fault') THEN
		s.state := 'ended';
		s.occupied_until := NEW.ts;
	END IF;
	UPDATE bench_ref.charge_session_ref
	   SET state = s.state, charging_ended_at = s.charging_ended_at, occupied_until = s.occupied_until,
	       last_ts = s.last_ts, first_meter_wh = s.first_meter_wh, high_meter_wh = s.high_meter_wh,
	       high_meter_at = s.high_meter_at, wh_by_class = s.wh_by_class, jump_wh = s.jump_wh, running_total = s.running_total, updated_at = now()
	 WHERE order_no = s.order_no;
	RETURN NEW;
END $$;

CREATE TRIGGER heartbeat_row BEFORE INSERT ON bench_ref.heartbeat_ref
	FOR EACH ROW EXECUTE FUNCTION bench_ref.heartbeat_row();
