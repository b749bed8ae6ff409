-- bill.sql: the bill of a session: computed from its heartbeats, the pile's
-- record and the prices in force (compute_bill), checked for anomalies,
-- made when the pile record and the unplug are both in (finalise_bill) or
-- when the record is given up on (detect_lost_bills, repair.sql).
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TABLE evcharge.bill (
	order_no text PRIMARY KEY REFERENCES evcharge.charge_session,
	gun evcharge.gun_id NOT NULL,
	station_id bigint NOT NULL,
	member_id bigint,
	channel text NOT NULL,
	started_at timestamptz,
	ended_at timestamptz,
	occupied_until timestamptz,
	energy_wh bigint NOT NULL,
	wh_by_class bigint[] NOT NULL,
	energy_fee numeric(12, 2) NOT NULL,
	service_fee numeric(12, 2) NOT NULL,
	occupancy_fee numeric(12, 2) NOT NULL,
	discount numeric(12, 2) NOT NULL,
	total numeric(12, 2) NOT NULL,
	applied text[] NOT NULL,
	energy_source text NOT NULL CHECK (energy_source IN ('pile', 'heartbeats', 'manual')),
	anomalies evcharge.anomaly_set NOT NULL DEFAULT '',
	coupon_id bigint,
	state text NOT NULL DEFAULT 'final' CHECK (state IN ('final', 'held', 'settled')),
	revision int NOT NULL DEFAULT 0,
	finalised_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	partner_order_no text,
	breakdown jsonb CHECK (jsonb_typeof(breakdown) = 'array'),
	CHECK (total = energy_fee + service_fee + occupancy_fee - discount)
);
CREATE INDEX bill_station_idx ON evcharge.bill (station_id, ended_at);
COMMENT ON INDEX evcharge.bill_station_idx IS 'bills of a station by the end of charging: reports per station and day';
-- daily_report() takes a bill's day from its end of charging, or its start
-- when it has none: this index serves that, so a day costs its own bills.
CREATE INDEX bill_station_day_idx ON evcharge.bill (station_id, (coalesce(ended_at, started_at)));
COMMENT ON INDEX evcharge.bill_station_day_idx IS 'bills of a station by coalesce(ended_at, started_at), the day daily_report() counts a bill in';
-- Finding the bills that carry a code: anomalies @> '1' uses this index.
-- Not partial: the planner cannot prove that anomalies @> '8' implies
-- anomalies <> '', so a partial index would never serve that query (a bill
-- without anomalies adds no key to a GIN index anyway).
CREATE INDEX bill_anomalies_idx ON evcharge.bill USING gin (anomalies);
COMMENT ON INDEX evcharge.bill_anomalies_idx IS 'finding the bills that carry anomaly codes (@>, &&, =)';
CREATE INDEX bill_held_idx ON evcharge.bill (station_id, ended_at) WHERE state = 'held';
COMMENT ON INDEX evcharge.bill_held_idx IS 'held bills of a station by the end of charging: the repair desk''s list and bulk repairs';
COMMENT ON TABLE evcharge.bill IS
	'The bill of a session, one per session, priced as quote() would: plans in force, group price, promotions, occupancy fee, best coupon';
COMMENT ON COLUMN evcharge.bill.order_no IS 'the session';
COMMENT ON COLUMN evcharge.bill.gun IS 'the gun';
COMMENT ON COLUMN evcharge.bill.station_id IS 'the station';
COMMENT ON COLUMN evcharge.bill.member_id IS 'the member';
COMMENT ON COLUMN evcharge.bill.channel IS 'start channel';
COMMENT ON COLUMN evcharge.bill.started_at IS 'start of charging';
COMMENT ON COLUMN evcharge.bill.ended_at IS 'end of charging';
COMMENT ON COLUMN evcharge.bill.occupied_until IS 'when the gun was unplugged';
COMMENT ON COLUMN evcharge.bill.energy_wh IS 'billed energy, Wh';
COMMENT ON COLUMN evcharge.bill.wh_by_class IS 'billed Wh per class {sharp, peak, flat, valley}, and deep_valley when a plan of the session has it';
COMMENT ON COLUMN evcharge.bill.energy_fee IS 'electricity fee, yuan';
COMMENT ON COLUMN evcharge.bill.service_fee IS 'service fee, yuan';
COMMENT ON COLUMN evcharge.bill.occupancy_fee IS 'occupancy fee, yuan';
COMMENT ON COLUMN evcharge.bill.discount IS 'coupon discount, yuan';
COMMENT ON COLUMN evcharge.bill.total IS 'energy + service + occupancy - discount';
COMMENT ON COLUMN evcharge.bill.applied IS 'what applied: plans, group, promotions, occupancy, coupon';
COMMENT ON COLUMN evcharge.bill.energy_source IS 'pile: the pile record''s total, split in the measured proportions; heartbeats: measured only; manual: set by hand in a repair';
COMMENT ON COLUMN evcharge.bill.anomalies IS 'the anomaly codes found when it was made or last recomputed (docs/anomalies.md)';
COMMENT ON COLUMN evcharge.bill.coupon_id IS 'the coupon it used, if any';
COMMENT ON COLUMN evcharge.bill.state IS 'final (to be charged); held (a blocking anomaly: not charged until repaired); settled (charged)';
COMMENT ON COLUMN evcharge.bill.revision IS 'how many times it was revised (bill_revision)';
COMMENT ON COLUMN evcharge.bill.finalised_at IS 'when it was made';
COMMENT ON COLUMN evcharge.bill.updated_at IS 'when it was last revised';
COMMENT ON COLUMN evcharge.bill.partner_order_no IS 'the partner''s own order number for the session (charge_session.partner_order_no), when it has one';
COMMENT ON COLUMN evcharge.bill.breakdown IS
	'how the energy and service fees were made, per class with energy: [{"class", "wh", "energy_fee_exact", "energy_fee", "service_fee_exact", "service_fee"}] (bill_breakdown); the charged shares add up to energy_fee and service_fee; NULL when nothing was priced (no tariff) or, for a bill made before 0.3.0, when it could not be worked out exactly';

CREATE TABLE evcharge.bill_revision (
	bill_revision_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	order_no text NOT NULL REFERENCES evcharge.bill,
	revision int NOT NULL CHECK (revision > 0),
	method text NOT NULL CHECK (method IN ('recompute', 'pile', 'platform', 'manual', 'pile_record', 'refund')),
	reason text NOT NULL CHECK (reason <> ''),
	revised_by text NOT NULL DEFAULT current_user,
	revised_at timestamptz NOT NULL DEFAULT now(),
	before jsonb,
	after jsonb NOT NULL,
	UNIQUE (order_no, revision)
);
COMMENT ON TABLE evcharge.bill_revision IS
	'Every change to a bill after it was made: the bill before and after (whole rows as jsonb), how, why, by whom and when; never updated or deleted';
