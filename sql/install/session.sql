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
	wh_by_class bigint[] NOT NULL DEFAULT '{0,0,0,0}' CHECK (array_length(wh_by_class, 1) = 4),
	jump_wh bigint NOT NULL DEFAULT 0,
	running_total numeric(12, 2),
	bill_error text,
	updated_at timestamptz NOT NULL DEFAULT now(),
	card_no text,
	vin text
) WITH (fillfactor = 50);
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
COMMENT ON COLUMN evcharge.charge_session.wh_by_class IS 'Wh so far per class {sharp, peak, flat, valley}, as measured live';
COMMENT ON COLUMN evcharge.charge_session.jump_wh IS 'Wh of meter jumps larger than the gun''s rated power allows: not billed';
COMMENT ON COLUMN evcharge.charge_session.running_total IS 'what the energy so far costs at the plan''s prices (before group prices, promotions, coupons)';
COMMENT ON COLUMN evcharge.charge_session.bill_error IS 'why the bill could not be made when the pile record came (e.g. EV001, no tariff in force); NULL otherwise';
COMMENT ON COLUMN evcharge.charge_session.updated_at IS 'when the row was last written';
COMMENT ON COLUMN evcharge.charge_session.card_no IS 'for a start at the pile: the card the pile''s record names, registered or not';
COMMENT ON COLUMN evcharge.charge_session.vin IS 'for a start at the pile: the vehicle the pile''s record names, registered or not';

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
	vin text
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

-- Starting a charge from the app or a QR scan.
CREATE FUNCTION evcharge.start_session(gun evcharge.gun_id, member_id bigint, channel text,
	partner_id bigint DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	ptn evcharge.partner;
	owes numeric;
	grp bigint;
	busy text;
	order_no text;
BEGIN
	IF gun IS NULL OR channel IS NULL THEN
		RAISE EXCEPTION 'gun and channel are required' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF channel NOT IN ('app', 'qr', 'card', 'password', 'vin', 'partner') THEN
		RAISE EXCEPTION 'start channel "%" is not known', channel
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Use app, qr, card, password, vin or partner.';
	END IF;
	SELECT pl.station_id, pl.gun_count, s.tz INTO p
	FROM evcharge.pile pl JOIN evcharge.station s USING (station_id)
	WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(start_session.gun);
	IF NOT FOUND OR evcharge.gun_no(start_session.gun) > p.gun_count THEN
		RAISE EXCEPTION 'gun % is not registered', gun
			USING ERRCODE = 'foreign_key_violation', HINT = 'Register its pile in evcharge.pile.';
	END IF;
	-- The member's customer group (department, fleet, VIP class) at the
	-- start: its group price and occupancy exemption apply to this charge.
	-- A member who is a partner's user charges on the partner's account,
	-- under its contract and not at a member's price, however it starts.
	SELECT coalesce(start_session.partner_id, m.partner_id),
	       CASE WHEN coalesce(start_session.partner_id, m.partner_id) IS NULL THEN m.group_id END
	INTO partner_id, grp
	FROM (SELECT 1) one LEFT JOIN evcharge.member m ON m.member_id = start_session.member_id;
	IF partner_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM evcharge.partner pa
			JOIN evcharge.station st ON st.operator_id = pa.operator_id
			WHERE pa.partner_id = start_session.partner_id AND st.station_id = p.station_id) THEN
		RAISE EXCEPTION 'partner % has no contract with the operator of gun %', partner_id, gun
			USING ERRCODE = 'foreign_key_violation', HINT = 'Register the partner in evcharge.partner for this operator.';
	END IF;
	IF partner_id IS NOT NULL THEN
		SELECT * INTO ptn FROM evcharge.partner x WHERE x.partner_id = start_session.partner_id;
		owes := evcharge.partner_owes(ptn.partner_id);
		IF ptn.kind = 'affiliated' AND ptn.credit_limit IS NOT NULL AND owes >= ptn.credit_limit THEN
			RAISE EXCEPTION 'partner % has reached its credit limit', partner_id
				USING ERRCODE = 'EV002',
				      DETAIL = format('It owes %s yuan of a limit of %s.', owes, ptn.credit_limit),
				      HINT = 'The partner pays what it owes first (evcharge.partner_payment), or the operator raises the limit.';
		ELSIF ptn.kind = 'prepaid' AND owes >= 0 THEN
			RAISE EXCEPTION 'partner % has no prepaid money left', partner_id
				USING ERRCODE = 'EV002',
				      DETAIL = format('Its prepaid account holds %s yuan.', -owes),
				      HINT = 'Top up the partner''s prepaid account (evcharge.top_up or evcharge.partner_payment).';
		END IF;
	END IF;
	-- A start by card: the card's daily spending limit (a maintenance card
	-- shared by several cars), EV002 once its day's charges reached it.
	IF channel = 'card' THEN
		PERFORM evcharge.check_card_limit(m.operator_id, m.card_no)
		FROM evcharge.member m WHERE m.member_id = start_session.member_id AND m.card_no IS NOT NULL;
	END IF;
	SELECT cs.order_no INTO busy FROM evcharge.charge_session cs
	WHERE cs.gun OPERATOR(evcharge.=) start_session.gun AND cs.state IN ('pending', 'charging', 'occupied');
	IF FOUND THEN
		RAISE EXCEPTION 'gun % is busy with order %', gun, busy
			USING ERRCODE = 'lock_not_available', HINT = 'A gun charges one session at a time; wait for it to end.';
	END IF;
	-- A pile that speaks OCPP (it has connected to a bridge) is started by
	-- a RemoteStartTransaction, which needs it connected now: the app hears
	-- at once that it is not, instead of a session that never begins.
	DECLARE
		conn record;
	BEGIN
		SELECT c.bridge_id, c.disconnected_at, b.seen_at INTO conn
		FROM evcharge.ocpp_connection c LEFT JOIN evcharge.ocpp_bridge b USING (bridge_id)
		WHERE c.pile_id OPERATOR(evcharge.=) evcharge.pile(start_session.gun);
		IF FOUND AND NOT evcharge.ocpp_pile_connected(evcharge.pile(start_session.gun)) THEN
			RAISE EXCEPTION 'pile % of gun % is not connected', evcharge.pile(start_session.gun), gun
				USING ERRCODE = 'EV003',
				      DETAIL = CASE WHEN conn.disconnected_at IS NOT NULL
				                    THEN format('Its OCPP connection to bridge %s ended at %s.', conn.bridge_id, conn.disconnected_at)
				                    ELSE format('Bridge %s, which holds its connection, was last seen at %s.', conn.bridge_id, conn.seen_at) END,
				      HINT = 'A remote start needs the pile online; try again when it has reconnected, or start at the pile with a card.';
		END IF;
	END;
	order_no := to_char(now() AT TIME ZONE p.tz, 'YYYYMMDDHH24MISS')
	            || lpad((nextval('evcharge.order_seq') % 1000000)::text, 6, '0');
	INSERT INTO evcharge.charge_session (order_no, gun, station_id, member_id, group_id, partner_id, channel)
	VALUES (order_no, gun, p.station_id, member_id, grp, partner_id, channel);
	-- For an OCPP pile the RemoteStartTransaction, its idTag the order
	-- number; the bridge holding the pile sends it within a second.
	INSERT INTO evcharge.ocpp_command (pile_id, connector_id, action, order_no, id_tag)
	SELECT c.pile_id, evcharge.gun_no(start_session.gun), 'RemoteStartTransaction', order_no, order_no
	FROM evcharge.ocpp_connection c WHERE c.pile_id OPERATOR(evcharge.=) evcharge.pile(start_session.gun);
	IF FOUND THEN
		PERFORM pg_notify('evcharge_command', json_build_object('pile_id', evcharge.pile(start_session.gun)::text,
			'action', 'RemoteStartTransaction', 'order_no', order_no)::text);
	END IF;
	RETURN order_no;
