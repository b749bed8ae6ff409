-- partner.sql: interconnection partners (a ride-hailing or map app whose
-- users start charges at our piles) and the start channels each contract
-- allows.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TABLE evcharge.partner (
	partner_id bigint PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	name text NOT NULL CHECK (name <> ''),
	allowed_channels text[] CHECK (allowed_channels <@ ARRAY['app', 'qr', 'card', 'password', 'vin', 'partner', 'offline']),
	kind text NOT NULL DEFAULT 'affiliated' CHECK (kind IN ('prepaid', 'affiliated')),
	credit_limit numeric(14, 2) CHECK (credit_limit >= 0 AND credit_limit <> 'NaN'),
	created_at timestamptz NOT NULL DEFAULT now(),
	order_no_digits smallint CHECK (order_no_digits BETWEEN 1 AND 64),
	CHECK (kind = 'affiliated' OR credit_limit IS NULL)
);
COMMENT ON TABLE evcharge.partner IS
	'An interconnection partner of an operator (e.g. a ride-hailing app): its users start sessions at the operator''s piles';
COMMENT ON COLUMN evcharge.partner.partner_id IS 'partner number';
COMMENT ON COLUMN evcharge.partner.operator_id IS 'the operator whose piles the partner''s users charge at';
COMMENT ON COLUMN evcharge.partner.name IS 'partner name';
COMMENT ON COLUMN evcharge.partner.allowed_channels IS
	'the start channels the contract allows (e.g. {qr}); NULL allows all; a session started otherwise gets anomaly 14';
COMMENT ON COLUMN evcharge.partner.kind IS
	'prepaid: we hold money the partner deposited (its users'' bills debit it); affiliated: bills first, the partner pays monthly';
COMMENT ON COLUMN evcharge.partner.credit_limit IS 'affiliated: what the partner may owe (e.g. 1500.00); a start beyond it is refused; NULL: no limit';
COMMENT ON COLUMN evcharge.partner.created_at IS 'when the partner was registered';
COMMENT ON COLUMN evcharge.partner.order_no_digits IS
	'how many decimal digits the partner''s own order numbers have (Didi: 27); NULL: any partner order number form (is_partner_order_no)';

-- A partner's own order number for one of our sessions (Didi's app numbers
-- each session with 27 digits, and its statements are keyed by them): the
-- form every partner's number has, and the partner's own rule on top.
CREATE FUNCTION evcharge.is_partner_order_no(partner_order_no text) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN partner_order_no ~ '^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$';
COMMENT ON FUNCTION evcharge.is_partner_order_no(text) IS
	'whether a text has the form of a partner''s order number: 1 to 64 letters, digits, "-" and "_", starting with a letter or digit (the CHECK of charge_session.partner_order_no)';

CREATE FUNCTION evcharge.partner_order_no_problem(p_partner_id bigint, p_partner_order_no text) RETURNS text
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

SELECT pg_catalog.pg_extension_config_dump('evcharge.partner', '');
