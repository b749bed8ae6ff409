-- evcharge 0.1.0 -> 0.2.0: ALTER EXTENSION evcharge UPDATE TO '0.2.0'.
-- Every change that 0.2.0 makes to the extension's SQL, in the order of the
-- install files it belongs to.  test/integration/upgrade.sh installs 0.1.0,
-- runs this script and compares the catalogue with a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION evcharge UPDATE TO '0.2.0'" to load this file. \quit

-- == types and engines: time zones, tariff grammar, exact engine arithmetic ==

-- Time zones (issue 11, item 1).  0.1.0 accepted whatever pg_tzset reads,
-- POSIX strings included: 'UTC+8' and '+08:00' passed the checks and were
-- followed as UTC-8.  0.2.0 stores zones in the domain time_zone, whose
-- check raises 22023 with the reason.  A database holding such a zone has
-- billed (or dated its books) in the wrong hours; the update stops and
-- names every row rather than keep billing wrongly or guess what was meant.
COMMENT ON FUNCTION evcharge.is_time_zone(text) IS
	'true for a zone evcharge accepts: a name of pg_timezone_names that says where a place is (Asia/Shanghai); false for POSIX strings (UTC+8, +08:00), abbreviations (CST, CET), Etc/GMT-8 and localtime; the test split_energy makes';

CREATE FUNCTION evcharge.check_time_zone(name text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'evcharge_check_time_zone' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.check_time_zone(text) IS
	'true for a zone is_time_zone accepts, else error 22023 saying why (a POSIX offset''s inverted sign, an abbreviation) with a hint naming Asia/Shanghai; the check of the domain time_zone';

DO $$
DECLARE
	n int;
	rows text;
BEGIN
	SELECT count(*), string_agg(format('%s %s (tz %L)', b.what, b.id, b.tz), ', ' ORDER BY b.what, b.id)
	INTO n, rows
	FROM (SELECT 'station' AS what, s.station_id AS id, s.tz FROM evcharge.station s
	      WHERE NOT evcharge.is_time_zone(s.tz)
	      UNION ALL
	      SELECT 'finance_policy of operator', f.operator_id, f.tz FROM evcharge.finance_policy f
	      WHERE NOT evcharge.is_time_zone(f.tz)
	      UNION ALL
	      SELECT 'statement_source', r.source_id, r.tz FROM evcharge.statement_source r
	      WHERE NOT evcharge.is_time_zone(r.tz)) b;
	IF n > 0 THEN
		RAISE EXCEPTION 'cannot update evcharge to 0.2.0: % row(s) hold a time zone that 0.2.0 refuses', n
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'Rows: ' || rows || '.  PostgreSQL reads a POSIX offset such as "UTC+8" or "+08:00" with the sign inverted (UTC-8), '
			               'and an abbreviation such as "CET" without summer time, so these rows have been billed or dated in the wrong hours.',
			      HINT = 'Set each to a zone name such as Asia/Shanghai (UPDATE evcharge.station SET tz = ''Asia/Shanghai'' WHERE station_id = ...), '
			             'repair the bills of the stations concerned (evcharge.repair_bills), then run ALTER EXTENSION evcharge UPDATE again.';
	END IF;
END $$;

CREATE DOMAIN evcharge.time_zone AS text
	CONSTRAINT time_zone_check CHECK (evcharge.check_time_zone(VALUE));
COMMENT ON DOMAIN evcharge.time_zone IS
	'a time zone evcharge stores: a zone name of pg_timezone_names such as Asia/Shanghai (is_time_zone); anything else is refused with 22023';

ALTER TABLE evcharge.station DROP CONSTRAINT station_tz_check, ALTER COLUMN tz DROP DEFAULT;
ALTER TABLE evcharge.station ALTER COLUMN tz TYPE evcharge.time_zone,
	ALTER COLUMN tz SET DEFAULT 'Asia/Shanghai';
ALTER TABLE evcharge.finance_policy DROP CONSTRAINT finance_policy_tz_check, ALTER COLUMN tz DROP DEFAULT;
ALTER TABLE evcharge.finance_policy ALTER COLUMN tz TYPE evcharge.time_zone,
	ALTER COLUMN tz SET DEFAULT 'Asia/Shanghai';
ALTER TABLE evcharge.statement_source DROP CONSTRAINT statement_source_tz_check, ALTER COLUMN tz DROP DEFAULT;
ALTER TABLE evcharge.statement_source ALTER COLUMN tz TYPE evcharge.time_zone,
	ALTER COLUMN tz SET DEFAULT 'Asia/Shanghai';

-- The tariff grammar (item 4), the engines' exact arithmetic (item 2) and
-- split_energy's zone check are in the library: no SQL changes.



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
	  AND m.card_no = regexp_replace(p_id_tag, '\s', '', 'g')) THEN 'Accepted' ELSE 'Invalid' END;
COMMENT ON FUNCTION evcharge.ocpp_authorize(evcharge.pile_id, text) IS
	'the OCPP idTagInfo status for an idTag at a pile: Accepted for the card of a member of the pile''s operator, Invalid otherwise';

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



-- == reference docs ==



-- == release ==
