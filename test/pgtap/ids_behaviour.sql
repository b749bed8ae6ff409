-- pgTAP: behaviour of the id types that needs many assertions.
BEGIN;
SELECT plan(24);
SET LOCAL search_path = public, evcharge;

-- Each kind of bad input fails with 22P02 and the input quoted.
SELECT throws_ok(format('SELECT %L::evcharge.pile_id', v), '22P02',
                 format('invalid input syntax for type pile_id: "%s"', v),
                 format('pile_id rejects %L', v))
FROM unnest(ARRAY['4420000012000020004O', '442000001200002000455', '4420 0000 1200 0020  0045',
                  '-44200000120000200045', '', '44200000120000200045001']) v;

SELECT throws_ok(format('SELECT %L::evcharge.gun_id', v), '22P02',
                 format('invalid input syntax for type gun_id: "%s"', v),
                 format('gun_id rejects %L', v))
FROM unnest(ARRAY['44200000120000200045000', '4420000012000045001', '44200000120000200045',
                  '4420 0000 1200 0020 0045 0O1']) v;

SELECT throws_ok($$SELECT evcharge.gun_id('4420000012000045', 1)$$, '22023', NULL,
                 'a legacy pile cannot carry a gun number');
SELECT throws_ok($$SELECT evcharge.gun_id('44200000120000200045', 1000)$$, '22003', NULL,
                 'gun number 1000 is out of range');
SELECT throws_ok($$SELECT evcharge.gun_id('44200000120000200045', 0)$$, '22003', NULL,
                 'gun number 0 is out of range');

-- Binary form: version byte, kind, head, tail.
SELECT is(pile_id_send('4420 0000 1200 0020 0045'),
          '\x0100000000010773d90c0000000000030d6d'::bytea,
          'pile_id binary form: version 1, kind 0, head 4420000012, tail 0000200045');
SELECT is(pile_id_send('4420 0000 1200 0045'),
          '\x0101000000010773d90c000000000000002d'::bytea,
          'legacy pile_id binary form: kind 1, tail 000045');
SELECT is(gun_id_send('4420 0000 1200 0020 0045 002'),
          '\x01000000010773d90c000000000bec71ca'::bytea,
          'gun_id binary form: version 1, head, tail 0000200045002');

-- Random strings over the alphabet of real typos: nothing but 22P02 is ever
-- raised, and whatever is accepted prints back as the same id.
CREATE TEMP TABLE fuzz_input AS
SELECT i, string_agg(substr('0123456789012345678901234567890123456789  --Oo|/０x' || E'\t',
                            1 + floor(random() * 52)::int, 1), '') AS s
FROM generate_series(1, 20000) i, generate_series(1, 1 + (i % 30)) k
GROUP BY i;
-- and well-formed ids of every length (16, 20, 23 digits), grouped by four
INSERT INTO fuzz_input
SELECT 100000 + 3 * i + n, regexp_replace(left(lpad((random() * 1e10)::bigint::text, 10, '0')
                                               || lpad((random() * 1e13)::bigint::text, 13, '0'), len),
                                          '(\d{4})(?=\d)', '\1 ', 'g')
FROM generate_series(1, 5000) i, unnest(ARRAY[16, 20, 23]) WITH ORDINALITY AS l(len, n);

CREATE TEMP TABLE fuzz_result (i int, kind text, sqlstate text, roundtrip bool);
DO $$
DECLARE r record; st text; p evcharge.pile_id; g evcharge.gun_id;
BEGIN
	FOR r IN SELECT * FROM fuzz_input LOOP
		BEGIN
			p := r.s::evcharge.pile_id;
			INSERT INTO fuzz_result VALUES (r.i, 'pile', '00000',
				p::text::evcharge.pile_id = p AND p::text = regexp_replace(r.s, '[ \t-]', '', 'g'));
		EXCEPTION WHEN others THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
			INSERT INTO fuzz_result VALUES (r.i, 'pile', st, NULL);
		END;
		BEGIN
			g := r.s::evcharge.gun_id;
			INSERT INTO fuzz_result VALUES (r.i, 'gun', '00000',
				g::text::evcharge.gun_id = g AND g::text = regexp_replace(r.s, '[ \t-]', '', 'g')
				AND evcharge.gun_id(evcharge.pile(g), evcharge.gun_no(g)) = g);
		EXCEPTION WHEN others THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
			INSERT INTO fuzz_result VALUES (r.i, 'gun', st, NULL);
		END;
	END LOOP;
END $$;

SELECT is((SELECT count(*)::int FROM fuzz_result), 70000, 'every random input was tried as pile and gun');
SELECT is((SELECT array_agg(DISTINCT sqlstate ORDER BY sqlstate) FROM fuzz_result),
          ARRAY['00000', '22P02'], 'random input is either accepted or rejected with 22P02');
SELECT ok((SELECT count(*) FROM fuzz_result WHERE kind = 'pile' AND sqlstate = '00000') >= 10000,
          'the generated pile ids, legacy and current, are accepted');
SELECT ok((SELECT count(*) FROM fuzz_result WHERE kind = 'gun' AND sqlstate = '00000') > 1000,
          'the generated gun ids are accepted');
SELECT is((SELECT count(*)::int FROM fuzz_result WHERE sqlstate = '00000' AND NOT roundtrip), 0,
          'every accepted input prints as its own digits and reads back equal');

-- Order of ids equals the order of their text, legacy ids among them.
SELECT is((SELECT count(*)::int FROM (
	SELECT a.p, b.p AS q FROM
		(SELECT s::evcharge.pile_id AS p FROM fuzz_input f JOIN fuzz_result r USING (i)
		 WHERE r.kind = 'pile' AND r.sqlstate = '00000' LIMIT 300) a,
		(SELECT s::evcharge.pile_id AS p FROM fuzz_input f JOIN fuzz_result r USING (i)
		 WHERE r.kind = 'pile' AND r.sqlstate = '00000' LIMIT 300) b
	WHERE (a.p < b.p) <> (a.p::text COLLATE "C" < b.p::text COLLATE "C")
	   OR (a.p = b.p) <> (a.p::text = b.p::text)) bad), 0,
	'< and = agree with the digit strings on every pair');

-- Hashes agree for equal ids written differently.
SELECT is(pile_id_hash('4420 0000 1200 0020 0045'), pile_id_hash('44200000120000200045'),
          'equal pile ids hash equally');
SELECT is(gun_id_hash_extended('4420-0000-1200-0020-0045-001', 7), gun_id_hash_extended('44200000120000200045001', 7),
          'equal gun ids hash equally with a seed');

SELECT * FROM finish();
ROLLBACK;
