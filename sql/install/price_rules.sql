-- price_rules.sql: where prices live: operators, stations, the plan in force
-- per station and current type, customer groups and their prices,
-- promotions, occupancy fees and coupons.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- The zones it stores are time_zone.sql's domain evcharge.time_zone.

CREATE TABLE evcharge.operator (
	operator_id bigint PRIMARY KEY,
	name text NOT NULL CHECK (name <> ''),
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE evcharge.operator IS 'A charging operator (运营商): owns stations, sets prices, collects revenue';
COMMENT ON COLUMN evcharge.operator.operator_id IS 'operator number; the 4-digit operator field of its pile ids';
COMMENT ON COLUMN evcharge.operator.name IS 'operator name';
COMMENT ON COLUMN evcharge.operator.created_at IS 'when the operator was registered';

CREATE TABLE evcharge.station (
	station_id bigint PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	name text NOT NULL CHECK (name <> ''),
	tz evcharge.time_zone NOT NULL DEFAULT 'Asia/Shanghai',
	region_code int CHECK (region_code BETWEEN 110000 AND 829999),
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX station_operator_idx ON evcharge.station (operator_id);
COMMENT ON INDEX evcharge.station_operator_idx IS 'an operator''s stations';
COMMENT ON TABLE evcharge.station IS 'A charging station (电站) of an operator';
COMMENT ON COLUMN evcharge.station.station_id IS 'station number';
COMMENT ON COLUMN evcharge.station.operator_id IS 'the operator that owns the station';
COMMENT ON COLUMN evcharge.station.name IS 'station name';
COMMENT ON COLUMN evcharge.station.tz IS 'time zone whose wall clock the tariff segments follow';
COMMENT ON COLUMN evcharge.station.region_code IS 'GB/T 2260 division, optional';
COMMENT ON COLUMN evcharge.station.created_at IS 'when the station was registered';

CREATE TABLE evcharge.station_tariff (
	station_tariff_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	station_id bigint NOT NULL REFERENCES evcharge.station,
	current_type text NOT NULL CHECK (current_type IN ('AC', 'DC')),
	tariff evcharge.tou_tariff NOT NULL,
	valid tstzrange NOT NULL CHECK (NOT isempty(valid) AND NOT lower_inf(valid)),
	name text,
	created_at timestamptz NOT NULL DEFAULT now(),
	created_by text NOT NULL DEFAULT current_user,
	season text CHECK (season ~ '^[a-z][a-z0-9_]{0,39}$'),
	day_kind text CHECK (day_kind ~ '^[a-z][a-z0-9_]{0,39}$' AND day_kind <> 'workday'),
	CONSTRAINT station_tariff_no_overlap
		EXCLUDE USING gist (station_id WITH =, current_type WITH =, valid WITH &&)
		WHERE (season IS NULL AND day_kind IS NULL),
	CONSTRAINT station_tariff_calendar_no_overlap
		EXCLUDE USING gist (station_id WITH =, current_type WITH =, (coalesce(season, '')) WITH =,
		                    (coalesce(day_kind, '')) WITH =, valid WITH &&)
		WHERE (season IS NOT NULL OR day_kind IS NOT NULL)
);
-- plan_in_force()'s probe: the exclusion constraints' indexes are
-- partial, so the look-up of any station's plans has its own.
CREATE INDEX station_tariff_lookup_idx ON evcharge.station_tariff USING gist (station_id, current_type, valid);
COMMENT ON INDEX evcharge.station_tariff_lookup_idx IS 'the plans of a station and current type valid at an instant (plan_in_force)';
COMMENT ON TABLE evcharge.station_tariff IS
	'The plans of a station for AC or DC piles over validity ranges, each for every day or for a calendar condition (a season, a kind of day); plans of one station, current type and condition never overlap; plan_in_force() says which is in force';
COMMENT ON COLUMN evcharge.station_tariff.station_tariff_id IS 'plan row id';
COMMENT ON COLUMN evcharge.station_tariff.station_id IS 'the station';
COMMENT ON COLUMN evcharge.station_tariff.current_type IS 'AC or DC: the piles of the station it prices';
COMMENT ON COLUMN evcharge.station_tariff.tariff IS 'the daily time-of-use plan';
COMMENT ON COLUMN evcharge.station_tariff.valid IS 'when the plan is in force, [from, until); until may be open';
COMMENT ON COLUMN evcharge.station_tariff.name IS 'a name operators recognise, e.g. "2026 winter"';
COMMENT ON COLUMN evcharge.station_tariff.created_at IS 'when the row was written';
COMMENT ON COLUMN evcharge.station_tariff.created_by IS 'who wrote it';
COMMENT ON COLUMN evcharge.station_tariff.season IS 'the plan holds only in this season of the operator''s (tariff_season); NULL for every month';
COMMENT ON COLUMN evcharge.station_tariff.day_kind IS 'the plan holds only on this kind of day: weekday, weekend, holiday (calendar_day), or a kind the operator declares (declared_day, e.g. high_temperature); NULL for every day';

CREATE TABLE evcharge.customer_group (
	group_id bigint PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	name text NOT NULL CHECK (name <> ''),
	service_fee numeric(10, 4) CHECK (service_fee >= 0 AND service_fee <> 'NaN'),
	service_factor numeric(6, 4) CHECK (service_factor >= 0 AND service_factor <> 'NaN'),
	CHECK (num_nonnulls(service_fee, service_factor) <= 1)
);
COMMENT ON TABLE evcharge.customer_group IS
	'A customer group (人群, e.g. a department, a fleet, a VIP class) with an optional group price for the service fee';
COMMENT ON COLUMN evcharge.customer_group.group_id IS 'group number';
COMMENT ON COLUMN evcharge.customer_group.operator_id IS 'the operator whose group it is';
COMMENT ON COLUMN evcharge.customer_group.name IS 'group name';
COMMENT ON COLUMN evcharge.customer_group.service_fee IS 'service fee in yuan per kWh replacing the plan''s, at bound stations (0 for a maintenance card)';
COMMENT ON COLUMN evcharge.customer_group.service_factor IS 'factor applied to the plan''s service fee at bound stations (0.8 = 20 % off); at most one of service_fee and service_factor';

CREATE TABLE evcharge.group_station (
	group_id bigint NOT NULL REFERENCES evcharge.customer_group ON DELETE CASCADE,
	station_id bigint NOT NULL REFERENCES evcharge.station ON DELETE CASCADE,
	PRIMARY KEY (group_id, station_id)
);
CREATE INDEX group_station_station_idx ON evcharge.group_station (station_id);
COMMENT ON INDEX evcharge.group_station_station_idx IS 'the customer groups bound to a station';
COMMENT ON TABLE evcharge.group_station IS 'The stations a group is bound to: its group price applies there only';
COMMENT ON COLUMN evcharge.group_station.group_id IS 'the group';
COMMENT ON COLUMN evcharge.group_station.station_id IS 'a station where the group price applies';

CREATE TABLE evcharge.promotion (
	promotion_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	name text NOT NULL CHECK (name <> ''),
	valid tstzrange NOT NULL CHECK (NOT isempty(valid)),
	service_fee numeric(10, 4) CHECK (service_fee >= 0 AND service_fee <> 'NaN'),
	service_factor numeric(6, 4) CHECK (service_factor >= 0 AND service_factor <= 1),
	CHECK (num_nonnulls(service_fee, service_factor) = 1),
	energy_fee numeric(10, 4) CHECK (energy_fee >= 0 AND energy_fee <> 'NaN'),
	energy_factor numeric(6, 4) CHECK (energy_factor >= 0 AND energy_factor <= 1),
	CONSTRAINT promotion_energy_one CHECK (num_nonnulls(energy_fee, energy_factor) <= 1)
);
COMMENT ON TABLE evcharge.promotion IS
	'A promotion on the service fee, and optionally the electricity price, over a validity range (service fee free until 11-11 00:00, 50 % in the opening week, free charging before 12:00); it begins and ends by itself: sessions are priced by the promotions valid during each part of them';
COMMENT ON COLUMN evcharge.promotion.promotion_id IS 'promotion id';
COMMENT ON COLUMN evcharge.promotion.operator_id IS 'the operator running it';
COMMENT ON COLUMN evcharge.promotion.name IS 'name shown on the bill';
COMMENT ON COLUMN evcharge.promotion.valid IS 'when it applies, [from, until)';
COMMENT ON COLUMN evcharge.promotion.service_fee IS 'service fee in yuan per kWh during the promotion (0 = free)';
COMMENT ON COLUMN evcharge.promotion.service_factor IS 'factor on the service fee otherwise due, 0 to 1 (0.5 = half price); exactly one of service_fee and service_factor';
COMMENT ON COLUMN evcharge.promotion.energy_fee IS 'electricity price in yuan per kWh during the promotion (0 with service_fee 0 = free charging); NULL leaves the plan''s';
COMMENT ON COLUMN evcharge.promotion.energy_factor IS 'factor on the plan''s electricity price, 0 to 1 (0 = electricity free); at most one of energy_fee and energy_factor';

CREATE TABLE evcharge.promotion_station (
	promotion_id bigint NOT NULL REFERENCES evcharge.promotion ON DELETE CASCADE,
	station_id bigint NOT NULL REFERENCES evcharge.station ON DELETE CASCADE,
	PRIMARY KEY (promotion_id, station_id)
);
CREATE INDEX promotion_station_station_idx ON evcharge.promotion_station (station_id);
COMMENT ON INDEX evcharge.promotion_station_station_idx IS 'the promotions of a station';
COMMENT ON TABLE evcharge.promotion_station IS 'The stations a promotion applies at';
COMMENT ON COLUMN evcharge.promotion_station.promotion_id IS 'the promotion';
COMMENT ON COLUMN evcharge.promotion_station.station_id IS 'a station where it applies';

CREATE TABLE evcharge.promotion_group (
	promotion_id bigint NOT NULL REFERENCES evcharge.promotion ON DELETE CASCADE,
	group_id bigint NOT NULL REFERENCES evcharge.customer_group ON DELETE CASCADE,
	PRIMARY KEY (promotion_id, group_id)
);
COMMENT ON TABLE evcharge.promotion_group IS
	'The groups a promotion is limited to; a promotion without rows here applies to everyone';
COMMENT ON COLUMN evcharge.promotion_group.promotion_id IS 'the promotion';
COMMENT ON COLUMN evcharge.promotion_group.group_id IS 'a group it applies to';

CREATE TABLE evcharge.occupancy_fee (
	station_id bigint PRIMARY KEY REFERENCES evcharge.station ON DELETE CASCADE,
	grace_minutes int NOT NULL DEFAULT 15 CHECK (grace_minutes >= 0),
	fee_per_minute numeric(10, 4) NOT NULL CHECK (fee_per_minute >= 0 AND fee_per_minute <> 'NaN'),
	cap numeric(12, 2) CHECK (cap >= 0 AND cap <> 'NaN')
);
COMMENT ON TABLE evcharge.occupancy_fee IS
	'Occupancy fee (占桩费) of a station: per whole minute the gun stays plugged after charging ended, after a grace period, up to a cap';
COMMENT ON COLUMN evcharge.occupancy_fee.station_id IS 'the station';
COMMENT ON COLUMN evcharge.occupancy_fee.grace_minutes IS 'free minutes after charging ends';
COMMENT ON COLUMN evcharge.occupancy_fee.fee_per_minute IS 'yuan per whole minute after the grace period';
COMMENT ON COLUMN evcharge.occupancy_fee.cap IS 'most one session pays, in yuan; NULL for no cap';

CREATE TABLE evcharge.occupancy_exemption (
	station_id bigint NOT NULL REFERENCES evcharge.occupancy_fee ON DELETE CASCADE,
	group_id bigint NOT NULL REFERENCES evcharge.customer_group ON DELETE CASCADE,
	PRIMARY KEY (station_id, group_id)
);
COMMENT ON TABLE evcharge.occupancy_exemption IS 'Groups that pay no occupancy fee at a station (buses at their depot, maintenance crews)';
COMMENT ON COLUMN evcharge.occupancy_exemption.station_id IS 'the station';
COMMENT ON COLUMN evcharge.occupancy_exemption.group_id IS 'the exempt group';

CREATE TABLE evcharge.coupon (
	coupon_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	operator_id bigint NOT NULL REFERENCES evcharge.operator,
	member_id bigint,
	amount numeric(10, 2) NOT NULL CHECK (amount > 0 AND amount <> 'NaN'),
	min_kwh numeric(10, 3) NOT NULL DEFAULT 0 CHECK (min_kwh >= 0 AND min_kwh <> 'NaN'),
	valid tstzrange NOT NULL CHECK (NOT isempty(valid)),
	used_order_no text UNIQUE,
	used_at timestamptz,
	CHECK ((used_order_no IS NULL) = (used_at IS NULL))
);
CREATE INDEX coupon_member_idx ON evcharge.coupon (member_id) WHERE used_order_no IS NULL;
COMMENT ON INDEX evcharge.coupon_member_idx IS 'a member''s unused coupons';
COMMENT ON TABLE evcharge.coupon IS
	'A coupon: a fixed amount off the service fee only, for a session of at least min_kwh, used once';
COMMENT ON COLUMN evcharge.coupon.coupon_id IS 'coupon id';
COMMENT ON COLUMN evcharge.coupon.operator_id IS 'the operator whose stations accept it';
COMMENT ON COLUMN evcharge.coupon.member_id IS 'the member who holds it';
COMMENT ON COLUMN evcharge.coupon.amount IS 'yuan off the service fee (never more than the service fee)';
COMMENT ON COLUMN evcharge.coupon.min_kwh IS 'smallest session energy it applies to';
COMMENT ON COLUMN evcharge.coupon.valid IS 'when a session may start to use it';
COMMENT ON COLUMN evcharge.coupon.used_order_no IS 'the order that used it; set once';
COMMENT ON COLUMN evcharge.coupon.used_at IS 'when it was used';

-- A used coupon stays used by the order that used it.
CREATE FUNCTION evcharge.coupon_single_use() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		IF OLD.used_order_no IS NOT NULL THEN
			RAISE EXCEPTION 'coupon % was used by order % and is kept', OLD.coupon_id, OLD.used_order_no
				USING ERRCODE = 'check_violation', HINT = 'A used coupon is part of a bill''s record.';
		END IF;
		RETURN OLD;
	END IF;
	IF OLD.used_order_no IS NOT NULL AND (NEW.used_order_no IS DISTINCT FROM OLD.used_order_no
	                                     OR NEW.used_at IS DISTINCT FROM OLD.used_at
	                                     OR NEW.amount IS DISTINCT FROM OLD.amount) THEN
		RAISE EXCEPTION 'coupon % was already used by order %', OLD.coupon_id, OLD.used_order_no
			USING ERRCODE = 'check_violation',
			      DETAIL = format('It was used at %s; a coupon is used once.', OLD.used_at),
			      HINT = 'Give the member a new coupon instead.';
	END IF;
	RETURN NEW;
END $$;
COMMENT ON FUNCTION evcharge.coupon_single_use() IS 'trigger: a used coupon cannot be used again, released, changed or deleted';
CREATE TRIGGER coupon_single_use BEFORE UPDATE OR DELETE ON evcharge.coupon
	FOR EACH ROW EXECUTE FUNCTION evcharge.coupon_single_use();
COMMENT ON TRIGGER coupon_single_use ON evcharge.coupon IS 'a used coupon cannot be changed or deleted';

SELECT pg_catalog.pg_extension_config_dump('evcharge.operator', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.station', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.station_tariff', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.customer_group', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.group_station', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.promotion', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.promotion_station', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.promotion_group', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.occupancy_fee', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.occupancy_exemption', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.coupon', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.station_tariff_station_tariff_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.promotion_promotion_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('evcharge.coupon_coupon_id_seq', '');
