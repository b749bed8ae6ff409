-- session.sql: charging sessions, kept live by the heartbeat trigger, and
-- the pile's own final records (bills are in bill.sql).
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE SEQUENCE evcharge.order_seq;
COMMENT ON SEQUENCE evcharge.order_seq IS 'the last 6 digits of platform order numbers';

CREATE TABLE evcharge.charge_session (
	order_no text PRIMARY KEY CHECK (order_no <> ''),
	gun evcharge.gun_id NOT NULL,
	station_id bigint NOT NULL,
	member_id bigint,
	group_id bigint,
	partner_id bigint REFERENCES evcharge.partner,
	channel text NOT NULL CHECK (channel IN ('app', 'qr', 'card', 'password', 'vin', 'partner', 'offline')),
	state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'charging', 'occupied', 'ended', 'cancelled')),
	created_at timestamptz NOT NULL DEFAULT now(),
	started_at timestamptz,
	charging_ended_at timestamptz,
	occupied_until timestamptz,
	last_ts timestamptz,
	first_meter_wh bigint,
	high_meter_wh bigint,
	high_meter_at timestamptz,
	wh_by_class bigint[] NOT NULL DEFAULT '{0,0,0,0}' CHECK (array_length(wh_by_class, 1) IN (4, 5)),
	jump_wh bigint NOT NULL DEFAULT 0,
	running_total numeric(12, 2),
	bill_error text,
	updated_at timestamptz NOT NULL DEFAULT now(),
	card_no text,
	vin text,
	partner_order_no text CONSTRAINT charge_session_partner_order_no_check
		CHECK (partner_order_no IS NULL OR (partner_id IS NOT NULL AND evcharge.is_partner_order_no(partner_order_no)))
) WITH (fillfactor = 50);
-- A partner numbers our sessions its own way (Didi: 27 digits) and keys its
-- statements by its numbers: one session per number and partner, and the
-- reconciliation finds a statement line by it.
CREATE UNIQUE INDEX charge_session_partner_order_idx ON evcharge.charge_session (partner_id, partner_order_no)
	WHERE partner_order_no IS NOT NULL;
COMMENT ON INDEX evcharge.charge_session_partner_order_idx IS 'a partner''s own order number names one session of that partner';
CREATE UNIQUE INDEX charge_session_open_idx ON evcharge.charge_session (gun)
	WHERE state IN ('pending', 'charging', 'occupied');
COMMENT ON INDEX evcharge.charge_session_open_idx IS 'at most one open (pending, charging or occupied) session per gun';
CREATE INDEX charge_session_station_idx ON evcharge.charge_session (station_id, started_at);
COMMENT ON INDEX evcharge.charge_session_station_idx IS 'a station''s sessions by start';
CREATE INDEX charge_session_gun_idx ON evcharge.charge_session (gun, occupied_until);
COMMENT ON INDEX evcharge.charge_session_gun_idx IS 'a gun''s sessions by unplug time: the session machine finds the last one';
-- Sessions whose charging has ended, by when (NULL first-class: anomaly_report
-- finds those without an end too).  Its columns change once per session,
-- never on a heartbeat, so the heartbeats' updates stay HOT.
CREATE INDEX charge_session_ended_idx ON evcharge.charge_session (charging_ended_at)
	WHERE state IN ('occupied', 'ended');
COMMENT ON INDEX evcharge.charge_session_ended_idx IS 'occupied and ended sessions by end of charging: anomaly_report''s pending sessions of a period';
COMMENT ON TABLE evcharge.charge_session IS
	'A charging session of a gun: opened by start_session() (app, QR) or by the first charging heartbeat with an order number the platform does not know (card, password, other offline starts); energy per class accumulated live by the heartbeat trigger; at most one open session per gun';