COMMENT ON COLUMN evcharge.bill_revision.bill_revision_id IS 'row id';
COMMENT ON COLUMN evcharge.bill_revision.order_no IS 'the bill';
COMMENT ON COLUMN evcharge.bill_revision.revision IS 'revision number of the bill, from 1';
COMMENT ON COLUMN evcharge.bill_revision.method IS 'recompute, pile, platform, manual (repair_bill), pile_record (a late pile record completed a bill made from heartbeats), or refund (refund_bill gave part or all of it back: bill_refund_id)';
COMMENT ON COLUMN evcharge.bill_revision.reason IS 'why, as the operator gave it';
COMMENT ON COLUMN evcharge.bill_revision.revised_by IS 'the database user who revised it';
COMMENT ON COLUMN evcharge.bill_revision.revised_at IS 'when';
COMMENT ON COLUMN evcharge.bill_revision.before IS 'the bill before (NULL when the repair made the bill: its record never came and it had not been billed yet)';
COMMENT ON COLUMN evcharge.bill_revision.after IS 'the bill after';

CREATE FUNCTION evcharge.bill_revision_immutable() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION 'bill revisions are an audit trail and cannot be changed'
		USING ERRCODE = 'insufficient_privilege', HINT = 'Repair the bill again: a new revision records the change.';
END $$;
COMMENT ON FUNCTION evcharge.bill_revision_immutable() IS 'trigger: refuses updates and deletes of bill_revision';
CREATE TRIGGER bill_revision_immutable BEFORE UPDATE OR DELETE ON evcharge.bill_revision
	FOR EACH ROW EXECUTE FUNCTION evcharge.bill_revision_immutable();
COMMENT ON TRIGGER bill_revision_immutable ON evcharge.bill_revision IS 'the audit trail of bills cannot be changed or deleted';

-- A bill's own breakdown, per class that has energy: its Wh, the exact
-- electricity and service fees, and the share of the charged (truncated)
-- fee each class carries.  The bill cuts each fee to the fen once, from the
-- exact sum (docs/billing.md); so that the shares add up to what was
-- charged, each share is its exact fee cut to the fen, and the fen or fens
-- the single cut kept go one each to the classes whose own cut lost the
-- most (ties: the earlier class).  A share is thus within a fen of its
-- exact fee, and the total never above the exact sum.  Classes in the
-- order of the arrays {sharp, peak, flat, valley}; keyed by name, so a
-- class added to the plans needs no new column.
CREATE FUNCTION evcharge.bill_breakdown(wh bigint[], energy_fee_exact numeric[], service_fee_exact numeric[])
RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
	WITH c AS (
		SELECT u.i, (ARRAY['sharp', 'peak', 'flat', 'valley'])[u.i::int] AS class, u.wh, u.e, u.s,
		       trunc(u.e, 2) AS e_cut, trunc(u.s, 2) AS s_cut
		FROM unnest(bill_breakdown.wh, bill_breakdown.energy_fee_exact, bill_breakdown.service_fee_exact)
		     WITH ORDINALITY AS u(wh, e, s, i)
	), kept AS (
		SELECT round((trunc(sum(c.e), 2) - sum(c.e_cut)) * 100)::int AS e_fens,
		       round((trunc(sum(c.s), 2) - sum(c.s_cut)) * 100)::int AS s_fens
		FROM c
	), ranked AS (
		SELECT c.*, row_number() OVER (ORDER BY c.e - c.e_cut DESC, c.i) AS e_rank,
		       row_number() OVER (ORDER BY c.s - c.s_cut DESC, c.i) AS s_rank
		FROM c
	)
	SELECT coalesce(jsonb_agg(jsonb_build_object(
		'class', coalesce(r.class, 'class ' || r.i),
		'wh', r.wh,
		'energy_fee_exact', trim_scale(r.e),
		'energy_fee', r.e_cut + CASE WHEN r.e_rank <= k.e_fens THEN 0.01 ELSE 0 END,
		'service_fee_exact', trim_scale(r.s),
		'service_fee', r.s_cut + CASE WHEN r.s_rank <= k.s_fens THEN 0.01 ELSE 0 END) ORDER BY r.i)
		FILTER (WHERE r.wh <> 0 OR r.e <> 0 OR r.s <> 0), '[]'::jsonb)
	FROM ranked r CROSS JOIN kept k;
END;
COMMENT ON FUNCTION evcharge.bill_breakdown(bigint[], numeric[], numeric[]) IS
	'a bill''s breakdown from Wh and exact fees per class {sharp, peak, flat, valley}: a jsonb array, one object per class with energy, of class, wh, energy_fee_exact, energy_fee, service_fee_exact, service_fee; the charged shares are the exact fees cut to the fen, plus a fen each to the classes that lost most in their cut, so that they add up to trunc(sum, 2) of each fee';
-- A length of time as support says it: "2 h", "1 h 20 min", "3 min 30 s",
-- "45 s" (whole seconds, the sign dropped).
CREATE FUNCTION evcharge.duration_words(d interval) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (SELECT CASE
		WHEN s >= 3600 THEN concat_ws(' ', (s / 3600) || ' h', CASE WHEN s % 3600 >= 60 THEN (s % 3600 / 60) || ' min' END)
		WHEN s >= 60 THEN concat_ws(' ', (s / 60) || ' min', CASE WHEN s % 60 > 0 THEN (s % 60) || ' s' END)
		ELSE s || ' s' END
	FROM (SELECT abs(floor(extract(epoch FROM d)))::bigint AS s) x);
COMMENT ON FUNCTION evcharge.duration_words(interval) IS
	'a length of time in words as support writes it: 2 h, 1 h 20 min, 3 min 30 s, 45 s (whole seconds, sign dropped)';

