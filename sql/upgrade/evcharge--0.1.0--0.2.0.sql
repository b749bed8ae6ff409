-- evcharge 0.1.0 -> 0.2.0: ALTER EXTENSION evcharge UPDATE TO '0.2.0'.
-- Every change that 0.2.0 makes to the extension's SQL, in the order of the
-- install files it belongs to.  test/integration/upgrade.sh installs 0.1.0,
-- runs this script and compares the catalogue with a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION evcharge UPDATE TO '0.2.0'" to load this file. \quit

-- == types and engines: time zones, tariff grammar, exact engine arithmetic ==



-- == money: references, plausibility limits, one operator per transaction ==



-- == settlement without deadlocks ==



-- == statements over HTTPS only, signed with source and day ==



-- == backup and restore, the drop guard ==



-- == jobs: watermarks, schedules kept, time arguments checked ==



-- == the OCPP bridge: registry, transaction ids, commands ==
-- New in 0.2.0: sql/install/bridge.sql, as it is there.

CREATE TABLE evcharge.ocpp_transaction (
	transaction_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	order_no text NOT NULL UNIQUE CHECK (order_no <> ''),
	pile_id evcharge.pile_id NOT NULL,
	connector_id int NOT NULL CHECK (connector_id BETWEEN 1 AND 999),
	id_tag text NOT NULL,
	meter_start_wh bigint NOT NULL,
	started_at timestamptz NOT NULL,
	remote boolean NOT NULL,
	meter_stop_wh bigint,
	stopped_at timestamptz,
	stop_reason text,
	created_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT ocpp_transaction_start_key UNIQUE (pile_id, connector_id, started_at)
);
COMMENT ON TABLE evcharge.ocpp_transaction IS
	'OCPP 1.6 transactions as the bridge answered them: the integer transactionId a charge point was given and the order number it stands for, both ways; a resent StartTransaction (same pile, connector and timestamp) gets the same id';
COMMENT ON CONSTRAINT ocpp_transaction_start_key ON evcharge.ocpp_transaction IS
	'one transaction per pile, connector and start time: a resent StartTransaction finds its first answer';
COMMENT ON COLUMN evcharge.ocpp_transaction.transaction_id IS 'the transactionId given to the charge point (OCPP integer)';
COMMENT ON COLUMN evcharge.ocpp_transaction.order_no IS 'the session''s order number: start_session()''s for a remote start, a new one for a start at the pile';
COMMENT ON COLUMN evcharge.ocpp_transaction.pile_id IS 'the charge point (registered when the transaction began; no foreign key, like charge_session.gun, so that the registry''s maintenance never touches this log)';
COMMENT ON COLUMN evcharge.ocpp_transaction.connector_id IS 'the connector, which is the gun of that number';
COMMENT ON COLUMN evcharge.ocpp_transaction.id_tag IS 'the idTag the charge point started with (a card number, or the one a remote start sent)';
COMMENT ON COLUMN evcharge.ocpp_transaction.meter_start_wh IS 'meterStart, Wh';
COMMENT ON COLUMN evcharge.ocpp_transaction.started_at IS 'the StartTransaction timestamp, by the pile''s clock';
COMMENT ON COLUMN evcharge.ocpp_transaction.remote IS 'true when it took over a session opened by start_session() (a remote start)';
COMMENT ON COLUMN evcharge.ocpp_transaction.meter_stop_wh IS 'meterStop of the first StopTransaction, Wh';
COMMENT ON COLUMN evcharge.ocpp_transaction.stopped_at IS 'the first StopTransaction timestamp';
COMMENT ON COLUMN evcharge.ocpp_transaction.stop_reason IS 'the StopTransaction reason (Local when the pile gave none)';
COMMENT ON COLUMN evcharge.ocpp_transaction.created_at IS 'when the bridge first stored it';

-- Whether an idTag may charge at a pile: a member card of the pile's
-- operator.  OCPP's statuses: Accepted or Invalid.
CREATE FUNCTION evcharge.ocpp_authorize(p_pile evcharge.pile_id, p_id_tag text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN EXISTS (
	SELECT 1 FROM evcharge.pile pl
	JOIN evcharge.station st USING (station_id)
	JOIN evcharge.member m ON m.operator_id = st.operator_id
	WHERE pl.pile_id OPERATOR(evcharge.=) p_pile
	  AND m.card_no = regexp_replace(p_id_tag, '\s', '', 'g'))
	OR EXISTS (
	-- The idTag of a RemoteStartTransaction: the order number of a session
	-- start_session() opened on this pile (a pile may Authorize it first).
	SELECT 1 FROM evcharge.charge_session cs
	WHERE cs.order_no = p_id_tag AND cs.state = 'pending'
	  AND evcharge.pile(cs.gun) OPERATOR(evcharge.=) p_pile) THEN 'Accepted' ELSE 'Invalid' END;
COMMENT ON FUNCTION evcharge.ocpp_authorize(evcharge.pile_id, text) IS
	'the OCPP idTagInfo status for an idTag at a pile: Accepted for the card of a member of the pile''s operator or the order number of a pending session on the pile (a remote start''s idTag), Invalid otherwise';

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
END $$;
COMMENT ON FUNCTION evcharge.ocpp_start_transaction(evcharge.pile_id, int, text, bigint, timestamptz) IS
	'maps an OCPP StartTransaction to a transactionId and an order number, once: a pending start_session() on the gun is taken over (a remote start), otherwise a new order number is made; a resend returns the first answer; status is the idTagInfo status (NULL ids and Invalid for a gun that is not registered)';

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
	RETURNING t.order_no, t.connector_id, t.started_at, t.meter_start_wh, t.id_tag, t.remote;
END;
COMMENT ON FUNCTION evcharge.ocpp_stop_transaction(evcharge.pile_id, int, bigint, timestamptz, text) IS
	'records an OCPP StopTransaction on its transaction (the first stop counts) and returns what its pile record needs; no row for a transactionId this pile was never given';

SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_transaction', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_transaction_transaction_id_seq', '');

