-- evcharge 0.2.0 -> 0.3.0: ALTER EXTENSION evcharge UPDATE TO '0.3.0'.
-- Every change that 0.3.0 makes to the extension's SQL, one section per
-- topic, in the order of the install files it belongs to.  A function
-- changed by several sections is created once, in the last of them.
-- test/integration/upgrade.sh installs 0.1.0 and 0.2.0, updates each and
-- compares the catalogue with a fresh 0.3.0 install.
\echo Use "ALTER EXTENSION evcharge UPDATE TO '0.3.0'" to load this file. \quit

-- == issue 16 item 3: refund fees by band, per operator ==
-- Refunds.  What a refund costs is by band: finance's rule for a bank
-- transfer is 6 yuan under 10,000 yuan and 12 yuan from 10,000 to 100,000
-- yuan, plus the payment provider's 0.6 %, which is all a provider refund
-- costs.  Each operator has its own bands (refund_fee_bands), made with the
-- defaults below when the operator is registered; a refund beyond the last
-- band of its method is refused.

-- The defaults, the one place their figures are written: a new operator's
-- rows, and refund_fee(amount, method) without an operator.
CREATE FUNCTION evcharge.default_refund_fee_bands()
RETURNS TABLE (method text, up_to numeric[], fixed_fee numeric[], rate numeric)
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT 'bank', '{9999.99,100000.00}'::numeric[], '{6.00,12.00}'::numeric[], 0.006
	UNION ALL
	SELECT 'provider', '{999999999999.99}'::numeric[], '{0.00}'::numeric[], 0.006;
END;
COMMENT ON FUNCTION evcharge.default_refund_fee_bands() IS
	'the refund fee bands a new operator gets (finance''s rule): bank 6 yuan up to 9,999.99 yuan and 12 yuan up to 100,000.00, plus 0.6 %; provider 0.6 % with no band limit short of a trillion';

