-- anomaly_set: the set of anomaly codes a bill carries.
--
-- evcharge's objects live in schema evcharge; with the schema on the
-- search_path, the operators work on the type without qualification.
SET search_path = public, evcharge;

-- The codes: the numbers operators already use (4, 6 and 7 do not exist),
-- a name for each, what it means, and whether it stops the bill being
-- charged until it is repaired (every code but 10 and 20).
SELECT code, name, blocks_charge, description FROM anomaly_code ORDER BY code;

-- The table and the catalogue compiled into the module hold exactly the
-- same rows: the differences, from either side, are none.
SELECT 'only in anomaly_code' AS side, * FROM (TABLE anomaly_code EXCEPT ALL SELECT * FROM anomaly_catalogue()) d
UNION ALL
SELECT 'only in anomaly_catalogue()', * FROM (SELECT * FROM anomaly_catalogue() EXCEPT ALL TABLE anomaly_code) d;
SELECT count(*) AS codes, count(DISTINCT name) AS names, count(*) FILTER (WHERE blocks_charge) AS blocking
FROM anomaly_catalogue();

--------------------------------------------------------------------------
-- Text input and output
--------------------------------------------------------------------------

-- Operators write "9+10+11".  Names are accepted too, in any case, and
-- mixed with numbers; spaces around items, duplicates and any order are
-- fine.  Output is always the ascending numbers joined by "+".
SELECT '9+10+11'::anomaly_set AS numbers,
       'bill_lost+energy_mismatch'::anomaly_set AS names,
       ' 11 + energy_mismatch+1 '::anomaly_set AS mixed_spaced,
       '11+9+10+9+duration_mismatch'::anomaly_set AS unordered_duplicates,
       'BILL_LOST+Energy_Lost'::anomaly_set AS any_case,
       '09+010'::anomaly_set AS leading_zeros;

-- Every code, by number and by name, is the same one-code set.
SELECT code, name, code::text::anomaly_set AS by_number, name::anomaly_set AS by_name,
       code::text::anomaly_set = name::anomaly_set AS same
FROM anomaly_code ORDER BY code;

-- All codes, written backwards, print in ascending order.
SELECT '20+19+18+17+16+15+14+13+12+11+10+9+8+5+3+2+1'::anomaly_set AS every_code;

-- The empty set is the empty string (white space alone too); quote_literal
-- shows it, since psql prints an empty string and NULL alike.
SELECT quote_literal(''::anomaly_set) AS empty, quote_literal(' '::anomaly_set) AS blank,
       ''::anomaly_set = ' ' AS same, anomaly_codes('') AS codes, quote_literal(NULL::anomaly_set) AS null_set;

-- Casts to and from text.
SELECT '9+10'::anomaly_set::text AS to_text, '10+9'::text::anomaly_set AS from_text;

-- Bad input: SQLSTATE 22P02, the input quoted, the detail names the item
-- and its position, the hint lists the codes that exist.
SELECT '9+4+11'::anomaly_set;
SELECT 'bill_lost+energy_mismach'::anomaly_set;
SELECT '1++2'::anomaly_set;
SELECT '9,10'::anomaly_set;

-- Every kind of bad set at a glance, with its SQLSTATE.
CREATE FUNCTION pg_temp.try_anomaly_set(t text) RETURNS TABLE (sqlstate text, detail text)
LANGUAGE plpgsql AS $$
DECLARE st text; det text;
BEGIN
	RETURN QUERY SELECT '00000'::text, 'accepted: ' || quote_literal(t::evcharge.anomaly_set);
EXCEPTION WHEN others THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, det = PG_EXCEPTION_DETAIL;
	RETURN QUERY SELECT st, det;
END $$;

SELECT input, r.* FROM (VALUES
	('4'),                       -- codes 4, 6 and 7 were never used
	('6'),
	('7'),
	('0'),                       -- codes start at 1
	('21'),                      -- beyond the last code
	('99999999999'),             -- far beyond
	('9+10+4'),                  -- the item and its position are named
	('bill_lose'),               -- a misspelt name
	('energy_lost2'),            -- a name with a digit
	('NULL'),                    -- not a way to write the empty set
	('energy mismatch'),         -- a space for an underscore
	('9 10 11'),                 -- spaces for "+"
	(E'9\t10'),                  -- a tab for "+"
	('1++2'),                    -- an empty item
	('1+ +2'),                   -- an empty item between spaces
	('1+'),                      -- a trailing "+"
	('+1'),                      -- a leading "+"
	('+'),                       -- nothing but "+"
	('9,10'),                    -- a comma
	('9;10'),                    -- a semicolon
	('-1'),                      -- a sign
	('9＋10'),                   -- a full-width plus typed in an IME
	('１'),                      -- a full-width digit
	('abc!'),                    -- garbage
	(E'1+\x01'),                 -- a control character
	('  0009  ')                 -- accepted: leading zeros and spaces
) AS v(input), pg_temp.try_anomaly_set(input) r;