COMMENT ON COLUMN evcharge.charge_session.order_no IS 'order number: the platform''s (yyyyMMddHHmmss + 6 digits) or the pile''s for offline starts';
COMMENT ON COLUMN evcharge.charge_session.gun IS 'the gun';
COMMENT ON COLUMN evcharge.charge_session.station_id IS 'its station';
COMMENT ON COLUMN evcharge.charge_session.member_id IS 'the member who started it, when known';
COMMENT ON COLUMN evcharge.charge_session.group_id IS 'the customer group whose prices apply, when any: the member''s group at start_session(); for a session opened by the pile, the member''s group when the bill is made';
COMMENT ON COLUMN evcharge.charge_session.partner_id IS 'the interconnection partner whose user started it, if any';
COMMENT ON COLUMN evcharge.charge_session.channel IS 'how it was started: app, qr, card, password, vin, partner, offline (started at the pile, platform not asked)';
COMMENT ON COLUMN evcharge.charge_session.state IS 'pending (started, no energy yet), charging, occupied (finished, still plugged), ended (unplugged), cancelled (never charged)';
COMMENT ON COLUMN evcharge.charge_session.created_at IS 'when the row was made';
COMMENT ON COLUMN evcharge.charge_session.started_at IS 'first charging heartbeat';
COMMENT ON COLUMN evcharge.charge_session.charging_ended_at IS 'first heartbeat no longer charging (occupied, idle or plugged)';
COMMENT ON COLUMN evcharge.charge_session.occupied_until IS 'when the gun was unplugged (idle or plugged again)';
COMMENT ON COLUMN evcharge.charge_session.last_ts IS 'time of the newest sample taken in';
COMMENT ON COLUMN evcharge.charge_session.first_meter_wh IS 'the meter at the start: the baseline, never zero';
COMMENT ON COLUMN evcharge.charge_session.high_meter_wh IS 'highest meter reading seen: energy counts above it only';
COMMENT ON COLUMN evcharge.charge_session.high_meter_at IS 'when the highest reading was taken: the jump guard measures the time since then';
COMMENT ON COLUMN evcharge.charge_session.wh_by_class IS 'Wh so far per class {sharp, peak, flat, valley}, and deep_valley once it has some, as measured live';
COMMENT ON COLUMN evcharge.charge_session.jump_wh IS 'Wh of meter jumps larger than the gun''s rated power allows: not billed';
COMMENT ON COLUMN evcharge.charge_session.running_total IS 'what the energy so far costs at the plan''s prices (before group prices, promotions, coupons)';
COMMENT ON COLUMN evcharge.charge_session.bill_error IS 'why the bill could not be made when the pile record came (e.g. EV001, no tariff in force); NULL otherwise';
COMMENT ON COLUMN evcharge.charge_session.updated_at IS 'when the row was last written';
COMMENT ON COLUMN evcharge.charge_session.card_no IS 'for a start at the pile: the card the pile''s record names, registered or not';
COMMENT ON COLUMN evcharge.charge_session.vin IS 'for a start at the pile: the vehicle the pile''s record names, registered or not';
COMMENT ON COLUMN evcharge.charge_session.partner_order_no IS 'the partner''s own order number for this session (Didi''s 27 digits), from start_session() or the pile record; unique per partner; NULL when the partner gave none';

