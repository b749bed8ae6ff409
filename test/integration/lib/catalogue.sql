-- test/integration/lib/catalogue.sql: the extension's catalogue as sorted
-- text lines, one object (or one property of an object) a line, with no
-- OIDs in it, so two databases' catalogues can be compared with diff: an
-- upgraded one against a fresh install (test/integration/upgrade.sh).
-- Covers what the extension owns: member objects, function definitions,
-- columns in order, constraints, indexes, triggers, views, types, operators,
-- casts, operator classes, comments, privileges, sequences, policies,
-- event triggers, and which tables pg_dump takes (pg_extension_config_dump).
\pset format unaligned
\pset tuples_only on
\pset footer off
WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'evcharge'),
members AS (
	SELECT d.classid, d.objid FROM pg_depend d, ext
	WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
-- Partitions that maintain_partitions makes are data, not catalogue: left out.
rels AS (SELECT c.oid, c.relname, c.relkind FROM pg_class c
	WHERE c.relnamespace = 'evcharge'::regnamespace
	  AND NOT (c.relispartition AND NOT EXISTS (SELECT 1 FROM members m
		WHERE m.classid = 'pg_class'::regclass AND m.objid = c.oid))
	  AND NOT (c.relkind = 'i' AND EXISTS (SELECT 1 FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
		WHERE i.indexrelid = c.oid AND t.relispartition AND NOT EXISTS (SELECT 1 FROM members m
			WHERE m.classid = 'pg_class'::regclass AND m.objid = t.oid)))),
lines AS (
	SELECT 'member ' || pg_describe_object(classid, objid, 0) AS l FROM members
	UNION ALL
	SELECT 'function ' || p.oid::regprocedure || ' ' ||
		CASE WHEN p.prokind = 'a' THEN 'aggregate ' || a.aggtransfn::text || ' ' || a.aggfinalfn::text || ' ' ||
			coalesce(a.agginitval, '') || ' ' || format_type(a.aggtranstype, NULL)
		ELSE pg_get_functiondef(p.oid) END ||
		' acl=' || coalesce(p.proacl::text, 'default')
	FROM pg_proc p LEFT JOIN pg_aggregate a ON a.aggfnoid = p.oid
	WHERE p.pronamespace = 'evcharge'::regnamespace
	UNION ALL
	SELECT 'relation ' || r.relname || ' kind=' || r.relkind::text || ' persistence=' || c.relpersistence::text ||
		' rls=' || c.relrowsecurity || '/' || c.relforcerowsecurity ||
		' options=' || coalesce(c.reloptions::text, '') || ' acl=' || coalesce(c.relacl::text, 'default') ||
		' partkey=' || coalesce(pg_get_partkeydef(c.oid), '') ||
		' bound=' || coalesce(pg_get_expr(c.relpartbound, c.oid), '') ||
		' parent=' || coalesce((SELECT string_agg(i.inhparent::regclass::text, ',') FROM pg_inherits i WHERE i.inhrelid = c.oid), '') ||
		' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '')
	FROM rels r JOIN pg_class c ON c.oid = r.oid
	UNION ALL
	SELECT 'column ' || r.relname || ' #' ||
		row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum) || ' ' || a.attname || ' ' ||
		format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ||
		coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '') ||
		CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END ||
		CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END ||
		coalesce(' collate ' || NULLIF(a.attcollation, 0)::regcollation::text, '') ||
		' comment=' || coalesce(col_description(r.oid, a.attnum), '')
	FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
	LEFT JOIN pg_attrdef ad ON ad.adrelid = r.oid AND ad.adnum = a.attnum
	WHERE r.relkind IN ('r', 'p', 'v', 'm', 'c', 'f')
	UNION ALL
	SELECT 'constraint ' || coalesce(r.relname, t.typname) || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid) ||
		' deferrable=' || co.condeferrable || '/' || co.condeferred ||
		' comment=' || coalesce(obj_description(co.oid, 'pg_constraint'), '')
	FROM pg_constraint co LEFT JOIN rels r ON r.oid = co.conrelid LEFT JOIN pg_type t ON t.oid = co.contypid
	WHERE co.connamespace = 'evcharge'::regnamespace AND (r.oid IS NOT NULL OR co.contypid <> 0)
	UNION ALL
	SELECT 'index ' || pg_get_indexdef(i.indexrelid) ||
		' comment=' || coalesce(obj_description(i.indexrelid, 'pg_class'), '')
	FROM pg_index i JOIN rels r ON r.oid = i.indrelid
	UNION ALL
	SELECT 'trigger ' || pg_get_triggerdef(tg.oid) || ' enabled=' || tg.tgenabled::text ||
		' comment=' || coalesce(obj_description(tg.oid, 'pg_trigger'), '')
	FROM pg_trigger tg JOIN rels r ON r.oid = tg.tgrelid WHERE NOT tg.tgisinternal
	UNION ALL
	SELECT 'view ' || r.relname || ' ' || pg_get_viewdef(r.oid) FROM rels r WHERE r.relkind IN ('v', 'm')
	UNION ALL
	SELECT 'sequence ' || s.seqrelid::regclass || ' ' || format_type(s.seqtypid, NULL) || ' ' || s.seqstart || ' ' ||
		s.seqincrement || ' ' || s.seqmax || ' ' || s.seqmin || ' ' || s.seqcache || ' ' || s.seqcycle ||
		' owned=' || coalesce((SELECT d.refobjid::regclass || '.' || d.refobjsubid FROM pg_depend d
			WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid AND d.deptype IN ('a', 'i')
			  AND d.refclassid = 'pg_class'::regclass LIMIT 1), '')
	FROM pg_sequence s JOIN rels r ON r.oid = s.seqrelid
	UNION ALL
	SELECT 'type ' || format_type(t.oid, NULL) || ' ' || t.typtype::text || ' len=' || t.typlen || ' byval=' || t.typbyval ||
		' align=' || t.typalign::text || ' storage=' || t.typstorage::text || ' in=' || t.typinput::text || ' out=' ||
		t.typoutput::text || ' recv=' || t.typreceive::text || ' send=' || t.typsend::text ||
		' analyze=' || t.typanalyze::text || ' category=' || t.typcategory::text || ' preferred=' || t.typispreferred ||
		' base=' || format_type(t.typbasetype, t.typtypmod) || ' notnull=' || t.typnotnull ||
		' default=' || coalesce(t.typdefault, '') || ' acl=' || coalesce(t.typacl::text, 'default') ||
		' comment=' || coalesce(obj_description(t.oid, 'pg_type'), '')
	FROM pg_type t WHERE t.typnamespace = 'evcharge'::regnamespace
	  AND NOT (t.typelem <> 0 AND t.typlen = -1)	-- array types
	  AND (t.typrelid = 0 OR EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c'))
	UNION ALL
	SELECT 'enum ' || format_type(e.enumtypid, NULL) || ' ' ||
		string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
	FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid WHERE t.typnamespace = 'evcharge'::regnamespace
	GROUP BY e.enumtypid
	UNION ALL
	SELECT 'operator ' || o.oid::regoperator || ' code=' || o.oprcode::text || ' com=' || o.oprcom::regoperator::text ||
		' neg=' || o.oprnegate::regoperator::text || ' rest=' || o.oprrest::text || ' join=' || o.oprjoin::text ||
		' hashes=' || o.oprcanhash || ' merges=' || o.oprcanmerge ||
		' comment=' || coalesce(obj_description(o.oid, 'pg_operator'), '')
	FROM pg_operator o WHERE o.oprnamespace = 'evcharge'::regnamespace
	UNION ALL
	SELECT 'opclass ' || am.amname || ' ' || oc.opcname || ' for ' || format_type(oc.opcintype, NULL) ||
		' default=' || oc.opcdefault || ' family=' || of.opfname ||
		' storage=' || coalesce(NULLIF(oc.opckeytype, 0)::regtype::text, '')
	FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod JOIN pg_opfamily of ON of.oid = oc.opcfamily
	WHERE oc.opcnamespace = 'evcharge'::regnamespace
	UNION ALL
	SELECT 'amop ' || of.opfname || ' ' || format_type(ao.amoplefttype, NULL) || ',' || format_type(ao.amoprighttype, NULL) ||
		' ' || ao.amopstrategy || ' ' || ao.amopopr::regoperator::text || ' ' || ao.amoppurpose::text
	FROM pg_amop ao JOIN pg_opfamily of ON of.oid = ao.amopfamily WHERE of.opfnamespace = 'evcharge'::regnamespace
	UNION ALL
	SELECT 'amproc ' || of.opfname || ' ' || format_type(ap.amproclefttype, NULL) || ',' || format_type(ap.amprocrighttype, NULL) ||
		' ' || ap.amprocnum || ' ' || ap.amproc::regprocedure::text
	FROM pg_amproc ap JOIN pg_opfamily of ON of.oid = ap.amprocfamily WHERE of.opfnamespace = 'evcharge'::regnamespace
	UNION ALL
	SELECT 'cast ' || format_type(c.castsource, NULL) || ' -> ' || format_type(c.casttarget, NULL) || ' ' ||
		coalesce(NULLIF(c.castfunc, 0)::regprocedure::text, '-') || ' ' || c.castcontext::text || ' ' || c.castmethod::text ||
		' comment=' || coalesce(obj_description(c.oid, 'pg_cast'), '')
	FROM pg_cast c JOIN members m ON m.classid = 'pg_cast'::regclass AND m.objid = c.oid
	UNION ALL
	SELECT 'policy ' || r.relname || ' ' || p.polname || ' ' || p.polcmd::text || ' ' || p.polpermissive ||
		' roles=' || p.polroles::regrole[]::text || ' using=' || coalesce(pg_get_expr(p.polqual, p.polrelid), '') ||
		' check=' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
	FROM pg_policy p JOIN rels r ON r.oid = p.polrelid
	UNION ALL
	SELECT 'event trigger ' || e.evtname || ' ' || e.evtevent || ' ' || e.evtfoid::regprocedure::text || ' ' ||
		e.evtenabled::text || ' tags=' || coalesce(e.evttags::text, '') ||
		' comment=' || coalesce(obj_description(e.oid, 'pg_event_trigger'), '')
	FROM pg_event_trigger e JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
	UNION ALL
	SELECT 'schema comment=' || coalesce(obj_description('evcharge'::regnamespace, 'pg_namespace'), '') ||
		' acl=' || coalesce((SELECT nspacl::text FROM pg_namespace WHERE nspname = 'evcharge'), 'default')
	UNION ALL
	SELECT 'config dump ' || c.cfg::regclass::text || ' where=' || coalesce(ext.extcondition[c.n], '')
	FROM ext, unnest(ext.extconfig) WITH ORDINALITY AS c(cfg, n)
)
SELECT l FROM lines ORDER BY l COLLATE "C";
