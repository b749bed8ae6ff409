-- bridge.sql: what the OCPP bridge (src/bridge/, docs/bridge.md) keeps in the
-- database: the mapping between OCPP's integer transactionId and evcharge's
-- order number, and the few calls it makes besides writing heartbeat and
-- pile_record rows.  Everything here is idempotent, so a charge point that
-- resends a transaction message changes nothing.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TABLE evcharge.ocpp_transaction (
	transaction_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	order_no text NOT NULL UNIQUE CHECK (order_no <> ''),
	pile_id evcharge.pile_id NOT NULL,
	connector_id int CHECK (connector_id BETWEEN 1 AND 999),
	id_tag text NOT NULL,
	meter_start_wh bigint,
	started_at timestamptz NOT NULL,
	remote boolean NOT NULL,
	meter_stop_wh bigint,
	stopped_at timestamptz,
	stop_reason text,
	created_at timestamptz NOT NULL DEFAULT now(),
	pile_transaction_id int,
	ykc_serial text CONSTRAINT ocpp_transaction_ykc_serial_digits CHECK (ykc_serial ~ '^[0-9]{32}$'),
	CONSTRAINT ocpp_transaction_start_key UNIQUE (pile_id, connector_id, started_at),
	CONSTRAINT ocpp_transaction_started CHECK (pile_transaction_id IS NOT NULL OR (connector_id IS NOT NULL AND meter_start_wh IS NOT NULL))
);
CREATE UNIQUE INDEX ocpp_transaction_ykc_serial_idx ON evcharge.ocpp_transaction (ykc_serial);
COMMENT ON INDEX evcharge.ocpp_transaction_ykc_serial_idx IS 'one transaction per YKC serial: a resent record or real-time data finds its order';
COMMENT ON CONSTRAINT ocpp_transaction_ykc_serial_digits ON evcharge.ocpp_transaction IS 'a YKC transaction serial is 32 decimal digits';
CREATE UNIQUE INDEX ocpp_transaction_unknown_stop_idx ON evcharge.ocpp_transaction (pile_id, stopped_at)
	WHERE pile_transaction_id IS NOT NULL;
COMMENT ON INDEX evcharge.ocpp_transaction_unknown_stop_idx IS
	'one transaction per pile and stop time for a StopTransaction whose transactionId the bridge never issued: its resend finds the first';
COMMENT ON CONSTRAINT ocpp_transaction_started ON evcharge.ocpp_transaction IS
	'a transaction begun by StartTransaction has its connector and meterStart; only one known from its StopTransaction alone may lack them';
COMMENT ON TABLE evcharge.ocpp_transaction IS
	'OCPP 1.6 transactions as the bridge answered them: the integer transactionId a charge point was given and the order number it stands for, both ways; a resent StartTransaction (same pile, connector and timestamp) gets the same id';
COMMENT ON CONSTRAINT ocpp_transaction_start_key ON evcharge.ocpp_transaction IS
	'one transaction per pile, connector and start time: a resent StartTransaction finds its first answer';
COMMENT ON COLUMN evcharge.ocpp_transaction.transaction_id IS 'the transactionId given to the charge point (OCPP integer)';
COMMENT ON COLUMN evcharge.ocpp_transaction.order_no IS 'the session''s order number: start_session()''s for a remote start, a new one for a start at the pile';
COMMENT ON COLUMN evcharge.ocpp_transaction.pile_id IS 'the charge point (registered when the transaction began; no foreign key, like charge_session.gun, so that the registry''s maintenance never touches this log)';
COMMENT ON COLUMN evcharge.ocpp_transaction.connector_id IS 'the connector, which is the gun of that number (NULL only for a StopTransaction of a transaction never issued whose connector the pile cannot be told from)';
COMMENT ON COLUMN evcharge.ocpp_transaction.id_tag IS 'the idTag the charge point started with (a card number, or the one a remote start sent)';
COMMENT ON COLUMN evcharge.ocpp_transaction.meter_start_wh IS 'meterStart, Wh (for a transaction known from its StopTransaction alone: the first reading of its transactionData, NULL without one)';
COMMENT ON COLUMN evcharge.ocpp_transaction.started_at IS 'the StartTransaction timestamp, by the pile''s clock (for a transaction known from its StopTransaction alone: the first sample of its transactionData, else the stop''s time)';
COMMENT ON COLUMN evcharge.ocpp_transaction.remote IS 'true when it took over a session opened by start_session() (a remote start)';
COMMENT ON COLUMN evcharge.ocpp_transaction.meter_stop_wh IS 'meterStop of the first StopTransaction, Wh';
COMMENT ON COLUMN evcharge.ocpp_transaction.stopped_at IS 'the first StopTransaction timestamp';
COMMENT ON COLUMN evcharge.ocpp_transaction.stop_reason IS 'the StopTransaction reason (Local when the pile gave none)';
COMMENT ON COLUMN evcharge.ocpp_transaction.created_at IS 'when the bridge first stored it';
COMMENT ON COLUMN evcharge.ocpp_transaction.ykc_serial IS 'for a transaction of a YKC pile: its 32-digit transaction serial (the pile''s, or the one a remote start sent); NULL for OCPP';
COMMENT ON COLUMN evcharge.ocpp_transaction.pile_transaction_id IS 'for a transaction known from its StopTransaction alone (the pile never got its StartTransaction answered: -1 after an offline start): the transactionId the pile sent; NULL for a transaction begun by StartTransaction, whose id is transaction_id';