-- Whether a method's bands are well formed: one limit and one fixed fee per
-- band, limits in yuan and fen rising from above 0, fees of 0 or more.
CREATE FUNCTION evcharge.refund_fee_bands_valid(p_up_to numeric[], p_fixed_fee numeric[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce(cardinality(p_up_to) >= 1 AND cardinality(p_up_to) = cardinality(p_fixed_fee)
	       AND array_ndims(p_up_to) = 1 AND array_ndims(p_fixed_fee) = 1
	       AND NOT EXISTS (
	           SELECT 1 FROM unnest(p_up_to, p_fixed_fee) WITH ORDINALITY AS b(up_to, fixed_fee, n)
	           WHERE b.up_to IS NULL OR b.fixed_fee IS NULL OR b.up_to IN ('NaN', 'Infinity')
	              OR b.fixed_fee IN ('NaN', 'Infinity') OR b.fixed_fee < 0 OR b.up_to <> trunc(b.up_to, 2)
	              OR b.up_to > 999999999999.99
	              OR b.up_to <= coalesce(p_up_to[b.n - 1], 0)), false);
END;
COMMENT ON FUNCTION evcharge.refund_fee_bands_valid(numeric[], numeric[]) IS
	'true when a method''s refund fee bands are well formed: as many fixed fees as limits (at least one), limits in yuan and fen rising from above 0 and below a trillion, fixed fees finite and 0 or more; the check of refund_fee_bands';

CREATE TABLE evcharge.refund_fee_bands (
	operator_id bigint NOT NULL REFERENCES evcharge.operator ON DELETE CASCADE,
	method text NOT NULL CHECK (method IN ('bank', 'provider')),
	up_to numeric(14, 2)[] NOT NULL,
	fixed_fee numeric(10, 2)[] NOT NULL,
	rate numeric(6, 5) NOT NULL CHECK (rate >= 0 AND rate < 1),
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (operator_id, method),
	CONSTRAINT refund_fee_bands_valid CHECK (evcharge.refund_fee_bands_valid(up_to, fixed_fee))
);
COMMENT ON TABLE evcharge.refund_fee_bands IS
	'What a refund costs, per operator and method: bands of amounts, each with its fixed fee, plus a rate of the amount, truncated to the fen; a refund above the last band is refused; the defaults (default_refund_fee_bands) are made for every new operator';
COMMENT ON COLUMN evcharge.refund_fee_bands.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.refund_fee_bands.method IS 'bank or provider';
COMMENT ON COLUMN evcharge.refund_fee_bands.up_to IS
	'the bands'' upper limits, yuan, rising: band n holds the amounts above limit n-1 (from 0 for the first) up to limit n included; a refund above the last is refused';
COMMENT ON COLUMN evcharge.refund_fee_bands.fixed_fee IS 'the fixed fee of each band, yuan (bank: {6.00,12.00})';
COMMENT ON COLUMN evcharge.refund_fee_bands.rate IS 'the part of the amount added to the fixed fee (0.006: the provider''s 0.6 %)';
COMMENT ON COLUMN evcharge.refund_fee_bands.updated_at IS 'last change';
COMMENT ON CONSTRAINT refund_fee_bands_valid ON evcharge.refund_fee_bands IS
	'the bands are well formed (refund_fee_bands_valid): a fixed fee per limit, limits rising';

CREATE FUNCTION evcharge.operator_refund_fee_default() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	INSERT INTO evcharge.refund_fee_bands (operator_id, method, up_to, fixed_fee, rate)
	SELECT n.operator_id, d.method, d.up_to, d.fixed_fee, d.rate
	FROM new_rows n CROSS JOIN evcharge.default_refund_fee_bands() d
	ON CONFLICT (operator_id, method) DO NOTHING;
	RETURN NULL;
END $$;
COMMENT ON FUNCTION evcharge.operator_refund_fee_default() IS
	'trigger: every new operator gets refund_fee_bands rows with the defaults (default_refund_fee_bands)';
CREATE TRIGGER operator_refund_fee_default AFTER INSERT ON evcharge.operator
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION evcharge.operator_refund_fee_default();
COMMENT ON TRIGGER operator_refund_fee_default ON evcharge.operator IS 'every new operator gets its refund fee bands with the defaults';
-- The operators registered before 0.3.0 get the defaults too.
INSERT INTO evcharge.refund_fee_bands (operator_id, method, up_to, fixed_fee, rate)
SELECT o.operator_id, d.method, d.up_to, d.fixed_fee, d.rate
FROM evcharge.operator o CROSS JOIN evcharge.default_refund_fee_bands() d
ORDER BY o.operator_id, d.method;

-- As policy_replaces_default (anomaly.sql), per operator and method: a
-- restore brings the dumped rows after the operators made theirs, and each
-- replaces the default row of its own method only, so that two methods
-- restored in one transaction (pg_restore --single-transaction, where the
-- operator and both rows share one xmin) do not replace each other.
CREATE FUNCTION evcharge.refund_fee_bands_replace_default() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	DELETE FROM evcharge.refund_fee_bands b USING evcharge.operator o
	WHERE b.operator_id = NEW.operator_id AND b.method = NEW.method
	  AND o.operator_id = b.operator_id AND b.xmin = o.xmin;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.refund_fee_bands_replace_default() IS
	'trigger on refund_fee_bands: a row inserted for an operator and method replaces the default row of that method made with the operator if nobody changed it since (a restore brings the dumped rows after the operators)';
CREATE TRIGGER refund_fee_bands_replace_default BEFORE INSERT ON evcharge.refund_fee_bands
	FOR EACH ROW EXECUTE FUNCTION evcharge.refund_fee_bands_replace_default();
COMMENT ON TRIGGER refund_fee_bands_replace_default ON evcharge.refund_fee_bands IS
	'an inserted row replaces the operator''s default row of its method if that is untouched: pg_restore loads the dumped bands after the operators made theirs';

-- The fee of an amount under one method's bands: the band's fixed fee plus
-- the rate of the amount, truncated to the fen; above the last band, an
-- error that gives the limit.  The one rule both refund_fee()s apply.
CREATE FUNCTION evcharge.refund_fee_in_bands(p_amount numeric, p_method text, p_up_to numeric[],
	p_fixed_fee numeric[], p_rate numeric, p_whose text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n int;
BEGIN
	FOR n IN 1 .. coalesce(cardinality(p_up_to), 0) LOOP
		IF p_amount <= p_up_to[n] THEN
			RETURN trunc(p_fixed_fee[n] + p_amount * p_rate, 2);
		END IF;
	END LOOP;
	RAISE EXCEPTION 'a % refund of % yuan is above the last fee band', p_method, p_amount
		USING ERRCODE = 'invalid_parameter_value',
		      DETAIL = format('%s end at %s yuan (up_to %s).', p_whose,
		                      coalesce(p_up_to[cardinality(p_up_to)]::text, 'none'), coalesce(p_up_to::text, 'NULL')),
		      HINT = format('Refund at most %s yuan at a time by %s (request_refund takes an amount), or another method.',
		                    coalesce(p_up_to[cardinality(p_up_to)]::text, '0'), p_method);
END $$;
COMMENT ON FUNCTION evcharge.refund_fee_in_bands(numeric, text, numeric[], numeric[], numeric, text) IS
	'Internal: the fee of an amount under one method''s bands (the fixed fee of the first band whose limit the amount does not exceed, plus the rate of the amount, truncated to the fen); 22023 above the last band, naming its limit';

CREATE OR REPLACE FUNCTION evcharge.unknown_refund_method(method text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION 'refund method "%" is not known', coalesce(method, 'NULL')
		USING ERRCODE = 'invalid_parameter_value',
		      HINT = 'Use bank (6 or 12 yuan by band + 0.6 %) or provider (0.6 %); evcharge.refund_fee_bands has each operator''s fees.';
END $$;
COMMENT ON FUNCTION evcharge.unknown_refund_method(text) IS 'raises the error for a refund method other than bank or provider';

-- Checks a refund's amount and method for refund_fee().
CREATE FUNCTION evcharge.check_refund(p_amount numeric, p_method text) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF p_amount IS NULL OR p_amount IN ('NaN', 'Infinity', '-Infinity') OR p_amount < 0 OR p_amount > 999999999999.99 THEN
		RAISE EXCEPTION 'refund amount % is not possible', coalesce(p_amount::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A refund is a finite amount of 0 or more yuan, below a trillion.',
			      HINT = 'A refund is 0 or more yuan, e.g. 1000.00.';
	END IF;
	IF p_method IS NULL OR p_method NOT IN ('bank', 'provider') THEN
		PERFORM evcharge.unknown_refund_method(p_method);
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.check_refund(numeric, text) IS
	'Internal: raises 22023 for a refund amount that is negative, NaN, infinite or beyond a trillion, or a method other than bank or provider (unknown_refund_method)';

-- The fee under the default bands, what a new operator gets.
CREATE OR REPLACE FUNCTION evcharge.refund_fee(amount numeric, method text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	d record;
BEGIN
	PERFORM evcharge.check_refund(refund_fee.amount, refund_fee.method);
	SELECT * INTO d FROM evcharge.default_refund_fee_bands() x WHERE x.method = refund_fee.method;
	RETURN evcharge.refund_fee_in_bands(refund_fee.amount, refund_fee.method, d.up_to, d.fixed_fee, d.rate,
		format('The default %s bands', refund_fee.method));
END $$;
COMMENT ON FUNCTION evcharge.refund_fee(numeric, text) IS
	'the fee of a refund under the default bands (default_refund_fee_bands): bank 6 yuan up to 9,999.99 and 12 yuan up to 100,000.00, plus 0.6 %; provider 0.6 %; truncated to the fen (1000 by bank: 12.00; 20000 by bank: 132.00); 22023 for an amount that is negative, NaN or infinite, an unknown method or an amount above the last band';

-- The fee under an operator's own bands: what its refunds cost.
CREATE FUNCTION evcharge.refund_fee(operator_id bigint, amount numeric, method text) RETURNS numeric
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	b evcharge.refund_fee_bands;
BEGIN
	PERFORM evcharge.check_refund(refund_fee.amount, refund_fee.method);
	SELECT * INTO b FROM evcharge.refund_fee_bands f
	WHERE f.operator_id = refund_fee.operator_id AND f.method = refund_fee.method;
	IF NOT FOUND THEN
		IF NOT EXISTS (SELECT 1 FROM evcharge.operator o WHERE o.operator_id = refund_fee.operator_id) THEN
			RAISE EXCEPTION 'operator % is not registered', coalesce(refund_fee.operator_id::text, 'NULL')
				USING ERRCODE = 'no_data_found', HINT = 'Operators are in evcharge.operator.';
		END IF;
		RAISE EXCEPTION 'operator % has no % refund fee bands', refund_fee.operator_id, refund_fee.method
			USING ERRCODE = 'no_data_found',
			      DETAIL = 'Its row of refund_fee_bands for this method was deleted; no refund by it can be priced.',
			      HINT = 'Insert the bands again, e.g. the defaults: SELECT * FROM evcharge.default_refund_fee_bands().';
	END IF;
	RETURN evcharge.refund_fee_in_bands(refund_fee.amount, refund_fee.method, b.up_to, b.fixed_fee, b.rate,
		format('Operator %s''s %s bands (refund_fee_bands)', refund_fee.operator_id, refund_fee.method));
END $$;
COMMENT ON FUNCTION evcharge.refund_fee(bigint, numeric, text) IS
	'the fee of a refund under the operator''s refund_fee_bands (the band''s fixed fee plus the rate of the amount, truncated to the fen; with the defaults 20000 by bank is 132.00); 22023 for an amount that is negative, NaN or infinite, an unknown method or an amount above the last band (its limit in the detail); P0002 for an operator not registered or without bands for the method';
COMMENT ON COLUMN evcharge.refund.fee IS 'refund_fee(operator, amount, method), by the operator''s bands: what the member pays for it';
SELECT pg_catalog.pg_extension_config_dump('evcharge.refund_fee_bands', '');

-- == issue 16 item 4: refunds of a bill, and partial refunds of a wallet ==
ALTER TABLE evcharge.ledger_txn DROP CONSTRAINT ledger_txn_kind_check,
	ADD CONSTRAINT ledger_txn_kind_check CHECK (kind IN ('top_up', 'manual_credit', 'bill', 'bill_adjustment', 'refund_request',
		'refund_approve', 'refund_reject', 'partner_payment', 'bill_refund'));
COMMENT ON COLUMN evcharge.ledger_txn.kind IS 'top_up, manual_credit, bill, bill_adjustment, refund_request, refund_approve, refund_reject, partner_payment, bill_refund';
COMMENT ON COLUMN evcharge.ledger_txn.order_no IS 'the bill, for bill, bill_adjustment and bill_refund';
COMMENT ON COLUMN evcharge.ledger_txn.note IS 'why, for manual credits, adjustments and refunds of bills';
ALTER TABLE evcharge.bill_revision DROP CONSTRAINT bill_revision_method_check,
	ADD CONSTRAINT bill_revision_method_check CHECK (method IN ('recompute', 'pile', 'platform', 'manual', 'pile_record', 'refund'));
COMMENT ON COLUMN evcharge.bill_revision.method IS 'recompute, pile, platform, manual (repair_bill), pile_record (a late pile record completed a bill made from heartbeats), or refund (refund_bill gave part or all of it back: bill_refund_id)';
-- Refunds of one bill ("refund everything charged for this order"): money
-- given back to whoever paid it, by support, with the reason.  Each refund
-- reverses part of the bill's revenue lines (bill_refund's three parts), so
-- what is left to refund on a bill, line by line, is what it charged less
-- what its refunds gave back.
CREATE TABLE evcharge.bill_refund (
	bill_refund_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	order_no text NOT NULL REFERENCES evcharge.bill,
	request_id text NOT NULL UNIQUE,
	account_id bigint NOT NULL REFERENCES evcharge.account,
	amount numeric(12, 2) NOT NULL CHECK (amount > 0 AND amount <> 'NaN'),
	energy_fee numeric(12, 2) NOT NULL CHECK (energy_fee >= 0 AND energy_fee <> 'NaN'),
	service_fee numeric(12, 2) NOT NULL CHECK (service_fee >= 0 AND service_fee <> 'NaN'),
	occupancy_fee numeric(12, 2) NOT NULL CHECK (occupancy_fee >= 0 AND occupancy_fee <> 'NaN'),
	reason text NOT NULL CHECK (btrim(reason) <> ''),
	txn_id bigint NOT NULL REFERENCES evcharge.ledger_txn,
	refunded_by text NOT NULL DEFAULT current_user,
	refunded_at timestamptz NOT NULL DEFAULT now(),
	CHECK (amount = energy_fee + service_fee + occupancy_fee)
);
CREATE INDEX bill_refund_order_idx ON evcharge.bill_refund (order_no);
COMMENT ON INDEX evcharge.bill_refund_order_idx IS 'the refunds of a bill';
COMMENT ON TABLE evcharge.bill_refund IS
	'Refunds of single bills (refund_bill): what was given back to the payer, taken from which revenue lines, why, by whom; at most what the bill charged; never changed';
COMMENT ON COLUMN evcharge.bill_refund.bill_refund_id IS 'refund number';
COMMENT ON COLUMN evcharge.bill_refund.order_no IS 'the bill';
COMMENT ON COLUMN evcharge.bill_refund.request_id IS 'the support request''s own id (check_key): the key of its ledger transaction, so a request is refunded once';
COMMENT ON COLUMN evcharge.bill_refund.account_id IS 'the account credited: whoever pays the bill (bill_parties): the member''s or department''s wallet, the partner''s deposit or receivable';
COMMENT ON COLUMN evcharge.bill_refund.amount IS 'yuan given back';
COMMENT ON COLUMN evcharge.bill_refund.energy_fee IS 'the part taken back from electricity revenue, yuan';
COMMENT ON COLUMN evcharge.bill_refund.service_fee IS 'the part taken back from service revenue (net of the coupon), yuan';
COMMENT ON COLUMN evcharge.bill_refund.occupancy_fee IS 'the part taken back from occupancy revenue, yuan';
COMMENT ON COLUMN evcharge.bill_refund.reason IS 'why, as support gave it';
COMMENT ON COLUMN evcharge.bill_refund.txn_id IS 'its ledger transaction (kind bill_refund)';
COMMENT ON COLUMN evcharge.bill_refund.refunded_by IS 'database user';
COMMENT ON COLUMN evcharge.bill_refund.refunded_at IS 'when';
CREATE TRIGGER bill_refund_immutable BEFORE UPDATE OR DELETE ON evcharge.bill_refund
	FOR EACH ROW EXECUTE FUNCTION evcharge.ledger_immutable();
COMMENT ON TRIGGER bill_refund_immutable ON evcharge.bill_refund IS 'refunds of bills cannot be changed or deleted';

-- The bill's audit trail points at its refunds: a refund is a revision of
-- the bill (method refund) that names it.
ALTER TABLE evcharge.bill_revision ADD COLUMN bill_refund_id bigint REFERENCES evcharge.bill_refund;
COMMENT ON COLUMN evcharge.bill_revision.bill_refund_id IS 'for method refund: the refund this revision records (bill_refund)';

-- What a bill's refunds took back so far, line by line.
CREATE FUNCTION evcharge.bill_refunded(p_order_no text, OUT energy_fee numeric, OUT service_fee numeric,
	OUT occupancy_fee numeric, OUT total numeric, OUT refunds bigint)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce(sum(r.energy_fee), 0), coalesce(sum(r.service_fee), 0), coalesce(sum(r.occupancy_fee), 0),
	       coalesce(sum(r.amount), 0), count(*)
	FROM evcharge.bill_refund r WHERE r.order_no = p_order_no;
END;
COMMENT ON FUNCTION evcharge.bill_refunded(text) IS
	'what the refunds of a bill gave back so far: per revenue line (electricity, service net of the coupon, occupancy), in all, and how many refunds';

-- A settled bill that a repair changed: the difference moves, as its own
-- transaction.  What a refund of the bill gave back is not given back
-- again: each revenue line moves as if it were at least what its refunds
-- took from it, so a repair after a refund never returns more than the
-- bill charged.
CREATE OR REPLACE FUNCTION evcharge.adjust_settled_bill(p_order_no text, old evcharge.bill, nb evcharge.bill, p_reason text)
RETURNS evcharge.ledger_txn
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	l record;
	p record;
	rf record;
BEGIN
	rf := evcharge.bill_refunded(p_order_no);
	IF rf.refunds = 0 THEN
		l := evcharge.bill_lines(p_order_no, nb.energy_fee - old.energy_fee, nb.service_fee - old.service_fee,
			nb.occupancy_fee - old.occupancy_fee, nb.discount - old.discount);
	ELSE
		l := evcharge.bill_lines(p_order_no,
			greatest(nb.energy_fee, rf.energy_fee) - greatest(old.energy_fee, rf.energy_fee),
			greatest(nb.service_fee - nb.discount, rf.service_fee) - greatest(old.service_fee - old.discount, rf.service_fee),
			greatest(nb.occupancy_fee, rf.occupancy_fee) - greatest(old.occupancy_fee, rf.occupancy_fee), 0);
	END IF;
	IF (SELECT bool_and(x = 0) FROM unnest(l.amounts) x) THEN
		RETURN NULL;
	END IF;
	SELECT * INTO p FROM evcharge.post_txn(l.operator_id, 'bill_adjustment', p_order_no || '#' || nb.revision,
		l.accounts, l.amounts, p_order_no, p_reason, jsonb_build_object('old_total', old.total, 'new_total', nb.total,
		'energy_wh_delta', nb.energy_wh - old.energy_wh));
	RETURN p.txn;
END $$;
COMMENT ON FUNCTION evcharge.adjust_settled_bill(text, evcharge.bill, evcharge.bill, text) IS
	'posts the difference between a settled bill and its repaired version (payer and revenue), once per revision; a revenue line a refund of the bill took from moves as if it were at least what the refund took (bill_refunded), so nothing is given back twice';

COMMENT ON TABLE evcharge.refund IS
	'A wallet refund: the amount asked for (at most the refundable balance; all of it when none is given) is frozen (moved to refunds payable) at request, paid out less the fee on approval, returned on rejection; one open request per wallet';
COMMENT ON COLUMN evcharge.refund.amount IS 'frozen amount, yuan: the whole balance, or the part the member asked for';
COMMENT ON COLUMN evcharge.finance_policy.void_coupons_on_refund IS 'whether a request to refund a member''s whole balance voids the member''s unused coupons';
-- request_refund takes an amount now: a new signature.
DROP FUNCTION evcharge.request_refund(bigint, text);
CREATE FUNCTION evcharge.request_refund(account_id bigint, method text, amount numeric DEFAULT NULL)
RETURNS evcharge.refund
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	w evcharge.account;
	r evcharge.refund;
	fee numeric;
	voided int := 0;
	orders text[];
	accounts bigint[];
	o text;
	asked numeric;
BEGIN
	w := evcharge.wallet_account(request_refund.account_id);
	fee := evcharge.refund_fee(w.operator_id, 0, request_refund.method);	-- checks the method
	-- A part of the balance: a positive amount in yuan and fen.
	IF request_refund.amount IS NOT NULL THEN
		PERFORM evcharge.check_amount(request_refund.amount, 'a refund');
	END IF;
	-- The balance frozen is the balance after the bills the wallet owes are
	-- settled, with the wallet locked.  Locks in the order of every money
	-- function (docs/money.md, "Locks and deadlocks"): the final bills it
	-- pays first (waiting for a settlement or repair of one of them to end),
	-- then the coupons it voids, then all the accounts at once: the wallet,
	-- refunds payable and the bills' revenue.
	SELECT coalesce(array_agg(x.order_no ORDER BY x.order_no), '{}') INTO orders
	FROM (SELECT b.order_no FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
	      WHERE b.state = 'final' AND evcharge.pays_for(w, cs.member_id, cs.group_id, cs.partner_id)
	      ORDER BY b.order_no FOR UPDATE OF b) x;
	IF w.kind = 'member_wallet' AND
	   (SELECT p.void_coupons_on_refund FROM evcharge.finance_policy p WHERE p.operator_id = w.operator_id) THEN
		PERFORM 1 FROM evcharge.coupon c WHERE c.operator_id = w.operator_id AND c.member_id = w.owner_id
		  AND c.used_order_no IS NULL ORDER BY c.coupon_id FOR UPDATE;
	END IF;
	accounts := ARRAY[w.account_id, evcharge.account_of(w.operator_id, 'refunds_payable')];
	FOREACH o IN ARRAY orders LOOP
		accounts := accounts || (evcharge.bill_lines(o, 0, 0, 0, 0)).accounts;
	END LOOP;
	PERFORM evcharge.lock_accounts(accounts);
	SELECT * INTO w FROM evcharge.account a WHERE a.account_id = w.account_id;
	-- Bills still held, or a charge running, would be owed later: no refund
	-- until they are done.
	IF EXISTS (SELECT 1 FROM evcharge.charge_session cs WHERE cs.state IN ('pending', 'charging', 'occupied')
	           AND evcharge.pays_for(w, cs.member_id, cs.group_id, cs.partner_id)) THEN
		RAISE EXCEPTION 'account % pays for a charge in progress', w.account_id
			USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Request the refund after the charge has ended.';
	END IF;
	IF EXISTS (SELECT 1 FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
	           WHERE b.state = 'held' AND evcharge.pays_for(w, cs.member_id, cs.group_id, cs.partner_id)) THEN
		RAISE EXCEPTION 'account % pays for a bill held for repair', w.account_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'Repair the held bill first (evcharge.repair_bill); its amount will be charged.';
	END IF;
	FOREACH o IN ARRAY orders LOOP
		PERFORM evcharge.settle_bill(o);
	END LOOP;
	SELECT * INTO w FROM evcharge.account a WHERE a.account_id = w.account_id;
	IF EXISTS (SELECT 1 FROM evcharge.refund f WHERE f.account_id = w.account_id AND f.state = 'requested') THEN
		RAISE EXCEPTION 'account % already has a refund waiting for approval', w.account_id
			USING ERRCODE = 'unique_violation', HINT = 'Approve or reject it first (evcharge.refund).';
	END IF;
	IF w.balance <= 0 THEN
		RAISE EXCEPTION 'account % has nothing to refund', w.account_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('Its balance is %s yuan; debts reduce what is refundable.', w.balance),
			      HINT = 'Only a positive balance can be refunded.';
	END IF;
	IF request_refund.amount > w.balance THEN
		RAISE EXCEPTION 'a refund of % yuan is more than account % holds', request_refund.amount, w.account_id
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('Its refundable balance is %s yuan, after the bills it owes (debts reduce it).', w.balance),
			      HINT = format('Ask for at most %s yuan, or give no amount to refund the whole balance.', w.balance);
	END IF;
	asked := coalesce(request_refund.amount, w.balance);
	fee := evcharge.refund_fee(w.operator_id, asked, request_refund.method);
	IF fee >= asked THEN
		RAISE EXCEPTION 'a % refund of % yuan would cost more than it returns', request_refund.method, asked
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('The fee would be %s yuan.', fee),
			      HINT = 'A provider refund costs 0.6 % only.';
	END IF;
	INSERT INTO evcharge.refund (account_id, method, amount, fee)
	VALUES (w.account_id, request_refund.method, asked, fee) RETURNING * INTO r;
	PERFORM evcharge.post_txn(w.operator_id, 'refund_request', r.refund_id::text,
		ARRAY[w.account_id, evcharge.account_of(w.operator_id, 'refunds_payable')],
		ARRAY[r.amount, -r.amount], NULL, NULL, jsonb_build_object('refund_id', r.refund_id));
	-- Coupons go with the whole balance only: a member who keeps part of
	-- it keeps charging.
	IF w.kind = 'member_wallet' AND asked = w.balance AND
	   (SELECT p.void_coupons_on_refund FROM evcharge.finance_policy p WHERE p.operator_id = w.operator_id) THEN
		DELETE FROM evcharge.coupon c WHERE c.operator_id = w.operator_id AND c.member_id = w.owner_id
		  AND c.used_order_no IS NULL;
		GET DIAGNOSTICS voided = ROW_COUNT;
		UPDATE evcharge.refund f SET coupons_voided = voided WHERE f.refund_id = r.refund_id RETURNING * INTO r;
	END IF;
	RETURN r;
END $$;
COMMENT ON FUNCTION evcharge.request_refund(bigint, text, numeric) IS
	'requests a refund by bank or provider of a wallet''s whole positive balance, or of the amount given (positive, in yuan and fen, at most the balance: else 22023): the amount is frozen at once (moved to refunds payable), the fee fixed by the operator''s bands (refund_fee; an amount above the last band is 22023); a refund of the whole balance voids unused coupons when the operator''s policy says so';
-- Support refunds one disputed bill: a credit to whoever paid it, at most
-- what the bill charged less what its refunds already gave back, once per
-- request id.  Without an amount, everything left.  A part is taken from
-- the occupancy fee first, then the service fee, then the electricity fee
-- (the disputes support settles by hand are mostly about occupancy).  The
-- bill is locked first, then its accounts: the order of every money
-- function (docs/money.md, "Locks and deadlocks").
CREATE FUNCTION evcharge.refund_bill(order_no text, reason text, request_id text, amount numeric DEFAULT NULL,
	OUT bill_refund_id bigint, OUT account_id bigint, OUT refunded numeric, OUT refunded_in_all numeric,
	OUT refundable numeric, OUT revision int, OUT txn_id bigint, OUT replayed boolean)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	v_order text := refund_bill.order_no;
	b evcharge.bill;
	prev evcharge.bill_refund;
	rf record;
	left_e numeric;
	left_s numeric;
	left_o numeric;
	asked numeric;
	part_o numeric;
	part_s numeric;
	part_e numeric;
	l record;
	p record;
	br evcharge.bill_refund;
BEGIN
	PERFORM evcharge.check_key(refund_bill.request_id, 'request id');
	IF refund_bill.reason IS NULL OR btrim(refund_bill.reason) = '' THEN
		RAISE EXCEPTION 'a refund of bill % needs a reason', coalesce(v_order, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Say why, as the driver will read it: ''charged after the gun was unplugged, ticket 4471''.';
	END IF;
	IF refund_bill.amount IS NOT NULL THEN
		PERFORM evcharge.check_amount(refund_bill.amount, 'a refund of a bill');
	END IF;
	SELECT * INTO b FROM evcharge.bill bl WHERE bl.order_no = v_order FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" has no bill', coalesce(v_order, 'NULL')
			USING ERRCODE = 'no_data_found', HINT = 'Bills are in evcharge.bill.';
	END IF;
	-- The same request again: its first answer.
	SELECT * INTO prev FROM evcharge.bill_refund r WHERE r.request_id = refund_bill.request_id;
	IF FOUND THEN
		IF prev.order_no <> v_order OR (refund_bill.amount IS NOT NULL AND refund_bill.amount <> prev.amount) THEN
			RAISE EXCEPTION 'request % was already applied, to bill % for % yuan', to_json(refund_bill.request_id)::text,
				prev.order_no, prev.amount
				USING ERRCODE = 'unique_violation',
				      DETAIL = format('This call refunds bill %s%s.', v_order,
				                      CASE WHEN refund_bill.amount IS NULL THEN '' ELSE format(' for %s yuan', refund_bill.amount) END),
				      HINT = 'A request id is applied once; give a new request its own id.';
		END IF;
		rf := evcharge.bill_refunded(v_order);
		bill_refund_id := prev.bill_refund_id;
		account_id := prev.account_id;
		refunded := prev.amount;
		refunded_in_all := rf.total;
		refundable := greatest(b.energy_fee, rf.energy_fee) - rf.energy_fee
			+ greatest(b.service_fee - b.discount, rf.service_fee) - rf.service_fee
			+ greatest(b.occupancy_fee, rf.occupancy_fee) - rf.occupancy_fee;
		SELECT r.revision INTO revision FROM evcharge.bill_revision r WHERE r.bill_refund_id = prev.bill_refund_id;
		txn_id := prev.txn_id;
		replayed := true;
		RETURN;
	END IF;
	IF b.state <> 'settled' THEN
		RAISE EXCEPTION 'bill % has not been charged: it is %', v_order, b.state
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = CASE b.state WHEN 'held' THEN format('A held bill is not charged until it is repaired (anomalies %s).', b.anomalies)
			                    ELSE 'A final bill is charged by the settlement job (settle_bills).' END,
			      HINT = 'Change what it will charge with evcharge.repair_bill(); a refund gives back what was charged.';
	END IF;
	-- What is left on each line: what the bill charges less what was given back.
	rf := evcharge.bill_refunded(v_order);
	left_e := greatest(b.energy_fee, rf.energy_fee) - rf.energy_fee;
	left_s := greatest(b.service_fee - b.discount, rf.service_fee) - rf.service_fee;
	left_o := greatest(b.occupancy_fee, rf.occupancy_fee) - rf.occupancy_fee;
	IF left_e + left_s + left_o = 0 THEN
		RAISE EXCEPTION 'bill % has nothing left to refund', v_order
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('It charged %s yuan; its %s refunds gave back %s yuan.', b.total, rf.refunds, rf.total),
			      HINT = 'A bill is refunded at most what it charged; a goodwill payment beyond it is a manual_credit.';
	END IF;
	asked := coalesce(refund_bill.amount, left_e + left_s + left_o);
	IF asked > left_e + left_s + left_o THEN
		RAISE EXCEPTION 'a refund of % yuan is more than bill % has left to refund', asked, v_order
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('It charged %s yuan; %s yuan were refunded already; at most %s yuan are left.',
			                      b.total, rf.total, left_e + left_s + left_o),
			      HINT = 'Give at most what is left, or no amount to refund all of it.';
	END IF;
	part_o := least(asked, left_o);
	part_s := least(asked - part_o, left_s);
	part_e := asked - part_o - part_s;
	-- The payer credited, the revenue lines debited: the bill's lines reversed.
	l := evcharge.bill_lines(v_order, -part_e, -part_s, -part_o, 0);
	PERFORM evcharge.lock_accounts(l.accounts);
	SELECT * INTO p FROM evcharge.post_txn(l.operator_id, 'bill_refund', refund_bill.request_id, l.accounts, l.amounts,
		v_order, refund_bill.reason, jsonb_build_object('order_no', v_order, 'amount', asked, 'account_id', l.accounts[1]));
	IF p.replayed THEN
		-- The same request id posted meanwhile for another bill.
		RAISE EXCEPTION 'request % was already applied, to bill % for % yuan', to_json(refund_bill.request_id)::text,
			(p.txn).result->>'order_no', (p.txn).result->>'amount'
			USING ERRCODE = 'unique_violation', HINT = 'A request id is applied once; give a new request its own id.';
	END IF;
	INSERT INTO evcharge.bill_refund (order_no, request_id, account_id, amount, energy_fee, service_fee, occupancy_fee,
		reason, txn_id)
	VALUES (v_order, refund_bill.request_id, l.accounts[1], asked, part_e, part_s, part_o, refund_bill.reason,
		(p.txn).txn_id)
	RETURNING * INTO br;
	-- The bill's audit trail records it as a revision that names the refund.
	UPDATE evcharge.bill bl SET revision = bl.revision + 1, updated_at = now()
	WHERE bl.order_no = v_order RETURNING bl.revision INTO revision;
	INSERT INTO evcharge.bill_revision (order_no, revision, method, reason, before, after, bill_refund_id)
	SELECT v_order, refund_bill.revision, 'refund', refund_bill.reason, to_jsonb(b), to_jsonb(bl), br.bill_refund_id
	FROM evcharge.bill bl WHERE bl.order_no = v_order;
	PERFORM evcharge.check_alert(l.accounts[1]);
	bill_refund_id := br.bill_refund_id;
	account_id := br.account_id;
	refunded := asked;
	refunded_in_all := rf.total + asked;
	refundable := left_e + left_s + left_o - asked;
	txn_id := (p.txn).txn_id;
	replayed := false;
END $$;
COMMENT ON FUNCTION evcharge.refund_bill(text, text, text, numeric) IS
	'refunds a settled bill to whoever paid it (bill_parties: member or department wallet, partner deposit or receivable) with the reason: the amount given, or everything left, at most what the bill charged less its earlier refunds (22023 beyond it, 55000 when nothing is left or the bill is not settled), taken from occupancy, then service, then electricity revenue; once per request id (a repeat returns the first answer with replayed = true; the same id for another bill or amount is 23505); recorded in bill_refund and as a bill revision (method refund) naming it';

-- A bill's life for support and the driver: made, every revision (repairs,
-- a late pile record, refunds), charged, refunded.  The evidence of a
-- disputed bill beside its heartbeat curve (session_evidence).
CREATE FUNCTION evcharge.bill_history(p_order_no text)
RETURNS TABLE (at timestamptz, event text, revision int, total numeric, amount numeric, refunded numeric,
	reason text, by_whom text, bill_refund_id bigint, txn_id bigint)
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	b evcharge.bill;
BEGIN
	SELECT * INTO b FROM evcharge.bill bl WHERE bl.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" has no bill', p_order_no
			USING ERRCODE = 'no_data_found', HINT = 'Bills are in evcharge.bill.';
	END IF;
	RETURN QUERY
	SELECT x.at, x.event, x.revision, x.total, x.amount,
	       sum(coalesce(x.refund, 0)) OVER (ORDER BY x.at, x.seq, x.revision ROWS UNBOUNDED PRECEDING),
	       x.reason, x.by_whom, x.bill_refund_id, x.txn_id
	FROM (
		SELECT b.finalised_at AS at, 1 AS seq, 'made'::text AS event, 0 AS revision,
		       coalesce((r0.before->>'total')::numeric, b.total) AS total,
		       NULL::numeric AS amount, NULL::numeric AS refund, NULL::text AS reason, NULL::text AS by_whom,
		       NULL::bigint AS bill_refund_id, NULL::bigint AS txn_id
		FROM (SELECT 1) one
		LEFT JOIN evcharge.bill_revision r0 ON r0.order_no = b.order_no AND r0.revision = 1
		WHERE NOT EXISTS (SELECT 1 FROM evcharge.bill_revision r1
		                  WHERE r1.order_no = b.order_no AND r1.revision = 1 AND r1.before IS NULL)
		UNION ALL
		SELECT r.revised_at, 2, CASE WHEN r.method = 'refund' THEN 'refunded' ELSE 'revised: ' || r.method END,
		       r.revision, (r.after->>'total')::numeric,
		       CASE WHEN r.method = 'refund' THEN -f.amount ELSE (r.after->>'total')::numeric - coalesce((r.before->>'total')::numeric, 0) END,
		       f.amount, r.reason, r.revised_by, r.bill_refund_id, f.txn_id
		FROM evcharge.bill_revision r LEFT JOIN evcharge.bill_refund f ON f.bill_refund_id = r.bill_refund_id
		WHERE r.order_no = b.order_no
		UNION ALL
		SELECT t.created_at, 3, CASE t.kind WHEN 'bill' THEN 'charged' ELSE 'charged: adjustment' END,
		       NULL::int, CASE t.kind WHEN 'bill' THEN (t.result->>'total')::numeric ELSE (t.result->>'new_total')::numeric END,
		       (SELECT coalesce(-sum(le.amount), 0) FROM evcharge.ledger_entry le
		        JOIN evcharge.account a ON a.account_id = le.account_id
		        WHERE le.txn_id = t.txn_id AND a.kind LIKE 'revenue\_%'),
		       NULL::numeric, t.note, t.created_by, NULL::bigint, t.txn_id
		FROM evcharge.ledger_txn t
		WHERE t.order_no = b.order_no AND t.kind IN ('bill', 'bill_adjustment')
	) x
	ORDER BY x.at, x.seq, x.revision;
END $$;
COMMENT ON FUNCTION evcharge.bill_history(text) IS
	'the life of a bill, oldest first: made (revision 0), each revision (repairs, a late pile record, refunds: event refunded, naming the bill_refund), each time money moved for it (charged, adjustments), with the total after, the amount that moved, the refunds so far, the reason and who; the refunds of a bill in its evidence; P0002 for an order without a bill';
SELECT pg_catalog.pg_extension_config_dump('evcharge.bill_refund', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.bill_refund_bill_refund_id_seq', '');
ALTER TABLE evcharge.partner_month_statement ADD COLUMN refunds numeric(14, 2) NOT NULL DEFAULT 0;
COMMENT ON COLUMN evcharge.partner_month_statement.refunds IS 'the part of charges that refunds of the partner''s bills gave back (refund_bill), negative or 0, yuan';
COMMENT ON COLUMN evcharge.partner_month_statement.charges IS 'what the partner''s users were charged on this statement: bills, adjustments and refunds of bills, yuan';
COMMENT ON COLUMN evcharge.partner_month_item.kind IS 'the transaction''s kind: bill, bill_adjustment, bill_refund, partner_payment, top_up, ...';
COMMENT ON COLUMN evcharge.partner_month_item.order_no IS 'the session, for bills, adjustments and refunds of bills';
COMMENT ON COLUMN evcharge.partner_month_item.dated IS 'the end of the session for bills and adjustments; the day received for payments; else (refunds of bills among them) when booked';
CREATE OR REPLACE FUNCTION evcharge.partner_statement(partner_id bigint, month date)
RETURNS evcharge.partner_month_statement
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	pa evcharge.partner;
	st evcharge.partner_month_statement;
	m date := date_trunc('month', partner_statement.month)::date;
	tz text;
	p_start timestamptz;
	p_end timestamptz;
	later date;
	opening numeric;
BEGIN
	IF partner_statement.month IS NULL THEN
		RAISE EXCEPTION 'a partner statement needs a month'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Give any day of the month, e.g. ''2026-10-01''.';
	END IF;
	PERFORM evcharge.check_time(partner_statement.month, 'partner_statement(month)', NULL);
	pa := evcharge.partner_row(partner_statement.partner_id);
	-- One booking at a time per partner: the second waits and returns the first's.
	PERFORM 1 FROM evcharge.partner p WHERE p.partner_id = pa.partner_id FOR UPDATE;
	SELECT * INTO st FROM evcharge.partner_month_statement s WHERE s.partner_id = pa.partner_id AND s.month = m;
	IF FOUND THEN
		RETURN st;
	END IF;
	tz := evcharge.books_tz(pa.operator_id);
	p_start := m::timestamp AT TIME ZONE tz;
	p_end := (m + interval '1 month')::timestamp AT TIME ZONE tz;
	IF p_end > now() THEN
		RAISE EXCEPTION 'the statement of % for % cannot be booked before the month is over', to_char(m, 'YYYY-MM'), pa.name
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = format('The month ends at %s (%s).', to_char(p_end AT TIME ZONE tz, 'YYYY-MM-DD HH24:MI'), tz),
			      HINT = 'The evcharge-partner-statements job books last month''s statements on the 2nd.';
	END IF;
	SELECT max(s.month) INTO later FROM evcharge.partner_month_statement s
	WHERE s.partner_id = pa.partner_id AND s.month > m;
	IF later IS NOT NULL THEN
		RAISE EXCEPTION 'the statement of % for % cannot be booked after that of %', to_char(m, 'YYYY-MM'), pa.name,
			to_char(later, 'YYYY-MM')
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = 'What it would have carried is on the later statement.',
			      HINT = 'Statements are booked month after month; read the later one.';
	END IF;

	opening := coalesce((SELECT s.closing FROM evcharge.partner_month_statement s
	                     WHERE s.partner_id = pa.partner_id ORDER BY s.month DESC LIMIT 1), 0);
	INSERT INTO evcharge.partner_month_statement (partner_id, operator_id, month, partner_kind, period_end, opening,
		sessions, energy_wh, energy_fee, service_fee, occupancy_fee, charges, adjustments, earlier_months, payments,
		closing, partner_owes, we_owe, pending_bills)
	VALUES (pa.partner_id, pa.operator_id, m, pa.kind, p_end, opening, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		opening, greatest(opening, 0), greatest(-opening, 0), 0)
	RETURNING * INTO st;

	-- Every transaction on the partner's accounts that no statement carries
	-- yet and that is dated before the cut-off.
	INSERT INTO evcharge.partner_month_item (txn_id, statement_id, kind, order_no, dated, earlier_month, energy_wh,
		energy_fee, service_fee, occupancy_fee, amount)
	SELECT x.txn_id, st.statement_id, x.kind, x.order_no, x.dated, x.dated < p_start,
	       CASE x.kind WHEN 'bill' THEN coalesce((x.result->>'energy_wh')::bigint, 0)
	                   WHEN 'bill_adjustment' THEN coalesce((x.result->>'energy_wh_delta')::bigint, 0) ELSE 0 END,
	       x.energy_fee, x.service_fee, x.occupancy_fee, x.amount
	FROM (
		SELECT t.txn_id, t.kind, t.order_no, t.result,
		       CASE WHEN t.kind IN ('bill', 'bill_adjustment') THEN coalesce(b.ended_at, b.started_at, t.created_at)
		            WHEN t.result->>'received_on' IS NOT NULL
		            THEN ((t.result->>'received_on')::date)::timestamp AT TIME ZONE tz
		            ELSE t.created_at END AS dated,
		       sum(e.amount) FILTER (WHERE a.owner_id = pa.partner_id
		                             AND a.kind IN ('partner_receivable', 'partner_prepaid')) AS amount,
		       coalesce(-sum(e.amount) FILTER (WHERE a.kind = 'revenue_electricity'), 0) AS energy_fee,
		       coalesce(-sum(e.amount) FILTER (WHERE a.kind = 'revenue_service'), 0) AS service_fee,
		       coalesce(-sum(e.amount) FILTER (WHERE a.kind = 'revenue_occupancy'), 0) AS occupancy_fee
		FROM evcharge.ledger_txn t
		JOIN evcharge.ledger_entry e ON e.txn_id = t.txn_id
		JOIN evcharge.account a ON a.account_id = e.account_id
		LEFT JOIN evcharge.bill b ON b.order_no = t.order_no
		WHERE t.txn_id IN (SELECT e2.txn_id FROM evcharge.ledger_entry e2
		                   JOIN evcharge.account a2 ON a2.account_id = e2.account_id
		                   WHERE a2.operator_id = pa.operator_id AND a2.owner_id = pa.partner_id
		                     AND a2.kind IN ('partner_receivable', 'partner_prepaid'))
		  AND NOT EXISTS (SELECT 1 FROM evcharge.partner_month_item i WHERE i.txn_id = t.txn_id)
		GROUP BY t.txn_id, b.ended_at, b.started_at
	) x
	WHERE x.dated < p_end;

	UPDATE evcharge.partner_month_statement s SET
		sessions = f.sessions, energy_wh = f.energy_wh, energy_fee = f.energy_fee, service_fee = f.service_fee,
		occupancy_fee = f.occupancy_fee, charges = f.charges, adjustments = f.adjustments, refunds = f.refunds,
		earlier_months = f.earlier_months, payments = f.payments,
		closing = s.opening + f.charges - f.payments,
		partner_owes = greatest(s.opening + f.charges - f.payments, 0),
		we_owe = greatest(-(s.opening + f.charges - f.payments), 0),
		pending_bills = (SELECT count(*) FROM evcharge.bill b JOIN evcharge.charge_session cs USING (order_no)
		                 WHERE cs.partner_id = pa.partner_id AND b.state IN ('final', 'held')
		                   AND coalesce(b.ended_at, b.started_at) < p_end)
	FROM (SELECT count(DISTINCT i.order_no) FILTER (WHERE i.kind = 'bill') AS sessions,
	             coalesce(sum(i.energy_wh), 0) AS energy_wh,
	             coalesce(sum(i.energy_fee), 0) AS energy_fee,
	             coalesce(sum(i.service_fee), 0) AS service_fee,
	             coalesce(sum(i.occupancy_fee), 0) AS occupancy_fee,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind IN ('bill', 'bill_adjustment', 'bill_refund')), 0) AS charges,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind = 'bill_adjustment'), 0) AS adjustments,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind = 'bill_refund'), 0) AS refunds,
	             coalesce(sum(i.amount) FILTER (WHERE i.kind IN ('bill', 'bill_adjustment') AND i.earlier_month), 0)
	                 AS earlier_months,
	             coalesce(-sum(i.amount) FILTER (WHERE i.kind NOT IN ('bill', 'bill_adjustment', 'bill_refund')), 0) AS payments
	      FROM evcharge.partner_month_item i WHERE i.statement_id = st.statement_id) f
	WHERE s.statement_id = st.statement_id
	RETURNING s.* INTO st;
	RETURN st;