--------------------------------------------------------------------------
-- Functions
--------------------------------------------------------------------------

-- The codes ascending, their names, whether the set blocks charging.
-- Code 10 alone does not change the amount, so it does not block.
SELECT a, anomaly_codes(a), anomaly_names(a), anomaly_blocking(a) AS blocking
FROM (VALUES ('9+10+11'::anomaly_set), ('10'), (''), ('16+1'),
             ('1+2+3+5+8+9+10+11+12+13+14+15+16')) AS t(a);

-- anomaly_has: the set carries one code.
SELECT anomaly_has('9+10+11', 10) AS has_10, anomaly_has('9+10+11', 1) AS has_1,
       anomaly_has('', 1) AS empty_has_1;
-- A number that is no code is an error, not false: a typo in a report
-- query must not read as "no such bills".
SELECT anomaly_has('9+10+11', 4);

-- Building a set from an int[]: any order, duplicates, any dimensions; the
-- same as the explicit cast.  The cast back gives the codes ascending.
SELECT anomaly_set(ARRAY[11, 9, 10, 9]) AS from_array,
       anomaly_set('{}'::int[]) AS from_empty,
       anomaly_set('{{1,2},{3,5}}'::int[]) AS from_2d,
       ARRAY[16, 1]::anomaly_set AS cast_in,
       '11+9+10'::anomaly_set::int[] AS cast_out;
-- Unknown codes and NULL elements are errors.
SELECT anomaly_set(ARRAY[1, 4]);
SELECT anomaly_set(ARRAY[1, NULL]);

--------------------------------------------------------------------------
-- Operators
--------------------------------------------------------------------------

-- @> contains, <@ is contained by, && overlaps, | union, & intersection,
-- - difference, = and <>.  A blank result is the empty set.
SELECT a, b, a @> b AS contains, a <@ b AS contained, a && b AS overlaps,
       a | b AS "union", a & b AS intersection, a - b AS difference,
       a = b AS eq, a <> b AS ne
FROM (VALUES ('9+10+11'::anomaly_set, '10'::anomaly_set),
             ('9+10+11', '10+12'),
             ('9+10+11', '1+2'),
             ('9+10+11', ''),
             ('', '9+10+11'),
             ('', ''),
             ('1+2', 'bill_lost_offline+bill_lost')) AS t(a, b);

-- An untyped literal on the right is read as a set, names included.
SELECT '9+10+11'::anomaly_set @> 'occupancy_mismatch' AS has_occupancy,
       '9+10+11'::anomaly_set - '10' AS without_10;

-- NULL in, NULL out: every function and operator is STRICT.
SELECT anomaly_codes(NULL) IS NULL AS codes, anomaly_names(NULL) IS NULL AS names,
       anomaly_blocking(NULL) IS NULL AS blocking, anomaly_has(NULL, 1) IS NULL AS has_set,
       anomaly_has('1', NULL) IS NULL AS has_code, anomaly_set(NULL::int[]) IS NULL AS from_array,
       (NULL::anomaly_set @> '1') IS NULL AS contains, ('1'::anomaly_set && NULL) IS NULL AS overlaps,
       ('1'::anomaly_set | NULL) IS NULL AS "union", (NULL::anomaly_set - '1') IS NULL AS difference,
       (NULL::anomaly_set = NULL) IS NULL AS eq;

--------------------------------------------------------------------------
-- The aggregate anomaly_union
--------------------------------------------------------------------------

CREATE TEMP TABLE bill_note (station int, anomalies anomaly_set);
INSERT INTO bill_note VALUES (1, '9+10'), (1, '11'), (1, ''), (1, NULL),
	(2, '10'), (2, '10'), (3, NULL);

-- The union per station; NULLs are skipped; a station whose bills carry
-- only NULL gets NULL, like bit_or.
SELECT station, anomaly_union(anomalies), quote_literal(anomaly_union(anomalies)) AS quoted
FROM bill_note GROUP BY station ORDER BY station;
-- Over no rows it is NULL, not the empty set; coalesce gives the empty set.
SELECT anomaly_union(anomalies) IS NULL AS is_null,
       quote_literal(coalesce(anomaly_union(anomalies), '')) AS coalesced
FROM bill_note WHERE false;

