-- tariff.sql: the time-of-use plan type and the billing engines
-- (C in src/tariff.c, src/energy_split.c, src/pricing.c).
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TYPE evcharge.tou_tariff;

CREATE FUNCTION evcharge.tou_tariff_in(cstring) RETURNS evcharge.tou_tariff
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.tou_tariff_out(evcharge.tou_tariff) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.tou_tariff_recv(internal) RETURNS evcharge.tou_tariff
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION evcharge.tou_tariff_send(evcharge.tou_tariff) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE evcharge.tou_tariff (
	INPUT = evcharge.tou_tariff_in,
	OUTPUT = evcharge.tou_tariff_out,
	RECEIVE = evcharge.tou_tariff_recv,
	SEND = evcharge.tou_tariff_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = extended
);

COMMENT ON TYPE evcharge.tou_tariff IS
	'A complete daily time-of-use price plan: segments covering the day once, each of class sharp/peak/flat/valley/deep_valley, and per class an electricity price and a service fee in yuan per kWh (4 decimals); stored as before 0.3.0 when it has no deep valley';
COMMENT ON FUNCTION evcharge.tou_tariff_in(cstring) IS 'tou_tariff text input, validated';
COMMENT ON FUNCTION evcharge.tou_tariff_out(evcharge.tou_tariff) IS 'tou_tariff text output: segments sorted, prices in class order';
COMMENT ON FUNCTION evcharge.tou_tariff_recv(internal) IS 'tou_tariff binary input, validated like text input';
COMMENT ON FUNCTION evcharge.tou_tariff_send(evcharge.tou_tariff) IS 'tou_tariff binary output';

CREATE FUNCTION evcharge.tou_tariff_eq(evcharge.tou_tariff, evcharge.tou_tariff) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.tou_tariff_ne(evcharge.tou_tariff, evcharge.tou_tariff) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.tou_tariff_hash(evcharge.tou_tariff) RETURNS int4
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION evcharge.tou_tariff_hash_extended(evcharge.tou_tariff, int8) RETURNS int8
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
COMMENT ON FUNCTION evcharge.tou_tariff_eq(evcharge.tou_tariff, evcharge.tou_tariff) IS 'implementation of = for tou_tariff: same class at every minute, same prices';
COMMENT ON FUNCTION evcharge.tou_tariff_ne(evcharge.tou_tariff, evcharge.tou_tariff) IS 'implementation of <> for tou_tariff';
COMMENT ON FUNCTION evcharge.tou_tariff_hash(evcharge.tou_tariff) IS 'hash support for tou_tariff';
COMMENT ON FUNCTION evcharge.tou_tariff_hash_extended(evcharge.tou_tariff, int8) IS 'seeded hash support for tou_tariff';

CREATE OPERATOR evcharge.= (
	LEFTARG = evcharge.tou_tariff, RIGHTARG = evcharge.tou_tariff,
	FUNCTION = evcharge.tou_tariff_eq,
	COMMUTATOR = OPERATOR(evcharge.=), NEGATOR = OPERATOR(evcharge.<>),
	RESTRICT = eqsel, JOIN = eqjoinsel, HASHES
);
CREATE OPERATOR evcharge.<> (
	LEFTARG = evcharge.tou_tariff, RIGHTARG = evcharge.tou_tariff,
	FUNCTION = evcharge.tou_tariff_ne,
	COMMUTATOR = OPERATOR(evcharge.<>), NEGATOR = OPERATOR(evcharge.=),
	RESTRICT = neqsel, JOIN = neqjoinsel
);
COMMENT ON OPERATOR evcharge.= (evcharge.tou_tariff, evcharge.tou_tariff) IS 'plans are the same';
COMMENT ON OPERATOR evcharge.<> (evcharge.tou_tariff, evcharge.tou_tariff) IS 'plans differ';

CREATE OPERATOR CLASS evcharge.tou_tariff_hash_ops
	DEFAULT FOR TYPE evcharge.tou_tariff USING hash AS
		OPERATOR 1 evcharge.= ,
		FUNCTION 1 evcharge.tou_tariff_hash(evcharge.tou_tariff),
		FUNCTION 2 evcharge.tou_tariff_hash_extended(evcharge.tou_tariff, int8);
