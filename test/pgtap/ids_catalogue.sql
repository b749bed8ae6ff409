-- pgTAP: the catalogue entries of the id types.
BEGIN;
SELECT plan(69);

SELECT has_type('evcharge', 'pile_id', 'type pile_id exists');
SELECT has_type('evcharge', 'gun_id', 'type gun_id exists');

-- Fixed size, passed by reference, in category 'e' with pile_id preferred.
SELECT results_eq(
	$$SELECT typname::text COLLATE "default", typlen::int, typbyval, typalign::text COLLATE "default", typcategory::text COLLATE "default", typispreferred
	  FROM pg_type WHERE typnamespace = 'evcharge'::regnamespace AND typname IN ('pile_id', 'gun_id')
	  ORDER BY typname$$,
	$$VALUES ('gun_id', 16, false, 'd', 'e', false), ('pile_id', 16, false, 'd', 'e', true)$$,
	'both types are 16 bytes, by reference, double-aligned, category e');

-- Both types have text and binary I/O.
SELECT results_eq(
	$$SELECT typname::text COLLATE "default", typinput::text, typoutput::text, typreceive::text, typsend::text
	  FROM pg_type WHERE typnamespace = 'evcharge'::regnamespace AND typname IN ('pile_id', 'gun_id')
	  ORDER BY typname$$,
	$$VALUES ('gun_id', 'evcharge.gun_id_in', 'evcharge.gun_id_out', 'evcharge.gun_id_recv', 'evcharge.gun_id_send'),
	         ('pile_id', 'evcharge.pile_id_in', 'evcharge.pile_id_out', 'evcharge.pile_id_recv', 'evcharge.pile_id_send')$$,
	'text and binary I/O functions are set');

-- The accessors: present for both types, STRICT IMMUTABLE PARALLEL SAFE.
SELECT has_function('evcharge', f, ARRAY[t], format('%s(%s) exists', f, t))
FROM unnest(ARRAY['region_code', 'province_code', 'operator_code', 'product_kind',
                  'current_type', 'serial_no', 'is_legacy']) f,
     unnest(ARRAY['evcharge.pile_id', 'evcharge.gun_id']) t;

SELECT function_returns('evcharge', f, ARRAY['evcharge.pile_id'], r, format('%s returns %s', f, r))
FROM (VALUES ('region_code', 'integer'), ('province_code', 'integer'), ('operator_code', 'integer'),
             ('product_kind', 'text'), ('current_type', 'text'), ('serial_no', 'integer'),
             ('is_legacy', 'boolean')) v(f, r);

SELECT has_function('evcharge', 'pile', ARRAY['evcharge.gun_id'], 'pile(gun_id) exists');
SELECT has_function('evcharge', 'gun_no', ARRAY['evcharge.gun_id'], 'gun_no(gun_id) exists');
SELECT has_function('evcharge', 'gun_id', ARRAY['evcharge.pile_id', 'integer'], 'gun_id(pile_id, int) exists');
SELECT function_returns('evcharge', 'pile', ARRAY['evcharge.gun_id'], 'evcharge.pile_id', 'pile(gun_id) returns pile_id');
SELECT function_returns('evcharge', 'gun_id', ARRAY['evcharge.pile_id', 'integer'], 'evcharge.gun_id', 'gun_id(pile_id, int) returns gun_id');

SELECT is(
	(SELECT array_agg(p.oid::regprocedure::text ORDER BY 1)
	 FROM pg_proc p
	 WHERE p.pronamespace = 'evcharge'::regnamespace
	   AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
	   AND (p.proargtypes[0] IN ('evcharge.pile_id'::regtype, 'evcharge.gun_id'::regtype)
	        OR p.prorettype IN ('evcharge.pile_id'::regtype, 'evcharge.gun_id'::regtype))
	   -- a heartbeat's check, not the id's: it reads now() and words NULLs
	   AND p.oid <> 'evcharge.heartbeat_problem(evcharge.gun_id, timestamptz, evcharge.gun_status, bigint, smallint, evcharge.pile_id, int, timestamptz)'::regprocedure
	   AND NOT (p.provolatile = 'i' AND p.proisstrict AND p.proparallel = 's')),
	NULL,
	'every C function over the id types is IMMUTABLE STRICT PARALLEL SAFE');
SELECT is(
	(SELECT (p.provolatile, p.proisstrict, p.proparallel)::text FROM pg_proc p
	 WHERE p.oid = 'evcharge.heartbeat_problem(evcharge.gun_id, timestamptz, evcharge.gun_status, bigint, smallint, evcharge.pile_id, int, timestamptz)'::regprocedure),
	'(s,f,s)',
	'heartbeat_problem() is STABLE (now() bounds clocks), not STRICT (a NULL gun, time or status is a reason), PARALLEL SAFE');

SELECT is(
	(SELECT array_agg(p.oid::regprocedure::text ORDER BY 1)
	 FROM pg_proc p
	 WHERE p.pronamespace = 'evcharge'::regnamespace
	   AND p.proname ~ '_(eq|ne|lt|le|gt|ge|cmp|hash|hash_extended)$'
	   AND NOT p.proleakproof),
	NULL,
	'comparison and hash functions are LEAKPROOF (usable under row security)');

-- Operators.
SELECT has_operator(t, 'evcharge', op, t, 'boolean', format('%s %s %s', t, op, t))
FROM unnest(ARRAY['evcharge.pile_id', 'evcharge.gun_id']) t,
     unnest(ARRAY['=', '<>', '<', '<=', '>', '>=']) op;

