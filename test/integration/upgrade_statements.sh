# Statement sources across the update from 0.1.0: a source fetched over
# plain http is moved to https and disabled, with a warning naming it;
# every source gets a name (source-<id>) and keeps its secret; the update
# warns that partners must sign for source and day; and 0.1.0's
# signed_get(url, secret), which a replayed statement passed, is gone.
source "$(dirname "$0")/lib/tap.sh"
plan 6
db=evcharge_it_upgrade_statements
q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null 2>&1
q -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION evcharge VERSION '0.1.0' CASCADE" >/dev/null
q -d $db >/dev/null <<'SQL'
INSERT INTO evcharge.operator VALUES (12, 'upgrade test');
INSERT INTO evcharge.partner (partner_id, operator_id, name) VALUES (8, 12, 'Map app');
INSERT INTO evcharge.statement_source (operator_id, kind, partner_id, url_template, secret) VALUES
	(12, 'provider', NULL, 'http://pay.example.com/statements/{day}.csv', 'short'),
	(12, 'partner', 8, 'https://partner.example.com/evcharge/{day}.csv', 'also-short');
SQL
out=$(psql -X -q -d $db -c "ALTER EXTENSION evcharge UPDATE" 2>&1)
ok $? "ALTER EXTENSION evcharge UPDATE with 0.1.0's statement sources"
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q 'WARNING:  statement source 1 was fetched over plain http: its URL is now https and it is disabled'
ok $? "the update warns about the plain http source by its id"
echo "$out" | grep -q 'WARNING:  statements must now be signed for their source and day'
ok $? "the update warns that partners must sign for source and day"
is "$(q -d $db -c "SELECT string_agg(concat_ws(' ', source_id, name, url_template, enabled, secret), '; ' ORDER BY source_id) FROM evcharge.statement_source")" \
	"1 source-1 https://pay.example.com/statements/{day}.csv f short; 2 source-2 https://partner.example.com/evcharge/{day}.csv t also-short" \
	"the http source is https and disabled, the other unchanged; each is named source-<id> and keeps its secret"
is "$(q -d $db -c "SELECT count(*) FROM pg_proc WHERE proname = 'signed_get' AND pronamespace = 'evcharge'::regnamespace")" 0 \
	"signed_get(url, secret) is gone"
q -d $db -c "UPDATE evcharge.statement_source SET enabled = true, name = 'wxpay-12' WHERE source_id = 1" >/dev/null 2>&1
ok $? "a source of 0.1.0 can be renamed and enabled with its secret unchanged"
[ -n "${KEEP:-}" ] || q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
done_testing
