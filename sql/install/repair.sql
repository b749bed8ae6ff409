-- repair.sql: held bills released by repair, one at a time or by rule,
-- with every revision kept (bill_revision) and, where the operator wants
-- it, a notice to the driver when the amount changed (notice_adjustment,
-- bill.sql).
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE FUNCTION evcharge.repair_bill(order_no text, reason text, method text DEFAULT 'recompute',
	energy_wh bigint DEFAULT NULL)
RETURNS evcharge.bill
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	v_order text := repair_bill.order_no;
	s evcharge.charge_session;
	old evcharge.bill;
	had_bill boolean;
	nb evcharge.bill;
	rated int;
BEGIN
	IF repair_bill.reason IS NULL OR btrim(repair_bill.reason) = '' THEN
		RAISE EXCEPTION 'a repair of order % needs a reason', coalesce(v_order, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Say why, as the driver or the support ticket would read it: ''pile record lost, recomputed from heartbeats''.';
	END IF;
	IF repair_bill.method IS NULL OR repair_bill.method NOT IN ('recompute', 'pile', 'platform', 'manual') THEN
		RAISE EXCEPTION 'repair method "%" is not known', repair_bill.method
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Use recompute (heartbeats, pile record and plans in force), pile (the pile''s energy), platform (the heartbeats'' energy) or manual (energy set by hand).';
	END IF;
	-- Energy is set by hand only in a manual repair; given to another
	-- method it would be dropped without a word.
	IF repair_bill.energy_wh IS NOT NULL AND repair_bill.method <> 'manual' THEN
		RAISE EXCEPTION 'a % repair takes no energy (% Wh given)', repair_bill.method, repair_bill.energy_wh
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'Energy agreed by hand is a manual repair: repair_bill(order_no, reason, ''manual'', 12500).';
	END IF;
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = v_order;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', v_order
			USING ERRCODE = 'no_data_found', HINT = 'Order numbers are in evcharge.charge_session.';
	END IF;
	IF s.state IN ('pending', 'charging', 'occupied', 'cancelled') THEN
		RAISE EXCEPTION 'order % has no bill to repair: its session is %', v_order, s.state
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      HINT = 'A bill is repaired once its session has ended.';
	END IF;
	-- One repair at a time per bill: a second one fails at once, it does not wait.
	BEGIN
		PERFORM 1 FROM evcharge.charge_session cs WHERE cs.order_no = v_order FOR UPDATE NOWAIT;
		SELECT * INTO old FROM evcharge.bill b WHERE b.order_no = v_order FOR UPDATE NOWAIT;
		had_bill := FOUND;
	EXCEPTION WHEN lock_not_available THEN
		RAISE EXCEPTION 'bill % is being repaired or billed by another session', v_order
			USING ERRCODE = 'lock_not_available',
			      HINT = 'Wait for it to finish, then look at evcharge.bill_revision before repairing again.';
	END;
	PERFORM 1 FROM evcharge.coupon c WHERE c.member_id = s.member_id AND c.used_order_no IS NULL FOR UPDATE;
	-- Energy by hand beyond any bill of the operator is refused before it is priced.
	IF repair_bill.method = 'manual' AND repair_bill.energy_wh IS NOT NULL THEN
		PERFORM evcharge.check_bill_limits((SELECT st.operator_id FROM evcharge.station st WHERE st.station_id = s.station_id),
			repair_bill.energy_wh, NULL, format('a repair of order %s', v_order));
	END IF;
	nb := evcharge.compute_bill(v_order, repair_bill.method, repair_bill.energy_wh);
	-- A bill that still cannot be priced is not released at no amount: that
	-- would be a default price of zero.
	IF nb.anomalies OPERATOR(evcharge.&&) '12+17+19'::evcharge.anomaly_set THEN
		RAISE EXCEPTION 'order % still cannot be priced', v_order
			USING ERRCODE = 'object_not_in_prerequisite_state',
			      DETAIL = array_to_string(ARRAY(SELECT a FROM unnest(nb.applied) a
			                                     WHERE a LIKE 'not priced: %' OR a LIKE 'no tariff in force: %'), '; '),
			      HINT = CASE
			          WHEN evcharge.anomaly_has(nb.anomalies, 17) THEN
			              format('Register pile %s with its current type (evcharge.pile), then repair again.', evcharge.pile(s.gun))
			          WHEN evcharge.anomaly_has(nb.anomalies, 12) THEN
			              'Add the plan in force at the time to evcharge.station_tariff, then repair again.'
			          ELSE 'Mend the cause the detail names, then repair again.' END;
	END IF;
	-- Plausible: energy set by hand no more than the gun can deliver in the
	-- bill's span, and no bill beyond the operator's limits, whatever the method.
	SELECT pl.rated_power_w INTO rated FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(s.gun);
	IF repair_bill.method = 'manual' AND rated IS NOT NULL
	   AND nb.energy_wh > evcharge.gun_energy_limit(rated, nb.started_at, nb.ended_at) THEN
		RAISE EXCEPTION '% Wh cannot have been charged by gun % from % to %', nb.energy_wh, s.gun, nb.started_at, nb.ended_at
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = format('The gun is rated %s W: at most %s Wh in that time (rated power x time x 1.2 + 10 Wh).',
			                      rated, floor(evcharge.gun_energy_limit(rated, nb.started_at, nb.ended_at))),
			      HINT = 'Check the energy agreed; if the pile''s own record is right, repair with method pile.';
	END IF;
	PERFORM evcharge.check_bill_limits((SELECT st.operator_id FROM evcharge.station st WHERE st.station_id = s.station_id),
		nb.energy_wh, nb.total, format('a repair of order %s', v_order));

	-- The same repair again changes nothing and returns the bill as it is.
	IF had_bill AND old.state IN ('final', 'settled')
	   AND (nb.energy_wh, nb.wh_by_class, nb.energy_fee, nb.service_fee, nb.occupancy_fee, nb.discount,
	        nb.total, nb.energy_source, nb.coupon_id, evcharge.anomaly_codes(nb.anomalies))
	       IS NOT DISTINCT FROM
	       (old.energy_wh, old.wh_by_class, old.energy_fee, old.service_fee, old.occupancy_fee, old.discount,
	        old.total, old.energy_source, old.coupon_id, evcharge.anomaly_codes(old.anomalies)) THEN
		RETURN old;
	END IF;

	-- A settled bill stays settled: the difference moves as an adjustment.
	IF had_bill AND old.state = 'settled' THEN
		nb.state := 'settled';
	END IF;
	nb := evcharge.store_bill(nb, repair_bill.method, repair_bill.reason);
	UPDATE evcharge.charge_session cs SET bill_error = NULL WHERE cs.order_no = v_order AND cs.bill_error IS NOT NULL;
	-- A settled bill's difference is posted by the money layer as the
	-- revision is written (money.sql, bill_revision_adjusts_ledger).

	IF had_bill THEN
		PERFORM evcharge.notice_adjustment(s, nb.revision, old.total, nb.total);
	END IF;
	RETURN nb;
END $$;
COMMENT ON FUNCTION evcharge.repair_bill(text, text, text, bigint) IS
	'recomputes a bill (recompute: heartbeats, pile record and plans in force; pile: the pile''s energy; platform: the heartbeats'' energy; manual: energy_wh), releases it and records the revision with the reason (a settled bill stays settled and the difference is posted to the ledger); the same repair twice changes nothing; a repair already running on the bill makes this one fail at once (55P03); refused (22023): energy given to a method other than manual, manual energy beyond what the gun can deliver in the bill''s span (gun_energy_limit), a bill beyond the operator''s limits (check_bill_limits); refused (55000): a bill that still cannot be priced (no tariff, current type unknown, pricing failed)';

CREATE FUNCTION evcharge.repair_bills(codes evcharge.anomaly_set, station_id bigint, day date, reason text,
	method text DEFAULT 'recompute')
RETURNS TABLE (order_no text, old_total numeric, new_total numeric, state text, outcome text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	tz text;
	b record;
	nb evcharge.bill;
	msg text;
BEGIN
	IF repair_bills.codes IS NULL OR repair_bills.codes OPERATOR(evcharge.=) ''::evcharge.anomaly_set THEN
		RAISE EXCEPTION 'a repair by rule needs the anomaly codes it applies to'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'E.g. repair_bills(''1'', 42, ''2026-11-20'', ''pile records lost in the outage'').';
	END IF;
	IF repair_bills.day IS NULL OR NOT isfinite(repair_bills.day) THEN
		RAISE EXCEPTION 'a repair by rule needs the day the bills ended on, not %', coalesce(repair_bills.day::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Give the day in the station''s time zone, e.g. ''2026-11-20''.';
	END IF;
	SELECT st.tz INTO tz FROM evcharge.station st WHERE st.station_id = repair_bills.station_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'station % is not known', repair_bills.station_id
			USING ERRCODE = 'no_data_found', HINT = 'Stations are in evcharge.station.';
	END IF;
	FOR b IN
		SELECT bl.order_no, bl.total, bl.revision FROM evcharge.bill bl
		WHERE bl.station_id = repair_bills.station_id AND bl.state <> 'settled'
		  AND bl.anomalies OPERATOR(evcharge.@>) repair_bills.codes
		  AND bl.ended_at >= (repair_bills.day::timestamp AT TIME ZONE tz)
		  AND bl.ended_at < ((repair_bills.day + 1)::timestamp AT TIME ZONE tz)
		ORDER BY bl.order_no
	LOOP
		order_no := b.order_no;
		old_total := b.total;
		BEGIN
			nb := evcharge.repair_bill(b.order_no, repair_bills.reason, repair_bills.method);
			new_total := nb.total;
			state := nb.state;
			outcome := CASE WHEN nb.revision > b.revision THEN 'repaired' ELSE 'unchanged' END;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
			new_total := NULL;
			state := NULL;
			outcome := 'skipped: ' || msg;
		END;
		RETURN NEXT;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.repair_bills(evcharge.anomaly_set, bigint, date, text, text) IS
	'repairs by rule every unsettled bill of a station that carries all the given codes and ended on the given day (station''s local time), each as repair_bill() would; one row per bill with its outcome (repaired, unchanged, or skipped with the reason)';

