-- pgTAP: the catalogue entries of anomaly_set and the anomaly codes.
BEGIN;
SELECT plan(47);

SELECT has_type('evcharge', 'anomaly_set', 'type anomaly_set exists');

-- 8 bytes, passed by value, double-aligned, never toasted.
SELECT results_eq(
	$$SELECT typlen::int, typbyval, typalign::text COLLATE "default", typstorage::text COLLATE "default"
	  FROM pg_type WHERE oid = 'evcharge.anomaly_set'::regtype$$,
	$$VALUES (8, true, 'd', 'p')$$,
	'anomaly_set is 8 bytes, by value, double-aligned, plain storage');

SELECT results_eq(
	$$SELECT typinput::text, typoutput::text, typreceive::text, typsend::text
	  FROM pg_type WHERE oid = 'evcharge.anomaly_set'::regtype$$,
	$$VALUES ('evcharge.anomaly_set_in', 'evcharge.anomaly_set_out', 'evcharge.anomaly_set_recv', 'evcharge.anomaly_set_send')$$,
	'text and binary I/O functions are set');

-- The functions.
SELECT function_returns('evcharge', f, a, r, format('%s(%s) returns %s', f, array_to_string(a, ', '), r))
FROM (VALUES ('anomaly_set', ARRAY['integer[]'], 'evcharge.anomaly_set'),
             ('anomaly_codes', ARRAY['evcharge.anomaly_set'], 'integer[]'),
             ('anomaly_names', ARRAY['evcharge.anomaly_set'], 'text[]'),
             ('anomaly_has', ARRAY['evcharge.anomaly_set', 'integer'], 'boolean'),
             ('anomaly_blocking', ARRAY['evcharge.anomaly_set'], 'boolean'),
             ('anomaly_catalogue', ARRAY[]::text[], 'setof record')) v(f, a, r);
SELECT results_eq(
	$$SELECT pg_get_function_result('evcharge.anomaly_catalogue()'::regprocedure)$$,
	$$VALUES ('TABLE(code integer, name text, description text, blocks_charge boolean)')$$,
	'anomaly_catalogue() returns (code, name, description, blocks_charge)');

SELECT is(
	(SELECT array_agg(p.oid::regprocedure::text ORDER BY 1)
	 FROM pg_proc p
	 WHERE p.pronamespace = 'evcharge'::regnamespace
	   AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
	   AND (p.proname LIKE 'anomaly%')
	   AND NOT (p.provolatile = 'i' AND p.proisstrict AND p.proparallel = 's')),
	NULL,
	'every C function of anomaly_set is IMMUTABLE STRICT PARALLEL SAFE');

SELECT is(
	(SELECT array_agg(p.oid::regprocedure::text ORDER BY 1)
	 FROM pg_proc p
	 WHERE p.pronamespace = 'evcharge'::regnamespace
	   AND p.proname ~ '^anomaly_set_(contains|contained|overlaps|union|intersect|minus)$'
	   AND NOT p.proleakproof),
	NULL,
	'the set operators'' functions are LEAKPROOF (they never raise an error)');

-- Operators: comparisons and tests return boolean, set algebra a set.
SELECT has_operator('evcharge.anomaly_set', 'evcharge', op, 'evcharge.anomaly_set', 'boolean',
                    format('anomaly_set %s anomaly_set', op))
FROM unnest(ARRAY['=', '<>', '<', '<=', '>', '>=', '@>', '<@', '&&']) op;
SELECT has_operator('evcharge.anomaly_set', 'evcharge', op, 'evcharge.anomaly_set', 'evcharge.anomaly_set',
                    format('anomaly_set %s anomaly_set returns anomaly_set', op))
FROM unnest(ARRAY['|', '&', '-']) op;

SELECT ok((SELECT oprcanhash AND oprcanmerge FROM pg_operator
           WHERE oprname = '=' AND oprleft = 'evcharge.anomaly_set'::regtype),
          '= on anomaly_set hashes and merges');
SELECT results_eq(
	$$SELECT oprname::text COLLATE "default", oprcom::regoperator::text, oprrest::text, oprjoin::text
	  FROM pg_operator WHERE oprleft = 'evcharge.anomaly_set'::regtype AND oprname IN ('@>', '<@', '&&')
	  ORDER BY 1$$,
	$$VALUES ('&&', 'evcharge.&&(evcharge.anomaly_set,evcharge.anomaly_set)', 'matchingsel', 'matchingjoinsel'),
	         ('<@', 'evcharge.@>(evcharge.anomaly_set,evcharge.anomaly_set)', 'matchingsel', 'matchingjoinsel'),
	         ('@>', 'evcharge.<@(evcharge.anomaly_set,evcharge.anomaly_set)', 'matchingsel', 'matchingjoinsel')$$,
	'@>, <@ and && have commutators and estimate from the column statistics');

-- Operator classes: default btree, hash and GIN.
SELECT results_eq(
	$$SELECT opcname::text COLLATE "default", am.amname::text COLLATE "default", opcdefault, opckeytype::regtype::text
	  FROM pg_opclass c JOIN pg_am am ON am.oid = c.opcmethod
	  WHERE opcnamespace = 'evcharge'::regnamespace AND opcintype = 'evcharge.anomaly_set'::regtype
	  ORDER BY 2$$,
	$$VALUES ('anomaly_set_ops', 'btree', true, '-'),
	         ('anomaly_set_ops', 'gin', true, 'integer'),
	         ('anomaly_set_hash_ops', 'hash', true, '-')$$,
	'default btree, hash and GIN classes; GIN keys are int4 codes');