-- Which piles are connected to a bridge now, and to which: written by the
-- bridges (a row per pile that ever connected over OCPP), read by
-- start_session(), which refuses a remote start for a pile that is not.
CREATE TABLE evcharge.ocpp_connection (
	pile_id evcharge.pile_id PRIMARY KEY,
	bridge_id text NOT NULL CHECK (bridge_id <> ''),
	connected_at timestamptz NOT NULL DEFAULT now(),
	seen_at timestamptz NOT NULL DEFAULT now(),
	disconnected_at timestamptz
);
COMMENT ON TABLE evcharge.ocpp_connection IS
	'The OCPP connection of each pile that ever connected to a bridge: which bridge holds it, since when, the bridge''s last sign of life (every 10 s) and when it ended (NULL while connected); a pile with a row is an OCPP pile, and a remote start needs it connected';
COMMENT ON COLUMN evcharge.ocpp_connection.pile_id IS 'the charge point';
COMMENT ON COLUMN evcharge.ocpp_connection.bridge_id IS 'the bridge holding (or that last held) its connection (--bridge-id)';
COMMENT ON COLUMN evcharge.ocpp_connection.connected_at IS 'when its present (or last) connection was opened';
COMMENT ON COLUMN evcharge.ocpp_connection.seen_at IS 'the bridge''s last refresh of its connections (every 10 s); older than 30 s means the bridge is gone';
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
COMMENT ON COLUMN evcharge.ocpp_command.answer IS 'Accepted or Rejected (the pile''s status), CALLERROR <code>, or Expired (a start not answered within 60 s)';

-- Whether a pile is connected to a live bridge now.
CREATE FUNCTION evcharge.ocpp_pile_connected(p_pile evcharge.pile_id) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN EXISTS (SELECT 1 FROM evcharge.ocpp_connection c
	WHERE c.pile_id OPERATOR(evcharge.=) p_pile AND c.disconnected_at IS NULL
	  AND c.seen_at > now() - interval '30 seconds');
COMMENT ON FUNCTION evcharge.ocpp_pile_connected(evcharge.pile_id) IS
	'true when the pile has an OCPP connection to a bridge that refreshed it within the last 30 s';

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
	-- A start the pile did not accept: the app's session never begins.
	UPDATE evcharge.charge_session cs SET state = 'cancelled', updated_at = now()
	WHERE cs.order_no = c.order_no AND cs.state = 'pending';
	RETURN FOUND;
END $$;
COMMENT ON FUNCTION evcharge.ocpp_command_answer(bigint, evcharge.pile_id, text) IS
	'records a pile''s answer to a command sent to it (the first counts; another pile''s answer changes nothing); a RemoteStartTransaction answered anything but Accepted cancels its pending session; true when it did';

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

SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_command', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_command_command_id_seq', '');

-- OCPP security profile 1 (HTTP Basic): a password per pile, kept as a
-- salted PBKDF2-HMAC-SHA256 hash, and whether an operator's piles must have
-- one.  The hash is OpenSSL's in both the database (ocpp_password_hash, C)
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

CREATE FUNCTION evcharge.ocpp_password_hash(p_password text, p_salt bytea, p_iterations int) RETURNS bytea
	AS 'MODULE_PATHNAME', 'evcharge_ocpp_password_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.ocpp_password_hash(text, bytea, int) IS
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
	VALUES (p_pile, salt, 4096, evcharge.ocpp_password_hash(p_password, salt, 4096))
	ON CONFLICT (pile_id) DO UPDATE SET salt = EXCLUDED.salt, iterations = EXCLUDED.iterations,
		hash = EXCLUDED.hash, set_at = now();
END $$;
COMMENT ON FUNCTION evcharge.ocpp_set_password(evcharge.pile_id, text) IS
	'sets the HTTP Basic password of a charge point (16 to 40 printable ASCII characters), kept as a salted PBKDF2-HMAC-SHA256 hash; NULL removes it';

SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_credential', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ocpp_policy', '');