END $$;
COMMENT ON FUNCTION evcharge.start_session(evcharge.gun_id, bigint, text, bigint) IS
	'opens a session for an app or QR start and returns its order number (yyyyMMddHHmmss in the station''s zone + 6 digits); the pile''s heartbeats carrying it then feed it; for an OCPP pile (one that has connected to a bridge) it also makes the RemoteStartTransaction (ocpp_command, NOTIFY evcharge_command), and refuses with EV003 when the pile is not connected; a start by card whose day''s charges reached its daily limit is refused with EV002 (check_card_limit)';

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

-- Pile records: a statement-level trigger (C) finalises the bills of the
-- orders a batch of records closes.
CREATE FUNCTION evcharge.pile_record_ingest() RETURNS trigger
	AS 'MODULE_PATHNAME', 'pile_record_ingest' LANGUAGE C;
COMMENT ON FUNCTION evcharge.pile_record_ingest() IS
	'statement-level AFTER INSERT trigger on pile_record: quarantines records of unknown guns and finalises the bills they close';
CREATE TRIGGER pile_record_ingest AFTER INSERT ON evcharge.pile_record
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION evcharge.pile_record_ingest();
COMMENT ON TRIGGER pile_record_ingest ON evcharge.pile_record IS 'once per statement: quarantine, sessions the platform never saw, and the bills the records complete';

SELECT pg_catalog.pg_extension_config_dump('evcharge.charge_session', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.pile_record', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.fault_event', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.fault_event_fault_event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.order_seq', '');
