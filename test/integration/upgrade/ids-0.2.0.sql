-- demo/ids.sql: a few hundred pile and gun ids as an operator's import would
-- bring them (clean, spaced in groups of four, hyphenated, legacy, and the
-- usual typos), parsed one by one: good ones are kept, bad ones are kept too,
-- in a quarantine with the error evcharge gave.  Deterministic.

SET client_min_messages = warning;
DROP SCHEMA IF EXISTS demo CASCADE;
CREATE SCHEMA demo;


-- Stations' piles: Zhongshan (442000), Shenzhen Longgang (440307), Hong Kong (810000).
CREATE TABLE demo.raw_id (n serial, kind text, raw text);

INSERT INTO demo.raw_id (kind, raw)
SELECT 'pile',
       CASE WHEN i % 3 = 0 THEN regexp_replace(d, '(\d{4})(?=\d)', '\1 ', 'g')
            WHEN i % 7 = 0 THEN regexp_replace(d, '(\d{4})(?=\d)', '\1-', 'g')
            ELSE d END
FROM (SELECT i,
             (ARRAY['442000','440307','810000'])[1 + i % 3]
             || lpad((1 + (i % 4))::text, 4, '0')          -- operator
             || '0'                                          -- reserved
             || CASE WHEN i % 25 = 0 THEN '01' ELSE '00' END -- product: some ground locks
             || CASE WHEN i % 4 = 0 THEN '02' ELSE '01' END  -- detail: AC or DC
             || lpad((1000 + i)::text, 5, '0') AS d          -- serial
      FROM generate_series(1, 220) i) s;

-- Guns of some of those piles.
INSERT INTO demo.raw_id (kind, raw)
SELECT 'gun', '4420000001' || '0' || '00' || '02' || lpad((1000 + i / 2)::text, 5, '0')
              || lpad((1 + i % 2)::text, 3, '0')
FROM generate_series(2, 41) i;

-- Old piles still carrying 16-digit legacy ids.
INSERT INTO demo.raw_id (kind, raw)
SELECT 'pile', '4420000003' || lpad((500 + i)::text, 6, '0') FROM generate_series(1, 20) i;

-- What goes wrong in real imports.
INSERT INTO demo.raw_id (kind, raw) VALUES
 ('pile', '4420000001000010100O1'),          -- letter O for zero
 ('pile', '442000000100001010001'),          -- 21 digits: one too many
 ('pile', '4420000001000010100'),            -- 19 digits
 ('pile', '4420 0000 0100 0010  1001'),      -- two spaces
 ('pile', '-44200000010000101001'),          -- leading hyphen
 ('pile', '4420０００0010000101001'),        -- full-width digits from an IME
 ('pile', ''),                               -- empty cell
 ('pile', '442000/0001/0/00/01/01001'),      -- slashes
 ('gun',  '44200000010000201001000'),        -- gun number 000
 ('gun',  '4420000003000501001'),            -- legacy pile id with a gun number
 ('gun',  '44200000010000201001'),           -- a pile id where a gun id was wanted
 ('gun',  '4420000001000020100100A');        -- trailing letter

-- Parse each raw id; keep the good ones, quarantine the bad ones with the reason.
CREATE TABLE demo.pile (n int, raw text, id evcharge.pile_id);
CREATE TABLE demo.gun (n int, raw text, id evcharge.gun_id);
CREATE TABLE demo.quarantine (n int, kind text, raw text, sqlstate text, message text, detail text);

DO $$
DECLARE
	r record;
	st text; msg text; det text;
BEGIN
	FOR r IN SELECT * FROM demo.raw_id ORDER BY n LOOP
		BEGIN
			IF r.kind = 'pile' THEN
				INSERT INTO demo.pile VALUES (r.n, r.raw, r.raw::evcharge.pile_id);
			ELSE
				INSERT INTO demo.gun VALUES (r.n, r.raw, r.raw::evcharge.gun_id);
			END IF;
		EXCEPTION WHEN others THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
			INSERT INTO demo.quarantine VALUES (r.n, r.kind, r.raw, st, msg, det);
		END;
	END LOOP;
END $$;

\echo
\echo '== What was read'
SELECT (SELECT count(*) FROM demo.raw_id) AS ids_read,
       (SELECT count(*) FROM demo.pile) AS piles_accepted,
       (SELECT count(*) FROM demo.gun) AS guns_accepted,
       (SELECT count(*) FROM demo.quarantine) AS quarantined;

\echo '== Piles by region and current type (taken from the id, never guessed)'
SELECT evcharge.region_code(id) AS region,
       CASE evcharge.region_code(id) WHEN 442000 THEN 'Zhongshan'
            WHEN 440307 THEN 'Shenzhen Longgang' WHEN 810000 THEN 'Hong Kong' END AS name,
       evcharge.province_code(id) AS province,
       count(*) FILTER (WHERE evcharge.current_type(id) = 'AC') AS ac,
       count(*) FILTER (WHERE evcharge.current_type(id) = 'DC') AS dc,
       count(*) FILTER (WHERE evcharge.product_kind(id) = 'ground_lock') AS ground_locks,
       count(*) FILTER (WHERE evcharge.is_legacy(id)) AS legacy,
       count(*) AS total
FROM demo.pile GROUP BY 1, 2, 3 ORDER BY 1;

\echo '== A few piles as written and as evcharge understood them'
SELECT DISTINCT ON (evcharge.product_kind(id), evcharge.current_type(id), evcharge.is_legacy(id), raw ~ ' ', raw ~ '-')
       raw, id, evcharge.operator_code(id) AS operator, evcharge.product_kind(id) AS product,
       evcharge.current_type(id) AS current, evcharge.serial_no(id) AS serial,
       evcharge.is_legacy(id) AS legacy
FROM demo.pile ORDER BY evcharge.product_kind(id), evcharge.current_type(id), evcharge.is_legacy(id), raw ~ ' ', raw ~ '-', n;

\echo '== Guns per pile'
SELECT evcharge.pile(id) AS pile, array_agg(evcharge.gun_no(id) ORDER BY id) AS guns
FROM demo.gun GROUP BY 1 ORDER BY 1 LIMIT 5;

\echo '== Quarantined, with the reason evcharge gave'
SELECT kind, raw, sqlstate, detail FROM demo.quarantine ORDER BY n;
