-- evcharge.sql: the module itself (C in src/evcharge.c).
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

COMMENT ON SCHEMA evcharge IS 'evcharge: EV charging network core (pile ids, tariffs, sessions, bills, anomalies, money)';

CREATE FUNCTION evcharge.library_versions(OUT library text, OUT version text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'evcharge_library_versions'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.library_versions() IS
	'versions of evcharge, of the PostgreSQL it was built for, and of the libcurl and OpenSSL it runs with';
-- pile_id.sql: the pile and gun id types (C in src/pile_id.c).
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- Both types are in type category 'e' (evcharge ids), pile_id preferred, so
-- that an accessor overloaded for both, called on an untyped literal
-- (current_type('4420 0000 1200 0020 0045')), reads the literal as a pile id.

--------------------------------------------------------------------------
-- pile_id
--------------------------------------------------------------------------

CREATE TYPE evcharge.pile_id;

CREATE FUNCTION evcharge.pile_id_in(cstring) RETURNS evcharge.pile_id
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.pile_id_out(evcharge.pile_id) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.pile_id_recv(internal) RETURNS evcharge.pile_id
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.pile_id_send(evcharge.pile_id) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE evcharge.pile_id (
	INPUT = evcharge.pile_id_in,
	OUTPUT = evcharge.pile_id_out,
	RECEIVE = evcharge.pile_id_recv,
	SEND = evcharge.pile_id_send,
	INTERNALLENGTH = 16,
	ALIGNMENT = double,
	STORAGE = plain,
	CATEGORY = 'e',
	PREFERRED = true
);

COMMENT ON TYPE evcharge.pile_id IS
	'Charging pile id: 20 digits (region 6, operator 4, reserved 1, product 2, detail 2, serial 5) or a 16-digit legacy id; accepts groups separated by spaces or hyphens';
COMMENT ON FUNCTION evcharge.pile_id_in(cstring) IS 'pile_id text input';
COMMENT ON FUNCTION evcharge.pile_id_out(evcharge.pile_id) IS 'pile_id text output: the canonical digit string';
COMMENT ON FUNCTION evcharge.pile_id_recv(internal) IS 'pile_id binary input (version byte, kind, head, tail), re-validated';
COMMENT ON FUNCTION evcharge.pile_id_send(evcharge.pile_id) IS 'pile_id binary output';

CREATE FUNCTION evcharge.pile_id_cmp(evcharge.pile_id, evcharge.pile_id) RETURNS int4
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.pile_id_eq(evcharge.pile_id, evcharge.pile_id) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.pile_id_ne(evcharge.pile_id, evcharge.pile_id) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.pile_id_lt(evcharge.pile_id, evcharge.pile_id) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.pile_id_le(evcharge.pile_id, evcharge.pile_id) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.pile_id_gt(evcharge.pile_id, evcharge.pile_id) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.pile_id_ge(evcharge.pile_id, evcharge.pile_id) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.pile_id_hash(evcharge.pile_id) RETURNS int4
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.pile_id_hash_extended(evcharge.pile_id, int8) RETURNS int8
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.pile_id_sortsupport(internal) RETURNS void
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION evcharge.pile_id_cmp(evcharge.pile_id, evcharge.pile_id) IS 'btree support: -1, 0 or 1 in digit-string order';
COMMENT ON FUNCTION evcharge.pile_id_eq(evcharge.pile_id, evcharge.pile_id) IS 'implementation of = for pile_id';
COMMENT ON FUNCTION evcharge.pile_id_ne(evcharge.pile_id, evcharge.pile_id) IS 'implementation of <> for pile_id';
COMMENT ON FUNCTION evcharge.pile_id_lt(evcharge.pile_id, evcharge.pile_id) IS 'implementation of < for pile_id';
COMMENT ON FUNCTION evcharge.pile_id_le(evcharge.pile_id, evcharge.pile_id) IS 'implementation of <= for pile_id';
COMMENT ON FUNCTION evcharge.pile_id_gt(evcharge.pile_id, evcharge.pile_id) IS 'implementation of > for pile_id';
COMMENT ON FUNCTION evcharge.pile_id_ge(evcharge.pile_id, evcharge.pile_id) IS 'implementation of >= for pile_id';
COMMENT ON FUNCTION evcharge.pile_id_hash(evcharge.pile_id) IS 'hash support for pile_id';
COMMENT ON FUNCTION evcharge.pile_id_hash_extended(evcharge.pile_id, int8) IS 'seeded hash support for pile_id';
COMMENT ON FUNCTION evcharge.pile_id_sortsupport(internal) IS 'sort support for pile_id';

CREATE OPERATOR evcharge.= (
	LEFTARG = evcharge.pile_id, RIGHTARG = evcharge.pile_id,
	FUNCTION = evcharge.pile_id_eq,
	COMMUTATOR = OPERATOR(evcharge.=), NEGATOR = OPERATOR(evcharge.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR evcharge.<> (
	LEFTARG = evcharge.pile_id, RIGHTARG = evcharge.pile_id,
	FUNCTION = evcharge.pile_id_ne,
	COMMUTATOR = OPERATOR(evcharge.<>), NEGATOR = OPERATOR(evcharge.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR evcharge.< (
	LEFTARG = evcharge.pile_id, RIGHTARG = evcharge.pile_id,
	FUNCTION = evcharge.pile_id_lt,
	COMMUTATOR = OPERATOR(evcharge.>), NEGATOR = OPERATOR(evcharge.>=),
	RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR evcharge.<= (
	LEFTARG = evcharge.pile_id, RIGHTARG = evcharge.pile_id,
	FUNCTION = evcharge.pile_id_le,
	COMMUTATOR = OPERATOR(evcharge.>=), NEGATOR = OPERATOR(evcharge.>),
	RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR evcharge.> (
	LEFTARG = evcharge.pile_id, RIGHTARG = evcharge.pile_id,
	FUNCTION = evcharge.pile_id_gt,
	COMMUTATOR = OPERATOR(evcharge.<), NEGATOR = OPERATOR(evcharge.<=),
	RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
CREATE OPERATOR evcharge.>= (
	LEFTARG = evcharge.pile_id, RIGHTARG = evcharge.pile_id,
	FUNCTION = evcharge.pile_id_ge,
	COMMUTATOR = OPERATOR(evcharge.<=), NEGATOR = OPERATOR(evcharge.<),
	RESTRICT = scalargesel, JOIN = scalargejoinsel
);

COMMENT ON OPERATOR evcharge.= (evcharge.pile_id, evcharge.pile_id) IS 'pile ids are equal';
COMMENT ON OPERATOR evcharge.<> (evcharge.pile_id, evcharge.pile_id) IS 'pile ids differ';
COMMENT ON OPERATOR evcharge.< (evcharge.pile_id, evcharge.pile_id) IS 'less than, in digit-string order';
COMMENT ON OPERATOR evcharge.<= (evcharge.pile_id, evcharge.pile_id) IS 'less than or equal, in digit-string order';
COMMENT ON OPERATOR evcharge.> (evcharge.pile_id, evcharge.pile_id) IS 'greater than, in digit-string order';
COMMENT ON OPERATOR evcharge.>= (evcharge.pile_id, evcharge.pile_id) IS 'greater than or equal, in digit-string order';

CREATE OPERATOR CLASS evcharge.pile_id_ops
	DEFAULT FOR TYPE evcharge.pile_id USING btree AS
		OPERATOR 1 evcharge.< ,
		OPERATOR 2 evcharge.<= ,
		OPERATOR 3 evcharge.= ,
		OPERATOR 4 evcharge.>= ,
		OPERATOR 5 evcharge.> ,
		FUNCTION 1 evcharge.pile_id_cmp(evcharge.pile_id, evcharge.pile_id),
		FUNCTION 2 evcharge.pile_id_sortsupport(internal);

CREATE OPERATOR CLASS evcharge.pile_id_hash_ops
	DEFAULT FOR TYPE evcharge.pile_id USING hash AS
		OPERATOR 1 evcharge.= ,
		FUNCTION 1 evcharge.pile_id_hash(evcharge.pile_id),
		FUNCTION 2 evcharge.pile_id_hash_extended(evcharge.pile_id, int8);

COMMENT ON OPERATOR CLASS evcharge.pile_id_ops USING btree IS 'btree operator class for pile_id: indexes, ORDER BY, merge joins';
COMMENT ON OPERATOR CLASS evcharge.pile_id_hash_ops USING hash IS 'hash operator class for pile_id: hash joins, GROUP BY, DISTINCT';
COMMENT ON OPERATOR FAMILY evcharge.pile_id_ops USING btree IS 'btree operator family of pile_id';
COMMENT ON OPERATOR FAMILY evcharge.pile_id_hash_ops USING hash IS 'hash operator family of pile_id';

--------------------------------------------------------------------------
-- gun_id
--------------------------------------------------------------------------

CREATE TYPE evcharge.gun_id;

CREATE FUNCTION evcharge.gun_id_in(cstring) RETURNS evcharge.gun_id
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.gun_id_out(evcharge.gun_id) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.gun_id_recv(internal) RETURNS evcharge.gun_id
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.gun_id_send(evcharge.gun_id) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE evcharge.gun_id (
	INPUT = evcharge.gun_id_in,
	OUTPUT = evcharge.gun_id_out,
	RECEIVE = evcharge.gun_id_recv,
	SEND = evcharge.gun_id_send,
	INTERNALLENGTH = 16,
	ALIGNMENT = double,
	STORAGE = plain,
	CATEGORY = 'e'
);

COMMENT ON TYPE evcharge.gun_id IS
	'Charging gun (connector) id: a 20-digit pile id followed by a 3-digit gun number from 001';
COMMENT ON FUNCTION evcharge.gun_id_in(cstring) IS 'gun_id text input';
COMMENT ON FUNCTION evcharge.gun_id_out(evcharge.gun_id) IS 'gun_id text output: the canonical 23-digit string';
COMMENT ON FUNCTION evcharge.gun_id_recv(internal) IS 'gun_id binary input (version byte, head, tail), re-validated';
COMMENT ON FUNCTION evcharge.gun_id_send(evcharge.gun_id) IS 'gun_id binary output';

CREATE FUNCTION evcharge.gun_id_cmp(evcharge.gun_id, evcharge.gun_id) RETURNS int4
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.gun_id_eq(evcharge.gun_id, evcharge.gun_id) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.gun_id_ne(evcharge.gun_id, evcharge.gun_id) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.gun_id_lt(evcharge.gun_id, evcharge.gun_id) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.gun_id_le(evcharge.gun_id, evcharge.gun_id) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.gun_id_gt(evcharge.gun_id, evcharge.gun_id) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.gun_id_ge(evcharge.gun_id, evcharge.gun_id) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.gun_id_hash(evcharge.gun_id) RETURNS int4
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.gun_id_hash_extended(evcharge.gun_id, int8) RETURNS int8
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.gun_id_sortsupport(internal) RETURNS void
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION evcharge.gun_id_cmp(evcharge.gun_id, evcharge.gun_id) IS 'btree support: -1, 0 or 1 in digit-string order';
COMMENT ON FUNCTION evcharge.gun_id_eq(evcharge.gun_id, evcharge.gun_id) IS 'implementation of = for gun_id';
COMMENT ON FUNCTION evcharge.gun_id_ne(evcharge.gun_id, evcharge.gun_id) IS 'implementation of <> for gun_id';
COMMENT ON FUNCTION evcharge.gun_id_lt(evcharge.gun_id, evcharge.gun_id) IS 'implementation of < for gun_id';
COMMENT ON FUNCTION evcharge.gun_id_le(evcharge.gun_id, evcharge.gun_id) IS 'implementation of <= for gun_id';
COMMENT ON FUNCTION evcharge.gun_id_gt(evcharge.gun_id, evcharge.gun_id) IS 'implementation of > for gun_id';
COMMENT ON FUNCTION evcharge.gun_id_ge(evcharge.gun_id, evcharge.gun_id) IS 'implementation of >= for gun_id';
COMMENT ON FUNCTION evcharge.gun_id_hash(evcharge.gun_id) IS 'hash support for gun_id';
COMMENT ON FUNCTION evcharge.gun_id_hash_extended(evcharge.gun_id, int8) IS 'seeded hash support for gun_id';
COMMENT ON FUNCTION evcharge.gun_id_sortsupport(internal) IS 'sort support for gun_id';

CREATE OPERATOR evcharge.= (
	LEFTARG = evcharge.gun_id, RIGHTARG = evcharge.gun_id,
	FUNCTION = evcharge.gun_id_eq,
	COMMUTATOR = OPERATOR(evcharge.=), NEGATOR = OPERATOR(evcharge.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR evcharge.<> (
	LEFTARG = evcharge.gun_id, RIGHTARG = evcharge.gun_id,
	FUNCTION = evcharge.gun_id_ne,
	COMMUTATOR = OPERATOR(evcharge.<>), NEGATOR = OPERATOR(evcharge.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR evcharge.< (
	LEFTARG = evcharge.gun_id, RIGHTARG = evcharge.gun_id,
	FUNCTION = evcharge.gun_id_lt,
	COMMUTATOR = OPERATOR(evcharge.>), NEGATOR = OPERATOR(evcharge.>=),
	RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR evcharge.<= (
	LEFTARG = evcharge.gun_id, RIGHTARG = evcharge.gun_id,
	FUNCTION = evcharge.gun_id_le,
	COMMUTATOR = OPERATOR(evcharge.>=), NEGATOR = OPERATOR(evcharge.>),
	RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR evcharge.> (
	LEFTARG = evcharge.gun_id, RIGHTARG = evcharge.gun_id,
	FUNCTION = evcharge.gun_id_gt,
	COMMUTATOR = OPERATOR(evcharge.<), NEGATOR = OPERATOR(evcharge.<=),
	RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
CREATE OPERATOR evcharge.>= (
	LEFTARG = evcharge.gun_id, RIGHTARG = evcharge.gun_id,
	FUNCTION = evcharge.gun_id_ge,
	COMMUTATOR = OPERATOR(evcharge.<=), NEGATOR = OPERATOR(evcharge.<),
	RESTRICT = scalargesel, JOIN = scalargejoinsel
);

COMMENT ON OPERATOR evcharge.= (evcharge.gun_id, evcharge.gun_id) IS 'gun ids are equal';
COMMENT ON OPERATOR evcharge.<> (evcharge.gun_id, evcharge.gun_id) IS 'gun ids differ';
COMMENT ON OPERATOR evcharge.< (evcharge.gun_id, evcharge.gun_id) IS 'less than, in digit-string order';
COMMENT ON OPERATOR evcharge.<= (evcharge.gun_id, evcharge.gun_id) IS 'less than or equal, in digit-string order';
COMMENT ON OPERATOR evcharge.> (evcharge.gun_id, evcharge.gun_id) IS 'greater than, in digit-string order';
COMMENT ON OPERATOR evcharge.>= (evcharge.gun_id, evcharge.gun_id) IS 'greater than or equal, in digit-string order';

CREATE OPERATOR CLASS evcharge.gun_id_ops
	DEFAULT FOR TYPE evcharge.gun_id USING btree AS
		OPERATOR 1 evcharge.< ,
		OPERATOR 2 evcharge.<= ,
		OPERATOR 3 evcharge.= ,
		OPERATOR 4 evcharge.>= ,
		OPERATOR 5 evcharge.> ,
		FUNCTION 1 evcharge.gun_id_cmp(evcharge.gun_id, evcharge.gun_id),
		FUNCTION 2 evcharge.gun_id_sortsupport(internal);

CREATE OPERATOR CLASS evcharge.gun_id_hash_ops
	DEFAULT FOR TYPE evcharge.gun_id USING hash AS
		OPERATOR 1 evcharge.= ,
		FUNCTION 1 evcharge.gun_id_hash(evcharge.gun_id),
		FUNCTION 2 evcharge.gun_id_hash_extended(evcharge.gun_id, int8);

COMMENT ON OPERATOR CLASS evcharge.gun_id_ops USING btree IS 'btree operator class for gun_id: indexes, ORDER BY, merge joins';
COMMENT ON OPERATOR CLASS evcharge.gun_id_hash_ops USING hash IS 'hash operator class for gun_id: hash joins, GROUP BY, DISTINCT';
COMMENT ON OPERATOR FAMILY evcharge.gun_id_ops USING btree IS 'btree operator family of gun_id';
COMMENT ON OPERATOR FAMILY evcharge.gun_id_hash_ops USING hash IS 'hash operator family of gun_id';

--------------------------------------------------------------------------
-- Accessors, overloaded for both types
--------------------------------------------------------------------------

CREATE FUNCTION evcharge.region_code(evcharge.pile_id) RETURNS int
	AS 'MODULE_PATHNAME', 'pile_id_region_code' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.region_code(evcharge.gun_id) RETURNS int
	AS 'MODULE_PATHNAME', 'gun_id_region_code' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.province_code(evcharge.pile_id) RETURNS int
	AS 'MODULE_PATHNAME', 'pile_id_province_code' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.province_code(evcharge.gun_id) RETURNS int
	AS 'MODULE_PATHNAME', 'gun_id_province_code' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.operator_code(evcharge.pile_id) RETURNS int
	AS 'MODULE_PATHNAME', 'pile_id_operator_code' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.operator_code(evcharge.gun_id) RETURNS int
	AS 'MODULE_PATHNAME', 'gun_id_operator_code' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.product_kind(evcharge.pile_id) RETURNS text
	AS 'MODULE_PATHNAME', 'pile_id_product_kind' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.product_kind(evcharge.gun_id) RETURNS text
	AS 'MODULE_PATHNAME', 'gun_id_product_kind' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.current_type(evcharge.pile_id) RETURNS text
	AS 'MODULE_PATHNAME', 'pile_id_current_type' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.current_type(evcharge.gun_id) RETURNS text
	AS 'MODULE_PATHNAME', 'gun_id_current_type' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.serial_no(evcharge.pile_id) RETURNS int
	AS 'MODULE_PATHNAME', 'pile_id_serial_no' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.serial_no(evcharge.gun_id) RETURNS int
	AS 'MODULE_PATHNAME', 'gun_id_serial_no' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.is_legacy(evcharge.pile_id) RETURNS bool
	AS 'MODULE_PATHNAME', 'pile_id_is_legacy' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.is_legacy(evcharge.gun_id) RETURNS bool
	AS 'MODULE_PATHNAME', 'gun_id_is_legacy' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.pile(evcharge.gun_id) RETURNS evcharge.pile_id
	AS 'MODULE_PATHNAME', 'gun_id_pile' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.gun_no(evcharge.gun_id) RETURNS int
	AS 'MODULE_PATHNAME', 'gun_id_gun_no' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.gun_id(evcharge.pile_id, int) RETURNS evcharge.gun_id
	AS 'MODULE_PATHNAME', 'gun_id_make' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION evcharge.region_code(evcharge.pile_id) IS 'GB/T 2260 administrative division of the pile (digits 1-6), e.g. 442000 Zhongshan';
COMMENT ON FUNCTION evcharge.region_code(evcharge.gun_id) IS 'GB/T 2260 administrative division of the gun''s pile (digits 1-6)';
COMMENT ON FUNCTION evcharge.province_code(evcharge.pile_id) IS 'province of the pile: the first two digits of the region, e.g. 44 Guangdong';
COMMENT ON FUNCTION evcharge.province_code(evcharge.gun_id) IS 'province of the gun''s pile: the first two digits of the region';
COMMENT ON FUNCTION evcharge.operator_code(evcharge.pile_id) IS 'operator number on the platform (digits 7-10)';
COMMENT ON FUNCTION evcharge.operator_code(evcharge.gun_id) IS 'operator number on the platform (digits 7-10)';
COMMENT ON FUNCTION evcharge.product_kind(evcharge.pile_id) IS '''pile'' (product 00), ''ground_lock'' (01), NULL for any other code or a legacy id';
COMMENT ON FUNCTION evcharge.product_kind(evcharge.gun_id) IS '''pile'' (product 00), ''ground_lock'' (01), NULL for any other code';
COMMENT ON FUNCTION evcharge.current_type(evcharge.pile_id) IS '''AC'' (detail 01), ''DC'' (02), NULL for any other code or a legacy id';
COMMENT ON FUNCTION evcharge.current_type(evcharge.gun_id) IS '''AC'' (detail 01), ''DC'' (02), NULL for any other code';
COMMENT ON FUNCTION evcharge.serial_no(evcharge.pile_id) IS 'pile serial within the operator (digits 16-20, or 11-16 of a legacy id)';
COMMENT ON FUNCTION evcharge.serial_no(evcharge.gun_id) IS 'serial of the gun''s pile within the operator (digits 16-20)';
COMMENT ON FUNCTION evcharge.is_legacy(evcharge.pile_id) IS 'true for a 16-digit legacy pile id';
COMMENT ON FUNCTION evcharge.is_legacy(evcharge.gun_id) IS 'always false: a gun id never rests on a legacy pile id';
COMMENT ON FUNCTION evcharge.pile(evcharge.gun_id) IS 'the pile a gun belongs to';
COMMENT ON FUNCTION evcharge.gun_no(evcharge.gun_id) IS 'gun number on its pile, 1 for the first';
COMMENT ON FUNCTION evcharge.gun_id(evcharge.pile_id, int) IS 'gun n (1..999) of a 20-digit pile';

--------------------------------------------------------------------------
-- Casts
--------------------------------------------------------------------------

CREATE CAST (evcharge.pile_id AS text) WITH INOUT AS ASSIGNMENT;
CREATE CAST (text AS evcharge.pile_id) WITH INOUT;
CREATE CAST (evcharge.gun_id AS text) WITH INOUT AS ASSIGNMENT;
CREATE CAST (text AS evcharge.gun_id) WITH INOUT;
CREATE CAST (evcharge.gun_id AS evcharge.pile_id)
	WITH FUNCTION evcharge.pile(evcharge.gun_id);

COMMENT ON CAST (evcharge.pile_id AS text) IS 'the canonical digit string';
COMMENT ON CAST (text AS evcharge.pile_id) IS 'parses a pile id; spaces and hyphens between groups allowed';
COMMENT ON CAST (evcharge.gun_id AS text) IS 'the canonical 23-digit string';
COMMENT ON CAST (text AS evcharge.gun_id) IS 'parses a gun id; spaces and hyphens between groups allowed';
COMMENT ON CAST (evcharge.gun_id AS evcharge.pile_id) IS 'the pile a gun belongs to';
-- tariff.sql: the time-of-use plan type and the billing engines
-- (C in src/tariff.c, src/energy_split.c, src/pricing.c).
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TYPE evcharge.tou_tariff;

CREATE FUNCTION evcharge.tou_tariff_in(cstring) RETURNS evcharge.tou_tariff
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.tou_tariff_out(evcharge.tou_tariff) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.tou_tariff_recv(internal) RETURNS evcharge.tou_tariff
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.tou_tariff_send(evcharge.tou_tariff) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE evcharge.tou_tariff (
	INPUT = evcharge.tou_tariff_in,
	OUTPUT = evcharge.tou_tariff_out,
	RECEIVE = evcharge.tou_tariff_recv,
	SEND = evcharge.tou_tariff_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);

COMMENT ON TYPE evcharge.tou_tariff IS
	'A complete daily time-of-use price plan: segments covering the day once, each of class sharp/peak/flat/valley, and per class an electricity price and a service fee in yuan per kWh (4 decimals)';
COMMENT ON FUNCTION evcharge.tou_tariff_in(cstring) IS 'tou_tariff text input, validated';
COMMENT ON FUNCTION evcharge.tou_tariff_out(evcharge.tou_tariff) IS 'tou_tariff text output: segments sorted, prices in class order';
COMMENT ON FUNCTION evcharge.tou_tariff_recv(internal) IS 'tou_tariff binary input, validated like text input';
COMMENT ON FUNCTION evcharge.tou_tariff_send(evcharge.tou_tariff) IS 'tou_tariff binary output';

CREATE FUNCTION evcharge.tou_tariff_eq(evcharge.tou_tariff, evcharge.tou_tariff) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.tou_tariff_ne(evcharge.tou_tariff, evcharge.tou_tariff) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.tou_tariff_hash(evcharge.tou_tariff) RETURNS int4
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.tou_tariff_hash_extended(evcharge.tou_tariff, int8) RETURNS int8
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
COMMENT ON FUNCTION evcharge.tou_tariff_eq(evcharge.tou_tariff, evcharge.tou_tariff) IS 'implementation of = for tou_tariff: same class at every minute, same prices';
COMMENT ON FUNCTION evcharge.tou_tariff_ne(evcharge.tou_tariff, evcharge.tou_tariff) IS 'implementation of <> for tou_tariff';
COMMENT ON FUNCTION evcharge.tou_tariff_hash(evcharge.tou_tariff) IS 'hash support for tou_tariff';
COMMENT ON FUNCTION evcharge.tou_tariff_hash_extended(evcharge.tou_tariff, int8) IS 'seeded hash support for tou_tariff';

CREATE OPERATOR evcharge.= (
	LEFTARG = evcharge.tou_tariff, RIGHTARG = evcharge.tou_tariff,
	FUNCTION = evcharge.tou_tariff_eq,
	COMMUTATOR = OPERATOR(evcharge.=), NEGATOR = OPERATOR(evcharge.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES
);
CREATE OPERATOR evcharge.<> (
	LEFTARG = evcharge.tou_tariff, RIGHTARG = evcharge.tou_tariff,
	FUNCTION = evcharge.tou_tariff_ne,
	COMMUTATOR = OPERATOR(evcharge.<>), NEGATOR = OPERATOR(evcharge.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
COMMENT ON OPERATOR evcharge.= (evcharge.tou_tariff, evcharge.tou_tariff) IS 'plans are the same';
COMMENT ON OPERATOR evcharge.<> (evcharge.tou_tariff, evcharge.tou_tariff) IS 'plans differ';

CREATE OPERATOR CLASS evcharge.tou_tariff_hash_ops
	DEFAULT FOR TYPE evcharge.tou_tariff USING hash AS
		OPERATOR 1 evcharge.= ,
		FUNCTION 1 evcharge.tou_tariff_hash(evcharge.tou_tariff),
		FUNCTION 2 evcharge.tou_tariff_hash_extended(evcharge.tou_tariff, int8);
COMMENT ON OPERATOR CLASS evcharge.tou_tariff_hash_ops USING hash IS 'hash operator class for tou_tariff: GROUP BY, DISTINCT';
COMMENT ON OPERATOR FAMILY evcharge.tou_tariff_hash_ops USING hash IS 'hash operator family of tou_tariff';

-- Accessors.
CREATE FUNCTION evcharge.class_at(evcharge.tou_tariff, time) RETURNS text
	AS 'MODULE_PATHNAME', 'tou_tariff_class_at' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.class_at(evcharge.tou_tariff, time) IS
	'the class (sharp, peak, flat, valley) in force at a local time of day';

CREATE FUNCTION evcharge.tariff_segments(evcharge.tou_tariff,
	OUT starts time, OUT ends time, OUT class text) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'tou_tariff_segments' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.tariff_segments(evcharge.tou_tariff) IS
	'the segments of a plan in order: local start, end (24:00 for the end of the day) and class';

CREATE FUNCTION evcharge.tariff_prices(evcharge.tou_tariff,
	OUT class text, OUT energy_price numeric, OUT service_fee numeric) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'tou_tariff_prices' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.tariff_prices(evcharge.tou_tariff) IS
	'the prices of a plan per class, in yuan per kWh';

-- jsonb, for applications.
CREATE FUNCTION evcharge.to_jsonb(evcharge.tou_tariff) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'tou_tariff_to_jsonb' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.to_jsonb(evcharge.tou_tariff) IS
	'the plan as {"segments": [{"start", "end", "class"}...], "prices": {class: {"energy", "service"}}}';
CREATE CAST (evcharge.tou_tariff AS jsonb) WITH FUNCTION evcharge.to_jsonb(evcharge.tou_tariff);
COMMENT ON CAST (evcharge.tou_tariff AS jsonb) IS 'the plan as jsonb, see evcharge.to_jsonb(tou_tariff)';

CREATE FUNCTION evcharge.tou_tariff(plan jsonb) RETURNS evcharge.tou_tariff
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	seg jsonb;
	pr record;
	n int := 0;
	segs text[] := '{}';
	prices text[] := '{}';
BEGIN
	IF jsonb_typeof(plan->'segments') IS DISTINCT FROM 'array' OR jsonb_typeof(plan->'prices') IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION 'invalid tou_tariff: a plan in jsonb has an array "segments" and an object "prices"'
			USING ERRCODE = 'invalid_text_representation',
			      HINT = 'Write it as to_jsonb(tou_tariff) does: {"segments": [{"start": "00:00", "end": "24:00", "class": "flat"}], "prices": {"flat": {"energy": 0.64, "service": 0.51}}}.';
	END IF;
	FOR seg IN SELECT * FROM jsonb_array_elements(plan->'segments') LOOP
		n := n + 1;
		IF jsonb_typeof(seg) IS DISTINCT FROM 'object'
		   OR coalesce(seg->>'start', '') !~ '^\d\d:\d\d$' OR coalesce(seg->>'end', '') !~ '^\d\d:\d\d$'
		   OR coalesce(seg->>'class', '') !~ '^[[:alnum:]]+$' THEN
			RAISE EXCEPTION 'invalid tou_tariff: segment % of the jsonb plan is not {"start": "HH:MM", "end": "HH:MM", "class": name}', n
				USING ERRCODE = 'invalid_text_representation', DETAIL = format('Segment %s is %s.', n, seg);
		END IF;
		segs := segs || format('%s-%s %s', seg->>'start', seg->>'end', seg->>'class');
	END LOOP;
	FOR pr IN SELECT * FROM jsonb_each(plan->'prices') LOOP
		IF pr.key !~ '^[[:alnum:]]+$' OR jsonb_typeof(pr.value) IS DISTINCT FROM 'object'
		   OR jsonb_typeof(pr.value->'energy') IS DISTINCT FROM 'number'
		   OR jsonb_typeof(pr.value->'service') IS DISTINCT FROM 'number' THEN
			RAISE EXCEPTION 'invalid tou_tariff: price "%" of the jsonb plan is not {"energy": number, "service": number}', pr.key
				USING ERRCODE = 'invalid_text_representation', DETAIL = format('It is %s.', pr.value);
		END IF;
		prices := prices || format('%s %s+%s', pr.key, pr.value->>'energy', pr.value->>'service');
	END LOOP;
	RETURN (array_to_string(segs, ', ') || ' | ' || array_to_string(prices, ', '))::evcharge.tou_tariff;
END $$;
COMMENT ON FUNCTION evcharge.tou_tariff(jsonb) IS
	'a plan from the jsonb form that to_jsonb(tou_tariff) produces; validated like text input';

-- The engines.
CREATE FUNCTION evcharge.split_energy(tariff evcharge.tou_tariff, ts timestamptz[], meter_wh bigint[],
	tz text DEFAULT 'Asia/Shanghai') RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'split_energy' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.split_energy(evcharge.tou_tariff, timestamptz[], bigint[], text) IS
	'Wh per class {sharp, peak, flat, valley} of a session from its meter samples: rises shared among segments in proportion to time, in the zone tz';

CREATE FUNCTION evcharge.split_energy_by_span(tariffs evcharge.tou_tariff[], span_starts timestamptz[],
	ts timestamptz[], meter_wh bigint[], tz text DEFAULT 'Asia/Shanghai') RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'split_energy_by_span' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.split_energy_by_span(evcharge.tou_tariff[], timestamptz[], timestamptz[], bigint[], text) IS
	'Wh per plan and class, [span][class], when plan k is in force from span_starts[k] to span_starts[k+1]';

CREATE TYPE evcharge.charge_amount AS (
	kwh numeric,
	energy_fee numeric,
	service_fee numeric,
	total numeric,
	class_kwh numeric[],
	class_energy_fee numeric[],
	class_service_fee numeric[]
);
COMMENT ON TYPE evcharge.charge_amount IS
	'What energy costs: total kWh, electricity fee, service fee and total (yuan, truncated to the fen), and per class {sharp, peak, flat, valley} the kWh and the exact fees';
COMMENT ON COLUMN evcharge.charge_amount.kwh IS 'energy, kWh';
COMMENT ON COLUMN evcharge.charge_amount.energy_fee IS 'electricity fee, yuan, truncated to the fen';
COMMENT ON COLUMN evcharge.charge_amount.service_fee IS 'service fee, yuan, truncated to the fen';
COMMENT ON COLUMN evcharge.charge_amount.total IS 'energy_fee + service_fee';
COMMENT ON COLUMN evcharge.charge_amount.class_kwh IS 'kWh per class {sharp, peak, flat, valley}';
COMMENT ON COLUMN evcharge.charge_amount.class_energy_fee IS 'exact electricity fee per class, before truncation';
COMMENT ON COLUMN evcharge.charge_amount.class_service_fee IS 'exact service fee per class, before truncation';

CREATE FUNCTION evcharge.price(tariff evcharge.tou_tariff, wh bigint[]) RETURNS evcharge.charge_amount
	AS 'MODULE_PATHNAME', 'price' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.price(evcharge.tou_tariff, bigint[]) IS
	'prices Wh per class under a plan: exact sums, each money figure truncated to the fen';
-- anomaly_set.sql: the bill anomaly codes and the set type that holds them
-- (C in src/anomaly_set.c; the codes themselves in src/anomaly_codes.c).
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

--------------------------------------------------------------------------
-- The type
--------------------------------------------------------------------------

CREATE TYPE evcharge.anomaly_set;

CREATE FUNCTION evcharge.anomaly_set_in(cstring) RETURNS evcharge.anomaly_set
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.anomaly_set_out(evcharge.anomaly_set) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.anomaly_set_recv(internal) RETURNS evcharge.anomaly_set
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.anomaly_set_send(evcharge.anomaly_set) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- A 64-bit mask, code n in bit n: 8 bytes passed by value, like int8.
CREATE TYPE evcharge.anomaly_set (
	INPUT = evcharge.anomaly_set_in,
	OUTPUT = evcharge.anomaly_set_out,
	RECEIVE = evcharge.anomaly_set_recv,
	SEND = evcharge.anomaly_set_send,
	INTERNALLENGTH = 8,
	PASSEDBYVALUE,
	ALIGNMENT = double,
	STORAGE = plain
);

COMMENT ON TYPE evcharge.anomaly_set IS
	'The set of anomaly codes a bill carries, written as ascending codes joined by + (9+10+11); names are accepted on input (bill_lost+energy_mismatch); the empty string is the empty set';
COMMENT ON FUNCTION evcharge.anomaly_set_in(cstring) IS 'anomaly_set text input: code numbers or names joined by +, in any order, spaces around items allowed';
COMMENT ON FUNCTION evcharge.anomaly_set_out(evcharge.anomaly_set) IS 'anomaly_set text output: ascending code numbers joined by +';
COMMENT ON FUNCTION evcharge.anomaly_set_recv(internal) IS 'anomaly_set binary input (version byte, mask), re-validated: no bit of an unknown code';
COMMENT ON FUNCTION evcharge.anomaly_set_send(evcharge.anomaly_set) IS 'anomaly_set binary output';

--------------------------------------------------------------------------
-- Comparison, hashing, sorting: the order of the mask as an unsigned number
--------------------------------------------------------------------------

CREATE FUNCTION evcharge.anomaly_set_cmp(evcharge.anomaly_set, evcharge.anomaly_set) RETURNS int4
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_eq(evcharge.anomaly_set, evcharge.anomaly_set) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_ne(evcharge.anomaly_set, evcharge.anomaly_set) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_lt(evcharge.anomaly_set, evcharge.anomaly_set) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_le(evcharge.anomaly_set, evcharge.anomaly_set) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_gt(evcharge.anomaly_set, evcharge.anomaly_set) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_ge(evcharge.anomaly_set, evcharge.anomaly_set) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_hash(evcharge.anomaly_set) RETURNS int4
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_hash_extended(evcharge.anomaly_set, int8) RETURNS int8
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_sortsupport(internal) RETURNS void
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION evcharge.anomaly_set_cmp(evcharge.anomaly_set, evcharge.anomaly_set) IS 'btree support: -1, 0 or 1 in the order of the masks as unsigned numbers';
COMMENT ON FUNCTION evcharge.anomaly_set_eq(evcharge.anomaly_set, evcharge.anomaly_set) IS 'implementation of = for anomaly_set';
COMMENT ON FUNCTION evcharge.anomaly_set_ne(evcharge.anomaly_set, evcharge.anomaly_set) IS 'implementation of <> for anomaly_set';
COMMENT ON FUNCTION evcharge.anomaly_set_lt(evcharge.anomaly_set, evcharge.anomaly_set) IS 'implementation of < for anomaly_set';
COMMENT ON FUNCTION evcharge.anomaly_set_le(evcharge.anomaly_set, evcharge.anomaly_set) IS 'implementation of <= for anomaly_set';
COMMENT ON FUNCTION evcharge.anomaly_set_gt(evcharge.anomaly_set, evcharge.anomaly_set) IS 'implementation of > for anomaly_set';
COMMENT ON FUNCTION evcharge.anomaly_set_ge(evcharge.anomaly_set, evcharge.anomaly_set) IS 'implementation of >= for anomaly_set';
COMMENT ON FUNCTION evcharge.anomaly_set_hash(evcharge.anomaly_set) IS 'hash support for anomaly_set';
COMMENT ON FUNCTION evcharge.anomaly_set_hash_extended(evcharge.anomaly_set, int8) IS 'seeded hash support for anomaly_set';
COMMENT ON FUNCTION evcharge.anomaly_set_sortsupport(internal) IS 'sort support for anomaly_set';

CREATE OPERATOR evcharge.= (
	LEFTARG = evcharge.anomaly_set, RIGHTARG = evcharge.anomaly_set,
	FUNCTION = evcharge.anomaly_set_eq,
	COMMUTATOR = OPERATOR(evcharge.=), NEGATOR = OPERATOR(evcharge.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR evcharge.<> (
	LEFTARG = evcharge.anomaly_set, RIGHTARG = evcharge.anomaly_set,
	FUNCTION = evcharge.anomaly_set_ne,
	COMMUTATOR = OPERATOR(evcharge.<>), NEGATOR = OPERATOR(evcharge.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR evcharge.< (
	LEFTARG = evcharge.anomaly_set, RIGHTARG = evcharge.anomaly_set,
	FUNCTION = evcharge.anomaly_set_lt,
	COMMUTATOR = OPERATOR(evcharge.>), NEGATOR = OPERATOR(evcharge.>=),
	RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR evcharge.<= (
	LEFTARG = evcharge.anomaly_set, RIGHTARG = evcharge.anomaly_set,
	FUNCTION = evcharge.anomaly_set_le,
	COMMUTATOR = OPERATOR(evcharge.>=), NEGATOR = OPERATOR(evcharge.>),
	RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR evcharge.> (
	LEFTARG = evcharge.anomaly_set, RIGHTARG = evcharge.anomaly_set,
	FUNCTION = evcharge.anomaly_set_gt,
	COMMUTATOR = OPERATOR(evcharge.<), NEGATOR = OPERATOR(evcharge.<=),
	RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
CREATE OPERATOR evcharge.>= (
	LEFTARG = evcharge.anomaly_set, RIGHTARG = evcharge.anomaly_set,
	FUNCTION = evcharge.anomaly_set_ge,
	COMMUTATOR = OPERATOR(evcharge.<=), NEGATOR = OPERATOR(evcharge.<),
	RESTRICT = scalargesel, JOIN = scalargejoinsel
);

COMMENT ON OPERATOR evcharge.= (evcharge.anomaly_set, evcharge.anomaly_set) IS 'the sets hold the same codes';
COMMENT ON OPERATOR evcharge.<> (evcharge.anomaly_set, evcharge.anomaly_set) IS 'the sets differ';
COMMENT ON OPERATOR evcharge.< (evcharge.anomaly_set, evcharge.anomaly_set) IS 'less than, in the order of the masks as unsigned numbers (not containment: see <@)';
COMMENT ON OPERATOR evcharge.<= (evcharge.anomaly_set, evcharge.anomaly_set) IS 'less than or equal, in the order of the masks as unsigned numbers (not containment: see <@)';
COMMENT ON OPERATOR evcharge.> (evcharge.anomaly_set, evcharge.anomaly_set) IS 'greater than, in the order of the masks as unsigned numbers (not containment: see @>)';
COMMENT ON OPERATOR evcharge.>= (evcharge.anomaly_set, evcharge.anomaly_set) IS 'greater than or equal, in the order of the masks as unsigned numbers (not containment: see @>)';

CREATE OPERATOR CLASS evcharge.anomaly_set_ops
	DEFAULT FOR TYPE evcharge.anomaly_set USING btree AS
		OPERATOR 1 evcharge.< ,
		OPERATOR 2 evcharge.<= ,
		OPERATOR 3 evcharge.= ,
		OPERATOR 4 evcharge.>= ,
		OPERATOR 5 evcharge.> ,
		FUNCTION 1 evcharge.anomaly_set_cmp(evcharge.anomaly_set, evcharge.anomaly_set),
		FUNCTION 2 evcharge.anomaly_set_sortsupport(internal);

CREATE OPERATOR CLASS evcharge.anomaly_set_hash_ops
	DEFAULT FOR TYPE evcharge.anomaly_set USING hash AS
		OPERATOR 1 evcharge.= ,
		FUNCTION 1 evcharge.anomaly_set_hash(evcharge.anomaly_set),
		FUNCTION 2 evcharge.anomaly_set_hash_extended(evcharge.anomaly_set, int8);

COMMENT ON OPERATOR CLASS evcharge.anomaly_set_ops USING btree IS 'btree operator class for anomaly_set: ORDER BY, merge joins, unique constraints; orders by the mask as an unsigned number';
COMMENT ON OPERATOR CLASS evcharge.anomaly_set_hash_ops USING hash IS 'hash operator class for anomaly_set: hash joins, GROUP BY, DISTINCT';
COMMENT ON OPERATOR FAMILY evcharge.anomaly_set_ops USING btree IS 'btree operator family of anomaly_set';
COMMENT ON OPERATOR FAMILY evcharge.anomaly_set_hash_ops USING hash IS 'hash operator family of anomaly_set';

--------------------------------------------------------------------------
-- Set operators
--------------------------------------------------------------------------

CREATE FUNCTION evcharge.anomaly_set_contains(evcharge.anomaly_set, evcharge.anomaly_set) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_contained(evcharge.anomaly_set, evcharge.anomaly_set) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_overlaps(evcharge.anomaly_set, evcharge.anomaly_set) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_union(evcharge.anomaly_set, evcharge.anomaly_set) RETURNS evcharge.anomaly_set
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_intersect(evcharge.anomaly_set, evcharge.anomaly_set) RETURNS evcharge.anomaly_set
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.anomaly_set_minus(evcharge.anomaly_set, evcharge.anomaly_set) RETURNS evcharge.anomaly_set
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;

COMMENT ON FUNCTION evcharge.anomaly_set_contains(evcharge.anomaly_set, evcharge.anomaly_set) IS 'implementation of @> for anomaly_set';
COMMENT ON FUNCTION evcharge.anomaly_set_contained(evcharge.anomaly_set, evcharge.anomaly_set) IS 'implementation of <@ for anomaly_set';
COMMENT ON FUNCTION evcharge.anomaly_set_overlaps(evcharge.anomaly_set, evcharge.anomaly_set) IS 'implementation of && for anomaly_set';
COMMENT ON FUNCTION evcharge.anomaly_set_union(evcharge.anomaly_set, evcharge.anomaly_set) IS 'implementation of | for anomaly_set; also the state and combine function of anomaly_union';
COMMENT ON FUNCTION evcharge.anomaly_set_intersect(evcharge.anomaly_set, evcharge.anomaly_set) IS 'implementation of & for anomaly_set';
COMMENT ON FUNCTION evcharge.anomaly_set_minus(evcharge.anomaly_set, evcharge.anomaly_set) IS 'implementation of - for anomaly_set';

-- matchingsel estimates from the column's statistics (most common sets and
-- histogram), which ANALYZE gathers through the btree operator class.
CREATE OPERATOR evcharge.@> (
	LEFTARG = evcharge.anomaly_set, RIGHTARG = evcharge.anomaly_set,
	FUNCTION = evcharge.anomaly_set_contains,
	COMMUTATOR = OPERATOR(evcharge.<@),
	RESTRICT = matchingsel, JOIN = matchingjoinsel
);
CREATE OPERATOR evcharge.<@ (
	LEFTARG = evcharge.anomaly_set, RIGHTARG = evcharge.anomaly_set,
	FUNCTION = evcharge.anomaly_set_contained,
	COMMUTATOR = OPERATOR(evcharge.@>),
	RESTRICT = matchingsel, JOIN = matchingjoinsel
);
CREATE OPERATOR evcharge.&& (
	LEFTARG = evcharge.anomaly_set, RIGHTARG = evcharge.anomaly_set,
	FUNCTION = evcharge.anomaly_set_overlaps,
	COMMUTATOR = OPERATOR(evcharge.&&),
	RESTRICT = matchingsel, JOIN = matchingjoinsel
);
CREATE OPERATOR evcharge.| (
	LEFTARG = evcharge.anomaly_set, RIGHTARG = evcharge.anomaly_set,
	FUNCTION = evcharge.anomaly_set_union,
	COMMUTATOR = OPERATOR(evcharge.|)
);
CREATE OPERATOR evcharge.& (
	LEFTARG = evcharge.anomaly_set, RIGHTARG = evcharge.anomaly_set,
	FUNCTION = evcharge.anomaly_set_intersect,
	COMMUTATOR = OPERATOR(evcharge.&)
);
CREATE OPERATOR evcharge.- (
	LEFTARG = evcharge.anomaly_set, RIGHTARG = evcharge.anomaly_set,
	FUNCTION = evcharge.anomaly_set_minus
);

COMMENT ON OPERATOR evcharge.@> (evcharge.anomaly_set, evcharge.anomaly_set) IS 'contains: every code on the right is in the left set';
COMMENT ON OPERATOR evcharge.<@ (evcharge.anomaly_set, evcharge.anomaly_set) IS 'is contained by: every code on the left is in the right set';
COMMENT ON OPERATOR evcharge.&& (evcharge.anomaly_set, evcharge.anomaly_set) IS 'overlaps: the sets share a code';
COMMENT ON OPERATOR evcharge.| (evcharge.anomaly_set, evcharge.anomaly_set) IS 'union: the codes in either set';
COMMENT ON OPERATOR evcharge.& (evcharge.anomaly_set, evcharge.anomaly_set) IS 'intersection: the codes in both sets';
COMMENT ON OPERATOR evcharge.- (evcharge.anomaly_set, evcharge.anomaly_set) IS 'difference: the codes of the left set that are not in the right';

--------------------------------------------------------------------------
-- GIN: finding the sets that carry given codes, one key (int4) per code
--------------------------------------------------------------------------

CREATE FUNCTION evcharge.anomaly_set_gin_extract_value(evcharge.anomaly_set, internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.anomaly_set_gin_extract_query(evcharge.anomaly_set, internal, int2, internal, internal, internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.anomaly_set_gin_consistent(internal, int2, evcharge.anomaly_set, int4, internal, internal, internal, internal) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.anomaly_set_gin_triconsistent(internal, int2, evcharge.anomaly_set, int4, internal, internal, internal) RETURNS "char"
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION evcharge.anomaly_set_gin_extract_value(evcharge.anomaly_set, internal, internal) IS 'GIN support: the codes of an indexed set, as int4 keys';
COMMENT ON FUNCTION evcharge.anomaly_set_gin_extract_query(evcharge.anomaly_set, internal, int2, internal, internal, internal, internal) IS 'GIN support: the codes of a query set, and how to search when it is empty';
COMMENT ON FUNCTION evcharge.anomaly_set_gin_consistent(internal, int2, evcharge.anomaly_set, int4, internal, internal, internal, internal) IS 'GIN support: whether an item matches, exact for && and @>, rechecked for =';
COMMENT ON FUNCTION evcharge.anomaly_set_gin_triconsistent(internal, int2, evcharge.anomaly_set, int4, internal, internal, internal) IS 'GIN support: three-valued form of anomaly_set_gin_consistent';

CREATE OPERATOR CLASS evcharge.anomaly_set_ops
	DEFAULT FOR TYPE evcharge.anomaly_set USING gin AS
		OPERATOR 1 evcharge.&& ,
		OPERATOR 2 evcharge.@> ,
		OPERATOR 4 evcharge.= ,
		FUNCTION 1 pg_catalog.btint4cmp(int4, int4),
		FUNCTION 2 evcharge.anomaly_set_gin_extract_value(evcharge.anomaly_set, internal, internal),
		FUNCTION 3 evcharge.anomaly_set_gin_extract_query(evcharge.anomaly_set, internal, int2, internal, internal, internal, internal),
		FUNCTION 4 evcharge.anomaly_set_gin_consistent(internal, int2, evcharge.anomaly_set, int4, internal, internal, internal, internal),
		FUNCTION 6 evcharge.anomaly_set_gin_triconsistent(internal, int2, evcharge.anomaly_set, int4, internal, internal, internal),
		STORAGE int4;

COMMENT ON OPERATOR CLASS evcharge.anomaly_set_ops USING gin IS 'GIN operator class for anomaly_set: finds the sets that carry given codes (@>), any of them (&&), or exactly them (=)';
COMMENT ON OPERATOR FAMILY evcharge.anomaly_set_ops USING gin IS 'GIN operator family of anomaly_set';

--------------------------------------------------------------------------
-- Functions
--------------------------------------------------------------------------

CREATE FUNCTION evcharge.anomaly_set(int[]) RETURNS evcharge.anomaly_set
	AS 'MODULE_PATHNAME', 'anomaly_set_from_codes' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.anomaly_codes(evcharge.anomaly_set) RETURNS int[]
	AS 'MODULE_PATHNAME', 'anomaly_set_codes' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.anomaly_names(evcharge.anomaly_set) RETURNS text[]
	AS 'MODULE_PATHNAME', 'anomaly_set_names' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.anomaly_has(evcharge.anomaly_set, int) RETURNS bool
	AS 'MODULE_PATHNAME', 'anomaly_set_has' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.anomaly_blocking(evcharge.anomaly_set) RETURNS bool
	AS 'MODULE_PATHNAME', 'anomaly_set_blocking' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.anomaly_catalogue()
	RETURNS TABLE (code int, name text, description text, blocks_charge bool)
	AS 'MODULE_PATHNAME', 'anomaly_catalogue' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 16;

COMMENT ON FUNCTION evcharge.anomaly_set(int[]) IS 'the set of the codes in the array (any order, duplicates allowed); NULL elements and unknown codes are errors';
COMMENT ON FUNCTION evcharge.anomaly_codes(evcharge.anomaly_set) IS 'the codes of the set, ascending; {} for the empty set';
COMMENT ON FUNCTION evcharge.anomaly_names(evcharge.anomaly_set) IS 'the names of the codes of the set, in ascending order of code; {} for the empty set';
COMMENT ON FUNCTION evcharge.anomaly_has(evcharge.anomaly_set, int) IS 'true when the set carries the code; an unknown code is an error';
COMMENT ON FUNCTION evcharge.anomaly_blocking(evcharge.anomaly_set) IS 'true when a code of the set stops the bill being charged until it is repaired (every code but 10)';
COMMENT ON FUNCTION evcharge.anomaly_catalogue() IS 'every anomaly code as compiled into the module: number, name, description, whether it blocks charging; evcharge.anomaly_code holds the same rows';

CREATE AGGREGATE evcharge.anomaly_union(evcharge.anomaly_set) (
	SFUNC = evcharge.anomaly_set_union,
	STYPE = evcharge.anomaly_set,
	COMBINEFUNC = evcharge.anomaly_set_union,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE evcharge.anomaly_union(evcharge.anomaly_set) IS
	'union of the sets, NULLs skipped; NULL over no rows (or only NULLs), like bit_or';

--------------------------------------------------------------------------
-- Casts
--------------------------------------------------------------------------

CREATE CAST (evcharge.anomaly_set AS text) WITH INOUT AS ASSIGNMENT;
CREATE CAST (text AS evcharge.anomaly_set) WITH INOUT;
CREATE CAST (int[] AS evcharge.anomaly_set)
	WITH FUNCTION evcharge.anomaly_set(int[]);
CREATE CAST (evcharge.anomaly_set AS int[])
	WITH FUNCTION evcharge.anomaly_codes(evcharge.anomaly_set);

COMMENT ON CAST (evcharge.anomaly_set AS text) IS 'ascending codes joined by +';
COMMENT ON CAST (text AS evcharge.anomaly_set) IS 'parses a set: code numbers or names joined by +';
COMMENT ON CAST (int[] AS evcharge.anomaly_set) IS 'the set of the codes in the array, as anomaly_set(int[])';
COMMENT ON CAST (evcharge.anomaly_set AS int[]) IS 'the codes, ascending, as anomaly_codes(anomaly_set)';

--------------------------------------------------------------------------
-- The catalogue of codes
--------------------------------------------------------------------------

-- The same rows as anomaly_catalogue(), written out so that a reader of
-- this file sees the codes; the regression test anomaly_set checks that the
-- two agree.  Numbers are the ones operators use and never change.
CREATE TABLE evcharge.anomaly_code (
	code int PRIMARY KEY CHECK (code BETWEEN 1 AND 63),
	name text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_]*$'),
	description text NOT NULL,
	blocks_charge boolean NOT NULL
);
COMMENT ON TABLE evcharge.anomaly_code IS
	'The bill anomaly codes, for reports and joins: the rows of evcharge.anomaly_catalogue(); read-only, filled by the extension';
COMMENT ON COLUMN evcharge.anomaly_code.code IS 'the number operators use (9 in "9+10+11"); bit code of an anomaly_set';
COMMENT ON COLUMN evcharge.anomaly_code.name IS 'snake_case name, accepted by anomaly_set input';
COMMENT ON COLUMN evcharge.anomaly_code.description IS 'what the anomaly means, in one sentence';
COMMENT ON COLUMN evcharge.anomaly_code.blocks_charge IS 'true: a bill carrying the code is not charged until repaired';

INSERT INTO evcharge.anomaly_code (code, name, description, blocks_charge) VALUES
	(1, 'bill_lost', 'The pile never uploaded its final charge record for the session.', true),
	(2, 'bill_lost_offline', 'The final charge record was lost because the pile was offline when the session ended.', true),
	(3, 'time_anomaly', 'The record''s times are impossible, such as a date in 1999 or an end before the start.', true),
	(5, 'duration_anomaly', 'The charging duration is implausible, such as longer than the gun was plugged in or too short for the energy delivered.', true),
	(8, 'energy_mismatch', 'The energy on the pile''s record differs from the energy the platform measured from heartbeats.', true),
	(9, 'duration_mismatch', 'The charging duration on the pile''s record differs from the platform''s.', true),
	(10, 'occupancy_mismatch', 'The occupancy duration on the pile''s record differs from the platform''s; on its own it does not change the amount.', false),
	(11, 'energy_lost', 'Energy delivered during the session is missing from the record.', true),
	(12, 'no_tariff', 'No tariff was in force at the station for the session, so it cannot be priced.', true),
	(13, 'nonpositive_amount', 'The amount is zero or negative although energy was delivered.', true),
	(14, 'channel_not_allowed', 'The session was started through a channel the partner''s contract does not allow, such as an offline password on a QR-only contract.', true),
	(15, 'no_energy_flowed', 'The session was billed as charging but the heartbeats show no energy flowing.', true),
	(16, 'defective_firmware', 'The pile runs a firmware version on the operator''s list of defective versions.', true);
-- price_rules.sql: where prices live: operators, stations, the plan in force
-- per station and current type, customer groups and their prices,
-- promotions, occupancy fees and coupons.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- Time zones: evcharge stores and follows only zones of the time zone
-- database that say where a station is (Asia/Shanghai), never a POSIX
-- string such as 'UTC+8' or '+08:00', which PostgreSQL reads with the sign
-- inverted (UTC-8).
CREATE FUNCTION evcharge.is_time_zone(name text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'evcharge_is_time_zone' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.is_time_zone(text) IS
	'true for a zone evcharge accepts: a name of pg_timezone_names that says where a place is (Asia/Shanghai); false for POSIX strings (UTC+8, +08:00), abbreviations (CST, CET), Etc/GMT-8 and localtime; the test split_energy makes';

CREATE FUNCTION evcharge.check_time_zone(name text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'evcharge_check_time_zone' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.check_time_zone(text) IS
	'true for a zone is_time_zone accepts, else error 22023 saying why (a POSIX offset''s inverted sign, an abbreviation) with a hint naming Asia/Shanghai; the check of the domain time_zone';

CREATE DOMAIN evcharge.time_zone AS text
	CONSTRAINT time_zone_check CHECK (evcharge.check_time_zone(VALUE));
COMMENT ON DOMAIN evcharge.time_zone IS
	'a time zone evcharge stores: a zone name of pg_timezone_names such as Asia/Shanghai (is_time_zone); anything else is refused with 22023';

CREATE TABLE evcharge.operator (
	operator_id bigint PRIMARY KEY,
	name text NOT NULL CHECK (name <> ''),
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.operator IS 'A charging operator (运营商): owns stations, sets prices, collects revenue';
COMMENT ON COLUMN evcharge.operator.operator_id IS 'operator number; the 4-digit operator field of its pile ids';
COMMENT ON COLUMN evcharge.operator.name IS 'operator name';
COMMENT ON COLUMN evcharge.operator.created_at IS 'when the operator was registered';

CREATE TABLE evcharge.station (
	station_id bigint PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	name text NOT NULL CHECK (name <> ''),
	tz evcharge.time_zone NOT NULL DEFAULT 'Asia/Shanghai',
	region_code int CHECK (region_code BETWEEN 110000 AND 829999),
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX station_operator_idx ON evcharge.station (operator_id);
COMMENT ON INDEX evcharge.station_operator_idx IS 'an operator''s stations';
COMMENT ON TABLE evcharge.station IS 'A charging station (电站) of an operator';
COMMENT ON COLUMN evcharge.station.station_id IS 'station number';
COMMENT ON COLUMN evcharge.station.operator_id IS 'the operator that owns the station';
COMMENT ON COLUMN evcharge.station.name IS 'station name';
COMMENT ON COLUMN evcharge.station.tz IS 'time zone whose wall clock the tariff segments follow';
COMMENT ON COLUMN evcharge.station.region_code IS 'GB/T 2260 division, optional';
COMMENT ON COLUMN evcharge.station.created_at IS 'when the station was registered';

CREATE TABLE evcharge.station_tariff (
	station_tariff_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	station_id bigint NOT NULL REFERENCES evcharge.station,
	current_type text NOT NULL CHECK (current_type IN ('AC', 'DC')),
	tariff evcharge.tou_tariff NOT NULL,
	valid tstzrange NOT NULL CHECK (NOT isempty(valid) AND NOT lower_inf(valid)),
	name text,
	created_at timestamptz NOT NULL DEFAULT now(),
	created_by text NOT NULL DEFAULT current_user,
	CONSTRAINT station_tariff_no_overlap
		EXCLUDE USING gist (station_id WITH =, current_type WITH =, valid WITH &&)
);
COMMENT ON TABLE evcharge.station_tariff IS
	'The plan in force at a station for AC or DC piles over a validity range; ranges of one station and current type never overlap';
COMMENT ON COLUMN evcharge.station_tariff.station_tariff_id IS 'plan row id';
COMMENT ON COLUMN evcharge.station_tariff.station_id IS 'the station';
COMMENT ON COLUMN evcharge.station_tariff.current_type IS 'AC or DC: the piles of the station it prices';
COMMENT ON COLUMN evcharge.station_tariff.tariff IS 'the daily time-of-use plan';
COMMENT ON COLUMN evcharge.station_tariff.valid IS 'when the plan is in force, [from, until); until may be open';
COMMENT ON COLUMN evcharge.station_tariff.name IS 'a name operators recognise, e.g. "2026 winter"';
COMMENT ON COLUMN evcharge.station_tariff.created_at IS 'when the row was written';
COMMENT ON COLUMN evcharge.station_tariff.created_by IS 'who wrote it';

CREATE TABLE evcharge.customer_group (
	group_id bigint PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	name text NOT NULL CHECK (name <> ''),
	service_fee numeric(10, 4) CHECK (service_fee >= 0 AND service_fee <> 'NaN'),
	service_factor numeric(6, 4) CHECK (service_factor >= 0 AND service_factor <> 'NaN'),
	CHECK (num_nonnulls(service_fee, service_factor) <= 1)
);
COMMENT ON TABLE evcharge.customer_group IS
	'A customer group (人群, e.g. a department, a fleet, a VIP class) with an optional group price for the service fee';
COMMENT ON COLUMN evcharge.customer_group.group_id IS 'group number';
COMMENT ON COLUMN evcharge.customer_group.operator_id IS 'the operator whose group it is';
COMMENT ON COLUMN evcharge.customer_group.name IS 'group name';
COMMENT ON COLUMN evcharge.customer_group.service_fee IS 'service fee in yuan per kWh replacing the plan''s, at bound stations (0 for a maintenance card)';
COMMENT ON COLUMN evcharge.customer_group.service_factor IS 'factor applied to the plan''s service fee at bound stations (0.8 = 20 % off); at most one of service_fee and service_factor';

CREATE TABLE evcharge.group_station (
	group_id bigint NOT NULL REFERENCES evcharge.customer_group ON DELETE CASCADE,
	station_id bigint NOT NULL REFERENCES evcharge.station ON DELETE CASCADE,
	PRIMARY KEY (group_id, station_id)
);
CREATE INDEX group_station_station_idx ON evcharge.group_station (station_id);
COMMENT ON INDEX evcharge.group_station_station_idx IS 'the customer groups bound to a station';
COMMENT ON TABLE evcharge.group_station IS 'The stations a group is bound to: its group price applies there only';
COMMENT ON COLUMN evcharge.group_station.group_id IS 'the group';
COMMENT ON COLUMN evcharge.group_station.station_id IS 'a station where the group price applies';

CREATE TABLE evcharge.promotion (
	promotion_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	name text NOT NULL CHECK (name <> ''),
	valid tstzrange NOT NULL CHECK (NOT isempty(valid)),
	service_fee numeric(10, 4) CHECK (service_fee >= 0 AND service_fee <> 'NaN'),
	service_factor numeric(6, 4) CHECK (service_factor >= 0 AND service_factor <= 1),
	CHECK (num_nonnulls(service_fee, service_factor) = 1)
);
COMMENT ON TABLE evcharge.promotion IS
	'A promotion on the service fee over a validity range (free until 11-11 00:00, 50 % in the opening week); it begins and ends by itself: sessions are priced by the promotions valid during each part of them';
COMMENT ON COLUMN evcharge.promotion.promotion_id IS 'promotion id';
COMMENT ON COLUMN evcharge.promotion.operator_id IS 'the operator running it';
COMMENT ON COLUMN evcharge.promotion.name IS 'name shown on the bill';
COMMENT ON COLUMN evcharge.promotion.valid IS 'when it applies, [from, until)';
COMMENT ON COLUMN evcharge.promotion.service_fee IS 'service fee in yuan per kWh during the promotion (0 = free)';
COMMENT ON COLUMN evcharge.promotion.service_factor IS 'factor on the service fee otherwise due, 0 to 1 (0.5 = half price); exactly one of service_fee and service_factor';

CREATE TABLE evcharge.promotion_station (
	promotion_id bigint NOT NULL REFERENCES evcharge.promotion ON DELETE CASCADE,
	station_id bigint NOT NULL REFERENCES evcharge.station ON DELETE CASCADE,
	PRIMARY KEY (promotion_id, station_id)
);
CREATE INDEX promotion_station_station_idx ON evcharge.promotion_station (station_id);
COMMENT ON INDEX evcharge.promotion_station_station_idx IS 'the promotions of a station';
COMMENT ON TABLE evcharge.promotion_station IS 'The stations a promotion applies at';
COMMENT ON COLUMN evcharge.promotion_station.promotion_id IS 'the promotion';
COMMENT ON COLUMN evcharge.promotion_station.station_id IS 'a station where it applies';

CREATE TABLE evcharge.promotion_group (
	promotion_id bigint NOT NULL REFERENCES evcharge.promotion ON DELETE CASCADE,
	group_id bigint NOT NULL REFERENCES evcharge.customer_group ON DELETE CASCADE,
	PRIMARY KEY (promotion_id, group_id)
);
COMMENT ON TABLE evcharge.promotion_group IS
	'The groups a promotion is limited to; a promotion without rows here applies to everyone';
COMMENT ON COLUMN evcharge.promotion_group.promotion_id IS 'the promotion';
COMMENT ON COLUMN evcharge.promotion_group.group_id IS 'a group it applies to';

CREATE TABLE evcharge.occupancy_fee (
	station_id bigint PRIMARY KEY REFERENCES evcharge.station ON DELETE CASCADE,
	grace_minutes int NOT NULL DEFAULT 15 CHECK (grace_minutes >= 0),
	fee_per_minute numeric(10, 4) NOT NULL CHECK (fee_per_minute >= 0 AND fee_per_minute <> 'NaN'),
	cap numeric(12, 2) CHECK (cap >= 0 AND cap <> 'NaN')
);
COMMENT ON TABLE evcharge.occupancy_fee IS
	'Occupancy fee (占桩费) of a station: per whole minute the gun stays plugged after charging ended, after a grace period, up to a cap';
COMMENT ON COLUMN evcharge.occupancy_fee.station_id IS 'the station';
COMMENT ON COLUMN evcharge.occupancy_fee.grace_minutes IS 'free minutes after charging ends';
COMMENT ON COLUMN evcharge.occupancy_fee.fee_per_minute IS 'yuan per whole minute after the grace period';
COMMENT ON COLUMN evcharge.occupancy_fee.cap IS 'most one session pays, in yuan; NULL for no cap';

CREATE TABLE evcharge.occupancy_exemption (
	station_id bigint NOT NULL REFERENCES evcharge.occupancy_fee ON DELETE CASCADE,
	group_id bigint NOT NULL REFERENCES evcharge.customer_group ON DELETE CASCADE,
	PRIMARY KEY (station_id, group_id)
);
COMMENT ON TABLE evcharge.occupancy_exemption IS 'Groups that pay no occupancy fee at a station (buses at their depot, maintenance crews)';
COMMENT ON COLUMN evcharge.occupancy_exemption.station_id IS 'the station';
COMMENT ON COLUMN evcharge.occupancy_exemption.group_id IS 'the exempt group';

CREATE TABLE evcharge.coupon (
	coupon_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	member_id bigint,
	amount numeric(10, 2) NOT NULL CHECK (amount > 0 AND amount <> 'NaN'),
	min_kwh numeric(10, 3) NOT NULL DEFAULT 0 CHECK (min_kwh >= 0 AND min_kwh <> 'NaN'),
	valid tstzrange NOT NULL CHECK (NOT isempty(valid)),
	used_order_no text UNIQUE,
	used_at timestamptz,
	CHECK ((used_order_no IS NULL) = (used_at IS NULL))
);
CREATE INDEX coupon_member_idx ON evcharge.coupon (member_id) WHERE used_order_no IS NULL;
COMMENT ON INDEX evcharge.coupon_member_idx IS 'a member''s unused coupons';
COMMENT ON TABLE evcharge.coupon IS
	'A coupon: a fixed amount off the service fee only, for a session of at least min_kwh, used once';
COMMENT ON COLUMN evcharge.coupon.coupon_id IS 'coupon id';
COMMENT ON COLUMN evcharge.coupon.operator_id IS 'the operator whose stations accept it';
COMMENT ON COLUMN evcharge.coupon.member_id IS 'the member who holds it';
COMMENT ON COLUMN evcharge.coupon.amount IS 'yuan off the service fee (never more than the service fee)';
COMMENT ON COLUMN evcharge.coupon.min_kwh IS 'smallest session energy it applies to';
COMMENT ON COLUMN evcharge.coupon.valid IS 'when a session may start to use it';
COMMENT ON COLUMN evcharge.coupon.used_order_no IS 'the order that used it; set once';
COMMENT ON COLUMN evcharge.coupon.used_at IS 'when it was used';

-- A used coupon stays used by the order that used it.
CREATE FUNCTION evcharge.coupon_single_use() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		IF OLD.used_order_no IS NOT NULL THEN
			RAISE EXCEPTION 'coupon % was used by order % and is kept', OLD.coupon_id, OLD.used_order_no
				USING ERRCODE = 'check_violation', HINT = 'A used coupon is part of a bill''s record.';
		END IF;
		RETURN OLD;
	END IF;
	IF OLD.used_order_no IS NOT NULL AND (NEW.used_order_no IS DISTINCT FROM OLD.used_order_no
	                                     OR NEW.used_at IS DISTINCT FROM OLD.used_at
	                                     OR NEW.amount IS DISTINCT FROM OLD.amount) THEN
		RAISE EXCEPTION 'coupon % was already used by order %', OLD.coupon_id, OLD.used_order_no
			USING ERRCODE = 'check_violation',
			      DETAIL = format('It was used at %s; a coupon is used once.', OLD.used_at),
			      HINT = 'Give the member a new coupon instead.';
	END IF;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.coupon_single_use() IS 'trigger: a used coupon cannot be used again, released, changed or deleted';
CREATE TRIGGER coupon_single_use BEFORE UPDATE OR DELETE ON evcharge.coupon
	FOR EACH ROW EXECUTE FUNCTION evcharge.coupon_single_use();
COMMENT ON TRIGGER coupon_single_use ON evcharge.coupon IS 'a used coupon cannot be changed or deleted';

SELECT pg_catalog.pg_extension_config_dump('evcharge.operator', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.station', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.station_tariff', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.customer_group', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.group_station', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.promotion', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.promotion_station', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.promotion_group', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.occupancy_fee', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.occupancy_exemption', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.coupon', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.station_tariff_station_tariff_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.promotion_promotion_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.coupon_coupon_id_seq', '');
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
-- anomaly.sql: each operator's thresholds for bill anomalies, and what an
-- anomaly finds out about a bill (the codes themselves are the type
-- anomaly_set, anomaly_set.sql).  Bills are made in bill.sql, repaired in
-- repair.sql.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TABLE evcharge.anomaly_policy (
	operator_id bigint PRIMARY KEY REFERENCES evcharge.operator ON DELETE CASCADE,
	energy_tolerance_wh bigint NOT NULL DEFAULT 100 CHECK (energy_tolerance_wh >= 0),
	energy_tolerance_pct numeric(5, 2) NOT NULL DEFAULT 2 CHECK (energy_tolerance_pct BETWEEN 0 AND 100),
	duration_tolerance interval NOT NULL DEFAULT '5 min' CHECK (duration_tolerance >= '0'),
	occupancy_tolerance interval NOT NULL DEFAULT '5 min' CHECK (occupancy_tolerance >= '0'),
	record_wait interval NOT NULL DEFAULT '2 hours' CHECK (record_wait > '0'),
	plausible_from timestamptz NOT NULL DEFAULT '2015-01-01 00:00+08',
	clock_skew interval NOT NULL DEFAULT '1 hour' CHECK (clock_skew > '0'),
	max_session interval NOT NULL DEFAULT '24 hours' CHECK (max_session > '0'),
	defective_firmware text[] NOT NULL DEFAULT '{}',
	notify_adjustment boolean NOT NULL DEFAULT false,
	updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.anomaly_policy IS
	'Each operator''s thresholds for bill anomalies and whether drivers are told of adjusted amounts; a row with the defaults is made for every new operator';
COMMENT ON COLUMN evcharge.anomaly_policy.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.anomaly_policy.energy_tolerance_wh IS
	'pile and platform energy may differ by this many Wh, or by energy_tolerance_pct, whichever is larger, before anomaly 8; meter jumps above it are anomaly 11; billed energy above it with no measured rise is anomaly 15';
COMMENT ON COLUMN evcharge.anomaly_policy.energy_tolerance_pct IS 'the same tolerance as a percentage of the larger figure';
COMMENT ON COLUMN evcharge.anomaly_policy.duration_tolerance IS 'charging durations of pile and platform may differ by this much before anomaly 9';
COMMENT ON COLUMN evcharge.anomaly_policy.occupancy_tolerance IS 'the pile''s end of charging may differ from the platform''s by this much before anomaly 10 (the occupancy fee counts from the platform''s)';
COMMENT ON COLUMN evcharge.anomaly_policy.record_wait IS 'how long after a session ends detect_lost_bills() waits for the pile record before billing from heartbeats with anomaly 1 or 2';
COMMENT ON COLUMN evcharge.anomaly_policy.plausible_from IS 'a pile record starting before this is anomaly 3 (a pile clock not set)';
COMMENT ON COLUMN evcharge.anomaly_policy.clock_skew IS 'a pile record whose start differs from the platform''s by more, or that ends more than this after it was received, is anomaly 3';
COMMENT ON COLUMN evcharge.anomaly_policy.max_session IS 'charging longer than this is anomaly 5';
COMMENT ON COLUMN evcharge.anomaly_policy.defective_firmware IS 'LIKE patterns of firmware versions the operator knows to be defective (e.g. {1.%}); bills of such piles get anomaly 16';
COMMENT ON COLUMN evcharge.anomaly_policy.notify_adjustment IS 'whether a repair that changes the amount writes a customer_notice (and NOTIFY evcharge_notice); off by default';
COMMENT ON COLUMN evcharge.anomaly_policy.updated_at IS 'last change';

CREATE FUNCTION evcharge.operator_policy_default() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	INSERT INTO evcharge.anomaly_policy (operator_id) SELECT n.operator_id FROM new_rows n
	ON CONFLICT (operator_id) DO NOTHING;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.operator_policy_default() IS
	'trigger: every new operator gets an anomaly_policy row with the defaults';
CREATE TRIGGER operator_policy_default AFTER INSERT ON evcharge.operator
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION evcharge.operator_policy_default();
COMMENT ON TRIGGER operator_policy_default ON evcharge.operator IS 'every new operator gets its anomaly thresholds with the defaults';

-- An operator's policy row is made with the operator (above), so a policy
-- row inserted for it afterwards would be a duplicate.  pg_restore, and a
-- plain dump through psql, do exactly that: the COPY of operator makes the
-- default rows, then the COPY of the policy table brings the rows that were
-- dumped.  So an inserted row replaces the operator's row when that row is
-- still the one made with the operator, untouched since (the same
-- transaction wrote both: equal xmin); a row someone changed is never
-- replaced, and inserting over it is the duplicate key it always was.
-- Shared by anomaly_policy and finance_policy (money.sql).
CREATE FUNCTION evcharge.policy_replaces_default() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	EXECUTE format('DELETE FROM %I.%I p USING evcharge.operator o
	                WHERE p.operator_id = $1 AND o.operator_id = p.operator_id AND p.xmin = o.xmin',
	               TG_TABLE_SCHEMA, TG_TABLE_NAME)
		USING NEW.operator_id;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.policy_replaces_default() IS
	'trigger on anomaly_policy and finance_policy: a row inserted for an operator replaces the default row made with the operator if nobody changed it since (a restore brings the dumped rows after the operators)';
CREATE TRIGGER anomaly_policy_replaces_default BEFORE INSERT ON evcharge.anomaly_policy
	FOR EACH ROW EXECUTE FUNCTION evcharge.policy_replaces_default();
COMMENT ON TRIGGER anomaly_policy_replaces_default ON evcharge.anomaly_policy IS
	'an inserted row replaces the operator''s default row if that is untouched: pg_restore loads the dumped policies after the operators made theirs';

-- The policy in force at a station.
CREATE FUNCTION evcharge.station_policy(p_station_id bigint) RETURNS evcharge.anomaly_policy
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT p FROM evcharge.station s JOIN evcharge.anomaly_policy p ON p.operator_id = s.operator_id
	WHERE s.station_id = p_station_id;
END;
COMMENT ON FUNCTION evcharge.station_policy(bigint) IS 'the anomaly policy of the station''s operator';

SELECT pg_catalog.pg_extension_config_dump('evcharge.anomaly_policy', '');
-- quote.sql: pricing a charge with everything applied: the plans in force
-- across its span, group prices, promotions, occupancy fee and coupons.
-- price_session() prices meter samples (the pipeline passes heartbeats);
-- quote() prices a span and an energy total as a linear session.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TYPE evcharge.charge_quote AS (
	kwh numeric,
	energy_fee numeric,
	service_fee numeric,
	occupancy_fee numeric,
	discount numeric,
	total numeric,
	class_kwh numeric[],
	class_energy_fee numeric[],
	class_service_fee numeric[],
	applied text[]
);
COMMENT ON TYPE evcharge.charge_quote IS
	'A priced charge: kWh; electricity, service and occupancy fees, coupon discount and total (yuan, each truncated to the fen; total = energy + service + occupancy - discount); per class {sharp, peak, flat, valley} kWh and exact fees; and what applied (plans, group, promotions, occupancy, coupon)';
COMMENT ON COLUMN evcharge.charge_quote.kwh IS 'energy, kWh';
COMMENT ON COLUMN evcharge.charge_quote.energy_fee IS 'electricity fee, yuan, truncated to the fen';
COMMENT ON COLUMN evcharge.charge_quote.service_fee IS 'service fee after group price and promotions, yuan, truncated to the fen';
COMMENT ON COLUMN evcharge.charge_quote.occupancy_fee IS 'occupancy fee, yuan';
COMMENT ON COLUMN evcharge.charge_quote.discount IS 'the coupon''s discount on the service fee, yuan';
COMMENT ON COLUMN evcharge.charge_quote.total IS 'energy_fee + service_fee + occupancy_fee - discount';
COMMENT ON COLUMN evcharge.charge_quote.class_kwh IS 'kWh per class {sharp, peak, flat, valley}';
COMMENT ON COLUMN evcharge.charge_quote.class_energy_fee IS 'exact electricity fee per class, before truncation';
COMMENT ON COLUMN evcharge.charge_quote.class_service_fee IS 'exact service fee per class, before truncation';
COMMENT ON COLUMN evcharge.charge_quote.applied IS 'what applied, in words: plans, group, promotions, occupancy, coupon';

-- The most energy a gun of this rated power can plausibly deliver between
-- two instants: rated power x time, x 1.2 + 10 Wh for meters and clocks
-- (the margin the session machine, session_samples() and the bill's check
-- of the pile's figure allow).  Exact: numeric seconds, no interval.
CREATE FUNCTION evcharge.gun_energy_limit(rated_power_w int, started_at timestamptz, ended_at timestamptz)
RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN rated_power_w::numeric * greatest(extract(epoch FROM ended_at) - extract(epoch FROM started_at), 0) / 3600 * 1.2 + 10;
COMMENT ON FUNCTION evcharge.gun_energy_limit(int, timestamptz, timestamptz) IS
	'the most Wh a gun of this rated power (W) can plausibly deliver from started_at to ended_at: rated power x hours x 1.2 + 10 Wh; energy given by hand beyond it (a repair, a quote) is refused';

-- The service fee per kWh due for one class at one moment: the plan's,
-- replaced or scaled by the group price where the group is bound to the
-- station, then by the cheapest promotion valid then for the station (and
-- for the group, when the promotion is limited to groups).
CREATE FUNCTION evcharge.service_rate(p_station_id bigint, p_group_id bigint, p_at timestamptz,
	p_base numeric, OUT rate numeric, OUT applied text[])
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	g record;
	p record;
	best numeric;
	best_name text;
BEGIN
	rate := p_base;
	applied := '{}';
	IF p_group_id IS NOT NULL THEN
		SELECT cg.name, cg.service_fee, cg.service_factor INTO g
		FROM evcharge.customer_group cg
		JOIN evcharge.group_station gs ON gs.group_id = cg.group_id AND gs.station_id = p_station_id
		WHERE cg.group_id = p_group_id;
		IF FOUND AND (g.service_fee IS NOT NULL OR g.service_factor IS NOT NULL) THEN
			rate := coalesce(g.service_fee, rate * g.service_factor);
			applied := applied || ('group: ' || g.name);
		END IF;
	END IF;
	best := rate;
	FOR p IN
		SELECT pr.name, pr.service_fee, pr.service_factor
		FROM evcharge.promotion pr
		JOIN evcharge.promotion_station ps ON ps.promotion_id = pr.promotion_id AND ps.station_id = p_station_id
		WHERE pr.valid @> p_at
		  AND (NOT EXISTS (SELECT 1 FROM evcharge.promotion_group pg WHERE pg.promotion_id = pr.promotion_id)
		       OR EXISTS (SELECT 1 FROM evcharge.promotion_group pg
		                  WHERE pg.promotion_id = pr.promotion_id AND pg.group_id = p_group_id))
		ORDER BY pr.promotion_id
	LOOP
		IF coalesce(p.service_fee, rate * p.service_factor) < best THEN
			best := coalesce(p.service_fee, rate * p.service_factor);
			best_name := p.name;
		END IF;
	END LOOP;
	IF best_name IS NOT NULL THEN
		rate := best;
		applied := applied || ('promotion: ' || best_name);
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.service_rate(bigint, bigint, timestamptz, numeric) IS
	'service fee per kWh at a station for a group at a moment, from the plan''s: group price (bound stations only), then the cheapest valid promotion';

CREATE FUNCTION evcharge.price_session(p_station_id bigint, p_current_type text, p_group_id bigint,
	p_ts timestamptz[], p_meter_wh bigint[])
RETURNS evcharge.charge_quote
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	st record;
	t_from timestamptz;
	t_to timestamptz;
	cuts timestamptz[];
	plans evcharge.tou_tariff[] := '{}';
	plan_names text[] := '{}';
	starts timestamptz[] := '{}';
	cut timestamptz;
	pl record;
	wh bigint[];
	k int;
	c int;
	pr record;
	sr record;
	e_exact numeric[] := '{0,0,0,0}';
	s_exact numeric[] := '{0,0,0,0}';
	wh_sum bigint[] := '{0,0,0,0}';
	applied text[] := '{}';
	r evcharge.charge_quote;
BEGIN
	SELECT s.station_id, s.tz, s.name, s.operator_id INTO st FROM evcharge.station s WHERE s.station_id = p_station_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'station % does not exist', coalesce(p_station_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Register it in evcharge.station.';
	END IF;
	-- A group that is not the station's operator's would price at the
	-- public rate without a word: an unknown group is an error.
	IF p_group_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM evcharge.customer_group g
	                                          WHERE g.group_id = p_group_id AND g.operator_id = st.operator_id) THEN
		RAISE EXCEPTION 'operator % has no customer group %', st.operator_id, p_group_id
			USING ERRCODE = 'no_data_found',
			      DETAIL = format('Station %s is operator %s''s; %s.', p_station_id, st.operator_id,
			                      coalesce((SELECT format('group %s is operator %s''s', g.group_id, g.operator_id)
			                                FROM evcharge.customer_group g WHERE g.group_id = p_group_id),
			                               format('no group %s is registered', p_group_id))),
			      HINT = 'Give one of the operator''s groups (evcharge.customer_group), or NULL for the public price.';
	END IF;
	IF p_current_type IS NULL OR p_current_type NOT IN ('AC', 'DC') THEN
		RAISE EXCEPTION 'current type % is neither AC nor DC', quote_nullable(p_current_type)
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass ''AC'' or ''DC'', as evcharge.current_type(pile) gives it.';
	END IF;
	IF p_ts IS NULL OR p_meter_wh IS NULL THEN
		RAISE EXCEPTION 'the samples of a session are required' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	-- The span of the readings (a -1 is no reading and draws no energy).
	SELECT min(t), max(t) INTO t_from, t_to FROM unnest(p_ts, p_meter_wh) AS u(t, w) WHERE w >= 0;
	IF t_from IS NULL THEN
		RAISE EXCEPTION 'a session needs at least one meter reading' USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- Where the price may change: plan changes and promotion bounds.
	SELECT array_agg(DISTINCT b ORDER BY b) INTO cuts FROM (
		SELECT lower(valid) AS b FROM evcharge.station_tariff
		WHERE station_id = p_station_id AND current_type = p_current_type
		  AND valid && tstzrange(t_from, t_to, '[]')
		UNION
		SELECT upper(valid) FROM evcharge.station_tariff
		WHERE station_id = p_station_id AND current_type = p_current_type
		  AND valid && tstzrange(t_from, t_to, '[]') AND NOT upper_inf(valid)
		UNION
		SELECT unnest(ARRAY[lower(promo.valid), upper(promo.valid)])
		FROM evcharge.promotion promo JOIN evcharge.promotion_station ps USING (promotion_id)
		WHERE ps.station_id = p_station_id AND promo.valid && tstzrange(t_from, t_to, '[]')
	) bounds WHERE b > t_from AND b <= t_to;
	cuts := ARRAY[t_from] || coalesce(cuts, '{}');

	-- The plan in force at each cut; none is an error that names the time.
	FOREACH cut IN ARRAY cuts LOOP
		IF cut = t_to AND cut <> t_from THEN
			CONTINUE;			-- nothing is consumed from the session's last instant on
		END IF;
		SELECT station_tariff_id, tariff, coalesce(name, 'plan ' || station_tariff_id) AS name INTO pl
		FROM evcharge.station_tariff
		WHERE station_id = p_station_id AND current_type = p_current_type AND valid @> cut;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'no tariff in force for station % (%) at %', p_station_id, p_current_type,
				to_char(cut AT TIME ZONE st.tz, 'YYYY-MM-DD HH24:MI:SS') || ' ' || st.tz
				USING ERRCODE = 'EV001',
				      DETAIL = format('Station "%s" has no %s plan whose validity contains that time; evcharge never prices at a default price.',
				                      st.name, p_current_type),
				      HINT = 'Add the plan to evcharge.station_tariff, then price the session again.';
		END IF;
		plans := plans || pl.tariff;
		plan_names := plan_names || pl.name;
		starts := starts || cut;
	END LOOP;

	wh := evcharge.split_energy_by_span(plans, starts, p_ts, p_meter_wh, st.tz);

	FOR k IN 1 .. array_length(plans, 1) LOOP
		FOR pr IN SELECT * FROM evcharge.tariff_prices(plans[k]) LOOP
			c := array_position(ARRAY['sharp', 'peak', 'flat', 'valley'], pr.class);
			IF wh[k][c] = 0 THEN
				CONTINUE;
			END IF;
			sr := evcharge.service_rate(p_station_id, p_group_id, starts[k], pr.service_fee);
			e_exact[c] := e_exact[c] + wh[k][c] * pr.energy_price / 1000;
			s_exact[c] := s_exact[c] + wh[k][c] * sr.rate / 1000;
			wh_sum[c] := wh_sum[c] + wh[k][c];
			applied := applied || ('plan: ' || plan_names[k]) || sr.applied;
		END LOOP;
	END LOOP;
	IF array_length(applied, 1) IS NULL THEN
		applied := ARRAY['plan: ' || plan_names[1]];
	END IF;

	r.class_kwh := ARRAY(SELECT trim_scale(w / 1000.0) FROM unnest(wh_sum) w);
	r.class_energy_fee := ARRAY(SELECT trim_scale(x) FROM unnest(e_exact) x);
	r.class_service_fee := ARRAY(SELECT trim_scale(x) FROM unnest(s_exact) x);
	r.kwh := round((SELECT sum(w) FROM unnest(wh_sum) w) / 1000.0, 3);
	r.energy_fee := trunc((SELECT sum(x) FROM unnest(e_exact) x), 2);
	r.service_fee := trunc((SELECT sum(x) FROM unnest(s_exact) x), 2);
	r.occupancy_fee := 0.00;
	r.discount := 0.00;
	r.total := r.energy_fee + r.service_fee;
	r.applied := ARRAY(SELECT DISTINCT a FROM unnest(applied) a ORDER BY a);
	RETURN r;
END $$;
COMMENT ON FUNCTION evcharge.price_session(bigint, text, bigint, timestamptz[], bigint[]) IS
	'prices a session''s meter samples at a station: each part by the plan in force then, group price and promotions applied; no occupancy fee or coupon; P0002 for a station or group that is not registered (or a group of another operator)';

CREATE FUNCTION evcharge.quote(station_id bigint, current_type text, group_id bigint,
	started_at timestamptz, ended_at timestamptz, kwh numeric,
	occupied_until timestamptz DEFAULT NULL, member_id bigint DEFAULT NULL)
RETURNS evcharge.charge_quote
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r evcharge.charge_quote;
	wh bigint;
	occ record;
	minutes bigint;
	cp record;
	op bigint;
	rated int;
BEGIN
	IF started_at IS NULL OR ended_at IS NULL OR kwh IS NULL THEN
		RAISE EXCEPTION 'started_at, ended_at and kwh are required' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT isfinite(started_at) OR NOT isfinite(ended_at) OR NOT isfinite(coalesce(occupied_until, ended_at)) THEN
		RAISE EXCEPTION 'a charge from % to % (unplugged %) cannot be priced', started_at, ended_at,
			coalesce(occupied_until::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A charge starts, ends and is unplugged at finite times.',
			      HINT = 'Give the times of the charge, e.g. ''2026-11-20 10:00+08''.';
	END IF;
	IF kwh IN ('NaN', 'Infinity', '-Infinity') THEN
		RAISE EXCEPTION 'energy % kWh is not a number of kWh', kwh
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'evcharge measures energy in Wh: give kWh with at most 3 decimals, 0 or more.';
	END IF;
	IF ended_at < started_at THEN
		RAISE EXCEPTION 'the charge ends (%) before it starts (%)', ended_at, started_at
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF kwh < 0 OR kwh <> round(kwh, 3) THEN
		RAISE EXCEPTION 'energy % kWh is not a whole number of Wh at least 0', kwh
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'evcharge measures energy in Wh: give kWh with at most 3 decimals.';
	END IF;
	IF ended_at = started_at AND kwh > 0 THEN
		RAISE EXCEPTION 'a charge of % kWh cannot start and end at the same time (%)', kwh, started_at
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Energy flows over time: give the time charging ended.';
	END IF;
	IF occupied_until IS NOT NULL AND occupied_until < ended_at THEN
		RAISE EXCEPTION 'the gun is unplugged (%) before charging ends (%)', occupied_until, ended_at
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- Plausible: no more than the station's most powerful gun of that
	-- current type can deliver in the span, nor than the operator allows
	-- one bill (finance_policy).
	SELECT s.operator_id, (SELECT max(pl.rated_power_w) FROM evcharge.pile pl
	                       WHERE pl.station_id = s.station_id AND evcharge.current_type(pl.pile_id) = quote.current_type)
	INTO op, rated
	FROM evcharge.station s WHERE s.station_id = quote.station_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'station % does not exist', coalesce(quote.station_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Register it in evcharge.station.';
	END IF;
	IF rated IS NOT NULL AND kwh * 1000 > evcharge.gun_energy_limit(rated, started_at, ended_at) THEN
		RAISE EXCEPTION '% kWh cannot be charged at station % from % to %', kwh, quote.station_id, started_at, ended_at
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('Its most powerful %s gun is rated %s W: at most %s kWh in that time (rated power x time x 1.2 + 10 Wh).',
			                      quote.current_type, rated, trunc(evcharge.gun_energy_limit(rated, started_at, ended_at) / 1000, 3)),
			      HINT = 'Check the energy and the times of the charge.';
	END IF;
	PERFORM evcharge.check_bill_limits(op, kwh * 1000, NULL, 'a quote');
	wh := (kwh * 1000)::bigint;

	-- A linear session: the energy rises evenly from start to end.
	r := evcharge.price_session(quote.station_id, quote.current_type, quote.group_id,
	                            ARRAY[started_at, ended_at], ARRAY[0, wh]);

	IF quote.member_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM evcharge.member m
	                                               WHERE m.member_id = quote.member_id AND m.operator_id = op) THEN
		RAISE EXCEPTION 'operator % has no member %', op, quote.member_id
			USING ERRCODE = 'no_data_found',
			      DETAIL = format('Station %s is operator %s''s; %s.', quote.station_id, op,
			                      coalesce((SELECT format('member %s is operator %s''s', m.member_id, m.operator_id)
			                                FROM evcharge.member m WHERE m.member_id = quote.member_id),
			                               format('no member %s is registered', quote.member_id))),
			      HINT = 'Give one of the operator''s members (evcharge.member), or NULL for no coupon.';
	END IF;

	-- Occupancy: whole minutes plugged after charging, beyond the grace.
	IF occupied_until IS NOT NULL THEN
		SELECT o.grace_minutes, o.fee_per_minute, o.cap,
		       EXISTS (SELECT 1 FROM evcharge.occupancy_exemption e
		               WHERE e.station_id = o.station_id AND e.group_id = quote.group_id) AS exempt
		INTO occ FROM evcharge.occupancy_fee o WHERE o.station_id = quote.station_id;
		IF FOUND THEN
			minutes := floor(extract(epoch FROM occupied_until - ended_at) / 60)::bigint - occ.grace_minutes;
			IF minutes > 0 AND occ.exempt THEN
				r.applied := r.applied || format('occupancy: %s min, group exempt', minutes);
			ELSIF minutes > 0 THEN
				r.occupancy_fee := trunc(minutes * occ.fee_per_minute, 2);
				IF occ.cap IS NOT NULL AND r.occupancy_fee > occ.cap THEN
					r.occupancy_fee := occ.cap;
					r.applied := r.applied || format('occupancy: %s min, capped', minutes);
				ELSE
					r.applied := r.applied || format('occupancy: %s min', minutes);
				END IF;
			END IF;
		END IF;
	END IF;

	-- The member's best coupon valid at the start for this much energy: the
	-- largest discount it gives (never more than the service fee), and of
	-- those the smallest coupon, soonest to expire, so that nothing is wasted.
	IF member_id IS NOT NULL THEN
		SELECT c.coupon_id, c.amount INTO cp
		FROM evcharge.coupon c JOIN evcharge.station s ON s.operator_id = c.operator_id
		WHERE s.station_id = quote.station_id AND c.member_id = quote.member_id
		  AND c.used_order_no IS NULL AND c.valid @> started_at AND c.min_kwh <= kwh
		ORDER BY least(c.amount, r.service_fee) DESC, c.amount ASC, upper(c.valid) ASC NULLS LAST, c.coupon_id
		LIMIT 1;
		IF FOUND AND r.service_fee > 0 THEN
			r.discount := least(cp.amount, r.service_fee);
			r.applied := r.applied || format('coupon: %s', cp.coupon_id);
		END IF;
	END IF;

	r.total := r.energy_fee + r.service_fee + r.occupancy_fee - r.discount;
	r.applied := ARRAY(SELECT a FROM unnest(r.applied) a ORDER BY a);
	PERFORM evcharge.check_bill_limits(op, wh, r.total, 'a quote');
	RETURN r;
END $$;
COMMENT ON FUNCTION evcharge.quote(bigint, text, bigint, timestamptz, timestamptz, numeric, timestamptz, bigint) IS
	'what a charge would cost: plans in force across the span, group price, promotions, occupancy fee up to occupied_until, the member''s best coupon; refuses (22023) energy beyond what the station''s most powerful gun of the type can deliver in the span (gun_energy_limit) or beyond the operator''s bill limits (check_bill_limits), NaN, infinite or negative energy and infinite times; P0002 for a station, group or member not the operator''s';
-- heartbeat.sql: what the pile side writes (registered piles, heartbeats),
-- what cannot be accepted (quarantine), and the live state of every gun,
-- kept by the statement-level trigger in src/heartbeat_trigger.c.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TYPE evcharge.gun_status AS ENUM ('idle', 'plugged', 'charging', 'suspended', 'occupied', 'fault');
COMMENT ON TYPE evcharge.gun_status IS
	'What a gun reports: idle, plugged (not charging), charging, suspended (paused by car or pile), occupied (finished but still plugged, 满电占桩), fault';

CREATE TABLE evcharge.pile (
	pile_id evcharge.pile_id PRIMARY KEY CONSTRAINT pile_id_not_legacy CHECK (NOT evcharge.is_legacy(pile_id)),
	station_id bigint NOT NULL REFERENCES evcharge.station,
	gun_count int NOT NULL CHECK (gun_count BETWEEN 1 AND 999),
	rated_power_w int NOT NULL CHECK (rated_power_w > 0),
	firmware text,
	registered_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pile_station_idx ON evcharge.pile (station_id);
COMMENT ON INDEX evcharge.pile_station_idx IS 'the piles of a station';
COMMENT ON TABLE evcharge.pile IS
	'Registered piles, guns numbered 1..gun_count; traffic for any other gun goes to quarantine.  Legacy 16-digit ids are refused: the cloud protocol does not accept them';
COMMENT ON COLUMN evcharge.pile.pile_id IS '20-digit pile id; its current type (AC/DC) is read from the id';
COMMENT ON COLUMN evcharge.pile.station_id IS 'the station the pile stands at';
COMMENT ON COLUMN evcharge.pile.gun_count IS 'number of guns, numbered from 1';
COMMENT ON COLUMN evcharge.pile.rated_power_w IS 'rated power per gun in watts: a meter jump larger than this allows is not billed';
COMMENT ON COLUMN evcharge.pile.firmware IS 'firmware version as the pile reports it';
COMMENT ON COLUMN evcharge.pile.registered_at IS 'when the pile was registered';

-- Heartbeats: the raw log of what piles sent, partitioned by day on ts.  No
-- constraint beyond the column types (not even NOT NULL on gun, time and
-- status), so that a COPY is never failed by one bad row: the trigger moves
-- rows it cannot accept to evcharge.quarantine.
CREATE TABLE evcharge.heartbeat (
	gun evcharge.gun_id,
	ts timestamptz,
	status evcharge.gun_status,
	meter_wh bigint,
	power_w integer,
	voltage_v numeric(7, 2),
	current_a numeric(7, 2),
	soc smallint,
	fault_code smallint,
	order_no text,
	received_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (ts);
COMMENT ON TABLE evcharge.heartbeat IS
	'Heartbeats and real-time data per gun, as piles send them (every 10-60 s, about every 15 s while charging); partitioned by day on ts, see maintain_partitions()';
COMMENT ON COLUMN evcharge.heartbeat.gun IS 'the gun';
COMMENT ON COLUMN evcharge.heartbeat.ts IS 'when the pile took the sample (its clock)';
COMMENT ON COLUMN evcharge.heartbeat.status IS 'gun status';
COMMENT ON COLUMN evcharge.heartbeat.meter_wh IS 'cumulative energy register in Wh (-1 or NULL: no reading)';
COMMENT ON COLUMN evcharge.heartbeat.power_w IS 'power in W';
COMMENT ON COLUMN evcharge.heartbeat.voltage_v IS 'voltage in V';
COMMENT ON COLUMN evcharge.heartbeat.current_a IS 'current in A';
COMMENT ON COLUMN evcharge.heartbeat.soc IS 'state of charge of the car, percent';
COMMENT ON COLUMN evcharge.heartbeat.fault_code IS 'fault code, 0 for none (99: other)';
COMMENT ON COLUMN evcharge.heartbeat.order_no IS 'order number of the charge in progress, as the pile knows it';
COMMENT ON COLUMN evcharge.heartbeat.received_at IS 'when the platform received it';

-- Rows whose time has no partition yet, or is far from now, land here.
CREATE TABLE evcharge.heartbeat_default PARTITION OF evcharge.heartbeat DEFAULT;
COMMENT ON TABLE evcharge.heartbeat_default IS
	'Default partition of heartbeat: rows whose day has no partition (maintain_partitions() creates them ahead)';
-- Each partition has its own (gun, ts) index, made with it (this one here,
-- the daily ones by maintain_partitions()), and the partitioned table has
-- none: an index on it would be an extension object that pg_restore
-- recreates on every partition when it attaches it, before the dump's own
-- CREATE INDEX of that partition's index, which then fails ("already
-- exists").
CREATE INDEX heartbeat_default_gun_ts_idx ON evcharge.heartbeat_default (gun, ts);
COMMENT ON INDEX evcharge.heartbeat_default_gun_ts_idx IS
	'a gun''s heartbeats in time order (bills, evidence and the session machine read them back); each daily partition has its own';

CREATE TABLE evcharge.quarantine (
	quarantine_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	source text NOT NULL CHECK (source IN ('heartbeat', 'pile_record')),
	reason text NOT NULL,
	gun evcharge.gun_id,
	ts timestamptz,
	payload jsonb NOT NULL,
	quarantined_at timestamptz NOT NULL DEFAULT now(),
	replayed_at timestamptz
);
CREATE INDEX quarantine_pending_idx ON evcharge.quarantine (gun) WHERE replayed_at IS NULL;
COMMENT ON INDEX evcharge.quarantine_pending_idx IS 'quarantined rows not yet replayed, by gun: replay_quarantine() of one pile';
COMMENT ON TABLE evcharge.quarantine IS
	'Traffic that could not be accepted, kept whole with the reason; replay_quarantine() feeds it again after the cause is mended (a pile registered)';
COMMENT ON COLUMN evcharge.quarantine.quarantine_id IS 'row id';
COMMENT ON COLUMN evcharge.quarantine.source IS 'heartbeat or pile_record';
COMMENT ON COLUMN evcharge.quarantine.reason IS 'why it was not accepted';
COMMENT ON COLUMN evcharge.quarantine.gun IS 'the gun it names';
COMMENT ON COLUMN evcharge.quarantine.ts IS 'its time';
COMMENT ON COLUMN evcharge.quarantine.payload IS 'the row as received';
COMMENT ON COLUMN evcharge.quarantine.quarantined_at IS 'when it was quarantined';
COMMENT ON COLUMN evcharge.quarantine.replayed_at IS 'when replay_quarantine() fed it again (NULL: still waiting)';

CREATE TABLE evcharge.gun_state (
	gun evcharge.gun_id PRIMARY KEY,
	station_id bigint NOT NULL,
	status evcharge.gun_status NOT NULL,
	online boolean NOT NULL DEFAULT true,
	last_heartbeat timestamptz NOT NULL,
	current_order text,
	power_w integer,
	soc smallint,
	meter_wh bigint,
	fault_code smallint,
	updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);
-- Every heartbeat batch rewrites these rows: room on the page and no index
-- on the columns that change keep the updates in place (HOT).  The offline
-- sweep reads the table once a minute; it needs no index.
CREATE INDEX gun_state_station_idx ON evcharge.gun_state (station_id);
COMMENT ON INDEX evcharge.gun_state_station_idx IS 'the live state of a station''s guns';
COMMENT ON TABLE evcharge.gun_state IS
	'Live state of each gun: its latest heartbeat (a late, older heartbeat never overwrites a newer one) and whether it is online';
COMMENT ON COLUMN evcharge.gun_state.gun IS 'the gun';
COMMENT ON COLUMN evcharge.gun_state.station_id IS 'its station';
COMMENT ON COLUMN evcharge.gun_state.status IS 'status of the latest heartbeat';
COMMENT ON COLUMN evcharge.gun_state.online IS 'false once sweep_offline() found it silent too long; true again on its next heartbeat';
COMMENT ON COLUMN evcharge.gun_state.last_heartbeat IS 'time of the latest heartbeat';
COMMENT ON COLUMN evcharge.gun_state.current_order IS 'order number of the latest heartbeat';
COMMENT ON COLUMN evcharge.gun_state.power_w IS 'latest power, W';
COMMENT ON COLUMN evcharge.gun_state.soc IS 'latest state of charge, percent';
COMMENT ON COLUMN evcharge.gun_state.meter_wh IS 'latest meter reading, Wh';
COMMENT ON COLUMN evcharge.gun_state.fault_code IS 'latest fault code';
COMMENT ON COLUMN evcharge.gun_state.updated_at IS 'when the row was last written';

CREATE TABLE evcharge.offline_period (
	offline_period_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	gun evcharge.gun_id NOT NULL,
	station_id bigint NOT NULL,
	started_at timestamptz NOT NULL,
	detected_at timestamptz NOT NULL,
	ended_at timestamptz,
	network_incident_id bigint,
	CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE UNIQUE INDEX offline_period_open_idx ON evcharge.offline_period (gun) WHERE ended_at IS NULL;
COMMENT ON INDEX evcharge.offline_period_open_idx IS 'at most one open offline period per gun';
CREATE INDEX offline_period_station_idx ON evcharge.offline_period (station_id, started_at);
COMMENT ON INDEX evcharge.offline_period_station_idx IS 'offline periods of a station in time: network incidents and reports';
CREATE INDEX offline_period_gun_idx ON evcharge.offline_period (gun, started_at);
COMMENT ON INDEX evcharge.offline_period_gun_idx IS 'a gun''s offline periods in time: every bill asks whether its gun went offline during the charge';
COMMENT ON TABLE evcharge.offline_period IS
	'Each span a gun was silent: from its last heartbeat until the next one (ended_at NULL while it lasts)';
COMMENT ON COLUMN evcharge.offline_period.offline_period_id IS 'row id';
COMMENT ON COLUMN evcharge.offline_period.gun IS 'the gun';
COMMENT ON COLUMN evcharge.offline_period.station_id IS 'its station';
COMMENT ON COLUMN evcharge.offline_period.started_at IS 'its last heartbeat before the silence';
COMMENT ON COLUMN evcharge.offline_period.detected_at IS 'when sweep_offline() marked it offline';
COMMENT ON COLUMN evcharge.offline_period.ended_at IS 'its first heartbeat after the silence';
COMMENT ON COLUMN evcharge.offline_period.network_incident_id IS 'the network incident it is part of, if any';

CREATE TABLE evcharge.network_incident (
	network_incident_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	station_id bigint NOT NULL,
	started_at timestamptz NOT NULL,
	detected_at timestamptz NOT NULL,
	piles int NOT NULL,
	guns int NOT NULL,
	ended_at timestamptz
);
ALTER TABLE evcharge.offline_period
	ADD FOREIGN KEY (network_incident_id) REFERENCES evcharge.network_incident;
COMMENT ON TABLE evcharge.network_incident IS
	'Many piles of one station silent from the same couple of minutes: a network (4G carrier) incident, reported once instead of a fault per pile';
COMMENT ON COLUMN evcharge.network_incident.network_incident_id IS 'row id';
COMMENT ON COLUMN evcharge.network_incident.station_id IS 'the station';
COMMENT ON COLUMN evcharge.network_incident.started_at IS 'the earliest last heartbeat among its piles';
COMMENT ON COLUMN evcharge.network_incident.detected_at IS 'when sweep_offline() recognised it';
COMMENT ON COLUMN evcharge.network_incident.piles IS 'piles that went silent together';
COMMENT ON COLUMN evcharge.network_incident.guns IS 'guns that went silent together';
COMMENT ON COLUMN evcharge.network_incident.ended_at IS 'when the last of its guns was heard again';

-- The one rule for a time given to a job or a report (an "at", a day, a
-- month): finite, not before 2015-01-01 00:00+08 (the platform's first day,
-- as for heartbeats: an earlier time is a clock that is not set), and not
-- later than ahead after now (clock_timestamp()); ahead NULL: no upper
-- bound.  what names the argument in the error.  An infinite time would make
-- a job run without end (generate_series to infinity) or treat every gun,
-- partition or session as due.
CREATE FUNCTION evcharge.check_time(t timestamptz, what text, ahead interval DEFAULT interval '1 day',
	shown text DEFAULT NULL) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	earliest constant timestamptz := '2015-01-01 00:00+08';
	val text := coalesce(shown, t::text);
	hint text := format('Give %s from 2015-01-01 00:00+08 to %s.', what,
		CASE WHEN ahead IS NULL THEN 'any later time'
		     WHEN ahead = interval '0' THEN 'now()'
		     ELSE 'now() + ' || ahead::text END);
BEGIN
	IF t IS NULL THEN
		RAISE EXCEPTION '% cannot be NULL', what
			USING ERRCODE = 'null_value_not_allowed', HINT = hint;
	END IF;
	IF NOT isfinite(t) THEN
		RAISE EXCEPTION '% "%" is not a finite time', what, val
			USING ERRCODE = 'datetime_field_overflow',
			      DETAIL = 'A job or report works up to a time or on a day; infinity is neither.',
			      HINT = hint;
	END IF;
	IF t < earliest THEN
		RAISE EXCEPTION '% "%" is before 2015', what, val
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'evcharge knows no time before 2015-01-01 00:00+08: such a time is a clock that is not set.',
			      HINT = hint;
	END IF;
	IF t > clock_timestamp() + ahead THEN
		RAISE EXCEPTION '% "%" is too far ahead', what, val
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('It is later than %s: the work it asks for is not due.',
			                      CASE WHEN ahead = interval '0' THEN 'now()' ELSE 'now() + ' || ahead::text END),
			      HINT = hint;
	END IF;
	RETURN t;
END $$;
COMMENT ON FUNCTION evcharge.check_time(timestamptz, text, interval, text) IS
	'refuses a time given to a job or report that is NULL (22004), infinite (22008), before 2015-01-01 00:00+08 or later than now() + ahead (22023), naming the argument (what) and the allowed window; returns the time';

-- The same rule for a day (a report's day, a statement's month): the day's
-- first instant in UTC must pass check_time(); the error shows the day.
CREATE FUNCTION evcharge.check_time(d date, what text, ahead interval DEFAULT interval '1 day') RETURNS date
LANGUAGE plpgsql VOLATILE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- Days beyond timestamptz's range are clamped to a finite time that is
	-- still out of the window, so that the error is the window's.
	PERFORM evcharge.check_time(
		CASE WHEN d IS NULL OR NOT isfinite(d) THEN d::timestamptz
		     WHEN d > '200000-01-01' THEN '200000-01-01 00:00+00'::timestamptz
		     WHEN d < '1000-01-01' THEN '1000-01-01 00:00+00'::timestamptz
		     ELSE d::timestamp AT TIME ZONE 'UTC' END,
		what, ahead, d::text);
	RETURN d;
END $$;
COMMENT ON FUNCTION evcharge.check_time(date, text, interval) IS
	'check_time() for a day: refuses NULL (22004), infinite days (22008) and days before 2015-01-01 or beginning later than now() + ahead (22023); returns the day';

-- Why a heartbeat cannot be accepted, or NULL; p_pile and p_gun_count are
-- the registered pile's (NULL when it is not registered).
CREATE FUNCTION evcharge.heartbeat_problem(p_gun evcharge.gun_id, p_ts timestamptz, p_status evcharge.gun_status,
	p_meter_wh bigint, p_soc smallint, p_pile evcharge.pile_id, p_gun_count int) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN CASE
	WHEN p_gun IS NULL THEN 'no gun'
	WHEN p_ts IS NULL THEN 'no time'
	WHEN p_status IS NULL THEN 'no status'
	WHEN p_pile IS NULL THEN format('pile %s is not registered', evcharge.pile(p_gun))
	WHEN evcharge.gun_no(p_gun) > p_gun_count
		THEN format('gun %s of pile %s, which has %s gun(s)', evcharge.gun_no(p_gun), p_pile, p_gun_count)
	WHEN p_status IN ('charging', 'suspended', 'occupied') AND evcharge.product_kind(p_gun) = 'ground_lock'
		THEN format('status %s, which a parking ground lock cannot have', p_status)
	WHEN p_status = 'charging' AND p_meter_wh IS NULL THEN 'charging without a meter reading'
	WHEN p_ts < '2015-01-01 00:00+08' THEN 'time before 2015: the pile''s clock is not set'
	WHEN p_ts > now() + interval '1 day' THEN 'time more than a day ahead: the pile''s clock is wrong'
	WHEN p_soc NOT BETWEEN 0 AND 100 THEN format('state of charge %s outside 0-100', p_soc)
END;
COMMENT ON FUNCTION evcharge.heartbeat_problem(evcharge.gun_id, timestamptz, evcharge.gun_status, bigint, smallint, evcharge.pile_id, int) IS
	'why a heartbeat cannot be accepted (the quarantine reason), or NULL';

-- The trigger (C): quarantine what cannot be accepted, then bring the live
-- state of every gun in the batch up to date, once per statement.
CREATE FUNCTION evcharge.heartbeat_ingest() RETURNS trigger
	AS 'MODULE_PATHNAME', 'heartbeat_ingest' LANGUAGE C;
COMMENT ON FUNCTION evcharge.heartbeat_ingest() IS
	'statement-level AFTER INSERT trigger on heartbeat: quarantines rows it cannot accept and updates gun_state and offline periods, per batch';
CREATE TRIGGER heartbeat_ingest AFTER INSERT ON evcharge.heartbeat
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION evcharge.heartbeat_ingest();
COMMENT ON TRIGGER heartbeat_ingest ON evcharge.heartbeat IS 'once per statement: quarantine, live state, sessions, faults, offline periods and the balance guard for the batch';

-- Replay: feed quarantined traffic again, e.g. after registering a pile:
-- heartbeats first, so that the sessions they open are there when the pile
-- records of the same charges come.
CREATE FUNCTION evcharge.replay_quarantine(p_pile evcharge.pile_id DEFAULT NULL)
RETURNS TABLE (replayed bigint, quarantined_again bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	hb bigint[];
	rec bigint[];
	last_id bigint;
BEGIN
	SELECT array_agg(id ORDER BY id) FILTER (WHERE src = 'heartbeat'),
	       array_agg(id ORDER BY id) FILTER (WHERE src = 'pile_record')
	INTO hb, rec FROM (
		SELECT q.quarantine_id AS id, q.source AS src FROM evcharge.quarantine q
		WHERE q.replayed_at IS NULL
		  AND (p_pile IS NULL OR evcharge.pile(q.gun) OPERATOR(evcharge.=) p_pile)
		FOR UPDATE) locked;
	replayed := 0;
	quarantined_again := 0;
	IF hb IS NULL AND rec IS NULL THEN
		RETURN NEXT;
		RETURN;
	END IF;
	SELECT max(quarantine_id) INTO last_id FROM evcharge.quarantine;
	UPDATE evcharge.quarantine SET replayed_at = clock_timestamp()
	WHERE quarantine_id = ANY (coalesce(hb, '{}') || coalesce(rec, '{}'));
	IF hb IS NOT NULL THEN
		INSERT INTO evcharge.heartbeat
		SELECT (jsonb_populate_record(NULL::evcharge.heartbeat, q.payload)).*
		FROM evcharge.quarantine q WHERE q.quarantine_id = ANY (hb)
		ORDER BY q.quarantine_id;
	END IF;
	IF rec IS NOT NULL THEN
		-- As received: the record keeps the time it first arrived.
		INSERT INTO evcharge.pile_record
		SELECT (jsonb_populate_record(NULL::evcharge.pile_record, q.payload)).*
		FROM evcharge.quarantine q WHERE q.quarantine_id = ANY (rec)
		ORDER BY q.quarantine_id;
	END IF;
	-- What the triggers quarantined again in this transaction.
	SELECT count(*) INTO quarantined_again FROM evcharge.quarantine q
	WHERE q.quarantine_id > last_id AND q.xmin = pg_current_xact_id()::xid;
	replayed := coalesce(array_length(hb, 1), 0) + coalesce(array_length(rec, 1), 0) - quarantined_again;
	RETURN NEXT;
END $$;
COMMENT ON FUNCTION evcharge.replay_quarantine(evcharge.pile_id) IS
	'feeds quarantined heartbeats and pile records (of one pile, or all) through the triggers again, heartbeats first; returns how many were accepted and how many were quarantined again';

SELECT pg_catalog.pg_extension_config_dump('evcharge.pile', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.heartbeat_default', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.quarantine', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.quarantine_quarantine_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.gun_state', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.offline_period', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.offline_period_offline_period_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.network_incident', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.network_incident_network_incident_id_seq', '');
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
	'opens a session for an app or QR start and returns its order number (yyyyMMddHHmmss in the station''s zone + 6 digits); the pile''s heartbeats carrying it then feed it; for an OCPP pile (one that has connected to a bridge) it also makes the RemoteStartTransaction (ocpp_command, NOTIFY evcharge_command), and refuses with EV003 when the pile is not connected';

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
-- bill.sql: the bill of a session: computed from its heartbeats, the pile's
-- record and the prices in force (compute_bill), checked for anomalies,
-- made when the pile record and the unplug are both in (finalise_bill) or
-- when the record is given up on (detect_lost_bills, repair.sql).
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TABLE evcharge.bill (
	order_no text PRIMARY KEY REFERENCES evcharge.charge_session,
	gun evcharge.gun_id NOT NULL,
	station_id bigint NOT NULL,
	member_id bigint,
	channel text NOT NULL,
	started_at timestamptz,
	ended_at timestamptz,
	occupied_until timestamptz,
	energy_wh bigint NOT NULL,
	wh_by_class bigint[] NOT NULL,
	energy_fee numeric(12, 2) NOT NULL,
	service_fee numeric(12, 2) NOT NULL,
	occupancy_fee numeric(12, 2) NOT NULL,
	discount numeric(12, 2) NOT NULL,
	total numeric(12, 2) NOT NULL,
	applied text[] NOT NULL,
	energy_source text NOT NULL CHECK (energy_source IN ('pile', 'heartbeats', 'manual')),
	anomalies evcharge.anomaly_set NOT NULL DEFAULT '',
	coupon_id bigint,
	state text NOT NULL DEFAULT 'final' CHECK (state IN ('final', 'held', 'settled')),
	revision int NOT NULL DEFAULT 0,
	finalised_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	CHECK (total = energy_fee + service_fee + occupancy_fee - discount)
);
CREATE INDEX bill_station_idx ON evcharge.bill (station_id, ended_at);
COMMENT ON INDEX evcharge.bill_station_idx IS 'bills of a station by the end of charging: reports per station and day';
-- daily_report() takes a bill's day from its end of charging, or its start
-- when it has none: this index serves that, so a day costs its own bills.
CREATE INDEX bill_station_day_idx ON evcharge.bill (station_id, (coalesce(ended_at, started_at)));
COMMENT ON INDEX evcharge.bill_station_day_idx IS 'bills of a station by coalesce(ended_at, started_at), the day daily_report() counts a bill in';
-- Finding the bills that carry a code: anomalies @> '1' uses this index.
-- Not partial: the planner cannot prove that anomalies @> '8' implies
-- anomalies <> '', so a partial index would never serve that query (a bill
-- without anomalies adds no key to a GIN index anyway).
CREATE INDEX bill_anomalies_idx ON evcharge.bill USING gin (anomalies);
COMMENT ON INDEX evcharge.bill_anomalies_idx IS 'finding the bills that carry anomaly codes (@>, &&, =)';
CREATE INDEX bill_held_idx ON evcharge.bill (station_id, ended_at) WHERE state = 'held';
COMMENT ON INDEX evcharge.bill_held_idx IS 'held bills of a station by the end of charging: the repair desk''s list and bulk repairs';
COMMENT ON TABLE evcharge.bill IS
	'The bill of a session, one per session, priced as quote() would: plans in force, group price, promotions, occupancy fee, best coupon';
COMMENT ON COLUMN evcharge.bill.order_no IS 'the session';
COMMENT ON COLUMN evcharge.bill.gun IS 'the gun';
COMMENT ON COLUMN evcharge.bill.station_id IS 'the station';
COMMENT ON COLUMN evcharge.bill.member_id IS 'the member';
COMMENT ON COLUMN evcharge.bill.channel IS 'start channel';
COMMENT ON COLUMN evcharge.bill.started_at IS 'start of charging';
COMMENT ON COLUMN evcharge.bill.ended_at IS 'end of charging';
COMMENT ON COLUMN evcharge.bill.occupied_until IS 'when the gun was unplugged';
COMMENT ON COLUMN evcharge.bill.energy_wh IS 'billed energy, Wh';
COMMENT ON COLUMN evcharge.bill.wh_by_class IS 'billed Wh per class {sharp, peak, flat, valley}';
COMMENT ON COLUMN evcharge.bill.energy_fee IS 'electricity fee, yuan';
COMMENT ON COLUMN evcharge.bill.service_fee IS 'service fee, yuan';
COMMENT ON COLUMN evcharge.bill.occupancy_fee IS 'occupancy fee, yuan';
COMMENT ON COLUMN evcharge.bill.discount IS 'coupon discount, yuan';
COMMENT ON COLUMN evcharge.bill.total IS 'energy + service + occupancy - discount';
COMMENT ON COLUMN evcharge.bill.applied IS 'what applied: plans, group, promotions, occupancy, coupon';
COMMENT ON COLUMN evcharge.bill.energy_source IS 'pile: the pile record''s total, split in the measured proportions; heartbeats: measured only; manual: set by hand in a repair';
COMMENT ON COLUMN evcharge.bill.anomalies IS 'the anomaly codes found when it was made or last recomputed (docs/anomalies.md)';
COMMENT ON COLUMN evcharge.bill.coupon_id IS 'the coupon it used, if any';
COMMENT ON COLUMN evcharge.bill.state IS 'final (to be charged); held (a blocking anomaly: not charged until repaired); settled (charged)';
COMMENT ON COLUMN evcharge.bill.revision IS 'how many times it was revised (bill_revision)';
COMMENT ON COLUMN evcharge.bill.finalised_at IS 'when it was made';
COMMENT ON COLUMN evcharge.bill.updated_at IS 'when it was last revised';

CREATE TABLE evcharge.bill_revision (
	bill_revision_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	order_no text NOT NULL REFERENCES evcharge.bill,
	revision int NOT NULL CHECK (revision > 0),
	method text NOT NULL CHECK (method IN ('recompute', 'pile', 'platform', 'manual', 'pile_record')),
	reason text NOT NULL CHECK (reason <> ''),
	revised_by text NOT NULL DEFAULT current_user,
	revised_at timestamptz NOT NULL DEFAULT now(),
	before jsonb,
	after jsonb NOT NULL,
	UNIQUE (order_no, revision)
);
COMMENT ON TABLE evcharge.bill_revision IS
	'Every change to a bill after it was made: the bill before and after (whole rows as jsonb), how, why, by whom and when; never updated or deleted';
COMMENT ON COLUMN evcharge.bill_revision.bill_revision_id IS 'row id';
COMMENT ON COLUMN evcharge.bill_revision.order_no IS 'the bill';
COMMENT ON COLUMN evcharge.bill_revision.revision IS 'revision number of the bill, from 1';
COMMENT ON COLUMN evcharge.bill_revision.method IS 'recompute, pile, platform, manual (repair_bill), or pile_record (a late pile record completed a bill made from heartbeats)';
COMMENT ON COLUMN evcharge.bill_revision.reason IS 'why, as the operator gave it';
COMMENT ON COLUMN evcharge.bill_revision.revised_by IS 'the database user who revised it';
COMMENT ON COLUMN evcharge.bill_revision.revised_at IS 'when';
COMMENT ON COLUMN evcharge.bill_revision.before IS 'the bill before (NULL when the repair made the bill: its record never came and it had not been billed yet)';
COMMENT ON COLUMN evcharge.bill_revision.after IS 'the bill after';

CREATE FUNCTION evcharge.bill_revision_immutable() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION 'bill revisions are an audit trail and cannot be changed'
		USING ERRCODE = 'insufficient_privilege', HINT = 'Repair the bill again: a new revision records the change.';
END $$;
COMMENT ON FUNCTION evcharge.bill_revision_immutable() IS 'trigger: refuses updates and deletes of bill_revision';
CREATE TRIGGER bill_revision_immutable BEFORE UPDATE OR DELETE ON evcharge.bill_revision
	FOR EACH ROW EXECUTE FUNCTION evcharge.bill_revision_immutable();
COMMENT ON TRIGGER bill_revision_immutable ON evcharge.bill_revision IS 'the audit trail of bills cannot be changed or deleted';

-- What a bill of the session would be now, and its anomalies; writes
-- nothing.  p_method: auto (as the pipeline bills: the pile's energy when
-- plausible, held when a blocking anomaly is found), recompute (the same,
-- released), pile (the pile's energy, even if implausible), platform (the
-- heartbeats' energy), manual (p_energy_wh).
CREATE FUNCTION evcharge.compute_bill(p_order_no text, p_method text DEFAULT 'auto', p_energy_wh bigint DEFAULT NULL)
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

-- Writes a computed bill: the first time as made, later as a revision.
CREATE FUNCTION evcharge.store_bill(b evcharge.bill, p_method text, p_reason text) RETURNS evcharge.bill
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
			updated_at = b.updated_at
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

-- Who started a charge at the pile: the card or vehicle its record names.
CREATE FUNCTION evcharge.identify_starter(s evcharge.charge_session, rec evcharge.pile_record)
RETURNS evcharge.charge_session
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	card text := nullif(regexp_replace(rec.card_no, '\s', '', 'g'), '');
	m evcharge.member;
BEGIN
	IF s.channel <> 'offline' OR s.member_id IS NOT NULL OR s.partner_id IS NOT NULL
	   OR (rec.start_by IS NULL AND card IS NULL AND rec.vin IS NULL) THEN
		RETURN s;
	END IF;
	SELECT mm.* INTO m FROM evcharge.member mm JOIN evcharge.station st ON st.operator_id = mm.operator_id
	WHERE st.station_id = s.station_id
	  AND ((card IS NOT NULL AND mm.card_no = card) OR (card IS NULL AND rec.vin IS NOT NULL AND mm.vin = rec.vin));
	UPDATE evcharge.charge_session cs SET
		channel = CASE WHEN rec.start_by IN ('card', 'password', 'vin') THEN rec.start_by
		               WHEN card IS NOT NULL THEN 'card' WHEN rec.vin IS NOT NULL THEN 'vin' ELSE cs.channel END,
		card_no = card, vin = rec.vin,
		member_id = m.member_id, partner_id = m.partner_id,
		group_id = CASE WHEN m.partner_id IS NULL THEN m.group_id END,
		updated_at = now()
	WHERE cs.order_no = s.order_no
	RETURNING * INTO s;
	RETURN s;
END $$;
COMMENT ON FUNCTION evcharge.identify_starter(evcharge.charge_session, evcharge.pile_record) IS
	'for a session the pile started (channel offline, nobody known): takes how it was started and the card or VIN from the pile''s record, and the registered member they belong to (and that member''s group, or partner), so the right wallet pays, at the right price, under the right contract';

-- Finalise the bill of a session whose pile record has arrived; a record
-- for a bill made from heartbeats (anomaly 1 or 2) completes it.
CREATE FUNCTION evcharge.finalise_bill(p_order_no text) RETURNS boolean
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

-- From the triggers: a bill that cannot be made must not fail the batch
-- that brought its last piece; the reason is kept on the session.
CREATE FUNCTION evcharge.try_finalise_bill(p_order_no text) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	st text;
	msg text;
BEGIN
	IF evcharge.finalise_bill(p_order_no) THEN
		UPDATE evcharge.charge_session SET bill_error = NULL WHERE order_no = p_order_no AND bill_error IS NOT NULL;
		RETURN true;
	END IF;
	RETURN false;
EXCEPTION WHEN others THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	UPDATE evcharge.charge_session SET bill_error = st || ': ' || msg, updated_at = now() WHERE order_no = p_order_no;
	RETURN false;
END $$;
COMMENT ON FUNCTION evcharge.try_finalise_bill(text) IS
	'finalise_bill() for the triggers: an error is recorded in charge_session.bill_error instead of failing the batch';

-- What only time reveals: records that never come.
CREATE FUNCTION evcharge.detect_lost_bills(at timestamptz DEFAULT now(),
	OUT sessions_closed bigint, OUT starts_cancelled bigint, OUT bills_lost bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	o text;
BEGIN
	PERFORM evcharge.check_time(at, 'detect_lost_bills(at)');
	-- App starts the pile never began.
	WITH c AS (
		UPDATE evcharge.charge_session cs SET state = 'cancelled', updated_at = now()
		FROM evcharge.station st JOIN evcharge.anomaly_policy p ON p.operator_id = st.operator_id
		WHERE st.station_id = cs.station_id AND cs.state = 'pending' AND cs.created_at < at - p.record_wait
		RETURNING 1)
	SELECT count(*) INTO starts_cancelled FROM c;
	-- Open sessions of guns that went silent: they end at their last heartbeat.
	WITH c AS (
		UPDATE evcharge.charge_session cs SET state = 'ended',
			charging_ended_at = coalesce(cs.charging_ended_at, cs.last_ts),
			occupied_until = cs.last_ts, updated_at = now()
		FROM evcharge.station st, evcharge.anomaly_policy p, evcharge.gun_state g
		WHERE st.station_id = cs.station_id AND p.operator_id = st.operator_id
		  AND g.gun OPERATOR(evcharge.=) cs.gun AND NOT g.online
		  AND cs.state IN ('charging', 'occupied') AND cs.last_ts < at - p.record_wait
		RETURNING 1)
	SELECT count(*) INTO sessions_closed FROM c;
	-- Ended sessions whose record has not come: billed from heartbeats, held.
	bills_lost := 0;
	FOR o IN
		SELECT cs.order_no FROM evcharge.charge_session cs
		JOIN evcharge.station st ON st.station_id = cs.station_id
		JOIN evcharge.anomaly_policy p ON p.operator_id = st.operator_id
		WHERE cs.state = 'ended'
		  AND coalesce(cs.occupied_until, cs.charging_ended_at, cs.last_ts) < at - p.record_wait
		  AND NOT EXISTS (SELECT 1 FROM evcharge.bill b WHERE b.order_no = cs.order_no)
		  AND NOT EXISTS (SELECT 1 FROM evcharge.pile_record r WHERE r.order_no = cs.order_no)
		ORDER BY cs.order_no
		FOR UPDATE OF cs SKIP LOCKED
	LOOP
		PERFORM 1 FROM evcharge.coupon c JOIN evcharge.charge_session cs ON cs.member_id = c.member_id
		WHERE cs.order_no = o AND c.used_order_no IS NULL FOR UPDATE OF c;
		PERFORM evcharge.store_bill(evcharge.compute_bill(o, 'auto'), 'auto', NULL);
		bills_lost := bills_lost + 1;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.detect_lost_bills(timestamptz) IS
	'scheduled: cancels app starts the pile never began, ends open sessions of offline guns at their last heartbeat, and bills ended sessions whose pile record has not come within the operator''s record_wait from their heartbeats, held with anomaly 1 (2 when the gun went offline); a record that comes later completes the bill; at must lie from 2015 to now() + 1 day (check_time)';

SELECT pg_catalog.pg_extension_config_dump('evcharge.bill', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.bill_revision', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.bill_revision_bill_revision_id_seq', '');
-- repair.sql: held bills released by repair, one at a time or by rule,
-- with every revision kept (bill_revision) and, where the operator wants
-- it, a notice to the driver when the amount changed.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TABLE evcharge.customer_notice (
	customer_notice_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	order_no text NOT NULL REFERENCES evcharge.bill,
	member_id bigint NOT NULL,
	revision int NOT NULL,
	old_total numeric(12, 2) NOT NULL,
	new_total numeric(12, 2) NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	sent_at timestamptz
);
CREATE INDEX customer_notice_unsent_idx ON evcharge.customer_notice (created_at) WHERE sent_at IS NULL;
COMMENT ON INDEX evcharge.customer_notice_unsent_idx IS 'notices waiting to be sent, oldest first';
COMMENT ON TABLE evcharge.customer_notice IS
	'"Amount adjusted" notices for drivers, written by repairs that change a bill''s total when the operator''s policy says so (anomaly_policy.notify_adjustment); the app sends them and sets sent_at';
COMMENT ON COLUMN evcharge.customer_notice.customer_notice_id IS 'row id';
COMMENT ON COLUMN evcharge.customer_notice.order_no IS 'the bill';
COMMENT ON COLUMN evcharge.customer_notice.member_id IS 'the driver to tell';
COMMENT ON COLUMN evcharge.customer_notice.revision IS 'the bill revision that changed the amount';
COMMENT ON COLUMN evcharge.customer_notice.old_total IS 'total before, yuan';
COMMENT ON COLUMN evcharge.customer_notice.new_total IS 'total after, yuan';
COMMENT ON COLUMN evcharge.customer_notice.created_at IS 'when the repair wrote it';
COMMENT ON COLUMN evcharge.customer_notice.sent_at IS 'when the app sent it (NULL: not yet)';

-- The driver is told of an adjusted amount when the operator says so.
CREATE FUNCTION evcharge.notice_adjustment(s evcharge.charge_session, p_revision int, p_old numeric, p_new numeric)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF p_new = p_old OR s.member_id IS NULL
	   OR NOT (SELECT p.notify_adjustment FROM evcharge.station_policy(s.station_id) p) THEN
		RETURN false;
	END IF;
	INSERT INTO evcharge.customer_notice (order_no, member_id, revision, old_total, new_total)
	VALUES (s.order_no, s.member_id, p_revision, p_old, p_new);
	PERFORM pg_notify('evcharge_notice', json_build_object('order_no', s.order_no, 'member_id', s.member_id,
		'old_total', p_old, 'new_total', p_new)::text);
	RETURN true;
END $$;
COMMENT ON FUNCTION evcharge.notice_adjustment(evcharge.charge_session, int, numeric, numeric) IS
	'when the operator''s notify_adjustment is on and a member''s bill changed amount: writes a customer_notice and sends NOTIFY evcharge_notice; true when it did';

CREATE FUNCTION evcharge.repair_bill(order_no text, reason text, method text DEFAULT 'recompute',
	energy_wh bigint DEFAULT NULL)
RETURNS evcharge.bill
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	v_order text := repair_bill.order_no;
	s evcharge.charge_session;
	old evcharge.bill;
	had_bill boolean;
	nb evcharge.bill;
	rated int;
BEGIN
	IF repair_bill.reason IS NULL OR btrim(repair_bill.reason) = '' THEN
		RAISE EXCEPTION 'a repair of order % needs a reason', coalesce(v_order, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Say why, as the driver or the support ticket would read it: ''pile record lost, recomputed from heartbeats''.';
	END IF;
	IF repair_bill.method IS NULL OR repair_bill.method NOT IN ('recompute', 'pile', 'platform', 'manual') THEN
		RAISE EXCEPTION 'repair method "%" is not known', repair_bill.method
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Use recompute (heartbeats, pile record and plans in force), pile (the pile''s energy), platform (the heartbeats'' energy) or manual (energy set by hand).';
	END IF;
	-- Energy is set by hand only in a manual repair; given to another
	-- method it would be dropped without a word.
	IF repair_bill.energy_wh IS NOT NULL AND repair_bill.method <> 'manual' THEN
		RAISE EXCEPTION 'a % repair takes no energy (% Wh given)', repair_bill.method, repair_bill.energy_wh
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Energy agreed by hand is a manual repair: repair_bill(order_no, reason, ''manual'', 12500).';
	END IF;
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = v_order;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', v_order
			USING ERRCODE = 'no_data_found', HINT = 'Order numbers are in evcharge.charge_session.';
	END IF;
	IF s.state IN ('pending', 'charging', 'occupied', 'cancelled') THEN
		RAISE EXCEPTION 'order % has no bill to repair: its session is %', v_order, s.state
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'A bill is repaired once its session has ended.';
	END IF;
	-- One repair at a time per bill: a second one fails at once, it does not wait.
	BEGIN
		PERFORM 1 FROM evcharge.charge_session cs WHERE cs.order_no = v_order FOR UPDATE NOWAIT;
		SELECT * INTO old FROM evcharge.bill b WHERE b.order_no = v_order FOR UPDATE NOWAIT;
		had_bill := FOUND;
	EXCEPTION WHEN lock_not_available THEN
		RAISE EXCEPTION 'bill % is being repaired or billed by another session', v_order
			USING ERRCODE = 'lock_not_available',
			      HINT = 'Wait for it to finish, then look at evcharge.bill_revision before repairing again.';
	END;
	PERFORM 1 FROM evcharge.coupon c WHERE c.member_id = s.member_id AND c.used_order_no IS NULL FOR UPDATE;
	-- Energy by hand beyond any bill of the operator is refused before it is priced.
	IF repair_bill.method = 'manual' AND repair_bill.energy_wh IS NOT NULL THEN
		PERFORM evcharge.check_bill_limits((SELECT st.operator_id FROM evcharge.station st WHERE st.station_id = s.station_id),
			repair_bill.energy_wh, NULL, format('a repair of order %s', v_order));
	END IF;
	nb := evcharge.compute_bill(v_order, repair_bill.method, repair_bill.energy_wh);
	-- Plausible: energy set by hand no more than the gun can deliver in the
	-- bill's span, and no bill beyond the operator's limits, whatever the method.
	SELECT pl.rated_power_w INTO rated FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(s.gun);
	IF repair_bill.method = 'manual' AND rated IS NOT NULL
	   AND nb.energy_wh > evcharge.gun_energy_limit(rated, nb.started_at, nb.ended_at) THEN
		RAISE EXCEPTION '% Wh cannot have been charged by gun % from % to %', nb.energy_wh, s.gun, nb.started_at, nb.ended_at
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('The gun is rated %s W: at most %s Wh in that time (rated power x time x 1.2 + 10 Wh).',
			                      rated, floor(evcharge.gun_energy_limit(rated, nb.started_at, nb.ended_at))),
			      HINT = 'Check the energy agreed; if the pile''s own record is right, repair with method pile.';
	END IF;
	PERFORM evcharge.check_bill_limits((SELECT st.operator_id FROM evcharge.station st WHERE st.station_id = s.station_id),
		nb.energy_wh, nb.total, format('a repair of order %s', v_order));

	-- The same repair again changes nothing and returns the bill as it is.
	IF had_bill AND old.state IN ('final', 'settled')
	   AND (nb.energy_wh, nb.wh_by_class, nb.energy_fee, nb.service_fee, nb.occupancy_fee, nb.discount,
	        nb.total, nb.energy_source, nb.coupon_id, evcharge.anomaly_codes(nb.anomalies))
	       IS NOT DISTINCT FROM
	       (old.energy_wh, old.wh_by_class, old.energy_fee, old.service_fee, old.occupancy_fee, old.discount,
	        old.total, old.energy_source, old.coupon_id, evcharge.anomaly_codes(old.anomalies)) THEN
		RETURN old;
	END IF;

	-- A settled bill stays settled: the difference moves as an adjustment.
	IF had_bill AND old.state = 'settled' THEN
		nb.state := 'settled';
	END IF;
	nb := evcharge.store_bill(nb, repair_bill.method, repair_bill.reason);
	IF had_bill AND old.state = 'settled' THEN
		PERFORM evcharge.adjust_settled_bill(v_order, old, nb, repair_bill.reason);
	END IF;

	IF had_bill THEN
		PERFORM evcharge.notice_adjustment(s, nb.revision, old.total, nb.total);
	END IF;
	RETURN nb;
END $$;
COMMENT ON FUNCTION evcharge.repair_bill(text, text, text, bigint) IS
	'recomputes a bill (recompute: heartbeats, pile record and plans in force; pile: the pile''s energy; platform: the heartbeats'' energy; manual: energy_wh), releases it and records the revision with the reason (a settled bill stays settled and the difference is posted to the ledger); the same repair twice changes nothing; a repair already running on the bill makes this one fail at once (55P03); refused (22023): energy given to a method other than manual, manual energy beyond what the gun can deliver in the bill''s span (gun_energy_limit), a bill beyond the operator''s limits (check_bill_limits)';

CREATE FUNCTION evcharge.repair_bills(codes evcharge.anomaly_set, station_id bigint, day date, reason text,
	method text DEFAULT 'recompute')
RETURNS TABLE (order_no text, old_total numeric, new_total numeric, state text, outcome text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tz text;
	b record;
	nb evcharge.bill;
	msg text;
BEGIN
	IF repair_bills.codes IS NULL OR repair_bills.codes OPERATOR(evcharge.=) ''::evcharge.anomaly_set THEN
		RAISE EXCEPTION 'a repair by rule needs the anomaly codes it applies to'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'E.g. repair_bills(''1'', 42, ''2026-11-20'', ''pile records lost in the outage'').';
	END IF;
	IF repair_bills.day IS NULL OR NOT isfinite(repair_bills.day) THEN
		RAISE EXCEPTION 'a repair by rule needs the day the bills ended on, not %', coalesce(repair_bills.day::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Give the day in the station''s time zone, e.g. ''2026-11-20''.';
	END IF;
	SELECT st.tz INTO tz FROM evcharge.station st WHERE st.station_id = repair_bills.station_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'station % is not known', repair_bills.station_id
			USING ERRCODE = 'no_data_found', HINT = 'Stations are in evcharge.station.';
	END IF;
	FOR b IN
		SELECT bl.order_no, bl.total, bl.revision FROM evcharge.bill bl
		WHERE bl.station_id = repair_bills.station_id AND bl.state <> 'settled'
		  AND bl.anomalies OPERATOR(evcharge.@>) repair_bills.codes
		  AND bl.ended_at >= (repair_bills.day::timestamp AT TIME ZONE tz)
		  AND bl.ended_at < ((repair_bills.day + 1)::timestamp AT TIME ZONE tz)
		ORDER BY bl.order_no
	LOOP
		order_no := b.order_no;
		old_total := b.total;
		BEGIN
			nb := evcharge.repair_bill(b.order_no, repair_bills.reason, repair_bills.method);
			new_total := nb.total;
			state := nb.state;
			outcome := CASE WHEN nb.revision > b.revision THEN 'repaired' ELSE 'unchanged' END;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
			new_total := NULL;
			state := NULL;
			outcome := 'skipped: ' || msg;
		END;
		RETURN NEXT;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.repair_bills(evcharge.anomaly_set, bigint, date, text, text) IS
	'repairs by rule every unsettled bill of a station that carries all the given codes and ended on the given day (station''s local time), each as repair_bill() would; one row per bill with its outcome (repaired, unchanged, or skipped with the reason)';

SELECT pg_catalog.pg_extension_config_dump('evcharge.customer_notice', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.customer_notice_customer_notice_id_seq', '');
-- report.sql: the anomaly statistics operators compiled by hand: per
-- start channel, per partner and per firmware version, over a period of
-- days or a month, every anomaly code a bill carried at any time beside the
-- sessions, successful bills and bills still to come of the same group
-- (anomaly_report, anomaly_report_month).  It reads bills (bill.sql), their
-- revisions and the sessions not billed yet (session.sql); it writes
-- nothing.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- The report over the operator's stations for the sessions whose charging
-- ended between from_day and to_day, both included, on the station's wall
-- clock.  A bill counts under every code it carried at any time: the codes
-- it has now and those of every revision (a lost bill completed by its
-- record later, a bill a repair cleared).  Rows: the group's own figures
-- (code NULL), then one per code seen in the group; groups are the total,
-- each start channel, each partner and each firmware version.
CREATE FUNCTION evcharge.anomaly_report(operator_id bigint, from_day date, to_day date)
RETURNS TABLE (dimension text, value text, code int, code_name text, bills bigint, bills_now bigint,
	sessions bigint, successful bigint, pending bigint, share numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 100 SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE
	hint text := 'E.g. anomaly_report(12, ''2026-11-01'', ''2026-11-30'') for November 2026, or anomaly_report_month(12, ''2026-11-01'').';
BEGIN
	IF anomaly_report.operator_id IS NULL THEN
		RAISE EXCEPTION 'operator_id of an anomaly report cannot be NULL'
			USING ERRCODE = 'null_value_not_allowed',
			      DETAIL = 'Every argument is required: the operator, the first day and the last day.', HINT = hint;
	END IF;
	IF anomaly_report.from_day IS NULL THEN
		RAISE EXCEPTION 'from_day of an anomaly report cannot be NULL'
			USING ERRCODE = 'null_value_not_allowed',
			      DETAIL = 'Every argument is required: the operator, the first day and the last day.', HINT = hint;
	END IF;
	IF anomaly_report.to_day IS NULL THEN
		RAISE EXCEPTION 'to_day of an anomaly report cannot be NULL'
			USING ERRCODE = 'null_value_not_allowed',
			      DETAIL = 'Every argument is required: the operator, the first day and the last day.', HINT = hint;
	END IF;
	IF anomaly_report.from_day > anomaly_report.to_day THEN
		RAISE EXCEPTION 'report period from "%" to "%" is empty',
			CASE WHEN isfinite(anomaly_report.from_day) THEN to_char(anomaly_report.from_day, 'YYYY-MM-DD')
			     ELSE anomaly_report.from_day::text END,
			CASE WHEN isfinite(anomaly_report.to_day) THEN to_char(anomaly_report.to_day, 'YYYY-MM-DD')
			     ELSE anomaly_report.to_day::text END
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'The first day is after the last; both days are part of the period.', HINT = hint;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM evcharge.operator o WHERE o.operator_id = anomaly_report.operator_id) THEN
		RAISE EXCEPTION 'operator "%" is not known', anomaly_report.operator_id
			USING ERRCODE = 'no_data_found',
			      DETAIL = format('No row of evcharge.operator has operator_id %s.', anomaly_report.operator_id),
			      HINT = 'Operators are in evcharge.operator.';
	END IF;

	RETURN QUERY
	WITH ended AS (
		-- Billed sessions: every set of codes the bill ever had.  Each
		-- change of a bill is a revision with the bill before and after,
		-- so the current codes and those of the revisions are all of them.
		SELECT b.channel AS ch, cs.partner_id AS pid, pa.name AS pname, pl.firmware AS fw, true AS billed,
		       b.anomalies OPERATOR(evcharge.|) coalesce(rv.seen, ''::evcharge.anomaly_set) AS ever,
		       b.anomalies AS cur
		FROM evcharge.station st
		JOIN evcharge.bill b ON b.station_id = st.station_id
		JOIN evcharge.charge_session cs ON cs.order_no = b.order_no
		LEFT JOIN evcharge.partner pa ON pa.partner_id = cs.partner_id
		LEFT JOIN evcharge.pile pl ON pl.pile_id OPERATOR(evcharge.=) evcharge.pile(b.gun)
		LEFT JOIN LATERAL (
			SELECT evcharge.anomaly_union(x.codes) AS seen
			FROM evcharge.bill_revision r,
			     LATERAL (VALUES ((r.before ->> 'anomalies')::evcharge.anomaly_set),
			                     ((r.after ->> 'anomalies')::evcharge.anomaly_set)) AS x(codes)
			WHERE r.order_no = b.order_no AND b.revision > 0) rv ON true
		WHERE st.operator_id = anomaly_report.operator_id
		  AND b.ended_at >= (anomaly_report.from_day::timestamp AT TIME ZONE st.tz)
		  AND b.ended_at < ((anomaly_report.to_day + 1)::timestamp AT TIME ZONE st.tz)
		  -- Implied by the two above (no zone is a day away from UTC), but
		  -- without a station's zone: the planner sees the period's size
		  -- and reads bill_station_idx per station for it, not all bills.
		  AND b.ended_at >= (anomaly_report.from_day::timestamp AT TIME ZONE 'UTC') - interval '1 day'
		  AND b.ended_at < ((anomaly_report.to_day + 1)::timestamp AT TIME ZONE 'UTC') + interval '1 day'
		UNION ALL
		-- Sessions whose charging has ended and that have no bill yet
		-- (the pile record not in, not given up on; or the unplug awaited).
		SELECT cs.channel, cs.partner_id, pa.name, pl.firmware, false, NULL, NULL
		FROM evcharge.station st
		JOIN evcharge.charge_session cs ON cs.station_id = st.station_id
		LEFT JOIN evcharge.partner pa ON pa.partner_id = cs.partner_id
		LEFT JOIN evcharge.pile pl ON pl.pile_id OPERATOR(evcharge.=) evcharge.pile(cs.gun)
		WHERE st.operator_id = anomaly_report.operator_id
		  AND cs.state IN ('occupied', 'ended')
		  AND NOT EXISTS (SELECT 1 FROM evcharge.bill b WHERE b.order_no = cs.order_no)
		  -- coalesce(cs.charging_ended_at, cs.last_ts) in the period, said
		  -- so that charge_session_ended_idx serves both branches (the
		  -- bounds in UTC are implied, as above, and tell the planner).
		  AND ((cs.charging_ended_at >= (anomaly_report.from_day::timestamp AT TIME ZONE st.tz)
		        AND cs.charging_ended_at < ((anomaly_report.to_day + 1)::timestamp AT TIME ZONE st.tz)
		        AND cs.charging_ended_at >= (anomaly_report.from_day::timestamp AT TIME ZONE 'UTC') - interval '1 day'
		        AND cs.charging_ended_at < ((anomaly_report.to_day + 1)::timestamp AT TIME ZONE 'UTC') + interval '1 day')
		       OR (cs.charging_ended_at IS NULL
		           AND cs.last_ts >= (anomaly_report.from_day::timestamp AT TIME ZONE st.tz)
		           AND cs.last_ts < ((anomaly_report.to_day + 1)::timestamp AT TIME ZONE st.tz)))
	), grouped AS (
		-- Each session once per dimension it belongs to (partner only
		-- when it came through one), and once more per code it carried.
		SELECT d.ord, d.dim, d.gkey, min(d.val) AS val, c.code AS c_code,
		       count(*) AS n,
		       count(*) FILTER (WHERE evcharge.anomaly_has(e.cur, c.code)) AS n_now,
		       count(*) FILTER (WHERE e.billed AND e.ever OPERATOR(evcharge.=) ''::evcharge.anomaly_set) AS n_ok,
		       count(*) FILTER (WHERE e.billed AND e.ever OPERATOR(evcharge.<>) ''::evcharge.anomaly_set) AS n_bad,
		       count(*) FILTER (WHERE e.billed AND e.cur OPERATOR(evcharge.<>) ''::evcharge.anomaly_set) AS n_bad_now,
		       count(*) FILTER (WHERE NOT e.billed) AS n_pending
		FROM ended e
		CROSS JOIN LATERAL (VALUES (1, 'total', 'all', 'all'), (2, 'channel', e.ch, e.ch),
			(3, 'partner', e.pname, e.pid::text), (4, 'firmware', e.fw, e.fw)) AS d(ord, dim, val, gkey)
		CROSS JOIN LATERAL (SELECT NULL::int UNION ALL SELECT unnest(evcharge.anomaly_codes(e.ever))) AS c(code)
		WHERE d.dim <> 'partner' OR e.pid IS NOT NULL
		GROUP BY d.ord, d.dim, d.gkey, c.code
	)
	SELECT r.dim, r.val, r.c_code, r.c_name, r.n_bills, r.n_bills_now, r.n_sessions, r.n_ok, r.n_pending,
	       round(r.n_bills::numeric / nullif(r.n_sessions, 0), 4)
	FROM (
		SELECT g.ord, g.dim, g.val, g.gkey, g.c_code, ac.name AS c_name,
		       CASE WHEN g.c_code IS NULL THEN g.n_bad ELSE g.n END AS n_bills,
		       CASE WHEN g.c_code IS NULL THEN g.n_bad_now ELSE g.n_now END AS n_bills_now,
		       gs.n AS n_sessions, gs.n_ok, gs.n_pending
		FROM grouped g
		JOIN grouped gs ON gs.ord = g.ord AND gs.gkey IS NOT DISTINCT FROM g.gkey AND gs.c_code IS NULL
		LEFT JOIN evcharge.anomaly_code ac ON ac.code = g.c_code
		UNION ALL
		-- No session at all: the total says so.
		SELECT 1, 'total', 'all', 'all', NULL, NULL, 0, 0, 0, 0, 0
		WHERE NOT EXISTS (SELECT 1 FROM ended)
	) r
	ORDER BY r.ord, r.val NULLS LAST, r.gkey NULLS LAST, r.c_code NULLS FIRST;
END $$;
COMMENT ON FUNCTION evcharge.anomaly_report(bigint, date, date) IS
	'anomaly statistics of an operator''s sessions whose charging ended from from_day to to_day (both included, station''s local time), in total and per start channel, partner and firmware version: per group its sessions, successful bills (never any anomaly), pending sessions (ended, not billed yet) and bills with any anomaly (code NULL), then per code the bills that carried it at any time (current codes and every revision''s) and those that still carry it; share is bills / sessions';

-- The same for one calendar month, named by any of its days.
CREATE FUNCTION evcharge.anomaly_report_month(operator_id bigint, month date)
RETURNS TABLE (dimension text, value text, code int, code_name text, bills bigint, bills_now bigint,
	sessions bigint, successful bigint, pending bigint, share numeric)
LANGUAGE plpgsql STABLE PARALLEL SAFE ROWS 100 SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	first_day date;
BEGIN
	IF anomaly_report_month.month IS NULL THEN
		RAISE EXCEPTION 'month of an anomaly report cannot be NULL'
			USING ERRCODE = 'null_value_not_allowed',
			      DETAIL = 'The month is named by any of its days.',
			      HINT = 'E.g. anomaly_report_month(12, ''2026-11-01'') for November 2026.';
	END IF;
	IF NOT isfinite(anomaly_report_month.month) THEN
		RAISE EXCEPTION 'month "%" is not a month', anomaly_report_month.month
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'infinity and -infinity lie in no month.',
			      HINT = 'Name the month by any of its days: anomaly_report_month(12, ''2026-11-01''); for all time use anomaly_report(12, ''-infinity'', ''infinity'').';
	END IF;
	first_day := date_trunc('month', anomaly_report_month.month)::date;
	RETURN QUERY
	SELECT * FROM evcharge.anomaly_report(anomaly_report_month.operator_id, first_day,
		(first_day + interval '1 month' - interval '1 day')::date);
END $$;
COMMENT ON FUNCTION evcharge.anomaly_report_month(bigint, date) IS
	'anomaly_report() for the calendar month that contains the given day, from its first day to its last';
-- ledger.sql: the double-entry ledger.  Accounts (wallets, revenue, the
-- payment provider's clearing account, ...), transactions of entries that
-- sum to zero (enforced at commit), immutable once written, balances kept
-- with the entries, and the one function that posts (post_txn), idempotent
-- on the event's own key.  Top-ups, settlement and refunds are in
-- money.sql.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TABLE evcharge.sub_operator (
	sub_operator_id bigint PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	name text NOT NULL CHECK (name <> '')
);
COMMENT ON TABLE evcharge.sub_operator IS
	'A sub-operator (a bus company, a station owner) to which part of an operator''s revenue is attributed';
COMMENT ON COLUMN evcharge.sub_operator.sub_operator_id IS 'sub-operator number';
COMMENT ON COLUMN evcharge.sub_operator.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.sub_operator.name IS 'its name';

CREATE TABLE evcharge.member (
	member_id bigint PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	group_id bigint REFERENCES evcharge.customer_group,
	vin text,
	card_no text,
	created_at timestamptz NOT NULL DEFAULT now(),
	partner_id bigint REFERENCES evcharge.partner
);
CREATE INDEX member_group_idx ON evcharge.member (group_id);
COMMENT ON INDEX evcharge.member_group_idx IS 'the members of a customer group (department)';
CREATE UNIQUE INDEX member_card_idx ON evcharge.member (operator_id, card_no) WHERE card_no IS NOT NULL;
COMMENT ON INDEX evcharge.member_card_idx IS 'a card belongs to one member of the operator: a start by card finds who pays';
CREATE UNIQUE INDEX member_vin_idx ON evcharge.member (operator_id, vin) WHERE vin IS NOT NULL;
COMMENT ON INDEX evcharge.member_vin_idx IS 'a vehicle belongs to one member of the operator: a start by VIN finds who pays';
COMMENT ON TABLE evcharge.member IS
	'A driver with a wallet; a member of a department whose group pays for its members charges to the department''s wallet';
COMMENT ON COLUMN evcharge.member.member_id IS 'member number (charge_session.member_id)';
COMMENT ON COLUMN evcharge.member.operator_id IS 'the operator the member charges with';
COMMENT ON COLUMN evcharge.member.group_id IS 'the member''s customer group (department), if any';
COMMENT ON COLUMN evcharge.member.vin IS 'the vehicle''s VIN, for attribution to a sub-operator';
COMMENT ON COLUMN evcharge.member.card_no IS 'charging card number, for attribution to a sub-operator';
COMMENT ON COLUMN evcharge.member.created_at IS 'when registered';
COMMENT ON COLUMN evcharge.member.partner_id IS 'an interconnection partner''s user (e.g. a card of the partner''s fleet): the partner pays for the member''s charges, under its contract''s start channels';

ALTER TABLE evcharge.customer_group ADD COLUMN pays_for_members boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN evcharge.customer_group.pays_for_members IS
	'a department account: its members'' bills are paid from the department''s wallet, not their own';

-- What is attributed to a sub-operator: a station's charges, a department's,
-- a vehicle's (VIN) or a card's.  The most specific rule wins: VIN, card,
-- department, station.
CREATE TABLE evcharge.attribution (
	attribution_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	sub_operator_id bigint NOT NULL REFERENCES evcharge.sub_operator,
	station_id bigint REFERENCES evcharge.station,
	group_id bigint REFERENCES evcharge.customer_group,
	vin text,
	card_no text,
	CHECK (num_nonnulls(station_id, group_id, vin, card_no) = 1)
);
CREATE UNIQUE INDEX attribution_station_idx ON evcharge.attribution (station_id) WHERE station_id IS NOT NULL;
COMMENT ON INDEX evcharge.attribution_station_idx IS 'a station is attributed to one sub-operator at most';
CREATE UNIQUE INDEX attribution_group_idx ON evcharge.attribution (group_id) WHERE group_id IS NOT NULL;
COMMENT ON INDEX evcharge.attribution_group_idx IS 'a customer group is attributed to one sub-operator at most';
CREATE UNIQUE INDEX attribution_vin_idx ON evcharge.attribution (vin) WHERE vin IS NOT NULL;
COMMENT ON INDEX evcharge.attribution_vin_idx IS 'a vehicle is attributed to one sub-operator at most';
CREATE UNIQUE INDEX attribution_card_idx ON evcharge.attribution (card_no) WHERE card_no IS NOT NULL;
COMMENT ON INDEX evcharge.attribution_card_idx IS 'a card is attributed to one sub-operator at most';
COMMENT ON TABLE evcharge.attribution IS
	'Which charges belong to a sub-operator: by station, department (group), vehicle (VIN) or card; the most specific applies (VIN, card, department, station)';
COMMENT ON COLUMN evcharge.attribution.attribution_id IS 'row id';
COMMENT ON COLUMN evcharge.attribution.sub_operator_id IS 'the sub-operator';
COMMENT ON COLUMN evcharge.attribution.station_id IS 'every charge at this station';
COMMENT ON COLUMN evcharge.attribution.group_id IS 'every charge by members of this group';
COMMENT ON COLUMN evcharge.attribution.vin IS 'every charge of this vehicle';
COMMENT ON COLUMN evcharge.attribution.card_no IS 'every charge with this card';

CREATE TABLE evcharge.account (
	account_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	kind text NOT NULL CHECK (kind IN ('member_wallet', 'department_wallet', 'partner_prepaid',
		'partner_receivable', 'partner_payable', 'unassigned_receivable', 'revenue_electricity',
		'revenue_service', 'revenue_occupancy', 'refunds_payable', 'fee_income', 'provider_clearing',
		'bank', 'adjustments')),
	owner_id bigint,
	sub_operator_id bigint REFERENCES evcharge.sub_operator,
	balance numeric(14, 2) NOT NULL DEFAULT 0,
	alert_threshold numeric(14, 2),
	alert_armed boolean NOT NULL DEFAULT true,
	created_at timestamptz NOT NULL DEFAULT now(),
	CHECK ((kind IN ('member_wallet', 'department_wallet', 'partner_prepaid', 'partner_receivable', 'partner_payable'))
	       = (owner_id IS NOT NULL)),
	CHECK (sub_operator_id IS NULL OR kind LIKE 'revenue_%'),
	CHECK (alert_threshold <> 'NaN'),
	UNIQUE NULLS NOT DISTINCT (operator_id, kind, owner_id, sub_operator_id),
	-- What ledger entries reference: an entry's account is in its operator's books.
	CONSTRAINT account_operator_key UNIQUE (account_id, operator_id)
);
COMMENT ON TABLE evcharge.account IS
	'An account of the ledger; its balance is kept with its entries (verify_ledger() checks), in the account''s natural sign: what a wallet holds, what revenue earned, what the provider holds for us';
COMMENT ON COLUMN evcharge.account.account_id IS 'account number';
COMMENT ON COLUMN evcharge.account.operator_id IS 'the operator whose books it is in';
COMMENT ON COLUMN evcharge.account.kind IS
	'member_wallet, department_wallet, partner_prepaid (money a prepaid partner deposited), partner_receivable (an affiliated partner owes), partner_payable, unassigned_receivable (bills with no payer yet), revenue_electricity, revenue_service, revenue_occupancy, refunds_payable, fee_income, provider_clearing (money at the payment provider), bank (the operator''s bank account: partners'' payments in), adjustments (manual credits)';
COMMENT ON COLUMN evcharge.account.owner_id IS 'the member, group or partner whose account it is';
COMMENT ON COLUMN evcharge.account.sub_operator_id IS 'for revenue: the sub-operator it is attributed to (NULL: the operator itself)';
COMMENT ON COLUMN evcharge.account.balance IS 'balance in yuan, natural sign (credit-normal accounts: credits minus debits)';
COMMENT ON COLUMN evcharge.account.alert_threshold IS 'for a department wallet: NOTIFY evcharge_alert once when the balance falls below it';
COMMENT ON COLUMN evcharge.account.alert_armed IS 'the alert fires on the next crossing (re-armed when the balance is back above the threshold)';
COMMENT ON COLUMN evcharge.account.created_at IS 'when opened';

-- +1: debit-normal (assets, expenses); -1: credit-normal (liabilities, revenue).
CREATE FUNCTION evcharge.account_sign(kind text) RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE WHEN kind IN ('partner_receivable', 'unassigned_receivable', 'provider_clearing', 'bank', 'adjustments') THEN 1 ELSE -1 END;
COMMENT ON FUNCTION evcharge.account_sign(text) IS
	'+1 for debit-normal kinds (receivables, provider clearing, bank, adjustments), -1 for credit-normal ones (wallets, revenue, payables)';

-- The account of a kind for an operator (and owner or sub-operator), opened
-- on first use.  An account is opened only for what the operator has: a
-- wallet for its own registered member, department (customer group) or
-- partner, revenue for its own sub-operator; anything else is an error
-- (P0002), never an account of nobody's money.
CREATE FUNCTION evcharge.account_of(p_operator_id bigint, p_kind text, p_owner_id bigint DEFAULT NULL,
	p_sub_operator_id bigint DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	id bigint;
	owner_kind text;
	owner_op bigint;
BEGIN
	SELECT a.account_id INTO id FROM evcharge.account a
	WHERE a.operator_id = p_operator_id AND a.kind = p_kind AND a.owner_id IS NOT DISTINCT FROM p_owner_id
	  AND a.sub_operator_id IS NOT DISTINCT FROM p_sub_operator_id;
	IF FOUND THEN
		RETURN id;
	END IF;
	-- Not open yet: check what it would be opened for.
	IF NOT EXISTS (SELECT 1 FROM evcharge.operator o WHERE o.operator_id = p_operator_id) THEN
		RAISE EXCEPTION 'operator % is not registered', coalesce(p_operator_id::text, 'NULL')
			USING ERRCODE = 'no_data_found',
			      DETAIL = format('An account of kind %s was asked for.', coalesce(p_kind, 'NULL')),
			      HINT = 'Operators are in evcharge.operator.';
	END IF;
	owner_kind := CASE
		WHEN p_kind = 'member_wallet' THEN 'member'
		WHEN p_kind = 'department_wallet' THEN 'customer group'
		WHEN p_kind IN ('partner_prepaid', 'partner_receivable', 'partner_payable') THEN 'partner'
		WHEN p_kind IN ('unassigned_receivable', 'revenue_electricity', 'revenue_service', 'revenue_occupancy',
		                'refunds_payable', 'fee_income', 'provider_clearing', 'bank', 'adjustments') THEN ''
		END;
	IF owner_kind IS NULL THEN
		RAISE EXCEPTION 'account kind "%" is not known', coalesce(p_kind, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Kinds are member_wallet, department_wallet, partner_prepaid, partner_receivable, partner_payable, unassigned_receivable, revenue_electricity, revenue_service, revenue_occupancy, refunds_payable, fee_income, provider_clearing, bank, adjustments.';
	END IF;
	IF (owner_kind <> '') <> (p_owner_id IS NOT NULL) THEN
		RAISE EXCEPTION 'an account of kind % %', p_kind,
			CASE WHEN owner_kind <> '' THEN 'needs an owner' ELSE 'has no owner' END
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('Owner %s was given.', coalesce(p_owner_id::text, 'NULL')),
			      HINT = 'Wallets, deposits, receivables and payables belong to a member, group or partner; the operator''s own accounts to nobody.';
	END IF;
	IF p_sub_operator_id IS NOT NULL AND p_kind NOT LIKE 'revenue\_%' THEN
		RAISE EXCEPTION 'an account of kind % is not attributed to a sub-operator', p_kind
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('Sub-operator %s was given.', p_sub_operator_id),
			      HINT = 'Only revenue accounts are kept per sub-operator.';
	END IF;
	owner_op := CASE owner_kind
		WHEN 'member' THEN (SELECT m.operator_id FROM evcharge.member m WHERE m.member_id = p_owner_id)
		WHEN 'customer group' THEN (SELECT g.operator_id FROM evcharge.customer_group g WHERE g.group_id = p_owner_id)
		WHEN 'partner' THEN (SELECT pa.operator_id FROM evcharge.partner pa WHERE pa.partner_id = p_owner_id)
		END;
	IF owner_kind <> '' AND owner_op IS DISTINCT FROM p_operator_id THEN
		RAISE EXCEPTION 'operator % has no % %', p_operator_id, owner_kind, p_owner_id
			USING ERRCODE = 'no_data_found',
			      DETAIL = CASE WHEN owner_op IS NULL THEN format('No %s %s is registered; no %s is opened for it.',
			                                                      owner_kind, p_owner_id, p_kind)
			                    ELSE format('%s %s is operator %s''s; an account is in the books of its owner''s operator.',
			                                upper(left(owner_kind, 1)) || substr(owner_kind, 2), p_owner_id, owner_op) END,
			      HINT = CASE owner_kind WHEN 'member' THEN 'Register the member in evcharge.member first.'
			                             WHEN 'partner' THEN 'Register the partner in evcharge.partner first.'
			                             ELSE 'Register the group in evcharge.customer_group first.' END;
	END IF;
	IF p_sub_operator_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM evcharge.sub_operator so
	                                                 WHERE so.sub_operator_id = p_sub_operator_id
	                                                   AND so.operator_id = p_operator_id) THEN
		RAISE EXCEPTION 'operator % has no sub-operator %', p_operator_id, p_sub_operator_id
			USING ERRCODE = 'no_data_found', HINT = 'Sub-operators are in evcharge.sub_operator.';
	END IF;
	INSERT INTO evcharge.account (operator_id, kind, owner_id, sub_operator_id)
	VALUES (p_operator_id, p_kind, p_owner_id, p_sub_operator_id)
	ON CONFLICT (operator_id, kind, owner_id, sub_operator_id) DO NOTHING
	RETURNING account_id INTO id;
	IF id IS NULL THEN
		SELECT a.account_id INTO id FROM evcharge.account a
		WHERE a.operator_id = p_operator_id AND a.kind = p_kind AND a.owner_id IS NOT DISTINCT FROM p_owner_id
		  AND a.sub_operator_id IS NOT DISTINCT FROM p_sub_operator_id;
	END IF;
	RETURN id;
END $$;
COMMENT ON FUNCTION evcharge.account_of(bigint, text, bigint, bigint) IS
	'the account of this kind for the operator (and owner, or sub-operator for revenue), opened with balance 0 on first use; opened only for the operator''s own registered member, group, partner or sub-operator (else P0002), for a known kind with an owner exactly when the kind has one (else 22023)';

CREATE TABLE evcharge.ledger_txn (
	txn_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	kind text NOT NULL CHECK (kind IN ('top_up', 'manual_credit', 'bill', 'bill_adjustment', 'refund_request',
		'refund_approve', 'refund_reject', 'partner_payment')),
	idem_key text NOT NULL CHECK (idem_key <> ''),
	order_no text,
	note text,
	result jsonb,
	created_by text NOT NULL DEFAULT current_user,
	created_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (kind, idem_key),
	-- What ledger entries reference: an entry is in its transaction's operator's books.
	CONSTRAINT ledger_txn_operator_key UNIQUE (txn_id, operator_id)
);
CREATE INDEX ledger_txn_order_idx ON evcharge.ledger_txn (order_no) WHERE order_no IS NOT NULL;
COMMENT ON INDEX evcharge.ledger_txn_order_idx IS 'the ledger transactions of a bill';
CREATE INDEX ledger_txn_created_idx ON evcharge.ledger_txn (operator_id, created_at);
COMMENT ON INDEX evcharge.ledger_txn_created_idx IS 'an operator''s transactions in time: daily report, reconciliation';
COMMENT ON TABLE evcharge.ledger_txn IS
	'One movement of money: a set of ledger entries that sum to zero, made once per external event (its kind and key are unique); never changed: corrections are new transactions';
COMMENT ON COLUMN evcharge.ledger_txn.txn_id IS 'transaction number';
COMMENT ON COLUMN evcharge.ledger_txn.operator_id IS 'whose books';
COMMENT ON COLUMN evcharge.ledger_txn.kind IS 'top_up, manual_credit, bill, bill_adjustment, refund_request, refund_approve, refund_reject, partner_payment';
COMMENT ON COLUMN evcharge.ledger_txn.idem_key IS 'the event''s own key: the provider''s transaction id, the order number, the refund id; applying it again returns this transaction';
COMMENT ON COLUMN evcharge.ledger_txn.order_no IS 'the bill, for bill and bill_adjustment';
COMMENT ON COLUMN evcharge.ledger_txn.note IS 'why, for manual credits and adjustments';
COMMENT ON COLUMN evcharge.ledger_txn.result IS 'what the first application returned (e.g. the balance after), returned again on a repeat';
COMMENT ON COLUMN evcharge.ledger_txn.created_by IS 'database user';
COMMENT ON COLUMN evcharge.ledger_txn.created_at IS 'when';

-- One operator per transaction, declared: an entry carries its operator,
-- and the two foreign keys make it the operator of its transaction and of
-- its account.  No trigger: a restore checks them as any foreign key.
CREATE TABLE evcharge.ledger_entry (
	entry_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	txn_id bigint NOT NULL,
	account_id bigint NOT NULL,
	amount numeric(14, 2) NOT NULL CHECK (amount <> 0 AND amount <> 'NaN'),
	operator_id bigint NOT NULL,
	CONSTRAINT ledger_entry_txn_operator_fkey FOREIGN KEY (txn_id, operator_id)
		REFERENCES evcharge.ledger_txn (txn_id, operator_id),
	CONSTRAINT ledger_entry_account_operator_fkey FOREIGN KEY (account_id, operator_id)
		REFERENCES evcharge.account (account_id, operator_id)
);
CREATE INDEX ledger_entry_txn_idx ON evcharge.ledger_entry (txn_id);
COMMENT ON INDEX evcharge.ledger_entry_txn_idx IS 'the entries of a transaction';
CREATE INDEX ledger_entry_account_idx ON evcharge.ledger_entry (account_id);
COMMENT ON INDEX evcharge.ledger_entry_account_idx IS 'the entries of an account: statements, verify_ledger';
COMMENT ON TABLE evcharge.ledger_entry IS
	'One line of a transaction: an amount debited (positive) or credited (negative) to an account; the lines of a transaction sum to zero';
COMMENT ON COLUMN evcharge.ledger_entry.entry_id IS 'row id';
COMMENT ON COLUMN evcharge.ledger_entry.txn_id IS 'the transaction';
COMMENT ON COLUMN evcharge.ledger_entry.account_id IS 'the account';
COMMENT ON COLUMN evcharge.ledger_entry.amount IS 'yuan, debit positive, credit negative';
COMMENT ON COLUMN evcharge.ledger_entry.operator_id IS
	'whose books: the operator of its transaction and of its account (both foreign keys), so no transaction posts across operators';
COMMENT ON CONSTRAINT ledger_entry_txn_operator_fkey ON evcharge.ledger_entry IS
	'the entry is of an existing transaction, in that transaction''s operator''s books';
COMMENT ON CONSTRAINT ledger_entry_account_operator_fkey ON evcharge.ledger_entry IS
	'the entry is on an existing account of the same operator: no transaction moves money across operators';
COMMENT ON CONSTRAINT account_operator_key ON evcharge.account IS
	'(account, operator), referenced by ledger entries so that an entry''s account is in its operator''s books';
COMMENT ON CONSTRAINT ledger_txn_operator_key ON evcharge.ledger_txn IS
	'(transaction, operator), referenced by ledger entries so that an entry is in its transaction''s operator''s books';

-- Immutable: corrections are new transactions.
CREATE FUNCTION evcharge.ledger_immutable() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION 'the ledger cannot be changed: % on %', TG_OP, TG_TABLE_NAME
		USING ERRCODE = 'insufficient_privilege',
		      HINT = 'Post a correcting transaction (manual_credit, a repair''s adjustment, a refund).';
END $$;
COMMENT ON FUNCTION evcharge.ledger_immutable() IS 'trigger: refuses updates and deletes of ledger transactions and entries';
CREATE TRIGGER ledger_txn_immutable BEFORE UPDATE OR DELETE ON evcharge.ledger_txn
	FOR EACH ROW EXECUTE FUNCTION evcharge.ledger_immutable();
COMMENT ON TRIGGER ledger_txn_immutable ON evcharge.ledger_txn IS 'ledger transactions cannot be changed or deleted';
CREATE TRIGGER ledger_entry_immutable BEFORE UPDATE OR DELETE ON evcharge.ledger_entry
	FOR EACH ROW EXECUTE FUNCTION evcharge.ledger_immutable();
COMMENT ON TRIGGER ledger_entry_immutable ON evcharge.ledger_entry IS 'ledger entries cannot be changed or deleted';

-- Balances move with the entries, in the same statement.
CREATE FUNCTION evcharge.ledger_apply() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	UPDATE evcharge.account a SET balance = a.balance + d.delta * evcharge.account_sign(a.kind)
	FROM (SELECT n.account_id, sum(n.amount) AS delta FROM new_entries n GROUP BY n.account_id) d
	WHERE a.account_id = d.account_id;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.ledger_apply() IS 'trigger: adds new entries to their accounts'' balances';
CREATE TRIGGER ledger_apply AFTER INSERT ON evcharge.ledger_entry
	REFERENCING NEW TABLE AS new_entries
	FOR EACH STATEMENT EXECUTE FUNCTION evcharge.ledger_apply();
COMMENT ON TRIGGER ledger_apply ON evcharge.ledger_entry IS 'new entries move their accounts'' balances in the same statement';

-- An account opens at zero: its balance is what its entries make it
-- (ledger_apply).  A row that comes with a balance, as pg_restore's COPY of
-- the account table does, is opened at zero too, and the entries restored
-- after it bring the balance back, counted once.
CREATE FUNCTION evcharge.account_opens_at_zero() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	NEW.balance := 0;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.account_opens_at_zero() IS
	'trigger: a new account''s balance is 0 whatever the row says; its entries make its balance (so a restore does not count them twice)';
CREATE TRIGGER account_opens_at_zero BEFORE INSERT ON evcharge.account
	FOR EACH ROW EXECUTE FUNCTION evcharge.account_opens_at_zero();
COMMENT ON TRIGGER account_opens_at_zero ON evcharge.account IS
	'an account opens with balance 0: the balance is its entries'', applied by ledger_apply, also when a restore brings account and entries back';

-- Balanced at commit: a transaction whose entries do not sum to zero, or
-- that has fewer than two, cannot be committed.  The check hangs on the
-- entries, so that it runs when they are there: pg_restore (and a plain
-- dump through psql) loads ledger_txn and ledger_entry by separate COPYs,
-- each committed on its own, and the entries of every transaction come in
-- the same COPY.  A transaction row made now (created_at is the
-- transaction's start, as post_txn and any INSERT that leaves the default
-- make it) is checked too, which catches one left with no entry at all; a
-- row that carries an earlier time, as a restored one does, is not: its
-- entries are checked when they come, and verify_ledger() reports a
-- transaction without any.
CREATE FUNCTION evcharge.ledger_check_balanced() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s numeric;
	n bigint;
BEGIN
	SELECT coalesce(sum(e.amount), 0), count(*) INTO s, n FROM evcharge.ledger_entry e WHERE e.txn_id = NEW.txn_id;
	IF s <> 0 OR n < 2 THEN
		RAISE EXCEPTION 'ledger transaction % does not balance', NEW.txn_id
			USING ERRCODE = 'check_violation',
			      DETAIL = format('Its %s entries sum to %s; every transaction needs at least two entries summing to 0.', n, s),
			      HINT = 'Post money through evcharge.post_txn() or the functions built on it.';
	END IF;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.ledger_check_balanced() IS
	'constraint trigger, at commit, on ledger_entry and on ledger_txn rows made now: the transaction has at least two entries summing to zero';
CREATE CONSTRAINT TRIGGER ledger_entry_balanced AFTER INSERT ON evcharge.ledger_entry
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION evcharge.ledger_check_balanced();
COMMENT ON TRIGGER ledger_entry_balanced ON evcharge.ledger_entry IS
	'at commit: the transaction of each new entry sums to zero (also in a restore, which loads entries after their transactions)';
CREATE CONSTRAINT TRIGGER ledger_txn_balanced AFTER INSERT ON evcharge.ledger_txn
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.created_at = now())
	EXECUTE FUNCTION evcharge.ledger_check_balanced();
COMMENT ON TRIGGER ledger_txn_balanced ON evcharge.ledger_txn IS
	'at commit: a transaction made now has entries summing to zero (a restored row, with its earlier time, is checked by its entries)';

-- The one rule for the keys and references that make money move once: a
-- provider's transaction id, a staff request id, a bank reference, an order
-- number.  A key is compared exactly, so what looks alike must be alike: 1
-- to 128 characters, no white space at either end, no control or invisible
-- character (a key ' ' or 'k' || E'\n' is a callback gone wrong, not a
-- payment; a key of 100,000 characters is not anyone's id).
CREATE FUNCTION evcharge.check_key(p_key text, p_what text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	-- C0 and C1 controls, DEL, zero-width and direction marks, line and
	-- paragraph separators, word joiners, the byte order mark.
	invisible constant text := E'[\\u0001-\\u001f\\u007f-\\u009f\\u00ad\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\ufeff\\ufff9-\\ufffb]';
	-- What white space looks like at an end: spaces of every width.
	blank constant text := E'[ \\u00a0\\u1680\\u2000-\\u200a\\u202f\\u205f\\u3000]';
	shown text;
	at int;
	why text;
BEGIN
	IF p_key IS NOT NULL AND p_key <> '' AND char_length(p_key) <= 128 AND p_key !~ invisible
	   AND p_key !~ ('^' || blank) AND p_key !~ (blank || '$') THEN
		RETURN p_key;
	END IF;
	IF p_key IS NULL OR p_key = '' THEN
		RAISE EXCEPTION 'a % is needed', coalesce(p_what, 'key')
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('The key is %s.', CASE WHEN p_key IS NULL THEN 'NULL' ELSE 'empty' END),
			      HINT = 'Give the provider''s transaction id, the request id, the bank reference or the order number: 1 to 128 printable characters.';
	END IF;
	-- The key as JSON shows what cannot be seen (a newline as \n), and no
	-- more than 64 characters of it.
	shown := to_json(left(p_key, 64))::text || CASE WHEN char_length(p_key) > 64 THEN '...' ELSE '' END;
	IF char_length(p_key) > 128 THEN
		why := format('It is %s characters long; a key is at most 128.', char_length(p_key));
	ELSIF p_key ~ invisible THEN
		at := char_length(substring(p_key FROM ('^(.*?)' || invisible))) + 1;
		why := format('Character %s is U+%s, a control or invisible character.', at,
			upper(lpad(to_hex(ascii(substr(p_key, at, 1))), 4, '0')));
	ELSE
		why := 'It begins or ends with white space.';
	END IF;
	RAISE EXCEPTION '% % is not a valid key', coalesce(p_what, 'key'), shown
		USING ERRCODE = 'invalid_parameter_value', DETAIL = why,
		      HINT = 'A key is the event''s own id as its sender wrote it: 1 to 128 printable characters, no white space at either end, e.g. ''WX-4200001234202611201234''.';
END $$;
COMMENT ON FUNCTION evcharge.check_key(text, text) IS
	'returns the key (provider transaction id, request id, bank reference, order number) if it is 1 to 128 characters with no white space at either end and no control or invisible character, else raises 22023 naming what it was for; the one rule every money function applies to the keys that make it idempotent';

-- Locks accounts the way every function that moves money does: in account
-- order, the last of the locks a money function takes (docs/money.md,
-- "Locks and deadlocks"), so that two of them never wait for each other in
-- a circle.  FOR NO KEY UPDATE is what the balance update takes anyway; it
-- does not block rows that only refer to an account (the balance guard's
-- stop request, a refund, a ledger entry), whose foreign keys take KEY SHARE.
CREATE FUNCTION evcharge.lock_accounts(p_accounts bigint[]) RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n int;
BEGIN
	PERFORM 1 FROM evcharge.account a WHERE a.account_id = ANY (p_accounts) ORDER BY a.account_id FOR NO KEY UPDATE;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END $$;
COMMENT ON FUNCTION evcharge.lock_accounts(bigint[]) IS
	'locks the accounts (FOR NO KEY UPDATE) in account order, as every posting does: take all the accounts a transaction will post to in one call, after any bill, coupon or refund it locks; returns how many it locked';

-- Posts one transaction, once per (kind, key): the first call writes it and
-- its result; any later call with the same kind and key returns that
-- transaction and writes nothing.  Every account must be the operator's:
-- the foreign keys of ledger_entry refuse anything else, and the check here
-- says which account it was.  Its accounts are locked in account order
-- (lock_accounts), so two postings never deadlock on them.
CREATE FUNCTION evcharge.post_txn(p_operator_id bigint, p_kind text, p_key text, p_accounts bigint[],
	p_amounts numeric[], p_order_no text DEFAULT NULL, p_note text DEFAULT NULL, p_result jsonb DEFAULT NULL,
	OUT txn evcharge.ledger_txn, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	i int;
	total numeric := 0;
	bad record;
BEGIN
	PERFORM evcharge.check_key(p_key, format('%s key', coalesce(p_kind, 'ledger transaction')));
	SELECT * INTO txn FROM evcharge.ledger_txn t WHERE t.kind = p_kind AND t.idem_key = p_key;
	IF FOUND THEN
		IF txn.operator_id IS DISTINCT FROM p_operator_id THEN
			RAISE EXCEPTION '% % was already posted by operator %', p_kind, to_json(p_key)::text, txn.operator_id
				USING ERRCODE = 'unique_violation',
				      DETAIL = format('Transaction %s is in operator %s''s books; operator %s asked for it again.',
				                      txn.txn_id, txn.operator_id, coalesce(p_operator_id::text, 'NULL')),
				      HINT = 'A key is applied once; check where the event came from.';
		END IF;
		replayed := true;
		RETURN;
	END IF;
	IF coalesce(array_length(p_accounts, 1), 0) <> coalesce(array_length(p_amounts, 1), 0) THEN
		RAISE EXCEPTION '% accounts and % amounts', array_length(p_accounts, 1), array_length(p_amounts, 1)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOR i IN 1 .. coalesce(array_length(p_amounts, 1), 0) LOOP
		IF p_amounts[i] IS NULL OR p_amounts[i] IN ('NaN', 'Infinity', '-Infinity') OR p_amounts[i] <> round(p_amounts[i], 2)
		   OR abs(p_amounts[i]) > 999999999999.99 THEN
			RAISE EXCEPTION 'amount % is not in yuan and fen', coalesce(p_amounts[i]::text, 'NULL')
				USING ERRCODE = 'invalid_parameter_value',
				      DETAIL = format('Entry %s of %s %s.', i, p_kind, to_json(p_key)::text),
				      HINT = 'Money is a finite amount with two decimals at most, below a trillion yuan; truncate to the fen first.';
		END IF;
		total := total + p_amounts[i];
	END LOOP;
	IF total <> 0 THEN
		RAISE EXCEPTION 'the entries of % % sum to %', p_kind, p_key, total
			USING ERRCODE = 'check_violation', HINT = 'Debits (positive) and credits (negative) must sum to 0.';
	END IF;
	-- Every account exists and is in this operator's books (the foreign
	-- keys would refuse it too; this names the account).
	SELECT x.account_id, a.operator_id INTO bad
	FROM unnest(p_accounts) WITH ORDINALITY AS x(account_id, n)
	LEFT JOIN evcharge.account a ON a.account_id = x.account_id
	WHERE a.operator_id IS DISTINCT FROM p_operator_id
	ORDER BY x.n LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'account % is not in operator %''s books', coalesce(bad.account_id::text, 'NULL'),
			coalesce(p_operator_id::text, 'NULL')
			USING ERRCODE = 'no_data_found',
			      DETAIL = CASE WHEN bad.operator_id IS NULL THEN format('No account %s exists.', coalesce(bad.account_id::text, 'NULL'))
			                    ELSE format('It is operator %s''s; a transaction moves money within one operator''s books.', bad.operator_id) END,
			      HINT = 'Take the accounts from evcharge.account_of(operator, kind, ...) of the transaction''s operator.';
	END IF;
	INSERT INTO evcharge.ledger_txn (operator_id, kind, idem_key, order_no, note, result)
	VALUES (p_operator_id, p_kind, p_key, p_order_no, p_note, p_result)
	ON CONFLICT (kind, idem_key) DO NOTHING
	RETURNING * INTO txn;
	IF txn.txn_id IS NULL THEN
		-- Another transaction posted the same event meanwhile and committed.
		SELECT * INTO txn FROM evcharge.ledger_txn t WHERE t.kind = p_kind AND t.idem_key = p_key;
		IF txn.operator_id IS DISTINCT FROM p_operator_id THEN
			RAISE EXCEPTION '% % was already posted by operator %', p_kind, to_json(p_key)::text, txn.operator_id
				USING ERRCODE = 'unique_violation',
				      DETAIL = format('Transaction %s is in operator %s''s books; operator %s asked for it again.',
				                      txn.txn_id, txn.operator_id, p_operator_id),
				      HINT = 'A key is applied once; check where the event came from.';
		END IF;
		replayed := true;
		RETURN;
	END IF;
	PERFORM evcharge.lock_accounts(p_accounts);
	INSERT INTO evcharge.ledger_entry (txn_id, account_id, amount, operator_id)
	SELECT txn.txn_id, x.account_id, sum(x.amount), p_operator_id
	FROM unnest(p_accounts, p_amounts) AS x(account_id, amount)
	GROUP BY x.account_id HAVING sum(x.amount) <> 0
	ORDER BY x.account_id;
	replayed := false;
END $$;
COMMENT ON FUNCTION evcharge.post_txn(bigint, text, text, bigint[], numeric[], text, text, jsonb) IS
	'posts a transaction (accounts of the operator and amounts in yuan and fen, debit positive, summing to 0) once per kind and key (check_key); a repeat returns the first transaction with replayed = true, a repeat by another operator is 23505; an account not in the operator''s books is P0002';

-- Every discrepancy, per operator: unbalanced transactions, entries outside
-- their transaction''s operator''s books, an operator whose books do not
-- balance, balances that differ from their entries, accounts whose owner is
-- not the operator's.  None when the ledger is healthy.  There is no
-- movement between operators: each transaction is in one operator's books.
CREATE FUNCTION evcharge.verify_ledger()
RETURNS TABLE (problem text, operator_id bigint, txn_id bigint, account_id bigint, expected numeric, actual numeric)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT 'transaction does not balance', t.operator_id, t.txn_id, NULL::bigint, 0::numeric, coalesce(sum(e.amount), 0)
	FROM evcharge.ledger_txn t LEFT JOIN evcharge.ledger_entry e ON e.txn_id = t.txn_id
	GROUP BY t.txn_id HAVING coalesce(sum(e.amount), 0) <> 0 OR count(e.entry_id) < 2
	UNION ALL
	SELECT 'entry in another operator''s books', t.operator_id, t.txn_id, e.account_id, t.operator_id::numeric,
	       (CASE WHEN e.operator_id IS DISTINCT FROM t.operator_id THEN e.operator_id ELSE a.operator_id END)::numeric
	FROM evcharge.ledger_entry e
	JOIN evcharge.ledger_txn t ON t.txn_id = e.txn_id
	LEFT JOIN evcharge.account a ON a.account_id = e.account_id
	WHERE e.operator_id IS DISTINCT FROM t.operator_id OR a.operator_id IS DISTINCT FROM t.operator_id
	UNION ALL
	SELECT 'operator''s books do not balance', a.operator_id, NULL::bigint, NULL::bigint, 0::numeric, sum(e.amount)
	FROM evcharge.ledger_entry e JOIN evcharge.account a ON a.account_id = e.account_id
	GROUP BY a.operator_id HAVING sum(e.amount) <> 0
	UNION ALL
	SELECT 'balance differs from its entries', a.operator_id, NULL::bigint, a.account_id,
	       coalesce((SELECT sum(e.amount) FROM evcharge.ledger_entry e WHERE e.account_id = a.account_id), 0)
	         * evcharge.account_sign(a.kind),
	       a.balance
	FROM evcharge.account a
	WHERE a.balance <> coalesce((SELECT sum(e.amount) FROM evcharge.ledger_entry e WHERE e.account_id = a.account_id), 0)
	                   * evcharge.account_sign(a.kind)
	UNION ALL
	SELECT 'account of an owner not the operator''s', a.operator_id, NULL::bigint, a.account_id, a.operator_id::numeric,
	       (CASE WHEN a.kind = 'member_wallet' THEN (SELECT m.operator_id FROM evcharge.member m WHERE m.member_id = a.owner_id)
	             WHEN a.kind = 'department_wallet' THEN (SELECT g.operator_id FROM evcharge.customer_group g WHERE g.group_id = a.owner_id)
	             WHEN a.kind LIKE 'partner\_%' THEN (SELECT p.operator_id FROM evcharge.partner p WHERE p.partner_id = a.owner_id)
	             ELSE (SELECT so.operator_id FROM evcharge.sub_operator so WHERE so.sub_operator_id = a.sub_operator_id) END)::numeric
	FROM evcharge.account a
	WHERE (a.owner_id IS NOT NULL OR a.sub_operator_id IS NOT NULL)
	  AND a.operator_id IS DISTINCT FROM
	      CASE WHEN a.kind = 'member_wallet' THEN (SELECT m.operator_id FROM evcharge.member m WHERE m.member_id = a.owner_id)
	           WHEN a.kind = 'department_wallet' THEN (SELECT g.operator_id FROM evcharge.customer_group g WHERE g.group_id = a.owner_id)
	           WHEN a.kind LIKE 'partner\_%' THEN (SELECT p.operator_id FROM evcharge.partner p WHERE p.partner_id = a.owner_id)
	           ELSE (SELECT so.operator_id FROM evcharge.sub_operator so WHERE so.sub_operator_id = a.sub_operator_id) END
	ORDER BY 1, 2, 3, 4;
END;
COMMENT ON FUNCTION evcharge.verify_ledger() IS
	'the ledger''s discrepancies, each with its operator: transactions whose entries do not sum to zero (or have fewer than two), entries outside their transaction''s operator''s books (expected: that operator, actual: the other), operators whose books do not sum to zero, accounts whose balance differs from their entries, accounts of a member, group, partner or sub-operator that is not registered with their operator (actual: its operator, NULL when unknown); no rows when healthy';

SELECT pg_catalog.pg_extension_config_dump('evcharge.sub_operator', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.member', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.attribution', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.account', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ledger_txn', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ledger_entry', '');
-- The identity sequences too, or a restored database would number new rows
-- from 1 again.
SELECT pg_catalog.pg_extension_config_dump('evcharge.attribution_attribution_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.account_account_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ledger_txn_txn_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.ledger_entry_entry_id_seq', '');
-- money.sql: what moves money through the ledger (ledger.sql): top-ups from
-- the payment provider, manual credits, the settlement of bills (and the
-- adjustment of a settled bill a repair changed), refunds.  Every function
-- is idempotent on the event's own key.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TABLE evcharge.finance_policy (
	operator_id bigint PRIMARY KEY REFERENCES evcharge.operator ON DELETE CASCADE,
	stop_threshold numeric(10, 2) NOT NULL DEFAULT 1.00 CHECK (stop_threshold >= 0 AND stop_threshold <> 'NaN'),
	void_coupons_on_refund boolean NOT NULL DEFAULT false,
	guard_interval interval NOT NULL DEFAULT '60 s' CHECK (guard_interval > '0'),
	tz evcharge.time_zone NOT NULL DEFAULT 'Asia/Shanghai',
	updated_at timestamptz NOT NULL DEFAULT now(),
	max_bill_amount numeric(12, 2) NOT NULL DEFAULT 5000.00
		CHECK (max_bill_amount > 0 AND max_bill_amount <> 'NaN'),
	max_bill_energy_wh bigint NOT NULL DEFAULT 1000000 CHECK (max_bill_energy_wh > 0)
);
COMMENT ON TABLE evcharge.finance_policy IS
	'Each operator''s money settings; a row with the defaults is made for every new operator';
COMMENT ON COLUMN evcharge.finance_policy.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.finance_policy.stop_threshold IS 'a member''s charge is stopped before the wallet would fall below this (yuan)';
COMMENT ON COLUMN evcharge.finance_policy.void_coupons_on_refund IS 'whether a refund request voids the member''s unused coupons';
COMMENT ON COLUMN evcharge.finance_policy.guard_interval IS
	'how far ahead the balance guard looks: the longest a pile may take to send its next charging heartbeat (60 s)';
COMMENT ON COLUMN evcharge.finance_policy.tz IS
	'the time zone of the operator''s books: where its report days and statement months begin and end';
COMMENT ON COLUMN evcharge.finance_policy.updated_at IS 'last change';
COMMENT ON COLUMN evcharge.finance_policy.max_bill_amount IS
	'the most one bill may come to, yuan (5000.00): a repair or a quote beyond it is refused as implausible';
COMMENT ON COLUMN evcharge.finance_policy.max_bill_energy_wh IS
	'the most energy one bill may carry, Wh (1,000,000: 1 MWh, beyond any vehicle''s battery): a repair or a quote beyond it is refused as implausible';

CREATE FUNCTION evcharge.operator_finance_default() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	INSERT INTO evcharge.finance_policy (operator_id) SELECT n.operator_id FROM new_rows n
	ON CONFLICT (operator_id) DO NOTHING;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.operator_finance_default() IS
	'trigger: every new operator gets a finance_policy row with the defaults';
CREATE TRIGGER operator_finance_default AFTER INSERT ON evcharge.operator
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION evcharge.operator_finance_default();
COMMENT ON TRIGGER operator_finance_default ON evcharge.operator IS 'every new operator gets its money settings with the defaults';
CREATE TRIGGER finance_policy_replaces_default BEFORE INSERT ON evcharge.finance_policy
	FOR EACH ROW EXECUTE FUNCTION evcharge.policy_replaces_default();
COMMENT ON TRIGGER finance_policy_replaces_default ON evcharge.finance_policy IS
	'an inserted row replaces the operator''s default row if that is untouched: pg_restore loads the dumped policies after the operators made theirs';

-- The days of an operator's books: its finance_policy.tz.
CREATE FUNCTION evcharge.books_tz(p_operator_id bigint) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tz text;
BEGIN
	SELECT fp.tz INTO tz FROM evcharge.finance_policy fp WHERE fp.operator_id = p_operator_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'operator % is not registered', coalesce(p_operator_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Operators are in evcharge.operator.';
	END IF;
	RETURN tz;
END $$;
COMMENT ON FUNCTION evcharge.books_tz(bigint) IS
	'the time zone of the operator''s books (finance_policy.tz), where its report days and statement months begin and end; error P0002 for an operator not registered';

-- One day of an operator's books, as a range of instants.
CREATE FUNCTION evcharge.books_day(p_operator_id bigint, p_day date) RETURNS tstzrange
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tz text := evcharge.books_tz(p_operator_id);
BEGIN
	IF p_day IS NULL THEN
		RAISE EXCEPTION 'a day of operator %''s books is needed', p_operator_id
			USING ERRCODE = 'null_value_not_allowed', HINT = 'Give the day, e.g. ''2026-11-20''.';
	END IF;
	RETURN tstzrange(p_day::timestamp AT TIME ZONE tz, (p_day + 1)::timestamp AT TIME ZONE tz, '[)');
END $$;
COMMENT ON FUNCTION evcharge.books_day(bigint, date) IS
	'the day of the operator''s books as [midnight, next midnight) in its time zone (books_tz); errors for an operator not registered (P0002) or no day (22004)';

-- Checks an amount of money given by a caller: positive, finite, yuan and
-- fen, and no more than an account can hold.
CREATE FUNCTION evcharge.check_amount(p_amount numeric, p_what text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF p_amount IS NULL OR p_amount IN ('NaN', 'Infinity', '-Infinity') OR p_amount <= 0
	   OR p_amount <> trunc(p_amount, 2) OR p_amount > 999999999999.99 THEN
		RAISE EXCEPTION '% of % yuan is not possible', p_what, coalesce(p_amount::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'An amount of money is positive and finite, in yuan with at most two decimals (fen), below a trillion yuan.',
			      HINT = 'E.g. 100.00.';
	END IF;
	RETURN p_amount;
END $$;
COMMENT ON FUNCTION evcharge.check_amount(numeric, text) IS
	'returns the amount if it is positive, finite (not NaN or Infinity), in yuan and fen and below a trillion yuan, else raises 22023 naming what it was for';

-- The operator's plausibility limits for one bill (finance_policy): a
-- repair or a quote beyond them is refused, not billed.
CREATE FUNCTION evcharge.check_bill_limits(p_operator_id bigint, p_energy_wh numeric, p_total numeric, p_what text)
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	fp evcharge.finance_policy;
BEGIN
	SELECT * INTO fp FROM evcharge.finance_policy f WHERE f.operator_id = p_operator_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'operator % is not registered', coalesce(p_operator_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Operators are in evcharge.operator.';
	END IF;
	IF p_energy_wh > fp.max_bill_energy_wh THEN
		RAISE EXCEPTION '% would bill % Wh, more than one bill of operator % may carry', p_what, trim_scale(p_energy_wh), p_operator_id
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('The operator''s limit is %s Wh (finance_policy.max_bill_energy_wh).', fp.max_bill_energy_wh),
			      HINT = 'Check the energy; if such a charge is real, the operator raises its limit.';
	END IF;
	IF p_total > fp.max_bill_amount THEN
		RAISE EXCEPTION '% would bill % yuan, more than one bill of operator % may come to', p_what, p_total, p_operator_id
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('The operator''s limit is %s yuan (finance_policy.max_bill_amount).', fp.max_bill_amount),
			      HINT = 'Check the energy and the prices; if such a bill is real, the operator raises its limit.';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.check_bill_limits(bigint, numeric, numeric, text) IS
	'raises 22023 when a bill''s energy or total is beyond the operator''s finance_policy.max_bill_energy_wh or max_bill_amount (P0002 for an operator not registered); used by repair_bill and quote';

CREATE FUNCTION evcharge.wallet_account(p_account_id bigint) RETURNS evcharge.account
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	a evcharge.account;
BEGIN
	SELECT * INTO a FROM evcharge.account WHERE account_id = p_account_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'account % does not exist', coalesce(p_account_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Wallets are in evcharge.account (evcharge.member_wallet() opens a member''s).';
	END IF;
	IF a.kind NOT IN ('member_wallet', 'department_wallet', 'partner_prepaid') THEN
		RAISE EXCEPTION 'account % is not a wallet but %', p_account_id, a.kind
			USING ERRCODE = 'wrong_object_type', HINT = 'Top-ups, credits and refunds go to member, department or prepaid partner wallets.';
	END IF;
	RETURN a;
END $$;
COMMENT ON FUNCTION evcharge.wallet_account(bigint) IS 'the account if it is a wallet (member, department, prepaid partner), else an error';

-- A member's wallet (opened on first use).
CREATE FUNCTION evcharge.member_wallet(p_member_id bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	op bigint;
BEGIN
	SELECT m.operator_id INTO op FROM evcharge.member m WHERE m.member_id = p_member_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'member % is not registered', coalesce(p_member_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Register the member in evcharge.member first.';
	END IF;
	RETURN evcharge.account_of(op, 'member_wallet', p_member_id);
END $$;
COMMENT ON FUNCTION evcharge.member_wallet(bigint) IS 'the member''s wallet account, opened on first use';

-- A top-up, as the payment provider's callback calls it.
CREATE FUNCTION evcharge.top_up(account_id bigint, amount numeric, provider_txn text,
	OUT txn_id bigint, OUT balance numeric, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	w evcharge.account;
	r record;
BEGIN
	w := evcharge.wallet_account(top_up.account_id);
	PERFORM evcharge.check_amount(top_up.amount, 'a top-up');
	PERFORM evcharge.check_key(top_up.provider_txn, 'provider transaction id');
	-- Both accounts are locked first, in account order (lock_accounts), so
	-- the balance returned is this top-up's.
	PERFORM evcharge.lock_accounts(ARRAY[evcharge.account_of(w.operator_id, 'provider_clearing'), w.account_id]);
	SELECT a.balance INTO balance FROM evcharge.account a WHERE a.account_id = w.account_id;
	SELECT (p.txn).txn_id, (p.txn).result, p.replayed INTO r
	FROM evcharge.post_txn(w.operator_id, 'top_up', top_up.provider_txn,
		ARRAY[evcharge.account_of(w.operator_id, 'provider_clearing'), w.account_id],
		ARRAY[top_up.amount, -top_up.amount], NULL, NULL,
		jsonb_build_object('account_id', w.account_id, 'amount', top_up.amount,
		                   'balance', balance + top_up.amount)) p;
	txn_id := r.txn_id;
	balance := (r.result->>'balance')::numeric;
	replayed := r.replayed;
	IF replayed AND ((r.result->>'account_id')::bigint <> w.account_id OR (r.result->>'amount')::numeric <> top_up.amount) THEN
		RAISE EXCEPTION 'provider transaction % was already applied, to account % for %', top_up.provider_txn,
			r.result->>'account_id', r.result->>'amount'
			USING ERRCODE = 'unique_violation',
			      HINT = 'A provider transaction id is applied once; check the provider''s callback.';
	END IF;
	IF NOT replayed THEN
		PERFORM evcharge.check_alert(w.account_id);
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.top_up(bigint, numeric, text) IS
	'credits a wallet with a top-up the payment provider confirmed (debiting provider clearing), once per provider transaction id: a repeat returns the first result with replayed = true';

-- A credit by an operator's staff, with its reason.
CREATE FUNCTION evcharge.manual_credit(account_id bigint, amount numeric, note text, request_id text,
	OUT txn_id bigint, OUT balance numeric, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	w evcharge.account;
	r record;
BEGIN
	w := evcharge.wallet_account(manual_credit.account_id);
	PERFORM evcharge.check_amount(manual_credit.amount, 'a manual credit');
	PERFORM evcharge.check_key(manual_credit.request_id, 'request id');
	IF manual_credit.note IS NULL OR btrim(manual_credit.note) = '' THEN
		RAISE EXCEPTION 'a manual credit to account % needs a note', w.account_id
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Say why, e.g. ''goodwill: pile 0045 out of order on 11-20''.';
	END IF;
	PERFORM evcharge.lock_accounts(ARRAY[evcharge.account_of(w.operator_id, 'adjustments'), w.account_id]);
	SELECT a.balance INTO balance FROM evcharge.account a WHERE a.account_id = w.account_id;
	SELECT (p.txn).txn_id, (p.txn).result, p.replayed INTO r
	FROM evcharge.post_txn(w.operator_id, 'manual_credit', manual_credit.request_id,
		ARRAY[evcharge.account_of(w.operator_id, 'adjustments'), w.account_id],
		ARRAY[manual_credit.amount, -manual_credit.amount], NULL, manual_credit.note,
		jsonb_build_object('account_id', w.account_id, 'amount', manual_credit.amount,
		                   'balance', balance + manual_credit.amount)) p;
	txn_id := r.txn_id;
	balance := (r.result->>'balance')::numeric;
	replayed := r.replayed;
	IF replayed AND ((r.result->>'account_id')::bigint <> w.account_id
	                 OR (r.result->>'amount')::numeric <> manual_credit.amount) THEN
		RAISE EXCEPTION 'request % was already applied, to account % for %', to_json(manual_credit.request_id)::text,
			r.result->>'account_id', r.result->>'amount'
			USING ERRCODE = 'unique_violation',
			      DETAIL = format('This call credits account %s with %s.', w.account_id, manual_credit.amount),
			      HINT = 'A request id is applied once; give a new request its own id.';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.manual_credit(bigint, numeric, text, text) IS
	'credits a wallet by hand (debiting the operator''s adjustments) with a mandatory note, once per request id: a repeat returns the first result with replayed = true, the same id for another account or amount is 23505';

-- NOTIFY evcharge_alert once when a department wallet falls below its threshold.
CREATE FUNCTION evcharge.check_alert(p_account_id bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	a evcharge.account;
BEGIN
	SELECT * INTO a FROM evcharge.account WHERE account_id = p_account_id;
	IF a.alert_threshold IS NULL THEN
		RETURN false;
	END IF;
	IF a.balance < a.alert_threshold AND a.alert_armed THEN
		UPDATE evcharge.account SET alert_armed = false WHERE account_id = p_account_id;
		PERFORM pg_notify('evcharge_alert', json_build_object('account_id', a.account_id, 'kind', a.kind,
			'owner_id', a.owner_id, 'balance', a.balance, 'threshold', a.alert_threshold)::text);
		RETURN true;
	ELSIF a.balance >= a.alert_threshold AND NOT a.alert_armed THEN
		UPDATE evcharge.account SET alert_armed = true WHERE account_id = p_account_id;
	END IF;
	RETURN false;
END $$;
COMMENT ON FUNCTION evcharge.check_alert(bigint) IS
	'sends NOTIFY evcharge_alert once per crossing when a wallet with an alert threshold falls below it, and re-arms when it is back above; true when it sent one';

-- The sub-operator a charge or a wallet belongs to (the "Visibility" rule).
CREATE FUNCTION evcharge.attributed_sub_operator(p_operator_id bigint, p_station_id bigint, p_group_id bigint,
	p_vin text, p_card_no text) RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT a.sub_operator_id FROM evcharge.attribution a
	JOIN evcharge.sub_operator so ON so.sub_operator_id = a.sub_operator_id
	WHERE so.operator_id = p_operator_id
	  AND (a.vin = p_vin OR a.card_no = p_card_no OR a.group_id = p_group_id OR a.station_id = p_station_id)
	ORDER BY CASE WHEN a.vin IS NOT NULL THEN 1 WHEN a.card_no IS NOT NULL THEN 2 WHEN a.group_id IS NOT NULL THEN 3 ELSE 4 END
	LIMIT 1;
END;
COMMENT ON FUNCTION evcharge.attributed_sub_operator(bigint, bigint, bigint, text, text) IS
	'the operator''s sub-operator that a charge at this station, by this department, vehicle (VIN) or card belongs to: the most specific rule wins (VIN, card, department, station); NULL: the operator itself';

-- Who pays a session and to whom its revenue is attributed.
CREATE FUNCTION evcharge.bill_parties(p_order_no text, OUT operator_id bigint, OUT payer bigint,
	OUT sub_operator_id bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	m evcharge.member;
	dept bigint;
	pa evcharge.partner;
BEGIN
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = p_order_no;
	SELECT st.operator_id INTO operator_id FROM evcharge.station st WHERE st.station_id = s.station_id;
	SELECT * INTO m FROM evcharge.member mm WHERE mm.member_id = s.member_id;
	SELECT g.group_id INTO dept FROM evcharge.customer_group g
	WHERE g.group_id = coalesce(s.group_id, m.group_id) AND g.pays_for_members;
	IF s.partner_id IS NOT NULL THEN
		SELECT * INTO pa FROM evcharge.partner p WHERE p.partner_id = s.partner_id;
		payer := evcharge.account_of(operator_id,
			CASE WHEN pa.kind = 'prepaid' THEN 'partner_prepaid' ELSE 'partner_receivable' END, pa.partner_id);
	ELSIF dept IS NOT NULL THEN
		payer := evcharge.account_of(operator_id, 'department_wallet', dept);
	ELSIF s.member_id IS NOT NULL THEN
		payer := evcharge.account_of(operator_id, 'member_wallet', s.member_id);
	ELSE
		payer := evcharge.account_of(operator_id, 'unassigned_receivable');
	END IF;
	sub_operator_id := evcharge.attributed_sub_operator(operator_id, s.station_id, coalesce(s.group_id, m.group_id),
		m.vin, m.card_no);
END $$;
COMMENT ON FUNCTION evcharge.bill_parties(text) IS
	'who pays a session (the partner''s account for partner starts, the department''s wallet for members of a paying department, else the member''s wallet, else unassigned receivable) and the sub-operator its revenue is attributed to (VIN, card, department, station, in that order)';

-- The ledger lines of a bill's amounts: the payer debited the total, the
-- revenue accounts credited, service net of the coupon.
CREATE FUNCTION evcharge.bill_lines(p_order_no text, p_energy numeric, p_service numeric, p_occupancy numeric,
	p_discount numeric, OUT operator_id bigint, OUT accounts bigint[], OUT amounts numeric[])
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pp record;
BEGIN
	pp := evcharge.bill_parties(p_order_no);
	operator_id := pp.operator_id;
	accounts := ARRAY[pp.payer,
		evcharge.account_of(pp.operator_id, 'revenue_electricity', NULL, pp.sub_operator_id),
		evcharge.account_of(pp.operator_id, 'revenue_service', NULL, pp.sub_operator_id),
		evcharge.account_of(pp.operator_id, 'revenue_occupancy', NULL, pp.sub_operator_id)];
	amounts := ARRAY[p_energy + p_service - p_discount + p_occupancy, -p_energy, -(p_service - p_discount), -p_occupancy];
END $$;
COMMENT ON FUNCTION evcharge.bill_lines(text, numeric, numeric, numeric, numeric) IS
	'the accounts and amounts that settle a bill''s figures: the payer debited the total, electricity, service (net of the coupon) and occupancy revenue credited';

-- Settles one final bill: money moves once per order.  The bill is locked
-- first, then its accounts (post_txn): the order of docs/money.md, "Locks
-- and deadlocks".
CREATE FUNCTION evcharge.settle_bill(p_order_no text) RETURNS evcharge.ledger_txn
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	b evcharge.bill;
	l record;
	p record;
BEGIN
	SELECT * INTO b FROM evcharge.bill WHERE order_no = p_order_no FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" has no bill', p_order_no
			USING ERRCODE = 'no_data_found', HINT = 'Bills are in evcharge.bill.';
	END IF;
	IF b.state = 'held' THEN
		RAISE EXCEPTION 'bill % is held and is not charged', p_order_no
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('Its anomalies: %s.', coalesce(nullif(b.anomalies::text, ''), 'none recorded')),
			      HINT = 'Repair it with evcharge.repair_bill(); a repaired bill is settled for the repaired amount.';
	END IF;
	l := evcharge.bill_lines(p_order_no, b.energy_fee, b.service_fee, b.occupancy_fee, b.discount);
	SELECT * INTO p FROM evcharge.post_txn(l.operator_id, 'bill', p_order_no, l.accounts, l.amounts, p_order_no, NULL,
		jsonb_build_object('total', b.total, 'revision', b.revision, 'energy_wh', b.energy_wh));
	IF b.state <> 'settled' THEN
		UPDATE evcharge.bill SET state = 'settled' WHERE order_no = p_order_no;
	END IF;
	IF NOT p.replayed THEN
		PERFORM evcharge.check_alert(l.accounts[1]);
	END IF;
	RETURN p.txn;
END $$;
COMMENT ON FUNCTION evcharge.settle_bill(text) IS
	'settles a final bill: debits the payer''s account the total and credits electricity, service and occupancy revenue of the attributed sub-operator, once per order; a held bill is refused';

-- The job: every final bill not yet settled.  One transaction posts many
-- bills, so it takes its locks as one posting would (docs/money.md, "Locks
-- and deadlocks"): first the bills, skipping those another session holds
-- (being repaired, billed or settled: the next run takes them); then every
-- account the batch posts to, all at once, in account order; then it
-- settles bill by bill, each in its own subtransaction, so that a bill that
-- cannot be settled is left final with a WARNING and the others are settled.
CREATE FUNCTION evcharge.settle_bills(OUT settled bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	orders text[];
	ready text[] := '{}';
	accounts bigint[] := '{}';
	o text;
	tries int := 0;
	st text;
	msg text;
BEGIN
	settled := 0;
	SELECT coalesce(array_agg(x.order_no ORDER BY x.finalised_at, x.order_no), '{}') INTO orders
	FROM (SELECT b.order_no, b.finalised_at FROM evcharge.bill b WHERE b.state = 'final'
	      ORDER BY b.finalised_at, b.order_no FOR UPDATE SKIP LOCKED) x;
	IF cardinality(orders) = 0 THEN
		RETURN;
	END IF;
	-- Who pays and who earns, per bill: the accounts to lock (a bill whose
	-- parties cannot be found is left for the next run, with a warning).
	FOREACH o IN ARRAY orders LOOP
		BEGIN
			accounts := accounts || (evcharge.bill_lines(o, 0, 0, 0, 0)).accounts;
			ready := ready || o;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			RAISE WARNING 'bill % is not settled in this run: %', o, msg
				USING DETAIL = format('SQLSTATE %s, finding who pays it.', st),
				      HINT = 'settle_bills() tries it again on its next run; settle_bill() shows the error.';
		END;
	END LOOP;
	-- All the accounts at once, in account order.  Only a caller that holds
	-- accounts and then waits for others out of that order (several money
	-- calls in one transaction) can close a circle with this wait; if the
	-- deadlock detector picks this one, it lets go and waits again.
	LOOP
		BEGIN
			PERFORM evcharge.lock_accounts(accounts);
			EXIT;
		EXCEPTION WHEN deadlock_detected THEN
			tries := tries + 1;
			RAISE WARNING 'settle_bills() was in a deadlock while locking the accounts of % bills (try %)',
				cardinality(ready), tries
				USING DETAIL = 'Another transaction holds accounts and waits for others out of account order.',
				      HINT = 'Call one money function per transaction; see docs/money.md, "Locks and deadlocks".';
			IF tries >= 3 THEN
				RETURN;
			END IF;
		END;
	END LOOP;
	FOREACH o IN ARRAY ready LOOP
		BEGIN
			PERFORM evcharge.settle_bill(o);
			settled := settled + 1;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			RAISE WARNING 'bill % is not settled in this run: %', o, msg
				USING DETAIL = format('SQLSTATE %s, settling it.', st),
				      HINT = 'settle_bills() tries it again on its next run; settle_bill() shows the error.';
		END;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.settle_bills() IS
	'scheduled: settles every final bill not yet settled, locking the bills (skipping those another session holds: being repaired, billed or settled, left for the next run), then all their accounts at once in account order; a bill that cannot be settled is left final with a WARNING and does not stop the others; returns how many it settled';

-- A settled bill that a repair changed: the difference moves, as its own transaction.
CREATE FUNCTION evcharge.adjust_settled_bill(p_order_no text, old evcharge.bill, nb evcharge.bill, p_reason text)
RETURNS evcharge.ledger_txn
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	l record;
	p record;
BEGIN
	l := evcharge.bill_lines(p_order_no, nb.energy_fee - old.energy_fee, nb.service_fee - old.service_fee,
		nb.occupancy_fee - old.occupancy_fee, nb.discount - old.discount);
	IF (SELECT bool_and(x = 0) FROM unnest(l.amounts) x) THEN
		RETURN NULL;
	END IF;
	SELECT * INTO p FROM evcharge.post_txn(l.operator_id, 'bill_adjustment', p_order_no || '#' || nb.revision,
		l.accounts, l.amounts, p_order_no, p_reason, jsonb_build_object('old_total', old.total, 'new_total', nb.total,
		'energy_wh_delta', nb.energy_wh - old.energy_wh));
	RETURN p.txn;
END $$;
COMMENT ON FUNCTION evcharge.adjust_settled_bill(text, evcharge.bill, evcharge.bill, text) IS
	'posts the difference between a settled bill and its repaired version (payer and revenue), once per revision';

-- Refunds.
CREATE FUNCTION evcharge.refund_fee(amount numeric, method text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF amount IS NULL OR amount IN ('NaN', 'Infinity', '-Infinity') OR amount < 0 OR amount > 999999999999.99 THEN
		RAISE EXCEPTION 'refund amount % is not possible', coalesce(amount::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A refund is a finite amount of 0 or more yuan, below a trillion.',
			      HINT = 'A refund is 0 or more yuan, e.g. 1000.00.';
	END IF;
	RETURN CASE method
		WHEN 'bank' THEN trunc(6 + amount * 0.006, 2)
		WHEN 'provider' THEN trunc(amount * 0.006, 2)
		ELSE evcharge.unknown_refund_method(method) END;
END $$;
COMMENT ON FUNCTION evcharge.refund_fee(numeric, text) IS
	'the fee of a refund: bank transfer 6 yuan + 0.6 %, payment provider 0.6 %, truncated to the fen (1000 by bank: 12.00); 22023 for an amount that is negative, NaN or infinite';

CREATE FUNCTION evcharge.unknown_refund_method(method text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION 'refund method "%" is not known', coalesce(method, 'NULL')
		USING ERRCODE = 'invalid_parameter_value', HINT = 'Use bank (6 yuan + 0.6 %) or provider (0.6 %).';
END $$;
COMMENT ON FUNCTION evcharge.unknown_refund_method(text) IS 'raises the error for a refund method other than bank or provider';

CREATE TABLE evcharge.refund (
	refund_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES evcharge.account,
	method text NOT NULL CHECK (method IN ('bank', 'provider')),
	amount numeric(14, 2) NOT NULL CHECK (amount > 0 AND amount <> 'NaN'),
	fee numeric(14, 2) NOT NULL CHECK (fee >= 0 AND fee <> 'NaN'),
	state text NOT NULL DEFAULT 'requested' CHECK (state IN ('requested', 'approved', 'rejected')),
	coupons_voided int NOT NULL DEFAULT 0,
	requested_at timestamptz NOT NULL DEFAULT now(),
	requested_by text NOT NULL DEFAULT current_user,
	decided_at timestamptz,
	decided_by text,
	reason text
);
CREATE UNIQUE INDEX refund_open_idx ON evcharge.refund (account_id) WHERE state = 'requested';
COMMENT ON INDEX evcharge.refund_open_idx IS 'one open refund request per wallet';
COMMENT ON TABLE evcharge.refund IS
	'A wallet refund: the refundable balance is frozen (moved to refunds payable) at request, paid out less the fee on approval, returned on rejection; one open request per wallet';
COMMENT ON COLUMN evcharge.refund.refund_id IS 'refund number (the key of its ledger transactions)';
COMMENT ON COLUMN evcharge.refund.account_id IS 'the wallet';
COMMENT ON COLUMN evcharge.refund.method IS 'bank or provider';
COMMENT ON COLUMN evcharge.refund.amount IS 'frozen amount, yuan';
COMMENT ON COLUMN evcharge.refund.fee IS 'refund_fee(amount, method): what the member pays for it';
COMMENT ON COLUMN evcharge.refund.state IS 'requested, approved, rejected';
COMMENT ON COLUMN evcharge.refund.coupons_voided IS 'unused coupons voided by the request (finance_policy.void_coupons_on_refund)';
COMMENT ON COLUMN evcharge.refund.requested_at IS 'when requested';
COMMENT ON COLUMN evcharge.refund.requested_by IS 'database user';
COMMENT ON COLUMN evcharge.refund.decided_at IS 'when approved or rejected';
COMMENT ON COLUMN evcharge.refund.decided_by IS 'database user';
COMMENT ON COLUMN evcharge.refund.reason IS 'why it was rejected';

-- Whether a wallet pays for a session of this member, group and partner
-- (the rule of bill_parties()).
CREATE FUNCTION evcharge.pays_for(w evcharge.account, p_member_id bigint, p_group_id bigint, p_partner_id bigint)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT CASE w.kind
		WHEN 'partner_prepaid' THEN p_partner_id IS NOT DISTINCT FROM w.owner_id
		WHEN 'department_wallet' THEN p_partner_id IS NULL AND w.owner_id IN (
			SELECT g.group_id FROM evcharge.customer_group g
			WHERE g.pays_for_members AND g.group_id = coalesce(p_group_id,
				(SELECT m.group_id FROM evcharge.member m WHERE m.member_id = p_member_id)))
		WHEN 'member_wallet' THEN p_partner_id IS NULL AND p_member_id IS NOT DISTINCT FROM w.owner_id
			AND NOT EXISTS (SELECT 1 FROM evcharge.customer_group g
				WHERE g.pays_for_members AND g.group_id = coalesce(p_group_id,
					(SELECT m.group_id FROM evcharge.member m WHERE m.member_id = p_member_id)))
		ELSE false END;
END;
COMMENT ON FUNCTION evcharge.pays_for(evcharge.account, bigint, bigint, bigint) IS
	'whether the wallet pays for a session of this member, group and partner, by the rule of bill_parties()';

CREATE FUNCTION evcharge.request_refund(account_id bigint, method text) RETURNS evcharge.refund
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	w evcharge.account;
	r evcharge.refund;
	fee numeric;
	voided int := 0;
	orders text[];
	accounts bigint[];
	o text;
BEGIN
	w := evcharge.wallet_account(request_refund.account_id);
	fee := evcharge.refund_fee(0, request_refund.method);	-- checks the method
	-- The balance frozen is the balance after the bills the wallet owes are
	-- settled, with the wallet locked.  Locks in the order of every money
	-- function (docs/money.md, "Locks and deadlocks"): the final bills it
	-- pays first (waiting for a settlement or repair of one of them to end),
	-- then the coupons it voids, then all the accounts at once: the wallet,
	-- refunds payable and the bills' revenue.
	SELECT coalesce(array_agg(x.order_no ORDER BY x.order_no), '{}') INTO orders
	FROM (SELECT b.order_no FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
	      WHERE b.state = 'final' AND evcharge.pays_for(w, cs.member_id, cs.group_id, cs.partner_id)
	      ORDER BY b.order_no FOR UPDATE OF b) x;
	IF w.kind = 'member_wallet' AND
	   (SELECT p.void_coupons_on_refund FROM evcharge.finance_policy p WHERE p.operator_id = w.operator_id) THEN
		PERFORM 1 FROM evcharge.coupon c WHERE c.operator_id = w.operator_id AND c.member_id = w.owner_id
		  AND c.used_order_no IS NULL ORDER BY c.coupon_id FOR UPDATE;
	END IF;
	accounts := ARRAY[w.account_id, evcharge.account_of(w.operator_id, 'refunds_payable')];
	FOREACH o IN ARRAY orders LOOP
		accounts := accounts || (evcharge.bill_lines(o, 0, 0, 0, 0)).accounts;
	END LOOP;
	PERFORM evcharge.lock_accounts(accounts);
	SELECT * INTO w FROM evcharge.account a WHERE a.account_id = w.account_id;
	-- Bills still held, or a charge running, would be owed later: no refund
	-- until they are done.
	IF EXISTS (SELECT 1 FROM evcharge.charge_session cs WHERE cs.state IN ('pending', 'charging', 'occupied')
	           AND evcharge.pays_for(w, cs.member_id, cs.group_id, cs.partner_id)) THEN
		RAISE EXCEPTION 'account % pays for a charge in progress', w.account_id
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Request the refund after the charge has ended.';
	END IF;
	IF EXISTS (SELECT 1 FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
	           WHERE b.state = 'held' AND evcharge.pays_for(w, cs.member_id, cs.group_id, cs.partner_id)) THEN
		RAISE EXCEPTION 'account % pays for a bill held for repair', w.account_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Repair the held bill first (evcharge.repair_bill); its amount will be charged.';
	END IF;
	FOREACH o IN ARRAY orders LOOP
		PERFORM evcharge.settle_bill(o);
	END LOOP;
	SELECT * INTO w FROM evcharge.account a WHERE a.account_id = w.account_id;
	IF EXISTS (SELECT 1 FROM evcharge.refund f WHERE f.account_id = w.account_id AND f.state = 'requested') THEN
		RAISE EXCEPTION 'account % already has a refund waiting for approval', w.account_id
			USING ERRCODE = 'unique_violation', HINT = 'Approve or reject it first (evcharge.refund).';
	END IF;
	IF w.balance <= 0 THEN
		RAISE EXCEPTION 'account % has nothing to refund', w.account_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('Its balance is %s yuan; debts reduce what is refundable.', w.balance),
			      HINT = 'Only a positive balance can be refunded.';
	END IF;
	fee := evcharge.refund_fee(w.balance, request_refund.method);
	IF fee >= w.balance THEN
		RAISE EXCEPTION 'a % refund of % yuan would cost more than it returns', request_refund.method, w.balance
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('The fee would be %s yuan.', fee),
			      HINT = 'A provider refund costs 0.6 % only.';
	END IF;
	INSERT INTO evcharge.refund (account_id, method, amount, fee)
	VALUES (w.account_id, request_refund.method, w.balance, fee) RETURNING * INTO r;
	PERFORM evcharge.post_txn(w.operator_id, 'refund_request', r.refund_id::text,
		ARRAY[w.account_id, evcharge.account_of(w.operator_id, 'refunds_payable')],
		ARRAY[r.amount, -r.amount], NULL, NULL, jsonb_build_object('refund_id', r.refund_id));
	IF w.kind = 'member_wallet' AND
	   (SELECT p.void_coupons_on_refund FROM evcharge.finance_policy p WHERE p.operator_id = w.operator_id) THEN
		DELETE FROM evcharge.coupon c WHERE c.operator_id = w.operator_id AND c.member_id = w.owner_id
		  AND c.used_order_no IS NULL;
		GET DIAGNOSTICS voided = ROW_COUNT;
		UPDATE evcharge.refund f SET coupons_voided = voided WHERE f.refund_id = r.refund_id RETURNING * INTO r;
	END IF;
	RETURN r;
END $$;
COMMENT ON FUNCTION evcharge.request_refund(bigint, text) IS
	'requests a refund of a wallet''s whole positive balance by bank or provider: the amount is frozen at once (moved to refunds payable), the fee fixed; voids unused coupons when the operator''s policy says so';

CREATE FUNCTION evcharge.approve_refund(refund_id bigint) RETURNS evcharge.refund
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r evcharge.refund;
	op bigint;
BEGIN
	SELECT * INTO r FROM evcharge.refund f WHERE f.refund_id = approve_refund.refund_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'refund % does not exist', approve_refund.refund_id USING ERRCODE = 'no_data_found';
	END IF;
	IF r.state = 'approved' THEN
		RETURN r;
	ELSIF r.state <> 'requested' THEN
		RAISE EXCEPTION 'refund % was %', r.refund_id, r.state
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Only a requested refund can be approved.';
	END IF;
	SELECT a.operator_id INTO op FROM evcharge.account a WHERE a.account_id = r.account_id;
	PERFORM evcharge.post_txn(op, 'refund_approve', r.refund_id::text,
		ARRAY[evcharge.account_of(op, 'refunds_payable'), evcharge.account_of(op, 'provider_clearing'),
		      evcharge.account_of(op, 'fee_income')],
		ARRAY[r.amount, -(r.amount - r.fee), -r.fee], NULL, NULL,
		jsonb_build_object('refund_id', r.refund_id, 'paid', r.amount - r.fee, 'fee', r.fee));
	UPDATE evcharge.refund f SET state = 'approved', decided_at = now(), decided_by = current_user
	WHERE f.refund_id = r.refund_id RETURNING * INTO r;
	RETURN r;
END $$;
COMMENT ON FUNCTION evcharge.approve_refund(bigint) IS
	'approves a requested refund: pays the frozen amount less the fee out through the provider (fee to fee income); approving again returns it unchanged';

CREATE FUNCTION evcharge.reject_refund(refund_id bigint, reason text) RETURNS evcharge.refund
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r evcharge.refund;
	op bigint;
BEGIN
	IF reject_refund.reason IS NULL OR btrim(reject_refund.reason) = '' THEN
		RAISE EXCEPTION 'rejecting refund % needs a reason', reject_refund.refund_id
			USING ERRCODE = 'invalid_parameter_value', HINT = 'The member is told why.';
	END IF;
	SELECT * INTO r FROM evcharge.refund f WHERE f.refund_id = reject_refund.refund_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'refund % does not exist', reject_refund.refund_id USING ERRCODE = 'no_data_found';
	END IF;
	IF r.state = 'rejected' THEN
		RETURN r;
	ELSIF r.state <> 'requested' THEN
		RAISE EXCEPTION 'refund % was %', r.refund_id, r.state
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Only a requested refund can be rejected.';
	END IF;
	SELECT a.operator_id INTO op FROM evcharge.account a WHERE a.account_id = r.account_id;
	PERFORM evcharge.post_txn(op, 'refund_reject', r.refund_id::text,
		ARRAY[evcharge.account_of(op, 'refunds_payable'), r.account_id],
		ARRAY[r.amount, -r.amount], NULL, reject_refund.reason, jsonb_build_object('refund_id', r.refund_id));
	UPDATE evcharge.refund f SET state = 'rejected', decided_at = now(), decided_by = current_user,
		reason = reject_refund.reason
	WHERE f.refund_id = r.refund_id RETURNING * INTO r;
	RETURN r;
END $$;
COMMENT ON FUNCTION evcharge.reject_refund(bigint, text) IS
	'rejects a requested refund with a reason: the frozen amount goes back to the wallet; rejecting again returns it unchanged';

-- The balance guard: stop a charge before the wallet would fall below the
-- threshold at the next heartbeat.
CREATE TABLE evcharge.stop_request (
	order_no text PRIMARY KEY REFERENCES evcharge.charge_session,
	gun evcharge.gun_id NOT NULL,
	account_id bigint NOT NULL REFERENCES evcharge.account,
	balance numeric(14, 2) NOT NULL,
	running_total numeric(14, 2) NOT NULL,
	projected numeric(14, 2) NOT NULL,
	threshold numeric(10, 2) NOT NULL,
	requested_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.stop_request IS
	'Charges the balance guard asked the pile to stop (NOTIFY evcharge_stop), one per session, with the figures it decided on';
COMMENT ON COLUMN evcharge.stop_request.order_no IS 'the session';
COMMENT ON COLUMN evcharge.stop_request.gun IS 'the gun to stop';
COMMENT ON COLUMN evcharge.stop_request.account_id IS 'the wallet that pays';
COMMENT ON COLUMN evcharge.stop_request.balance IS 'the wallet''s balance then';
COMMENT ON COLUMN evcharge.stop_request.running_total IS 'the session''s amount so far at the plan''s prices';
COMMENT ON COLUMN evcharge.stop_request.projected IS 'what the next guard_interval would add at the session''s present power and the plan''s highest price';
COMMENT ON COLUMN evcharge.stop_request.threshold IS 'the operator''s stop_threshold';
COMMENT ON COLUMN evcharge.stop_request.requested_at IS 'when';

CREATE FUNCTION evcharge.balance_guard(p_orders text[]) RETURNS int
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

SELECT pg_catalog.pg_extension_config_dump('evcharge.finance_policy', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.stop_request', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.refund', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.refund_refund_id_seq', '');
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
COMMENT ON COLUMN evcharge.ocpp_command.answer IS 'Accepted or Rejected (the pile''s status), CALLERROR <code>, or Expired (a start not answered within 60 s)';

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
-- partner_settlement.sql: what an interconnection partner and the operator
-- owe each other.  partner_payment() books money a partner sends by bank (an
-- affiliated partner paying what it owes, a prepaid one adding to its
-- deposit); partner_statement() books the monthly statement.  Every ledger
-- movement on a partner's accounts appears on exactly one statement: the
-- bills of sessions that ended before the month's end, the adjustments of
-- those bills, and the payments received before it, that no earlier
-- statement carried.  A bill settled late (a pile record that came days
-- after) thus lands on the next statement, marked as from an earlier month,
-- and nothing is counted twice or lost.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- What a partner owes the operator now: its receivable less its deposit.
CREATE FUNCTION evcharge.partner_owes(p_partner_id bigint) RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce(sum(CASE a.kind WHEN 'partner_receivable' THEN a.balance ELSE -a.balance END), 0)
	FROM evcharge.partner p
	JOIN evcharge.account a ON a.operator_id = p.operator_id AND a.owner_id = p.partner_id
	                       AND a.kind IN ('partner_receivable', 'partner_prepaid')
	WHERE p.partner_id = p_partner_id;
END;
COMMENT ON FUNCTION evcharge.partner_owes(bigint) IS
	'what the partner owes the operator now, in yuan: its receivable (affiliated) less its deposit (prepaid); negative: the operator owes the partner';

CREATE FUNCTION evcharge.partner_row(p_partner_id bigint) RETURNS evcharge.partner
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pa evcharge.partner;
BEGIN
	SELECT * INTO pa FROM evcharge.partner p WHERE p.partner_id = p_partner_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'partner % is not registered', coalesce(p_partner_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Partners are in evcharge.partner.';
	END IF;
	RETURN pa;
END $$;
COMMENT ON FUNCTION evcharge.partner_row(bigint) IS 'the partner''s row, or error P0002 naming the unknown partner';

-- Money a partner sent to the operator's bank account.
CREATE FUNCTION evcharge.partner_payment(partner_id bigint, amount numeric, reference text,
	received_on date DEFAULT NULL, OUT txn_id bigint, OUT owes numeric, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pa evcharge.partner;
	acct bigint;
	r record;
BEGIN
	pa := evcharge.partner_row(partner_payment.partner_id);
	PERFORM evcharge.check_amount(partner_payment.amount, 'a partner payment');
	PERFORM evcharge.check_key(partner_payment.reference, 'bank reference');
	-- The value date puts the payment on a statement: one that never comes
	-- (infinity, a date not yet reached) or came before any (-infinity, a
	-- year 1) would hide it or misdate it.
	IF partner_payment.received_on IS NOT NULL AND (NOT isfinite(partner_payment.received_on)
	   OR partner_payment.received_on < date '2000-01-01'
	   OR partner_payment.received_on > (now() AT TIME ZONE evcharge.books_tz(pa.operator_id))::date) THEN
		RAISE EXCEPTION 'a payment received on % cannot be booked',
			CASE WHEN isfinite(partner_payment.received_on) THEN to_char(partner_payment.received_on, 'YYYY-MM-DD')
			     ELSE partner_payment.received_on::text END
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('The value date is from 2000-01-01 to today (%s in %s).',
			                      to_char(now() AT TIME ZONE evcharge.books_tz(pa.operator_id), 'YYYY-MM-DD'),
			                      evcharge.books_tz(pa.operator_id)),
			      HINT = 'Give the day the bank credited the money, as its statement line says, or leave it out (today).';
	END IF;
	acct := evcharge.account_of(pa.operator_id,
		CASE pa.kind WHEN 'prepaid' THEN 'partner_prepaid' ELSE 'partner_receivable' END, pa.partner_id);
	-- The partner's account is locked first, so what it owes after is this payment's.
	PERFORM 1 FROM evcharge.account a WHERE a.account_id = acct FOR UPDATE;
	SELECT (p.txn).txn_id, (p.txn).result, p.replayed INTO r
	FROM evcharge.post_txn(pa.operator_id, 'partner_payment', partner_payment.reference,
		ARRAY[evcharge.account_of(pa.operator_id, 'bank'), acct],
		ARRAY[partner_payment.amount, -partner_payment.amount], NULL, NULL,
		jsonb_build_object('partner_id', pa.partner_id, 'amount', partner_payment.amount,
		                   'owes', evcharge.partner_owes(pa.partner_id) - partner_payment.amount,
		                   'received_on', partner_payment.received_on)) p;
	txn_id := r.txn_id;
	owes := (r.result->>'owes')::numeric;
	replayed := r.replayed;
	IF replayed AND ((r.result->>'partner_id')::bigint <> pa.partner_id
	                 OR (r.result->>'amount')::numeric <> partner_payment.amount) THEN
		RAISE EXCEPTION 'payment reference % was already booked, for partner % and % yuan', partner_payment.reference,
			r.result->>'partner_id', r.result->>'amount'
			USING ERRCODE = 'unique_violation',
			      HINT = 'A bank reference is booked once; check the statement line it came from.';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.partner_payment(bigint, numeric, text, date) IS
	'books money a partner sent by bank (debit bank, credit its receivable or deposit), once per bank reference (check_key); received_on dates it for the statement (default: when booked; from 2000-01-01 to today in the books time zone); returns what the partner owes after';

CREATE TABLE evcharge.partner_month_statement (
	statement_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	partner_id bigint NOT NULL REFERENCES evcharge.partner,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	month date NOT NULL CHECK (extract(day FROM month) = 1),
	partner_kind text NOT NULL,
	period_end timestamptz NOT NULL,
	opening numeric(14, 2) NOT NULL,
	sessions int NOT NULL,
	energy_wh bigint NOT NULL,
	energy_fee numeric(14, 2) NOT NULL,
	service_fee numeric(14, 2) NOT NULL,
	occupancy_fee numeric(14, 2) NOT NULL,
	charges numeric(14, 2) NOT NULL,
	adjustments numeric(14, 2) NOT NULL,
	earlier_months numeric(14, 2) NOT NULL,
	payments numeric(14, 2) NOT NULL,
	closing numeric(14, 2) NOT NULL,
	partner_owes numeric(14, 2) NOT NULL CHECK (partner_owes >= 0),
	we_owe numeric(14, 2) NOT NULL CHECK (we_owe >= 0),
	pending_bills int NOT NULL,
	booked_at timestamptz NOT NULL DEFAULT now(),
	booked_by text NOT NULL DEFAULT current_user,
	UNIQUE (partner_id, month),
	CHECK (closing = opening + charges - payments),
	CHECK (charges = energy_fee + service_fee + occupancy_fee),
	CHECK (partner_owes - we_owe = closing)
);
COMMENT ON TABLE evcharge.partner_month_statement IS
	'A partner''s monthly statement as booked by partner_statement(): what its users'' charges came to, what it paid, and what each side owes; one per partner and month, never changed';
COMMENT ON COLUMN evcharge.partner_month_statement.statement_id IS 'statement number';
COMMENT ON COLUMN evcharge.partner_month_statement.partner_id IS 'the partner';
COMMENT ON COLUMN evcharge.partner_month_statement.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.partner_month_statement.month IS 'the month (its first day)';
COMMENT ON COLUMN evcharge.partner_month_statement.partner_kind IS 'prepaid or affiliated, when booked';
COMMENT ON COLUMN evcharge.partner_month_statement.period_end IS 'the month''s end in the operator''s time zone (finance_policy.tz): the cut-off';
COMMENT ON COLUMN evcharge.partner_month_statement.opening IS 'what the partner owed at the previous statement''s close (negative: what we owed it); 0 on the first';
COMMENT ON COLUMN evcharge.partner_month_statement.sessions IS 'bills settled on this statement';
COMMENT ON COLUMN evcharge.partner_month_statement.energy_wh IS 'their energy, with the changes of repaired bills, Wh';
COMMENT ON COLUMN evcharge.partner_month_statement.energy_fee IS 'electricity fees, yuan';
COMMENT ON COLUMN evcharge.partner_month_statement.service_fee IS 'service fees net of coupons, yuan';
COMMENT ON COLUMN evcharge.partner_month_statement.occupancy_fee IS 'occupancy fees, yuan';
COMMENT ON COLUMN evcharge.partner_month_statement.charges IS 'what the partner''s users were charged on this statement: bills and adjustments, yuan';
COMMENT ON COLUMN evcharge.partner_month_statement.adjustments IS 'the part of charges that repairs of already settled bills added (negative: gave back)';
COMMENT ON COLUMN evcharge.partner_month_statement.earlier_months IS 'the part of charges for sessions that ended before the month (settled late, after their own month''s statement)';
COMMENT ON COLUMN evcharge.partner_month_statement.payments IS 'money received from the partner (payments, deposits) less money returned to it, yuan';
COMMENT ON COLUMN evcharge.partner_month_statement.closing IS 'opening + charges - payments: what the partner owes at the cut-off (negative: what we owe it)';
COMMENT ON COLUMN evcharge.partner_month_statement.partner_owes IS 'what the partner owes the operator (closing when positive)';
COMMENT ON COLUMN evcharge.partner_month_statement.we_owe IS 'what the operator owes the partner, e.g. an unused deposit (-closing when negative)';
COMMENT ON COLUMN evcharge.partner_month_statement.pending_bills IS 'bills of the partner''s sessions ended by the cut-off not yet charged (held for repair or not yet settled): they will be on a later statement';
COMMENT ON COLUMN evcharge.partner_month_statement.booked_at IS 'when booked';
COMMENT ON COLUMN evcharge.partner_month_statement.booked_by IS 'database user';

CREATE TABLE evcharge.partner_month_item (
	txn_id bigint PRIMARY KEY REFERENCES evcharge.ledger_txn,
	statement_id bigint NOT NULL REFERENCES evcharge.partner_month_statement,
	kind text NOT NULL,
	order_no text,
	dated timestamptz NOT NULL,
	earlier_month boolean NOT NULL,
	energy_wh bigint NOT NULL,
	energy_fee numeric(14, 2) NOT NULL,
	service_fee numeric(14, 2) NOT NULL,
	occupancy_fee numeric(14, 2) NOT NULL,
	amount numeric(14, 2) NOT NULL
);
CREATE INDEX partner_month_item_statement_idx ON evcharge.partner_month_item (statement_id);
COMMENT ON INDEX evcharge.partner_month_item_statement_idx IS 'the lines of a partner statement';
COMMENT ON TABLE evcharge.partner_month_item IS
	'The lines of a partner statement: one ledger transaction on the partner''s accounts each, and each transaction on one statement only';
COMMENT ON COLUMN evcharge.partner_month_item.txn_id IS 'the ledger transaction';
COMMENT ON COLUMN evcharge.partner_month_item.statement_id IS 'the statement';
COMMENT ON COLUMN evcharge.partner_month_item.kind IS 'the transaction''s kind: bill, bill_adjustment, partner_payment, top_up, ...';
COMMENT ON COLUMN evcharge.partner_month_item.order_no IS 'the session, for bills and adjustments';
COMMENT ON COLUMN evcharge.partner_month_item.dated IS 'the end of the session for bills and adjustments; the day received for payments; else when booked';
COMMENT ON COLUMN evcharge.partner_month_item.earlier_month IS 'dated before the statement''s month: carried from an earlier month';
COMMENT ON COLUMN evcharge.partner_month_item.energy_wh IS 'the bill''s energy (an adjustment: its change), Wh';
COMMENT ON COLUMN evcharge.partner_month_item.energy_fee IS 'electricity revenue of the transaction, yuan';
COMMENT ON COLUMN evcharge.partner_month_item.service_fee IS 'service revenue net of coupons, yuan';
COMMENT ON COLUMN evcharge.partner_month_item.occupancy_fee IS 'occupancy revenue, yuan';
COMMENT ON COLUMN evcharge.partner_month_item.amount IS 'what it added to what the partner owes, yuan (negative: money received)';

-- Books (or returns, when booked already) a partner's statement of a month.
CREATE FUNCTION evcharge.partner_statement(partner_id bigint, month date)
RETURNS evcharge.partner_month_statement
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pa evcharge.partner;
	st evcharge.partner_month_statement;
	m date := date_trunc('month', partner_statement.month)::date;
	tz text;
	p_start timestamptz;
	p_end timestamptz;
	later date;
	opening numeric;
BEGIN
	IF partner_statement.month IS NULL THEN
		RAISE EXCEPTION 'a partner statement needs a month'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Give any day of the month, e.g. ''2026-10-01''.';
	END IF;
	PERFORM evcharge.check_time(partner_statement.month, 'partner_statement(month)', NULL);
	pa := evcharge.partner_row(partner_statement.partner_id);
	-- One booking at a time per partner: the second waits and returns the first's.
	PERFORM 1 FROM evcharge.partner p WHERE p.partner_id = pa.partner_id FOR UPDATE;
	SELECT * INTO st FROM evcharge.partner_month_statement s WHERE s.partner_id = pa.partner_id AND s.month = m;
	IF FOUND THEN
		RETURN st;
	END IF;
	tz := evcharge.books_tz(pa.operator_id);
	p_start := m::timestamp AT TIME ZONE tz;
	p_end := (m + interval '1 month')::timestamp AT TIME ZONE tz;
	IF p_end > now() THEN
		RAISE EXCEPTION 'the statement of % for % cannot be booked before the month is over', to_char(m, 'YYYY-MM'), pa.name
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('The month ends at %s (%s).', to_char(p_end AT TIME ZONE tz, 'YYYY-MM-DD HH24:MI'), tz),
			      HINT = 'The evcharge-partner-statements job books last month''s statements on the 2nd.';
	END IF;
	SELECT max(s.month) INTO later FROM evcharge.partner_month_statement s
	WHERE s.partner_id = pa.partner_id AND s.month > m;
	IF later IS NOT NULL THEN
		RAISE EXCEPTION 'the statement of % for % cannot be booked after that of %', to_char(m, 'YYYY-MM'), pa.name,
			to_char(later, 'YYYY-MM')
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = 'What it would have carried is on the later statement.',
			      HINT = 'Statements are booked month after month; read the later one.';
	END IF;

	opening := coalesce((SELECT s.closing FROM evcharge.partner_month_statement s
	                     WHERE s.partner_id = pa.partner_id ORDER BY s.month DESC LIMIT 1), 0);
	INSERT INTO evcharge.partner_month_statement (partner_id, operator_id, month, partner_kind, period_end, opening,
		sessions, energy_wh, energy_fee, service_fee, occupancy_fee, charges, adjustments, earlier_months, payments,
		closing, partner_owes, we_owe, pending_bills)
	VALUES (pa.partner_id, pa.operator_id, m, pa.kind, p_end, opening, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		opening, greatest(opening, 0), greatest(-opening, 0), 0)
	RETURNING * INTO st;

	-- Every transaction on the partner's accounts that no statement carries
	-- yet and that is dated before the cut-off.
	INSERT INTO evcharge.partner_month_item (txn_id, statement_id, kind, order_no, dated, earlier_month, energy_wh,
		energy_fee, service_fee, occupancy_fee, amount)
	SELECT x.txn_id, st.statement_id, x.kind, x.order_no, x.dated, x.dated < p_start,
	       CASE x.kind WHEN 'bill' THEN coalesce((x.result->>'energy_wh')::bigint, 0)
	                   WHEN 'bill_adjustment' THEN coalesce((x.result->>'energy_wh_delta')::bigint, 0) ELSE 0 END,
	       x.energy_fee, x.service_fee, x.occupancy_fee, x.amount
	FROM (
		SELECT t.txn_id, t.kind, t.order_no, t.result,
		       CASE WHEN t.kind IN ('bill', 'bill_adjustment') THEN coalesce(b.ended_at, b.started_at, t.created_at)
		            WHEN t.result->>'received_on' IS NOT NULL
		            THEN ((t.result->>'received_on')::date)::timestamp AT TIME ZONE tz
		            ELSE t.created_at END AS dated,
		       sum(e.amount) FILTER (WHERE a.owner_id = pa.partner_id
		                             AND a.kind IN ('partner_receivable', 'partner_prepaid')) AS amount,
		       coalesce(-sum(e.amount) FILTER (WHERE a.kind = 'revenue_electricity'), 0) AS energy_fee,
		       coalesce(-sum(e.amount) FILTER (WHERE a.kind = 'revenue_service'), 0) AS service_fee,
		       coalesce(-sum(e.amount) FILTER (WHERE a.kind = 'revenue_occupancy'), 0) AS occupancy_fee
		FROM evcharge.ledger_txn t
		JOIN evcharge.ledger_entry e ON e.txn_id = t.txn_id
		JOIN evcharge.account a ON a.account_id = e.account_id
		LEFT JOIN evcharge.bill b ON b.order_no = t.order_no
		WHERE t.txn_id IN (SELECT e2.txn_id FROM evcharge.ledger_entry e2
		                   JOIN evcharge.account a2 ON a2.account_id = e2.account_id
		                   WHERE a2.operator_id = pa.operator_id AND a2.owner_id = pa.partner_id
		                     AND a2.kind IN ('partner_receivable', 'partner_prepaid'))
		  AND NOT EXISTS (SELECT 1 FROM evcharge.partner_month_item i WHERE i.txn_id = t.txn_id)
		GROUP BY t.txn_id, b.ended_at, b.started_at
	) x
	WHERE x.dated < p_end;

	UPDATE evcharge.partner_month_statement s SET
		sessions = f.sessions, energy_wh = f.energy_wh, energy_fee = f.energy_fee, service_fee = f.service_fee,
		occupancy_fee = f.occupancy_fee, charges = f.charges, adjustments = f.adjustments,
		earlier_months = f.earlier_months, payments = f.payments,
		closing = s.opening + f.charges - f.payments,
		partner_owes = greatest(s.opening + f.charges - f.payments, 0),
		we_owe = greatest(-(s.opening + f.charges - f.payments), 0),
		pending_bills = (SELECT count(*) FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
		                 WHERE cs.partner_id = pa.partner_id AND b.state IN ('final', 'held')
		                   AND coalesce(b.ended_at, b.started_at) < p_end)
	FROM (SELECT count(DISTINCT i.order_no) FILTER (WHERE i.kind = 'bill') AS sessions,
	             coalesce(sum(i.energy_wh), 0) AS energy_wh,
	             coalesce(sum(i.energy_fee), 0) AS energy_fee,
	             coalesce(sum(i.service_fee), 0) AS service_fee,
	             coalesce(sum(i.occupancy_fee), 0) AS occupancy_fee,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind IN ('bill', 'bill_adjustment')), 0) AS charges,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind = 'bill_adjustment'), 0) AS adjustments,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind IN ('bill', 'bill_adjustment') AND i.earlier_month), 0)
	                 AS earlier_months,
	             coalesce(-sum(i.amount) FILTER (WHERE i.kind NOT IN ('bill', 'bill_adjustment')), 0) AS payments
	      FROM evcharge.partner_month_item i WHERE i.statement_id = st.statement_id) f
	WHERE s.statement_id = st.statement_id
	RETURNING s.* INTO st;
	RETURN st;
END $$;
COMMENT ON FUNCTION evcharge.partner_statement(bigint, date) IS
	'books the partner''s statement of the month (any day of it; the month must be over in the operator''s time zone): every ledger movement on the partner''s accounts dated before the month''s end that no earlier statement carried, its sessions, energy and fees, payments, and what each side owes; calling it again returns the booked statement';

-- The job that books them month after month, book_partner_statements(),
-- is in jobs.sql with its watermarks.

SELECT pg_catalog.pg_extension_config_dump('evcharge.partner_month_statement', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.partner_month_statement_statement_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.partner_month_item', '');
-- daily_report.sql: an operator's day in money, per station and
-- sub-operator, as its finance team reads it: sessions, energy, electricity
-- fee, service fee, occupancy fee, discounts and total kept apart (an old
-- report showed the total as the electricity fee), with the day's top-ups,
-- manual credits and refunds.  The money of the bills is what was charged:
-- settled bills, at their latest revision; held and not yet settled bills
-- are counted beside it, not added.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- The sub-operator a wallet's money belongs to: a department's by its
-- group, a member's by VIN, card or department; a partner's deposit, none.
CREATE FUNCTION evcharge.wallet_sub_operator(p_account_id bigint) RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT CASE a.kind
		WHEN 'department_wallet' THEN evcharge.attributed_sub_operator(a.operator_id, NULL, a.owner_id, NULL, NULL)
		WHEN 'member_wallet' THEN (SELECT evcharge.attributed_sub_operator(a.operator_id, NULL, m.group_id, m.vin, m.card_no)
		                           FROM evcharge.member m WHERE m.member_id = a.owner_id)
		END
	FROM evcharge.account a WHERE a.account_id = p_account_id;
END;
COMMENT ON FUNCTION evcharge.wallet_sub_operator(bigint) IS
	'the sub-operator a wallet belongs to: a department wallet by its group, a member''s by VIN, card or department (the attribution rules); NULL for the operator itself and partners'' deposits';

CREATE FUNCTION evcharge.daily_report(operator_id bigint, day date, only_sub_operator bigint DEFAULT NULL)
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
-- reconcile.sql: nightly reconciliation with the payment provider's and the
-- partners' statements, fetched over HTTPS only and signed for their source
-- and day (fetch_statement, in C: src/http_fetch.c), so that evcharge finds
-- paid-but-not-credited top-ups and the bills a partner does not have
-- itself, instead of an operator comparing order by order.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE FUNCTION evcharge.check_statement_url(url_template text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'evcharge_check_statement_url' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.check_statement_url(text) IS
	'true for a statement URL template that fetch_statement may fetch (https, a host, no user name or password, {day} in it), else an error (22023) saying what is wrong; the CHECK of statement_source.url_template';

CREATE FUNCTION evcharge.is_statement_source_name(name text) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$';
COMMENT ON FUNCTION evcharge.is_statement_source_name(text) IS
	'whether a text can name a statement source: 1 to 63 letters, digits, dots, dashes and underscores, starting with a letter or digit (the name is a line of what a statement''s signature covers)';

CREATE FUNCTION evcharge.fetch_statement(source text, day date, url_template text, secret text) RETURNS text
	AS 'MODULE_PATHNAME', 'evcharge_fetch_statement' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION evcharge.fetch_statement(text, date, text, text) IS
	'the statement of a source for a day: an https GET of url_template with {day} as YYYY-MM-DD, the request signed (X-Evcharge-Timestamp, X-Evcharge-Signature: HMAC-SHA256 of "GET\n" path?query "\n" timestamp), the response''s X-Signature checked as HMAC-SHA256 of "evcharge-statement-v1\n" source "\n" day "\n" hex SHA-256 of the body (28000 if not); bounded by evcharge.http_timeout, evcharge.http_connect_timeout and evcharge.http_max_bytes, waits as wait event Extension, stops when cancelled';
REVOKE ALL ON FUNCTION evcharge.fetch_statement(text, date, text, text) FROM PUBLIC;

CREATE TABLE evcharge.statement_source (
	source_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	kind text NOT NULL CHECK (kind IN ('provider', 'partner')),
	partner_id bigint REFERENCES evcharge.partner,
	url_template text NOT NULL CHECK (evcharge.check_statement_url(url_template)),
	secret text NOT NULL CHECK (secret <> ''),
	tz evcharge.time_zone NOT NULL DEFAULT 'Asia/Shanghai',
	enabled boolean NOT NULL DEFAULT true,
	name text NOT NULL CONSTRAINT statement_source_name_key UNIQUE
		CONSTRAINT statement_source_name_check CHECK (evcharge.is_statement_source_name(name)),
	CHECK ((kind = 'partner') = (partner_id IS NOT NULL))
);
REVOKE ALL ON evcharge.statement_source FROM PUBLIC;
COMMENT ON TABLE evcharge.statement_source IS
	'Where the payment provider''s and each partner''s daily statement is fetched, and the secret that signs it; readable by the extension''s owner only';
COMMENT ON COLUMN evcharge.statement_source.source_id IS 'row id';
COMMENT ON COLUMN evcharge.statement_source.operator_id IS 'whose statement';
COMMENT ON COLUMN evcharge.statement_source.kind IS 'provider (top-ups paid) or partner (bills the partner has)';
COMMENT ON COLUMN evcharge.statement_source.partner_id IS 'the partner, for kind partner';
COMMENT ON COLUMN evcharge.statement_source.url_template IS 'https URL with {day} replaced by the day asked for (YYYY-MM-DD); plain http is refused (check_statement_url)';
COMMENT ON COLUMN evcharge.statement_source.secret IS 'the shared secret of HMAC-SHA256 signatures, both ways';
COMMENT ON COLUMN evcharge.statement_source.tz IS 'the zone in which the statement''s days are counted';
COMMENT ON COLUMN evcharge.statement_source.enabled IS 'whether run_reconciliation() fetches it';
COMMENT ON COLUMN evcharge.statement_source.name IS 'the name agreed with the partner or provider, unique; its statements are signed for this name and their day';

-- Every row checked with an error that says what is wrong and never shows
-- the row: a CHECK or NOT NULL violation would print the whole row, the
-- secret with it, to the client and the server log.  The CHECKs stay as
-- the declared rules (the same functions); this only speaks first.
CREATE FUNCTION evcharge.statement_source_check() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NEW.kind IS NULL OR NEW.kind NOT IN ('provider', 'partner') THEN
		RAISE EXCEPTION 'statement source kind "%" is not provider or partner', NEW.kind
			USING ERRCODE = 'check_violation',
			      HINT = 'provider: the payment provider''s top-ups; partner: a partner''s bills (partner_id set).';
	END IF;
	IF (NEW.kind = 'partner') <> (NEW.partner_id IS NOT NULL) THEN
		RAISE EXCEPTION 'a % statement source %', NEW.kind,
			CASE WHEN NEW.kind = 'partner' THEN 'needs a partner_id' ELSE 'takes no partner_id' END
			USING ERRCODE = 'check_violation',
			      HINT = 'Set partner_id for kind partner, and only for it.';
	END IF;
	IF NEW.name IS NULL THEN
		RAISE EXCEPTION 'the statement source of "%" has no name', NEW.url_template
			USING ERRCODE = 'not_null_violation',
			      DETAIL = 'The name is agreed with the partner and is a line of what its statements'' signature covers.',
			      HINT = '1 to 63 letters, digits, ".", "-" or "_", starting with a letter or digit, such as wxpay-12.';
	END IF;
	IF NOT evcharge.is_statement_source_name(NEW.name) THEN
		RAISE EXCEPTION 'statement source name "%" is not valid', NEW.name
			USING ERRCODE = 'check_violation',
			      DETAIL = 'The name is agreed with the partner and is a line of what its statements'' signature covers.',
			      HINT = '1 to 63 letters, digits, ".", "-" or "_", starting with a letter or digit, such as wxpay-12.';
	END IF;
	IF NEW.url_template IS NULL THEN
		RAISE EXCEPTION 'statement source "%" has no url_template', NEW.name
			USING ERRCODE = 'not_null_violation',
			      HINT = 'An https URL with {day}, such as https://partner.example/statements/{day}.csv.';
	END IF;
	PERFORM evcharge.check_statement_url(NEW.url_template);
	IF NEW.secret IS NULL OR ((TG_OP = 'INSERT' OR NEW.secret IS DISTINCT FROM OLD.secret) AND length(NEW.secret) < 16) THEN
		RAISE EXCEPTION 'the secret of statement source "%" is % characters long', NEW.name, coalesce(length(NEW.secret), 0)
			USING ERRCODE = CASE WHEN NEW.secret IS NULL THEN 'not_null_violation' ELSE 'check_violation' END,
			      DETAIL = 'It keys the HMAC-SHA256 signatures of requests and statements; a short one can be guessed.',
			      HINT = 'Agree a random secret of at least 16 characters with the partner, such as the output of openssl rand -base64 24.';
	END IF;
	IF NEW.operator_id IS NULL THEN
		RAISE EXCEPTION 'statement source "%" has no operator_id', NEW.name
			USING ERRCODE = 'not_null_violation', HINT = 'Whose statement it is: an operator of evcharge.operator.';
	END IF;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.statement_source_check() IS
	'trigger: checks a statement source before it is stored (kind and partner, name, https URL template, a secret of at least 16 characters when set) with errors that never show the secret';
CREATE TRIGGER statement_source_check BEFORE INSERT OR UPDATE ON evcharge.statement_source
	FOR EACH ROW EXECUTE FUNCTION evcharge.statement_source_check();
COMMENT ON TRIGGER statement_source_check ON evcharge.statement_source IS
	'clear errors for a statement source, before the CHECKs (whose violation would print the secret)';

CREATE TABLE evcharge.provider_statement_line (
	source_id bigint NOT NULL REFERENCES evcharge.statement_source,
	day date NOT NULL,
	provider_txn text NOT NULL,
	account_id bigint NOT NULL,
	amount numeric(14, 2) NOT NULL,
	paid_at timestamptz NOT NULL,
	PRIMARY KEY (source_id, provider_txn)
);
COMMENT ON TABLE evcharge.provider_statement_line IS 'The payment provider''s statement as fetched: one line per top-up it was paid';
COMMENT ON COLUMN evcharge.provider_statement_line.source_id IS 'where it came from';
COMMENT ON COLUMN evcharge.provider_statement_line.day IS 'the statement''s day';
COMMENT ON COLUMN evcharge.provider_statement_line.provider_txn IS 'the provider''s transaction id (the top-up''s key)';
COMMENT ON COLUMN evcharge.provider_statement_line.account_id IS 'the wallet it was for';
COMMENT ON COLUMN evcharge.provider_statement_line.amount IS 'yuan paid';
COMMENT ON COLUMN evcharge.provider_statement_line.paid_at IS 'when the member paid';

CREATE TABLE evcharge.partner_statement_line (
	source_id bigint NOT NULL REFERENCES evcharge.statement_source,
	day date NOT NULL,
	order_no text NOT NULL,
	energy_wh bigint NOT NULL,
	total numeric(14, 2) NOT NULL,
	PRIMARY KEY (source_id, order_no)
);
COMMENT ON TABLE evcharge.partner_statement_line IS 'A partner''s statement as fetched: one line per bill the partner has';
COMMENT ON COLUMN evcharge.partner_statement_line.source_id IS 'where it came from';
COMMENT ON COLUMN evcharge.partner_statement_line.day IS 'the statement''s day';
COMMENT ON COLUMN evcharge.partner_statement_line.order_no IS 'the order';
COMMENT ON COLUMN evcharge.partner_statement_line.energy_wh IS 'the energy the partner has, Wh';
COMMENT ON COLUMN evcharge.partner_statement_line.total IS 'the amount the partner has, yuan';

CREATE TABLE evcharge.reconciliation_finding (
	finding_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	source_id bigint NOT NULL REFERENCES evcharge.statement_source,
	day date NOT NULL,
	kind text NOT NULL CHECK (kind IN ('paid_not_credited', 'credited_not_paid', 'amount_differs',
		'missing_at_partner', 'missing_here', 'energy_differs', 'negative_amount', 'fetch_failed')),
	key text NOT NULL,
	ours jsonb,
	theirs jsonb,
	action text NOT NULL,
	found_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT reconciliation_finding_once UNIQUE (source_id, day, kind, key)
);
COMMENT ON TABLE evcharge.reconciliation_finding IS
	'What a reconciliation found, by kind, one row per difference (found again, it is not repeated), with both sides'' figures and what was done';
COMMENT ON COLUMN evcharge.reconciliation_finding.finding_id IS 'row id';
COMMENT ON COLUMN evcharge.reconciliation_finding.source_id IS 'the statement';
COMMENT ON COLUMN evcharge.reconciliation_finding.day IS 'the day reconciled';
COMMENT ON COLUMN evcharge.reconciliation_finding.kind IS
	'paid_not_credited, credited_not_paid, amount_differs (provider); missing_at_partner, missing_here, energy_differs, amount_differs, negative_amount (partner); fetch_failed';
COMMENT ON COLUMN evcharge.reconciliation_finding.key IS 'the provider transaction or order number';
COMMENT ON COLUMN evcharge.reconciliation_finding.ours IS 'our figures';
COMMENT ON COLUMN evcharge.reconciliation_finding.theirs IS 'their figures';
COMMENT ON COLUMN evcharge.reconciliation_finding.action IS 'what evcharge did (credited) or what the operator should do';
COMMENT ON COLUMN evcharge.reconciliation_finding.found_at IS 'when';

-- Fetches a source's statement of a day and stores its lines.  The body is
-- CSV with a header: provider_txn,account_id,amount,paid_at for a
-- provider; order_no,energy_wh,total for a partner.
CREATE FUNCTION evcharge.import_statement(p_source_id bigint, p_day date) RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	src evcharge.statement_source;
	body text;
	lines text[];
	f text[];
	i int;
	n int := 0;
	header text;
BEGIN
	SELECT * INTO src FROM evcharge.statement_source s WHERE s.source_id = p_source_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'statement source % does not exist', p_source_id
			USING ERRCODE = 'no_data_found', HINT = 'Sources are in evcharge.statement_source.';
	END IF;
	body := evcharge.fetch_statement(src.name, p_day, src.url_template, src.secret);
	lines := regexp_split_to_array(rtrim(replace(body, E'\r', ''), E'\n'), E'\n');
	header := CASE src.kind WHEN 'provider' THEN 'provider_txn,account_id,amount,paid_at' ELSE 'order_no,energy_wh,total' END;
	IF lines[1] IS DISTINCT FROM header THEN
		RAISE EXCEPTION 'the % statement of % for % does not start with its header', src.kind, p_day, src.url_template
			USING ERRCODE = 'invalid_text_representation',
			      DETAIL = format('Its first line is "%s".', left(coalesce(lines[1], ''), 200)),
			      HINT = format('A %s statement is CSV starting with "%s".', src.kind, header);
	END IF;
	FOR i IN 2 .. coalesce(array_length(lines, 1), 0) LOOP
		CONTINUE WHEN lines[i] = '';
		f := string_to_array(lines[i], ',');
		BEGIN
			IF src.kind = 'provider' THEN
				IF array_length(f, 1) <> 4 THEN
					RAISE EXCEPTION USING ERRCODE = 'invalid_text_representation', MESSAGE = '4 fields expected';
				END IF;
				INSERT INTO evcharge.provider_statement_line VALUES (src.source_id, p_day, f[1], f[2]::bigint,
					f[3]::numeric(14, 2), f[4]::timestamptz)
				ON CONFLICT (source_id, provider_txn) DO NOTHING;
			ELSE
				IF array_length(f, 1) <> 3 THEN
					RAISE EXCEPTION USING ERRCODE = 'invalid_text_representation', MESSAGE = '3 fields expected';
				END IF;
				INSERT INTO evcharge.partner_statement_line VALUES (src.source_id, p_day, f[1], f[2]::bigint,
					f[3]::numeric(14, 2))
				ON CONFLICT (source_id, order_no) DO NOTHING;
			END IF;
		EXCEPTION WHEN invalid_text_representation OR invalid_datetime_format OR numeric_value_out_of_range
		          OR datetime_field_overflow THEN
			RAISE EXCEPTION 'line % of the % statement of % cannot be read: %', i, src.kind, p_day, SQLERRM
				USING ERRCODE = 'invalid_text_representation',
				      DETAIL = format('The line is "%s".', left(lines[i], 200)),
				      HINT = format('Fields: %s.', header);
		END;
		n := n + 1;
	END LOOP;
	RETURN n;
END $$;
COMMENT ON FUNCTION evcharge.import_statement(bigint, date) IS
	'fetches a source''s statement of a day, signed for that source and day (fetch_statement), and stores its lines; a line that cannot be read fails the import, naming it; returns the number of lines';

CREATE FUNCTION evcharge.reconcile_statement(p_source_id bigint, p_day date, p_apply boolean DEFAULT true)
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
		       jsonb_build_object('energy_wh', b.energy_wh, 'total', b.total, 'ended_at', b.ended_at), NULL,
		       'send the partner the order: its app may have lost the session'
		FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
		WHERE cs.partner_id = src.partner_id AND b.ended_at >= d_from AND b.ended_at < d_to
		  AND NOT EXISTS (SELECT 1 FROM evcharge.partner_statement_line l
		                  WHERE l.source_id = src.source_id AND l.order_no = b.order_no);
		INSERT INTO evcharge_finding
		SELECT 'missing_here', l.order_no, NULL, jsonb_build_object('energy_wh', l.energy_wh, 'total', l.total),
		       'no such bill here for this partner: check the order number with the partner'
		FROM evcharge.partner_statement_line l
		WHERE l.source_id = src.source_id AND l.day = p_day
		  AND NOT EXISTS (SELECT 1 FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
		                  WHERE b.order_no = l.order_no AND cs.partner_id = src.partner_id);
		INSERT INTO evcharge_finding
		SELECT CASE WHEN l.total < 0 THEN 'negative_amount'
		            WHEN abs(l.energy_wh - b.energy_wh) > greatest(tol, greatest(l.energy_wh, b.energy_wh) * pct / 100)
		                 THEN 'energy_differs'
		            ELSE 'amount_differs' END,
		       l.order_no, jsonb_build_object('energy_wh', b.energy_wh, 'total', b.total),
		       jsonb_build_object('energy_wh', l.energy_wh, 'total', l.total),
		       'compare with session_evidence(order_no) and agree the figure with the partner'
		FROM evcharge.partner_statement_line l
		JOIN evcharge.bill b ON b.order_no = l.order_no
		JOIN evcharge.charge_session cs ON cs.order_no = b.order_no AND cs.partner_id = src.partner_id
		WHERE l.source_id = src.source_id AND l.day = p_day
		  AND (l.total < 0 OR l.total <> b.total
		       OR abs(l.energy_wh - b.energy_wh) > greatest(tol, greatest(l.energy_wh, b.energy_wh) * pct / 100));
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
	'compares a source''s stored statement of a day with the ledger (provider: top-ups paid but not credited, which are credited when p_apply, credited but not paid, amounts differing) or with the partner''s bills (missing at the partner, missing here, energy or amount differing, negative amounts); records and returns the new findings';

-- The nightly job that calls these, run_reconciliation(), is in jobs.sql
-- with its watermarks.

SELECT pg_catalog.pg_extension_config_dump('evcharge.statement_source', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.provider_statement_line', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.partner_statement_line', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.reconciliation_finding', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.statement_source_source_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.reconciliation_finding_finding_id_seq', '');
-- evidence.sql: what support shows a driver who disputes a bill ("nothing
-- went into my car"): the session's heartbeat curve as the piles sent it,
-- with what the bill counted and what it did not (session_evidence), and
-- the same as a self-contained SVG chart (session_chart).  Both only read.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- Text for an XML document: the five markup characters escaped, control
-- characters (which XML 1.0 does not allow) replaced by a space.
CREATE FUNCTION evcharge.xml_escape(t text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
	pg_catalog.regexp_replace(t, '[[:cntrl:]]', ' ', 'g'),
	'&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&apos;');
COMMENT ON FUNCTION evcharge.xml_escape(text) IS
	'text made safe for XML content and attribute values: & < > " '' escaped, control characters replaced by a space (session_chart uses it for every text it writes)';

-- The heartbeat curve of one session, one row per heartbeat time.  The
-- window is the session's gun from 5 minutes before charging started to the
-- unplug (or the last heartbeat taken in).  Energy is what session_samples()
-- counts, the samples the bill is measured from, so the curve and the bill
-- cannot disagree; a rise it keeps out is shown as a jump.
CREATE FUNCTION evcharge.session_evidence(p_order_no text)
RETURNS TABLE (ts timestamptz, meter_wh bigint, energy_wh bigint, power_w int, status evcharge.gun_status,
	soc smallint, order_no text, tariff_class text, note text)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	gap_after CONSTANT interval := interval '2 min';
	s record;
	smp record;
	nsamples int;
	i int := 0;				-- the last sample at or before the row
	r record;
	notes text[];
	high bigint;			-- highest reading among the samples so far
	prev_ts timestamptz;
	ended_noted boolean := false;
	unplug_noted boolean := false;
	gap int;
BEGIN
	SELECT cs.gun, cs.station_id, cs.started_at, cs.charging_ended_at, cs.occupied_until,
	       coalesce(cs.started_at, cs.created_at) - interval '5 min' AS lo,
	       coalesce(cs.occupied_until, cs.last_ts, cs.charging_ended_at, cs.started_at, cs.created_at) AS hi,
	       st.tz, evcharge.current_type(cs.gun) AS current_type
	INTO s
	FROM evcharge.charge_session cs JOIN evcharge.station st ON st.station_id = cs.station_id
	WHERE cs.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', p_order_no
			USING ERRCODE = 'no_data_found',
			      DETAIL = 'No charging session has this order number, so there are no heartbeats to show.',
			      HINT = 'Order numbers are in evcharge.charge_session; a charge started at the pile appears there with its first charging heartbeat or its pile record.';
	END IF;
	smp := evcharge.session_samples(p_order_no);
	nsamples := coalesce(array_length(smp.ts, 1), 0);

	FOR r IN
		SELECT d.ts, d.meter_wh, d.power_w, d.status, d.soc, d.order_no, d.copies,
		       (SELECT evcharge.class_at(t.tariff, (d.ts AT TIME ZONE s.tz)::time)
		        FROM evcharge.station_tariff t
		        WHERE t.station_id = s.station_id AND t.current_type = s.current_type AND t.valid @> d.ts) AS tariff_class
		FROM (SELECT DISTINCT ON (h.ts) h.ts, h.meter_wh, h.power_w, h.status, h.soc, h.order_no,
		             count(*) OVER (PARTITION BY h.ts) AS copies
		      FROM evcharge.heartbeat h
		      WHERE h.gun OPERATOR(evcharge.=) s.gun AND h.ts >= s.lo AND h.ts <= s.hi
		      ORDER BY h.ts, h.meter_wh DESC NULLS LAST, h.received_at, h.status, h.power_w) d
		ORDER BY d.ts
	LOOP
		notes := '{}';
		IF r.ts = s.started_at THEN
			notes := notes || 'start of charging'::text;
		END IF;
		-- A silence while charging: the pile was offline or its data lost.
		IF prev_ts >= s.started_at AND prev_ts < coalesce(s.charging_ended_at, 'infinity')
		   AND r.ts - prev_ts > gap_after THEN
			gap := extract(epoch FROM r.ts - prev_ts)::int;
			notes := notes || format('no heartbeat for %s min %s s before this: possible lost data', gap / 60, gap % 60);
		END IF;

		-- Energy so far: the last sample at or before this row.  At a sample,
		-- a rise of the highest reading that the count did not take is a jump.
		IF i < nsamples AND smp.ts[i + 1] = r.ts THEN
			i := i + 1;
			IF high IS NOT NULL AND r.meter_wh > high
			   AND r.meter_wh - high > smp.meter_wh[i] - smp.meter_wh[i - 1] THEN
				notes := notes || format('meter jump of %s Wh, not billed',
					(r.meter_wh - high) - (smp.meter_wh[i] - smp.meter_wh[i - 1]));
			END IF;
			high := greatest(high, r.meter_wh);
		END IF;
		IF r.ts >= s.started_at AND r.ts <= coalesce(s.charging_ended_at, 'infinity') THEN
			IF r.meter_wh < 0 THEN
				notes := notes || 'no meter reading (-1): ignored'::text;
			ELSIF r.meter_wh = 0 AND high > 0 THEN
				notes := notes || 'meter reads 0 (a pile back online): ignored, counting resumes above the highest reading'::text;
			ELSIF r.meter_wh < high THEN
				notes := notes || format('meter below its highest reading (%s Wh): nothing counted', high);
			END IF;
		END IF;

		IF NOT ended_noted AND r.ts >= s.charging_ended_at THEN
			notes := notes || CASE WHEN r.ts = s.charging_ended_at THEN 'end of charging'
				ELSE format('end of charging at %s, before this heartbeat',
				            to_char(s.charging_ended_at AT TIME ZONE s.tz, 'HH24:MI:SS')) END;
			ended_noted := true;
		END IF;
		IF NOT unplug_noted AND r.ts >= s.occupied_until THEN
			notes := notes || CASE WHEN r.ts = s.occupied_until THEN 'unplugged'
				ELSE format('unplugged at %s, before this heartbeat', to_char(s.occupied_until AT TIME ZONE s.tz, 'HH24:MI:SS')) END;
			unplug_noted := true;
		END IF;
		IF r.copies > 1 THEN
			notes := notes || format('received %s times: the highest reading is shown', r.copies);
		END IF;

		ts := r.ts;
		meter_wh := r.meter_wh;
		energy_wh := CASE WHEN i > 0 THEN smp.meter_wh[i] END;
		power_w := r.power_w;
		status := r.status;
		soc := r.soc;
		order_no := r.order_no;
		tariff_class := r.tariff_class;
		note := nullif(array_to_string(notes, '; '), '');
		RETURN NEXT;
		prev_ts := r.ts;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.session_evidence(text) IS
	'the heartbeat curve of a session for support: its gun''s heartbeats from 5 minutes before charging started to the unplug, one row per time (duplicates once, the highest reading), energy delivered so far as the bill counts it (from the first charging reading; jumps not billed), the tariff class in force, and notes: start, end of charging, unplug, jumps, 0 and -1 readings, silences longer than 2 minutes while charging, duplicates';

-- The evidence as a chart a driver can be sent: an SVG 1.1 document with no
-- external reference and no script.  Energy delivered (Wh, left axis) and
-- power (kW, right axis) over the station's wall-clock time, the tariff
-- classes in force as background bands, the start, end of charging and
-- unplug as dashed lines, meter jumps and silences while charging marked,
-- and the bill's anomalies in a box below.  Every number is written with
-- fixed decimals and nothing depends on the time of the call, so the same
-- data always gives the same document.
CREATE FUNCTION evcharge.session_chart(p_order_no text) RETURNS text
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
	       evcharge.current_type(cs.gun) AS current_type
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
		format('<text class="title" x="%s" y="26">%s</text>', px0, evcharge.xml_escape(format('Order %s · gun %s · %s',
			s.order_no, s.gun, s.station_name))),
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
	'the evidence of a session as a self-contained SVG 1.1 document: energy delivered (Wh) and power (kW) over the station''s local time, tariff classes as background bands with their prices, start, end of charging and unplug, meter jumps and silences while charging marked, the bill''s anomaly codes and names; deterministic';
-- jobs.sql: what only time reveals, as functions pg_cron runs: silent guns
-- and network incidents (sweep_offline), heartbeat partitions ahead and
-- behind (maintain_partitions), the nightly reconciliation and the monthly
-- partner statements with their watermarks (run_reconciliation,
-- book_partner_statements), and schedule_jobs() that registers them.
-- Every job is idempotent and safe to run twice or late.  pg_cron does not
-- catch up runs missed while the server was down: a job whose work is cut
-- in windows (a day's statement, a month's) remembers in job_watermark up
-- to where it has done it, and each run does every window from there to
-- now; the others sweep everything due as of now, so a late run does what
-- the missed ones would have.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- An integer setting (see src/evcharge.c for the GUCs and their defaults);
-- the default here applies only before the library is loaded.
CREATE FUNCTION evcharge.setting_int(name text, fallback int) RETURNS int
LANGUAGE sql STABLE PARALLEL SAFE
RETURN coalesce(nullif(current_setting(name, true), '')::int, fallback);
COMMENT ON FUNCTION evcharge.setting_int(text, int) IS
	'an integer evcharge setting, or the fallback when it is not defined yet';

-- A setting in time units (shown as 3min, 120s): an interval.
CREATE FUNCTION evcharge.setting_interval(name text, fallback interval) RETURNS interval
LANGUAGE sql STABLE PARALLEL SAFE
RETURN coalesce(nullif(current_setting(name, true), '')::interval, fallback);
COMMENT ON FUNCTION evcharge.setting_interval(text, interval) IS
	'an evcharge setting in time units as an interval, or the fallback when it is not defined yet';

CREATE FUNCTION evcharge.sweep_offline(at timestamptz DEFAULT now(),
	OUT went_offline int, OUT incidents int)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	silence interval := evcharge.setting_interval('evcharge.offline_after', '180 s');
	win interval := evcharge.setting_interval('evcharge.incident_window', '120 s');
	min_piles int := evcharge.setting_int('evcharge.incident_min_piles', 3);
	up timestamptz := pg_postmaster_start_time();
	c record;
	incident bigint;
BEGIN
	PERFORM evcharge.check_time(at, 'sweep_offline(at)', interval '0');
	-- Guns silent too long go offline; each gets one open offline period.
	-- Silence counts from the server's start at the earliest: while the
	-- database was down no heartbeat could be written, and that is not
	-- the guns' silence (else every gun would go offline after a restart
	-- and every open session end as lost).
	WITH gone AS (
		UPDATE evcharge.gun_state g SET online = false, updated_at = now()
		WHERE g.online AND greatest(g.last_heartbeat, CASE WHEN at >= up THEN up END) < at - silence
		RETURNING g.gun, g.station_id, g.last_heartbeat)
	INSERT INTO evcharge.offline_period (gun, station_id, started_at, detected_at)
	SELECT gun, station_id, last_heartbeat, at FROM gone ORDER BY gun
	ON CONFLICT (gun) WHERE ended_at IS NULL DO NOTHING;
	GET DIAGNOSTICS went_offline = ROW_COUNT;

	-- Open periods of a station whose silences began within the window of
	-- each other form a cluster; a cluster of enough piles is one incident.
	incidents := 0;
	FOR c IN
		WITH cand AS (
			SELECT o.offline_period_id, o.station_id, o.gun, o.started_at,
			       CASE WHEN o.started_at - lag(o.started_at) OVER w <= win THEN 0 ELSE 1 END AS starts_cluster
			FROM evcharge.offline_period o
			WHERE o.ended_at IS NULL AND o.network_incident_id IS NULL
			WINDOW w AS (PARTITION BY o.station_id ORDER BY o.started_at, o.offline_period_id)
		), numbered AS (
			SELECT *, sum(starts_cluster) OVER (PARTITION BY station_id ORDER BY started_at, offline_period_id) AS cluster
			FROM cand
		)
		SELECT station_id, min(started_at) AS started_at, array_agg(offline_period_id) AS periods,
		       count(DISTINCT evcharge.pile(gun)) AS piles, count(*) AS guns
		FROM numbered GROUP BY station_id, cluster
		HAVING count(DISTINCT evcharge.pile(gun)) >= min_piles
		ORDER BY station_id, min(started_at)
	LOOP
		INSERT INTO evcharge.network_incident (station_id, started_at, detected_at, piles, guns)
		VALUES (c.station_id, c.started_at, at, c.piles, c.guns)
		RETURNING network_incident_id INTO incident;
		UPDATE evcharge.offline_period SET network_incident_id = incident
		WHERE offline_period_id = ANY (c.periods);
		incidents := incidents + 1;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.sweep_offline(timestamptz) IS
	'marks guns silent longer than evcharge.offline_after offline with an offline period (silence counted from the server''s start at the earliest), and groups piles of one station silent within evcharge.incident_window into a network incident; at must lie from 2015 to now (check_time); idempotent';

-- Daily partitions of heartbeat, [00:00, 24:00) UTC, named heartbeat_pYYYYMMDD.
CREATE FUNCTION evcharge.maintain_partitions(at timestamptz DEFAULT now(),
	OUT created int, OUT dropped int)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ahead int := evcharge.setting_int('evcharge.partitions_ahead_days', 7);
	keep int := evcharge.setting_int('evcharge.heartbeat_retention_days', 90);
	today date := (evcharge.check_time(at, 'maintain_partitions(at)') AT TIME ZONE 'UTC')::date;
	-- Retention counts back from the real day as well: an "at" ahead of now
	-- never drops heartbeats younger than the retention.
	keep_from date := least(today, (now() AT TIME ZONE 'UTC')::date) - keep;
	d date;
	lo text;
	hi text;
	part text;
	p record;
BEGIN
	created := 0;
	dropped := 0;
	FOR d IN SELECT g::date FROM generate_series((today - 1)::timestamp, (today + ahead)::timestamp, interval '1 day') g LOOP
		part := 'heartbeat_p' || to_char(d, 'YYYYMMDD');
		-- Bounds as ISO text in UTC: independent of the session's DateStyle
		-- and time zone (a bound printed as "... CST" would be read back as
		-- US Central).
		lo := to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00';
		hi := to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00';
		CONTINUE WHEN EXISTS (
			SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'evcharge.heartbeat'::regclass AND c.relname = part);
		-- Rows already in the default partition move into the new one
		-- directly, so the trigger does not see them twice.
		EXECUTE format('CREATE TABLE evcharge.%I (LIKE evcharge.heartbeat INCLUDING DEFAULTS)', part);
		-- Its own index, as heartbeat_default's (heartbeat.sql says why).
		EXECUTE format('CREATE INDEX %I ON evcharge.%I (gun, ts)', part || '_gun_ts_idx', part);
		EXECUTE format('WITH moved AS (DELETE FROM evcharge.heartbeat_default WHERE ts >= %L::timestamptz AND ts < %L::timestamptz RETURNING *)
		                INSERT INTO evcharge.%I SELECT * FROM moved', lo, hi, part);
		EXECUTE format('ALTER TABLE evcharge.heartbeat ATTACH PARTITION evcharge.%I FOR VALUES FROM (%L) TO (%L)',
		               part, lo, hi);
		EXECUTE format('COMMENT ON TABLE evcharge.%I IS %L', part,
		               format('heartbeats of %s (UTC), made by evcharge.maintain_partitions()', d));
		created := created + 1;
	END LOOP;

	FOR p IN
		SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'evcharge.heartbeat'::regclass AND c.relname ~ '^heartbeat_p\d{8}$'
		  AND to_date(substr(c.relname, 12), 'YYYYMMDD') < keep_from
		ORDER BY c.relname
	LOOP
		EXECUTE format('DROP TABLE evcharge.%I', p.relname);
		dropped := dropped + 1;
	END LOOP;
	DELETE FROM evcharge.heartbeat_default WHERE ts < keep_from::timestamp AT TIME ZONE 'UTC';
END $$;
COMMENT ON FUNCTION evcharge.maintain_partitions(timestamptz) IS
	'creates daily heartbeat partitions from yesterday to evcharge.partitions_ahead_days ahead and drops those older than evcharge.heartbeat_retention_days before at or before now, whichever is earlier; at must lie from 2015 to now() + 1 day (check_time); idempotent';

-- Where each windowed job has done its work: one row per job and what it
-- works for (a statement source, a partner).  A run locks the row for as
-- long as it works, so a second run at the same time skips that source or
-- partner instead of doing its days twice.
CREATE TABLE evcharge.job_watermark (
	job text NOT NULL CHECK (job IN ('reconcile', 'partner_statements')),
	subject_id bigint NOT NULL,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	done_until date NOT NULL CHECK (done_until >= '2014-12-01'),
	last_run_at timestamptz,
	last_result text,
	last_error text,
	failed_on date,
	PRIMARY KEY (job, subject_id),
	CHECK ((last_error IS NULL) = (failed_on IS NULL))
);
COMMENT ON TABLE evcharge.job_watermark IS
	'Up to where each windowed job has done its work, per statement source (reconcile) or partner (partner_statements); each run does every window after done_until that is due, in order, and stops at the first that fails.  A DBA may move done_until (back: to redo; forward: to skip a window that will never succeed)';
COMMENT ON COLUMN evcharge.job_watermark.job IS 'reconcile (run_reconciliation) or partner_statements (book_partner_statements)';
COMMENT ON COLUMN evcharge.job_watermark.subject_id IS 'the statement source (reconcile) or the partner (partner_statements)';
COMMENT ON COLUMN evcharge.job_watermark.operator_id IS 'whose source or partner';
COMMENT ON COLUMN evcharge.job_watermark.done_until IS 'the last day reconciled (in the source''s zone), or the first day of the last month booked: the next run starts after it';
COMMENT ON COLUMN evcharge.job_watermark.last_run_at IS 'when a run last worked on it';
COMMENT ON COLUMN evcharge.job_watermark.last_result IS 'what that run did, e.g. "reconciled 2026-11-28 to 2026-11-30" or "nothing due"';
COMMENT ON COLUMN evcharge.job_watermark.last_error IS 'the error that stopped that run, NULL when it got through';
COMMENT ON COLUMN evcharge.job_watermark.failed_on IS 'the day or month that failed (the next run starts there again), NULL when none did';

-- A windowed job's row for this run, locked: made on the first run with
-- done_until = first_done; NULL when another run holds it.
CREATE FUNCTION evcharge.take_watermark(p_job text, p_subject_id bigint, p_operator_id bigint, p_first_done date)
RETURNS evcharge.job_watermark
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	wm evcharge.job_watermark;
BEGIN
	INSERT INTO evcharge.job_watermark (job, subject_id, operator_id, done_until)
	VALUES (p_job, p_subject_id, p_operator_id, p_first_done)
	ON CONFLICT (job, subject_id) DO NOTHING;
	SELECT * INTO wm FROM evcharge.job_watermark w
	WHERE w.job = p_job AND w.subject_id = p_subject_id
	FOR UPDATE SKIP LOCKED;
	RETURN wm;
END $$;
COMMENT ON FUNCTION evcharge.take_watermark(text, bigint, bigint, date) IS
	'internal: the job_watermark row of a job and subject, made on the first run (done_until = p_first_done) and locked for this run; NULL when another run holds it';

-- One source's statement of one day, fetched and reconciled in a
-- subtransaction: a failure is recorded as a fetch_failed finding and
-- returned, never raised.
CREATE FUNCTION evcharge.reconcile_source_day(p_source_id bigint, p_day date,
	OUT lines int, OUT findings int, OUT error text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	BEGIN
		lines := evcharge.import_statement(p_source_id, p_day);
		SELECT count(*) INTO findings FROM evcharge.reconcile_statement(p_source_id, p_day);
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS error = MESSAGE_TEXT;
		lines := NULL;
		findings := NULL;
		INSERT INTO evcharge.reconciliation_finding (source_id, day, kind, key, action, theirs)
		VALUES (p_source_id, p_day, 'fetch_failed', 'statement',
		        'the next run of evcharge-reconcile tries again; by hand: run_reconciliation(''' || p_day || ''')',
		        jsonb_build_object('error', error))
		ON CONFLICT ON CONSTRAINT reconciliation_finding_once
		DO UPDATE SET theirs = EXCLUDED.theirs, action = EXCLUDED.action, found_at = now();
	END;
END $$;
COMMENT ON FUNCTION evcharge.reconcile_source_day(bigint, date) IS
	'internal: import_statement() and reconcile_statement() of one source and day in a subtransaction; a failure is recorded as a fetch_failed finding and returned as error';

-- The nightly job.  Without a day: for every enabled source, every day
-- after its watermark that is over in the source's zone, oldest first, at
-- most 31 a run; a day that fails stops that source there (recorded) and
-- the others go on.  A source's first run does yesterday.  With a day: that
-- day for every source, by hand; the watermarks do not move.
CREATE FUNCTION evcharge.run_reconciliation(p_day date DEFAULT NULL)
RETURNS TABLE (source_id bigint, kind text, day date, lines int, findings int, error text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	src evcharge.statement_source;
	wm evcharge.job_watermark;
	last_day date;
	d date;
	first_day date;
	r record;
BEGIN
	IF p_day IS NOT NULL THEN
		PERFORM evcharge.check_time(p_day, 'run_reconciliation(p_day)');
		SELECT s.source_id, s.tz INTO r FROM evcharge.statement_source s
		WHERE s.enabled AND p_day > (now() AT TIME ZONE s.tz)::date ORDER BY s.source_id LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION 'day % has not begun for statement source %', p_day, r.source_id
				USING ERRCODE = 'invalid_parameter_value',
				      DETAIL = format('It is %s in %s, the source''s zone.', (now() AT TIME ZONE r.tz)::date, r.tz),
				      HINT = 'Reconcile a day that is over (today''s statement is partial), from 2015-01-01 on.';
		END IF;
	END IF;
	FOR src IN SELECT * FROM evcharge.statement_source s WHERE s.enabled ORDER BY s.source_id LOOP
		source_id := src.source_id;
		kind := src.kind;
		IF p_day IS NOT NULL THEN
			day := p_day;
			SELECT * INTO lines, findings, error FROM evcharge.reconcile_source_day(src.source_id, p_day);
			RETURN NEXT;
			CONTINUE;
		END IF;
		last_day := (now() AT TIME ZONE src.tz)::date - 1;
		wm := evcharge.take_watermark('reconcile', src.source_id, src.operator_id, last_day - 1);
		CONTINUE WHEN wm.job IS NULL;	-- another run is reconciling this source
		d := wm.done_until + 1;
		first_day := d;
		error := NULL;
		WHILE d <= last_day AND d < first_day + 31 LOOP
			day := d;
			SELECT * INTO lines, findings, error FROM evcharge.reconcile_source_day(src.source_id, d);
			RETURN NEXT;
			EXIT WHEN error IS NOT NULL;
			UPDATE evcharge.job_watermark w SET done_until = d
			WHERE w.job = 'reconcile' AND w.subject_id = src.source_id;
			d := d + 1;
		END LOOP;
		UPDATE evcharge.job_watermark w SET last_run_at = now(), last_error = error,
			failed_on = CASE WHEN error IS NOT NULL THEN d END,
			last_result = CASE WHEN d > first_day
			                   THEN format('reconciled %s to %s', first_day, d - 1)
			                   WHEN error IS NULL THEN 'nothing due'
			                   ELSE 'nothing reconciled' END
			              || CASE WHEN error IS NOT NULL THEN format('; %s failed', d)
			                      WHEN d <= last_day THEN format('; %s to %s on the next run', d, last_day)
			                      ELSE '' END
		WHERE w.job = 'reconcile' AND w.subject_id = src.source_id;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.run_reconciliation(date) IS
	'scheduled nightly: for every enabled statement source, fetches and reconciles every day after its job_watermark that is over in the source''s zone, oldest first (at most 31 a run; a source''s first run does yesterday); a day that fails is recorded as fetch_failed and stops that source there until the next run, the others go on; with p_day, that day for every source without moving the watermarks; one row per source and day';

-- The first instant a partner's statements have to cover: its first
-- session or ledger movement (a payment by the day it was received).
CREATE FUNCTION evcharge.partner_first_activity(p_partner_id bigint) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT least(
		(SELECT min(least(cs.created_at, b.started_at, b.ended_at)) FROM evcharge.charge_session cs
		 LEFT JOIN evcharge.bill b ON b.order_no = cs.order_no WHERE cs.partner_id = p_partner_id),
		(SELECT min(least(t.created_at, ((t.result->>'received_on')::date)::timestamp AT TIME ZONE evcharge.books_tz(a.operator_id)))
		 FROM evcharge.account a
		 JOIN evcharge.ledger_entry e ON e.account_id = a.account_id
		 JOIN evcharge.ledger_txn t ON t.txn_id = e.txn_id
		 WHERE a.owner_id = p_partner_id AND a.kind IN ('partner_receivable', 'partner_prepaid')
		   AND a.operator_id = (SELECT p.operator_id FROM evcharge.partner p WHERE p.partner_id = p_partner_id)));
END;
COMMENT ON FUNCTION evcharge.partner_first_activity(bigint) IS
	'internal: the earliest session or ledger movement of a partner (a payment by the day received), where its statements begin; NULL when it has none';

-- The monthly job, run daily: every partner's statements, month after
-- month, from the month after its watermark to the last month that ended
-- a day or more before at (in the operator's books zone), each booked by
-- partner_statement().  A month that fails stops that partner there
-- (recorded); the others go on.
CREATE FUNCTION evcharge.book_partner_statements(at timestamptz DEFAULT now(), OUT booked int)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	tz text;
	last_month date;
	first_month date;
	m date;
	wm evcharge.job_watermark;
	st evcharge.partner_month_statement;
	err text;
	n int;
BEGIN
	PERFORM evcharge.check_time(at, 'book_partner_statements(at)');
	booked := 0;
	FOR p IN SELECT pa.partner_id, pa.operator_id FROM evcharge.partner pa ORDER BY pa.partner_id LOOP
		tz := evcharge.books_tz(p.operator_id);
		-- A month is due one day after it ended: late pile records of its
		-- last day still make its statement.
		last_month := (date_trunc('month', least(at, now()) AT TIME ZONE tz - interval '1 day') - interval '1 month')::date;
		-- The first run starts at the partner's first activity, or books last
		-- month alone for a partner that has none; a statement booked by
		-- hand counts as done.
		wm := evcharge.take_watermark('partner_statements', p.partner_id, p.operator_id, (coalesce(
			(SELECT max(s.month) FROM evcharge.partner_month_statement s WHERE s.partner_id = p.partner_id),
			least(date_trunc('month', evcharge.partner_first_activity(p.partner_id) AT TIME ZONE tz)::date, last_month)
				- interval '1 month',
			last_month - interval '1 month'))::date);
		CONTINUE WHEN wm.job IS NULL;	-- another run is booking this partner
		m := (greatest(wm.done_until, (SELECT max(s.month) FROM evcharge.partner_month_statement s
		                               WHERE s.partner_id = p.partner_id)) + interval '1 month')::date;
		first_month := m;
		err := NULL;
		n := 0;
		WHILE m <= last_month LOOP
			BEGIN
				st := evcharge.partner_statement(p.partner_id, m);
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
				EXIT;
			END;
			IF st.booked_at = now() THEN
				n := n + 1;
			END IF;
			UPDATE evcharge.job_watermark w SET done_until = m
			WHERE w.job = 'partner_statements' AND w.subject_id = p.partner_id;
			m := (m + interval '1 month')::date;
		END LOOP;
		booked := booked + n;
		UPDATE evcharge.job_watermark w SET last_run_at = now(), last_error = err,
			failed_on = CASE WHEN err IS NOT NULL THEN m END,
			last_result = CASE WHEN m > first_month
			                   THEN format('booked %s to %s', to_char(first_month, 'YYYY-MM'),
			                               to_char(m - interval '1 month', 'YYYY-MM'))
			                   WHEN err IS NULL THEN 'nothing due'
			                   ELSE 'nothing booked' END
			              || CASE WHEN err IS NOT NULL THEN format('; %s failed', to_char(m, 'YYYY-MM')) ELSE '' END
		WHERE w.job = 'partner_statements' AND w.subject_id = p.partner_id;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.book_partner_statements(timestamptz) IS
	'scheduled daily: for every partner, books each month''s statement after its job_watermark up to the last month that ended a day or more before at (operator''s books zone), in order; a partner''s first run starts at its first activity (or books last month alone); a month that fails stops that partner there, the others go on; at must lie from 2015 to now() + 1 day; returns how many statements it booked; idempotent';

-- evcharge's jobs: name, schedule (GMT), command, and the schedules that
-- earlier versions registered (a job still on one of those was not changed
-- by a DBA, and moves to today's).
CREATE FUNCTION evcharge.job_definitions(OUT jobname text, OUT schedule text, OUT command text,
	OUT earlier_schedules text[])
RETURNS SETOF record
LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT * FROM (VALUES
		('evcharge-sweep-offline', '* * * * *', 'SELECT evcharge.sweep_offline()', '{}'::text[]),
		('evcharge-partitions', '7 * * * *', 'SELECT evcharge.maintain_partitions()', '{}'),
		('evcharge-lost-bills', '*/5 * * * *', 'SELECT evcharge.detect_lost_bills()', '{}'),
		('evcharge-settle', '* * * * *', 'SELECT evcharge.settle_bills()', '{}'),
		('evcharge-reconcile', '30 18 * * *', 'SELECT * FROM evcharge.run_reconciliation()', '{}'),
		('evcharge-partner-statements', '0 20 * * *', 'SELECT evcharge.book_partner_statements()', '{0 20 1 * *}')
	) AS j (jobname, schedule, command, earlier_schedules);
END;
COMMENT ON FUNCTION evcharge.job_definitions() IS
	'evcharge''s six pg_cron jobs as schedule_jobs() registers them: name, default schedule (GMT), command, and the defaults of earlier versions';

-- Registers what is missing and keeps what a DBA changed: pg_cron's own
-- cron.job is where a DBA changes a schedule or pauses a job
-- (cron.alter_job), so it is the one place schedules live; a job is only
-- created when no job of its name exists, and only moved to today's
-- schedule when it is still on one that an earlier version registered.
CREATE FUNCTION evcharge.schedule_jobs()
RETURNS TABLE (jobname text, schedule text, command text, active boolean, action text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	j record;
	have record;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
		RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('pg_cron runs jobs from the database named by cron.database_name (%s).',
			                      coalesce(current_setting('cron.database_name', true), 'not set: pg_cron is not preloaded')),
			      HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, restart, and CREATE EXTENSION pg_cron here; see docs/operations.md.';
	END IF;
	PERFORM evcharge.maintain_partitions();
	FOR j IN SELECT * FROM evcharge.job_definitions() d ORDER BY d.jobname LOOP
		EXECUTE 'SELECT c.jobid, c.schedule, c.command, c.active FROM cron.job c
		         WHERE c.jobname = $1 AND c.database = current_database() ORDER BY c.jobid LIMIT 1'
			INTO have USING j.jobname;
		jobname := j.jobname;
		IF have.jobid IS NULL THEN
			EXECUTE 'SELECT cron.schedule($1, $2, $3)' USING j.jobname, j.schedule, j.command;
			schedule := j.schedule;
			command := j.command;
			active := true;
			action := 'created';
		ELSIF have.schedule = ANY (j.earlier_schedules) THEN
			EXECUTE 'SELECT cron.alter_job($1, schedule => $2)' USING have.jobid, j.schedule;
			schedule := j.schedule;
			command := have.command;
			active := have.active;
			action := format('schedule %s of an earlier version moved to %s', have.schedule, j.schedule);
		ELSE
			schedule := have.schedule;
			command := have.command;
			active := have.active;
			action := CASE WHEN have.schedule = j.schedule AND have.command = j.command AND have.active THEN 'kept'
			               ELSE 'kept as changed: ' || concat_ws(', ',
			                   CASE WHEN have.schedule <> j.schedule THEN format('schedule %s (default %s)', have.schedule, j.schedule) END,
			                   CASE WHEN have.command <> j.command THEN format('command %s', have.command) END,
			                   CASE WHEN NOT have.active THEN 'paused' END) END;
		END IF;
		RETURN NEXT;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.schedule_jobs() IS
	'registers with pg_cron those of evcharge''s six jobs (job_definitions()) that are missing, keeps every job a DBA changed (schedule, command, paused) as it is, moves a job still on an earlier version''s default schedule to today''s, and makes the partitions now; one row per job with what it did; idempotent';

SELECT pg_catalog.pg_extension_config_dump('evcharge.job_watermark', '');
-- drop_guard.sql: one command does not destroy the books.  The bills and
-- the ledger are member tables of the extension, so a plain DROP EXTENSION
-- evcharge (no CASCADE needed) would drop them with it, as would DROP
-- SCHEMA evcharge CASCADE, or a CASCADE drop of btree_gist (which evcharge
-- requires) or of its schema.  An event trigger at ddl_command_start (the
-- tables are still there) refuses such a command while the ledger holds
-- entries or there is any bill, saying what would be lost, unless the
-- session has SET evcharge.allow_drop = on.  The trigger's function is C
-- (src/drop_guard.c): only the parse tree says what a DROP names.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- Whether a DROP of these extensions or schemas reaches evcharge, and if
-- it does while evcharge holds ledger entries or bills, the error.
CREATE FUNCTION evcharge.drop_guard_check(p_kind text, p_names text[], p_cascade boolean) RETURNS void
LANGUAGE plpgsql STABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	via text;
	cmd text;
	entries bigint;
	txns bigint;
	bills bigint;
BEGIN
	cmd := format('DROP %s %s%s', upper(p_kind),
		(SELECT string_agg(quote_ident(n), ', ') FROM unnest(p_names) n),
		CASE WHEN p_cascade THEN ' CASCADE' ELSE '' END);
	IF p_kind = 'extension' AND 'evcharge' = ANY (p_names) THEN
		via := NULL;
	ELSIF NOT p_cascade THEN
		-- Without CASCADE, dropping what evcharge stands on fails by itself.
		RETURN;
	ELSE
		-- What evcharge stands on: the extensions it requires (and theirs),
		-- and the schemas they and evcharge live in.
		WITH RECURSIVE req(oid, depth) AS (
			SELECT e.oid, 0 FROM pg_extension e WHERE e.extname = 'evcharge'
			UNION
			SELECT d.refobjid, r.depth + 1 FROM req r
			JOIN pg_depend d ON d.classid = 'pg_extension'::regclass AND d.objid = r.oid
			                AND d.refclassid = 'pg_extension'::regclass
		)
		SELECT CASE
			WHEN p_kind = 'extension' THEN format('It drops extension %s, which evcharge requires, and evcharge with it.', e.extname)
			WHEN r.depth = 0 THEN format('It drops schema %s, and extension evcharge in it.', n.nspname)
			ELSE format('It drops schema %s, which holds extension %s, which evcharge requires, and evcharge with it.',
			            n.nspname, e.extname) END
		INTO via
		FROM req r JOIN pg_extension e ON e.oid = r.oid JOIN pg_namespace n ON n.oid = e.extnamespace
		WHERE (p_kind = 'extension' AND r.depth > 0 AND e.extname = ANY (p_names))
		   OR (p_kind = 'schema' AND n.nspname = ANY (p_names))
		ORDER BY r.depth LIMIT 1;
		IF NOT FOUND THEN
			RETURN;
		END IF;
	END IF;
	SELECT count(*) INTO entries FROM evcharge.ledger_entry;
	SELECT count(*) INTO txns FROM evcharge.ledger_txn;
	SELECT count(*) INTO bills FROM evcharge.bill;
	IF entries = 0 AND bills = 0 THEN
		RETURN;
	END IF;
	RAISE EXCEPTION 'cannot drop extension evcharge because it holds % ledger entries and % bills', entries, bills
		USING ERRCODE = 'dependent_objects_still_exist',
		      DETAIL = concat_ws(' ', format('%s was refused.', cmd), via,
		                         format('The extension''s tables would go with it: the ledger (%s entries in %s transactions), %s bills, and every other row evcharge keeps.',
		                                entries, txns, bills)),
		      HINT = 'Back up the database first (pg_dump; see docs/operations.md, "Backup and restore"). To drop it deliberately, SET evcharge.allow_drop = on in this session and run the command again.';
END $$;
COMMENT ON FUNCTION evcharge.drop_guard_check(text, text[], boolean) IS
	'called by the event trigger evcharge_drop_guard with what a DROP EXTENSION or DROP SCHEMA names and whether it cascades: raises 2BP01 with what would be lost if the drop reaches evcharge while its ledger holds entries or there are bills';

CREATE FUNCTION evcharge.drop_guard() RETURNS event_trigger
	AS 'MODULE_PATHNAME', 'evcharge_drop_guard'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION evcharge.drop_guard() IS
	'event trigger function (C): hands what a DROP EXTENSION or DROP SCHEMA names to drop_guard_check(), unless evcharge.allow_drop is on';

CREATE EVENT TRIGGER evcharge_drop_guard ON ddl_command_start
	WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
	EXECUTE FUNCTION evcharge.drop_guard();
COMMENT ON EVENT TRIGGER evcharge_drop_guard IS
	'refuses DROP EXTENSION evcharge, and drops that cascade to it, while the ledger holds entries or there are bills; SET evcharge.allow_drop = on lets a deliberate drop through';
