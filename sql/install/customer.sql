-- customer.sql: who charges and whom a charge belongs to: members (drivers
-- with a wallet, by VIN and card), the departments whose group pays for its
-- members, sub-operators (a bus company, a station owner) and the rule that
-- attributes a charge to one of them (attribution, attributed_sub_operator:
-- DOMAIN.md, "Visibility").  The money they hold is the ledger's
-- (ledger.sql, money.sql).
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

CREATE TABLE evcharge.sub_operator (
	sub_operator_id bigint PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	name text NOT NULL CHECK (name <> '')
);
COMMENT ON TABLE evcharge.sub_operator IS
	'A sub-operator (a bus company, a station owner) to which part of an operator''s revenue is attributed';
COMMENT ON COLUMN evcharge.sub_operator.sub_operator_id IS 'sub-operator number';
COMMENT ON COLUMN evcharge.sub_operator.operator_id IS 'the operator';
COMMENT ON COLUMN evcharge.sub_operator.name IS 'its name';

CREATE TABLE evcharge.member (
	member_id bigint PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	group_id bigint REFERENCES evcharge.customer_group,
	vin text,
	card_no text,
	created_at timestamptz NOT NULL DEFAULT now(),
	partner_id bigint REFERENCES evcharge.partner,
	card_daily_limit numeric(12, 2) CHECK (card_daily_limit > 0 AND card_daily_limit <> 'NaN')
);
CREATE INDEX member_group_idx ON evcharge.member (group_id);
COMMENT ON INDEX evcharge.member_group_idx IS 'the members of a customer group (department)';
CREATE UNIQUE INDEX member_card_idx ON evcharge.member (operator_id, card_no) WHERE card_no IS NOT NULL;
COMMENT ON INDEX evcharge.member_card_idx IS 'a card belongs to one member of the operator: a start by card finds who pays';
CREATE UNIQUE INDEX member_vin_idx ON evcharge.member (operator_id, vin) WHERE vin IS NOT NULL;
COMMENT ON INDEX evcharge.member_vin_idx IS 'a vehicle belongs to one member of the operator: a start by VIN finds who pays';
COMMENT ON TABLE evcharge.member IS
	'A driver with a wallet; a member of a department whose group pays for its members charges to the department''s wallet';
COMMENT ON COLUMN evcharge.member.member_id IS 'member number (charge_session.member_id)';
COMMENT ON COLUMN evcharge.member.operator_id IS 'the operator the member charges with';
COMMENT ON COLUMN evcharge.member.group_id IS 'the member''s customer group (department), if any';
COMMENT ON COLUMN evcharge.member.vin IS 'the vehicle''s VIN, for attribution to a sub-operator';
COMMENT ON COLUMN evcharge.member.card_no IS 'charging card number, for attribution to a sub-operator';
COMMENT ON COLUMN evcharge.member.created_at IS 'when registered';
COMMENT ON COLUMN evcharge.member.partner_id IS 'an interconnection partner''s user (e.g. a card of the partner''s fleet): the partner pays for the member''s charges, under its contract''s start channels';
COMMENT ON COLUMN evcharge.member.card_daily_limit IS
	'the most the member''s card may spend in a day of the operator''s books, yuan (a maintenance card shared by several cars): a start by the card is refused once the day''s charges reach it (card_day_spending); NULL: no limit';

ALTER TABLE evcharge.customer_group ADD COLUMN pays_for_members boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN evcharge.customer_group.pays_for_members IS
	'a department account: its members'' bills are paid from the department''s wallet, not their own';

-- What is attributed to a sub-operator: a station's charges, a department's,
-- a vehicle's (VIN) or a card's.  The most specific rule wins: VIN, card,
-- department, station.
CREATE TABLE evcharge.attribution (
	attribution_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	sub_operator_id bigint NOT NULL REFERENCES evcharge.sub_operator,
	station_id bigint REFERENCES evcharge.station,
	group_id bigint REFERENCES evcharge.customer_group,
	vin text,
	card_no text,
	CHECK (num_nonnulls(station_id, group_id, vin, card_no) = 1)
);
CREATE UNIQUE INDEX attribution_station_idx ON evcharge.attribution (station_id) WHERE station_id IS NOT NULL;
COMMENT ON INDEX evcharge.attribution_station_idx IS 'a station is attributed to one sub-operator at most';
CREATE UNIQUE INDEX attribution_group_idx ON evcharge.attribution (group_id) WHERE group_id IS NOT NULL;
COMMENT ON INDEX evcharge.attribution_group_idx IS 'a customer group is attributed to one sub-operator at most';
CREATE UNIQUE INDEX attribution_vin_idx ON evcharge.attribution (vin) WHERE vin IS NOT NULL;
COMMENT ON INDEX evcharge.attribution_vin_idx IS 'a vehicle is attributed to one sub-operator at most';
CREATE UNIQUE INDEX attribution_card_idx ON evcharge.attribution (card_no) WHERE card_no IS NOT NULL;
COMMENT ON INDEX evcharge.attribution_card_idx IS 'a card is attributed to one sub-operator at most';
COMMENT ON TABLE evcharge.attribution IS
	'Which charges belong to a sub-operator: by station, department (group), vehicle (VIN) or card; the most specific applies (VIN, card, department, station)';
