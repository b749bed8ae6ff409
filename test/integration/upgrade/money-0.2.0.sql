-- Money on top of the 0.2.0 demo day, with 0.2.0's functions: a member's
-- top-ups (one replayed), a refund requested and approved, another
-- requested and rejected, a held bill repaired by hand and settled.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET search_path = public, evcharge;
-- Its own operator: the demo day, run again, replaces operator 20 whole.
INSERT INTO operator VALUES (77, 'Upgrade test wallets');
INSERT INTO member (member_id, operator_id) VALUES (9701, 77), (9702, 77);
SELECT member_wallet(9701) AS w1, member_wallet(9702) AS w2 \gset
SELECT count(*) FROM top_up(:w1, 200.00, 'UPG-TOPUP-1');
SELECT count(*) FROM top_up(:w1, 200.00, 'UPG-TOPUP-1');
SELECT count(*) FROM top_up(:w2, 88.88, 'UPG-TOPUP-2');
SELECT refund_id AS r1 FROM request_refund(:w1, 'bank') \gset
SELECT count(*) FROM approve_refund(:r1);
SELECT count(*) FROM top_up(:w2, 11.12, 'UPG-TOPUP-3');
SELECT refund_id AS r2 FROM request_refund(:w2, 'provider') \gset
SELECT count(*) FROM reject_refund(:r2, 'member changed their mind');
SELECT order_no AS held FROM bill WHERE state = 'held' ORDER BY order_no LIMIT 1 \gset
SELECT count(*) FROM repair_bill(:'held', 'upgrade test: energy agreed with the driver', 'manual', 1234);
SELECT count(*) FROM settle_bills();
