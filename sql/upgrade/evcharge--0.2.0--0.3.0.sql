-- evcharge 0.2.0 -> 0.3.0: ALTER EXTENSION evcharge UPDATE TO '0.3.0'.
-- Every change that 0.3.0 makes to the extension's SQL, one section per
-- topic, in the order of the install files it belongs to.  A function
-- changed by several sections is created once, in the last of them.
-- test/integration/upgrade.sh installs 0.1.0 and 0.2.0, updates each and
-- compares the catalogue with a fresh 0.3.0 install.
\echo Use "ALTER EXTENSION evcharge UPDATE TO '0.3.0'" to load this file. \quit

-- == issue 13 item 2: a StopTransaction of a transactionId the bridge never issued ==
-- Stored as a transaction known from its stop alone (or closing the open
-- one whose answer the pile lost), so the pipeline bills or holds it.
ALTER TABLE evcharge.ocpp_transaction
	ALTER COLUMN connector_id DROP NOT NULL,
	ALTER COLUMN meter_start_wh DROP NOT NULL,
	ADD COLUMN pile_transaction_id int,
	ADD CONSTRAINT ocpp_transaction_started CHECK (pile_transaction_id IS NOT NULL OR (connector_id IS NOT NULL AND meter_start_wh IS NOT NULL));
CREATE UNIQUE INDEX ocpp_transaction_unknown_stop_idx ON evcharge.ocpp_transaction (pile_id, stopped_at)
	WHERE pile_transaction_id IS NOT NULL;
COMMENT ON INDEX evcharge.ocpp_transaction_unknown_stop_idx IS
	'one transaction per pile and stop time for a StopTransaction whose transactionId the bridge never issued: its resend finds the first';
COMMENT ON CONSTRAINT ocpp_transaction_started ON evcharge.ocpp_transaction IS
	'a transaction begun by StartTransaction has its connector and meterStart; only one known from its StopTransaction alone may lack them';
COMMENT ON COLUMN evcharge.ocpp_transaction.connector_id IS 'the connector, which is the gun of that number (NULL only for a StopTransaction of a transaction never issued whose connector the pile cannot be told from)';
COMMENT ON COLUMN evcharge.ocpp_transaction.meter_start_wh IS 'meterStart, Wh (for a transaction known from its StopTransaction alone: the first reading of its transactionData, NULL without one)';
COMMENT ON COLUMN evcharge.ocpp_transaction.started_at IS 'the StartTransaction timestamp, by the pile''s clock (for a transaction known from its StopTransaction alone: the first sample of its transactionData, else the stop''s time)';
COMMENT ON COLUMN evcharge.ocpp_transaction.pile_transaction_id IS 'for a transaction known from its StopTransaction alone (the pile never got its StartTransaction answered: -1 after an offline start): the transactionId the pile sent; NULL for a transaction begun by StartTransaction, whose id is transaction_id';

-- StopTransaction: the transaction it closes, its first stop kept.
CREATE OR REPLACE FUNCTION evcharge.ocpp_stop_transaction(p_pile evcharge.pile_id, p_transaction_id int, p_meter_stop bigint,
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


-- == issue 13 item 1: the bridges' registry cache, refreshed on NOTIFY evcharge_registry ==
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
