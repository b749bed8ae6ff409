-- evcharge 0.2.0 -> 0.3.0: ALTER EXTENSION evcharge UPDATE TO '0.3.0'.
-- Every change that 0.3.0 makes to the extension's SQL, one section per
-- topic, in the order of the install files it belongs to.  A function
-- changed by several sections is created once, in the last of them.
-- test/integration/upgrade.sh installs 0.1.0 and 0.2.0, updates each and
-- compares the catalogue with a fresh 0.3.0 install.
\echo Use "ALTER EXTENSION evcharge UPDATE TO '0.3.0'" to load this file. \quit

-- == issue 16 item 2: partners' own order numbers ==
-- A partner numbers our sessions its own way (Didi: 27 digits) and keys its
-- statement by its numbers, so reconciling Didi's statement found every line
-- missing on both sides.  The session keeps the partner's number (from
-- start_session() or the pile record), the bill and the evidence show it,
-- and reconcile_statement() matches a line on either number.  Existing
-- sessions and bills have none (NULL): 0.2.0 never received one.
ALTER TABLE evcharge.partner ADD COLUMN order_no_digits smallint CHECK (order_no_digits BETWEEN 1 AND 64);
COMMENT ON COLUMN evcharge.partner.order_no_digits IS
	'how many decimal digits the partner''s own order numbers have (Didi: 27); NULL: any partner order number form (is_partner_order_no)';

CREATE OR REPLACE FUNCTION evcharge.is_partner_order_no(partner_order_no text) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN partner_order_no ~ '^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$';
COMMENT ON FUNCTION evcharge.is_partner_order_no(text) IS
	'whether a text has the form of a partner''s order number: 1 to 64 letters, digits, "-" and "_", starting with a letter or digit (the CHECK of charge_session.partner_order_no)';

