# Every object a user can touch has its entry in docs/reference: each
# function of the installed extension (by name), each table with a column
# table naming every column, each type (a composite's attributes and an
# enum's labels too), view, free-standing sequence, evcharge.* setting and
# pg_cron job; and every relative link of the documentation lands on a file
# and a heading.  The objects come from the catalogue (members of the
# extension, pg_depend deptype 'e'), the settings from pg_settings and from
# the function sources, the jobs from the function sources (and from a
# table with a jobname column, should the schedules move into one).  What
# counts as an entry: docs/reference/README.md.
source "$(dirname "$0")/lib/tap.sh"
plan 11
db=evcharge_it_refdocs
fresh_db $db
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

q -d $db >"$work/catalogue" <<'SQL'
SELECT count(*) > 0 AS loaded FROM evcharge.library_versions() \gset
CREATE TEMP VIEW member AS
SELECT d.classid, d.objid FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'evcharge');
SELECT 'function|' || p.proname FROM member m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid;
SELECT 'table|' || c.relname || '|' || c.relkind::text || '|' ||
       coalesce((SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition), '')
FROM member m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f');
SELECT 'column|' || c.relname || '|' || a.attname
FROM member m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY c.relname, a.attnum;
-- Sequences that are not a column's own (identity, serial).
SELECT 'sequence|' || c.relname
FROM member m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid AND c.relkind = 'S'
WHERE NOT EXISTS (SELECT 1 FROM pg_depend o WHERE o.classid = 'pg_class'::regclass AND o.objid = c.oid
                  AND o.refclassid = 'pg_class'::regclass AND o.deptype IN ('a', 'i'));
SELECT 'type|' || t.typname || '|' || t.typtype::text FROM member m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid;
SELECT 'attribute|' || t.typname || '|' || a.attname
FROM member m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid AND t.typtype = 'c'
JOIN pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY t.typname, a.attnum;
SELECT 'label|' || t.typname || '|' || e.enumlabel
FROM member m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
JOIN pg_enum e ON e.enumtypid = t.oid ORDER BY t.typname, e.enumsortorder;
-- Settings: those the library defines, and those function sources read.
SELECT DISTINCT 'setting|' || name FROM (
	SELECT s.name FROM pg_settings s WHERE s.name LIKE 'evcharge.%'
	UNION
	SELECT x[1] FROM member m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid,
	     regexp_matches(p.prosrc, '(?:current_setting|set_config|setting_[a-z]+)\s*\(\s*''(evcharge\.[a-z_]+)''', 'g') x) s;
-- Jobs: the pg_cron job names in function sources.
SELECT DISTINCT 'job|' || x[1]
FROM member m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid,
     regexp_matches(p.prosrc, '''(evcharge-[a-z0-9][a-z0-9-]*)''', 'g') x;
-- And in a member table with a jobname column, if schedules live in one.
SELECT format('SELECT DISTINCT ''job|'' || %I FROM %s WHERE %I LIKE ''evcharge-%%''', a.attname, c.oid::regclass, a.attname)
FROM member m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid AND c.relkind IN ('r', 'p', 'v')
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname IN ('jobname', 'job_name') AND NOT a.attisdropped
\gexec
SQL
rc=$?
ok $rc "the extension's objects, read from the catalogue"
[ $rc -eq 0 ] || done_testing

python3 "$EV_ROOT/test/integration/lib/reference_docs.py" "$work/catalogue" "$EV_ROOT" >"$work/result"
while IFS='|' read -r kind n missing; do
	case $kind in
	links) what="every relative link of README.md and docs/ lands on a file and a heading ($n links)" ;;
	*) what="every one of the $n $kind has its entry in docs/reference" ;;
	esac
	is "$missing" "" "$what"
done <"$work/result"
done_testing
