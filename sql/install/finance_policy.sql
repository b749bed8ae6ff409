-- finance_policy.sql: each operator's money settings (finance_policy: the
-- books' time zone and days, the balance guard's threshold, the limits of
-- one bill), read by quotes, bills and repairs before money moves (the
-- money itself is ledger.sql's and money.sql's).
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TABLE evcharge.finance_policy (
	operator_id bigint PRIMARY KEY REFERENCES evcharge.operator ON DELETE CASCADE,
	stop_threshold numeric(10, 2) NOT NULL DEFAULT 1.00 CHECK (stop_threshold >= 0 AND stop_threshold <> 'NaN'),
	void_coupons_on_refund boolean NOT NULL DEFAULT false,
	guard_interval interval NOT NULL DEFAULT '60 s' CHECK (guard_interval > '0'),
	tz evcharge.time_zone NOT NULL DEFAULT 'Asia/Shanghai',
	updated_at timestamptz NOT NULL DEFAULT now(),
	max_bill_amount numeric(12, 2) NOT NULL DEFAULT 5000.00
		CHECK (max_bill_amount > 0 AND max_bill_amount <> 'NaN'),
	max_bill_energy_wh bigint NOT NULL DEFAULT 1000000 CHECK (max_bill_energy_wh > 0)
);
COMMENT ON TABLE evcharge.finance_policy IS
	'Each operator''s money settings; a row with the defaults is made for every new operator';
COMMENT ON COLUMN evcharge.finance_policy.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.finance_policy.stop_threshold IS 'a member''s charge is stopped before the wallet would fall below this (yuan)';
COMMENT ON COLUMN evcharge.finance_policy.void_coupons_on_refund IS 'whether a request to refund a member''s whole balance voids the member''s unused coupons';
COMMENT ON COLUMN evcharge.finance_policy.guard_interval IS
	'how far ahead the balance guard looks: the longest a pile may take to send its next charging heartbeat (60 s)';
COMMENT ON COLUMN evcharge.finance_policy.tz IS
	'the time zone of the operator''s books: where its report days and statement months begin and end';
COMMENT ON COLUMN evcharge.finance_policy.updated_at IS 'last change';
COMMENT ON COLUMN evcharge.finance_policy.max_bill_amount IS
	'the most one bill may come to, yuan (5000.00): a repair or a quote beyond it is refused as implausible';
COMMENT ON COLUMN evcharge.finance_policy.max_bill_energy_wh IS
	'the most energy one bill may carry, Wh (1,000,000: 1 MWh, beyond any vehicle''s battery): a repair or a quote beyond it is refused as implausible';

-- A new operator's finance_policy row is made by operator_defaults() (below).
CREATE TRIGGER finance_policy_replaces_default BEFORE INSERT ON evcharge.finance_policy
	FOR EACH ROW EXECUTE FUNCTION evcharge.policy_replaces_default();
COMMENT ON TRIGGER finance_policy_replaces_default ON evcharge.finance_policy IS
	'an inserted row replaces the operator''s default row if that is untouched: pg_restore loads the dumped policies after the operators made theirs';

-- The days of an operator's books: its finance_policy.tz.
CREATE FUNCTION evcharge.books_tz(p_operator_id bigint) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tz text;
BEGIN
	SELECT fp.tz INTO tz FROM evcharge.finance_policy fp WHERE fp.operator_id = p_operator_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'operator % is not registered', coalesce(p_operator_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Operators are in evcharge.operator.';
	END IF;
	RETURN tz;
END $$;
COMMENT ON FUNCTION evcharge.books_tz(bigint) IS
	'the time zone of the operator''s books (finance_policy.tz), where its report days and statement months begin and end; error P0002 for an operator not registered';

-- One day of an operator's books, as a range of instants.
CREATE FUNCTION evcharge.books_day(p_operator_id bigint, p_day date) RETURNS tstzrange
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tz text := evcharge.books_tz(p_operator_id);
BEGIN
	IF p_day IS NULL THEN
		RAISE EXCEPTION 'a day of operator %''s books is needed', p_operator_id
			USING ERRCODE = 'null_value_not_allowed', HINT = 'Give the day, e.g. ''2026-11-20''.';
	END IF;
	RETURN tstzrange(p_day::timestamp AT TIME ZONE tz, (p_day + 1)::timestamp AT TIME ZONE tz, '[)');
END $$;
COMMENT ON FUNCTION evcharge.books_day(bigint, date) IS
	'the day of the operator''s books as [midnight, next midnight) in its time zone (books_tz); errors for an operator not registered (P0002) or no day (22004)';

-- The operator's plausibility limits for one bill (finance_policy), the
-- one rule: why a bill of this energy and total is beyond them, in the
-- words of an error (message, detail, hint), or NULLs when it is within.
-- compute_bill tests it (anomaly 18); check_bill_limits raises it.
CREATE FUNCTION evcharge.bill_limit_breach(p_operator_id bigint, p_energy_wh numeric, p_total numeric, p_what text,
	OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	fp evcharge.finance_policy;
BEGIN
	SELECT * INTO fp FROM evcharge.finance_policy f WHERE f.operator_id = p_operator_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'operator % is not registered', coalesce(p_operator_id::text, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Operators are in evcharge.operator.';
	END IF;
	IF p_energy_wh > fp.max_bill_energy_wh THEN
		message := format('%s would bill %s Wh, more than one bill of operator %s may carry', p_what, trim_scale(p_energy_wh), p_operator_id);
		detail := format('The operator''s limit is %s Wh (finance_policy.max_bill_energy_wh).', fp.max_bill_energy_wh);
		hint := 'Check the energy; if such a charge is real, the operator raises its limit.';
	ELSIF p_total > fp.max_bill_amount THEN
		message := format('%s would bill %s yuan, more than one bill of operator %s may come to', p_what, p_total, p_operator_id);
		detail := format('The operator''s limit is %s yuan (finance_policy.max_bill_amount).', fp.max_bill_amount);
		hint := 'Check the energy and the prices; if such a bill is real, the operator raises its limit.';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.bill_limit_breach(bigint, numeric, numeric, text) IS
	'why a bill''s energy or total is beyond the operator''s finance_policy.max_bill_energy_wh or max_bill_amount (energy first), as message, detail and hint; NULLs when within; P0002 for an operator not registered: the one rule of check_bill_limits and compute_bill (anomaly 18)';

-- The same limits as an error: a repair or a quote beyond them is refused,
-- not billed.
CREATE FUNCTION evcharge.check_bill_limits(p_operator_id bigint, p_energy_wh numeric, p_total numeric, p_what text)
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	br record;
BEGIN
	SELECT * INTO br FROM evcharge.bill_limit_breach(p_operator_id, p_energy_wh, p_total, p_what);
	IF br.message IS NOT NULL THEN
		RAISE EXCEPTION '%', br.message
			USING ERRCODE = 'invalid_parameter_value', DETAIL = br.detail, HINT = br.hint;
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.check_bill_limits(bigint, numeric, numeric, text) IS
	'raises 22023 when a bill''s energy or total is beyond the operator''s finance_policy.max_bill_energy_wh or max_bill_amount (bill_limit_breach; P0002 for an operator not registered); used by repair_bill and quote';

SELECT pg_catalog.pg_extension_config_dump('evcharge.finance_policy', '');