-- Why the pile's clock is not believed for a record (anomaly 3), one
-- sentence per reason, times on the wall clock of tz; empty when it is
-- believed.  The one rule: compute_bill() believes the record's times
-- exactly when this is empty, and the evidence chart prints these words.
CREATE FUNCTION evcharge.pile_record_clock_faults(rec evcharge.pile_record, p_started_at timestamptz,
	pol evcharge.anomaly_policy, tz text) RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT coalesce(array_agg(f.said ORDER BY f.n) FILTER (WHERE f.said IS NOT NULL), '{}')
	FROM (VALUES
		(1, CASE WHEN rec.started_at < pol.plausible_from THEN
			format('start %s is before %s: the pile''s clock was not set',
			       to_char(rec.started_at AT TIME ZONE tz, 'YYYY-MM-DD HH24:MI'),
			       to_char(pol.plausible_from AT TIME ZONE tz, 'YYYY-MM-DD')) END),
		(2, CASE WHEN rec.ended_at < rec.started_at THEN
			format('end %s is before its start %s', to_char(rec.ended_at AT TIME ZONE tz, 'HH24:MI:SS'),
			       to_char(rec.started_at AT TIME ZONE tz, 'HH24:MI:SS')) END),
		(3, CASE WHEN rec.ended_at > rec.received_at + pol.clock_skew THEN
			format('end %s is %s after it arrived (%s)', to_char(rec.ended_at AT TIME ZONE tz, 'HH24:MI'),
			       evcharge.duration_words(rec.ended_at - rec.received_at),
			       to_char(rec.received_at AT TIME ZONE tz, 'HH24:MI')) END),
		(4, CASE WHEN p_started_at IS NOT NULL
		          AND greatest(rec.started_at - p_started_at, p_started_at - rec.started_at) > pol.clock_skew THEN
			format('start %s is %s from the platform''s start %s', to_char(rec.started_at AT TIME ZONE tz, 'HH24:MI'),
			       evcharge.duration_words(greatest(rec.started_at - p_started_at, p_started_at - rec.started_at)),
			       to_char(p_started_at AT TIME ZONE tz, 'HH24:MI')) END)
	) f(n, said);
END;
COMMENT ON FUNCTION evcharge.pile_record_clock_faults(evcharge.pile_record, timestamptz, evcharge.anomaly_policy, text) IS
	'why a pile record''s times are not believed (anomaly 3): start before the policy''s plausible_from, end before start, end more than clock_skew after it arrived, start more than clock_skew from the platform''s; one sentence each, times in tz; empty when believed (compute_bill''s rule)';