END $$;
COMMENT ON FUNCTION evcharge.partner_statement(bigint, date) IS
	'books the partner''s statement of the month (any day of it; the month must be over in the operator''s time zone): every ledger movement on the partner''s accounts dated before the month''s end that no earlier statement carried, its sessions, energy and fees, refunds of its bills, payments, and what each side owes; calling it again returns the booked statement';
-- daily_report has a new column, bill_refunds: a new result type.
DROP FUNCTION evcharge.daily_report(bigint, date, bigint);
CREATE FUNCTION evcharge.daily_report(operator_id bigint, day date, only_sub_operator bigint DEFAULT NULL)
RETURNS TABLE (line text, station_id bigint, station text, sub_operator_id bigint, sub_operator text,
	sessions bigint, held bigint, unsettled bigint, energy_kwh numeric, energy_fee numeric, service_fee numeric,
	occupancy_fee numeric, discount numeric, total numeric, top_ups numeric, credits numeric, refunds numeric,
	refund_fees numeric, bill_refunds numeric)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp SET jit = off
BEGIN ATOMIC
	WITH books AS (
		SELECT daily_report.operator_id AS op, lower(d.r) AS t0, upper(d.r) AS t1
		FROM (SELECT evcharge.books_day(daily_report.operator_id,
		             CASE WHEN daily_report.day IS NOT NULL
		                  THEN evcharge.check_time(daily_report.day, 'daily_report(day)') END) AS r) d
	), bills AS (
		-- The day's bills: sessions whose charging ended that day.  Their
		-- sub-operator is where the ledger put their revenue, or for bills
		-- not yet settled where the attribution rules would.
		SELECT b.*, coalesce(r.sub_operator_id, evcharge.attributed_sub_operator(books.op, b.station_id,
		           coalesce(cs.group_id, m.group_id), m.vin, m.card_no)) AS sub
		FROM books
		JOIN evcharge.station st ON st.operator_id = books.op
		JOIN evcharge.bill b ON b.station_id = st.station_id
		JOIN evcharge.charge_session cs ON cs.order_no = b.order_no
		LEFT JOIN evcharge.member m ON m.member_id = cs.member_id
		LEFT JOIN LATERAL (
			SELECT a.sub_operator_id FROM evcharge.ledger_txn t
			JOIN evcharge.ledger_entry e ON e.txn_id = t.txn_id
			JOIN evcharge.account a ON a.account_id = e.account_id
			WHERE t.kind = 'bill' AND t.idem_key = b.order_no AND a.kind LIKE 'revenue\_%'
			LIMIT 1) r ON b.state = 'settled'
		-- The day's bounds as scalar subqueries, not join columns: so the
		-- planner sees a range on bill_station_day_idx per station, not a
		-- join filter over every bill of the operator's history.
		WHERE coalesce(b.ended_at, b.started_at) >= (SELECT books.t0 FROM books)
		  AND coalesce(b.ended_at, b.started_at) < (SELECT books.t1 FROM books)
	), station_lines AS (
		SELECT 'station'::text AS line, b.station_id, b.sub AS sub_operator_id,
		       count(*) AS sessions, count(*) FILTER (WHERE b.state = 'held') AS held,
		       count(*) FILTER (WHERE b.state = 'final') AS unsettled,
		       round(coalesce(sum(b.energy_wh) FILTER (WHERE b.state = 'settled'), 0) / 1000.0, 3) AS energy_kwh,
		       coalesce(sum(b.energy_fee) FILTER (WHERE b.state = 'settled'), 0) AS energy_fee,
		       coalesce(sum(b.service_fee) FILTER (WHERE b.state = 'settled'), 0) AS service_fee,
		       coalesce(sum(b.occupancy_fee) FILTER (WHERE b.state = 'settled'), 0) AS occupancy_fee,
		       coalesce(sum(b.discount) FILTER (WHERE b.state = 'settled'), 0) AS discount,
		       coalesce(sum(b.total) FILTER (WHERE b.state = 'settled'), 0) AS total,
		       0::numeric AS top_ups, 0::numeric AS credits, 0::numeric AS refunds, 0::numeric AS refund_fees,
		       0::numeric AS bill_refunds
		FROM bills b
		GROUP BY b.station_id, b.sub
	), bill_refund_lines AS (
		-- The day's refunds of bills, whatever day the bill was: on the line
		-- of its station and of the sub-operator whose revenue they took back.
		SELECT 'station'::text AS line, b.station_id, r.sub_operator_id,
		       0::bigint, 0::bigint, 0::bigint, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric,
		       0::numeric, 0::numeric, 0::numeric, 0::numeric, sum(f.amount)
		FROM books
		JOIN evcharge.ledger_txn t ON t.operator_id = books.op AND t.kind = 'bill_refund'
		     AND t.created_at >= (SELECT books.t0 FROM books) AND t.created_at < (SELECT books.t1 FROM books)
		JOIN evcharge.bill_refund f ON f.txn_id = t.txn_id
		JOIN evcharge.bill b ON b.order_no = f.order_no
		LEFT JOIN LATERAL (
			SELECT a.sub_operator_id FROM evcharge.ledger_entry e
			JOIN evcharge.account a ON a.account_id = e.account_id
			WHERE e.txn_id = t.txn_id AND a.kind LIKE 'revenue\_%'
			LIMIT 1) r ON true
		GROUP BY b.station_id, r.sub_operator_id
	), wallet_moves AS (
		-- The day's money in and out of wallets: what the wallet was credited
		-- by top-ups and manual credits, and the refunds paid out (approved).
		SELECT t.kind, evcharge.wallet_sub_operator(e.account_id) AS sub, -e.amount AS amount, 0::numeric AS fee
		FROM books
		JOIN evcharge.ledger_txn t ON t.operator_id = books.op
		     AND t.created_at >= (SELECT books.t0 FROM books) AND t.created_at < (SELECT books.t1 FROM books)
		JOIN evcharge.ledger_entry e ON e.txn_id = t.txn_id
		JOIN evcharge.account a ON a.account_id = e.account_id
		WHERE t.kind IN ('top_up', 'manual_credit') AND a.kind IN ('member_wallet', 'department_wallet', 'partner_prepaid')
		UNION ALL
		SELECT t.kind, evcharge.wallet_sub_operator(f.account_id), f.amount, f.fee
		FROM books
		JOIN evcharge.ledger_txn t ON t.operator_id = books.op
		     AND t.created_at >= (SELECT books.t0 FROM books) AND t.created_at < (SELECT books.t1 FROM books)
		JOIN evcharge.refund f ON f.refund_id::text = t.idem_key
		WHERE t.kind = 'refund_approve'
	), wallet_lines AS (
		SELECT 'wallets'::text AS line, NULL::bigint AS station_id, w.sub AS sub_operator_id,
		       0::bigint, 0::bigint, 0::bigint, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric, 0::numeric,
		       coalesce(sum(w.amount) FILTER (WHERE w.kind = 'top_up'), 0),
		       coalesce(sum(w.amount) FILTER (WHERE w.kind = 'manual_credit'), 0),
		       coalesce(sum(w.amount) FILTER (WHERE w.kind = 'refund_approve'), 0),
		       coalesce(sum(w.fee) FILTER (WHERE w.kind = 'refund_approve'), 0),
		       0::numeric
		FROM wallet_moves w
		GROUP BY w.sub
	), lines AS (
		-- A station's bills and its refunds of bills on one line.
		SELECT u.line, u.station_id, u.sub_operator_id, sum(u.sessions)::bigint AS sessions,
		       sum(u.held)::bigint AS held, sum(u.unsettled)::bigint AS unsettled, sum(u.energy_kwh) AS energy_kwh,
		       sum(u.energy_fee) AS energy_fee, sum(u.service_fee) AS service_fee,
		       sum(u.occupancy_fee) AS occupancy_fee, sum(u.discount) AS discount, sum(u.total) AS total,
		       sum(u.top_ups) AS top_ups, sum(u.credits) AS credits, sum(u.refunds) AS refunds,
		       sum(u.refund_fees) AS refund_fees, sum(u.bill_refunds) AS bill_refunds
		FROM (SELECT * FROM station_lines UNION ALL SELECT * FROM bill_refund_lines UNION ALL SELECT * FROM wallet_lines) u
		GROUP BY u.line, u.station_id, u.sub_operator_id
	), seen AS (
		SELECT * FROM lines l
		WHERE daily_report.only_sub_operator IS NULL OR l.sub_operator_id = daily_report.only_sub_operator
	)
	SELECT x.* FROM (
	SELECT s.line, s.station_id, st.name, s.sub_operator_id, so.name, s.sessions, s.held, s.unsettled,
	       s.energy_kwh, s.energy_fee, s.service_fee, s.occupancy_fee, s.discount, s.total,
	       s.top_ups, s.credits, s.refunds, s.refund_fees, s.bill_refunds
	FROM seen s
	LEFT JOIN evcharge.station st ON st.station_id = s.station_id
	LEFT JOIN evcharge.sub_operator so ON so.sub_operator_id = s.sub_operator_id
	UNION ALL
	SELECT 'total', NULL, NULL, daily_report.only_sub_operator, NULL,
	       coalesce(sum(s.sessions), 0)::bigint, coalesce(sum(s.held), 0)::bigint, coalesce(sum(s.unsettled), 0)::bigint,
	       coalesce(sum(s.energy_kwh), 0), coalesce(sum(s.energy_fee), 0), coalesce(sum(s.service_fee), 0),
	       coalesce(sum(s.occupancy_fee), 0), coalesce(sum(s.discount), 0), coalesce(sum(s.total), 0),
	       coalesce(sum(s.top_ups), 0), coalesce(sum(s.credits), 0), coalesce(sum(s.refunds), 0),
	       coalesce(sum(s.refund_fees), 0), coalesce(sum(s.bill_refunds), 0)
	FROM seen s
	) x (line, station_id, station, sub_operator_id, sub_operator, sessions, held, unsettled, energy_kwh, energy_fee,
	     service_fee, occupancy_fee, discount, total, top_ups, credits, refunds, refund_fees, bill_refunds)
	ORDER BY array_position(ARRAY['station', 'wallets', 'total'], x.line), x.station_id, x.sub_operator_id NULLS FIRST;
