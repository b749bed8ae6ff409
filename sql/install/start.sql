-- start.sql: a charge started from the app or a QR scan (start_session:
-- who may start it, on which gun, who pays, whether the wallet, the card's
-- day or the partner's credit allows it, the remote start the bridge
-- sends).  Loaded after the money, the bridge and the partners' accounts it
-- asks; a start the pile never began is cancelled by cancel_session
-- (session.sql).
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- Starting a charge from the app or a QR scan.
CREATE FUNCTION evcharge.start_session(gun evcharge.gun_id, member_id bigint, channel text,
	partner_id bigint DEFAULT NULL, partner_order_no text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	found_pile boolean;
	mem evcharge.member;
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
	SELECT pl.station_id, pl.gun_count, s.tz, s.operator_id INTO p
	FROM evcharge.pile pl JOIN evcharge.station s USING (station_id)
	WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(start_session.gun);
	found_pile := FOUND;
	IF NOT found_pile OR evcharge.gun_no(start_session.gun) > p.gun_count THEN
		RAISE EXCEPTION 'gun % is not registered', gun
			USING ERRCODE = 'no_data_found',
			      DETAIL = CASE WHEN found_pile
			                    THEN format('Pile %s has %s gun(s); this is gun %s.', evcharge.pile(start_session.gun), p.gun_count, evcharge.gun_no(start_session.gun))
			                    ELSE format('Pile %s is not in the registry.', evcharge.pile(start_session.gun)) END,
			      HINT = 'Start on a gun of a registered pile (evcharge.pile, guns 1 to gun_count).';
	END IF;
	-- A start for nobody the operator knows would hold the gun for a
	-- session no wallet pays (and block it until detect_lost_bills gives up).
	IF start_session.member_id IS NOT NULL THEN
		SELECT * INTO mem FROM evcharge.member mm WHERE mm.member_id = start_session.member_id;
		IF NOT FOUND OR mem.operator_id <> p.operator_id THEN
			RAISE EXCEPTION 'operator % has no member %', p.operator_id, start_session.member_id
				USING ERRCODE = 'no_data_found',
				      DETAIL = format('Gun %s is operator %s''s; %s.', gun, p.operator_id,
				                      CASE WHEN mem.member_id IS NOT NULL
				                           THEN format('member %s is operator %s''s', mem.member_id, mem.operator_id)
				                           ELSE format('no member %s is registered', start_session.member_id) END),
				      HINT = 'Give one of the operator''s members (evcharge.member), or NULL for a partner''s user.';
		END IF;
	END IF;
	-- The member's customer group (department, fleet, VIP class) at the
	-- start: its group price and occupancy exemption apply to this charge.
	-- A member who is a partner's user charges on the partner's account,
	-- under its contract and not at a member's price, however it starts.
	SELECT coalesce(start_session.partner_id, m.partner_id),
	       CASE WHEN coalesce(start_session.partner_id, m.partner_id) IS NULL THEN m.group_id END
	INTO partner_id, grp
	FROM (SELECT 1) one LEFT JOIN evcharge.member m ON m.member_id = start_session.member_id;
	IF partner_id IS NOT NULL THEN
		SELECT * INTO ptn FROM evcharge.partner x WHERE x.partner_id = start_session.partner_id;
		IF NOT FOUND OR ptn.operator_id <> p.operator_id THEN
			RAISE EXCEPTION 'partner % has no contract with the operator of gun %', partner_id, gun
				USING ERRCODE = 'no_data_found',
				      DETAIL = format('Gun %s is operator %s''s; %s.', gun, p.operator_id,
				                      CASE WHEN ptn.partner_id IS NOT NULL
				                           THEN format('partner %s (%s) has its contract with operator %s', ptn.partner_id, ptn.name, ptn.operator_id)
				                           ELSE format('no partner %s is registered', partner_id) END),
				      HINT = 'Give one of the operator''s partners (evcharge.partner), or NULL for a member''s own start.';
		END IF;
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
	'opens a session for an app or QR start and returns its order number (yyyyMMddHHmmss in the station''s zone + 6 digits); the pile''s heartbeats carrying it then feed it; partner_order_no, the partner''s own number for it (22023 when not in the partner''s form or without a partner, 23505 when the partner already used it); for an OCPP pile (one that has connected to a bridge) it also makes the RemoteStartTransaction (ocpp_command, NOTIFY evcharge_command), and refuses with EV003 when the pile is not connected; refuses (P0002) a gun that is not registered and a member or partner that is not the operator''s; 55P03 for a busy gun; EV002 for a start by card whose day''s charges reached its daily limit (check_card_limit); cancel_session() ends a start the pile never began';
