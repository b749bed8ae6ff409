-- pgTAP: the ledger and the money functions: catalogue entries, and
-- properties checked over a long generated run of top-ups (callbacks sent
-- twice among them), manual credits, refunds approved and rejected: the
-- ledger always balances, every wallet holds what its own events say, and
-- replaying every event changes nothing.
BEGIN;
SELECT plan(16);
SET LOCAL search_path = public, evcharge;
SELECT setseed(0.5);

SELECT has_table('evcharge', 'account', 'table account exists');
SELECT has_table('evcharge', 'ledger_txn', 'table ledger_txn exists');
SELECT has_table('evcharge', 'ledger_entry', 'table ledger_entry exists');
SELECT has_function('evcharge', 'top_up', ARRAY['bigint', 'numeric', 'text'], 'top_up(account_id, amount, provider_txn) exists');
SELECT has_function('evcharge', 'refund_fee', ARRAY['numeric', 'text'], 'refund_fee(amount, method) exists');
SELECT is(
	(SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
	 WHERE p.pronamespace = 'evcharge'::regnamespace
	   AND p.proname IN ('top_up', 'manual_credit', 'settle_bill', 'settle_bills', 'request_refund', 'approve_refund',
	                     'reject_refund', 'post_txn', 'balance_guard', 'run_reconciliation', 'import_statement',
	                     'reconcile_statement')
	   AND NOT (p.provolatile = 'v' AND p.proparallel = 'u' AND 'search_path=pg_catalog, pg_temp' = ANY (p.proconfig))),
	NULL, 'what moves money is VOLATILE PARALLEL UNSAFE with a fixed search_path');
SELECT is(
	(SELECT array_agg(c.relname::text ORDER BY 1) FROM pg_class c
	 WHERE c.relnamespace = 'evcharge'::regnamespace AND c.relname IN ('ledger_txn', 'ledger_entry')
	   AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname LIKE '%immutable')),
	NULL, 'ledger transactions and entries have their immutability trigger');
SELECT ok(NOT has_function_privilege('public', 'evcharge.fetch_statement(text, date, text, text)', 'EXECUTE')
          AND NOT has_table_privilege('public', 'evcharge.statement_source', 'SELECT'),
	'the statement secrets and fetch_statement are not for PUBLIC');

-- The refund fee: truncated to the fen, never more than the rule, 1000 by bank is 12.
SELECT is(refund_fee(1000, 'bank'), 12.00::numeric, 'bank refund of 1000 yuan costs 12 yuan');
SELECT is(
	(SELECT count(*) FROM (SELECT round((random() * 5000)::numeric, 2) AS a FROM generate_series(1, 2000)) x
	 WHERE refund_fee(a, 'bank') <> trunc(6 + a * 0.006, 2) OR refund_fee(a, 'provider') <> trunc(a * 0.006, 2)
	    OR refund_fee(a, 'provider') > a * 0.006 OR refund_fee(a, 'provider') <> round(refund_fee(a, 'provider'), 2)),
	0::bigint, 'refund fees of 2,000 random amounts follow the rule, truncated to the fen');

-- A generated run on 20 wallets.
INSERT INTO operator VALUES (90, 'money property test');
INSERT INTO member (member_id, operator_id) SELECT 9000 + i, 90 FROM generate_series(1, 20) i;
CREATE TEMP TABLE event (n int, kind text, wallet bigint, amount numeric, key text);
DO $$
DECLARE
	i int;
	w bigint;
	a numeric;
	r evcharge.refund;
	k text;
BEGIN
	FOR i IN 1 .. 600 LOOP
		w := evcharge.member_wallet(9000 + 1 + floor(random() * 20)::int);
		a := round((1 + random() * 300)::numeric, 2);
		CASE
		WHEN random() < 0.55 THEN
			-- a top-up, one in five sent twice by the provider
			k := 'WX-' || i;
			PERFORM evcharge.top_up(w, a, k);
			INSERT INTO event VALUES (i, 'top_up', w, a, k);
			IF random() < 0.2 THEN
				PERFORM evcharge.top_up(w, a, k);
			END IF;
		WHEN random() < 0.5 THEN
			k := 'CS-' || i;
			PERFORM evcharge.manual_credit(w, a, 'generated', k);
			INSERT INTO event VALUES (i, 'credit', w, a, k);
		ELSE
			IF (SELECT balance FROM evcharge.account WHERE account_id = w) > 10
			   AND NOT EXISTS (SELECT 1 FROM evcharge.refund f WHERE f.account_id = w AND f.state = 'requested') THEN
				r := evcharge.request_refund(w, CASE WHEN random() < 0.5 THEN 'bank' ELSE 'provider' END);
				INSERT INTO event VALUES (i, 'refund', w, r.amount, r.refund_id::text);
				IF random() < 0.5 THEN
					PERFORM evcharge.approve_refund(r.refund_id);
				ELSE
					PERFORM evcharge.reject_refund(r.refund_id, 'generated');
					INSERT INTO event VALUES (i, 'rejected', w, r.amount, r.refund_id::text);
				END IF;
			END IF;
		END CASE;
	END LOOP;
END $$;

SELECT is((SELECT count(*) FROM verify_ledger()), 0::bigint, 'after 600 generated events the ledger has no discrepancy');
SELECT is(
	(SELECT count(*) FROM account a
	 WHERE a.operator_id = 90 AND a.kind = 'member_wallet'
	   AND a.balance <> coalesce((SELECT sum(CASE e.kind WHEN 'refund' THEN -e.amount ELSE e.amount END)
	                              FROM event e WHERE e.wallet = a.account_id), 0)),
	0::bigint, 'every wallet holds its top-ups and credits, less refunds approved (rejected ones returned)');
SELECT is(
	(SELECT count(*) FROM ledger_txn WHERE operator_id = 90 AND kind = 'top_up'),
	(SELECT count(*) FROM event WHERE kind = 'top_up'),
	'a top-up the provider sent twice is one transaction');
SELECT ok((SELECT count(*) FROM event WHERE kind = 'refund') > 10 AND (SELECT count(*) FROM event WHERE kind = 'rejected') > 3,
	'the run did request, approve and reject refunds');

-- Replay every event: nothing changes.
CREATE TEMP TABLE before AS SELECT account_id, balance FROM account WHERE operator_id = 90;
SELECT (SELECT count(*) FILTER (WHERE r.replayed) FROM event e, top_up(e.wallet, e.amount, e.key) r
        WHERE e.kind = 'top_up')
     + (SELECT count(*) FILTER (WHERE r.replayed) FROM event e, manual_credit(e.wallet, e.amount, 'generated', e.key) r
        WHERE e.kind = 'credit') AS replays \gset
SELECT is(:replays::bigint, (SELECT count(*) FROM event WHERE kind IN ('top_up', 'credit')),
	'every top-up and credit sent again is recognised as a replay');
SELECT is(
	(SELECT count(*) FROM account a JOIN before b USING (account_id) WHERE a.balance <> b.balance),
	0::bigint, 'and no balance moved');

SELECT * FROM finish();
ROLLBACK;