END;
COMMENT ON FUNCTION evcharge.daily_report(bigint, date, bigint) IS
	'an operator''s day (books_day: in finance_policy.tz; an unknown operator or no day is an error): a line per station and sub-operator with sessions ended that day, held and unsettled bills, and the charged energy, electricity, service and occupancy fees, discounts and total; a line per sub-operator with the top-ups, manual credits and refunds (whole or partial) of its wallets; bill_refunds: the refunds of bills made that day (refund_bill), on the line of the bill''s station and sub-operator; a total line; only_sub_operator shows what one sub-operator may see';

-- == issue 16 item 9: a daily spending limit per card ==
ALTER TABLE evcharge.member ADD COLUMN card_daily_limit numeric(12, 2) CHECK (card_daily_limit > 0 AND card_daily_limit <> 'NaN');
COMMENT ON COLUMN evcharge.member.card_daily_limit IS
	'the most the member''s card may spend in a day of the operator''s books, yuan (a maintenance card shared by several cars): a start by the card is refused once the day''s charges reach it (card_day_spending); NULL: no limit';
-- A card's day is found among the sessions created that day, so that a
-- start by a card with a limit costs the day's sessions, not the history.
CREATE INDEX charge_session_created_idx ON evcharge.charge_session (created_at);
COMMENT ON INDEX evcharge.charge_session_created_idx IS
	'sessions by creation: the day''s charges of a card (card_day_spending)';

