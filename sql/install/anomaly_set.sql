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

-- The rows of anomaly_catalogue(), that is of the C array in
-- src/anomaly_codes.c, the one place the codes are written: the table is
-- filled from it here and by every upgrade (ALTER EXTENSION UPDATE), never
-- by hand.  Numbers are the ones operators use and never change.
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

INSERT INTO evcharge.anomaly_code (code, name, description, blocks_charge)
SELECT c.code, c.name, c.description, c.blocks_charge FROM evcharge.anomaly_catalogue() c ORDER BY c.code;
