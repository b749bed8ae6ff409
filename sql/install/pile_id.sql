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
