-- gun_id: a gun (connector) of a pile: the 20-digit pile id and a 3-digit
-- gun number, 001 for the first gun.
SET search_path = public, evcharge;

SELECT '44200000120000200045001'::gun_id AS plain,
       '4420 0000 1200 0020 0045 002'::gun_id AS spaced,
       '4420-0000-1200-0020-0045-003'::gun_id AS hyphenated;

-- The accessors of pile_id work on a gun too; pile() and gun_no() split it.
SELECT g, pile(g), gun_no(g), region_code(g), province_code(g), operator_code(g),
       product_kind(g), current_type(g), serial_no(g), is_legacy(g)
FROM (VALUES ('4420 0000 1200 0020 0045 001'::gun_id),
             ('4403 0700 0800 0010 1234 012'::gun_id)) AS t(g);

-- Building a gun id from a pile id and a number, and casting back.
SELECT gun_id('44200000120000200045', 2) AS built,
       gun_id('44200000120000200045', 2)::pile_id AS its_pile,
       gun_id('44200000120000200045', 999) AS last_possible;

-- A legacy pile cannot carry a gun: the cloud protocol does not accept it.
SELECT gun_id('4420000012000045', 1);
SELECT '4420000012000045001'::gun_id;
-- Gun numbers start at 001 and have three digits.
SELECT '44200000120000200045000'::gun_id;
SELECT gun_id('44200000120000200045', 0);
SELECT gun_id('44200000120000200045', 1000);
-- A pile id where a gun id was wanted, and other typos.
SELECT '44200000120000200045'::gun_id;
SELECT '4420 0000 1200 0020 0045 01'::gun_id;
SELECT '4420 0000 1200 0020 0045 0O1'::gun_id;

-- Casts and literals.
SELECT '44200000120000200045001'::gun_id::text,
       '44200000120000200045001'::gun_id = '4420 0000 1200 0020 0045 001' AS equals_literal;