-- A card's spending in a day of the operator's books: a maintenance card
-- shared by several cars has a daily limit (member.card_daily_limit).  What
-- it spent is what the charges it started that day came to: the bill's
-- total, or the amount so far of a charge still running.  A charge counts
-- for the card when it was started with it: the card on the session (a
-- start at the pile), an OCPP transaction begun with it as idTag, or a
-- start through the platform by card (channel card) of its member.
-- p_except_order leaves one charge out: a resent StartTransaction is not
-- held against the charge it starts.
CREATE FUNCTION evcharge.card_day_spending(p_operator_id bigint, p_card_no text, p_at timestamptz DEFAULT now(),
	p_except_order text DEFAULT NULL,
	OUT member_id bigint, OUT daily_limit numeric, OUT spent numeric, OUT remaining numeric, OUT day date)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	card text := regexp_replace(p_card_no, '\s', '', 'g');
	r tstzrange;
BEGIN
	day := (p_at AT TIME ZONE evcharge.books_tz(p_operator_id))::date;
	r := evcharge.books_day(p_operator_id, day);
	SELECT m.member_id, m.card_daily_limit INTO member_id, daily_limit
	FROM evcharge.member m WHERE m.operator_id = p_operator_id AND m.card_no = card;
	SELECT coalesce(sum(coalesce(b.total, cs.running_total, 0)), 0) INTO spent
	FROM evcharge.charge_session cs
	JOIN evcharge.station st ON st.station_id = cs.station_id AND st.operator_id = p_operator_id
	LEFT JOIN evcharge.bill b ON b.order_no = cs.order_no
	WHERE cs.created_at >= lower(r) AND cs.created_at < upper(r) AND cs.state <> 'cancelled'
	  AND cs.order_no IS DISTINCT FROM p_except_order
	  AND (cs.card_no = card
	       OR (cs.channel = 'card' AND cs.member_id = card_day_spending.member_id)
	       OR EXISTS (SELECT 1 FROM evcharge.ocpp_transaction t
	                  WHERE t.order_no = cs.order_no AND regexp_replace(t.id_tag, '\s', '', 'g') = card));
	remaining := CASE WHEN daily_limit IS NOT NULL THEN greatest(daily_limit - spent, 0) END;
