-- pipeline.sql: the two C triggers that drive the pipeline as rows arrive,
-- declared after everything they call (the registry and quarantine,
-- sessions, bills): heartbeat_ingest on heartbeat, pile_record_ingest on
-- pile_record.  Their one call above the pipeline is the balance guard
-- (money.sql), the named exception of docs/architecture.md.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- Heartbeats (C, src/heartbeat_trigger.c and the session machine): quarantine
-- what cannot be accepted, then bring the live state of every gun in the
-- batch up to date, open and end sessions and finalise the bills they
-- complete, once per statement.
CREATE FUNCTION evcharge.heartbeat_ingest() RETURNS trigger
	AS 'MODULE_PATHNAME', 'heartbeat_ingest' LANGUAGE C;
COMMENT ON FUNCTION evcharge.heartbeat_ingest() IS
	'statement-level AFTER INSERT trigger on heartbeat: quarantines rows it cannot accept and updates gun_state and offline periods, per batch';
CREATE TRIGGER heartbeat_ingest AFTER INSERT ON evcharge.heartbeat
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION evcharge.heartbeat_ingest();
COMMENT ON TRIGGER heartbeat_ingest ON evcharge.heartbeat IS 'once per statement: quarantine, live state, sessions, faults, offline periods and the balance guard for the batch';

-- Pile records: a statement-level trigger (C, src/pile_record_trigger.c)
-- quarantines what it cannot accept and finalises (finalise_bill, bill.sql) the
-- bills of the orders a batch of records closes.
CREATE FUNCTION evcharge.pile_record_ingest() RETURNS trigger
	AS 'MODULE_PATHNAME', 'pile_record_ingest' LANGUAGE C;
COMMENT ON FUNCTION evcharge.pile_record_ingest() IS
	'statement-level AFTER INSERT trigger on pile_record: quarantines records of unknown guns and finalises the bills they close';
CREATE TRIGGER pile_record_ingest AFTER INSERT ON evcharge.pile_record
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION evcharge.pile_record_ingest();
COMMENT ON TRIGGER pile_record_ingest ON evcharge.pile_record IS 'once per statement: quarantine, sessions the platform never saw, and the bills the records complete';
