# The demo's SQL runs on a fresh database and reads what it should: every
# raw id is either accepted or quarantined with its reason, none is lost.
source "$(dirname "$0")/lib/tap.sh"
plan 4
db=evcharge_it_demo
fresh_db $db
q -d $db -f "$EV_ROOT/demo/ids.sql" >/dev/null
ok $? "demo/ids.sql runs"
is "$(q -d $db -c "SELECT (SELECT count(*) FROM demo.pile) + (SELECT count(*) FROM demo.gun) + (SELECT count(*) FROM demo.quarantine) = (SELECT count(*) FROM demo.raw_id)")" t \
	"every raw id is accepted or quarantined"
is "$(q -d $db -c "SELECT count(*) FROM demo.quarantine")" 12 "the 12 bad ids are quarantined"
is "$(q -d $db -c "SELECT count(*) FROM demo.quarantine WHERE sqlstate <> '22P02' OR detail IS NULL")" 0 \
	"each with SQLSTATE 22P02 and a detail"
done_testing