-- start_session (session.sql): refuses a remote start for an OCPP pile that is not
-- connected (EV003) and makes the RemoteStartTransaction for one that is.
CREATE OR REPLACE FUNCTION evcharge.start_session(gun evcharge.gun_id, member_id bigint, channel text,
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
		SELECT c.bridge_id, c.disconnected_at, c.seen_at INTO conn FROM evcharge.ocpp_connection c
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
	'opens a session for an app or QR start and returns its order number (yyyyMMddHHmmss in the station''s zone + 6 digits); the pile''s heartbeats carrying it then feed it; for an OCPP pile (one that has connected to a bridge) it also makes the RemoteStartTransaction (ocpp_command, NOTIFY evcharge_command), and refuses with EV003 when the pile is not connected';

-- balance_guard (money.sql): a RemoteStopTransaction for a charge an OCPP pile started.
CREATE OR REPLACE FUNCTION evcharge.balance_guard(p_orders text[]) RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n int;
BEGIN
	-- No wallet in the ledger at all (the platform does not hold the money):
	-- nothing to guard, and nothing to spend per batch on finding that out.
	IF NOT EXISTS (SELECT 1 FROM evcharge.account a
	               WHERE a.kind IN ('member_wallet', 'department_wallet', 'partner_prepaid')) THEN
		RETURN 0;
	END IF;
	WITH s AS (
		SELECT cs.order_no, cs.gun, cs.station_id, cs.member_id, cs.partner_id,
		       coalesce(cs.running_total, 0) AS running_total, coalesce(g.power_w, 0) AS power_w,
		       st.operator_id, fp.stop_threshold, fp.guard_interval,
		       (SELECT cg.group_id FROM evcharge.customer_group cg
		        WHERE cg.pays_for_members AND cg.group_id = coalesce(cs.group_id,
		              (SELECT m.group_id FROM evcharge.member m WHERE m.member_id = cs.member_id))) AS dept,
		       cs.last_ts
		FROM unnest(p_orders) o
		JOIN evcharge.charge_session cs ON cs.order_no = o
		JOIN evcharge.gun_state g ON g.gun OPERATOR(evcharge.=) cs.gun
		JOIN evcharge.station st ON st.station_id = cs.station_id
		JOIN evcharge.finance_policy fp ON fp.operator_id = st.operator_id
		WHERE cs.state = 'charging'
		  AND NOT EXISTS (SELECT 1 FROM evcharge.stop_request r WHERE r.order_no = cs.order_no)
	), w AS (
		-- Only sessions paid from a wallet; the price only for them.
		SELECT s.*, a.account_id, a.balance,
		       trunc(s.power_w / 1000.0 * extract(epoch FROM s.guard_interval) / 3600 * coalesce(
		           (SELECT max(p.energy_price + p.service_fee)
		            FROM evcharge.station_tariff t, evcharge.tariff_prices(t.tariff) p
		            WHERE t.station_id = s.station_id AND t.current_type = evcharge.current_type(s.gun)
		              AND t.valid @> s.last_ts), 0), 2) AS projected
		FROM s
		JOIN LATERAL (SELECT a.account_id, a.balance FROM evcharge.account a
		              WHERE a.operator_id = s.operator_id
		                AND ((s.partner_id IS NOT NULL AND a.kind = 'partner_prepaid' AND a.owner_id = s.partner_id)
		                  OR (s.partner_id IS NULL AND s.dept IS NOT NULL AND a.kind = 'department_wallet' AND a.owner_id = s.dept)
		                  OR (s.partner_id IS NULL AND s.dept IS NULL AND a.kind = 'member_wallet' AND a.owner_id = s.member_id))
		              LIMIT 1) a ON true
	), stopped AS (
		INSERT INTO evcharge.stop_request (order_no, gun, account_id, balance, running_total, projected, threshold)
		SELECT w.order_no, w.gun, w.account_id, w.balance, w.running_total, w.projected, w.stop_threshold
		FROM w WHERE w.balance - w.running_total - w.projected < w.stop_threshold
		ON CONFLICT (order_no) DO NOTHING
		RETURNING order_no, gun, account_id, balance, running_total
	), remote_stop AS (
		-- For a charge an OCPP pile started, the RemoteStopTransaction the
		-- bridge holding the pile sends (woken by the NOTIFY below).
		INSERT INTO evcharge.ocpp_command (pile_id, connector_id, action, order_no)
		SELECT t.pile_id, t.connector_id, 'RemoteStopTransaction', t.order_no
		FROM stopped JOIN evcharge.ocpp_transaction t ON t.order_no = stopped.order_no
		WHERE t.stopped_at IS NULL
		ON CONFLICT DO NOTHING
	)
	SELECT count(pg_notify('evcharge_stop', json_build_object('order_no', order_no, 'gun', gun::text,
		'balance', balance, 'running_total', running_total)::text)) INTO n FROM stopped;
	RETURN n;
END $$;
COMMENT ON FUNCTION evcharge.balance_guard(text[]) IS
	'called by the heartbeat trigger for the sessions a batch moved: a charging session whose paying wallet (member, department or prepaid partner) would fall below the operator''s stop_threshold within guard_interval at its present power and the plan''s highest price is recorded in stop_request and NOTIFY evcharge_stop is sent, once per session (for a charge an OCPP pile started, with a RemoteStopTransaction in ocpp_command); returns how many';


-- == reference docs ==



-- == release ==