END $$;
COMMENT ON FUNCTION evcharge.card_day_spending(bigint, text, timestamptz, text) IS
	'what a card of the operator spent in the day of its books that contains the instant (default now, finance_policy.tz): the charges started with it that day (the card on the session, an OCPP idTag, or a start by card of its member), at the bill''s total or the amount so far, but for the order given (p_except_order); with its member, its daily limit (member.card_daily_limit, NULL: none) and what is left of it';

-- The refusal of a start by a card whose day's spending reached its limit.
CREATE FUNCTION evcharge.check_card_limit(p_operator_id bigint, p_card_no text) RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	c record;
BEGIN
	c := evcharge.card_day_spending(p_operator_id, p_card_no);
	IF c.daily_limit IS NOT NULL AND c.spent >= c.daily_limit THEN
		RAISE EXCEPTION 'card % has reached its daily spending limit', regexp_replace(p_card_no, '\s', '', 'g')
			USING ERRCODE = 'EV002',
			      DETAIL = format('Its charges of %s (%s) came to %s yuan of a limit of %s.', to_char(c.day, 'YYYY-MM-DD'),
			                      evcharge.books_tz(p_operator_id), c.spent, c.daily_limit),
			      HINT = 'The card can charge again tomorrow, or the operator raises member.card_daily_limit.';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.check_card_limit(bigint, text) IS
	'raises EV002 when the card''s charges of the day (card_day_spending) have reached its daily limit, with what it spent and the limit; nothing for a card without a limit or not registered';
