-- evcharge 0.2.0 -> 0.3.0: ALTER EXTENSION evcharge UPDATE TO '0.3.0'.
-- Every change that 0.3.0 makes to the extension's SQL, one section per
-- topic, in the order of the install files it belongs to.  A function
-- changed by several sections is created once, in the last of them.
-- test/integration/upgrade.sh installs 0.1.0 and 0.2.0, updates each and
-- compares the catalogue with a fresh 0.3.0 install.
\echo Use "ALTER EXTENSION evcharge UPDATE TO '0.3.0'" to load this file. \quit
