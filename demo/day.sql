-- demo/day.sql: a day of a small network through the pipeline.  Loads what
-- bench/trafficgen wrote into the directory :gen_dir (registry, heartbeats,
-- pile records, the ground truth), replays the day in 5-minute steps as it
-- reached the platform (the heartbeats that had arrived, the pile records
-- that had arrived, then sweep_offline), and shows what was taken in and
-- quarantined, the sessions, the day's bills per station, outages and
-- network incidents, the sessions still without a bill, and the energy
-- billed and measured against what the meters really did.  This is the
-- replay by COPY (demo/day_load.sql, demo/day_copy.sql, demo/day_report.sql);
-- demo/day.sh replays the same day through the bridge by default.
--
--   psql -v gen_dir=DIR -d evcharge -f demo/day.sql
--
-- Runs after demo/ids.sql and demo/tariffs.sql: its operator (20) and
-- stations (101+) are not theirs.  Run again, it replaces its own data only.
\set ON_ERROR_STOP on
\ir day_load.sql
\ir day_copy.sql
\ir day_report.sql
