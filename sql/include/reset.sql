\set ECHO none
-- sql/include/reset.sql: leaves the regression database as the test found
-- it.  pg_regress runs every file in one database, so a test that writes
-- evcharge's tables ends with \i sql/include/reset.sql.
TRUNCATE evcharge.partner_month_item, evcharge.partner_month_statement, evcharge.reconciliation_finding, evcharge.provider_statement_line, evcharge.partner_statement_line,
	evcharge.statement_source, evcharge.stop_request, evcharge.bill_refund, evcharge.refund_fee_bands, evcharge.refund, evcharge.ledger_entry, evcharge.ledger_txn, evcharge.account, evcharge.attribution,
	evcharge.member, evcharge.sub_operator, evcharge.finance_policy, evcharge.heartbeat, evcharge.quarantine, evcharge.gun_state, evcharge.offline_period,
	evcharge.network_incident, evcharge.pile, evcharge.customer_notice, evcharge.bill_revision, evcharge.session_cancellation,
	evcharge.bill, evcharge.pile_record, evcharge.partner, evcharge.anomaly_policy,
	evcharge.charge_session, evcharge.fault_event, evcharge.coupon, evcharge.occupancy_exemption,
	evcharge.occupancy_fee, evcharge.promotion_group, evcharge.promotion_station, evcharge.promotion,
	evcharge.group_station, evcharge.customer_group, evcharge.station_tariff, evcharge.station,
	evcharge.job_watermark, evcharge.ocpp_policy, evcharge.ocpp_transaction, evcharge.ocpp_command, evcharge.ocpp_connection, evcharge.ocpp_bridge, evcharge.ykc_pile, evcharge.calendar_day, evcharge.declared_day, evcharge.tariff_season,
	evcharge.operator RESTART IDENTITY CASCADE;
DO $$
DECLARE p text;
BEGIN
	FOR p IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	         WHERE i.inhparent = 'evcharge.heartbeat'::regclass AND c.relname <> 'heartbeat_default' LOOP
		EXECUTE format('DROP TABLE evcharge.%I', p);
	END LOOP;
END $$;
\set ECHO all