COMMENT ON COLUMN evcharge.attribution.attribution_id IS 'row id';
COMMENT ON COLUMN evcharge.attribution.sub_operator_id IS 'the sub-operator';
COMMENT ON COLUMN evcharge.attribution.station_id IS 'every charge at this station';
COMMENT ON COLUMN evcharge.attribution.group_id IS 'every charge by members of this group';
COMMENT ON COLUMN evcharge.attribution.vin IS 'every charge of this vehicle';
COMMENT ON COLUMN evcharge.attribution.card_no IS 'every charge with this card';

-- The sub-operator a charge or a wallet belongs to (the "Visibility" rule).
CREATE FUNCTION evcharge.attributed_sub_operator(p_operator_id bigint, p_station_id bigint, p_group_id bigint,
	p_vin text, p_card_no text) RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT a.sub_operator_id FROM evcharge.attribution a
	JOIN evcharge.sub_operator so ON so.sub_operator_id = a.sub_operator_id
	WHERE so.operator_id = p_operator_id
	  AND (a.vin = p_vin OR a.card_no = p_card_no OR a.group_id = p_group_id OR a.station_id = p_station_id)
	ORDER BY CASE WHEN a.vin IS NOT NULL THEN 1 WHEN a.card_no IS NOT NULL THEN 2 WHEN a.group_id IS NOT NULL THEN 3 ELSE 4 END
	LIMIT 1;
END;
COMMENT ON FUNCTION evcharge.attributed_sub_operator(bigint, bigint, bigint, text, text) IS
	'the operator''s sub-operator that a charge at this station, by this department, vehicle (VIN) or card belongs to: the most specific rule wins (VIN, card, department, station); NULL: the operator itself';

-- Who pays a charge, the one rule (DOMAIN.md, "Who pays"): a partner's start
-- is paid by the partner (its deposit when prepaid, else its receivable);
-- else a member of a department that pays for its members (the session's
-- group, or the member's) by the department's wallet; else a member by
-- their own wallet; else nobody known (unassigned receivable).  The kind
-- and owner of the paying account; bill_parties, pays_for and the balance
-- guard all ask this.  SQL without SET, so that a query's lateral call is
-- inlined (the body is bound when it is created, search_path or not).
CREATE FUNCTION evcharge.payer_of(p_member_id bigint, p_group_id bigint, p_partner_id bigint)
RETURNS TABLE (kind text, owner_id bigint)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT CASE WHEN p_partner_id IS NOT NULL THEN
	                 CASE WHEN pa.kind = 'prepaid' THEN 'partner_prepaid' ELSE 'partner_receivable' END
	            WHEN d.group_id IS NOT NULL THEN 'department_wallet'
	            WHEN p_member_id IS NOT NULL THEN 'member_wallet'
	            ELSE 'unassigned_receivable' END,
	       CASE WHEN p_partner_id IS NOT NULL THEN p_partner_id
	            WHEN d.group_id IS NOT NULL THEN d.group_id
	            ELSE p_member_id END
	FROM (VALUES (1)) one (x)
	LEFT JOIN evcharge.partner pa ON pa.partner_id = p_partner_id
	LEFT JOIN LATERAL (
		SELECT g.group_id FROM evcharge.customer_group g
		WHERE g.pays_for_members AND p_partner_id IS NULL
		  AND g.group_id = coalesce(p_group_id, (SELECT m.group_id FROM evcharge.member m WHERE m.member_id = p_member_id))
	) d ON true;
END;
COMMENT ON FUNCTION evcharge.payer_of(bigint, bigint, bigint) IS
	'who pays a charge of this member, group and partner, as the kind and owner of the paying account: the partner (partner_prepaid or partner_receivable), else a paying department (department_wallet), else the member (member_wallet), else unassigned_receivable with no owner; the one rule of bill_parties, pays_for and balance_guard';

-- Dumped with the data (pg_dump), their identity sequence too.
SELECT pg_catalog.pg_extension_config_dump('evcharge.sub_operator', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.member', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.attribution', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.attribution_attribution_id_seq', '');