SELECT results_eq(
	$$SELECT o.amopstrategy::int, o.amopopr::regoperator::text
	  FROM pg_amop o JOIN pg_opfamily f ON f.oid = o.amopfamily JOIN pg_am am ON am.oid = f.opfmethod
	  WHERE f.opfnamespace = 'evcharge'::regnamespace AND f.opfname = 'anomaly_set_ops' AND am.amname = 'gin'
	  ORDER BY 1$$,
	$$VALUES (1, 'evcharge.&&(evcharge.anomaly_set,evcharge.anomaly_set)'),
	         (2, 'evcharge.@>(evcharge.anomaly_set,evcharge.anomaly_set)'),
	         (4, 'evcharge.=(evcharge.anomaly_set,evcharge.anomaly_set)')$$,
	'the GIN class answers && (1), @> (2) and = (4), the numbers of core''s array_ops');

SELECT results_eq(
	$$SELECT p.amprocnum::int, p.amproc::regproc::text
	  FROM pg_amproc p JOIN pg_opfamily f ON f.oid = p.amprocfamily JOIN pg_am am ON am.oid = f.opfmethod
	  WHERE f.opfnamespace = 'evcharge'::regnamespace AND f.opfname = 'anomaly_set_ops' AND am.amname = 'gin'
	  ORDER BY 1$$,
	$$VALUES (1, 'btint4cmp'), (2, 'evcharge.anomaly_set_gin_extract_value'),
	         (3, 'evcharge.anomaly_set_gin_extract_query'), (4, 'evcharge.anomaly_set_gin_consistent'),
	         (6, 'evcharge.anomaly_set_gin_triconsistent')$$,
	'GIN support: compare, extractValue, extractQuery, consistent, triConsistent');

SELECT is(
	(SELECT count(*)::int FROM pg_amproc p JOIN pg_opfamily f ON f.oid = p.amprocfamily JOIN pg_am am ON am.oid = f.opfmethod
	 WHERE f.opfnamespace = 'evcharge'::regnamespace AND f.opfname LIKE 'anomaly_set%' AND am.amname IN ('btree', 'hash')),
	4,
	'btree support cmp + sortsupport, hash support hash + extended hash');

-- The aggregate: parallel safe, with a combine function.
SELECT is_aggregate('evcharge', 'anomaly_union', ARRAY['evcharge.anomaly_set'], 'anomaly_union is an aggregate');
SELECT results_eq(
	$$SELECT a.aggtransfn::text, a.aggcombinefn::text, a.agginitval IS NULL, p.proparallel::text COLLATE "default"
	  FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
	  WHERE a.aggfnoid = 'evcharge.anomaly_union(evcharge.anomaly_set)'::regprocedure$$,
	$$VALUES ('evcharge.anomaly_set_union', 'evcharge.anomaly_set_union', true, 's')$$,
	'anomaly_union: union as state and combine function, no initial value (NULL over no rows), parallel safe');

-- Casts.
SELECT has_cast(s, t, format('%s -> %s', s, t))
FROM (VALUES ('evcharge.anomaly_set', 'text'), ('text', 'evcharge.anomaly_set'),
             ('integer[]', 'evcharge.anomaly_set'), ('evcharge.anomaly_set', 'integer[]')) v(s, t);
SELECT cast_context_is(s, t, c, format('%s -> %s is %s', s, t, c))
FROM (VALUES ('evcharge.anomaly_set', 'text', 'assignment'), ('text', 'evcharge.anomaly_set', 'explicit'),
             ('integer[]', 'evcharge.anomaly_set', 'explicit'), ('evcharge.anomaly_set', 'integer[]', 'explicit')) v(s, t, c);

-- The catalogue table.
SELECT has_table('evcharge', 'anomaly_code', 'table anomaly_code exists');
SELECT col_is_pk('evcharge', 'anomaly_code', 'code', 'anomaly_code is keyed by code');
SELECT col_is_unique('evcharge', 'anomaly_code', 'name', 'names are unique');
SELECT set_eq('TABLE evcharge.anomaly_code', 'SELECT * FROM evcharge.anomaly_catalogue()',
              'anomaly_code holds exactly the rows compiled into the module');
SELECT results_eq(
	$$SELECT array_agg(code ORDER BY code) FROM evcharge.anomaly_code$$,
	$$VALUES (ARRAY[1, 2, 3, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20])$$,
	'the codes are the operators'' numbers, 4, 6 and 7 unused, evcharge''s own from 12');
SELECT results_eq(
	$$SELECT array_agg(code ORDER BY code) FROM evcharge.anomaly_code WHERE NOT blocks_charge$$,
	$$VALUES (ARRAY[10, 20])$$,
	'only codes 10 (occupancy duration) and 20 (the pile''s energy per class) do not block charging');

-- Every code: its number and its name read as the same set, which prints as
-- the number; anomaly_has and anomaly_blocking agree with the table.
SELECT is(
	(SELECT array_agg(code ORDER BY code) FROM evcharge.anomaly_code
	 WHERE NOT (code::text::evcharge.anomaly_set OPERATOR(evcharge.=) name::evcharge.anomaly_set
	            AND name::evcharge.anomaly_set::text = code::text
	            AND evcharge.anomaly_has(name::evcharge.anomaly_set, code)
	            AND evcharge.anomaly_blocking(code::text::evcharge.anomaly_set) = blocks_charge
	            AND evcharge.anomaly_names(code::text::evcharge.anomaly_set) = ARRAY[name])),
	NULL,
	'every code reads, prints, tests and blocks as the table says');

SELECT * FROM finish();
ROLLBACK;