-- Whether an idTag may charge at a pile: a member card of the pile's
-- operator, unless the card has spent its daily limit (a maintenance card
-- shared by several cars: member.card_daily_limit).  OCPP's statuses:
-- Accepted, Blocked or Invalid.
CREATE FUNCTION evcharge.ocpp_authorize(p_pile evcharge.pile_id, p_id_tag text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN EXISTS (
	-- The idTag of a RemoteStartTransaction: the order number of a session
	-- start_session() opened on this pile (a pile may Authorize it first).
	SELECT 1 FROM evcharge.charge_session cs
	WHERE cs.order_no = p_id_tag AND cs.state = 'pending'
	  AND evcharge.pile(cs.gun) OPERATOR(evcharge.=) p_pile) THEN 'Accepted'
	ELSE coalesce((
	-- Only a card with a limit costs the look at its day.
	SELECT CASE WHEN m.card_daily_limit IS NULL THEN 'Accepted'
	            WHEN (evcharge.card_day_spending(st.operator_id, m.card_no)).spent >= m.card_daily_limit THEN 'Blocked'
	            ELSE 'Accepted' END
	FROM evcharge.pile pl
	JOIN evcharge.station st USING (station_id)
	JOIN evcharge.member m ON m.operator_id = st.operator_id
	WHERE pl.pile_id OPERATOR(evcharge.=) p_pile
	  AND m.card_no = regexp_replace(p_id_tag, '\s', '', 'g')), 'Invalid') END;
COMMENT ON FUNCTION evcharge.ocpp_authorize(evcharge.pile_id, text) IS
	'the OCPP idTagInfo status for an idTag at a pile: Accepted for the card of a member of the pile''s operator or the order number of a pending session on the pile (a remote start''s idTag), Blocked for a card whose charges of the day reached its daily limit (card_day_spending), Invalid otherwise';

-- StartTransaction: the transactionId and order number, made once.
CREATE FUNCTION evcharge.ocpp_start_transaction(p_pile evcharge.pile_id, p_connector int, p_id_tag text,
	p_meter_start bigint, p_ts timestamptz, OUT transaction_id int, OUT order_no text, OUT remote boolean,
	OUT status text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	g evcharge.gun_id;
	pending text;
BEGIN
	SELECT t.transaction_id, t.order_no, t.remote INTO transaction_id, order_no, remote
	FROM evcharge.ocpp_transaction t
	WHERE t.pile_id OPERATOR(evcharge.=) p_pile AND t.connector_id = p_connector AND t.started_at = p_ts;
	IF NOT FOUND THEN
		SELECT pl.gun_count, st.tz INTO p
		FROM evcharge.pile pl JOIN evcharge.station st USING (station_id)
		WHERE pl.pile_id OPERATOR(evcharge.=) p_pile;
		IF NOT FOUND OR p_connector NOT BETWEEN 1 AND p.gun_count THEN
			-- Not a gun of a registered pile: nothing stored, the pile is told Invalid.
			status := 'Invalid';
			RETURN;
		END IF;
		g := evcharge.gun_id(p_pile, p_connector);
		-- A session start_session() opened for this gun and no transaction
		-- has taken yet: this is the remote start it asked for.
		SELECT cs.order_no INTO pending FROM evcharge.charge_session cs
		WHERE cs.gun OPERATOR(evcharge.=) g AND cs.state = 'pending'
		  AND NOT EXISTS (SELECT 1 FROM evcharge.ocpp_transaction t WHERE t.order_no = cs.order_no);
		remote := pending IS NOT NULL;
		order_no := coalesce(pending, to_char(p_ts AT TIME ZONE p.tz, 'YYYYMMDDHH24MISS')
		            || lpad((nextval('evcharge.order_seq') % 1000000)::text, 6, '0'));
		INSERT INTO evcharge.ocpp_transaction AS t (order_no, pile_id, connector_id, id_tag, meter_start_wh, started_at, remote)
		VALUES (order_no, p_pile, p_connector, p_id_tag, p_meter_start, p_ts, remote)
		ON CONFLICT ON CONSTRAINT ocpp_transaction_start_key DO NOTHING
		RETURNING t.transaction_id INTO transaction_id;
		IF transaction_id IS NULL THEN
			-- Another bridge stored the same start first.
			SELECT t.transaction_id, t.order_no, t.remote INTO transaction_id, order_no, remote
			FROM evcharge.ocpp_transaction t
			WHERE t.pile_id OPERATOR(evcharge.=) p_pile AND t.connector_id = p_connector AND t.started_at = p_ts;
		END IF;
	END IF;
	status := CASE WHEN remote THEN 'Accepted' ELSE evcharge.ocpp_authorize(p_pile, p_id_tag) END;
	-- A card at its daily limit is Blocked, but a resent StartTransaction
	-- (a pile that rebooted mid-charge) is not held against the charge it
	-- starts: the limit is reached only counting this charge itself.
	IF status = 'Blocked' AND EXISTS (
		SELECT 1 FROM evcharge.pile pl
		JOIN evcharge.station st USING (station_id)
		JOIN evcharge.member m ON m.operator_id = st.operator_id
		WHERE pl.pile_id OPERATOR(evcharge.=) p_pile AND m.card_no = regexp_replace(p_id_tag, '\s', '', 'g')
		  AND (evcharge.card_day_spending(st.operator_id, m.card_no, now(), order_no)).spent < m.card_daily_limit) THEN
		status := 'Accepted';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.ocpp_start_transaction(evcharge.pile_id, int, text, bigint, timestamptz) IS
	'maps an OCPP StartTransaction to a transactionId and an order number, once: a pending start_session() on the gun is taken over (a remote start), otherwise a new order number is made; a resend returns the first answer; status is the idTagInfo status (NULL ids and Invalid for a gun that is not registered; Blocked for a card at its daily spending limit, not counting the charge being started, so a resend is not Blocked by its own charge)';

-- StopTransaction: the transaction it closes, its first stop kept.
CREATE FUNCTION evcharge.ocpp_stop_transaction(p_pile evcharge.pile_id, p_transaction_id int, p_meter_stop bigint,
	p_ts timestamptz, p_reason text, OUT order_no text, OUT connector_id int, OUT started_at timestamptz,
	OUT meter_start_wh bigint, OUT id_tag text, OUT remote boolean)
LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	UPDATE evcharge.ocpp_transaction t
	SET meter_stop_wh = coalesce(t.meter_stop_wh, p_meter_stop),
	    stopped_at = coalesce(t.stopped_at, p_ts),
	    stop_reason = coalesce(t.stop_reason, p_reason, 'Local')
	WHERE t.transaction_id = p_transaction_id AND t.pile_id OPERATOR(evcharge.=) p_pile
	  AND t.pile_transaction_id IS NULL
	RETURNING t.order_no, t.connector_id, t.started_at, t.meter_start_wh, t.id_tag, t.remote;
END;
COMMENT ON FUNCTION evcharge.ocpp_stop_transaction(evcharge.pile_id, int, bigint, timestamptz, text) IS
	'records an OCPP StopTransaction on its transaction (the first stop counts) and returns what its pile record needs; no row for a transactionId this pile was never given';

-- StopTransaction for a transactionId the bridge never issued: -1 (or any
-- other id) from a pile whose StartTransaction was never answered, often
-- after an offline start.  Stored so that the pipeline bills it or holds it.
CREATE FUNCTION evcharge.ocpp_stop_unknown_transaction(p_pile evcharge.pile_id, p_transaction_id int,
	p_meter_stop bigint, p_ts timestamptz, p_reason text, p_id_tag text, p_first_at timestamptz, p_first_wh bigint,
	p_connector int, OUT order_no text, OUT connector_id int, OUT started_at timestamptz, OUT energy_wh bigint, OUT id_tag text,
	OUT remote boolean, OUT outcome text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t evcharge.ocpp_transaction;
	p record;
	ids int[];
	tag text := nullif(p_id_tag, '');
BEGIN
	-- A resend: this pile's stop of this time and meter is stored already.
	SELECT * INTO t FROM evcharge.ocpp_transaction x
	WHERE x.pile_id OPERATOR(evcharge.=) p_pile AND x.stopped_at = p_ts AND x.meter_stop_wh = p_meter_stop
	ORDER BY x.transaction_id LIMIT 1;
	IF FOUND THEN
		outcome := 'resent';
	ELSE
		-- A StartTransaction stored whose answer the pile lost: the open
		-- transaction of this pile that fits the stop (begun within a day
		-- before it, at a meter not above meterStop), if one alone does,
		-- else the one of those with the stop's idTag or first sample.
		SELECT array_agg(x.transaction_id ORDER BY x.transaction_id) INTO ids
		FROM evcharge.ocpp_transaction x
		WHERE x.pile_id OPERATOR(evcharge.=) p_pile AND x.stopped_at IS NULL AND x.pile_transaction_id IS NULL
		  AND x.started_at <= p_ts AND x.started_at > p_ts - interval '1 day' AND x.meter_start_wh <= p_meter_stop;
		IF cardinality(ids) > 1 THEN
			SELECT array_agg(x.transaction_id ORDER BY x.transaction_id) INTO ids
			FROM evcharge.ocpp_transaction x
			WHERE x.transaction_id = ANY (ids)
			  AND (x.id_tag = tag OR x.started_at = p_first_at OR x.meter_start_wh = p_first_wh);
		END IF;
		IF cardinality(ids) = 1 THEN
			UPDATE evcharge.ocpp_transaction x
			SET meter_stop_wh = p_meter_stop, stopped_at = p_ts, stop_reason = coalesce(p_reason, 'Local')
			WHERE x.transaction_id = ids[1] AND x.stopped_at IS NULL
			RETURNING x.* INTO t;
			outcome := 'matched';
		END IF;
		IF t.transaction_id IS NULL THEN
			-- A transaction the platform never saw begin: a new order number,
			-- its start the first sample of transactionData (else the stop).
			SELECT pl.gun_count, st.tz INTO p
			FROM evcharge.pile pl JOIN evcharge.station st USING (station_id)
			WHERE pl.pile_id OPERATOR(evcharge.=) p_pile;
			IF NOT FOUND THEN
				outcome := 'not registered';
				RETURN;
			END IF;
			-- The connector, which StopTransaction does not carry: the pile's
			-- only gun, else its one gun in a session (charging, suspended or
			-- occupied) that no open transaction holds, as the bridge saw it
			-- (p_connector) or else as gun_state has it; NULL when it cannot
			-- be told.
			IF p.gun_count = 1 THEN
				connector_id := 1;
			ELSIF p_connector BETWEEN 1 AND p.gun_count
			  AND NOT EXISTS (SELECT 1 FROM evcharge.ocpp_transaction x
			                  WHERE x.pile_id OPERATOR(evcharge.=) p_pile AND x.stopped_at IS NULL
			                    AND x.connector_id = p_connector) THEN
				connector_id := p_connector;
			ELSE
				SELECT CASE WHEN count(*) = 1 THEN min(evcharge.gun_no(gs.gun)) END INTO connector_id
				FROM evcharge.gun_state gs
				WHERE gs.gun OPERATOR(evcharge.=) ANY (ARRAY(SELECT evcharge.gun_id(p_pile, g) FROM generate_series(1, p.gun_count) g))
				  AND gs.status IN ('charging', 'suspended', 'occupied')
				  AND NOT EXISTS (SELECT 1 FROM evcharge.ocpp_transaction x
				                  WHERE x.pile_id OPERATOR(evcharge.=) p_pile AND x.stopped_at IS NULL
				                    AND x.connector_id = evcharge.gun_no(gs.gun));
			END IF;
			started_at := least(coalesce(p_first_at, p_ts), p_ts);
			order_no := to_char(started_at AT TIME ZONE p.tz, 'YYYYMMDDHH24MISS')
			            || lpad((nextval('evcharge.order_seq') % 1000000)::text, 6, '0');
			INSERT INTO evcharge.ocpp_transaction AS x (order_no, pile_id, connector_id, id_tag, meter_start_wh,
				started_at, remote, meter_stop_wh, stopped_at, stop_reason, pile_transaction_id)
			VALUES (order_no, p_pile, connector_id, coalesce(tag, ''),
				CASE WHEN p_first_wh <= p_meter_stop THEN p_first_wh END, started_at, false, p_meter_stop, p_ts,
				coalesce(p_reason, 'Local'), p_transaction_id)
			ON CONFLICT (pile_id, stopped_at) WHERE pile_transaction_id IS NOT NULL DO NOTHING
			RETURNING x.* INTO t;
			IF t.transaction_id IS NULL THEN
				-- Another bridge stored the same stop first.
				SELECT * INTO t FROM evcharge.ocpp_transaction x
				WHERE x.pile_id OPERATOR(evcharge.=) p_pile AND x.stopped_at = p_ts AND x.pile_transaction_id IS NOT NULL;
				outcome := 'resent';
			ELSE
				outcome := 'unknown';
			END IF;
		END IF;
	END IF;
	order_no := t.order_no;
	connector_id := t.connector_id;
	started_at := t.started_at;
	energy_wh := t.meter_stop_wh - t.meter_start_wh;
	id_tag := t.id_tag;
	remote := t.remote;
END $$;
COMMENT ON FUNCTION evcharge.ocpp_stop_unknown_transaction(evcharge.pile_id, int, bigint, timestamptz, text, text, timestamptz, bigint, int) IS
	'records an OCPP StopTransaction whose transactionId this pile was never given (-1 after an offline start): a resend finds its first answer (outcome resent); the one open transaction of the pile that fits it is closed (matched: a StartTransaction whose answer was lost); otherwise a transaction known from its stop alone is stored with a new order number (unknown), its start and meter the first sample of transactionData, its connector the pile''s only gun, the one the bridge saw in a session, or its one gun in a session by gun_state (NULL when it cannot be told); returns what its pile record needs';

SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_transaction', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_transaction_transaction_id_seq', '');

-- Which piles are connected to a bridge now, and to which: written by the
-- bridges (a row per pile that ever connected over OCPP), read by
-- start_session(), which refuses a remote start for a pile that is not.
CREATE TABLE evcharge.ocpp_bridge (
	bridge_id text PRIMARY KEY CHECK (bridge_id <> ''),
	started_at timestamptz NOT NULL DEFAULT now(),
	seen_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.ocpp_bridge IS
	'The bridges (evcharge-bridge) that write to this database, each with its last sign of life: refreshed every 10 s, one row per bridge however many piles it holds; older than 30 s means the bridge is gone and its piles are not connected';
COMMENT ON COLUMN evcharge.ocpp_bridge.bridge_id IS 'the bridge (--bridge-id)';
COMMENT ON COLUMN evcharge.ocpp_bridge.started_at IS 'when its present run started';
COMMENT ON COLUMN evcharge.ocpp_bridge.seen_at IS 'its last refresh (every 10 s)';

CREATE TABLE evcharge.ocpp_connection (
	pile_id evcharge.pile_id PRIMARY KEY,
	bridge_id text NOT NULL CHECK (bridge_id <> ''),
	connected_at timestamptz NOT NULL DEFAULT now(),
	disconnected_at timestamptz
);
COMMENT ON TABLE evcharge.ocpp_connection IS
	'The OCPP connection of each pile that ever connected to a bridge: which bridge holds it (ocpp_bridge says whether that bridge is alive), since when, and when it ended (NULL while connected); a pile with a row is an OCPP pile, and a remote start needs it connected';
COMMENT ON COLUMN evcharge.ocpp_connection.pile_id IS 'the charge point';
COMMENT ON COLUMN evcharge.ocpp_connection.bridge_id IS 'the bridge holding (or that last held) its connection (--bridge-id)';
COMMENT ON COLUMN evcharge.ocpp_connection.connected_at IS 'when its present (or last) connection was opened';
COMMENT ON COLUMN evcharge.ocpp_connection.disconnected_at IS 'when the connection closed, or its bridge stopped; NULL while connected';

-- Commands to charge points, kept until the pile has answered them, so a
-- command made while the pile's bridge is down is sent when it connects.
CREATE TABLE evcharge.ocpp_command (
	command_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	pile_id evcharge.pile_id NOT NULL,
	connector_id int NOT NULL CHECK (connector_id BETWEEN 1 AND 999),
	action text NOT NULL CHECK (action IN ('RemoteStartTransaction', 'RemoteStopTransaction')),
	order_no text NOT NULL,
	id_tag text CHECK (length(id_tag) <= 20),
	created_at timestamptz NOT NULL DEFAULT now(),
	sent_at timestamptz,
	sent_by text,
	answered_at timestamptz,
	answer text
);
CREATE UNIQUE INDEX ocpp_command_open_idx ON evcharge.ocpp_command (order_no, action) WHERE answered_at IS NULL;
COMMENT ON INDEX evcharge.ocpp_command_open_idx IS 'one open command of each action per session; also what the bridges search for work';
COMMENT ON TABLE evcharge.ocpp_command IS
	'Commands to charge points (RemoteStartTransaction from start_session(), RemoteStopTransaction from the balance guard or ocpp_stop_charge()), kept until answered: a bridge sends the open ones of the piles it holds (NOTIFY evcharge_command wakes it), again after a reconnect';
COMMENT ON COLUMN evcharge.ocpp_command.command_id IS 'row id; the OCPP message id of the CALL is cmd-<command_id>';
COMMENT ON COLUMN evcharge.ocpp_command.pile_id IS 'the charge point';
COMMENT ON COLUMN evcharge.ocpp_command.connector_id IS 'the connector (gun number)';
COMMENT ON COLUMN evcharge.ocpp_command.action IS 'RemoteStartTransaction or RemoteStopTransaction';
COMMENT ON COLUMN evcharge.ocpp_command.order_no IS 'the session it starts or stops';
COMMENT ON COLUMN evcharge.ocpp_command.id_tag IS 'RemoteStartTransaction: the idTag sent, which is the order number (the pile''s StartTransaction brings it back)';
COMMENT ON COLUMN evcharge.ocpp_command.created_at IS 'when it was made';
COMMENT ON COLUMN evcharge.ocpp_command.sent_at IS 'when a bridge last sent it (NULL: not yet)';
COMMENT ON COLUMN evcharge.ocpp_command.sent_by IS 'the bridge that last sent it';
COMMENT ON COLUMN evcharge.ocpp_command.answered_at IS 'when the answer was recorded (NULL: open)';
COMMENT ON COLUMN evcharge.ocpp_command.answer IS 'Accepted or Rejected (the pile''s status), CALLERROR <code>, Expired (a start not answered within 60 s), or Cancelled (a start withdrawn by cancel_session())';

-- Whether a pile is connected to a live bridge now.
CREATE FUNCTION evcharge.ocpp_pile_connected(p_pile evcharge.pile_id) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (SELECT 1 FROM evcharge.ocpp_connection c JOIN evcharge.ocpp_bridge b USING (bridge_id)
	WHERE c.pile_id OPERATOR(evcharge.=) p_pile AND c.disconnected_at IS NULL
	  AND b.seen_at > now() - interval '30 seconds');
COMMENT ON FUNCTION evcharge.ocpp_pile_connected(evcharge.pile_id) IS
	'true when the pile has an OCPP connection to a bridge that showed a sign of life (ocpp_bridge.seen_at) within the last 30 s';

-- The open commands a bridge should send now, marked sent.
CREATE FUNCTION evcharge.ocpp_take_commands(p_bridge text, OUT command_id bigint, OUT pile_id text,
	OUT action text, OUT connector_id int, OUT id_tag text, OUT transaction_id int)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- A remote start that no pile answered within 60 s is not sent (again):
	-- the app gave up long ago, and its session is cancelled.
	PERFORM evcharge.ocpp_command_answer(c.command_id, c.pile_id, 'Expired')
	FROM evcharge.ocpp_command c
	WHERE c.answered_at IS NULL AND c.action = 'RemoteStartTransaction'
	  AND c.created_at < now() - interval '60 seconds';
	RETURN QUERY
	UPDATE evcharge.ocpp_command c SET sent_at = now(), sent_by = p_bridge
	FROM evcharge.ocpp_connection k
	WHERE c.answered_at IS NULL AND k.pile_id OPERATOR(evcharge.=) c.pile_id
	  AND k.bridge_id = p_bridge AND k.disconnected_at IS NULL
	  AND (c.sent_at IS NULL OR c.sent_at < k.connected_at)
	  AND (c.action = 'RemoteStartTransaction' OR EXISTS (SELECT 1 FROM evcharge.ocpp_transaction x WHERE x.order_no = c.order_no))
	RETURNING c.command_id, c.pile_id::text, c.action, c.connector_id, c.id_tag,
	          (SELECT x.transaction_id FROM evcharge.ocpp_transaction x WHERE x.order_no = c.order_no);
END $$;
COMMENT ON FUNCTION evcharge.ocpp_take_commands(text) IS
	'called by a bridge: the open commands of the piles it holds that it has not sent on their present connection, marked sent by it (a stop only once the transaction is known); a remote start not answered within 60 s is answered Expired first (its session cancelled)';

-- A pile's answer to a command.
CREATE FUNCTION evcharge.ocpp_command_answer(p_command_id bigint, p_pile evcharge.pile_id, p_answer text) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c evcharge.ocpp_command;
BEGIN
	UPDATE evcharge.ocpp_command x SET answered_at = now(), answer = p_answer
	WHERE x.command_id = p_command_id AND x.pile_id OPERATOR(evcharge.=) p_pile AND x.answered_at IS NULL
	RETURNING x.* INTO c;
	IF NOT FOUND OR c.action <> 'RemoteStartTransaction' OR p_answer = 'Accepted' THEN
		RETURN false;
	END IF;
	-- A start the pile did not accept: the app's session never begins, and
	-- is cancelled as support would cancel it (audited).  One that has begun
	-- after all (its transaction came first) is left to run.
	PERFORM 1 FROM evcharge.charge_session cs WHERE cs.order_no = c.order_no AND cs.state = 'pending' FOR UPDATE;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	BEGIN
		PERFORM evcharge.cancel_session(c.order_no,
			format('the pile did not accept the remote start (command %s answered %s)', c.command_id, p_answer));
	EXCEPTION WHEN object_not_in_prerequisite_state THEN
		RETURN false;
	END;
	RETURN true;
END $$;
COMMENT ON FUNCTION evcharge.ocpp_command_answer(bigint, evcharge.pile_id, text) IS
	'records a pile''s answer to a command sent to it (the first counts; another pile''s answer changes nothing); a RemoteStartTransaction answered anything but Accepted cancels its pending session through cancel_session() (recorded in session_cancellation); true when it did';

-- An operator stops a charge: a RemoteStopTransaction for its pile.
CREATE FUNCTION evcharge.ocpp_stop_charge(p_order_no text) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t evcharge.ocpp_transaction;
	id bigint;
BEGIN
	SELECT * INTO t FROM evcharge.ocpp_transaction x WHERE x.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order % has no OCPP transaction', p_order_no
			USING ERRCODE = 'no_data_found',
			      DETAIL = 'No charge point has started a transaction for it over a bridge (evcharge.ocpp_transaction).',
			      HINT = 'Only a charge that an OCPP pile has started can be stopped remotely.';
	END IF;
	IF t.stopped_at IS NOT NULL THEN
		RAISE EXCEPTION 'order % is already stopped', p_order_no
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('Its StopTransaction came at %s.', t.stopped_at);
	END IF;
	INSERT INTO evcharge.ocpp_command (pile_id, connector_id, action, order_no)
	VALUES (t.pile_id, t.connector_id, 'RemoteStopTransaction', t.order_no)
	ON CONFLICT DO NOTHING
	RETURNING command_id INTO id;
	IF id IS NULL THEN
		SELECT c.command_id INTO id FROM evcharge.ocpp_command c
		WHERE c.order_no = p_order_no AND c.action = 'RemoteStopTransaction' AND c.answered_at IS NULL;
	END IF;
	PERFORM pg_notify('evcharge_command', json_build_object('pile_id', t.pile_id::text,
		'action', 'RemoteStopTransaction', 'order_no', t.order_no)::text);
	RETURN id;
END $$;
COMMENT ON FUNCTION evcharge.ocpp_stop_charge(text) IS
	'an operator''s stop: a RemoteStopTransaction for the session''s transaction, sent by the bridge holding its pile (now, or when it connects); returns the command id (the open one when there is one already)';

SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_bridge', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_connection', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_command', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_command_command_id_seq', '');

-- OCPP security profile 1 (HTTP Basic): a password per pile, kept as a
-- salted PBKDF2-HMAC-SHA256 hash, and whether an operator's piles must have
-- one.  The hash is OpenSSL's in both the database (ocpp_hash_password, C)
-- and the bridge, so evcharge needs no pgcrypto.
CREATE TABLE evcharge.ocpp_credential (
	pile_id evcharge.pile_id PRIMARY KEY,
	salt bytea NOT NULL CHECK (length(salt) >= 16),
	iterations int NOT NULL CHECK (iterations BETWEEN 1000 AND 10000000),
	hash bytea NOT NULL CHECK (length(hash) = 32),
	set_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.ocpp_credential IS
	'The HTTP Basic password of a charge point (OCPP security profile 1), as a salted PBKDF2-HMAC-SHA256 hash: a pile with a row must present its password to connect; set with ocpp_set_password()';
COMMENT ON COLUMN evcharge.ocpp_credential.pile_id IS 'the charge point (no foreign key, like ocpp_transaction: the registry''s maintenance never touches it)';
COMMENT ON COLUMN evcharge.ocpp_credential.salt IS 'random salt, 16 bytes';
COMMENT ON COLUMN evcharge.ocpp_credential.iterations IS 'PBKDF2 iterations (4096 from ocpp_set_password)';
COMMENT ON COLUMN evcharge.ocpp_credential.hash IS 'PBKDF2-HMAC-SHA256(password, salt, iterations), 32 bytes';
COMMENT ON COLUMN evcharge.ocpp_credential.set_at IS 'when the password was set';

CREATE TABLE evcharge.ocpp_policy (
	operator_id bigint PRIMARY KEY REFERENCES evcharge.operator ON DELETE CASCADE,
	require_password boolean NOT NULL DEFAULT false,
	updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.ocpp_policy IS
	'An operator''s OCPP connection settings; an operator without a row has the defaults';
COMMENT ON COLUMN evcharge.ocpp_policy.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.ocpp_policy.require_password IS 'whether its piles must have a password (ocpp_credential) to connect; off by default, when a pile without one is admitted';
COMMENT ON COLUMN evcharge.ocpp_policy.updated_at IS 'when it was last changed';

CREATE FUNCTION evcharge.ocpp_hash_password(p_password text, p_salt bytea, p_iterations int) RETURNS bytea
	AS 'MODULE_PATHNAME', 'evcharge_ocpp_hash_password' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.ocpp_hash_password(text, bytea, int) IS
	'PBKDF2-HMAC-SHA256 of a charge point''s password (OpenSSL, the same call as the bridge''s check), 32 bytes';

CREATE FUNCTION evcharge.ocpp_set_password(p_pile evcharge.pile_id, p_password text) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	salt bytea;
BEGIN
	IF p_pile IS NULL THEN
		RAISE EXCEPTION 'a pile id is required' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) p_pile) THEN
		RAISE EXCEPTION 'pile % is not registered', p_pile
			USING ERRCODE = 'foreign_key_violation', HINT = 'Register it in evcharge.pile first.';
	END IF;
	IF p_password IS NULL THEN
		-- No password any more: the pile connects without one (unless its
		-- operator requires them).
		DELETE FROM evcharge.ocpp_credential c WHERE c.pile_id OPERATOR(evcharge.=) p_pile;
		RETURN;
	END IF;
	IF length(p_password) NOT BETWEEN 16 AND 40 OR p_password !~ '^[\x21-\x7e]+$' THEN
		RAISE EXCEPTION 'the password for pile % is not a valid OCPP password', p_pile
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('It has %s characters.', length(p_password)),
			      HINT = 'An OCPP Basic password has 16 to 40 printable ASCII characters, without spaces.';
	END IF;
	salt := decode(replace(gen_random_uuid()::text, '-', ''), 'hex');
	INSERT INTO evcharge.ocpp_credential AS c (pile_id, salt, iterations, hash)
	VALUES (p_pile, salt, 4096, evcharge.ocpp_hash_password(p_password, salt, 4096))
	ON CONFLICT (pile_id) DO UPDATE SET salt = EXCLUDED.salt, iterations = EXCLUDED.iterations,
		hash = EXCLUDED.hash, set_at = now();
END $$;
COMMENT ON FUNCTION evcharge.ocpp_set_password(evcharge.pile_id, text) IS
	'sets the HTTP Basic password of a charge point (16 to 40 printable ASCII characters), kept as a salted PBKDF2-HMAC-SHA256 hash; NULL removes it';

SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_credential', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_policy', '');

-- The bridges keep what the handshake needs (registered piles, their
-- password hashes, their operators' policy) in memory, read on a thread of
-- their own, so that a slow database never holds up a handshake; a change
-- of any of it tells them to read it again (LISTEN evcharge_registry).
-- Statement-level, so a COPY of many piles is one notification; the
-- bridge's own firmware updates do not fire it.
CREATE FUNCTION evcharge.ocpp_registry_notify() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM pg_notify('evcharge_registry', TG_TABLE_NAME);
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.ocpp_registry_notify() IS
	'statement trigger on pile, station, ocpp_credential and ocpp_policy: NOTIFY evcharge_registry, so that the bridges read again the registry their handshakes check';
CREATE TRIGGER ocpp_registry_notify AFTER INSERT OR DELETE OR TRUNCATE OR UPDATE OF pile_id, station_id
	ON evcharge.pile FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ocpp_registry_notify();
COMMENT ON TRIGGER ocpp_registry_notify ON evcharge.pile IS 'a pile registered, moved or removed: the bridges read their registry again';
CREATE TRIGGER ocpp_registry_notify AFTER DELETE OR TRUNCATE OR UPDATE OF operator_id
	ON evcharge.station FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ocpp_registry_notify();
COMMENT ON TRIGGER ocpp_registry_notify ON evcharge.station IS 'a station given to another operator (whose password policy then applies) or removed: the bridges read their registry again';
CREATE TRIGGER ocpp_registry_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON evcharge.ocpp_credential FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ocpp_registry_notify();
COMMENT ON TRIGGER ocpp_registry_notify ON evcharge.ocpp_credential IS 'a password set or removed: the bridges read their registry again';
CREATE TRIGGER ocpp_registry_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
	ON evcharge.ocpp_policy FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ocpp_registry_notify();
COMMENT ON TRIGGER ocpp_registry_notify ON evcharge.ocpp_policy IS 'an operator''s password policy changed: the bridges read their registry again';

-- ======================================================================
-- The YKC cloud protocol (云快充 1.5/1.6, docs/bridge.md "The YKC
-- protocol"): a pile logs in with a 14-digit pile number, which the
-- registry maps to its 20-digit pile id; its transactions are known by a
-- 32-digit serial, kept on the ocpp_transaction row of its order (so that
-- remote stops and the balance guard treat them like OCPP's); the billing
-- model it is sent is the station's plan in force.
-- ======================================================================

CREATE TABLE evcharge.ykc_pile (
	ykc_no text PRIMARY KEY CONSTRAINT ykc_pile_no_digits CHECK (ykc_no ~ '^[0-9]{14}$'),
	pile_id evcharge.pile_id NOT NULL UNIQUE REFERENCES evcharge.pile ON DELETE CASCADE,
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.ykc_pile IS
	'The YKC pile numbers: the 14 BCD digits a pile speaking the YKC cloud protocol logs in with, mapped one to one to its 20-digit pile id; a login of a number without a row is refused';
COMMENT ON COLUMN evcharge.ykc_pile.ykc_no IS 'the YKC pile number, 14 digits as the pile sends them in BCD';
COMMENT ON COLUMN evcharge.ykc_pile.pile_id IS 'the registered pile it is';
COMMENT ON COLUMN evcharge.ykc_pile.created_at IS 'when the mapping was made';
COMMENT ON CONSTRAINT ykc_pile_no_digits ON evcharge.ykc_pile IS 'a YKC pile number is 14 decimal digits';
SELECT pg_catalog.pg_extension_config_dump('evcharge.ykc_pile', '');

-- A YKC login: the pile it is, or why it is refused.  The firmware the pile
-- reports is written to the registry when it is admitted.
CREATE FUNCTION evcharge.ykc_login(p_ykc_no text, p_current_type text, p_gun_count int, p_firmware text,
	OUT pile_id evcharge.pile_id, OUT refusal text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
BEGIN
	SELECT pl.pile_id, pl.gun_count, pl.current_type, pl.firmware INTO p
	FROM evcharge.ykc_pile y JOIN evcharge.pile pl ON pl.pile_id OPERATOR(evcharge.=) y.pile_id
	WHERE y.ykc_no = p_ykc_no;
	IF NOT FOUND THEN
		refusal := format('pile number %s is not mapped to a registered pile (evcharge.ykc_pile)', p_ykc_no);
		RETURN;
	END IF;
	IF p.gun_count <> p_gun_count THEN
		refusal := format('pile number %s (pile %s) logs in with %s gun(s); the registry has %s', p_ykc_no,
			p.pile_id, p_gun_count, p.gun_count);
		RETURN;
	END IF;
	IF p.current_type IS DISTINCT FROM p_current_type THEN
		refusal := format('pile number %s (pile %s) logs in as %s; the registry has it %s', p_ykc_no,
			p.pile_id, p_current_type, coalesce(p.current_type, 'without a current type'));
		RETURN;
	END IF;
	IF p.firmware IS DISTINCT FROM nullif(p_firmware, '') THEN
		UPDATE evcharge.pile pl SET firmware = nullif(p_firmware, '') WHERE pl.pile_id OPERATOR(evcharge.=) p.pile_id;
	END IF;
	pile_id := p.pile_id;
END $$;
COMMENT ON FUNCTION evcharge.ykc_login(text, text, int, text) IS
	'checks a YKC login (0x01) against the registry: the pile number mapped in ykc_pile, the gun count and current type the registry has; returns the pile (its firmware written) or, with a NULL pile, the reason of the refusal';

-- The order of a YKC transaction serial: the one it has, else made once
-- (a pending start_session() on the gun is taken over, as a remote start).
CREATE FUNCTION evcharge.ykc_transaction(p_pile evcharge.pile_id, p_gun int, p_serial text, p_ts timestamptz)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t record;
	o text;
BEGIN
	SELECT x.order_no INTO o FROM evcharge.ocpp_transaction x WHERE x.ykc_serial = p_serial;
	IF FOUND THEN
		RETURN o;
	END IF;
	-- The session's energy counts from 0 on a YKC pile (its real-time data
	-- carries the energy charged so far), so the start's meter is 0.
	SELECT s.transaction_id, s.order_no INTO t FROM evcharge.ocpp_start_transaction(p_pile, p_gun, p_serial, 0, p_ts) s;
	IF t.transaction_id IS NULL THEN
		RETURN NULL;
	END IF;
	UPDATE evcharge.ocpp_transaction x SET ykc_serial = p_serial
	WHERE x.transaction_id = t.transaction_id AND x.ykc_serial IS NULL;
	RETURN t.order_no;
END $$;
COMMENT ON FUNCTION evcharge.ykc_transaction(evcharge.pile_id, int, text, timestamptz) IS
	'the order number of a YKC transaction serial on a gun: the one it was given, else a new transaction made by ocpp_start_transaction() (a pending start_session() on the gun taken over) and the serial kept on it; NULL for a gun that is not registered';

-- A YKC transaction record (0x3B): its transaction stopped (the first
-- record counts); first is false for a resend.
CREATE FUNCTION evcharge.ykc_record(p_pile evcharge.pile_id, p_gun int, p_serial text, p_started timestamptz,
	p_ended timestamptz, p_energy_wh bigint, p_meter_stop_wh bigint, OUT order_no text, OUT first boolean,
	OUT remote boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	t evcharge.ocpp_transaction;
BEGIN
	order_no := evcharge.ykc_transaction(p_pile, p_gun, p_serial, p_started);
	IF order_no IS NULL THEN
		RETURN;
	END IF;
	SELECT * INTO t FROM evcharge.ocpp_transaction x WHERE x.ykc_serial = p_serial FOR UPDATE;
	first := t.stopped_at IS NULL;
	remote := t.remote;
	IF first THEN
		UPDATE evcharge.ocpp_transaction x
		SET meter_stop_wh = p_energy_wh, stopped_at = p_ended, stop_reason = 'Local'
		WHERE x.transaction_id = t.transaction_id;
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.ykc_record(evcharge.pile_id, int, text, timestamptz, timestamptz, bigint, bigint) IS
	'records a YKC transaction record on the transaction of its serial (made from the record when its real-time data never came), the first record counting: returns its order number, whether this is the first, and whether it was a remote start; NULL order for a gun that is not registered';

-- Why a plan cannot be a YKC billing model (NULL when it can): the model
-- gives each of the day's 48 half-hours one of four classes.
CREATE FUNCTION evcharge.ykc_plan_problem(p_tariff evcharge.tou_tariff) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN (
	SELECT string_agg(format('%s-%s %s', to_char(s.starts, 'HH24:MI'), CASE WHEN s.ends = '24:00' THEN '24:00' ELSE to_char(s.ends, 'HH24:MI') END, s.class),
	                  ', ' ORDER BY s.starts)
	       || ': a YKC billing model gives whole half-hours of sharp, peak, flat or valley only'
	FROM evcharge.tariff_segments(p_tariff) s
	WHERE s.class = 'deep_valley'
	   OR extract(epoch FROM s.starts)::bigint % 1800 <> 0
	   OR extract(epoch FROM s.ends)::bigint % 1800 <> 0
	HAVING count(*) > 0);
COMMENT ON FUNCTION evcharge.ykc_plan_problem(evcharge.tou_tariff) IS
	'NULL when a plan can be sent to YKC piles as their billing model; else the segments that cannot (a boundary off the half-hour, or deep valley, which the model lacks), named';

-- The billing model of a YKC pile now (0x05/0x09 answers, 0x58 pushes).
CREATE FUNCTION evcharge.ykc_billing_model(p_pile evcharge.pile_id, OUT model_id int, OUT valid_until timestamptz,
	OUT energy_price bigint[], OUT service_fee bigint[], OUT classes int[], OUT problem text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	plan record;
BEGIN
	SELECT pl.station_id, pl.current_type INTO p FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) p_pile;
	IF NOT FOUND OR p.current_type IS NULL THEN
		problem := format('pile %s is not registered with a current type', p_pile);
		RETURN;
	END IF;
	SELECT * INTO plan FROM evcharge.plan_in_force(p.station_id, p.current_type, now());
	IF NOT FOUND THEN
		problem := format('no %s plan is in force at station %s now', p.current_type, p.station_id);
		RETURN;
	END IF;
	problem := evcharge.ykc_plan_problem(plan.tariff);
	IF problem IS NOT NULL THEN
		problem := format('the plan in force (%s, station %s, %s) cannot be a YKC billing model: %s', plan.name,
			p.station_id, p.current_type, problem);
		RETURN;
	END IF;
	-- Prices in 0.00001 yuan: exact, since plans carry 4 decimals.
	SELECT array_agg(coalesce((pr.energy_price * 100000)::bigint, 0) ORDER BY c.k),
	       array_agg(coalesce((pr.service_fee * 100000)::bigint, 0) ORDER BY c.k)
	INTO energy_price, service_fee
	FROM unnest(ARRAY['sharp', 'peak', 'flat', 'valley']) WITH ORDINALITY c(name, k)
	LEFT JOIN evcharge.tariff_prices(plan.tariff) pr ON pr.class = c.name;
	SELECT array_agg(array_position(ARRAY['sharp', 'peak', 'flat', 'valley'],
	                                 evcharge.class_at(plan.tariff, time '00:00' + h * interval '30 minutes')) - 1 ORDER BY h)
	INTO classes FROM generate_series(0, 47) h;
	-- The model's number (4 BCD digits): the plan and its content, so a
	-- plan edited in place is a new model too.
	model_id := (hashtext(plan.station_tariff_id::text || ' ' || plan.tariff::text) & 2147483647) % 9999 + 1;
	valid_until := plan.until;
END $$;
COMMENT ON FUNCTION evcharge.ykc_billing_model(evcharge.pile_id) IS
	'the YKC billing model of a pile now: the station''s plan in force for its current type as a model number (1-9999, from the plan and its content), the electricity price and service fee of sharp, peak, flat and valley in 0.00001 yuan, the class (0 sharp .. 3 valley) of each of the 48 half-hours, and until when it holds; a plan the model cannot express gives no model and the problem instead (never a rounded one)';

-- A plan stored for a station with YKC piles must be one their billing
-- model can express: a warning says which segments cannot (the plan is
-- kept: the station's OCPP piles and evcharge's bills use it; its YKC piles
-- are sent no model while it is in force, and the bridge logs it).
CREATE FUNCTION evcharge.ykc_plan_check() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
BEGIN
	FOR r IN
		SELECT n.station_id, n.current_type, n.station_tariff_id, evcharge.ykc_plan_problem(n.tariff) AS problem,
		       count(*) AS piles
		FROM new_plans n
		JOIN evcharge.pile pl ON pl.station_id = n.station_id AND pl.current_type = n.current_type
		JOIN evcharge.ykc_pile y ON y.pile_id OPERATOR(evcharge.=) pl.pile_id
		WHERE evcharge.ykc_plan_problem(n.tariff) IS NOT NULL
		GROUP BY 1, 2, 3, 4
	LOOP
		RAISE WARNING 'plan % of station % (%) cannot be sent to its % YKC pile(s)', r.station_tariff_id, r.station_id,
			r.current_type, r.piles
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = r.problem || '.',
			      HINT = 'Put every boundary on a half-hour and use no deep valley, or the YKC piles get no billing model while this plan is in force (evcharge still bills their sessions by it).';
	END LOOP;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.ykc_plan_check() IS
	'statement trigger on station_tariff: a WARNING for each plan stored for a station with YKC piles of its current type that a YKC billing model cannot express (ykc_plan_problem)';
CREATE TRIGGER ykc_plan_check_insert AFTER INSERT ON evcharge.station_tariff
	REFERENCING NEW TABLE AS new_plans FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ykc_plan_check();
COMMENT ON TRIGGER ykc_plan_check_insert ON evcharge.station_tariff IS 'warns when a plan stored cannot be a billing model of the station''s YKC piles';
CREATE TRIGGER ykc_plan_check_update AFTER UPDATE ON evcharge.station_tariff
	REFERENCING NEW TABLE AS new_plans FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ykc_plan_check();
COMMENT ON TRIGGER ykc_plan_check_update ON evcharge.station_tariff IS 'warns when a plan changed cannot be a billing model of the station''s YKC piles';

-- Anomaly 20: the pile's own energy per class (a YKC record's sharp, peak,
-- flat and valley) against evcharge's split on the bill.  Not blocking:
-- the bill is priced by evcharge's split of the measured curve, and the
-- disagreement is evidence for support (a pile clock or model off).
CREATE FUNCTION evcharge.class_energy_disagrees(p_pile_wh bigint[], p_bill_wh bigint[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (
	SELECT 1 FROM generate_series(1, greatest(cardinality(p_bill_wh), 4)) k
	WHERE abs(coalesce(p_pile_wh[k], 0) - coalesce(p_bill_wh[k], 0))
	      > greatest(100, (SELECT sum(x) FROM unnest(p_bill_wh) x) * 2 / 100))
	AND cardinality(p_pile_wh) > 0 AND cardinality(p_bill_wh) > 0;
COMMENT ON FUNCTION evcharge.class_energy_disagrees(bigint[], bigint[]) IS
	'true when a pile''s energy per class (sharp, peak, flat, valley) and a bill''s differ in some class by more than 100 Wh or 2 % of the bill''s energy, whichever is more (anomaly 20); a class the pile does not count (deep valley) is 0 on its side';

CREATE FUNCTION evcharge.class_energy_check() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pile_wh bigint[];
BEGIN
	SELECT r.wh_by_class INTO pile_wh FROM evcharge.pile_record r
	WHERE r.order_no = NEW.order_no AND r.wh_by_class IS NOT NULL
	ORDER BY r.received_at LIMIT 1;
	IF evcharge.class_energy_disagrees(pile_wh, NEW.wh_by_class) THEN
		NEW.anomalies := NEW.anomalies OPERATOR(evcharge.|) '20'::evcharge.anomaly_set;
	ELSIF NEW.anomalies OPERATOR(evcharge.@>) '20'::evcharge.anomaly_set THEN
		NEW.anomalies := NEW.anomalies OPERATOR(evcharge.-) '20'::evcharge.anomaly_set;
	END IF;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.class_energy_check() IS
	'row trigger on bill: adds anomaly 20 (class_energy_mismatch) when the pile record of the order carries the pile''s energy per class and it disagrees with the bill''s (class_energy_disagrees), and takes it off when a recomputed bill agrees';
CREATE TRIGGER class_energy_check BEFORE INSERT OR UPDATE OF wh_by_class, anomalies ON evcharge.bill
	FOR EACH ROW EXECUTE FUNCTION evcharge.class_energy_check();
COMMENT ON TRIGGER class_energy_check ON evcharge.bill IS 'anomaly 20: the pile''s energy per class against the bill''s';
