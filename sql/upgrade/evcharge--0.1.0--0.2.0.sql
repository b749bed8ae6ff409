-- evcharge 0.1.0 -> 0.2.0: ALTER EXTENSION evcharge UPDATE TO '0.2.0'.
-- Every change that 0.2.0 makes to the extension's SQL, in the order of the
-- install files it belongs to.  test/integration/upgrade.sh installs 0.1.0,
-- runs this script and compares the catalogue with a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION evcharge UPDATE TO '0.2.0'" to load this file. \quit

-- == types and engines: time zones, tariff grammar, exact engine arithmetic ==



-- == money: references, plausibility limits, one operator per transaction ==



-- == settlement without deadlocks ==



-- == statements over HTTPS only, signed with source and day ==

-- The URL rule, the source name and the fetch that checks a statement's
-- signature over source, day and body (src/http_fetch.c).
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

-- A source fetched over plain http in 0.1.0 is moved to https and disabled
-- (never fetched in plain text again, nor silently from a server that may
-- not serve https): the operator checks the address and enables it.
DO $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT s.source_id, s.url_template FROM evcharge.statement_source s
	         WHERE s.url_template ILIKE 'http://%' ORDER BY s.source_id LOOP
		UPDATE evcharge.statement_source s
		SET url_template = 'https://' || substr(r.url_template, 8), enabled = false
		WHERE s.source_id = r.source_id;
		RAISE WARNING 'statement source % was fetched over plain http: its URL is now https and it is disabled', r.source_id
			USING DETAIL = format('It was "%s".', r.url_template),
			      HINT = 'Check that the partner serves the statement over https, then UPDATE evcharge.statement_source SET enabled = true.';
	END LOOP;
END $$;
ALTER TABLE evcharge.statement_source DROP CONSTRAINT statement_source_url_template_check;
ALTER TABLE evcharge.statement_source
	ADD CONSTRAINT statement_source_url_template_check CHECK (evcharge.check_statement_url(url_template));

-- Every source gets a name, which its statements are now signed for; the
-- sources of 0.1.0 are named source-<id> (tell the partner, or rename).
ALTER TABLE evcharge.statement_source ADD COLUMN name text;
UPDATE evcharge.statement_source SET name = 'source-' || source_id;
ALTER TABLE evcharge.statement_source ALTER COLUMN name SET NOT NULL;
ALTER TABLE evcharge.statement_source ADD CONSTRAINT statement_source_name_key UNIQUE (name);
ALTER TABLE evcharge.statement_source
	ADD CONSTRAINT statement_source_name_check CHECK (evcharge.is_statement_source_name(name));
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM evcharge.statement_source) THEN
		RAISE WARNING 'statements must now be signed for their source and day: every source''s partner must sign the new way'
			USING DETAIL = 'X-Signature is HMAC-SHA256 of "evcharge-statement-v1", the source''s name, the day and the SHA-256 of the body (docs/money.md, "Signatures"); the sources are named source-<id>.',
			      HINT = 'Give each partner its source''s name (or set the name agreed with it) before the next reconciliation.';
	END IF;
END $$;
COMMENT ON COLUMN evcharge.statement_source.url_template IS 'https URL with {day} replaced by the day asked for (YYYY-MM-DD); plain http is refused (check_statement_url)';
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

CREATE OR REPLACE FUNCTION evcharge.import_statement(p_source_id bigint, p_day date) RETURNS int
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

-- 0.1.0's fetch, whose signature covered the body alone: a signed statement
-- of one day could be replayed as another's.  Its C entry point stays for
-- 0.1.0's install script.
DROP FUNCTION evcharge.signed_get(text, text);


-- == backup and restore, the drop guard ==



-- == jobs: watermarks, schedules kept, time arguments checked ==



-- == the OCPP bridge: registry, transaction ids, commands ==



-- == reference docs ==



-- == release ==
