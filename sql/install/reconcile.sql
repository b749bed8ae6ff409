-- reconcile.sql: nightly reconciliation with the payment provider's and the
-- partners' statements, fetched over HTTPS only and signed for their source
-- and day (fetch_statement, in C: src/http_fetch.c), so that evcharge finds
-- paid-but-not-credited top-ups and the bills a partner does not have
-- itself, instead of an operator comparing order by order.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE FUNCTION evcharge.check_statement_url(url_template text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'evcharge_check_statement_url' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION evcharge.check_statement_url(text) IS
	'true for a statement URL template that fetch_statement may fetch (https, a host, no user name or password, {day} in it), else an error (22023) saying what is wrong; the CHECK of statement_source.url_template';

CREATE FUNCTION evcharge.is_statement_source_name(name text) RETURNS boolean
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$';
COMMENT ON FUNCTION evcharge.is_statement_source_name(text) IS
	'whether a text can name a statement source: 1 to 63 letters, digits, dots, dashes and underscores, starting with a letter or digit (the name is a line of what a statement''s signature covers)';

CREATE FUNCTION evcharge.fetch_statement(source text, day date, url_template text, secret text) RETURNS text
	AS 'MODULE_PATHNAME', 'evcharge_fetch_statement' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION evcharge.fetch_statement(text, date, text, text) IS
	'the statement of a source for a day: an https GET of url_template with {day} as YYYY-MM-DD, the request signed (X-Evcharge-Timestamp, X-Evcharge-Signature: HMAC-SHA256 of "GET\n" path?query "\n" timestamp), the response''s X-Signature checked as HMAC-SHA256 of "evcharge-statement-v1\n" source "\n" day "\n" hex SHA-256 of the body (28000 if not); bounded by evcharge.http_timeout, evcharge.http_connect_timeout and evcharge.http_max_bytes, waits as wait event Extension, stops when cancelled';
REVOKE ALL ON FUNCTION evcharge.fetch_statement(text, date, text, text) FROM PUBLIC;

CREATE TABLE evcharge.statement_source (
	source_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	kind text NOT NULL CHECK (kind IN ('provider', 'partner')),
	partner_id bigint REFERENCES evcharge.partner,
	url_template text NOT NULL CHECK (evcharge.check_statement_url(url_template)),
	secret text NOT NULL CHECK (secret <> ''),
	tz evcharge.time_zone NOT NULL DEFAULT 'Asia/Shanghai',
	enabled boolean NOT NULL DEFAULT true,
	name text NOT NULL CONSTRAINT statement_source_name_key UNIQUE
		CONSTRAINT statement_source_name_check CHECK (evcharge.is_statement_source_name(name)),
	CHECK ((kind = 'partner') = (partner_id IS NOT NULL))
);
REVOKE ALL ON evcharge.statement_source FROM PUBLIC;
COMMENT ON TABLE evcharge.statement_source IS
	'Where the payment provider''s and each partner''s daily statement is fetched, and the secret that signs it; readable by the extension''s owner only';
COMMENT ON COLUMN evcharge.statement_source.source_id IS 'row id';
COMMENT ON COLUMN evcharge.statement_source.operator_id IS 'whose statement';
COMMENT ON COLUMN evcharge.statement_source.kind IS 'provider (top-ups paid) or partner (bills the partner has)';
COMMENT ON COLUMN evcharge.statement_source.partner_id IS 'the partner, for kind partner';
COMMENT ON COLUMN evcharge.statement_source.url_template IS 'https URL with {day} replaced by the day asked for (YYYY-MM-DD); plain http is refused (check_statement_url)';
COMMENT ON COLUMN evcharge.statement_source.secret IS 'the shared secret of HMAC-SHA256 signatures, both ways';
COMMENT ON COLUMN evcharge.statement_source.tz IS 'the zone in which the statement''s days are counted';
COMMENT ON COLUMN evcharge.statement_source.enabled IS 'whether run_reconciliation() fetches it';
COMMENT ON COLUMN evcharge.statement_source.name IS 'the name agreed with the partner or provider, unique; its statements are signed for this name and their day';

-- Every row checked with an error that says what is wrong and never shows
-- the row: a CHECK or NOT NULL violation would print the whole row, the
-- secret with it, to the client and the server log.  The CHECKs stay as
-- the declared rules (the same functions); this only speaks first.
CREATE FUNCTION evcharge.statement_source_check() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NEW.kind IS NULL OR NEW.kind NOT IN ('provider', 'partner') THEN
		RAISE EXCEPTION 'statement source kind "%" is not provider or partner', NEW.kind
			USING ERRCODE = 'check_violation',
			      HINT = 'provider: the payment provider''s top-ups; partner: a partner''s bills (partner_id set).';
	END IF;
	IF (NEW.kind = 'partner') <> (NEW.partner_id IS NOT NULL) THEN
		RAISE EXCEPTION 'a % statement source %', NEW.kind,
			CASE WHEN NEW.kind = 'partner' THEN 'needs a partner_id' ELSE 'takes no partner_id' END
			USING ERRCODE = 'check_violation',
			      HINT = 'Set partner_id for kind partner, and only for it.';
	END IF;
	IF NEW.name IS NULL THEN
		RAISE EXCEPTION 'the statement source of "%" has no name', NEW.url_template
			USING ERRCODE = 'not_null_violation',
			      DETAIL = 'The name is agreed with the partner and is a line of what its statements'' signature covers.',
			      HINT = '1 to 63 letters, digits, ".", "-" or "_", starting with a letter or digit, such as wxpay-12.';
	END IF;
	IF NOT evcharge.is_statement_source_name(NEW.name) THEN
		RAISE EXCEPTION 'statement source name "%" is not valid', NEW.name
			USING ERRCODE = 'check_violation',
			      DETAIL = 'The name is agreed with the partner and is a line of what its statements'' signature covers.',
			      HINT = '1 to 63 letters, digits, ".", "-" or "_", starting with a letter or digit, such as wxpay-12.';
	END IF;
	IF NEW.url_template IS NULL THEN
		RAISE EXCEPTION 'statement source "%" has no url_template', NEW.name
			USING ERRCODE = 'not_null_violation',
			      HINT = 'An https URL with {day}, such as https://partner.example/statements/{day}.csv.';
	END IF;
	PERFORM evcharge.check_statement_url(NEW.url_template);
	IF NEW.secret IS NULL OR ((TG_OP = 'INSERT' OR NEW.secret IS DISTINCT FROM OLD.secret) AND length(NEW.secret) < 16) THEN
		RAISE EXCEPTION 'the secret of statement source "%" is % characters long', NEW.name, coalesce(length(NEW.secret), 0)
			USING ERRCODE = CASE WHEN NEW.secret IS NULL THEN 'not_null_violation' ELSE 'check_violation' END,
			      DETAIL = 'It keys the HMAC-SHA256 signatures of requests and statements; a short one can be guessed.',
			      HINT = 'Agree a random secret of at least 16 characters with the partner, such as the output of openssl rand -base64 24.';
	END IF;
	IF NEW.operator_id IS NULL THEN
		RAISE EXCEPTION 'statement source "%" has no operator_id', NEW.name
			USING ERRCODE = 'not_null_violation', HINT = 'Whose statement it is: an operator of evcharge.operator.';
	END IF;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.statement_source_check() IS
	'trigger: checks a statement source before it is stored (kind and partner, name, https URL template, a secret of at least 16 characters when set) with errors that never show the secret';
CREATE TRIGGER statement_source_check BEFORE INSERT OR UPDATE ON evcharge.statement_source
	FOR EACH ROW EXECUTE FUNCTION evcharge.statement_source_check();
COMMENT ON TRIGGER statement_source_check ON evcharge.statement_source IS
	'clear errors for a statement source, before the CHECKs (whose violation would print the secret)';

CREATE TABLE evcharge.provider_statement_line (
	source_id bigint NOT NULL REFERENCES evcharge.statement_source,
	day date NOT NULL,
	provider_txn text NOT NULL,
	account_id bigint NOT NULL,
	amount numeric(14, 2) NOT NULL,
	paid_at timestamptz NOT NULL,
	PRIMARY KEY (source_id, provider_txn)
);
COMMENT ON TABLE evcharge.provider_statement_line IS 'The payment provider''s statement as fetched: one line per top-up it was paid';
COMMENT ON COLUMN evcharge.provider_statement_line.source_id IS 'where it came from';
COMMENT ON COLUMN evcharge.provider_statement_line.day IS 'the statement''s day';
COMMENT ON COLUMN evcharge.provider_statement_line.provider_txn IS 'the provider''s transaction id (the top-up''s key)';
COMMENT ON COLUMN evcharge.provider_statement_line.account_id IS 'the wallet it was for';
COMMENT ON COLUMN evcharge.provider_statement_line.amount IS 'yuan paid';
COMMENT ON COLUMN evcharge.provider_statement_line.paid_at IS 'when the member paid';

CREATE TABLE evcharge.partner_statement_line (
	source_id bigint NOT NULL REFERENCES evcharge.statement_source,
	day date NOT NULL,
	order_no text NOT NULL,
	energy_wh bigint NOT NULL,
	total numeric(14, 2) NOT NULL,
	PRIMARY KEY (source_id, order_no)
);
COMMENT ON TABLE evcharge.partner_statement_line IS 'A partner''s statement as fetched: one line per bill the partner has';
COMMENT ON COLUMN evcharge.partner_statement_line.source_id IS 'where it came from';
COMMENT ON COLUMN evcharge.partner_statement_line.day IS 'the statement''s day';
COMMENT ON COLUMN evcharge.partner_statement_line.order_no IS 'the order, by our order number or by the partner''s own (charge_session.partner_order_no)';
COMMENT ON COLUMN evcharge.partner_statement_line.energy_wh IS 'the energy the partner has, Wh';
COMMENT ON COLUMN evcharge.partner_statement_line.total IS 'the amount the partner has, yuan';

CREATE TABLE evcharge.reconciliation_finding (
	finding_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	source_id bigint NOT NULL REFERENCES evcharge.statement_source,
	day date NOT NULL,
	kind text NOT NULL CHECK (kind IN ('paid_not_credited', 'credited_not_paid', 'amount_differs',
		'missing_at_partner', 'missing_here', 'energy_differs', 'negative_amount', 'fetch_failed')),
	key text NOT NULL,
	ours jsonb,
	theirs jsonb,
	action text NOT NULL,
	found_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT reconciliation_finding_once UNIQUE (source_id, day, kind, key)
);
COMMENT ON TABLE evcharge.reconciliation_finding IS
	'What a reconciliation found, by kind, one row per difference (found again, it is not repeated), with both sides'' figures and what was done';
COMMENT ON COLUMN evcharge.reconciliation_finding.finding_id IS 'row id';
COMMENT ON COLUMN evcharge.reconciliation_finding.source_id IS 'the statement';
COMMENT ON COLUMN evcharge.reconciliation_finding.day IS 'the day reconciled';
COMMENT ON COLUMN evcharge.reconciliation_finding.kind IS
	'paid_not_credited, credited_not_paid, amount_differs (provider); missing_at_partner, missing_here, energy_differs, amount_differs, negative_amount (partner); fetch_failed';
COMMENT ON COLUMN evcharge.reconciliation_finding.key IS 'the provider transaction or order number';
COMMENT ON COLUMN evcharge.reconciliation_finding.ours IS 'our figures';
COMMENT ON COLUMN evcharge.reconciliation_finding.theirs IS 'their figures';
COMMENT ON COLUMN evcharge.reconciliation_finding.action IS 'what evcharge did (credited) or what the operator should do';
COMMENT ON COLUMN evcharge.reconciliation_finding.found_at IS 'when';

-- Fetches a source's statement of a day and stores its lines.  The body is
-- CSV with a header: provider_txn,account_id,amount,paid_at for a
-- provider; order_no,energy_wh,total for a partner.
CREATE FUNCTION evcharge.import_statement(p_source_id bigint, p_day date) RETURNS int
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	src evcharge.statement_source;
	body text;
	lines text[];
	f text[];
	i int;
	n int := 0;
	header text;
BEGIN
	SELECT * INTO src FROM evcharge.statement_source s WHERE s.source_id = p_source_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'statement source % does not exist', p_source_id
			USING ERRCODE = 'no_data_found', HINT = 'Sources are in evcharge.statement_source.';
	END IF;
	body := evcharge.fetch_statement(src.name, p_day, src.url_template, src.secret);
	lines := regexp_split_to_array(rtrim(replace(body, E'\r', ''), E'\n'), E'\n');
	header := CASE src.kind WHEN 'provider' THEN 'provider_txn,account_id,amount,paid_at' ELSE 'order_no,energy_wh,total' END;
	IF lines[1] IS DISTINCT FROM header THEN
		RAISE EXCEPTION 'the % statement of % for % does not start with its header', src.kind, p_day, src.url_template
			USING ERRCODE = 'invalid_text_representation',
			      DETAIL = format('Its first line is "%s".', left(coalesce(lines[1], ''), 200)),
			      HINT = format('A %s statement is CSV starting with "%s".', src.kind, header);
	END IF;
	FOR i IN 2 .. coalesce(array_length(lines, 1), 0) LOOP
		CONTINUE WHEN lines[i] = '';
		f := string_to_array(lines[i], ',');
		BEGIN
			IF src.kind = 'provider' THEN
				IF array_length(f, 1) <> 4 THEN
					RAISE EXCEPTION USING ERRCODE = 'invalid_text_representation', MESSAGE = '4 fields expected';
				END IF;
				INSERT INTO evcharge.provider_statement_line VALUES (src.source_id, p_day, f[1], f[2]::bigint,
					f[3]::numeric(14, 2), f[4]::timestamptz)
				ON CONFLICT (source_id, provider_txn) DO NOTHING;
			ELSE
				IF array_length(f, 1) <> 3 THEN
					RAISE EXCEPTION USING ERRCODE = 'invalid_text_representation', MESSAGE = '3 fields expected';
				END IF;
				INSERT INTO evcharge.partner_statement_line VALUES (src.source_id, p_day, f[1], f[2]::bigint,
					f[3]::numeric(14, 2))
				ON CONFLICT (source_id, order_no) DO NOTHING;
			END IF;
		EXCEPTION WHEN invalid_text_representation OR invalid_datetime_format OR numeric_value_out_of_range
		          OR datetime_field_overflow THEN
			RAISE EXCEPTION 'line % of the % statement of % cannot be read: %', i, src.kind, p_day, SQLERRM
				USING ERRCODE = 'invalid_text_representation',
				      DETAIL = format('The line is "%s".', left(lines[i], 200)),
				      HINT = format('Fields: %s.', header);
		END;
		n := n + 1;
	END LOOP;
	RETURN n;
END $$;
COMMENT ON FUNCTION evcharge.import_statement(bigint, date) IS
	'fetches a source''s statement of a day, signed for that source and day (fetch_statement), and stores its lines; a line that cannot be read fails the import, naming it; returns the number of lines';

CREATE FUNCTION evcharge.reconcile_statement(p_source_id bigint, p_day date, p_apply boolean DEFAULT true)
RETURNS SETOF evcharge.reconciliation_finding
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	src evcharge.statement_source;
	d_from timestamptz;
	d_to timestamptz;
	r record;
	tol bigint;
	pct numeric;
BEGIN
	SELECT * INTO src FROM evcharge.statement_source s WHERE s.source_id = p_source_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'statement source % does not exist', p_source_id
			USING ERRCODE = 'no_data_found', HINT = 'Sources are in evcharge.statement_source.';
	END IF;
	PERFORM evcharge.check_time(p_day, 'reconcile_statement(p_day)');
	d_from := p_day::timestamp AT TIME ZONE src.tz;
	d_to := (p_day + 1)::timestamp AT TIME ZONE src.tz;
	IF to_regclass('pg_temp.evcharge_finding') IS NULL THEN
		CREATE TEMP TABLE evcharge_finding (kind text, key text, ours jsonb, theirs jsonb, action text) ON COMMIT DROP;
	ELSE
		TRUNCATE evcharge_finding;
	END IF;

	IF src.kind = 'provider' THEN
		-- Paid at the provider, never credited here: credit it now (the
		-- provider confirmed it), unless only reporting.
		FOR r IN
			SELECT l.* FROM evcharge.provider_statement_line l
			WHERE l.source_id = src.source_id AND l.day = p_day
			  AND NOT EXISTS (SELECT 1 FROM evcharge.ledger_txn t WHERE t.kind = 'top_up' AND t.idem_key = l.provider_txn)
			ORDER BY l.provider_txn
		LOOP
			IF p_apply THEN
				PERFORM evcharge.top_up(r.account_id, r.amount, r.provider_txn);
			END IF;
			INSERT INTO evcharge_finding VALUES ('paid_not_credited', r.provider_txn, NULL,
				jsonb_build_object('account_id', r.account_id, 'amount', r.amount, 'paid_at', r.paid_at),
				CASE WHEN p_apply THEN 'credited to the wallet now' ELSE 'credit it: top_up(account_id, amount, provider_txn)' END);
		END LOOP;
		INSERT INTO evcharge_finding
		SELECT 'credited_not_paid', t.idem_key, t.result, NULL, 'ask the provider: credited here, not in its statement'
		FROM evcharge.ledger_txn t
		WHERE t.kind = 'top_up' AND t.operator_id = src.operator_id AND t.created_at >= d_from AND t.created_at < d_to
		  AND NOT EXISTS (SELECT 1 FROM evcharge.provider_statement_line l
		                  WHERE l.source_id = src.source_id AND l.provider_txn = t.idem_key);
		INSERT INTO evcharge_finding
		SELECT 'amount_differs', l.provider_txn, t.result,
		       jsonb_build_object('account_id', l.account_id, 'amount', l.amount), 'ask the provider: the amounts differ'
		FROM evcharge.provider_statement_line l
		JOIN evcharge.ledger_txn t ON t.kind = 'top_up' AND t.idem_key = l.provider_txn
		WHERE l.source_id = src.source_id AND l.day = p_day
		  AND ((t.result->>'amount')::numeric <> l.amount OR (t.result->>'account_id')::bigint <> l.account_id);
	ELSE
		SELECT p.energy_tolerance_wh, p.energy_tolerance_pct INTO tol, pct
		FROM evcharge.anomaly_policy p WHERE p.operator_id = src.operator_id;
		INSERT INTO evcharge_finding
		SELECT 'missing_at_partner', b.order_no,
		       jsonb_build_object('energy_wh', b.energy_wh, 'total', b.total, 'ended_at', b.ended_at)
		       || CASE WHEN cs.partner_order_no IS NOT NULL THEN jsonb_build_object('partner_order_no', cs.partner_order_no)
		               ELSE '{}' END, NULL,
		       'send the partner the order: its app may have lost the session'
		FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
		WHERE cs.partner_id = src.partner_id AND b.ended_at >= d_from AND b.ended_at < d_to
		  AND NOT EXISTS (SELECT 1 FROM evcharge.partner_statement_line l
		                  WHERE l.source_id = src.source_id AND l.order_no IN (b.order_no, cs.partner_order_no));
		-- A line names the bill by our order number or by the partner's own
		-- (Didi keys its statement by its 27 digits): the partner's bill of
		-- that partner order number, else the one of that order number.
		INSERT INTO evcharge_finding
		WITH m AS (
			SELECT l.order_no AS key, l.energy_wh, l.total, b.order_no, b.energy_wh AS our_wh, b.total AS our_total,
			       b.partner_order_no
			FROM evcharge.partner_statement_line l
			LEFT JOIN LATERAL (
				SELECT bb.order_no, bb.energy_wh, bb.total, cs.partner_order_no
				FROM evcharge.charge_session cs JOIN evcharge.bill bb USING (order_no)
				WHERE cs.partner_id = src.partner_id AND (cs.partner_order_no = l.order_no OR cs.order_no = l.order_no)
				ORDER BY cs.partner_order_no = l.order_no DESC NULLS LAST
				LIMIT 1) b ON true
			WHERE l.source_id = src.source_id AND l.day = p_day)
		SELECT 'missing_here', m.key, NULL, jsonb_build_object('energy_wh', m.energy_wh, 'total', m.total),
		       'no such bill here for this partner: check the order number with the partner'
		FROM m WHERE m.order_no IS NULL
		UNION ALL
		SELECT CASE WHEN m.total < 0 THEN 'negative_amount'
		            WHEN abs(m.energy_wh - m.our_wh) > greatest(tol, greatest(m.energy_wh, m.our_wh) * pct / 100)
		                 THEN 'energy_differs'
		            ELSE 'amount_differs' END,
		       m.key, jsonb_build_object('energy_wh', m.our_wh, 'total', m.our_total)
		              || CASE WHEN m.partner_order_no IS NOT NULL
		                      THEN jsonb_build_object('order_no', m.order_no, 'partner_order_no', m.partner_order_no)
		                      ELSE '{}' END,
		       jsonb_build_object('energy_wh', m.energy_wh, 'total', m.total),
		       'compare with session_evidence(order_no) and agree the figure with the partner'
		FROM m
		WHERE m.order_no IS NOT NULL
		  AND (m.total < 0 OR m.total <> m.our_total
		       OR abs(m.energy_wh - m.our_wh) > greatest(tol, greatest(m.energy_wh, m.our_wh) * pct / 100));
	END IF;

	RETURN QUERY
	WITH ins AS (
		INSERT INTO evcharge.reconciliation_finding AS x (source_id, day, kind, key, ours, theirs, action)
		SELECT src.source_id, p_day, f.kind, f.key, f.ours, f.theirs, f.action FROM evcharge_finding f
		ORDER BY f.kind, f.key
		ON CONFLICT ON CONSTRAINT reconciliation_finding_once DO NOTHING
		RETURNING x.*)
	SELECT * FROM ins ORDER BY ins.kind, ins.key;
END $$;
COMMENT ON FUNCTION evcharge.reconcile_statement(bigint, date, boolean) IS
	'compares a source''s stored statement of a day with the ledger (provider: top-ups paid but not credited, which are credited when p_apply, credited but not paid, amounts differing) or with the partner''s bills, a line matching by our order number or the partner''s own (missing at the partner, missing here, energy or amount differing, negative amounts); records and returns the new findings';

-- The nightly job that calls these, run_reconciliation(), is in jobs.sql
-- with its watermarks.

SELECT pg_catalog.pg_extension_config_dump('evcharge.statement_source', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.provider_statement_line', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.partner_statement_line', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.reconciliation_finding', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.statement_source_source_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.reconciliation_finding_finding_id_seq', '');