COMMENT ON OPERATOR CLASS evcharge.tou_tariff_hash_ops USING hash IS 'hash operator class for tou_tariff: GROUP BY, DISTINCT';
COMMENT ON OPERATOR FAMILY evcharge.tou_tariff_hash_ops USING hash IS 'hash operator family of tou_tariff';

-- Accessors.
CREATE FUNCTION evcharge.class_at(evcharge.tou_tariff, time) RETURNS text
	AS 'MODULE_PATHNAME', 'tou_tariff_class_at' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.class_at(evcharge.tou_tariff, time) IS
	'the class (sharp, peak, flat, valley, deep_valley) in force at a local time of day';

CREATE FUNCTION evcharge.tariff_segments(evcharge.tou_tariff,
	OUT starts time, OUT ends time, OUT class text) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'tou_tariff_segments' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 8;
COMMENT ON FUNCTION evcharge.tariff_segments(evcharge.tou_tariff) IS
	'the segments of a plan in order: local start, end (24:00 for the end of the day) and class';

CREATE FUNCTION evcharge.tariff_prices(evcharge.tou_tariff,
	OUT class text, OUT energy_price numeric, OUT service_fee numeric) RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'tou_tariff_prices' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 5;
COMMENT ON FUNCTION evcharge.tariff_prices(evcharge.tou_tariff) IS
	'the prices of a plan per class, in yuan per kWh';

CREATE FUNCTION evcharge.tariff_classes() RETURNS text[]
	AS 'MODULE_PATHNAME', 'tou_tariff_classes' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.tariff_classes() IS
	'the class names in class order, {sharp, peak, flat, valley, deep_valley}: element k of every per-class array (split_energy, price, bills) is class k';

-- jsonb, for applications.
CREATE FUNCTION evcharge.to_jsonb(evcharge.tou_tariff) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'tou_tariff_to_jsonb' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.to_jsonb(evcharge.tou_tariff) IS
	'the plan as {"segments": [{"start", "end", "class"}...], "prices": {class: {"energy", "service"}}}';
CREATE CAST (evcharge.tou_tariff AS jsonb) WITH FUNCTION evcharge.to_jsonb(evcharge.tou_tariff);
COMMENT ON CAST (evcharge.tou_tariff AS jsonb) IS 'the plan as jsonb, see evcharge.to_jsonb(tou_tariff)';

CREATE FUNCTION evcharge.tou_tariff(plan jsonb) RETURNS evcharge.tou_tariff
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	seg jsonb;
	pr record;
	n int := 0;
	segs text[] := '{}';
	prices text[] := '{}';
BEGIN
	IF jsonb_typeof(plan->'segments') IS DISTINCT FROM 'array' OR jsonb_typeof(plan->'prices') IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION 'invalid tou_tariff: a plan in jsonb has an array "segments" and an object "prices"'
			USING ERRCODE = 'invalid_text_representation',
			      HINT = 'Write it as to_jsonb(tou_tariff) does: {"segments": [{"start": "00:00", "end": "24:00", "class": "flat"}], "prices": {"flat": {"energy": 0.64, "service": 0.51}}}.';
	END IF;
	FOR seg IN SELECT * FROM jsonb_array_elements(plan->'segments') LOOP
		n := n + 1;
		IF jsonb_typeof(seg) IS DISTINCT FROM 'object'
		   OR coalesce(seg->>'start', '') !~ '^\d\d:\d\d$' OR coalesce(seg->>'end', '') !~ '^\d\d:\d\d$'
		   OR coalesce(seg->>'class', '') !~ '^[[:alnum:]_]+$' THEN
			RAISE EXCEPTION 'invalid tou_tariff: segment % of the jsonb plan is not {"start": "HH:MM", "end": "HH:MM", "class": name}', n
				USING ERRCODE = 'invalid_text_representation', DETAIL = format('Segment %s is %s.', n, seg);
		END IF;
		segs := segs || format('%s-%s %s', seg->>'start', seg->>'end', seg->>'class');
	END LOOP;
	FOR pr IN SELECT * FROM jsonb_each(plan->'prices') LOOP
		IF pr.key !~ '^[[:alnum:]_]+$' OR jsonb_typeof(pr.value) IS DISTINCT FROM 'object'
		   OR jsonb_typeof(pr.value->'energy') IS DISTINCT FROM 'number'
		   OR jsonb_typeof(pr.value->'service') IS DISTINCT FROM 'number' THEN
			RAISE EXCEPTION 'invalid tou_tariff: price "%" of the jsonb plan is not {"energy": number, "service": number}', pr.key
				USING ERRCODE = 'invalid_text_representation', DETAIL = format('It is %s.', pr.value);
		END IF;
		prices := prices || format('%s %s+%s', pr.key, pr.value->>'energy', pr.value->>'service');
	END LOOP;
	RETURN (array_to_string(segs, ', ') || ' | ' || array_to_string(prices, ', '))::evcharge.tou_tariff;