-- Who cancelled which start, when and why: cancel_session() (support, the
-- bridge for a remote start the pile refused) and detect_lost_bills() (a
-- start the pile never began).  An audit trail, like bill_revision.
CREATE TABLE evcharge.session_cancellation (
	order_no text PRIMARY KEY REFERENCES evcharge.charge_session,
	reason text NOT NULL CHECK (btrim(reason) <> ''),
	cancelled_by text NOT NULL DEFAULT current_user,
	cancelled_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.session_cancellation IS
	'Every start cancelled by cancel_session() or detect_lost_bills(): why, by whom and when; never updated or deleted';
COMMENT ON COLUMN evcharge.session_cancellation.order_no IS 'the session cancelled';
COMMENT ON COLUMN evcharge.session_cancellation.reason IS 'why, as given to cancel_session() (or the job''s or the bridge''s own words)';
COMMENT ON COLUMN evcharge.session_cancellation.cancelled_by IS 'the database user who cancelled it';
COMMENT ON COLUMN evcharge.session_cancellation.cancelled_at IS 'when';

CREATE FUNCTION evcharge.session_cancellation_immutable() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION 'session cancellations are an audit trail and cannot be changed'
		USING ERRCODE = 'insufficient_privilege', HINT = 'A cancelled session stays cancelled; its record says who and why.';
END $$;
COMMENT ON FUNCTION evcharge.session_cancellation_immutable() IS 'trigger: refuses updates and deletes of session_cancellation';
CREATE TRIGGER session_cancellation_immutable BEFORE UPDATE OR DELETE ON evcharge.session_cancellation
	FOR EACH ROW EXECUTE FUNCTION evcharge.session_cancellation_immutable();
COMMENT ON TRIGGER session_cancellation_immutable ON evcharge.session_cancellation IS 'the audit trail of cancellations cannot be changed or deleted';

CREATE TABLE evcharge.pile_record (
	order_no text,
	gun evcharge.gun_id,
	started_at timestamptz,
	ended_at timestamptz,
	energy_wh bigint,
	wh_by_class bigint[],
	stop_reason text,
	received_at timestamptz NOT NULL DEFAULT now(),
	start_by text CHECK (start_by IN ('card', 'password', 'vin', 'remote')),
	card_no text,
	vin text,
	partner_order_no text
);
CREATE INDEX pile_record_order_idx ON evcharge.pile_record (order_no);
COMMENT ON INDEX evcharge.pile_record_order_idx IS 'the pile records of an order (a duplicate changes nothing)';
COMMENT ON TABLE evcharge.pile_record IS
	'The pile''s own final record of a session (its bill), which may arrive late, twice, or never; the first one of an order counts.  No NOT NULL: a record without order, gun, start or end is quarantined, not a failed batch';
COMMENT ON COLUMN evcharge.pile_record.order_no IS 'the order it closes';
COMMENT ON COLUMN evcharge.pile_record.gun IS 'the gun';
COMMENT ON COLUMN evcharge.pile_record.started_at IS 'start, by the pile''s clock';
COMMENT ON COLUMN evcharge.pile_record.ended_at IS 'end, by the pile''s clock';
COMMENT ON COLUMN evcharge.pile_record.energy_wh IS 'energy by the pile''s meter, Wh: authoritative for the bill when present';
COMMENT ON COLUMN evcharge.pile_record.wh_by_class IS 'energy per class as the pile counted it, when it does';
COMMENT ON COLUMN evcharge.pile_record.stop_reason IS 'why charging stopped, as the pile says';
COMMENT ON COLUMN evcharge.pile_record.received_at IS 'when the platform received it';
COMMENT ON COLUMN evcharge.pile_record.start_by IS 'how the pile says the charge was started: card, password (the station''s fixed password), vin (the car identified itself), remote (the platform started it); NULL when it does not say';
COMMENT ON COLUMN evcharge.pile_record.card_no IS 'the card that started it, as the pile read it (16 digits)';
COMMENT ON COLUMN evcharge.pile_record.vin IS 'the vehicle that started it, as the pile read it';
COMMENT ON COLUMN evcharge.pile_record.partner_order_no IS 'the partner''s own order number for the session, when the record carries one: the session takes it if it has none (finalise_bill, take_partner_order_no)';

CREATE TABLE evcharge.fault_event (
	fault_event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	gun evcharge.gun_id NOT NULL,
	fault_code smallint NOT NULL CHECK (fault_code <> 0),
	started_at timestamptz NOT NULL,
	ended_at timestamptz
);
CREATE UNIQUE INDEX fault_event_open_idx ON evcharge.fault_event (gun) WHERE ended_at IS NULL;
COMMENT ON INDEX evcharge.fault_event_open_idx IS 'at most one open fault per gun';
COMMENT ON TABLE evcharge.fault_event IS
	'A fault a gun reported (fault code not 0; 99 is "other"), from the first heartbeat with it to the first without';
COMMENT ON COLUMN evcharge.fault_event.fault_event_id IS 'row id';
COMMENT ON COLUMN evcharge.fault_event.gun IS 'the gun';
COMMENT ON COLUMN evcharge.fault_event.fault_code IS 'the fault code';
COMMENT ON COLUMN evcharge.fault_event.started_at IS 'first heartbeat with the fault';
COMMENT ON COLUMN evcharge.fault_event.ended_at IS 'first heartbeat without it';

-- Ending a start the pile never began (the driver gave up, the pile
-- never answered), so that the gun is free at once instead of after
-- record_wait.  A person's act on a driver's charge: kept with who, when
-- and why, as repairs are (session_cancellation).
CREATE FUNCTION evcharge.cancel_session(order_no text, reason text) RETURNS evcharge.charge_session
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	tx record;
BEGIN
	IF cancel_session.reason IS NULL OR btrim(cancel_session.reason) = '' THEN
		RAISE EXCEPTION 'a cancellation of order % needs a reason', coalesce(cancel_session.order_no, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Say why, as the support ticket would read it: ''driver left before the pile started''.';
	END IF;
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = cancel_session.order_no FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', cancel_session.order_no
			USING ERRCODE = 'no_data_found', HINT = 'Order numbers are in evcharge.charge_session.';
	END IF;
	IF s.state = 'cancelled' THEN
		RETURN s;			-- cancelled already: nothing to do, nothing recorded twice
	END IF;
	IF s.state <> 'pending' THEN
		RAISE EXCEPTION 'order % cannot be cancelled: it has begun charging', s.order_no
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('Its session is %s; the first charging heartbeat came at %s.', s.state,
			                      coalesce(s.started_at::text, 'an unknown time')),
			      HINT = 'A charge that has begun is stopped at the pile or remotely (evcharge.ocpp_stop_charge), and billed.';
	END IF;
	-- An OCPP pile may have begun without a charging heartbeat yet.
	SELECT t.transaction_id, t.started_at INTO tx FROM evcharge.ocpp_transaction t WHERE t.order_no = s.order_no;
	IF FOUND THEN
		RAISE EXCEPTION 'order % cannot be cancelled: the pile has begun its transaction', s.order_no
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('OCPP transaction %s started at %s.', tx.transaction_id, tx.started_at),
			      HINT = 'A charge that has begun is stopped at the pile or remotely (evcharge.ocpp_stop_charge), and billed.';
	END IF;
	UPDATE evcharge.charge_session cs SET state = 'cancelled', updated_at = now()
	WHERE cs.order_no = s.order_no
	RETURNING * INTO s;
	INSERT INTO evcharge.session_cancellation (order_no, reason) VALUES (s.order_no, cancel_session.reason);
	-- A remote start not yet answered is withdrawn: no bridge sends it now.
	UPDATE evcharge.ocpp_command c SET answered_at = now(), answer = 'Cancelled'
	WHERE c.order_no = s.order_no AND c.action = 'RemoteStartTransaction' AND c.answered_at IS NULL;
	RETURN s;
END $$;
COMMENT ON FUNCTION evcharge.cancel_session(text, text) IS
	'ends a pending start the pile never began: the session is cancelled (its gun free at once), the cancellation recorded in session_cancellation (reason, database user, time), an unanswered RemoteStartTransaction withdrawn (answer Cancelled); a session cancelled already is returned as it is; refused: no reason (22023), an unknown order (P0002), a session that has begun charging or whose OCPP transaction has begun (55000)';

-- Why a session cannot take a partner order number (from its pile record):
-- it has another, it has no partner, the number is not in the partner's
-- form, or another session of the partner has it.  NULL: it can (or has
-- that number already).
CREATE FUNCTION evcharge.partner_order_no_refusal(s evcharge.charge_session, p_partner_order_no text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	other text;
BEGIN
	IF p_partner_order_no IS NULL OR p_partner_order_no IS NOT DISTINCT FROM s.partner_order_no THEN
		RETURN NULL;
	ELSIF s.partner_order_no IS NOT NULL THEN
		RETURN format('the session has partner order number "%s" already', s.partner_order_no);
	ELSIF s.partner_id IS NULL THEN
		RETURN 'the session has no partner';
	END IF;
	other := evcharge.partner_order_no_problem(s.partner_id, p_partner_order_no);
	IF other IS NOT NULL THEN
		RETURN other;
	END IF;
	SELECT cs.order_no INTO other FROM evcharge.charge_session cs
	WHERE cs.partner_id = s.partner_id AND cs.partner_order_no = p_partner_order_no AND cs.order_no <> s.order_no;
	IF FOUND THEN
		RETURN format('partner %s''s order %s has it', s.partner_id, other);
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.partner_order_no_refusal(evcharge.charge_session, text) IS
	'why a session cannot take a partner order number, in words: it has another, it has no partner, the number is not in the partner''s form (partner_order_no_problem), or another session of the partner has it; NULL when it can or already has it';

-- The samples a bill is measured from: the session's heartbeats, one per
-- time (highest reading), with rises larger than the gun's rated power
-- allows taken out (they are not billed).
CREATE FUNCTION evcharge.session_samples(p_order_no text, OUT ts timestamptz[], OUT meter_wh bigint[], OUT jump_wh bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s record;
	r record;
	rated int;
	high bigint;
	high_at timestamptz;
	eff bigint := 0;
BEGIN
	SELECT cs.gun, cs.started_at, coalesce(cs.charging_ended_at, cs.occupied_until, cs.last_ts) AS until INTO s
	FROM evcharge.charge_session cs WHERE cs.order_no = p_order_no;
	SELECT pl.rated_power_w INTO rated FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(s.gun);
	ts := '{}';
	meter_wh := '{}';
	jump_wh := 0;
	FOR r IN
		SELECT h.ts, max(h.meter_wh) AS m FROM evcharge.heartbeat h
		WHERE h.gun OPERATOR(evcharge.=) s.gun AND h.ts >= s.started_at AND h.ts <= s.until AND h.meter_wh >= 0
		GROUP BY h.ts ORDER BY h.ts
	LOOP
		IF high IS NULL THEN
			high := r.m;
			high_at := r.ts;
		ELSIF r.m > high THEN
			-- Measured from the highest reading's time: a 0 after an outage
			-- does not shorten the time the real rise had.
			IF r.m - high > rated::bigint * extract(epoch FROM r.ts - high_at) / 3600 * 1.2 + 10 THEN
				jump_wh := jump_wh + (r.m - high);
			ELSE
				eff := eff + (r.m - high);
			END IF;
			high := r.m;
			high_at := r.ts;
		END IF;
		ts := ts || r.ts;
		meter_wh := meter_wh || eff;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.session_samples(text) IS
	'the session''s heartbeat samples as (ts, energy so far) with meter jumps beyond rated power (x1.2 + 10 Wh, over the time since the highest reading) taken out, and the Wh taken out';

SELECT pg_catalog.pg_extension_config_dump('evcharge.charge_session', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.pile_record', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.session_cancellation', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.fault_event', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.fault_event_fault_event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.order_seq', '');