-- What a bill of the session would be now, and its anomalies; writes
-- nothing.  p_method: auto (as the pipeline bills: the pile's energy when
-- plausible, held when a blocking anomaly is found), recompute (the same,
-- released), pile (the pile's energy, even if implausible), platform (the
-- heartbeats' energy), manual (p_energy_wh).
CREATE FUNCTION evcharge.compute_bill(p_order_no text, p_method text DEFAULT 'auto', p_energy_wh bigint DEFAULT NULL)
RETURNS evcharge.bill
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	rec evcharge.pile_record;
	has_rec boolean;
	pol evcharge.anomaly_policy;
	rated int;
	firmware text;
	allowed text[];
	smp record;
	nsamples int;
	measured bigint;
	t_start timestamptz;
	t_end timestamptz;
	times_ok boolean := true;
	plausible boolean := true;
	chosen bigint;
	source text;
	ts timestamptz[];
	wh bigint[];
	q evcharge.charge_quote;
	ctype text;
	no_price evcharge.anomaly_set;	-- why it has no price: no_tariff, current_type_unknown or not_priced (docs/anomalies.md)
	codes evcharge.anomaly_set := '';
	occ record;
	gap timestamptz;			-- the first instant without a plan in force
	breach text;				-- why the bill is beyond the operator's limits
	occupancy numeric := 0;
	applied text[];
	cp record;
	discount numeric := 0;
	tol bigint;
	b evcharge.bill;
	i int;
	blind boolean;
BEGIN
	IF p_method IS NULL OR p_method NOT IN ('auto', 'recompute', 'pile', 'platform', 'manual') THEN
		RAISE EXCEPTION 'bill method "%" is not known', p_method
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'A bill is computed by recompute, pile, platform or manual (auto is the pipeline''s own).',
			      HINT = 'Use recompute (heartbeats, pile record and plans in force), pile (the pile''s energy), platform (the heartbeats'' energy) or manual (energy set by hand).';
	END IF;
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', p_order_no
			USING ERRCODE = 'no_data_found', HINT = 'Order numbers are in evcharge.charge_session.';
	END IF;
	SELECT * INTO rec FROM evcharge.pile_record r WHERE r.order_no = p_order_no ORDER BY r.received_at, r.ctid LIMIT 1;
	has_rec := FOUND;
	pol := evcharge.station_policy(s.station_id);
	tol := pol.energy_tolerance_wh;
	SELECT pl.rated_power_w, pl.firmware, pl.current_type INTO rated, firmware, ctype
	FROM evcharge.pile pl WHERE pl.pile_id OPERATOR(evcharge.=) evcharge.pile(s.gun);
	SELECT pa.allowed_channels INTO allowed FROM evcharge.partner pa WHERE pa.partner_id = s.partner_id;

	-- The pile's clock: a record dated 1999, ending before it starts, ending
	-- after it was received, or far from the platform's start is not believed.
	IF has_rec THEN
		times_ok := cardinality(evcharge.pile_record_clock_faults(rec, s.started_at, pol, 'UTC')) = 0;
	END IF;
	t_start := coalesce(s.started_at, CASE WHEN has_rec AND times_ok THEN rec.started_at END, s.created_at);
	t_end := coalesce(s.charging_ended_at, CASE WHEN has_rec AND times_ok THEN rec.ended_at END, s.last_ts,
		s.occupied_until, t_start);
	-- The gun went offline during the session: what the platform saw ends
	-- at the silence, so the pile's own end (when its clock is believed) is
	-- the end, and the pile's figures are not held against the heartbeats'.
	blind := EXISTS (SELECT 1 FROM evcharge.offline_period o
		WHERE o.gun OPERATOR(evcharge.=) s.gun AND o.started_at <= coalesce(s.occupied_until, t_end)
		  AND coalesce(o.ended_at, 'infinity') >= t_start);
	IF blind AND has_rec AND times_ok AND rec.ended_at > t_end THEN
		t_end := rec.ended_at;
	END IF;

	smp := evcharge.session_samples(p_order_no);
	nsamples := coalesce(array_length(smp.ts, 1), 0);
	measured := CASE WHEN nsamples > 0 THEN smp.meter_wh[nsamples] ELSE 0 END;

	-- The pile's energy is believed only if the gun could deliver it in the
	-- longer of the record's span and the platform's.
	IF has_rec AND rec.energy_wh IS NOT NULL THEN
		plausible := coalesce(rec.energy_wh <= rated::bigint * extract(epoch FROM
			greatest(CASE WHEN times_ok THEN rec.ended_at - rec.started_at END, t_end - t_start)) / 3600 * 1.2 + 10, true);
	END IF;

	CASE p_method
	WHEN 'auto', 'recompute' THEN
		IF has_rec AND rec.energy_wh IS NOT NULL AND plausible THEN
			chosen := rec.energy_wh;
			source := 'pile';
		ELSE
			source := 'heartbeats';
		END IF;
	WHEN 'pile' THEN
		IF NOT has_rec OR rec.energy_wh IS NULL THEN
			RAISE EXCEPTION 'order % has no pile record with energy', p_order_no
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      HINT = 'Use recompute, platform, or manual with the energy.';
		END IF;
		chosen := rec.energy_wh;
		source := 'pile';
	WHEN 'platform' THEN
		source := 'heartbeats';
	ELSE
		IF p_energy_wh IS NULL OR p_energy_wh < 0 THEN
			RAISE EXCEPTION 'energy % Wh cannot be set by hand', coalesce(p_energy_wh::text, 'NULL')
				USING ERRCODE = 'invalid_parameter_value',
				      HINT = 'A manual repair needs the energy in Wh, 0 or more: repair_bill(order_no, reason, ''manual'', 12500).';
		END IF;
		chosen := p_energy_wh;
		source := 'manual';
	END CASE;

	-- The curve to price: measured, scaled to the chosen total in the
	-- measured proportions, or the total evenly over the span.
	IF measured = 0 THEN
		ts := ARRAY[t_start, greatest(t_end, t_start + interval '1 s')];
		wh := ARRAY[0, coalesce(chosen, 0)];
	ELSIF chosen IS NULL THEN
		ts := smp.ts;
		wh := smp.meter_wh;
	ELSE
		ts := smp.ts;
		wh := smp.meter_wh;
		FOR i IN 1 .. nsamples LOOP
			wh[i] := floor(smp.meter_wh[i]::numeric * chosen / measured)::bigint;
		END LOOP;
	END IF;

	-- Priced by the registry's current type.  Whatever keeps a session from
	-- being priced (no type, no plan, an error in pricing) gives a bill with
	-- its energy, no amount and the reason, held: never a default price,
	-- never no bill.
	IF ctype IS NULL THEN
		no_price := 'current_type_unknown';
		applied := ARRAY[format(CASE WHEN rated IS NULL THEN 'not priced: pile %s is not in the pile registry, which gives its current type'
		                             ELSE 'not priced: the pile registry does not give the current type of pile %s' END,
		                        evcharge.pile(s.gun))];
	ELSE
		-- No plan in force is tested, not caught (anomaly 12); what no
		-- test can foresee (a group of another operator, an amount beyond
		-- range) is caught, so the record still gives a held bill (19).
		SELECT evcharge.plan_gap(s.station_id, ctype, min(u.t), max(u.t)) INTO gap
		FROM unnest(ts, wh) AS u(t, w) WHERE u.w >= 0;
		IF gap IS NOT NULL THEN
			no_price := 'no_tariff';
			applied := ARRAY['no tariff in force: ' || evcharge.no_plan_reason(s.station_id, ctype, gap)];
		ELSE
			BEGIN
				q := evcharge.price_session(s.station_id, ctype, s.group_id, ts, wh);
				applied := q.applied;
			EXCEPTION WHEN OTHERS THEN
				no_price := 'not_priced';
				applied := ARRAY[format('not priced: %s: %s', SQLSTATE, SQLERRM)];
			END;
		END IF;
	END IF;
	IF no_price IS NOT NULL THEN
		q.kwh := wh[array_length(wh, 1)] / 1000.0;
		q.class_kwh := ARRAY[0, 0, 0, 0];
		q.energy_fee := 0;
		q.service_fee := 0;
	END IF;
	IF NOT plausible THEN
		applied := applied || format('the pile''s %s Wh exceed what %s W allow in its span', rec.energy_wh, rated);
	END IF;
	-- A partner order number in the pile's record that the session did not
	-- take (finalise_bill) is said on the bill.
	IF has_rec AND rec.partner_order_no IS DISTINCT FROM s.partner_order_no AND rec.partner_order_no IS NOT NULL THEN
		applied := applied || format('the pile record''s partner order number "%s" is not taken: %s',
			left(rec.partner_order_no, 80), coalesce(evcharge.partner_order_no_refusal(s, rec.partner_order_no),
			                                         'another session took it at the same moment'));
	END IF;

	-- Occupancy and the coupon, by the rules quote() uses; the coupon this
	-- bill already holds counts as free.
	IF no_price IS NULL THEN
		SELECT o.fee, o.applied INTO occ
		FROM evcharge.occupancy_charge(s.station_id, s.group_id, s.charging_ended_at, s.occupied_until) o;
		occupancy := occ.fee;
		IF occ.applied IS NOT NULL THEN
			applied := applied || occ.applied;
		END IF;
	END IF;
	IF s.member_id IS NOT NULL THEN
		SELECT c.coupon_id, c.discount INTO cp
		FROM evcharge.best_coupon(s.station_id, s.member_id, t_start, q.kwh, q.service_fee, p_order_no) c;
		IF FOUND THEN
			discount := cp.discount;
			applied := applied || format('coupon: %s', cp.coupon_id);
			b.coupon_id := cp.coupon_id;
		END IF;
	END IF;

	b.order_no := p_order_no;
	b.gun := s.gun;
	b.station_id := s.station_id;
	b.member_id := s.member_id;
	b.channel := s.channel;
	b.started_at := t_start;
	b.ended_at := t_end;
	b.occupied_until := s.occupied_until;
	b.energy_wh := round(q.kwh * 1000)::bigint;
	b.wh_by_class := ARRAY(SELECT round(k * 1000)::bigint FROM unnest(q.class_kwh) k);
	b.energy_fee := q.energy_fee;
	b.service_fee := q.service_fee;
	b.occupancy_fee := occupancy;
	b.discount := discount;
	b.total := q.energy_fee + q.service_fee + occupancy - discount;
	b.applied := ARRAY(SELECT a FROM unnest(applied) a ORDER BY a);
	b.energy_source := source;
	b.partner_order_no := s.partner_order_no;
	-- Per class, exact and as charged; nothing to break down without a price.
	b.breakdown := CASE WHEN no_price IS NULL THEN evcharge.bill_breakdown(b.wh_by_class, q.class_energy_fee, q.class_service_fee) END;

	-- Anomalies (docs/anomalies.md).
	IF NOT has_rec THEN
		codes := codes OPERATOR(evcharge.|) CASE WHEN blind THEN 'bill_lost_offline' ELSE 'bill_lost' END::evcharge.anomaly_set;
	ELSE
		IF NOT times_ok THEN
			codes := codes OPERATOR(evcharge.|) 'time_anomaly';
		END IF;
		-- Blind, the pile may well have charged more than was seen, never
		-- less: only less (or an implausible figure) is a mismatch then.
		IF rec.energy_wh IS NOT NULL AND (NOT plausible OR (measured > 0 AND
			CASE WHEN blind THEN measured - rec.energy_wh ELSE abs(rec.energy_wh - measured) END
			> greatest(tol, greatest(rec.energy_wh, measured) * pol.energy_tolerance_pct / 100))) THEN
			codes := codes OPERATOR(evcharge.|) 'energy_mismatch';
		END IF;
		IF times_ok AND NOT blind AND s.started_at IS NOT NULL AND s.charging_ended_at IS NOT NULL
		   AND greatest((rec.ended_at - rec.started_at) - (s.charging_ended_at - s.started_at),
		                (s.charging_ended_at - s.started_at) - (rec.ended_at - rec.started_at)) > pol.duration_tolerance THEN
			codes := codes OPERATOR(evcharge.|) 'duration_mismatch';
		END IF;
		IF times_ok AND NOT blind AND s.charging_ended_at IS NOT NULL AND s.occupied_until IS NOT NULL
		   AND greatest(rec.ended_at - s.charging_ended_at, s.charging_ended_at - rec.ended_at) > pol.occupancy_tolerance THEN
			codes := codes OPERATOR(evcharge.|) 'occupancy_mismatch';
		END IF;
	END IF;
	IF t_end < t_start THEN
		codes := codes OPERATOR(evcharge.|) 'time_anomaly';
	END IF;
	IF t_end - t_start > pol.max_session OR (t_end <= t_start AND b.energy_wh > 0) THEN
		codes := codes OPERATOR(evcharge.|) 'duration_anomaly';
	END IF;
	IF smp.jump_wh > tol THEN
		codes := codes OPERATOR(evcharge.|) 'energy_lost';
	END IF;
	IF no_price IS NOT NULL THEN
		codes := codes OPERATOR(evcharge.|) no_price;
	ELSIF b.energy_wh > 0 AND b.total <= 0 THEN
		codes := codes OPERATOR(evcharge.|) 'nonpositive_amount';
	END IF;
	IF allowed IS NOT NULL AND s.channel <> ALL (allowed) THEN
		codes := codes OPERATOR(evcharge.|) 'channel_not_allowed';
	END IF;
	IF b.energy_wh > tol AND measured = 0 AND nsamples >= 2 THEN
		codes := codes OPERATOR(evcharge.|) 'no_energy_flowed';
	END IF;
	IF firmware LIKE ANY (pol.defective_firmware) THEN
		codes := codes OPERATOR(evcharge.|) 'defective_firmware';
	END IF;
	-- More than the operator allows one bill (finance_policy): held, the limit said.
	SELECT br.message INTO breach
	FROM evcharge.bill_limit_breach((SELECT st.operator_id FROM evcharge.station st WHERE st.station_id = s.station_id),
		b.energy_wh, CASE WHEN no_price IS NULL THEN b.total END, format('order %s', p_order_no)) br;
	IF breach IS NOT NULL THEN
		codes := codes OPERATOR(evcharge.|) 'beyond_bill_limits';
		b.applied := ARRAY(SELECT a FROM unnest(b.applied || breach) a ORDER BY a);
	END IF;
	b.anomalies := codes;
	b.state := CASE WHEN p_method = 'auto' AND evcharge.anomaly_blocking(b.anomalies) THEN 'held' ELSE 'final' END;
	b.revision := 0;
	b.finalised_at := now();
	b.updated_at := now();
	RETURN b;
END $$;
COMMENT ON FUNCTION evcharge.compute_bill(text, text, bigint) IS
	'the bill a session would have now and its anomalies, written nowhere: method auto as the pipeline bills (held on a blocking anomaly), recompute, pile, platform or manual (p_energy_wh) as a repair would; priced by the registry''s current type; a session that cannot be priced keeps its energy with no amount (12 no tariff, 17 current type unknown, 19 pricing failed), one beyond the operator''s finance_policy limits carries 18';

-- Writes a computed bill: the first time as made, later as a revision.
CREATE FUNCTION evcharge.store_bill(b evcharge.bill, p_method text, p_reason text) RETURNS evcharge.bill
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	old evcharge.bill;
BEGIN
	SELECT * INTO old FROM evcharge.bill WHERE order_no = b.order_no FOR UPDATE;
	IF NOT FOUND THEN
		-- Made by a repair: revision 1, with no bill before.
		b.revision := CASE WHEN p_method = 'auto' THEN 0 ELSE 1 END;
		INSERT INTO evcharge.bill SELECT b.*;
		IF b.revision = 1 THEN
			INSERT INTO evcharge.bill_revision (order_no, revision, method, reason, before, after)
			VALUES (b.order_no, 1, p_method, p_reason, NULL, to_jsonb(b));
		END IF;
	ELSE
		b.finalised_at := old.finalised_at;
		b.revision := old.revision + 1;
		b.updated_at := now();
		UPDATE evcharge.bill SET gun = b.gun, station_id = b.station_id, member_id = b.member_id,
			channel = b.channel, started_at = b.started_at, ended_at = b.ended_at,
			occupied_until = b.occupied_until, energy_wh = b.energy_wh, wh_by_class = b.wh_by_class,
			energy_fee = b.energy_fee, service_fee = b.service_fee, occupancy_fee = b.occupancy_fee,
			discount = b.discount, total = b.total, applied = b.applied, energy_source = b.energy_source,
			anomalies = b.anomalies, coupon_id = b.coupon_id, state = b.state, revision = b.revision,
			updated_at = b.updated_at, partner_order_no = b.partner_order_no, breakdown = b.breakdown
		WHERE order_no = b.order_no;
	END IF;
	UPDATE evcharge.coupon SET used_order_no = NULL, used_at = NULL
	WHERE used_order_no = b.order_no AND coupon_id IS DISTINCT FROM b.coupon_id;
	IF b.coupon_id IS NOT NULL THEN
		UPDATE evcharge.coupon SET used_order_no = b.order_no, used_at = now()
		WHERE coupon_id = b.coupon_id AND (used_order_no IS NULL OR used_order_no = b.order_no);
		IF NOT FOUND THEN
			RAISE EXCEPTION 'coupon % was taken by another bill while order % was billed', b.coupon_id, b.order_no
				USING ERRCODE = 'serialization_failure', HINT = 'Bill it again: finalise_bill() or repair_bill().';
		END IF;
	END IF;
	-- The revision last, once the coupon is taken: a settled bill's revision
	-- is what the money layer posts the difference of (money.sql,
	-- bill_revision_adjusts_ledger), and it locks accounts after the coupon
	-- as every money function does.
	IF old.order_no IS NOT NULL THEN
		INSERT INTO evcharge.bill_revision (order_no, revision, method, reason, before, after)
		VALUES (b.order_no, b.revision, p_method, p_reason, to_jsonb(old), to_jsonb(b));
	END IF;
	RETURN b;
END $$;
COMMENT ON FUNCTION evcharge.store_bill(evcharge.bill, text, text) IS
	'writes a bill from compute_bill(): inserts it, or updates it and records the revision (method, reason, before, after); moves the coupon it uses';

-- The bill of a session that could not be billed at all (an error the
-- pricing does not catch: an amount beyond numeric(12, 2), a bug): built
-- from the session and its record alone, no amount, held with code 19 and
-- the reason, so that no ended session is left without a bill.
CREATE FUNCTION evcharge.unpriced_bill(p_order_no text, p_reason text) RETURNS evcharge.bill
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	rec_wh bigint;
	b evcharge.bill;
BEGIN
	SELECT * INTO s FROM evcharge.charge_session cs WHERE cs.order_no = p_order_no;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'order "%" is not known', p_order_no
			USING ERRCODE = 'no_data_found', HINT = 'Order numbers are in evcharge.charge_session.';
	END IF;
	SELECT r.energy_wh INTO rec_wh FROM evcharge.pile_record r
	WHERE r.order_no = p_order_no ORDER BY r.received_at, r.ctid LIMIT 1;
	b.order_no := p_order_no;
	b.gun := s.gun;
	b.station_id := s.station_id;
	b.member_id := s.member_id;
	b.channel := s.channel;
	b.started_at := coalesce(s.started_at, s.created_at);
	b.ended_at := coalesce(s.charging_ended_at, s.last_ts, s.occupied_until, b.started_at);
	b.occupied_until := s.occupied_until;
	-- The pile's energy when it gave one, else what was measured live.
	b.energy_source := CASE WHEN rec_wh >= 0 THEN 'pile' ELSE 'heartbeats' END;
	b.energy_wh := CASE WHEN rec_wh >= 0 THEN rec_wh
	                    ELSE (SELECT coalesce(sum(w), 0) FROM unnest(s.wh_by_class) w)::bigint END;
	b.wh_by_class := ARRAY[0, 0, 0, 0];
	b.energy_fee := 0;
	b.service_fee := 0;
	b.occupancy_fee := 0;
	b.discount := 0;
	b.total := 0;
	b.applied := ARRAY['not priced: ' || coalesce(p_reason, 'no reason given')];
	b.anomalies := '19';
	b.state := 'held';
	b.revision := 0;
	b.finalised_at := now();
	b.updated_at := now();
	RETURN b;
END $$;
COMMENT ON FUNCTION evcharge.unpriced_bill(text, text) IS
	'the bill of a session that could not be billed, written nowhere: its times, the pile''s energy (or the live measure), no amount, held with anomaly 19 and the reason in applied; what make_bill() stores when compute_bill() or store_bill() fails';

-- The pipeline's bill of a session: computed and stored, or when that
-- fails for any reason, stored held without an amount, with the reason
-- (kept in charge_session.bill_error too).  Never no bill.
CREATE FUNCTION evcharge.make_bill(p_order_no text) RETURNS evcharge.bill
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	st text;
	msg text;
	b evcharge.bill;
BEGIN
	BEGIN
		b := evcharge.store_bill(evcharge.compute_bill(p_order_no, 'auto'), 'auto', NULL);
		UPDATE evcharge.charge_session SET bill_error = NULL WHERE order_no = p_order_no AND bill_error IS NOT NULL;
		RETURN b;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	END;
	b := evcharge.store_bill(evcharge.unpriced_bill(p_order_no, st || ': ' || msg), 'auto', NULL);
	UPDATE evcharge.charge_session SET bill_error = st || ': ' || msg, updated_at = now() WHERE order_no = p_order_no;
	RETURN b;
END $$;
COMMENT ON FUNCTION evcharge.make_bill(text) IS
	'makes and stores the bill of an ended session as the pipeline does (compute_bill auto, store_bill; charge_session.bill_error cleared); when that fails, stores unpriced_bill() instead (held, anomaly 19, the error as its reason, also in charge_session.bill_error): every session the pipeline bills gets a bill';

-- Who started a charge at the pile: the card or vehicle its record names.
CREATE FUNCTION evcharge.identify_starter(s evcharge.charge_session, rec evcharge.pile_record)
RETURNS evcharge.charge_session
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	card text := nullif(regexp_replace(rec.card_no, '\s', '', 'g'), '');
	m evcharge.member;
BEGIN
	IF s.channel <> 'offline' OR s.member_id IS NOT NULL OR s.partner_id IS NOT NULL
	   OR (rec.start_by IS NULL AND card IS NULL AND rec.vin IS NULL) THEN
		RETURN s;
	END IF;
	SELECT mm.* INTO m FROM evcharge.member mm JOIN evcharge.station st ON st.operator_id = mm.operator_id
	WHERE st.station_id = s.station_id
	  AND ((card IS NOT NULL AND mm.card_no = card) OR (card IS NULL AND rec.vin IS NOT NULL AND mm.vin = rec.vin));
	UPDATE evcharge.charge_session cs SET
		channel = CASE WHEN rec.start_by IN ('card', 'password', 'vin') THEN rec.start_by
		               WHEN card IS NOT NULL THEN 'card' WHEN rec.vin IS NOT NULL THEN 'vin' ELSE cs.channel END,
		card_no = card, vin = rec.vin,
		member_id = m.member_id, partner_id = m.partner_id,
		group_id = CASE WHEN m.partner_id IS NULL THEN m.group_id END,
		updated_at = now()
	WHERE cs.order_no = s.order_no
	RETURNING * INTO s;
	RETURN s;
END $$;
COMMENT ON FUNCTION evcharge.identify_starter(evcharge.charge_session, evcharge.pile_record) IS
	'for a session the pile started (channel offline, nobody known): takes how it was started and the card or VIN from the pile''s record, and the registered member they belong to (and that member''s group, or partner), so the right wallet pays, at the right price, under the right contract';

-- The partner's own order number that a pile record carries: taken by a
-- session that has none, when it is in the partner's form and the partner
-- has no other session with it; otherwise the session keeps what it has
-- and the bill says why (compute_bill).
CREATE FUNCTION evcharge.take_partner_order_no(s evcharge.charge_session, rec evcharge.pile_record)
RETURNS evcharge.charge_session
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF rec.partner_order_no IS NULL OR s.partner_order_no IS NOT NULL
	   OR evcharge.partner_order_no_refusal(s, rec.partner_order_no) IS NOT NULL THEN
		RETURN s;
	END IF;
	-- Another session taking the same number at the same moment wins: this
	-- one keeps none, and its bill is made all the same.
	BEGIN
		UPDATE evcharge.charge_session cs SET partner_order_no = rec.partner_order_no, updated_at = now()
		WHERE cs.order_no = s.order_no
		RETURNING * INTO s;
	EXCEPTION WHEN unique_violation THEN
		NULL;
	END;
	RETURN s;
END $$;
COMMENT ON FUNCTION evcharge.take_partner_order_no(evcharge.charge_session, evcharge.pile_record) IS
	'gives a session without a partner order number the one its pile record carries, when partner_order_no_refusal() finds nothing against it; returns the session as it is then';

CREATE TABLE evcharge.customer_notice (
	customer_notice_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	order_no text NOT NULL REFERENCES evcharge.bill,
	member_id bigint NOT NULL,
	revision int NOT NULL,
	old_total numeric(12, 2) NOT NULL,
	new_total numeric(12, 2) NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	sent_at timestamptz
);
CREATE INDEX customer_notice_unsent_idx ON evcharge.customer_notice (created_at) WHERE sent_at IS NULL;
COMMENT ON INDEX evcharge.customer_notice_unsent_idx IS 'notices waiting to be sent, oldest first';
COMMENT ON TABLE evcharge.customer_notice IS
	'"Amount adjusted" notices for drivers, written by repairs that change a bill''s total when the operator''s policy says so (anomaly_policy.notify_adjustment); the app sends them and sets sent_at';
COMMENT ON COLUMN evcharge.customer_notice.customer_notice_id IS 'row id';
COMMENT ON COLUMN evcharge.customer_notice.order_no IS 'the bill';
COMMENT ON COLUMN evcharge.customer_notice.member_id IS 'the driver to tell';
COMMENT ON COLUMN evcharge.customer_notice.revision IS 'the bill revision that changed the amount';
COMMENT ON COLUMN evcharge.customer_notice.old_total IS 'total before, yuan';
COMMENT ON COLUMN evcharge.customer_notice.new_total IS 'total after, yuan';
COMMENT ON COLUMN evcharge.customer_notice.created_at IS 'when the repair wrote it';
COMMENT ON COLUMN evcharge.customer_notice.sent_at IS 'when the app sent it (NULL: not yet)';

-- The driver is told of an adjusted amount when the operator says so.
CREATE FUNCTION evcharge.notice_adjustment(s evcharge.charge_session, p_revision int, p_old numeric, p_new numeric)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF p_new = p_old OR s.member_id IS NULL
	   OR NOT (SELECT p.notify_adjustment FROM evcharge.station_policy(s.station_id) p) THEN
		RETURN false;
	END IF;
	INSERT INTO evcharge.customer_notice (order_no, member_id, revision, old_total, new_total)
	VALUES (s.order_no, s.member_id, p_revision, p_old, p_new);
	PERFORM pg_notify('evcharge_notice', json_build_object('order_no', s.order_no, 'member_id', s.member_id,
		'old_total', p_old, 'new_total', p_new)::text);
	RETURN true;
END $$;
COMMENT ON FUNCTION evcharge.notice_adjustment(evcharge.charge_session, int, numeric, numeric) IS
	'when the operator''s notify_adjustment is on and a member''s bill changed amount: writes a customer_notice and sends NOTIFY evcharge_notice; true when it did';

-- Finalise the bill of a session whose pile record has arrived; a record
-- for a bill made from heartbeats (anomaly 1 or 2) completes it.
CREATE FUNCTION evcharge.finalise_bill(p_order_no text) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	s evcharge.charge_session;
	rec evcharge.pile_record;
	old evcharge.bill;
	nb evcharge.bill;
	why text;
BEGIN
	SELECT * INTO s FROM evcharge.charge_session WHERE order_no = p_order_no FOR UPDATE;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	SELECT * INTO rec FROM evcharge.pile_record WHERE order_no = p_order_no ORDER BY received_at, ctid LIMIT 1;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	SELECT * INTO old FROM evcharge.bill WHERE order_no = p_order_no FOR UPDATE;
	-- A charge started at the pile: its record says by whom.  Not for a
	-- bill already settled: its payer has been charged.
	IF NOT FOUND OR old.state <> 'settled' THEN
		s := evcharge.identify_starter(s, rec);
	END IF;
	s := evcharge.take_partner_order_no(s, rec);
	IF old.order_no IS NOT NULL THEN
		IF NOT old.anomalies OPERATOR(evcharge.&&) '1+2'::evcharge.anomaly_set THEN
			RETURN false;
		END IF;
		-- A bill made from heartbeats gets its record: the pile's figures
		-- are authoritative, codes 1 and 2 go.  But energy a person agreed
		-- by hand (repair method manual) is an agreement with the driver:
		-- it is kept, and the record is only compared with it.
		PERFORM 1 FROM evcharge.coupon c WHERE c.member_id = s.member_id AND c.used_order_no IS NULL FOR UPDATE;
		IF EXISTS (SELECT 1 FROM evcharge.bill_revision r WHERE r.order_no = p_order_no AND r.method = 'manual') THEN
			nb := evcharge.compute_bill(p_order_no, 'manual', old.energy_wh);
			why := 'the pile record arrived after the bill was repaired by hand; the energy agreed by hand is kept';
			IF old.state <> 'held' THEN
				nb.state := old.state;
			END IF;
		ELSE
			nb := evcharge.compute_bill(p_order_no, 'auto');
			why := 'the pile record arrived after the bill was made from heartbeats';
		END IF;
		-- A settled bill stays settled: the difference moves in the ledger,
		-- and the driver is told when the operator says so.  One the record
		-- cannot be priced by keeps what was charged (try_finalise_bill
		-- records why).
		IF old.state = 'settled' AND nb.anomalies OPERATOR(evcharge.&&) '12+17+18+19'::evcharge.anomaly_set THEN
			RAISE EXCEPTION 'the late pile record of settled order % cannot be billed', p_order_no
				USING ERRCODE = 'object_not_in_prerequisite_state',
				      DETAIL = array_to_string(nb.applied, '; '),
				      HINT = 'The settled bill stands; mend the cause, then repair_bill() it.';
		END IF;
		IF old.state = 'settled' THEN
			nb.state := 'settled';
		END IF;
		nb := evcharge.store_bill(nb, 'pile_record', why);
		UPDATE evcharge.charge_session SET bill_error = NULL WHERE order_no = p_order_no AND bill_error IS NOT NULL;
		-- The ledger follows the revision (money.sql, bill_revision_adjusts_ledger).
		IF old.state = 'settled' THEN
			PERFORM evcharge.notice_adjustment(s, nb.revision, old.total, nb.total);
		END IF;
		RETURN true;
	END IF;
	-- A record before the unplug (many piles send it when charging stops)
	-- ends charging; the bill waits for the unplug, which the occupancy fee
	-- needs.  A session that never saw a heartbeat ends with its record.
	IF s.state IN ('charging', 'occupied') THEN
		UPDATE evcharge.charge_session SET state = 'occupied',
			charging_ended_at = coalesce(charging_ended_at, rec.ended_at), updated_at = now()
		WHERE order_no = p_order_no;
		RETURN false;
	ELSIF s.state = 'pending' THEN
		UPDATE evcharge.charge_session SET state = 'ended',
			started_at = coalesce(started_at, rec.started_at),
			charging_ended_at = coalesce(charging_ended_at, rec.ended_at),
			occupied_until = coalesce(occupied_until, rec.ended_at), updated_at = now()
		WHERE order_no = p_order_no;
	END IF;
	-- The member's free coupons are locked first: two bills cannot take one.
	PERFORM 1 FROM evcharge.coupon c WHERE c.member_id = s.member_id AND c.used_order_no IS NULL FOR UPDATE;
	PERFORM evcharge.make_bill(p_order_no);
	RETURN true;
END $$;
COMMENT ON FUNCTION evcharge.finalise_bill(text) IS
	'makes the bill of a session that has ended and whose pile record is in (make_bill: held when a blocking anomaly is found or it cannot be priced), or completes a bill made from heartbeats when its record comes late (energy agreed by hand is kept; a settled bill''s difference is posted to the ledger); returns false when there is nothing to do yet';

-- From the triggers: a bill that cannot be made must not fail the batch
-- that brought its last piece; the reason is kept on the session (a new
-- bill is made held by make_bill() even then; this catches the rest).
CREATE FUNCTION evcharge.try_finalise_bill(p_order_no text) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	st text;
	msg text;
BEGIN
	-- A bill made or completed clears bill_error (make_bill, finalise_bill),
	-- but one held without an amount keeps why.
	RETURN evcharge.finalise_bill(p_order_no);
EXCEPTION WHEN others THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
	UPDATE evcharge.charge_session SET bill_error = st || ': ' || msg, updated_at = now() WHERE order_no = p_order_no;
	RETURN false;
END $$;
COMMENT ON FUNCTION evcharge.try_finalise_bill(text) IS
	'finalise_bill() for the triggers: an error is recorded in charge_session.bill_error instead of failing the batch';

-- What only time reveals: records that never come.
CREATE FUNCTION evcharge.detect_lost_bills(at timestamptz DEFAULT now(),
	OUT sessions_closed bigint, OUT starts_cancelled bigint, OUT bills_lost bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	o text;
	st text;
	msg text;
BEGIN
	PERFORM evcharge.check_time(at, 'detect_lost_bills(at)');
	-- App starts the pile never began, each cancellation kept as
	-- cancel_session() keeps one.
	WITH c AS (
		UPDATE evcharge.charge_session cs SET state = 'cancelled', updated_at = now()
		FROM evcharge.station st JOIN evcharge.anomaly_policy p ON p.operator_id = st.operator_id
		WHERE st.station_id = cs.station_id AND cs.state = 'pending' AND cs.created_at < at - p.record_wait
		RETURNING cs.order_no, p.record_wait),
	audit AS (
		INSERT INTO evcharge.session_cancellation (order_no, reason)
		SELECT c.order_no, format('detect_lost_bills: the pile did not begin the start within record_wait (%s)', c.record_wait)
		FROM c
		ON CONFLICT (order_no) DO NOTHING)
	SELECT count(*) INTO starts_cancelled FROM c;
	-- Open sessions of guns that went silent: they end at their last heartbeat.
	WITH c AS (
		UPDATE evcharge.charge_session cs SET state = 'ended',
			charging_ended_at = coalesce(cs.charging_ended_at, cs.last_ts),
			occupied_until = cs.last_ts, updated_at = now()
		FROM evcharge.station st, evcharge.anomaly_policy p, evcharge.gun_state g
		WHERE st.station_id = cs.station_id AND p.operator_id = st.operator_id
		  AND g.gun OPERATOR(evcharge.=) cs.gun AND NOT g.online
		  AND cs.state IN ('charging', 'occupied') AND cs.last_ts < at - p.record_wait
		RETURNING 1)
	SELECT count(*) INTO sessions_closed FROM c;
	-- Ended sessions whose record has not come: billed from heartbeats, held.
	bills_lost := 0;
	FOR o IN
		SELECT cs.order_no FROM evcharge.charge_session cs
		JOIN evcharge.station st ON st.station_id = cs.station_id
		JOIN evcharge.anomaly_policy p ON p.operator_id = st.operator_id
		WHERE cs.state = 'ended'
		  AND coalesce(cs.occupied_until, cs.charging_ended_at, cs.last_ts) < at - p.record_wait
		  AND NOT EXISTS (SELECT 1 FROM evcharge.bill b WHERE b.order_no = cs.order_no)
		  AND NOT EXISTS (SELECT 1 FROM evcharge.pile_record r WHERE r.order_no = cs.order_no)
		ORDER BY cs.order_no
		FOR UPDATE OF cs SKIP LOCKED
	LOOP
		PERFORM 1 FROM evcharge.coupon c JOIN evcharge.charge_session cs ON cs.member_id = c.member_id
		WHERE cs.order_no = o AND c.used_order_no IS NULL FOR UPDATE OF c;
		-- One session that cannot be billed at all does not stop the job.
		BEGIN
			PERFORM evcharge.make_bill(o);
			bills_lost := bills_lost + 1;
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			UPDATE evcharge.charge_session SET bill_error = st || ': ' || msg, updated_at = now() WHERE order_no = o;
		END;
	END LOOP;
END $$;
COMMENT ON FUNCTION evcharge.detect_lost_bills(timestamptz) IS
	'scheduled: cancels app starts the pile never began (each recorded in session_cancellation), ends open sessions of offline guns at their last heartbeat, and bills ended sessions whose pile record has not come within the operator''s record_wait from their heartbeats, held with anomaly 1 (2 when the gun went offline; make_bill: one that cannot be priced is held with its reason); a record that comes later completes the bill; at must lie from 2015 to now() + 1 day (check_time)';

SELECT pg_catalog.pg_extension_config_dump('evcharge.bill', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.bill_revision', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.bill_revision_bill_revision_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.customer_notice', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.customer_notice_customer_notice_id_seq', '');