END $$;
COMMENT ON FUNCTION evcharge.tou_tariff(jsonb) IS
	'a plan from the jsonb form that to_jsonb(tou_tariff) produces; validated like text input';

-- The engines.
CREATE FUNCTION evcharge.split_energy(tariff evcharge.tou_tariff, ts timestamptz[], meter_wh bigint[],
	tz text DEFAULT 'Asia/Shanghai') RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'split_energy' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.split_energy(evcharge.tou_tariff, timestamptz[], bigint[], text) IS
	'Wh per class {sharp, peak, flat, valley}, and deep_valley when the plan has it, of a session from its meter samples: rises shared among segments in proportion to time, in the zone tz';

CREATE FUNCTION evcharge.split_energy_by_span(tariffs evcharge.tou_tariff[], span_starts timestamptz[],
	ts timestamptz[], meter_wh bigint[], tz text DEFAULT 'Asia/Shanghai') RETURNS bigint[]
	AS 'MODULE_PATHNAME', 'split_energy_by_span' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.split_energy_by_span(evcharge.tou_tariff[], timestamptz[], timestamptz[], bigint[], text) IS
	'Wh per plan and class, [span][class], when plan k is in force from span_starts[k] to span_starts[k+1]';

CREATE TYPE evcharge.charge_amount AS (
	kwh numeric,
	energy_fee numeric,
	service_fee numeric,
	total numeric,
	class_kwh numeric[],
	class_energy_fee numeric[],
	class_service_fee numeric[]
);
COMMENT ON TYPE evcharge.charge_amount IS
	'What energy costs: total kWh, electricity fee, service fee and total (yuan, truncated to the fen), and per class {sharp, peak, flat, valley[, deep_valley]} the kWh and the exact fees';
COMMENT ON COLUMN evcharge.charge_amount.kwh IS 'energy, kWh';
COMMENT ON COLUMN evcharge.charge_amount.energy_fee IS 'electricity fee, yuan, truncated to the fen';
COMMENT ON COLUMN evcharge.charge_amount.service_fee IS 'service fee, yuan, truncated to the fen';
COMMENT ON COLUMN evcharge.charge_amount.total IS 'energy_fee + service_fee';
COMMENT ON COLUMN evcharge.charge_amount.class_kwh IS 'kWh per class {sharp, peak, flat, valley}, and deep_valley when the plan or the figures have it';
COMMENT ON COLUMN evcharge.charge_amount.class_energy_fee IS 'exact electricity fee per class, before truncation';
COMMENT ON COLUMN evcharge.charge_amount.class_service_fee IS 'exact service fee per class, before truncation';

CREATE FUNCTION evcharge.price(tariff evcharge.tou_tariff, wh bigint[]) RETURNS evcharge.charge_amount
	AS 'MODULE_PATHNAME', 'tou_tariff_price' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.price(evcharge.tou_tariff, bigint[]) IS
	'prices Wh per class under a plan: exact sums, each money figure truncated to the fen';
