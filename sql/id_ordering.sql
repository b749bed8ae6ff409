-- Ordering, indexing, hashing and joining pile and gun ids.
SET search_path = public, evcharge;

-- Ids sort in the order of their digit strings; a legacy id sorts before
-- the 20-digit ids it is a prefix of, as its text would.
SELECT id, is_legacy(id)
FROM (VALUES ('44200000120000200045'::pile_id), ('4420000012000020'),
             ('44200000120000100045'), ('4420000012000019'),
             ('44030700080000101234'), ('81000000030010100007'),
             ('4420000012000021'), ('44200000120000200044')) AS t(id)
ORDER BY id;

-- The same order as text, checked over many ids: for each of 500 heads
-- (region + operator) two 20-digit ids and two legacy ids, one of which is
-- a prefix of a 20-digit one.
CREATE TABLE pile_sample AS
SELECT ((ARRAY['442000', '440307', '810000'])[1 + h % 3] || lpad(h::text, 4, '0') || t)::pile_id AS id
FROM generate_series(1::bigint, 500) h,
     LATERAL (VALUES (lpad((h * 104729 % 10000000000)::text, 10, '0')),
                     (left(lpad((h * 104729 % 10000000000)::text, 10, '0'), 6)),
                     (lpad((h * 31 % 1000000)::text, 6, '0')),
                     (lpad((h * 15485863 % 10000000000)::text, 10, '0'))) AS v(t);

SELECT count(*) AS ids,
       bool_and(ordered_by_id = ordered_by_text) AS same_order
FROM (SELECT row_number() OVER (ORDER BY id) AS ordered_by_id,
             row_number() OVER (ORDER BY id::text COLLATE "C") AS ordered_by_text
      FROM pile_sample) s;

-- Equal ids hash equally: DISTINCT and GROUP BY agree with the text.
SELECT (SELECT count(DISTINCT id) FROM pile_sample) AS distinct_ids,
       (SELECT count(DISTINCT id::text) FROM pile_sample) AS distinct_texts;

-- A btree index answers equality and ranges.
CREATE TABLE pile_registry (id pile_id PRIMARY KEY, station text);
INSERT INTO pile_registry
SELECT DISTINCT id, 'station ' || (evcharge.serial_no(id) % 50) FROM pile_sample;
ANALYZE pile_registry;

EXPLAIN (COSTS OFF) SELECT * FROM pile_registry WHERE id = '4420 0000 1200 0020 0045';
-- Zhongshan's operators 0001-0099, legacy ids included:
EXPLAIN (COSTS OFF) SELECT * FROM pile_registry WHERE id BETWEEN '4420000001000000' AND '44200000999999999999';
SELECT count(*) AS zhongshan_operators_1_99
FROM pile_registry WHERE id BETWEEN '4420000001000000' AND '44200000999999999999';
SELECT count(*) AS same_by_text
FROM pile_registry WHERE id::text BETWEEN '4420000001000000' AND '44200000999999999999';

-- A duplicate id, in any spelling, is refused by the primary key.
INSERT INTO pile_registry VALUES ('4420 0000 1200 0020 0045', 'a'), ('4420-0000-1200-0020-0045', 'b');

-- A hash index, and a hash join between guns and their piles.
CREATE TABLE gun_sample AS
SELECT gun_id(id, n) AS gun FROM pile_registry, generate_series(1, 2) n
WHERE NOT is_legacy(id);
CREATE INDEX gun_sample_hash ON gun_sample USING hash (gun);
ANALYZE gun_sample;

EXPLAIN (COSTS OFF) SELECT * FROM gun_sample WHERE gun = '4420 0000 1200 0020 0045 001';

SET enable_mergejoin = off;
SET enable_nestloop = off;
EXPLAIN (COSTS OFF)
SELECT count(*) FROM gun_sample g JOIN pile_registry p ON pile(g.gun) = p.id;
SELECT count(*) AS guns_joined_to_piles,
       (SELECT count(*) FROM gun_sample) AS guns
FROM gun_sample g JOIN pile_registry p ON pile(g.gun) = p.id;

-- A merge join sorts both sides with the btree class.
SET enable_hashjoin = off;
SET enable_mergejoin = on;
EXPLAIN (COSTS OFF)
SELECT count(*) FROM gun_sample g JOIN pile_registry p ON pile(g.gun) = p.id;
SELECT count(*) AS merge_joined FROM gun_sample g JOIN pile_registry p ON pile(g.gun) = p.id;
RESET enable_hashjoin;
RESET enable_mergejoin;
RESET enable_nestloop;

-- GROUP BY by hash and by sort give the same groups.
SET enable_sort = off;
SELECT count(*) AS hashed_groups FROM (SELECT pile(gun) FROM gun_sample GROUP BY 1) s;
RESET enable_sort;
SET enable_hashagg = off;
SELECT count(*) AS sorted_groups FROM (SELECT pile(gun) FROM gun_sample GROUP BY 1) s;
RESET enable_hashagg;

-- Gun ids sort by pile, then gun number.
SELECT gun FROM gun_sample ORDER BY gun LIMIT 4;

DROP TABLE pile_sample, pile_registry, gun_sample;