SELECT ok(oprcanhash AND oprcanmerge, format('= on %s hashes and merges', oprleft::regtype))
FROM pg_operator
WHERE oprnamespace = 'evcharge'::regnamespace AND oprname = '='
  AND oprleft IN ('evcharge.pile_id'::regtype, 'evcharge.gun_id'::regtype);

-- Operator classes: default btree and hash for both types.
SELECT has_opclass('evcharge', c, format('operator class %s exists', c))
FROM unnest(ARRAY['pile_id_ops', 'pile_id_hash_ops', 'gun_id_ops', 'gun_id_hash_ops']) c;

SELECT results_eq(
	$$SELECT opcname::text COLLATE "default", am.amname::text COLLATE "default", opcintype::regtype::text, opcdefault
	  FROM pg_opclass c JOIN pg_am am ON am.oid = c.opcmethod
	  WHERE opcnamespace = 'evcharge'::regnamespace
	    AND opcintype IN ('evcharge.pile_id'::regtype, 'evcharge.gun_id'::regtype) ORDER BY 1$$,
	$$VALUES ('gun_id_hash_ops', 'hash', 'evcharge.gun_id', true),
	         ('gun_id_ops', 'btree', 'evcharge.gun_id', true),
	         ('pile_id_hash_ops', 'hash', 'evcharge.pile_id', true),
	         ('pile_id_ops', 'btree', 'evcharge.pile_id', true)$$,
	'default btree and hash classes for both types');

SELECT is(
	(SELECT count(*)::int FROM pg_amproc
	 WHERE amprocfamily IN (SELECT opcfamily FROM pg_opclass WHERE opcnamespace = 'evcharge'::regnamespace
	                        AND opcintype IN ('evcharge.pile_id'::regtype, 'evcharge.gun_id'::regtype))),
	8,
	'support functions: cmp + sortsupport per btree class, hash + extended hash per hash class');

-- Casts.
SELECT has_cast('evcharge.pile_id', 'text', 'pile_id -> text');
SELECT has_cast('text', 'evcharge.pile_id', 'text -> pile_id');
SELECT has_cast('evcharge.gun_id', 'text', 'gun_id -> text');
SELECT has_cast('text', 'evcharge.gun_id', 'text -> gun_id');
SELECT has_cast('evcharge.gun_id', 'evcharge.pile_id', 'gun_id -> pile_id');
SELECT cast_context_is('evcharge.pile_id', 'text', 'assignment', 'pile_id -> text is an assignment cast');
SELECT cast_context_is('text', 'evcharge.pile_id', 'explicit', 'text -> pile_id is explicit');
SELECT cast_context_is('evcharge.gun_id', 'evcharge.pile_id', 'explicit', 'gun_id -> pile_id is explicit');

-- Every object of the extension carries a COMMENT.
SELECT is(
	(SELECT array_agg(pg_describe_object(d.classid, d.objid, 0) ORDER BY 1)
	 FROM pg_depend d
	 WHERE d.refclassid = 'pg_extension'::regclass
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'evcharge')
	   AND d.deptype = 'e'
	   AND d.classid <> 'pg_namespace'::regclass
	   AND obj_description(d.objid, d.classid::regclass::name) IS NULL
	   -- identity sequences belong to their column
	   AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_class'::regclass
	                   AND i.objid = d.objid AND i.deptype = 'i')
	   AND NOT (d.classid = 'pg_type'::regclass
	            AND EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = d.objid AND (t.typelem <> 0 OR t.typrelid <> 0)))),
	NULL,
	'every object of the extension has a COMMENT');
-- So do its indexes (but those of primary keys and unique constraints,
-- which the constraint names), its triggers, and the columns of its tables
-- and composite types (heartbeat's daily partitions repeat the parent's).
SELECT is(
	(SELECT array_agg(i.indexrelid::regclass::text ORDER BY 1)
	 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	 WHERE c.relnamespace = 'evcharge'::regnamespace AND NOT c.relispartition
	   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
	   AND obj_description(i.indexrelid, 'pg_class') IS NULL),
	NULL,
	'every index of the extension has a COMMENT');
SELECT is(
	(SELECT array_agg(t.tgname::text ORDER BY 1)
	 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
	 WHERE c.relnamespace = 'evcharge'::regnamespace AND NOT t.tgisinternal AND t.tgparentid = 0
	   AND obj_description(t.oid, 'pg_trigger') IS NULL),
	NULL,
	'every trigger of the extension has a COMMENT');
SELECT is(
	(SELECT array_agg(c.relname || '.' || a.attname ORDER BY 1)
	 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	 WHERE c.relnamespace = 'evcharge'::regnamespace AND c.relkind IN ('r', 'p', 'c') AND NOT c.relispartition
	   AND a.attnum > 0 AND NOT a.attisdropped AND col_description(c.oid, a.attnum) IS NULL),
	NULL,
	'every column of the extension''s tables and composite types has a COMMENT');

-- The schema of the extension.
SELECT is((SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'evcharge'),
	'evcharge', 'the extension lives in schema evcharge');
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'evcharge'), '0.3.0', 'CREATE EXTENSION installs release 0.3.0');

-- The module reports the libraries it runs with.
SELECT is((SELECT array_agg(library ORDER BY library) FROM evcharge.library_versions()),
          ARRAY['evcharge', 'libcurl', 'openssl', 'postgresql (built against)'],
          'library_versions() names evcharge, PostgreSQL, libcurl and OpenSSL');
SELECT is((SELECT version FROM evcharge.library_versions() WHERE library = 'evcharge'),
          (SELECT extversion FROM pg_extension WHERE extname = 'evcharge'),
          'the library and the installed SQL are the same version');

SELECT * FROM finish();
ROLLBACK;
