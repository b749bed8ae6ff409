-- pile_id: the charging pile id type.
--
-- evcharge's objects live in schema evcharge; with the schema on the
-- search_path, operators such as = work on the types without qualification.
SET search_path = public, evcharge;

-- A 20-digit pile id: region (6) operator (4) reserved (1) product (2)
-- detail (2) serial (5).  Written plainly, in groups of four separated by
-- spaces or hyphens, or with white space around it, it is the same id, and
-- it prints as the canonical digit string.
SELECT '44200000120000200045'::pile_id AS plain,
       '4420 0000 1200 0020 0045'::pile_id AS spaced,
       '4420-0000-1200-0020-0045'::pile_id AS hyphenated,
       '  442000 0012 0 00 02 00045 '::pile_id AS by_field;

-- What the id says about the pile.
SELECT id,
       region_code(id), province_code(id), operator_code(id),
       product_kind(id), current_type(id), serial_no(id), is_legacy(id)
FROM (VALUES ('44200000120000200045'::pile_id),   -- Zhongshan, DC pile
             ('44030700080000101234'::pile_id),   -- Shenzhen Longgang, AC pile
             ('81000000030010100007'::pile_id),   -- Hong Kong, AC parking ground lock
             ('44200000120000900045'::pile_id),   -- detail 09: neither AC nor DC
             ('44200000120070200045'::pile_id),   -- product 07: unknown
             ('4420000012000045'::pile_id))       -- a 16-digit legacy id
     AS t(id);

-- The current type comes from the id (digits 14-15), never from a guess:
-- an AC pile is never shown as DC.  An untyped literal given to an accessor
-- is read as a pile id; a gun id literal needs its type.
SELECT current_type('4420 0000 1200 0010 0045'), current_type('4420 0000 1200 0020 0045'),
       current_type('4420 0000 1200 0020 0045 001'::gun_id);
SELECT current_type('4420 0000 1200 0020 0045 001');

-- Legacy ids are kept as legacy and print as 16 digits.
SELECT '4420-0000-1200-0045'::pile_id, is_legacy('4420 0000 1200 0045');

-- Casts to and from text; comparison with a text literal.
SELECT '4420 0000 1200 0020 0045'::pile_id::text AS to_text,
       '44200000120000200045'::text::pile_id AS from_text,
       '44200000120000200045'::pile_id = '4420-0000-1200-0020-0045' AS equals_literal,
       '44200000120000200045'::pile_id < '44200000120000200046' AS less_than_literal;

-- Bad input: SQLSTATE 22P02, the input quoted, the detail says what and
-- where, the hint shows the layout.
SELECT '4420000012000020004O'::pile_id;
SELECT '442000001200002000455'::pile_id;
SELECT '4420 0000 1200 0020  0045'::pile_id;
SELECT '4420-0000-1200-0020-0045-'::pile_id;
SELECT ''::pile_id;

-- Every kind of bad id at a glance, with its SQLSTATE.
CREATE FUNCTION pg_temp.try_pile_id(t text) RETURNS TABLE (sqlstate text, detail text)
LANGUAGE plpgsql AS $$
DECLARE st text; det text;
BEGIN
	PERFORM t::evcharge.pile_id;
	RETURN QUERY SELECT '00000'::text, 'accepted'::text;
EXCEPTION WHEN others THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, det = PG_EXCEPTION_DETAIL;
	RETURN QUERY SELECT st, det;
END $$;

SELECT left(input, 30) AS input, r.* FROM (VALUES
	('4420000012000020004O'),                -- letter O for zero
	('4420０００0012000020004'),             -- full-width digits typed in an IME
	('44200000120000200045x'),               -- trailing letter
	('4420/0000/1200/0020/0045'),            -- slashes
	('4420 0000 1200 0020 004'),             -- 19 digits
	('442000001200002000455'),               -- 21 digits
	('44200000120000200045001'),             -- a gun id where a pile id was wanted
	('442000001200045'),                     -- 15 digits
	('4420--0000'),                          -- two hyphens
	('4420 -0000'),                          -- space and hyphen
	(' -4420000012000020004'),               -- separator first
	('   '),                                 -- white space only
	(repeat('1', 5000)),                     -- very long
	(E'4420\t0000')                          -- a tab inside
) AS v(input), pg_temp.try_pile_id(input) r;

-- NULL in, NULL out: every function is STRICT.
SELECT region_code(NULL::pile_id), current_type(NULL::pile_id), NULL::pile_id = '44200000120000200045';
