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
COMMENT ON COLUMN evcharge.anomaly_policy.plausible_from IS 'a pile clock before this is not set: a pile record starting before it is anomaly 3 (quarantined when its order is unknown), a heartbeat before it is quarantined';
COMMENT ON COLUMN evcharge.anomaly_policy.clock_skew IS 'a pile record whose start differs from the platform''s by more, or that ends more than this after it was received, is anomaly 3';
COMMENT ON COLUMN evcharge.anomaly_policy.max_session IS 'charging longer than this is anomaly 5';
COMMENT ON COLUMN evcharge.anomaly_policy.defective_firmware IS 'LIKE patterns of firmware versions the operator knows to be defective (e.g. {1.%}); bills of such piles get anomaly 16';
COMMENT ON COLUMN evcharge.anomaly_policy.notify_adjustment IS 'whether a repair that changes the amount writes a customer_notice (and NOTIFY evcharge_notice); off by default';
COMMENT ON COLUMN evcharge.anomaly_policy.updated_at IS 'last change';

-- An operator's policy row is made with the operator (operator_defaults(),
-- money.sql, the one trigger that makes a new operator's rows), so a policy
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