-- It is parallel safe and has a combine function, so it runs in parallel
-- workers: each worker makes a partial union, the leader combines them.
CREATE TEMP TABLE many_bills AS
SELECT g AS id, anomaly_set(ARRAY[1 + g % 3, 9 + g % 3]) AS anomalies
FROM generate_series(1, 3000) g;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
-- (a temporary table is never scanned in parallel: use a permanent one)
CREATE TABLE anomaly_par AS TABLE many_bills;
ANALYZE anomaly_par;
EXPLAIN (COSTS OFF) SELECT anomaly_union(anomalies) FROM anomaly_par;
SELECT anomaly_union(anomalies) FROM anomaly_par;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
DROP TABLE anomaly_par;

--------------------------------------------------------------------------
-- btree and hash: ORDER BY, GROUP BY, DISTINCT, indexes
--------------------------------------------------------------------------

-- Sets sort by their mask (code n is bit n) read as an unsigned number: a
-- set with a higher code sorts after every set of lower codes.  This order
-- exists for sorting and btree indexes; it is not containment.
SELECT a, anomaly_codes(a) FROM (VALUES ('16'::anomaly_set), ('1+2+3+5+8+9+10+11+12+13+14+15'),
	(''), ('1'), ('2'), ('1+2'), ('3'), ('10+9'), ('11')) AS t(a)
ORDER BY a;
SELECT '16'::anomaly_set > '1+2+3+5+8+9+10+11+12+13+14+15' AS "16 > 1+2+...+15",
       '2'::anomaly_set < '1+3' AS "2 < 1+3",
       '2'::anomaly_set <@ '1+3' AS "2 <@ 1+3";

-- GROUP BY and DISTINCT, by sorting and by hashing: the same groups.
SET enable_hashagg = off;
EXPLAIN (COSTS OFF) SELECT anomalies, count(*) FROM many_bills GROUP BY anomalies;
SELECT anomalies, count(*) FROM many_bills GROUP BY anomalies ORDER BY anomalies;
RESET enable_hashagg;
SET enable_sort = off;
EXPLAIN (COSTS OFF) SELECT anomalies, count(*) FROM many_bills GROUP BY anomalies;
SELECT anomalies, count(*) FROM many_bills GROUP BY anomalies ORDER BY 2, 1;
RESET enable_sort;
SELECT DISTINCT anomalies FROM many_bills ORDER BY anomalies;

-- btree and hash indexes with the default operator classes, and a unique
-- constraint.
CREATE INDEX many_bills_btree ON many_bills USING btree (anomalies);
CREATE INDEX many_bills_hash ON many_bills USING hash (anomalies);
CREATE TEMP TABLE rule (anomalies anomaly_set PRIMARY KEY);
INSERT INTO rule VALUES ('9+10'), ('10+9');

--------------------------------------------------------------------------
-- GIN: finding the bills that carry a code
--------------------------------------------------------------------------

-- 5,000 bills; each code is on about one bill in seven, some bills carry
-- none, a few have no set yet (NULL).  hashint4 makes the mix repeatable.
CREATE TEMP TABLE bills AS
SELECT g AS id,
       CASE WHEN g % 97 = 0 THEN NULL
            ELSE anomaly_set(ARRAY(SELECT code FROM anomaly_code
                                   WHERE abs(hashint4(g * 100 + code)) % 7 = 0)) END AS anomalies
FROM generate_series(1, 5000) g;
CREATE INDEX bills_anomalies ON bills USING gin (anomalies);
ANALYZE bills;
SELECT count(*) AS bills, count(anomalies) AS with_set, count(*) FILTER (WHERE anomalies = '') AS empty_set,
       count(*) FILTER (WHERE anomalies @> '1') AS carrying_1
FROM bills;

-- The default GIN operator class is used for @>, && and =.
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM bills WHERE anomalies @> '1';
EXPLAIN (COSTS OFF) SELECT id FROM bills WHERE anomalies && '9+10+11';
EXPLAIN (COSTS OFF) SELECT id FROM bills WHERE anomalies = '1+2';

-- Every probe gives the same bills through the index, through a sequential
-- scan, and by the reference below, which compares the code arrays with
-- core's array operators instead of the set operators.
CREATE FUNCTION pg_temp.matching(op text, q anomaly_set) RETURNS int[]
LANGUAGE plpgsql AS $$
DECLARE r int[];
BEGIN
	EXECUTE format('SELECT coalesce(array_agg(id ORDER BY id), ''{}'') FROM bills WHERE anomalies OPERATOR(evcharge.%s) $1', op)
		INTO r USING q;
	RETURN r;
END $$;
CREATE TEMP TABLE probe (op text, q anomaly_set);
INSERT INTO probe
SELECT op, q FROM unnest(ARRAY['@>', '&&', '=']) op,
	(SELECT anomaly_set(ARRAY[code]) AS q FROM anomaly_code
	 UNION ALL VALUES (''::anomaly_set), ('9+10'), ('9+10+11'), ('1+2'), ('1+16'), ('3+5+8')) qs;