CREATE OR REPLACE FUNCTION evcharge.ocpp_authorize(p_pile evcharge.pile_id, p_id_tag text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN EXISTS (
	-- The idTag of a RemoteStartTransaction: the order number of a session
	-- start_session() opened on this pile (a pile may Authorize it first).
	SELECT 1 FROM evcharge.charge_session cs
	WHERE cs.order_no = p_id_tag AND cs.state = 'pending'
	  AND evcharge.pile(cs.gun) OPERATOR(evcharge.=) p_pile) THEN 'Accepted'
	ELSE coalesce((
	-- Only a card with a limit costs the look at its day.
	SELECT CASE WHEN m.card_daily_limit IS NULL THEN 'Accepted'
	            WHEN (evcharge.card_day_spending(st.operator_id, m.card_no)).spent >= m.card_daily_limit THEN 'Blocked'
	            ELSE 'Accepted' END
	FROM evcharge.pile pl
	JOIN evcharge.station st USING (station_id)
	JOIN evcharge.member m ON m.operator_id = st.operator_id
	WHERE pl.pile_id OPERATOR(evcharge.=) p_pile
	  AND m.card_no = regexp_replace(p_id_tag, '\s', '', 'g')), 'Invalid') END;
COMMENT ON FUNCTION evcharge.ocpp_authorize(evcharge.pile_id, text) IS
	'the OCPP idTagInfo status for an idTag at a pile: Accepted for the card of a member of the pile''s operator or the order number of a pending session on the pile (a remote start''s idTag), Blocked for a card whose charges of the day reached its daily limit (card_day_spending), Invalid otherwise';
CREATE OR REPLACE FUNCTION evcharge.ocpp_start_transaction(p_pile evcharge.pile_id, p_connector int, p_id_tag text,
	p_meter_start bigint, p_ts timestamptz, OUT transaction_id int, OUT order_no text, OUT remote boolean,
	OUT status text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	g evcharge.gun_id;
	pending text;
BEGIN
	SELECT t.transaction_id, t.order_no, t.remote INTO transaction_id, order_no, remote
	FROM evcharge.ocpp_transaction t
	WHERE t.pile_id OPERATOR(evcharge.=) p_pile AND t.connector_id = p_connector AND t.started_at = p_ts;
	IF NOT FOUND THEN
		SELECT pl.gun_count, st.tz INTO p
		FROM evcharge.pile pl JOIN evcharge.station st USING (station_id)
		WHERE pl.pile_id OPERATOR(evcharge.=) p_pile;
		IF NOT FOUND OR p_connector NOT BETWEEN 1 AND p.gun_count THEN
			-- Not a gun of a registered pile: nothing stored, the pile is told Invalid.
			status := 'Invalid';
			RETURN;
		END IF;
		g := evcharge.gun_id(p_pile, p_connector);
		-- A session start_session() opened for this gun and no transaction
		-- has taken yet: this is the remote start it asked for.
		SELECT cs.order_no INTO pending FROM evcharge.charge_session cs
		WHERE cs.gun OPERATOR(evcharge.=) g AND cs.state = 'pending'
		  AND NOT EXISTS (SELECT 1 FROM evcharge.ocpp_transaction t WHERE t.order_no = cs.order_no);
		remote := pending IS NOT NULL;
		order_no := coalesce(pending, to_char(p_ts AT TIME ZONE p.tz, 'YYYYMMDDHH24MISS')
		            || lpad((nextval('evcharge.order_seq') % 1000000)::text, 6, '0'));
		INSERT INTO evcharge.ocpp_transaction AS t (order_no, pile_id, connector_id, id_tag, meter_start_wh, started_at, remote)
		VALUES (order_no, p_pile, p_connector, p_id_tag, p_meter_start, p_ts, remote)
		ON CONFLICT ON CONSTRAINT ocpp_transaction_start_key DO NOTHING
		RETURNING t.transaction_id INTO transaction_id;
		IF transaction_id IS NULL THEN
			-- Another bridge stored the same start first.
			SELECT t.transaction_id, t.order_no, t.remote INTO transaction_id, order_no, remote
			FROM evcharge.ocpp_transaction t
			WHERE t.pile_id OPERATOR(evcharge.=) p_pile AND t.connector_id = p_connector AND t.started_at = p_ts;
		END IF;
	END IF;
	status := CASE WHEN remote THEN 'Accepted' ELSE evcharge.ocpp_authorize(p_pile, p_id_tag) END;
	-- A card at its daily limit is Blocked, but a resent StartTransaction
	-- (a pile that rebooted mid-charge) is not held against the charge it
	-- starts: the limit is reached only counting this charge itself.
	IF status = 'Blocked' AND EXISTS (
		SELECT 1 FROM evcharge.pile pl
		JOIN evcharge.station st USING (station_id)
		JOIN evcharge.member m ON m.operator_id = st.operator_id
		WHERE pl.pile_id OPERATOR(evcharge.=) p_pile AND m.card_no = regexp_replace(p_id_tag, '\s', '', 'g')
		  AND (evcharge.card_day_spending(st.operator_id, m.card_no, now(), order_no)).spent < m.card_daily_limit) THEN
		status := 'Accepted';
	END IF;
END $$;
COMMENT ON FUNCTION evcharge.ocpp_start_transaction(evcharge.pile_id, int, text, bigint, timestamptz) IS
	'maps an OCPP StartTransaction to a transactionId and an order number, once: a pending start_session() on the gun is taken over (a remote start), otherwise a new order number is made; a resend returns the first answer; status is the idTagInfo status (NULL ids and Invalid for a gun that is not registered; Blocked for a card at its daily spending limit, not counting the charge being started, so a resend is not Blocked by its own charge)';
CREATE OR REPLACE FUNCTION evcharge.start_session(gun evcharge.gun_id, member_id bigint, channel text,
	partner_id bigint DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	ptn evcharge.partner;
	owes numeric;
	grp bigint;
	busy text;
	order_no text;
BEGIN
	IF gun IS NULL OR channel IS NULL THEN
		RAISE EXCEPTION 'gun and channel are required' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF channel NOT IN ('app', 'qr', 'card', 'password', 'vin', 'partner') THEN
		RAISE EXCEPTION 'start channel "%" is not known', channel
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Use app, qr, card, password, vin or partner.';
	END IF;
	SELECT pl.station_id, pl.gun_count, s.tz INTO p
	FROM evcharge.pile pl JOIN evcharge.station s USING (station_id)
	WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(start_session.gun);
	IF NOT FOUND OR evcharge.gun_no(start_session.gun) > p.gun_count THEN
		RAISE EXCEPTION 'gun % is not registered', gun
			USING ERRCODE = 'foreign_key_violation', HINT = 'Register its pile in evcharge.pile.';
	END IF;
	-- The member's customer group (department, fleet, VIP class) at the
	-- start: its group price and occupancy exemption apply to this charge.
	-- A member who is a partner's user charges on the partner's account,
	-- under its contract and not at a member's price, however it starts.
	SELECT coalesce(start_session.partner_id, m.partner_id),
	       CASE WHEN coalesce(start_session.partner_id, m.partner_id) IS NULL THEN m.group_id END
	INTO partner_id, grp
	FROM (SELECT 1) one LEFT JOIN evcharge.member m ON m.member_id = start_session.member_id;
	IF partner_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM evcharge.partner pa
			JOIN evcharge.station st ON st.operator_id = pa.operator_id
			WHERE pa.partner_id = start_session.partner_id AND st.station_id = p.station_id) THEN
		RAISE EXCEPTION 'partner % has no contract with the operator of gun %', partner_id, gun
			USING ERRCODE = 'foreign_key_violation', HINT = 'Register the partner in evcharge.partner for this operator.';
	END IF;
	IF partner_id IS NOT NULL THEN
		SELECT * INTO ptn FROM evcharge.partner x WHERE x.partner_id = start_session.partner_id;
		owes := evcharge.partner_owes(ptn.partner_id);
		IF ptn.kind = 'affiliated' AND ptn.credit_limit IS NOT NULL AND owes >= ptn.credit_limit THEN
			RAISE EXCEPTION 'partner % has reached its credit limit', partner_id
				USING ERRCODE = 'EV002',
				      DETAIL = format('It owes %s yuan of a limit of %s.', owes, ptn.credit_limit),
				      HINT = 'The partner pays what it owes first (evcharge.partner_payment), or the operator raises the limit.';
		ELSIF ptn.kind = 'prepaid' AND owes >= 0 THEN
			RAISE EXCEPTION 'partner % has no prepaid money left', partner_id
				USING ERRCODE = 'EV002',
				      DETAIL = format('Its prepaid account holds %s yuan.', -owes),
				      HINT = 'Top up the partner''s prepaid account (evcharge.top_up or evcharge.partner_payment).';
		END IF;
	END IF;
	-- A start by card: the card's daily spending limit (a maintenance card
	-- shared by several cars), EV002 once its day's charges reached it.
	IF channel = 'card' THEN
		PERFORM evcharge.check_card_limit(m.operator_id, m.card_no)
		FROM evcharge.member m WHERE m.member_id = start_session.member_id AND m.card_no IS NOT NULL;
	END IF;
	SELECT cs.order_no INTO busy FROM evcharge.charge_session cs
	WHERE cs.gun OPERATOR(evcharge.=) start_session.gun AND cs.state IN ('pending', 'charging', 'occupied');
	IF FOUND THEN
		RAISE EXCEPTION 'gun % is busy with order %', gun, busy
			USING ERRCODE = 'lock_not_available', HINT = 'A gun charges one session at a time; wait for it to end.';
	END IF;
	-- A pile that speaks OCPP (it has connected to a bridge) is started by
	-- a RemoteStartTransaction, which needs it connected now: the app hears
	-- at once that it is not, instead of a session that never begins.
	DECLARE
		conn record;
	BEGIN
		SELECT c.bridge_id, c.disconnected_at, b.seen_at INTO conn
		FROM evcharge.ocpp_connection c LEFT JOIN evcharge.ocpp_bridge b USING (bridge_id)
		WHERE c.pile_id OPERATOR(evcharge.=) evcharge.pile(start_session.gun);
		IF FOUND AND NOT evcharge.ocpp_pile_connected(evcharge.pile(start_session.gun)) THEN
			RAISE EXCEPTION 'pile % of gun % is not connected', evcharge.pile(start_session.gun), gun
				USING ERRCODE = 'EV003',
				      DETAIL = CASE WHEN conn.disconnected_at IS NOT NULL
				                    THEN format('Its OCPP connection to bridge %s ended at %s.', conn.bridge_id, conn.disconnected_at)
				                    ELSE format('Bridge %s, which holds its connection, was last seen at %s.', conn.bridge_id, conn.seen_at) END,
				      HINT = 'A remote start needs the pile online; try again when it has reconnected, or start at the pile with a card.';
		END IF;
	END;
	order_no := to_char(now() AT TIME ZONE p.tz, 'YYYYMMDDHH24MISS')
	            || lpad((nextval('evcharge.order_seq') % 1000000)::text, 6, '0');
	INSERT INTO evcharge.charge_session (order_no, gun, station_id, member_id, group_id, partner_id, channel)
	VALUES (order_no, gun, p.station_id, member_id, grp, partner_id, channel);
	-- For an OCPP pile the RemoteStartTransaction, its idTag the order
	-- number; the bridge holding the pile sends it within a second.
	INSERT INTO evcharge.ocpp_command (pile_id, connector_id, action, order_no, id_tag)
	SELECT c.pile_id, evcharge.gun_no(start_session.gun), 'RemoteStartTransaction', order_no, order_no
	FROM evcharge.ocpp_connection c WHERE c.pile_id OPERATOR(evcharge.=) evcharge.pile(start_session.gun);
	IF FOUND THEN
		PERFORM pg_notify('evcharge_command', json_build_object('pile_id', evcharge.pile(start_session.gun)::text,
			'action', 'RemoteStartTransaction', 'order_no', order_no)::text);
	END IF;
	RETURN order_no;
END $$;
COMMENT ON FUNCTION evcharge.start_session(evcharge.gun_id, bigint, text, bigint) IS
	'opens a session for an app or QR start and returns its order number (yyyyMMddHHmmss in the station''s zone + 6 digits); the pile''s heartbeats carrying it then feed it; for an OCPP pile (one that has connected to a bridge) it also makes the RemoteStartTransaction (ocpp_command, NOTIFY evcharge_command), and refuses with EV003 when the pile is not connected; a start by card whose day''s charges reached its daily limit is refused with EV002 (check_card_limit)';