CREATE OR REPLACE FUNCTION evcharge.partner_order_no_problem(p_partner_id bigint, p_partner_order_no text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p evcharge.partner;
	shown text := left(p_partner_order_no, 80);
BEGIN
	IF p_partner_order_no IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT * INTO p FROM evcharge.partner x WHERE x.partner_id = p_partner_id;
	IF NOT FOUND THEN
		RETURN format('order number "%s" is a partner''s, and the session has no partner', shown);
	END IF;
	IF p.order_no_digits IS NOT NULL AND p_partner_order_no !~ ('^[0-9]{' || p.order_no_digits || '}$') THEN
		RETURN format('partner %s (%s) numbers its orders with %s digits; "%s" %s', p.partner_id, p.name,
			p.order_no_digits, shown,
			CASE WHEN p_partner_order_no ~ '^[0-9]+$' THEN format('has %s', length(p_partner_order_no))
			     ELSE 'is not all digits' END);
	END IF;
	IF NOT evcharge.is_partner_order_no(p_partner_order_no) THEN
		RETURN format('"%s" is not a partner order number: 1 to 64 letters, digits, "-" or "_", starting with a letter or digit',
			shown);
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.partner_order_no_problem(bigint, text) IS
	'what is wrong with a partner''s order number for that partner (its order_no_digits, else the form is_partner_order_no checks; no such partner), in a sentence; NULL when nothing is (or the number is NULL)';

ALTER TABLE evcharge.charge_session ADD COLUMN partner_order_no text CONSTRAINT charge_session_partner_order_no_check
	CHECK (partner_order_no IS NULL OR (partner_id IS NOT NULL AND evcharge.is_partner_order_no(partner_order_no)));
CREATE UNIQUE INDEX charge_session_partner_order_idx ON evcharge.charge_session (partner_id, partner_order_no)
	WHERE partner_order_no IS NOT NULL;
COMMENT ON INDEX evcharge.charge_session_partner_order_idx IS 'a partner''s own order number names one session of that partner';
COMMENT ON COLUMN evcharge.charge_session.partner_order_no IS 'the partner''s own order number for this session (Didi''s 27 digits), from start_session() or the pile record; unique per partner; NULL when the partner gave none';
-- Loaders that COPY pile records name their columns (the bridge does):
-- they go on working, the new column is NULL for them.
ALTER TABLE evcharge.pile_record ADD COLUMN partner_order_no text;
COMMENT ON COLUMN evcharge.pile_record.partner_order_no IS 'the partner''s own order number for the session, when the record carries one: the session takes it if it has none (finalise_bill, take_partner_order_no)';
ALTER TABLE evcharge.bill ADD COLUMN partner_order_no text;
COMMENT ON COLUMN evcharge.bill.partner_order_no IS 'the partner''s own order number for the session (charge_session.partner_order_no), when it has one';
COMMENT ON COLUMN evcharge.partner_statement_line.order_no IS 'the order, by our order number or by the partner''s own (charge_session.partner_order_no)';

-- start_session() takes the partner's number as a fifth, optional argument:
-- calls with four arguments or fewer work as before.
DROP FUNCTION evcharge.start_session(evcharge.gun_id, bigint, text, bigint);
CREATE FUNCTION evcharge.start_session(gun evcharge.gun_id, member_id bigint, channel text,
	partner_id bigint DEFAULT NULL, partner_order_no text DEFAULT NULL)
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
	-- The partner's own number for this session, in its form, once.
	IF start_session.partner_order_no IS NOT NULL THEN
		DECLARE
			problem text := evcharge.partner_order_no_problem(partner_id, start_session.partner_order_no);
		BEGIN
			IF problem IS NOT NULL THEN
				RAISE EXCEPTION 'partner order number "%" cannot be taken', left(start_session.partner_order_no, 80)
					USING ERRCODE = 'invalid_parameter_value', DETAIL = upper(left(problem, 1)) || substr(problem, 2) || '.',
					      HINT = 'Pass the number as the partner''s app shows it, with the partner_id of that partner.';
			END IF;
			SELECT cs.order_no INTO busy FROM evcharge.charge_session cs
			WHERE cs.partner_id = start_session.partner_id AND cs.partner_order_no = start_session.partner_order_no;
			IF FOUND THEN
				RAISE EXCEPTION 'partner % order number "%" is already order %', partner_id, start_session.partner_order_no, busy
					USING ERRCODE = 'unique_violation',
					      DETAIL = 'A partner''s order number names one session.',
					      HINT = 'A repeated start from the partner''s app is the session already made: use its order number.';
			END IF;
		END;
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
	INSERT INTO evcharge.charge_session (order_no, gun, station_id, member_id, group_id, partner_id, channel, partner_order_no)
	VALUES (order_no, gun, p.station_id, member_id, grp, partner_id, channel, start_session.partner_order_no);
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
COMMENT ON FUNCTION evcharge.start_session(evcharge.gun_id, bigint, text, bigint, text) IS
	'opens a session for an app or QR start and returns its order number (yyyyMMddHHmmss in the station''s zone + 6 digits); the pile''s heartbeats carrying it then feed it; partner_order_no, the partner''s own number for it (22023 when not in the partner''s form or without a partner, 23505 when the partner already used it); for an OCPP pile (one that has connected to a bridge) it also makes the RemoteStartTransaction (ocpp_command, NOTIFY evcharge_command), and refuses with EV003 when the pile is not connected';

CREATE OR REPLACE FUNCTION evcharge.partner_order_no_refusal(s evcharge.charge_session, p_partner_order_no text) RETURNS text
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

CREATE OR REPLACE FUNCTION evcharge.take_partner_order_no(s evcharge.charge_session, rec evcharge.pile_record)
RETURNS evcharge.charge_session
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF rec.partner_order_no IS NULL OR s.partner_order_no IS NOT NULL
	   OR evcharge.partner_order_no_refusal(s, rec.partner_order_no) IS NOT NULL THEN
		RETURN s;
	END IF;
	-- Another session taking the same number at the same moment wins: this
	-- one keeps none, and its bill is made all the same.
	BEGIN
		UPDATE evcharge.charge_session cs SET partner_order_no = rec.partner_order_no, updated_at = now()
		WHERE cs.order_no = s.order_no
		RETURNING * INTO s;
	EXCEPTION WHEN unique_violation THEN
		NULL;
	END;
	RETURN s;
END $$;
COMMENT ON FUNCTION evcharge.take_partner_order_no(evcharge.charge_session, evcharge.pile_record) IS
	'gives a session without a partner order number the one its pile record carries, when partner_order_no_refusal() finds nothing against it; returns the session as it is then';

CREATE OR REPLACE FUNCTION evcharge.finalise_bill(p_order_no text) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	rec evcharge.pile_record;
	old evcharge.bill;
	nb evcharge.bill;
	why text;
BEGIN
	SELECT * INTO s FROM evcharge.charge_session WHERE order_no = p_order_no FOR UPDATE;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	SELECT * INTO rec FROM evcharge.pile_record WHERE order_no = p_order_no ORDER BY received_at, ctid LIMIT 1;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	SELECT * INTO old FROM evcharge.bill WHERE order_no = p_order_no FOR UPDATE;
	-- A charge started at the pile: its record says by whom.  Not for a
	-- bill already settled: its payer has been charged.
	IF NOT FOUND OR old.state <> 'settled' THEN
		s := evcharge.identify_starter(s, rec);
	END IF;
	s := evcharge.take_partner_order_no(s, rec);
	IF old.order_no IS NOT NULL THEN
		IF NOT old.anomalies OPERATOR(evcharge.&&) '1+2'::evcharge.anomaly_set THEN
			RETURN false;
		END IF;
		-- A bill made from heartbeats gets its record: the pile's figures
		-- are authoritative, codes 1 and 2 go.  But energy a person agreed
		-- by hand (repair method manual) is an agreement with the driver:
		-- it is kept, and the record is only compared with it.
		PERFORM 1 FROM evcharge.coupon c WHERE c.member_id = s.member_id AND c.used_order_no IS NULL FOR UPDATE;
		IF EXISTS (SELECT 1 FROM evcharge.bill_revision r WHERE r.order_no = p_order_no AND r.method = 'manual') THEN
			nb := evcharge.compute_bill(p_order_no, 'manual', old.energy_wh);
			why := 'the pile record arrived after the bill was repaired by hand; the energy agreed by hand is kept';
			IF old.state <> 'held' THEN
				nb.state := old.state;
			END IF;
		ELSE
			nb := evcharge.compute_bill(p_order_no, 'auto');
			why := 'the pile record arrived after the bill was made from heartbeats';
		END IF;
		-- A settled bill stays settled: the difference moves in the ledger,
		-- and the driver is told when the operator says so.
		IF old.state = 'settled' THEN
			nb.state := 'settled';
		END IF;
		nb := evcharge.store_bill(nb, 'pile_record', why);
		IF old.state = 'settled' THEN
			PERFORM evcharge.adjust_settled_bill(p_order_no, old, nb, why);
			PERFORM evcharge.notice_adjustment(s, nb.revision, old.total, nb.total);
		END IF;
		RETURN true;
	END IF;
	-- A record before the unplug (many piles send it when charging stops)
	-- ends charging; the bill waits for the unplug, which the occupancy fee
	-- needs.  A session that never saw a heartbeat ends with its record.
	IF s.state IN ('charging', 'occupied') THEN
		UPDATE evcharge.charge_session SET state = 'occupied',
			charging_ended_at = coalesce(charging_ended_at, rec.ended_at), updated_at = now()
		WHERE order_no = p_order_no;
		RETURN false;
	ELSIF s.state = 'pending' THEN
		UPDATE evcharge.charge_session SET state = 'ended',
			started_at = coalesce(started_at, rec.started_at),
			charging_ended_at = coalesce(charging_ended_at, rec.ended_at),
			occupied_until = coalesce(occupied_until, rec.ended_at), updated_at = now()
		WHERE order_no = p_order_no;
	END IF;
	-- The member's free coupons are locked first: two bills cannot take one.
	PERFORM 1 FROM evcharge.coupon c WHERE c.member_id = s.member_id AND c.used_order_no IS NULL FOR UPDATE;
	PERFORM evcharge.store_bill(evcharge.compute_bill(p_order_no, 'auto'), 'auto', NULL);
	RETURN true;
END $$;
COMMENT ON FUNCTION evcharge.finalise_bill(text) IS
	'makes the bill of a session that has ended and whose pile record is in (held when a blocking anomaly is found), or completes a bill made from heartbeats when its record comes late (energy agreed by hand is kept; a settled bill''s difference is posted to the ledger); returns false when there is nothing to do yet';

CREATE OR REPLACE FUNCTION evcharge.reconcile_statement(p_source_id bigint, p_day date, p_apply boolean DEFAULT true)
RETURNS SETOF evcharge.reconciliation_finding
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	src evcharge.statement_source;
	d_from timestamptz;
	d_to timestamptz;
	r record;
	tol bigint;
	pct numeric;
BEGIN
	SELECT * INTO src FROM evcharge.statement_source s WHERE s.source_id = p_source_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'statement source % does not exist', p_source_id
			USING ERRCODE = 'no_data_found', HINT = 'Sources are in evcharge.statement_source.';
	END IF;
	PERFORM evcharge.check_time(p_day, 'reconcile_statement(p_day)');
	d_from := p_day::timestamp AT TIME ZONE src.tz;
	d_to := (p_day + 1)::timestamp AT TIME ZONE src.tz;
	IF to_regclass('pg_temp.evcharge_finding') IS NULL THEN
		CREATE TEMP TABLE evcharge_finding (kind text, key text, ours jsonb, theirs jsonb, action text) ON COMMIT DROP;
	ELSE
		TRUNCATE evcharge_finding;
	END IF;

	IF src.kind = 'provider' THEN
		-- Paid at the provider, never credited here: credit it now (the
		-- provider confirmed it), unless only reporting.
		FOR r IN
			SELECT l.* FROM evcharge.provider_statement_line l
			WHERE l.source_id = src.source_id AND l.day = p_day
			  AND NOT EXISTS (SELECT 1 FROM evcharge.ledger_txn t WHERE t.kind = 'top_up' AND t.idem_key = l.provider_txn)
			ORDER BY l.provider_txn
		LOOP
			IF p_apply THEN
				PERFORM evcharge.top_up(r.account_id, r.amount, r.provider_txn);
			END IF;
			INSERT INTO evcharge_finding VALUES ('paid_not_credited', r.provider_txn, NULL,
				jsonb_build_object('account_id', r.account_id, 'amount', r.amount, 'paid_at', r.paid_at),
				CASE WHEN p_apply THEN 'credited to the wallet now' ELSE 'credit it: top_up(account_id, amount, provider_txn)' END);
		END LOOP;
		INSERT INTO evcharge_finding
		SELECT 'credited_not_paid', t.idem_key, t.result, NULL, 'ask the provider: credited here, not in its statement'
		FROM evcharge.ledger_txn t
		WHERE t.kind = 'top_up' AND t.operator_id = src.operator_id AND t.created_at >= d_from AND t.created_at < d_to
		  AND NOT EXISTS (SELECT 1 FROM evcharge.provider_statement_line l
		                  WHERE l.source_id = src.source_id AND l.provider_txn = t.idem_key);
		INSERT INTO evcharge_finding
		SELECT 'amount_differs', l.provider_txn, t.result,
		       jsonb_build_object('account_id', l.account_id, 'amount', l.amount), 'ask the provider: the amounts differ'
		FROM evcharge.provider_statement_line l
		JOIN evcharge.ledger_txn t ON t.kind = 'top_up' AND t.idem_key = l.provider_txn
		WHERE l.source_id = src.source_id AND l.day = p_day
		  AND ((t.result->>'amount')::numeric <> l.amount OR (t.result->>'account_id')::bigint <> l.account_id);
	ELSE
		SELECT p.energy_tolerance_wh, p.energy_tolerance_pct INTO tol, pct
		FROM evcharge.anomaly_policy p WHERE p.operator_id = src.operator_id;
		INSERT INTO evcharge_finding
		SELECT 'missing_at_partner', b.order_no,
		       jsonb_build_object('energy_wh', b.energy_wh, 'total', b.total, 'ended_at', b.ended_at)
		       || CASE WHEN cs.partner_order_no IS NOT NULL THEN jsonb_build_object('partner_order_no', cs.partner_order_no)
		               ELSE '{}' END, NULL,
		       'send the partner the order: its app may have lost the session'
		FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
		WHERE cs.partner_id = src.partner_id AND b.ended_at >= d_from AND b.ended_at < d_to
		  AND NOT EXISTS (SELECT 1 FROM evcharge.partner_statement_line l
		                  WHERE l.source_id = src.source_id AND l.order_no IN (b.order_no, cs.partner_order_no));
		-- A line names the bill by our order number or by the partner's own
		-- (Didi keys its statement by its 27 digits): the partner's bill of
		-- that partner order number, else the one of that order number.
		INSERT INTO evcharge_finding
		WITH m AS (
			SELECT l.order_no AS key, l.energy_wh, l.total, b.order_no, b.energy_wh AS our_wh, b.total AS our_total,
			       b.partner_order_no
			FROM evcharge.partner_statement_line l
			LEFT JOIN LATERAL (
				SELECT bb.order_no, bb.energy_wh, bb.total, cs.partner_order_no
				FROM evcharge.charge_session cs JOIN evcharge.bill bb USING (order_no)
				WHERE cs.partner_id = src.partner_id AND (cs.partner_order_no = l.order_no OR cs.order_no = l.order_no)
				ORDER BY cs.partner_order_no = l.order_no DESC NULLS LAST
				LIMIT 1) b ON true
			WHERE l.source_id = src.source_id AND l.day = p_day)
		SELECT 'missing_here', m.key, NULL, jsonb_build_object('energy_wh', m.energy_wh, 'total', m.total),
		       'no such bill here for this partner: check the order number with the partner'
		FROM m WHERE m.order_no IS NULL
		UNION ALL
		SELECT CASE WHEN m.total < 0 THEN 'negative_amount'
		            WHEN abs(m.energy_wh - m.our_wh) > greatest(tol, greatest(m.energy_wh, m.our_wh) * pct / 100)
		                 THEN 'energy_differs'
		            ELSE 'amount_differs' END,
		       m.key, jsonb_build_object('energy_wh', m.our_wh, 'total', m.our_total)
		              || CASE WHEN m.partner_order_no IS NOT NULL
		                      THEN jsonb_build_object('order_no', m.order_no, 'partner_order_no', m.partner_order_no)
		                      ELSE '{}' END,
		       jsonb_build_object('energy_wh', m.energy_wh, 'total', m.total),
		       'compare with session_evidence(order_no) and agree the figure with the partner'
		FROM m
		WHERE m.order_no IS NOT NULL
		  AND (m.total < 0 OR m.total <> m.our_total
		       OR abs(m.energy_wh - m.our_wh) > greatest(tol, greatest(m.energy_wh, m.our_wh) * pct / 100));
	END IF;

	RETURN QUERY
	WITH ins AS (
		INSERT INTO evcharge.reconciliation_finding AS x (source_id, day, kind, key, ours, theirs, action)
		SELECT src.source_id, p_day, f.kind, f.key, f.ours, f.theirs, f.action FROM evcharge_finding f
		ORDER BY f.kind, f.key
		ON CONFLICT ON CONSTRAINT reconciliation_finding_once DO NOTHING
		RETURNING x.*)
	SELECT * FROM ins ORDER BY ins.kind, ins.key;
END $$;
COMMENT ON FUNCTION evcharge.reconcile_statement(bigint, date, boolean) IS
	'compares a source''s stored statement of a day with the ledger (provider: top-ups paid but not credited, which are credited when p_apply, credited but not paid, amounts differing) or with the partner''s bills, a line matching by our order number or the partner''s own (missing at the partner, missing here, energy or amount differing, negative amounts); records and returns the new findings';

CREATE OR REPLACE FUNCTION evcharge.session_chart(p_order_no text) RETURNS text
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
	       evcharge.current_type(cs.gun) AS current_type, cs.partner_order_no
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
		       array_position(ARRAY['sharp', 'peak', 'flat', 'valley'], seg.class) AS pos
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
		'.band-sharp { fill: #f4cccc; } .band-peak { fill: #fce5cd; } .band-flat { fill: #d9ead3; } .band-valley { fill: #cfe2f3; } '
		'.grid { stroke: #cccccc; stroke-width: 1; } .axis { stroke: #444444; stroke-width: 1; } '
		'.frame { fill: none; stroke: #444444; stroke-width: 1; } '
		'.energy { fill: none; stroke: #1f4e79; stroke-width: 2; } '
		'.power { fill: none; stroke: #c55a11; stroke-width: 1.5; stroke-dasharray: 6 3; } '
		'.mark { stroke: #000000; stroke-width: 1; stroke-dasharray: 4 3; } '
		'.jump { fill: #cc0000; } .gap { fill: #888888; fill-opacity: 0.35; } '
		'.box { fill: #fff8e1; stroke: #b58900; stroke-width: 1; }'
		'</style>',
		format('<rect x="0" y="0" width="%s" height="%s" fill="#ffffff"/>', width, height),
		format('<text class="title" x="%s" y="26">%s</text>', px0, evcharge.xml_escape(format('Order %s%s · gun %s · %s',
			s.order_no, ' (partner order ' || s.partner_order_no || ')', s.gun, s.station_name))),
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
	'the evidence of a session as a self-contained SVG 1.1 document: the order (and the partner''s own order number, when it has one) in the title line, energy delivered (Wh) and power (kW) over the station''s local time, tariff classes as background bands with their prices, start, end of charging and unplug, meter jumps and silences while charging marked, the bill''s anomaly codes and names; deterministic';

-- == issue 16 item 7: the bill's own breakdown ==
-- A bill keeps how its fees were made, per class, exact and as charged
-- (bill_breakdown), with its revisions (bill_revision keeps whole rows), so
-- support no longer rebuilds them with price().
ALTER TABLE evcharge.bill ADD COLUMN breakdown jsonb CHECK (jsonb_typeof(breakdown) = 'array');
COMMENT ON COLUMN evcharge.bill.breakdown IS
	'how the energy and service fees were made, per class with energy: [{"class", "wh", "energy_fee_exact", "energy_fee", "service_fee_exact", "service_fee"}] (bill_breakdown); the charged shares add up to energy_fee and service_fee; NULL when nothing was priced (no tariff) or, for a bill made before 0.3.0, when it could not be worked out exactly';

CREATE OR REPLACE FUNCTION evcharge.bill_breakdown(wh bigint[], energy_fee_exact numeric[], service_fee_exact numeric[])
RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
	WITH c AS (
		SELECT u.i, (ARRAY['sharp', 'peak', 'flat', 'valley'])[u.i::int] AS class, u.wh, u.e, u.s,
		       trunc(u.e, 2) AS e_cut, trunc(u.s, 2) AS s_cut
		FROM unnest(bill_breakdown.wh, bill_breakdown.energy_fee_exact, bill_breakdown.service_fee_exact)
		     WITH ORDINALITY AS u(wh, e, s, i)
	), kept AS (
		SELECT round((trunc(sum(c.e), 2) - sum(c.e_cut)) * 100)::int AS e_fens,
		       round((trunc(sum(c.s), 2) - sum(c.s_cut)) * 100)::int AS s_fens
		FROM c
	), ranked AS (
		SELECT c.*, row_number() OVER (ORDER BY c.e - c.e_cut DESC, c.i) AS e_rank,
		       row_number() OVER (ORDER BY c.s - c.s_cut DESC, c.i) AS s_rank
		FROM c
	)
	SELECT coalesce(jsonb_agg(jsonb_build_object(
		'class', coalesce(r.class, 'class ' || r.i),
		'wh', r.wh,
		'energy_fee_exact', trim_scale(r.e),
		'energy_fee', r.e_cut + CASE WHEN r.e_rank <= k.e_fens THEN 0.01 ELSE 0 END,
		'service_fee_exact', trim_scale(r.s),
		'service_fee', r.s_cut + CASE WHEN r.s_rank <= k.s_fens THEN 0.01 ELSE 0 END) ORDER BY r.i)
		FILTER (WHERE r.wh <> 0 OR r.e <> 0 OR r.s <> 0), '[]'::jsonb)
	FROM ranked r CROSS JOIN kept k;
END;
COMMENT ON FUNCTION evcharge.bill_breakdown(bigint[], numeric[], numeric[]) IS
	'a bill''s breakdown from Wh and exact fees per class {sharp, peak, flat, valley}: a jsonb array, one object per class with energy, of class, wh, energy_fee_exact, energy_fee, service_fee_exact, service_fee; the charged shares are the exact fees cut to the fen, plus a fen each to the classes that lost most in their cut, so that they add up to trunc(sum, 2) of each fee';

CREATE OR REPLACE FUNCTION evcharge.compute_bill(p_order_no text, p_method text DEFAULT 'auto', p_energy_wh bigint DEFAULT NULL)
RETURNS evcharge.bill
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	rec evcharge.pile_record;
	has_rec boolean;
	pol evcharge.anomaly_policy;
	rated int;
	firmware text;
	allowed text[];
	smp record;
	nsamples int;
	measured bigint;
	t_start timestamptz;
	t_end timestamptz;
	times_ok boolean := true;
	plausible boolean := true;
	chosen bigint;
	source text;
	ts timestamptz[];
	wh bigint[];
	q evcharge.charge_quote;
	no_tariff boolean := false;
	codes int[] := '{}';
	occ record;
	minutes bigint;
	occupancy numeric := 0;
	applied text[];
	cp record;
	discount numeric := 0;
	tol bigint;
	b evcharge.bill;
	i int;
	blind boolean;
BEGIN
	IF p_method IS NULL OR p_method NOT IN ('auto', 'recompute', 'pile', 'platform', 'manual') THEN
		RAISE EXCEPTION 'bill method "%" is not known', p_method
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A bill is computed by recompute, pile, platform or manual (auto is the pipeline''s own).',
			      HINT = 'Use recompute (heartbeats, pile record and plans in force), pile (the pile''s energy), platform (the heartbeats'' energy) or manual (energy set by hand).';
	END IF;
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', p_order_no
			USING ERRCODE = 'no_data_found', HINT = 'Order numbers are in evcharge.charge_session.';
	END IF;
	SELECT * INTO rec FROM evcharge.pile_record r WHERE r.order_no = p_order_no ORDER BY r.received_at, r.ctid LIMIT 1;
	has_rec := FOUND;
	pol := evcharge.station_policy(s.station_id);
	tol := pol.energy_tolerance_wh;
	SELECT pl.rated_power_w, pl.firmware INTO rated, firmware
	FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(s.gun);
	SELECT pa.allowed_channels INTO allowed FROM evcharge.partner pa WHERE pa.partner_id = s.partner_id;

	-- The pile's clock: a record dated 1999, ending before it starts, ending
	-- after it was received, or far from the platform's start is not believed.
	IF has_rec THEN
		times_ok := NOT (rec.started_at < pol.plausible_from OR rec.ended_at < rec.started_at
			OR rec.ended_at > rec.received_at + pol.clock_skew
			OR (s.started_at IS NOT NULL AND greatest(rec.started_at - s.started_at, s.started_at - rec.started_at) > pol.clock_skew));
	END IF;
	t_start := coalesce(s.started_at, CASE WHEN has_rec AND times_ok THEN rec.started_at END, s.created_at);
	t_end := coalesce(s.charging_ended_at, CASE WHEN has_rec AND times_ok THEN rec.ended_at END, s.last_ts,
		s.occupied_until, t_start);
	-- The gun went offline during the session: what the platform saw ends
	-- at the silence, so the pile's own end (when its clock is believed) is
	-- the end, and the pile's figures are not held against the heartbeats'.
	blind := EXISTS (SELECT 1 FROM evcharge.offline_period o
		WHERE o.gun OPERATOR(evcharge.=) s.gun AND o.started_at <= coalesce(s.occupied_until, t_end)
		  AND coalesce(o.ended_at, 'infinity') >= t_start);
	IF blind AND has_rec AND times_ok AND rec.ended_at > t_end THEN
		t_end := rec.ended_at;
	END IF;

	smp := evcharge.session_samples(p_order_no);
	nsamples := coalesce(array_length(smp.ts, 1), 0);
	measured := CASE WHEN nsamples > 0 THEN smp.meter_wh[nsamples] ELSE 0 END;

	-- The pile's energy is believed only if the gun could deliver it in the
	-- longer of the record's span and the platform's.
	IF has_rec AND rec.energy_wh IS NOT NULL THEN
		plausible := coalesce(rec.energy_wh <= rated::bigint * extract(epoch FROM
			greatest(CASE WHEN times_ok THEN rec.ended_at - rec.started_at END, t_end - t_start)) / 3600 * 1.2 + 10, true);
	END IF;

	CASE p_method
	WHEN 'auto', 'recompute' THEN
		IF has_rec AND rec.energy_wh IS NOT NULL AND plausible THEN
			chosen := rec.energy_wh;
			source := 'pile';
		ELSE
			source := 'heartbeats';
		END IF;
	WHEN 'pile' THEN
		IF NOT has_rec OR rec.energy_wh IS NULL THEN
			RAISE EXCEPTION 'order % has no pile record with energy', p_order_no
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      HINT = 'Use recompute, platform, or manual with the energy.';
		END IF;
		chosen := rec.energy_wh;
		source := 'pile';
	WHEN 'platform' THEN
		source := 'heartbeats';
	ELSE
		IF p_energy_wh IS NULL OR p_energy_wh < 0 THEN
			RAISE EXCEPTION 'energy % Wh cannot be set by hand', coalesce(p_energy_wh::text, 'NULL')
				USING ERRCODE = 'invalid_parameter_value',
				      HINT = 'A manual repair needs the energy in Wh, 0 or more: repair_bill(order_no, reason, ''manual'', 12500).';
		END IF;
		chosen := p_energy_wh;
		source := 'manual';
	END CASE;

	-- The curve to price: measured, scaled to the chosen total in the
	-- measured proportions, or the total evenly over the span.
	IF measured = 0 THEN
		ts := ARRAY[t_start, greatest(t_end, t_start + interval '1 s')];
		wh := ARRAY[0, coalesce(chosen, 0)];
	ELSIF chosen IS NULL THEN
		ts := smp.ts;
		wh := smp.meter_wh;
	ELSE
		ts := smp.ts;
		wh := smp.meter_wh;
		FOR i IN 1 .. nsamples LOOP
			wh[i] := floor(smp.meter_wh[i]::numeric * chosen / measured)::bigint;
		END LOOP;
	END IF;

	BEGIN
		q := evcharge.price_session(s.station_id, evcharge.current_type(s.gun), s.group_id, ts, wh);
		applied := q.applied;
	EXCEPTION WHEN SQLSTATE 'EV001' THEN
		-- Never a default price: the bill keeps its energy, no amount, held.
		no_tariff := true;
		q.kwh := wh[array_length(wh, 1)] / 1000.0;
		q.class_kwh := ARRAY[0, 0, 0, 0];
		q.energy_fee := 0;
		q.service_fee := 0;
		applied := ARRAY['no tariff in force: ' || SQLERRM];
	END;
	IF NOT plausible THEN
		applied := applied || format('the pile''s %s Wh exceed what %s W allow in its span', rec.energy_wh, rated);
	END IF;
	-- A partner order number in the pile's record that the session did not
	-- take (finalise_bill) is said on the bill.
	IF has_rec AND rec.partner_order_no IS DISTINCT FROM s.partner_order_no AND rec.partner_order_no IS NOT NULL THEN
		applied := applied || format('the pile record''s partner order number "%s" is not taken: %s',
			left(rec.partner_order_no, 80), coalesce(evcharge.partner_order_no_refusal(s, rec.partner_order_no),
			                                         'another session took it at the same moment'));
	END IF;

	SELECT o.grace_minutes, o.fee_per_minute, o.cap,
	       EXISTS (SELECT 1 FROM evcharge.occupancy_exemption e WHERE e.station_id = o.station_id AND e.group_id = s.group_id) AS exempt
	INTO occ FROM evcharge.occupancy_fee o WHERE o.station_id = s.station_id;
	IF FOUND AND NOT no_tariff AND s.occupied_until IS NOT NULL AND s.charging_ended_at IS NOT NULL THEN
		minutes := floor(extract(epoch FROM s.occupied_until - s.charging_ended_at) / 60)::bigint - occ.grace_minutes;
		IF minutes > 0 AND NOT occ.exempt THEN
			occupancy := least(trunc(minutes * occ.fee_per_minute, 2), coalesce(occ.cap, 'Infinity'::numeric));
			applied := applied || format('occupancy: %s min', minutes);
		END IF;
	END IF;

	-- The member's best coupon; the one this bill already holds counts as free.
	IF s.member_id IS NOT NULL AND q.service_fee > 0 THEN
		SELECT c.coupon_id, c.amount INTO cp
		FROM evcharge.coupon c JOIN evcharge.station st ON st.operator_id = c.operator_id
		WHERE st.station_id = s.station_id AND c.member_id = s.member_id
		  AND (c.used_order_no IS NULL OR c.used_order_no = p_order_no)
		  AND c.valid @> t_start AND c.min_kwh <= q.kwh
		ORDER BY least(c.amount, q.service_fee) DESC, c.amount ASC, upper(c.valid) ASC NULLS LAST, c.coupon_id
		LIMIT 1;
		IF FOUND THEN
			discount := least(cp.amount, q.service_fee);
			applied := applied || format('coupon: %s', cp.coupon_id);
			b.coupon_id := cp.coupon_id;
		END IF;
	END IF;

	b.order_no := p_order_no;
	b.gun := s.gun;
	b.station_id := s.station_id;
	b.member_id := s.member_id;
	b.channel := s.channel;
	b.started_at := t_start;
	b.ended_at := t_end;
	b.occupied_until := s.occupied_until;
	b.energy_wh := round(q.kwh * 1000)::bigint;
	b.wh_by_class := ARRAY(SELECT round(k * 1000)::bigint FROM unnest(q.class_kwh) k);
	b.energy_fee := q.energy_fee;
	b.service_fee := q.service_fee;
	b.occupancy_fee := occupancy;
	b.discount := discount;
	b.total := q.energy_fee + q.service_fee + occupancy - discount;
	b.applied := ARRAY(SELECT a FROM unnest(applied) a ORDER BY a);
	b.energy_source := source;
	b.partner_order_no := s.partner_order_no;
	-- Per class, exact and as charged; nothing to break down without a price.
	b.breakdown := CASE WHEN NOT no_tariff THEN evcharge.bill_breakdown(b.wh_by_class, q.class_energy_fee, q.class_service_fee) END;

	-- Anomalies (docs/anomalies.md).
	IF NOT has_rec THEN
		codes := codes || CASE WHEN blind THEN 2 ELSE 1 END;
	ELSE
		IF NOT times_ok THEN
			codes := codes || 3;
		END IF;
		-- Blind, the pile may well have charged more than was seen, never
		-- less: only less (or an implausible figure) is a mismatch then.
		IF rec.energy_wh IS NOT NULL AND (NOT plausible OR (measured > 0 AND
			CASE WHEN blind THEN measured - rec.energy_wh ELSE abs(rec.energy_wh - measured) END
			> greatest(tol, greatest(rec.energy_wh, measured) * pol.energy_tolerance_pct / 100))) THEN
			codes := codes || 8;
		END IF;
		IF times_ok AND NOT blind AND s.started_at IS NOT NULL AND s.charging_ended_at IS NOT NULL
		   AND greatest((rec.ended_at - rec.started_at) - (s.charging_ended_at - s.started_at),
		                (s.charging_ended_at - s.started_at) - (rec.ended_at - rec.started_at)) > pol.duration_tolerance THEN
			codes := codes || 9;
		END IF;
		IF times_ok AND NOT blind AND s.charging_ended_at IS NOT NULL AND s.occupied_until IS NOT NULL
		   AND greatest(rec.ended_at - s.charging_ended_at, s.charging_ended_at - rec.ended_at) > pol.occupancy_tolerance THEN
			codes := codes || 10;
		END IF;
	END IF;
	IF t_end < t_start THEN
		codes := codes || 3;
	END IF;
	IF t_end - t_start > pol.max_session OR (t_end <= t_start AND b.energy_wh > 0) THEN
		codes := codes || 5;
	END IF;
	IF smp.jump_wh > tol THEN
		codes := codes || 11;
	END IF;
	IF no_tariff THEN
		codes := codes || 12;
	ELSIF b.energy_wh > 0 AND b.total <= 0 THEN
		codes := codes || 13;
	END IF;
	IF allowed IS NOT NULL AND s.channel <> ALL (allowed) THEN
		codes := codes || 14;
	END IF;
	IF b.energy_wh > tol AND measured = 0 AND nsamples >= 2 THEN
		codes := codes || 15;
	END IF;
	IF firmware LIKE ANY (pol.defective_firmware) THEN
		codes := codes || 16;
	END IF;
	b.anomalies := evcharge.anomaly_set(codes);
	b.state := CASE WHEN p_method = 'auto' AND evcharge.anomaly_blocking(b.anomalies) THEN 'held' ELSE 'final' END;
	b.revision := 0;
	b.finalised_at := now();
	b.updated_at := now();
	RETURN b;
END $$;
COMMENT ON FUNCTION evcharge.compute_bill(text, text, bigint) IS
	'the bill a session would have now and its anomalies, written nowhere: method auto as the pipeline bills (held on a blocking anomaly), recompute, pile, platform or manual (p_energy_wh) as a repair would';

CREATE OR REPLACE FUNCTION evcharge.store_bill(b evcharge.bill, p_method text, p_reason text) RETURNS evcharge.bill
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	old evcharge.bill;
BEGIN
	SELECT * INTO old FROM evcharge.bill WHERE order_no = b.order_no FOR UPDATE;
	IF NOT FOUND THEN
		-- Made by a repair: revision 1, with no bill before.
		b.revision := CASE WHEN p_method = 'auto' THEN 0 ELSE 1 END;
		INSERT INTO evcharge.bill SELECT b.*;
		IF b.revision = 1 THEN
			INSERT INTO evcharge.bill_revision (order_no, revision, method, reason, before, after)
			VALUES (b.order_no, 1, p_method, p_reason, NULL, to_jsonb(b));
		END IF;
	ELSE
		b.finalised_at := old.finalised_at;
		b.revision := old.revision + 1;
		b.updated_at := now();
		UPDATE evcharge.bill SET gun = b.gun, station_id = b.station_id, member_id = b.member_id,
			channel = b.channel, started_at = b.started_at, ended_at = b.ended_at,
			occupied_until = b.occupied_until, energy_wh = b.energy_wh, wh_by_class = b.wh_by_class,
			energy_fee = b.energy_fee, service_fee = b.service_fee, occupancy_fee = b.occupancy_fee,
			discount = b.discount, total = b.total, applied = b.applied, energy_source = b.energy_source,
			anomalies = b.anomalies, coupon_id = b.coupon_id, state = b.state, revision = b.revision,
			updated_at = b.updated_at, partner_order_no = b.partner_order_no, breakdown = b.breakdown
		WHERE order_no = b.order_no;
		INSERT INTO evcharge.bill_revision (order_no, revision, method, reason, before, after)
		VALUES (b.order_no, b.revision, p_method, p_reason, to_jsonb(old), to_jsonb(b));
	END IF;
	UPDATE evcharge.coupon SET used_order_no = NULL, used_at = NULL
	WHERE used_order_no = b.order_no AND coupon_id IS DISTINCT FROM b.coupon_id;
	IF b.coupon_id IS NOT NULL THEN
		UPDATE evcharge.coupon SET used_order_no = b.order_no, used_at = now()
		WHERE coupon_id = b.coupon_id AND (used_order_no IS NULL OR used_order_no = b.order_no);
		IF NOT FOUND THEN
			RAISE EXCEPTION 'coupon % was taken by another bill while order % was billed', b.coupon_id, b.order_no
				USING ERRCODE = 'serialization_failure', HINT = 'Bill it again: finalise_bill() or repair_bill().';
		END IF;
	END IF;
	RETURN b;
END $$;
COMMENT ON FUNCTION evcharge.store_bill(evcharge.bill, text, text) IS
	'writes a bill from compute_bill(): inserts it, or updates it and records the revision (method, reason, before, after); moves the coupon it uses';

-- daily_report's body (BEGIN ATOMIC) reads bill.*, which PostgreSQL expands
-- when the function is created: made again with the bill's new columns,
-- as a fresh install has it.
CREATE OR REPLACE FUNCTION evcharge.daily_report(operator_id bigint, day date, only_sub_operator bigint DEFAULT NULL)
RETURNS TABLE (line text, station_id bigint, station text, sub_operator_id bigint, sub_operator text,
	sessions bigint, held bigint, unsettled bigint, energy_kwh numeric, energy_fee numeric, service_fee numeric,
	occupancy_fee numeric, discount numeric, total numeric, top_ups numeric, credits numeric, refunds numeric,
	refund_fees numeric)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp SET jit = off
BEGIN ATOMIC
	WITH books AS (
		SELECT daily_report.operator_id AS op, lower(d.r) AS t0, upper(d.r) AS t1
		FROM (SELECT evcharge.books_day(daily_report.operator_id,
		             CASE WHEN daily_report.day IS NOT NULL
		                  THEN evcharge.check_time(daily_report.day, 'daily_report(day)') END) AS r) d
	), bills AS (
		-- The day's bills: sessions whose charging ended that day.  Their
		-- sub-operator is where the ledger put their revenue, or for bills
		-- not yet settled where the attribution rules would.
		SELECT b.*, coalesce(r.sub_operator_id, evcharge.attributed_sub_operator(books.op, b.station_id,
		           coalesce(cs.group_id, m.group_id), m.vin, m.card_no)) AS sub
		FROM books
		JOIN evcharge.station st ON st.operator_id = books.op
		JOIN evcharge.bill b ON b.station_id = st.station_id
		JOIN evcharge.charge_session cs ON cs.order_no = b.order_no
		LEFT JOIN evcharge.member m ON m.member_id = cs.member_id
		LEFT JOIN LATERAL (
			SELECT a.sub_operator_id FROM evcharge.ledger_txn t
			JOIN evcharge.ledger_entry e ON e.txn_id = t.txn_id
			JOIN evcharge.account a ON a.account_id = e.account_id
			WHERE t.kind = 'bill' AND t.idem_key = b.order_no AND a.kind LIKE 'revenue\_%'
			LIMIT 1) r ON b.state = 'settled'
		-- The day's bounds as scalar subqueries, not join columns: so the
		-- planner sees a range on bill_station_day_idx per station, not a
		-- join filter over every bill of the operator's history.
		WHERE coalesce(b.ended_at, b.started_at) >= (SELECT books.t0 FROM books)
		  AND coalesce(b.ended_at, b.started_at) < (SELECT books.t1 FROM books)
	), station_lines AS (
		SELECT 'station'::text AS line, b.station_id, b.sub AS sub_operator_id,
		       count(*) AS sessions, count(*) FILTER (WHERE b.state = 'held') AS held,
		       count(*) FILTER (WHERE b.state = 'final') AS unsettled,
		       round(coalesce(sum(b.energy_wh) FILTER (WHERE b.state = 'settled'), 0) / 1000.0, 3) AS energy_kwh,
		       coalesce(sum(b.energy_fee) FILTER (WHERE b.state = 'settled'), 0) AS energy_fee,
		       coalesce(sum(b.service_fee) FILTER (WHERE b.state = 'settled'), 0) AS service_fee,
		       coalesce(sum(b.occupancy_fee) FILTER (WHERE b.state = 'settled'), 0) AS occupancy_fee,
		       coalesce(sum(b.discount) FILTER (WHERE b.state = 'settled'), 0) AS discount,
		       coalesce(sum(b.total) FILTER (WHERE b.state = 'settled'), 0) AS total,
		       0::numeric AS top_ups, 0::numeric AS credits, 0::numeric AS refunds, 0::numeric AS refund_fees
		FROM bills b
		GROUP BY b.station_id, b.sub
	), wallet_moves AS (
		-- The day's money in and out of wallets: what the wallet was credited
		-- by top-ups and manual credits, and the refunds paid out (approved).
		SELECT t.kind, evcharge.wallet_sub_operator(e.account_id) AS sub, -e.amount AS amount, 0::numeric AS fee
		FROM books
		JOIN evcharge.ledger_txn t ON t.operator_id = books.op
		     AND t.created_at >= (SELECT books.t0 FROM books) AND t.created_at < (SELECT books.t1 FROM books)
		JOIN evcharge.ledger_entry e ON e.txn_id = t.txn_id
		JOIN evcharge.account a ON a.account_id = e.account_id
		WHERE t.kind IN ('top_up', 'manual_credit') AND a.kind IN ('member_wallet', 'department_wallet', 'partner_prepaid')
		UNION ALL
		SELECT t.kind, evcharge.wallet_sub_operator(f.account_id), f.amount, f.fee
		FROM books
		JOIN evcharge.ledger_txn t ON t.operator_id = books.op
		     AND t.created_at >= (SELECT books.t0 FROM books) AND t.created_at < (SELECT books.t1 FROM books)
		JOIN evcharge.refund f ON f.refund_id::text = t.idem_key
		WHERE t.kind = 'refund_approve'
	), wallet_lines AS (
		SELECT 'wallets'::text AS line, NULL::bigint AS station_id, w.sub AS sub_operator_id,
		       0::bigint, 0::bigint, 0::bigint, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric,
		       coalesce(sum(w.amount) FILTER (WHERE w.kind = 'top_up'), 0),
		       coalesce(sum(w.amount) FILTER (WHERE w.kind = 'manual_credit'), 0),
		       coalesce(sum(w.amount) FILTER (WHERE w.kind = 'refund_approve'), 0),
		       coalesce(sum(w.fee) FILTER (WHERE w.kind = 'refund_approve'), 0)
		FROM wallet_moves w
		GROUP BY w.sub
	), lines AS (
		SELECT * FROM station_lines UNION ALL SELECT * FROM wallet_lines
	), seen AS (
		SELECT * FROM lines l
		WHERE daily_report.only_sub_operator IS NULL OR l.sub_operator_id = daily_report.only_sub_operator
	)
	SELECT x.* FROM (
	SELECT s.line, s.station_id, st.name, s.sub_operator_id, so.name, s.sessions, s.held, s.unsettled,
	       s.energy_kwh, s.energy_fee, s.service_fee, s.occupancy_fee, s.discount, s.total,
	       s.top_ups, s.credits, s.refunds, s.refund_fees
	FROM seen s
	LEFT JOIN evcharge.station st ON st.station_id = s.station_id
	LEFT JOIN evcharge.sub_operator so ON so.sub_operator_id = s.sub_operator_id
	UNION ALL
	SELECT 'total', NULL, NULL, daily_report.only_sub_operator, NULL,
	       coalesce(sum(s.sessions), 0)::bigint, coalesce(sum(s.held), 0)::bigint, coalesce(sum(s.unsettled), 0)::bigint,
	       coalesce(sum(s.energy_kwh), 0), coalesce(sum(s.energy_fee), 0), coalesce(sum(s.service_fee), 0),
	       coalesce(sum(s.occupancy_fee), 0), coalesce(sum(s.discount), 0), coalesce(sum(s.total), 0),
	       coalesce(sum(s.top_ups), 0), coalesce(sum(s.credits), 0), coalesce(sum(s.refunds), 0),
	       coalesce(sum(s.refund_fees), 0)
	FROM seen s
	) x (line, station_id, station, sub_operator_id, sub_operator, sessions, held, unsettled, energy_kwh, energy_fee,
	     service_fee, occupancy_fee, discount, total, top_ups, credits, refunds, refund_fees)
	ORDER BY array_position(ARRAY['station', 'wallets', 'total'], x.line), x.station_id, x.sub_operator_id NULLS FIRST;
END;
COMMENT ON FUNCTION evcharge.daily_report(bigint, date, bigint) IS
	'an operator''s day (books_day: in finance_policy.tz; an unknown operator or no day is an error): a line per station and sub-operator with sessions ended that day, held and unsettled bills, and the charged energy, electricity, service and occupancy fees, discounts and total; a line per sub-operator with the top-ups, manual credits and refunds of its wallets; a total line; only_sub_operator shows what one sub-operator may see';

-- The bills made before 0.3.0: a bill keeps its Wh per class but neither
-- its per-class fees nor the rates that made them.  Its breakdown is worked
-- out again, with price() over its wh_by_class, only where that is exactly
-- what priced it: one plan (the one its applied names, the only row of
-- that name in force during the bill at its station and current type), no
-- group price or promotion (their rates may have changed since, and the
-- bill does not keep them), a price for every class with energy, and
-- price() giving the bill's own electricity and service fees to the fen.
-- Any other bill (no tariff, a plan change during the session: the bill
-- keeps Wh per class summed over the plans; a group price or promotion)
-- keeps NULL.  Revisions made before 0.3.0 stay as they were written.
WITH ok AS MATERIALIZED (
	SELECT b.order_no, b.wh_by_class, t.tariff
	FROM evcharge.bill b
	CROSS JOIN LATERAL (SELECT min(substr(a, 7)) AS plan, count(DISTINCT a) AS plans
	                    FROM unnest(b.applied) a WHERE a LIKE 'plan: %') p
	JOIN LATERAL (SELECT min(st.station_tariff_id) AS station_tariff_id, count(*) AS n
	              FROM evcharge.station_tariff st
	              WHERE st.station_id = b.station_id AND st.current_type = evcharge.current_type(b.gun)
	                AND coalesce(st.name, 'plan ' || st.station_tariff_id) = p.plan
	                AND st.valid && tstzrange(least(b.started_at, b.ended_at), greatest(b.started_at, b.ended_at), '[]')) one
	  ON one.n = 1
	JOIN evcharge.station_tariff t ON t.station_tariff_id = one.station_tariff_id
	WHERE p.plans = 1
	  AND NOT EXISTS (SELECT 1 FROM unnest(b.applied) a
	                  WHERE a LIKE 'group: %' OR a LIKE 'promotion: %' OR a LIKE 'no tariff%')
	  AND array_ndims(b.wh_by_class) = 1 AND array_length(b.wh_by_class, 1) = 4
	  AND NOT EXISTS (SELECT 1 FROM unnest(b.wh_by_class, ARRAY['sharp', 'peak', 'flat', 'valley']) u(wh, class)
	                  WHERE u.wh < 0 OR u.wh IS NULL
	                     OR (u.wh > 0 AND NOT EXISTS (SELECT 1 FROM evcharge.tariff_prices(t.tariff) pr
	                                                 WHERE pr.class = u.class)))
), priced AS MATERIALIZED (
	SELECT ok.order_no, evcharge.price(ok.tariff, ok.wh_by_class) AS pr FROM ok
)
UPDATE evcharge.bill b
SET breakdown = evcharge.bill_breakdown(b.wh_by_class, (x.pr).class_energy_fee, (x.pr).class_service_fee)
FROM priced x
WHERE x.order_no = b.order_no AND (x.pr).energy_fee = b.energy_fee AND (x.pr).service_fee = b.service_fee;
