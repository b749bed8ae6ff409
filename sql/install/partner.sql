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

SELECT pg_catalog.pg_extension_config_dump('evcharge.partner', '');