-- Through the index (sequential scans off, as set above).
CREATE TEMP TABLE by_index AS SELECT op, q, pg_temp.matching(op, q) AS ids FROM probe;
-- Through a sequential scan.
RESET enable_seqscan;
SET enable_bitmapscan = off;
SET enable_indexscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM bills WHERE anomalies @> '1';
CREATE TEMP TABLE by_seqscan AS SELECT op, q, pg_temp.matching(op, q) AS ids FROM probe;
RESET enable_bitmapscan;
RESET enable_indexscan;
-- The reference, with int[] operators.
CREATE TEMP TABLE by_arrays AS
SELECT p.op, p.q, coalesce(array_agg(b.id ORDER BY b.id) FILTER (WHERE CASE p.op
		WHEN '@>' THEN anomaly_codes(b.anomalies) @> anomaly_codes(p.q)
		WHEN '&&' THEN anomaly_codes(b.anomalies) && anomaly_codes(p.q)
		WHEN '=' THEN anomaly_codes(b.anomalies) = anomaly_codes(p.q) END), '{}') AS ids
FROM probe p CROSS JOIN bills b GROUP BY p.op, p.q;

SELECT i.op, i.q, cardinality(i.ids) AS bills,
       i.ids = s.ids AS index_equals_seqscan, i.ids = a.ids AS index_equals_reference
FROM by_index i JOIN by_seqscan s USING (op, q) JOIN by_arrays a USING (op, q)
ORDER BY i.op, i.q;

-- @> with the empty set matches every bill with a set; && with the empty
-- set matches none; = '' the bills that carry nothing.  NULL sets match
-- nothing.
SELECT count(*) FILTER (WHERE anomalies @> '') AS contains_empty,
       count(*) FILTER (WHERE anomalies && '') AS overlaps_empty,
       count(*) FILTER (WHERE anomalies = '') AS equals_empty
FROM bills;

--------------------------------------------------------------------------
-- Binary I/O
--------------------------------------------------------------------------

-- The binary form is a version byte (1) and the mask as an int8: code n is
-- bit n, so 9+10+11 is 0x0e00.
SELECT anomaly_set_send('9+10+11') AS send_9_10_11, anomaly_set_send('') AS send_empty,
       anomaly_set_send('16+1') AS send_16_1;

-- Binary COPY out and back in gives the same sets.  The file is written in
-- the server's data directory and removed at the end.
SELECT current_setting('data_directory') || '/evcharge_anomaly_set.copy' AS copy_file \gset
COPY (SELECT id, anomalies FROM bills) TO :'copy_file' (FORMAT binary);
CREATE TEMP TABLE bills_back (id int, anomalies anomaly_set);
COPY bills_back FROM :'copy_file' (FORMAT binary);
SELECT count(*) AS rows_back,
       count(*) FILTER (WHERE b.anomalies IS NOT DISTINCT FROM k.anomalies) AS unchanged
FROM bills b JOIN bills_back k USING (id);

-- Receive checks what text input checks.  A bytea written by binary COPY is
-- its raw bytes, so a bytea column copied out and read back into a set
-- column hands those bytes to anomaly_set_recv.
CREATE TEMP TABLE recv_one (a anomaly_set);
CREATE FUNCTION pg_temp.recv(payload bytea) RETURNS TABLE (sqlstate text, message text, detail text)
LANGUAGE plpgsql AS $$
DECLARE
	f text := current_setting('data_directory') || '/evcharge_anomaly_set.copy';
	st text; msg text; det text; got evcharge.anomaly_set;
BEGIN
	EXECUTE format('COPY (SELECT %L::bytea) TO %L (FORMAT binary)', payload, f);
	TRUNCATE recv_one;
	EXECUTE format('COPY recv_one FROM %L (FORMAT binary)', f);
	SELECT a INTO got FROM recv_one;
	RETURN QUERY SELECT '00000'::text, 'accepted: ' || quote_literal(got), NULL::text;
EXCEPTION WHEN others THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
	RETURN QUERY SELECT st, msg, det;
END $$;

SELECT payload, r.* FROM (VALUES
	('\x010000000000000e00'::bytea),   -- 9+10+11
	('\x010000000000000000'),          -- the empty set
	('\x020000000000000e00'),          -- version 2
	('\x010000000000000010'),          -- bit 4: code 4 does not exist
	('\x010000000000000001'),          -- bit 0: there is no code 0
	('\x018000000000000002'),          -- bit 63 with code 1
	('\x010000000000000e0000'),        -- bytes left over
	('\x0100000000')                   -- too short
) AS v(payload), pg_temp.recv(payload) r;

SELECT format('rm -f ''%s''', :'copy_file') AS remove_copy_file \gset
COPY (SELECT 1 WHERE false) TO PROGRAM :'remove_copy_file';
