-- chart.sql: the evidence of a charge drawn as a self-contained SVG 1.1
-- document: for support (session_chart: the measured curve and the pile's
-- claim, the tariff bands, the moments, what the bill did not count, the
-- anomalies with their causes) and for the driver (driver_chart: a receipt
-- in the driver's language, no code and no internal word).  Both are a
-- sequence of named steps over one chart_frame, made once by chart_load;
-- they read session_evidence and anomaly_causes (evidence.sql) and write
-- nothing.
\echo Use "CREATE EXTENSION evcharge" to load this file. \quit

-- session_chart (support) and driver_chart (the driver's receipt) are each
-- a sequence of named steps over one chart_frame: load the order, draw the
-- bands, the axes and the curves, place the labels where they cover neither
-- a curve nor each other, then the legend and the box below, and wrap it
-- all in a document.  The frame is made once (chart_load) and only read.

-- Everything a chart is drawn from: the order, its bill and pile record,
-- the evidence rows, the axes and the plot area in pixels, and the
-- segments of every line drawn in the plot (labels keep off them).
CREATE TYPE evcharge.chart_frame AS (
	order_no text,
	view text,
	lang text,
	gun text,
	station_id bigint,
	station_name text,
	tz text,
	current_type text,
	session_state text,
	created_at timestamptz,
	started_at timestamptz,
	charging_ended_at timestamptz,
	occupied_until timestamptz,
	live_wh_by_class bigint[],
	has_bill boolean,
	bill_state text,
	bill_started_at timestamptz,
	bill_ended_at timestamptz,
	bill_energy_wh bigint,
	bill_wh_by_class bigint[],
	energy_source text,
	energy_fee numeric,
	service_fee numeric,
	occupancy_fee numeric,
	discount numeric,
	total numeric,
	anomalies evcharge.anomaly_set,
	applied text[],
	has_record boolean,
	rec_started_at timestamptz,
	rec_ended_at timestamptz,
	rec_energy_wh bigint,
	rec_received_at timestamptz,
	rec_faults text[],
	ev_ts timestamptz[],
	ev_wh bigint[],
	ev_w int[],
	ev_note text[],
	measured_wh bigint,
	curve_ts timestamptz[],
	curve_wh bigint[],
	t0 timestamptz,
	t1 timestamptz,
	span float8,
	e_top numeric,
	e_step numeric,
	p_top numeric,
	p_step numeric,
	width int,
	px0 float8,
	px1 float8,
	py0 float8,
	py1 float8,
	header text[],
	classes text[],
	seg_x1 float8[],
	seg_y1 float8[],
	seg_x2 float8[],
	seg_y2 float8[],
	seg_soft boolean[],
	priced boolean,
	partner_order_no text
);
COMMENT ON TYPE evcharge.chart_frame IS
	'internal to session_chart and driver_chart: what a chart is drawn from (order, bill, pile record, evidence rows, the curve drawn, axes, plot area in px, header lines, classes shown, the segments labels must not cover); made once by chart_load';

COMMENT ON COLUMN evcharge.chart_frame.order_no IS 'the order';
COMMENT ON COLUMN evcharge.chart_frame.view IS 'support or driver';
COMMENT ON COLUMN evcharge.chart_frame.lang IS 'the language of the words: en (support), zh or en (driver)';
COMMENT ON COLUMN evcharge.chart_frame.gun IS 'the gun, as text';
COMMENT ON COLUMN evcharge.chart_frame.station_id IS 'the station';
COMMENT ON COLUMN evcharge.chart_frame.station_name IS 'the station''s name';
COMMENT ON COLUMN evcharge.chart_frame.tz IS 'the station''s time zone: the chart''s clock';
COMMENT ON COLUMN evcharge.chart_frame.current_type IS 'AC or DC, from the pile registry (registered_current_type)';
COMMENT ON COLUMN evcharge.chart_frame.session_state IS 'the session''s state';
COMMENT ON COLUMN evcharge.chart_frame.created_at IS 'when the session was made';
COMMENT ON COLUMN evcharge.chart_frame.started_at IS 'start of charging';
COMMENT ON COLUMN evcharge.chart_frame.charging_ended_at IS 'end of charging';
COMMENT ON COLUMN evcharge.chart_frame.occupied_until IS 'the unplug';
COMMENT ON COLUMN evcharge.chart_frame.live_wh_by_class IS 'the session''s Wh per class so far';
COMMENT ON COLUMN evcharge.chart_frame.has_bill IS 'whether the order has a bill';
COMMENT ON COLUMN evcharge.chart_frame.bill_state IS 'final, held or settled';
COMMENT ON COLUMN evcharge.chart_frame.bill_started_at IS 'the bill''s start';
COMMENT ON COLUMN evcharge.chart_frame.bill_ended_at IS 'the bill''s end';
COMMENT ON COLUMN evcharge.chart_frame.bill_energy_wh IS 'the bill''s energy, Wh';
COMMENT ON COLUMN evcharge.chart_frame.bill_wh_by_class IS 'the bill''s Wh per class';
COMMENT ON COLUMN evcharge.chart_frame.energy_source IS 'where the bill''s energy came from: pile, heartbeats, manual';
COMMENT ON COLUMN evcharge.chart_frame.energy_fee IS 'the bill''s electricity fee, yuan';
COMMENT ON COLUMN evcharge.chart_frame.service_fee IS 'the bill''s service fee, yuan';
COMMENT ON COLUMN evcharge.chart_frame.occupancy_fee IS 'the bill''s occupancy fee, yuan';
COMMENT ON COLUMN evcharge.chart_frame.discount IS 'the bill''s discount, yuan';
COMMENT ON COLUMN evcharge.chart_frame.total IS 'the bill''s total, yuan';
COMMENT ON COLUMN evcharge.chart_frame.anomalies IS 'the bill''s anomaly codes';
COMMENT ON COLUMN evcharge.chart_frame.applied IS 'what applied to the bill';
COMMENT ON COLUMN evcharge.chart_frame.has_record IS 'whether a pile record came';
COMMENT ON COLUMN evcharge.chart_frame.rec_started_at IS 'the pile record''s start';
COMMENT ON COLUMN evcharge.chart_frame.rec_ended_at IS 'the pile record''s end';
COMMENT ON COLUMN evcharge.chart_frame.rec_energy_wh IS 'the pile record''s energy, Wh: the pile''s claim';
COMMENT ON COLUMN evcharge.chart_frame.rec_received_at IS 'when the record was received';
COMMENT ON COLUMN evcharge.chart_frame.rec_faults IS 'why the record''s clock is not believed (pile_record_clock_faults); empty when it is';
COMMENT ON COLUMN evcharge.chart_frame.ev_ts IS 'the times of the evidence rows';
COMMENT ON COLUMN evcharge.chart_frame.ev_wh IS 'their energy so far, Wh';
COMMENT ON COLUMN evcharge.chart_frame.ev_w IS 'their power, W';
COMMENT ON COLUMN evcharge.chart_frame.ev_note IS 'their notes';
COMMENT ON COLUMN evcharge.chart_frame.measured_wh IS 'the energy the heartbeats measured, Wh';
COMMENT ON COLUMN evcharge.chart_frame.curve_ts IS 'the times of the energy curve drawn';
COMMENT ON COLUMN evcharge.chart_frame.curve_wh IS 'its energy, Wh: measured (support), or as billed (driver)';
COMMENT ON COLUMN evcharge.chart_frame.t0 IS 'the start of the time axis';
COMMENT ON COLUMN evcharge.chart_frame.t1 IS 'its end';
COMMENT ON COLUMN evcharge.chart_frame.span IS 'its length, s';
COMMENT ON COLUMN evcharge.chart_frame.e_top IS 'the top of the energy axis, Wh';
COMMENT ON COLUMN evcharge.chart_frame.e_step IS 'its step, Wh';
COMMENT ON COLUMN evcharge.chart_frame.p_top IS 'the top of the power axis, kW';
COMMENT ON COLUMN evcharge.chart_frame.p_step IS 'its step, kW';
COMMENT ON COLUMN evcharge.chart_frame.width IS 'the document''s width, px';
COMMENT ON COLUMN evcharge.chart_frame.px0 IS 'the plot''s left edge, px';
COMMENT ON COLUMN evcharge.chart_frame.px1 IS 'its right edge, px';
COMMENT ON COLUMN evcharge.chart_frame.py0 IS 'its top, px';
COMMENT ON COLUMN evcharge.chart_frame.py1 IS 'its bottom, px';
COMMENT ON COLUMN evcharge.chart_frame.header IS 'the header lines, wrapped';
COMMENT ON COLUMN evcharge.chart_frame.classes IS 'the tariff classes drawn, in the chart''s order';
COMMENT ON COLUMN evcharge.chart_frame.seg_x1 IS 'the segments drawn in the plot: start x, px';
COMMENT ON COLUMN evcharge.chart_frame.seg_y1 IS 'start y, px';
COMMENT ON COLUMN evcharge.chart_frame.seg_x2 IS 'end x, px';
COMMENT ON COLUMN evcharge.chart_frame.seg_y2 IS 'end y, px';
COMMENT ON COLUMN evcharge.chart_frame.seg_soft IS 'whether a label may cross the segment when no other spot is left (the power curve)';
COMMENT ON COLUMN evcharge.chart_frame.priced IS 'whether the bill has a price: not one held because nothing could price it (anomaly 12, no tariff in force; 17, current type unknown; 19, pricing failed)';
COMMENT ON COLUMN evcharge.chart_frame.partner_order_no IS 'the partner''s own order number of the session (charge_session.partner_order_no), NULL when it has none';

-- A coordinate or length in the document: one decimal.
CREATE FUNCTION evcharge.chart_num(v float8) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN round(v::numeric, 1)::text;
COMMENT ON FUNCTION evcharge.chart_num(float8) IS 'a chart coordinate as written in the document: one decimal';

-- How wide a text is drawn, px: a generous estimate per character for a
-- sans-serif face (DejaVu Sans, the widest common one), Chinese and other
-- wide characters one em, bold 15 % wider.  Labels are placed with it, so
-- it errs wide.
CREATE FUNCTION evcharge.chart_text_width(t text, size float8, bold boolean DEFAULT false) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN size * CASE WHEN bold THEN 1.15 ELSE 1 END * coalesce((
	SELECT sum(CASE
		WHEN ascii(c) >= 4352 THEN 1.0
		WHEN c = ANY (ARRAY['i', 'j', 'l', 'I', 'J', '.', ',', ':', ';', '''', '|', '!', ' ', '(', ')', '[', ']', '{', '}', 'f', 't', 'r', '/', '-']) THEN 0.42
		WHEN c = ANY (ARRAY['m', 'w', 'M', 'W', '%', '@']) THEN 1.0
		WHEN c = ANY (ARRAY['+', '=', '<', '>', '~', '#', '&']) THEN 0.84
		WHEN c ~ '[A-Z]' THEN 0.80
		WHEN c ~ '[a-z0-9]' THEN 0.65
		ELSE 0.85 END)
	FROM regexp_split_to_table(t, '') c WHERE c <> ''), 0)::float8;
COMMENT ON FUNCTION evcharge.chart_text_width(text, float8, boolean) IS
	'an estimate, erring wide, of the width in px of a text drawn in a sans-serif face at this size (wide characters such as Chinese one em, bold 15 % wider): how labels are placed and lines wrapped';

-- The box a text covers: x0, y0, x1, y1 (px), from its anchor point.
CREATE FUNCTION evcharge.chart_text_box(t text, x float8, y float8, anchor text, size float8, bold boolean DEFAULT false)
RETURNS float8[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (SELECT ARRAY[x - w * CASE anchor WHEN 'middle' THEN 0.5 WHEN 'end' THEN 1 ELSE 0 END - 2, y - 0.95 * size - 1,
                     x + w * CASE anchor WHEN 'middle' THEN 0.5 WHEN 'end' THEN 0 ELSE 1 END + 2, y + 0.3 * size + 1]
	FROM (SELECT evcharge.chart_text_width(t, size, bold) AS w) e);
COMMENT ON FUNCTION evcharge.chart_text_box(text, float8, float8, text, float8, boolean) IS
	'the box {x0, y0, x1, y1} a text drawn at (x, y) with this text-anchor (start, middle, end) and size covers, by chart_text_width, with 2 px to spare';

-- A <text> element (the text escaped).
CREATE FUNCTION evcharge.chart_text(x float8, y float8, anchor text, cls text, t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN format('<text%s x="%s" y="%s"%s>%s</text>', CASE WHEN cls IS NOT NULL THEN format(' class="%s"', cls) END,
	evcharge.chart_num(x), evcharge.chart_num(y),
	CASE WHEN anchor IN ('middle', 'end') THEN format(' text-anchor="%s"', anchor) END, evcharge.xml_escape(t));
COMMENT ON FUNCTION evcharge.chart_text(float8, float8, text, text, text) IS
	'a chart <text> element at (x, y) with an optional class and text-anchor, its text escaped by xml_escape';

-- A text cut into lines no wider than max_px (at spaces; a word wider
-- than the line, such as Chinese without spaces, at characters).
CREATE FUNCTION evcharge.chart_wrap(t text, max_px float8, size float8) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	lines text[] := '{}';
	cur text := '';
	word text;
	c text;
BEGIN
	FOR word IN SELECT w FROM regexp_split_to_table(t, ' ') w LOOP
		IF cur <> '' AND evcharge.chart_text_width(cur || ' ' || word, size) <= max_px THEN
			cur := cur || ' ' || word;
			CONTINUE;
		END IF;
		IF cur <> '' THEN
			lines := lines || cur;
			cur := '';
		END IF;
		IF evcharge.chart_text_width(word, size) <= max_px THEN
			cur := word;
		ELSE
			FOREACH c IN ARRAY regexp_split_to_array(word, '') LOOP
				IF cur <> '' AND evcharge.chart_text_width(cur || c, size) > max_px THEN
					lines := lines || cur;
					cur := '';
				END IF;
				cur := cur || c;
			END LOOP;
		END IF;
	END LOOP;
	IF cur <> '' OR cardinality(lines) = 0 THEN
		lines := lines || cur;
	END IF;
	RETURN lines;
END $$;
COMMENT ON FUNCTION evcharge.chart_wrap(text, float8, float8) IS
	'a text cut into lines no wider than max_px by chart_text_width: at spaces, and within a word (Chinese has no spaces) at characters';

-- The words of the driver's receipt in the driver's language (zh: Chinese,
-- simplified; en: English).
CREATE FUNCTION evcharge.chart_word(lang text, key text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (SELECT CASE lang WHEN 'zh' THEN w.zh ELSE w.en END FROM (VALUES
	('title', '充电明细', 'Charging receipt'),
	('order', '订单号', 'order'),
	('gun', '充电枪', 'charger'),
	('local_time', '当地时间', 'local time'),
	('delivered', '已充电量', 'energy delivered'),
	('start', '开始充电', 'started'),
	('end', '充电结束', 'finished'),
	('unplugged', '拔枪', 'unplugged'),
	('period', '时段', 'time'),
	('energy', '电量', 'energy'),
	('electricity', '电费', 'electricity'),
	('service', '服务费', 'service fee'),
	('occupancy', '占位费', 'parking after charging'),
	('discount', '优惠', 'discount'),
	('total', '合计', 'total'),
	('yuan', '元', 'yuan'),
	('per_kwh', '元/kWh', 'yuan/kWh'),
	('settled', '已从账户扣款。', 'Paid from your account.'),
	('final', '将从账户扣款。', 'To be paid from your account.'),
	('held', '本单金额正在核实，核实前不扣款。', 'We are checking the amount of this charge; nothing is taken until then.'),
	('no_bill', '充电尚未结算，以下为目前已充电量。', 'This charge is not settled yet; below is the energy delivered so far.'),
	('no_price', '本站电价待确认，金额确认后再结算。', 'The price at this station is being confirmed; the amount follows.'),
	('pending', '待定', 'to follow'),
	('member_price', '服务费已按会员价或优惠计算。', 'The service fee is at your member price or promotion.'),
	('no_heartbeats', '暂无充电数据', 'no charging data yet')
) w(key, zh, en) WHERE w.key = chart_word.key);
COMMENT ON FUNCTION evcharge.chart_word(text, text) IS
	'a word or sentence of the driver''s chart in the driver''s language: zh (Chinese, simplified) or en (English)';

-- A tariff class: its place in the order of classes, its colour, and its
-- name for the driver.  Classes other than the five known ones sort after
-- them by name and take a colour of their own.
CREATE FUNCTION evcharge.chart_class_rank(class text) RETURNS int
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN coalesce(array_position(ARRAY['sharp', 'peak', 'flat', 'valley', 'deep'],
	CASE WHEN class IN ('deepvalley', 'deep_valley') THEN 'deep' ELSE class END), 100);
COMMENT ON FUNCTION evcharge.chart_class_rank(text) IS
	'the place of a tariff class in the chart''s order: sharp, peak, flat, valley, deep valley (deep, deepvalley), then any other (100)';

CREATE FUNCTION evcharge.chart_class_colour(class text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN coalesce((ARRAY['#f4cccc', '#fce5cd', '#d9ead3', '#cfe2f3', '#d9d2e9'])[evcharge.chart_class_rank(class)],
	(ARRAY['#ead1dc', '#fff2cc', '#d0e0e3', '#e6e6e6'])[1 + (length(class) + ascii(class)) % 4]);
COMMENT ON FUNCTION evcharge.chart_class_colour(text) IS
	'the background colour of a tariff class in the chart: sharp red, peak orange, flat green, valley blue, deep valley violet, any other a pale colour of its own';

CREATE FUNCTION evcharge.chart_class_name(class text, lang text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE lang
	WHEN 'zh' THEN coalesce((ARRAY['尖峰', '高峰', '平段', '低谷', '深谷'])[evcharge.chart_class_rank(class)], class)
	WHEN 'en' THEN coalesce((ARRAY['sharp peak', 'peak', 'flat', 'valley', 'deep valley'])[evcharge.chart_class_rank(class)], class)
	ELSE class END;
COMMENT ON FUNCTION evcharge.chart_class_name(text, text) IS
	'a tariff class as the driver reads it: zh 尖峰 高峰 平段 低谷 深谷, en sharp peak, peak, flat, valley, deep valley; any other lang (the support view) the class itself';

-- kWh with three decimals; a number of yuan with two.
CREATE FUNCTION evcharge.chart_kwh(wh numeric) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN to_char(wh / 1000.0, 'FM999999990.000');
COMMENT ON FUNCTION evcharge.chart_kwh(numeric) IS 'Wh as kWh with three decimals, as the chart writes energy';

-- The pixel of an instant on the time axis, and of an energy on the
-- energy axis (Wh) and a power on the power axis (W).
CREATE FUNCTION evcharge.chart_x(f evcharge.chart_frame, t timestamptz) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN f.px0 + (f.px1 - f.px0) * extract(epoch FROM t - f.t0)::float8 / f.span;
COMMENT ON FUNCTION evcharge.chart_x(evcharge.chart_frame, timestamptz) IS 'the x pixel of an instant on the chart''s time axis';

CREATE FUNCTION evcharge.chart_y(f evcharge.chart_frame, wh numeric) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN f.py1 - (f.py1 - f.py0) * (wh / f.e_top)::float8;
COMMENT ON FUNCTION evcharge.chart_y(evcharge.chart_frame, numeric) IS 'the y pixel of an energy (Wh) on the chart''s energy axis';

CREATE FUNCTION evcharge.chart_y_power(f evcharge.chart_frame, w numeric) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN f.py1 - (f.py1 - f.py0) * (w / 1000.0 / f.p_top)::float8;
COMMENT ON FUNCTION evcharge.chart_y_power(evcharge.chart_frame, numeric) IS 'the y pixel of a power (W) on the chart''s power axis (kW)';

-- A round step for an axis from 0 to top with about five steps: 1, 2 or 5
-- times a power of ten; and the top, a whole number of steps.
CREATE FUNCTION evcharge.chart_step(top numeric, least_top numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (SELECT CASE WHEN v <= p THEN p WHEN v <= 2 * p THEN 2 * p WHEN v <= 5 * p THEN 5 * p ELSE 10 * p END
	FROM (SELECT v, 10 ^ floor(log(v)) AS p FROM (SELECT greatest(top, least_top) / 5.0 AS v) a) b);
COMMENT ON FUNCTION evcharge.chart_step(numeric, numeric) IS
	'a round step (1, 2 or 5 times a power of ten) for a chart axis from 0 to top (at least least_top) in about five steps';

-- The tariff bands of the chart: each segment of each plan in force at the
-- station for the gun's current type, on every local day the chart covers,
-- cut to the plan's validity and to the chart, with the class's prices.
CREATE FUNCTION evcharge.chart_band_spans(f evcharge.chart_frame)
RETURNS TABLE (band_from timestamptz, band_to timestamptz, band_class text, station_tariff_id bigint,
	energy_price numeric, service_price numeric)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
	-- A handful of rows, but generate_series over days is estimated at 1000
	-- and the plan's cost crosses jit_above_cost: compiling took 1.2 s of a
	-- chart's 1.3 s.
	SET jit = off
BEGIN ATOMIC
	SELECT greatest(seg.seg_from, f.t0, lower(t.valid)), least(seg.seg_to, f.t1, upper(t.valid)), seg.class,
	       t.station_tariff_id, p.energy_price, p.service_fee
	FROM evcharge.station_tariff t
	CROSS JOIN generate_series(((f.t0 AT TIME ZONE f.tz)::date - 1)::timestamp, (f.t1 AT TIME ZONE f.tz)::date::timestamp,
	                           interval '1 day') d
	CROSS JOIN LATERAL (SELECT (d::date + g.starts) AT TIME ZONE f.tz AS seg_from, (d::date + g.ends) AT TIME ZONE f.tz AS seg_to, g.class
	                    FROM evcharge.tariff_segments(t.tariff) g) seg
	LEFT JOIN LATERAL evcharge.tariff_prices(t.tariff) p ON p.class = seg.class
	WHERE t.station_id = f.station_id AND t.current_type = f.current_type
	  AND t.valid && tstzrange(f.t0, f.t1) AND seg.seg_from < f.t1 AND seg.seg_to > f.t0
	  AND seg.seg_to > lower(t.valid) AND (upper_inf(t.valid) OR seg.seg_from < upper(t.valid))
	  -- the plan by calendar in force then (plan_in_force), not every plan valid then
	  AND (SELECT x.station_tariff_id FROM evcharge.plan_in_force(f.station_id, f.current_type,
	           greatest(seg.seg_from, f.t0, lower(t.valid))) x) = t.station_tariff_id
	ORDER BY 1;
END;
COMMENT ON FUNCTION evcharge.chart_band_spans(evcharge.chart_frame) IS
	'the tariff bands a chart draws: every segment of the plan in force (plan_in_force: by calendar, a declared hot day''s plan on that day) at the station for the gun''s current type over the chart''s span, cut to the plan''s validity and the chart, with its class and the class''s electricity and service prices';

-- The lines drawn in the plot, as points in px: the energy curve, the
-- power curve (support), the pile's claim (support) and the session's
-- moments.  The curves are drawn from these, and labels keep off them.
CREATE FUNCTION evcharge.chart_paths(f evcharge.chart_frame)
RETURNS TABLE (path text, x float8[], y float8[])
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT 'energy', array_agg(evcharge.chart_x(f, u.t) ORDER BY u.t), array_agg(evcharge.chart_y(f, u.w) ORDER BY u.t)
	FROM unnest(f.curve_ts, f.curve_wh) u(t, w) WHERE u.w IS NOT NULL
	HAVING count(*) > 0
	UNION ALL
	SELECT 'power', array_agg(evcharge.chart_x(f, u.t) ORDER BY u.t), array_agg(evcharge.chart_y_power(f, u.w) ORDER BY u.t)
	FROM unnest(f.ev_ts, f.ev_w) u(t, w) WHERE u.w IS NOT NULL AND f.view = 'support'
	HAVING count(*) > 0
	UNION ALL
	SELECT 'claim', ARRAY[f.px0, f.px1], ARRAY[evcharge.chart_y(f, f.rec_energy_wh), evcharge.chart_y(f, f.rec_energy_wh)]
	WHERE f.view = 'support' AND f.rec_energy_wh IS NOT NULL
	UNION ALL
	SELECT 'moment-' || m.what, ARRAY[evcharge.chart_x(f, m.at), evcharge.chart_x(f, m.at)], ARRAY[f.py0 - 40, f.py1]
	FROM (VALUES ('start', f.started_at), ('end', f.charging_ended_at), ('unplugged', f.occupied_until)) m(what, at)
	WHERE m.at IS NOT NULL;
END;
COMMENT ON FUNCTION evcharge.chart_paths(evcharge.chart_frame) IS
	'the lines a chart draws in its plot, as px points: the energy curve, the power curve and the pile''s claim (support view), the start, end of charging and unplug';

-- The header of the chart, one line per fact (each drawn 20 px below the
-- one before; a long one is wrapped).  Support: the order, gun and
-- station; the bill and where its energy came from; the pile's record;
-- the heartbeats shown.  Driver: the receipt's title, where, when, how
-- much.  A further fact of the order (a partner's order number) is one
-- more line here.
CREATE FUNCTION evcharge.chart_header(f evcharge.chart_frame) RETURNS text[]
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	lines text[];
	n int := coalesce(cardinality(f.ev_ts), 0);
	local_from timestamp := coalesce(f.bill_started_at, f.started_at, f.created_at) AT TIME ZONE f.tz;
	local_to timestamp := coalesce(f.bill_ended_at, f.charging_ended_at, f.ev_ts[n]) AT TIME ZONE f.tz;
BEGIN
	IF f.view = 'driver' THEN
		lines := ARRAY[
			format('%s · %s %s', evcharge.chart_word(f.lang, 'title'), evcharge.chart_word(f.lang, 'order'), f.order_no),
			format('%s · %s %s', f.station_name, evcharge.chart_word(f.lang, 'gun'), f.gun),
			format('%s–%s (%s)', to_char(local_from, 'YYYY-MM-DD HH24:MI'),
			       CASE WHEN local_to::date = local_from::date THEN '' ELSE to_char(local_to, 'YYYY-MM-DD ') END
			       || coalesce(to_char(local_to, 'HH24:MI'), '…'), evcharge.chart_word(f.lang, 'local_time'))
			|| format(' · %s %s kWh', evcharge.chart_word(f.lang, 'delivered'),
			          evcharge.chart_kwh(coalesce(f.bill_energy_wh, f.measured_wh)))
			|| CASE WHEN f.priced
			        THEN format(' · %s %s %s', evcharge.chart_word(f.lang, 'total'), f.total, evcharge.chart_word(f.lang, 'yuan')) ELSE '' END];
		RETURN lines;
	END IF;
	lines := ARRAY[format('Order %s · gun %s', f.order_no, f.gun), format('Station %s', f.station_name)];
	-- The partner's own number: Didi's users quote Didi's 27 digits.
	IF f.partner_order_no IS NOT NULL THEN
		lines := lines || format('Partner order %s', f.partner_order_no);
	END IF;
	IF f.has_bill THEN
		lines := lines || format('Bill, %s: %s kWh %s; total %s yuan (electricity %s, service %s, occupancy %s, discount %s)',
			CASE f.bill_state WHEN 'held' THEN 'held (not charged until repaired)' WHEN 'settled' THEN 'settled (charged)'
			     ELSE 'final (to be charged)' END,
			evcharge.chart_kwh(f.bill_energy_wh),
			CASE f.energy_source
				WHEN 'pile' THEN CASE WHEN f.bill_energy_wh <> f.measured_wh
					THEN format('from the pile''s record; the heartbeats measured %s kWh', evcharge.chart_kwh(f.measured_wh))
					ELSE 'from the pile''s record, as the heartbeats measured' END
				WHEN 'manual' THEN format('set by hand in a repair; the heartbeats measured %s kWh', evcharge.chart_kwh(f.measured_wh))
				ELSE 'measured from the heartbeats' END,
			f.total, f.energy_fee, f.service_fee, f.occupancy_fee, f.discount);
	ELSE
		lines := lines || format('No bill yet (session %s); measured so far: %s kWh', f.session_state, evcharge.chart_kwh(f.measured_wh));
	END IF;
	lines := lines || CASE WHEN f.has_record THEN
		format('Pile''s record: %s, %s to %s', coalesce(evcharge.chart_kwh(f.rec_energy_wh) || ' kWh', 'no energy'),
		       to_char(f.rec_started_at AT TIME ZONE f.tz, 'HH24:MI:SS'), to_char(f.rec_ended_at AT TIME ZONE f.tz, 'HH24:MI:SS'))
		|| CASE WHEN cardinality(f.rec_faults) > 0 THEN ' (its clock is not believed)' ELSE '' END
		ELSE 'No pile record' END;
	lines := lines || format('%s heartbeats, %s to %s local time', n, to_char(f.t0 AT TIME ZONE f.tz, 'HH24:MI:SS'),
		to_char(f.t1 AT TIME ZONE f.tz, 'HH24:MI:SS'));
	RETURN lines;
END $$;
COMMENT ON FUNCTION evcharge.chart_header(evcharge.chart_frame) IS
	'the header lines of a chart: support: order, gun, station; the bill, its state and where its energy came from; the pile''s record; the heartbeats shown; driver: title and order, station and gun, when, energy and total';

-- Step 1: everything the chart is drawn from.  The time axis covers the
-- heartbeats shown, the session's moments and the pile record's times when
-- its clock is believed; the energy axis the curve, the bill's energy and
-- the pile's claim.  The driver's curve is the bill's energy: the heartbeat
-- curve in its proportions, as the bill split it.
CREATE FUNCTION evcharge.chart_load(p_order_no text, p_view text, p_lang text) RETURNS evcharge.chart_frame
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	f evcharge.chart_frame;
	s record;
	b evcharge.bill;
	rec evcharge.pile_record;
	n int;
	believed boolean;
	top numeric;
	p record;
BEGIN
	-- The curve; session_evidence raises the error for an unknown order.
	SELECT array_agg(e.ts ORDER BY e.ts), array_agg(e.energy_wh ORDER BY e.ts),
	       array_agg(e.power_w ORDER BY e.ts), array_agg(e.note ORDER BY e.ts)
	INTO f.ev_ts, f.ev_wh, f.ev_w, f.ev_note
	FROM evcharge.session_evidence(p_order_no) e;
	n := coalesce(cardinality(f.ev_ts), 0);
	SELECT cs.*, st.name AS station_name, st.tz, evcharge.registered_current_type(cs.gun) AS current_type INTO s
	FROM evcharge.charge_session cs JOIN evcharge.station st ON st.station_id = cs.station_id
	WHERE cs.order_no = p_order_no;
	f.order_no := p_order_no;
	f.view := p_view;
	f.lang := p_lang;
	f.gun := s.gun::text;
	f.station_id := s.station_id;
	f.station_name := s.station_name;
	f.tz := s.tz;
	f.current_type := s.current_type;
	f.partner_order_no := s.partner_order_no;
	f.session_state := s.state;
	f.created_at := s.created_at;
	f.started_at := s.started_at;
	f.charging_ended_at := s.charging_ended_at;
	f.occupied_until := s.occupied_until;
	f.live_wh_by_class := s.wh_by_class;
	f.measured_wh := coalesce((SELECT max(w) FROM unnest(f.ev_wh) w), 0);

	SELECT * INTO b FROM evcharge.bill bl WHERE bl.order_no = p_order_no;
	f.has_bill := FOUND;
	IF f.has_bill THEN
		f.bill_state := b.state;
		f.bill_started_at := b.started_at;
		f.bill_ended_at := b.ended_at;
		f.bill_energy_wh := b.energy_wh;
		f.bill_wh_by_class := b.wh_by_class;
		f.energy_source := b.energy_source;
		f.energy_fee := b.energy_fee;
		f.service_fee := b.service_fee;
		f.occupancy_fee := b.occupancy_fee;
		f.discount := b.discount;
		f.total := b.total;
		f.anomalies := b.anomalies;
		f.applied := b.applied;
	END IF;
	-- Priced: not a bill held because nothing could price it (anomaly 12,
	-- no tariff in force; 17, the pile's current type unknown; 19, pricing
	-- failed), whose amounts mean nothing yet.  The one place both views ask.
	f.priced := f.has_bill AND NOT evcharge.anomaly_has(f.anomalies, 12)
		AND NOT evcharge.anomaly_has(f.anomalies, 17) AND NOT evcharge.anomaly_has(f.anomalies, 19)
		AND NOT EXISTS (SELECT 1 FROM unnest(f.applied) a WHERE a LIKE 'no tariff%' OR a LIKE 'not priced:%');
	-- The record the bill reads: the first one received.
	SELECT * INTO rec FROM evcharge.pile_record r WHERE r.order_no = p_order_no ORDER BY r.received_at, r.ctid LIMIT 1;
	f.has_record := FOUND;
	f.rec_faults := '{}';
	IF f.has_record THEN
		f.rec_started_at := rec.started_at;
		f.rec_ended_at := rec.ended_at;
		f.rec_energy_wh := rec.energy_wh;
		f.rec_received_at := rec.received_at;
		f.rec_faults := evcharge.pile_record_clock_faults(rec, s.started_at, evcharge.station_policy(s.station_id), s.tz);
	END IF;
	believed := f.has_record AND cardinality(f.rec_faults) = 0;

	-- The curve drawn: measured (support), or as billed (driver).
	f.curve_ts := f.ev_ts;
	f.curve_wh := f.ev_wh;
	IF p_view = 'driver' AND f.has_bill AND f.bill_energy_wh <> f.measured_wh THEN
		IF f.measured_wh > 0 THEN
			f.curve_wh := ARRAY(SELECT floor(w::numeric * f.bill_energy_wh / f.measured_wh)::bigint
			                    FROM unnest(f.ev_wh) WITH ORDINALITY u(w, i) ORDER BY u.i);
		ELSE
			f.curve_ts := ARRAY[f.bill_started_at, greatest(f.bill_ended_at, f.bill_started_at + interval '1 s')];
			f.curve_wh := ARRAY[0, f.bill_energy_wh];
		END IF;
	END IF;

	-- Time axis.
	f.t0 := coalesce(least(f.ev_ts[1], f.curve_ts[1], s.started_at, CASE WHEN believed THEN f.rec_started_at END), s.created_at);
	f.t1 := greatest(f.ev_ts[n], f.curve_ts[cardinality(f.curve_ts)], s.started_at, s.charging_ended_at, s.occupied_until,
		CASE WHEN believed THEN f.rec_ended_at END, f.t0 + interval '1 min');
	f.span := extract(epoch FROM f.t1 - f.t0)::float8;

	-- Value axes: 0 to a round top.
	top := greatest(coalesce((SELECT max(w) FROM unnest(f.curve_wh) w), 0), f.measured_wh,
		CASE WHEN p_view = 'support' THEN coalesce(f.rec_energy_wh, 0) ELSE 0 END, 0);
	f.e_step := evcharge.chart_step(top, 100);
	f.e_top := greatest(ceil(top / f.e_step), 1) * f.e_step;
	top := coalesce((SELECT max(w) FROM unnest(f.ev_w) w), 0) / 1000.0;
	f.p_step := evcharge.chart_step(top, 1);
	f.p_top := greatest(ceil(top / f.p_step), 1) * f.p_step;

	-- The plot area, below the header.
	f.width := 960;
	f.header := ARRAY(SELECT l FROM unnest(evcharge.chart_header(f)) WITH ORDINALITY h(line, i),
	                  unnest(evcharge.chart_wrap(h.line, 800, CASE WHEN h.i = 1 THEN 18.4 ELSE 12 END)) l);
	f.px0 := 80;
	f.px1 := 880;
	f.py0 := 26 + 20 * (cardinality(f.header) - 1) + 48;
	f.py1 := f.py0 + 300;

	f.classes := ARRAY(SELECT DISTINCT ON (evcharge.chart_class_rank(c.band_class), c.band_class) c.band_class
	                   FROM evcharge.chart_band_spans(f) c
	                   ORDER BY evcharge.chart_class_rank(c.band_class), c.band_class);
	f.seg_x1 := '{}';
	f.seg_y1 := '{}';
	f.seg_x2 := '{}';
	f.seg_y2 := '{}';
	f.seg_soft := '{}';
	FOR p IN SELECT * FROM evcharge.chart_paths(f) LOOP
		f.seg_soft := f.seg_soft || array_fill(p.path = 'power', ARRAY[greatest(cardinality(p.x) - 1, 0)]);
		f.seg_x1 := f.seg_x1 || p.x[1:cardinality(p.x) - 1];
		f.seg_y1 := f.seg_y1 || p.y[1:cardinality(p.y) - 1];
		f.seg_x2 := f.seg_x2 || p.x[2:cardinality(p.x)];
		f.seg_y2 := f.seg_y2 || p.y[2:cardinality(p.y)];
	END LOOP;
	RETURN f;
END $$;
COMMENT ON FUNCTION evcharge.chart_load(text, text, text) IS
	'step 1 of a chart: the order''s session, bill, pile record (and why its clock is not believed) and evidence rows; the curve drawn (measured for support, as billed for the driver); the time axis (heartbeats, moments, the record''s times when believed), the value axes, the header, the plot area, the classes shown and the segments labels keep off';

-- Step 2: the tariff classes as background bands, one <rect> per band.
CREATE FUNCTION evcharge.chart_bands(f evcharge.chart_frame) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT '<g id="tariff-bands">' || coalesce(string_agg(format('<rect class="band-%s" x="%s" y="%s" width="%s" height="%s"/>',
		evcharge.xml_escape(c.band_class), evcharge.chart_num(evcharge.chart_x(f, c.band_from)), evcharge.chart_num(f.py0),
		evcharge.chart_num(evcharge.chart_x(f, c.band_to) - evcharge.chart_x(f, c.band_from)), evcharge.chart_num(f.py1 - f.py0)),
		'' ORDER BY c.band_from), '') || '</g>'
	FROM evcharge.chart_band_spans(f) c;
END;
COMMENT ON FUNCTION evcharge.chart_bands(evcharge.chart_frame) IS
	'step 2 of a chart: the tariff classes in force as background bands, <g id="tariff-bands"> with a <rect class="band-CLASS"> per band';

-- Step 3: grid, ticks, the axes' units and the time axis's caption.  The
-- energy axis in Wh (support) or kWh (driver); the power axis (kW) on the
-- right for support; ticks at round local times, at most 8.
CREATE FUNCTION evcharge.chart_axes(f evcharge.chart_frame) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	body text := '<g id="axes">';
	k int;
	y float8;
	x float8;
	l0 timestamp := f.t0 AT TIME ZONE f.tz;
	l1 timestamp := f.t1 AT TIME ZONE f.tz;
	tick_every interval;
	tick timestamp;
BEGIN
	FOR k IN 0 .. round(f.e_top / f.e_step)::int LOOP
		y := evcharge.chart_y(f, k * f.e_step);
		body := body || format('<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/>', f.px0, evcharge.chart_num(y), f.px1, evcharge.chart_num(y))
			|| evcharge.chart_text(f.px0 - 6, y + 4, 'end', NULL, CASE WHEN f.view = 'driver'
				THEN trim(trailing '.' FROM trim(trailing '0' FROM to_char(k * f.e_step / 1000, 'FM999999990.000')))
				ELSE round(k * f.e_step)::text END);
	END LOOP;
	body := body || evcharge.chart_text(f.px0 - 6, f.py0 - 10, 'end', NULL, CASE WHEN f.view = 'driver' THEN 'kWh' ELSE 'Wh' END);
	IF f.view = 'support' THEN
		FOR k IN 0 .. round(f.p_top / f.p_step)::int LOOP
			y := evcharge.chart_y_power(f, k * f.p_step * 1000);
			body := body || format('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>', f.px1, evcharge.chart_num(y), f.px1 + 4, evcharge.chart_num(y))
				|| evcharge.chart_text(f.px1 + 7, y + 4, NULL, NULL, round(k * f.p_step, 1)::text);
		END LOOP;
		body := body || evcharge.chart_text(f.px1 + 7, f.py0 - 10, NULL, NULL, 'kW');
	END IF;

	SELECT m * interval '1 min' INTO tick_every
	FROM unnest(ARRAY[1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440]) m
	WHERE f.span / 60 / m <= 8 ORDER BY m LIMIT 1;
	tick_every := coalesce(tick_every, ceil(f.span / 86400 / 8) * interval '1 day');
	tick := date_bin(tick_every, l0, timestamp '2000-01-01');
	IF tick < l0 THEN
		tick := tick + tick_every;
	END IF;
	WHILE tick <= l1 LOOP
		x := evcharge.chart_x(f, tick AT TIME ZONE f.tz);
		body := body || format('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s"/>', evcharge.chart_num(x), f.py1,
		                       evcharge.chart_num(x), f.py1 + 4)
			|| evcharge.chart_text(x, f.py1 + 17, 'middle', NULL,
			                       to_char(tick, CASE WHEN tick::date = l0::date THEN 'HH24:MI' ELSE 'MM-DD HH24:MI' END));
		tick := tick + tick_every;
	END LOOP;
	RETURN body
		|| format('<rect class="frame" x="%s" y="%s" width="%s" height="%s"/>', f.px0, f.py0, f.px1 - f.px0, f.py1 - f.py0)
		|| evcharge.chart_text((f.px0 + f.px1) / 2, f.py1 + 35, 'middle', NULL,
			format('%s (%s), %s', CASE WHEN f.view = 'driver' THEN evcharge.chart_word(f.lang, 'local_time') ELSE 'local time' END, f.tz,
			       CASE WHEN l0::date = l1::date THEN to_char(l0, 'YYYY-MM-DD')
			            ELSE to_char(l0, 'YYYY-MM-DD') || ' – ' || to_char(l1, 'YYYY-MM-DD') END))
		|| '</g>';
END $$;
COMMENT ON FUNCTION evcharge.chart_axes(evcharge.chart_frame) IS
	'step 3 of a chart: <g id="axes">: grid and energy ticks (Wh for support, kWh for the driver), power ticks (kW, support), time ticks at round local times, the units above the axes, the frame and the caption with the zone and date';

-- Step 4: the curves: power (dashed, support), the energy curve, and the
-- pile's claim (support): a line at the energy its record gives, with a
-- diamond at the record's end when its clock is believed.
CREATE FUNCTION evcharge.chart_curves(f evcharge.chart_frame) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT '<g id="curves">'
		|| coalesce(string_agg(CASE WHEN p.path IN ('energy', 'power', 'claim') THEN
			format('<polyline class="%s" points="%s"/>', p.path,
			       (SELECT string_agg(evcharge.chart_num(u.x) || ',' || evcharge.chart_num(u.y), ' ' ORDER BY u.i)
			        FROM unnest(p.x, p.y) WITH ORDINALITY u(x, y, i))) END,
			'' ORDER BY array_position(ARRAY['power', 'claim', 'energy'], p.path)), '')
		|| coalesce((SELECT format('<path class="claim-end" d="M %s %s l 6 6 l -6 6 l -6 -6 z"/>',
		                           evcharge.chart_num(evcharge.chart_x(f, f.rec_ended_at)),
		                           evcharge.chart_num(evcharge.chart_y(f, f.rec_energy_wh) - 6))
		             WHERE f.view = 'support' AND f.rec_energy_wh IS NOT NULL AND cardinality(f.rec_faults) = 0), '')
		|| '</g>'
	FROM evcharge.chart_paths(f) p;
END;
COMMENT ON FUNCTION evcharge.chart_curves(evcharge.chart_frame) IS
	'step 4 of a chart: <g id="curves">: the power curve (support, dashed), the pile''s claim (support: a line at its record''s energy, a diamond at its end when its clock is believed) and the energy curve, from chart_paths';

-- Placing one label: the first of the candidate spots (x, y, text-anchor)
-- where its box lies inside the area and covers neither a label already
-- placed (taken: four numbers a box) nor a line of the plot; failing
-- that, the first that crosses only the power curve; then the first that
-- covers no label; failing that, the first.  The
-- label is drawn on a pale box, and its box is added to taken.
CREATE FUNCTION evcharge.chart_place_label(f evcharge.chart_frame, t text, cls text, cand_x float8[], cand_y float8[],
	cand_anchor text[], area float8[], INOUT taken float8[], OUT svg text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	size CONSTANT float8 := 12;
	w float8 := evcharge.chart_text_width(t, size);
	i int;
	k int;
	chosen int;
	second int;
	fallback int;
	x0 float8;
	y0 float8;
	x1 float8;
	y1 float8;
	free boolean;
	hard_free boolean;
BEGIN
	<<candidates>>
	FOR i IN 1 .. cardinality(cand_x) LOOP
		-- The box as chart_text_box() gives it, with the width known.
		x0 := cand_x[i] - w * CASE cand_anchor[i] WHEN 'middle' THEN 0.5 WHEN 'end' THEN 1 ELSE 0 END - 2;
		x1 := x0 + w + 4;
		y0 := cand_y[i] - 0.95 * size - 1;
		y1 := cand_y[i] + 0.3 * size + 1;
		CONTINUE WHEN x0 < area[1] OR y0 < area[2] OR x1 > area[3] OR y1 > area[4];
		FOR k IN 1 .. coalesce(cardinality(taken), 0) / 4 LOOP
			CONTINUE candidates WHEN taken[4 * k - 3] < x1 AND taken[4 * k - 1] > x0 AND taken[4 * k - 2] < y1 AND taken[4 * k] > y0;
		END LOOP;
		fallback := coalesce(fallback, i);
		-- Clear of every line: a segment crosses the box (2 px around it)
		-- when, cut to the box's columns, its rows meet the box's.
		SELECT coalesce(NOT bool_or(true), true), coalesce(NOT bool_or(NOT s.soft), true) FROM (
			SELECT s.soft FROM unnest(f.seg_x1, f.seg_y1, f.seg_x2, f.seg_y2, f.seg_soft) s(sx1, sy1, sx2, sy2, soft),
			     LATERAL (SELECT greatest(least(s.sx1, s.sx2), x0 - 2) AS cx0, least(greatest(s.sx1, s.sx2), x1 + 2) AS cx1) c,
			     LATERAL (SELECT CASE WHEN s.sx1 = s.sx2 THEN s.sy1 ELSE s.sy1 + (s.sy2 - s.sy1) * (c.cx0 - s.sx1) / (s.sx2 - s.sx1) END AS ya,
			                     CASE WHEN s.sx1 = s.sx2 THEN s.sy2 ELSE s.sy1 + (s.sy2 - s.sy1) * (c.cx1 - s.sx1) / (s.sx2 - s.sx1) END AS yb) e
			WHERE c.cx0 <= c.cx1 AND greatest(e.ya, e.yb) >= y0 - 2 AND least(e.ya, e.yb) <= y1 + 2) s
		INTO free, hard_free;
		IF free THEN
			chosen := i;
			EXIT;
		END IF;
		IF hard_free THEN
			second := coalesce(second, i);
		END IF;
	END LOOP;
	chosen := coalesce(chosen, second, fallback, 1);
	x0 := cand_x[chosen] - w * CASE cand_anchor[chosen] WHEN 'middle' THEN 0.5 WHEN 'end' THEN 1 ELSE 0 END - 2;
	y0 := cand_y[chosen] - 0.95 * size - 1;
	taken := coalesce(taken, '{}') || ARRAY[x0, y0, x0 + w + 4, cand_y[chosen] + 0.3 * size + 1];
	svg := format('<rect class="label-box" x="%s" y="%s" width="%s" height="%s"/>', evcharge.chart_num(x0),
	              evcharge.chart_num(y0), evcharge.chart_num(w + 4), evcharge.chart_num(0.3 * size + 1 + 0.95 * size + 1))
		|| evcharge.chart_text(cand_x[chosen], cand_y[chosen], cand_anchor[chosen], cls, t);
END $$;
COMMENT ON FUNCTION evcharge.chart_place_label(evcharge.chart_frame, text, text, float8[], float8[], text[], float8[], float8[]) IS
	'places a chart label at the first candidate spot whose box (chart_text_box) is inside the area and covers no label placed before and no line of the plot (else one crossing only the power curve, else one covering no label, else the first); returns the <rect class="label-box"> and <text> and adds the box to taken';

-- Candidate spots around a point: beside it on the right and the left,
-- then above and below it ever further, then anywhere in its column.
CREATE FUNCTION evcharge.chart_spots_near(x float8, y float8, OUT xs float8[], OUT ys float8[], OUT anchors text[])
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
	SELECT array_agg(x + c.dx ORDER BY c.n, c.m), array_agg(y + c.dy ORDER BY c.n, c.m), array_agg(c.anchor ORDER BY c.n, c.m)
	FROM (SELECT d.n, a.m, d.dy, CASE a.anchor WHEN 'start' THEN 9 WHEN 'end' THEN -9 ELSE 0 END AS dx, a.anchor
	      FROM (SELECT g AS n, CASE WHEN g % 2 = 1 THEN -4 - 14 * ((g - 1) / 2) ELSE 16 + 14 * ((g - 2) / 2) END::float8 AS dy
	            FROM generate_series(1, 40) g) d
	      CROSS JOIN (VALUES (1, 'start'), (2, 'end'), (3, 'middle')) a(m, anchor)) c;
END;
COMMENT ON FUNCTION evcharge.chart_spots_near(float8, float8) IS
	'candidate spots (x, y, text-anchor) for a label of a point: right, left and centred, just above it, just below, then ever further above and below (14 px a step, 20 steps each way)';

-- Candidate spots along a vertical line at x from the top of the plot
-- down: right of it, then left.
CREATE FUNCTION evcharge.chart_spots_down(x float8, y0 float8, y1 float8, OUT xs float8[], OUT ys float8[], OUT anchors text[])
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
	SELECT array_agg(x + CASE a.anchor WHEN 'start' THEN 5 ELSE -5 END ORDER BY g, a.m), array_agg(y0 + 14 * g ORDER BY g, a.m),
	       array_agg(a.anchor ORDER BY g, a.m)
	FROM generate_series(1, greatest(floor((y1 - y0) / 14)::int - 1, 1)) g
	CROSS JOIN (VALUES (1, 'start'), (2, 'end')) a(m, anchor);
END;
COMMENT ON FUNCTION evcharge.chart_spots_down(float8, float8, float8) IS
	'candidate spots (x, y, text-anchor) for a label of a vertical line at x: every 14 px from y0 down to y1, right of the line, then left';

-- Step 5: the session's moments as dashed lines, each labelled with its
-- time where the label covers nothing.
CREATE FUNCTION evcharge.chart_moments(f evcharge.chart_frame, INOUT taken float8[], OUT svg text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
	x float8;
	c record;
	placed record;
	area float8[] := ARRAY[f.px0 + 1, f.py0 - 40, f.px1 - 1, f.py1 - 1];
BEGIN
	svg := '<g id="moments">';
	FOR r IN
		SELECT m.at, m.label
		FROM (VALUES (f.started_at, CASE WHEN f.view = 'driver' THEN evcharge.chart_word(f.lang, 'start') ELSE 'start' END, 1),
		             (f.charging_ended_at, CASE WHEN f.view = 'driver' THEN evcharge.chart_word(f.lang, 'end') ELSE 'end of charging' END, 2),
		             (f.occupied_until, CASE WHEN f.view = 'driver' THEN evcharge.chart_word(f.lang, 'unplugged') ELSE 'unplugged' END, 3))
		     m(at, label, n)
		WHERE m.at IS NOT NULL ORDER BY m.n
	LOOP
		x := evcharge.chart_x(f, r.at);
		-- Above the plot, where no curve runs, in two rows, right of the
		-- line then left of it; in the plot along the line when both are full.
		c := evcharge.chart_spots_down(x, f.py0, f.py1);
		placed := evcharge.chart_place_label(f, format('%s %s', r.label, to_char(r.at AT TIME ZONE f.tz,
			CASE WHEN f.view = 'driver' THEN 'HH24:MI' ELSE 'HH24:MI:SS' END)), NULL,
			ARRAY[x + 5, x - 5, x + 5, x - 5] || c.xs, ARRAY[f.py0 - 6, f.py0 - 6, f.py0 - 24, f.py0 - 24] || c.ys,
			ARRAY['start', 'end', 'start', 'end'] || c.anchors, area, taken);
		taken := placed.taken;
		svg := svg || format('<line class="mark" x1="%s" y1="%s" x2="%s" y2="%s"/>', evcharge.chart_num(x), f.py0 - 40,
		                     evcharge.chart_num(x), f.py1)
			|| placed.svg;
	END LOOP;
	svg := svg || '</g>';
END $$;
COMMENT ON FUNCTION evcharge.chart_moments(evcharge.chart_frame, float8[]) IS
	'step 5 of a chart: <g id="moments">: the start, end of charging and unplug as dashed lines with their times (support: HH:MI:SS in English; driver: HH:MI in the driver''s words), labels placed by chart_place_label';

-- Step 6 (support): what the bill did not count: each silence while
-- charging as a grey band, each meter jump as a red dot, labelled.
CREATE FUNCTION evcharge.chart_marks(f evcharge.chart_frame, INOUT taken float8[], OUT svg text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
	x float8;
	w float8;
	y float8;
	c record;
	placed record;
	bx float8[];
	lx float8;
	ly float8;
	area float8[] := ARRAY[f.px0 + 1, f.py0 + 1, f.px1 - 1, f.py1 - 1];
BEGIN
	svg := '<g id="marks">';
	FOR r IN
		SELECT g.prev, g.t, substring(g.note FROM 'no heartbeat for ([0-9]+ min [0-9]+ s)') AS len
		FROM (SELECT u.t, u.note, lag(u.t) OVER (ORDER BY u.t) AS prev FROM unnest(f.ev_ts, f.ev_note) u(t, note)) g
		WHERE g.note ~ 'no heartbeat for' ORDER BY g.t
	LOOP
		x := evcharge.chart_x(f, r.prev);
		w := evcharge.chart_x(f, r.t) - x;
		svg := svg || format('<rect class="gap" x="%s" y="%s" width="%s" height="%s"/>', evcharge.chart_num(x), f.py0,
		                     evcharge.chart_num(w), f.py1 - f.py0);
		-- Inside the band from the bottom up, then beside it.
		SELECT array_agg(s.x ORDER BY s.n) AS xs, array_agg(s.y ORDER BY s.n) AS ys, array_agg(s.a ORDER BY s.n) AS anchors INTO c
		FROM (SELECT g * 2 + k AS n, CASE k WHEN 0 THEN x + w / 2 WHEN 1 THEN x + w + 3 ELSE x - 3 END AS x,
		             f.py1 - 6 - 14 * g AS y, CASE k WHEN 0 THEN 'middle' WHEN 1 THEN 'start' ELSE 'end' END AS a
		      FROM generate_series(0, floor((f.py1 - f.py0) / 14)::int - 2) g, generate_series(0, 2) k) s;
		placed := evcharge.chart_place_label(f, format('no data %s', r.len), 'warn', c.xs, c.ys, c.anchors, area, taken);
		taken := placed.taken;
		svg := svg || placed.svg;
	END LOOP;
	FOR r IN
		SELECT u.t, u.w, substring(u.note FROM 'meter jump of ([0-9]+) Wh') AS jump
		FROM unnest(f.ev_ts, f.ev_wh, f.ev_note) u(t, w, note)
		WHERE u.note ~ 'meter jump of' ORDER BY u.t
	LOOP
		x := evcharge.chart_x(f, r.t);
		y := evcharge.chart_y(f, coalesce(r.w, 0));
		c := evcharge.chart_spots_near(x, y);
		placed := evcharge.chart_place_label(f, format('jump +%s Wh, not billed', r.jump), 'warn', c.xs, c.ys, c.anchors, area, taken);
		taken := placed.taken;
		svg := svg || format('<circle class="jump" cx="%s" cy="%s" r="5"/>', evcharge.chart_num(x), evcharge.chart_num(y));
		-- A label placed away from its dot points at it.
		bx := taken[cardinality(taken) - 3:cardinality(taken)];
		lx := greatest(bx[1], least(x, bx[3]));
		ly := greatest(bx[2], least(y, bx[4]));
		IF sqrt((lx - x) ^ 2 + (ly - y) ^ 2) > 20 THEN
			svg := svg || format('<line class="leader" x1="%s" y1="%s" x2="%s" y2="%s"/>', evcharge.chart_num(x), evcharge.chart_num(y),
			                     evcharge.chart_num(lx), evcharge.chart_num(ly));
		END IF;
		svg := svg || placed.svg;
	END LOOP;
	svg := svg || '</g>';
END $$;
COMMENT ON FUNCTION evcharge.chart_marks(evcharge.chart_frame, float8[]) IS
	'step 6 of the support chart: <g id="marks">: each silence longer than 2 minutes while charging as a grey band (no data M min S s), each meter jump as a red dot (jump +N Wh, not billed), labels placed by chart_place_label';

-- Step 7 (support): the pile's claim labelled: its energy and how far it
-- is from what the heartbeats measured; beside its line, from the right
-- end leftwards, just above or below it, then further away.
CREATE FUNCTION evcharge.chart_claim_label(f evcharge.chart_frame, INOUT taken float8[], OUT svg text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	y float8;
	c record;
	placed record;
	said text;
BEGIN
	svg := '<g id="claim">';
	IF f.view = 'support' AND f.rec_energy_wh IS NOT NULL THEN
		y := evcharge.chart_y(f, f.rec_energy_wh);
		said := format('pile''s record %s Wh', f.rec_energy_wh) || CASE
			WHEN f.rec_energy_wh > f.measured_wh THEN format(': %s Wh above the heartbeats'' %s Wh', f.rec_energy_wh - f.measured_wh, f.measured_wh)
			WHEN f.rec_energy_wh < f.measured_wh THEN format(': %s Wh below the heartbeats'' %s Wh', f.measured_wh - f.rec_energy_wh, f.measured_wh)
			ELSE ': the heartbeats'' figure' END;
		SELECT array_agg(s.x ORDER BY s.n) AS xs, array_agg(s.y ORDER BY s.n) AS ys, array_agg(s.a ORDER BY s.n) AS anchors INTO c
		FROM (SELECT g * 100 + k AS n, f.px1 - 4 - 40 * k AS x,
		             y + CASE WHEN g % 2 = 0 THEN -5 - 14 * (g / 2) ELSE 16 + 14 * (g / 2) END AS y, 'end' AS a
		      FROM generate_series(0, 19) g, generate_series(0, 19) k) s;
		placed := evcharge.chart_place_label(f, said, 'claim-text', c.xs, c.ys, c.anchors,
			ARRAY[f.px0 + 1, f.py0 + 1, f.px1 - 1, f.py1 - 1], taken);
		taken := placed.taken;
		svg := svg || placed.svg;
	END IF;
	svg := svg || '</g>';
END $$;
COMMENT ON FUNCTION evcharge.chart_claim_label(evcharge.chart_frame, float8[]) IS
	'step 7 of the support chart: <g id="claim">: the label of the pile''s claim (pile''s record N Wh, M Wh above or below the heartbeats), placed by chart_place_label';

-- Step 7 (driver): each band named in the driver's words at its top, where
-- it fits.
CREATE FUNCTION evcharge.chart_band_labels(f evcharge.chart_frame, INOUT taken float8[], OUT svg text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
	x0 float8;
	x1 float8;
	c record;
	placed record;
	name text;
BEGIN
	svg := '<g id="band-labels">';
	FOR r IN SELECT * FROM evcharge.chart_band_spans(f) ORDER BY 1 LOOP
		x0 := evcharge.chart_x(f, r.band_from);
		x1 := evcharge.chart_x(f, r.band_to);
		name := evcharge.chart_class_name(r.band_class, f.lang);
		CONTINUE WHEN x1 - x0 < evcharge.chart_text_width(name, 12) + 8;
		SELECT array_agg((x0 + x1) / 2 ORDER BY g) AS xs, array_agg(f.py0 + 16 + 14 * g ORDER BY g) AS ys,
		       array_agg('middle'::text ORDER BY g) AS anchors INTO c
		FROM generate_series(0, 18) g;
		placed := evcharge.chart_place_label(f, name, 'band-name', c.xs, c.ys, c.anchors,
			ARRAY[x0 + 1, f.py0 + 1, x1 - 1, f.py1 - 1], taken);
		taken := placed.taken;
		svg := svg || placed.svg;
	END LOOP;
	svg := svg || '</g>';
END $$;
COMMENT ON FUNCTION evcharge.chart_band_labels(evcharge.chart_frame, float8[]) IS
	'step 7 of the driver''s chart: <g id="band-labels">: each tariff band named in the driver''s words (chart_class_name) near its top, where it fits, placed by chart_place_label';

-- Items laid out in rows from left to right, wrapped at the plot's width:
-- each a swatch (the class of a line, a band, or none) and a text.
-- Returns the SVG and the baseline of the last row.
CREATE FUNCTION evcharge.chart_flow(f evcharge.chart_frame, y float8, kinds text[], classes text[], texts text[],
	OUT svg text, OUT bottom float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	i int;
	x float8 := f.px0;
	w float8;
BEGIN
	svg := '';
	FOR i IN 1 .. coalesce(cardinality(texts), 0) LOOP
		w := CASE WHEN kinds[i] = 'none' THEN 0 ELSE 30 END + evcharge.chart_text_width(texts[i], 12);
		IF x > f.px0 AND x + w > f.px1 THEN
			x := f.px0;
			y := y + 20;
		END IF;
		svg := svg || CASE kinds[i]
			WHEN 'line' THEN format('<line class="%s" x1="%s" y1="%s" x2="%s" y2="%s"/>', classes[i], evcharge.chart_num(x),
			                        evcharge.chart_num(y - 4), evcharge.chart_num(x + 24), evcharge.chart_num(y - 4))
			WHEN 'box' THEN format('<rect class="%s" x="%s" y="%s" width="24" height="10"/>', evcharge.xml_escape(classes[i]),
			                       evcharge.chart_num(x), evcharge.chart_num(y - 9))
			WHEN 'dot' THEN format('<circle class="%s" cx="%s" cy="%s" r="5"/>', classes[i], evcharge.chart_num(x + 12), evcharge.chart_num(y - 4))
			ELSE '' END
			|| evcharge.chart_text(x + CASE WHEN kinds[i] = 'none' THEN 0 ELSE 30 END, y, NULL,
			                       CASE WHEN kinds[i] = 'none' THEN classes[i] END, texts[i]);
		x := x + w + 24;
	END LOOP;
	bottom := y;
END $$;
COMMENT ON FUNCTION evcharge.chart_flow(evcharge.chart_frame, float8, text[], text[], text[]) IS
	'lays out legend items left to right, wrapped at the plot''s width, 20 px a row: each a swatch (line, box or dot of a class, or none: plain text of that class) and its text; returns the SVG and the last row''s baseline';

-- Step 8: the legend.  Support: what each line is (the energy curve is
-- what the heartbeats measured, whatever the bill counted), the marks
-- shown, then each class drawn with its plan's prices (a class twice when
-- a plan change during the session changed them).  Driver: the curve and
-- the classes by name.
CREATE FUNCTION evcharge.chart_legend(f evcharge.chart_frame, y float8, OUT svg text, OUT bottom float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	kinds text[];
	classes text[];
	texts text[];
	r record;
	flow record;
BEGIN
	IF f.view = 'driver' THEN
		kinds := ARRAY['line'];
		classes := ARRAY['energy'];
		texts := ARRAY[format('%s (kWh)', evcharge.chart_word(f.lang, 'delivered'))];
		FOR r IN SELECT c FROM unnest(f.classes) c LOOP
			kinds := kinds || 'box'::text;
			classes := classes || ('band-' || r.c);
			texts := texts || evcharge.chart_class_name(r.c, f.lang);
		END LOOP;
		flow := evcharge.chart_flow(f, y, kinds, classes, texts);
		svg := '<g id="legend">' || flow.svg || '</g>';
		bottom := flow.bottom;
		RETURN;
	END IF;

	kinds := ARRAY['line', 'line'];
	classes := ARRAY['energy', 'power'];
	texts := ARRAY['energy measured from the heartbeats (Wh)', 'power (kW)'];
	IF f.rec_energy_wh IS NOT NULL THEN
		kinds := kinds || 'line'::text;
		classes := classes || 'claim'::text;
		texts := texts || CASE WHEN f.energy_source = 'pile' THEN 'the pile''s record (Wh), the energy billed'
		                       ELSE 'the pile''s record (Wh)' END;
	END IF;
	IF EXISTS (SELECT 1 FROM unnest(f.ev_note) n WHERE n ~ 'no heartbeat for') THEN
		kinds := kinds || 'box'::text;
		classes := classes || 'gap'::text;
		texts := texts || 'no heartbeat for over 2 min while charging'::text;
	END IF;
	IF EXISTS (SELECT 1 FROM unnest(f.ev_note) n WHERE n ~ 'meter jump of') THEN
		kinds := kinds || 'dot'::text;
		classes := classes || 'jump'::text;
		texts := texts || 'meter jump, not billed'::text;
	END IF;
	flow := evcharge.chart_flow(f, y, kinds, classes, texts);
	svg := '<g id="legend">' || flow.svg;
	y := flow.bottom + 22;
	kinds := '{}';
	classes := '{}';
	texts := '{}';
	FOR r IN
		SELECT DISTINCT c.band_class, c.energy_price, c.service_price, evcharge.chart_class_rank(c.band_class) AS rank
		FROM evcharge.chart_band_spans(f) c
		ORDER BY rank, c.band_class, c.energy_price, c.service_price
	LOOP
		kinds := kinds || 'box'::text;
		classes := classes || ('band-' || r.band_class);
		texts := texts || CASE WHEN r.energy_price IS NULL THEN format('%s: no price', r.band_class)
		                       ELSE format('%s %s + %s', r.band_class, round(r.energy_price, 4), round(r.service_price, 4)) END;
	END LOOP;
	IF cardinality(texts) > 0 THEN
		svg := svg || evcharge.chart_text(f.px0, y, NULL, NULL, 'tariff classes (electricity + service fee, yuan/kWh):');
		flow := evcharge.chart_flow(f, y + 20, kinds, classes, texts);
		svg := svg || flow.svg;
		bottom := flow.bottom;
	ELSE
		svg := svg || evcharge.chart_text(f.px0, y, NULL, 'warn', CASE WHEN f.current_type IS NULL
			THEN 'the pile''s current type (AC or DC) is not known: no plan applies, nothing can be priced'
			ELSE format('no %s plan in force at this station: nothing can be priced', f.current_type) END);
		bottom := y;
	END IF;
	svg := svg || '</g>';
END $$;
COMMENT ON FUNCTION evcharge.chart_legend(evcharge.chart_frame, float8) IS
	'step 8 of a chart: <g id="legend">: support: the energy measured from the heartbeats, power, the pile''s record (and whether it was billed), silences and jumps when shown, then every class drawn with its electricity and service prices (or that no plan is in force); driver: the curve and the classes by name; returns the SVG and the last baseline';

-- Step 9 (support): the bill's anomalies in a box: the codes as operators
-- write them, and one line per code with its name and what caused it.
CREATE FUNCTION evcharge.chart_anomaly_box(f evcharge.chart_frame, y float8, OUT svg text, OUT bottom float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	lines text[];
	heads int := 1;
	k int;
BEGIN
	IF NOT f.has_bill THEN
		lines := ARRAY['No bill yet: anomalies are looked for when the bill is made.'];
	ELSIF cardinality(evcharge.anomaly_codes(f.anomalies)) = 0 THEN
		lines := ARRAY[format('No anomalies on the bill (%s).', f.bill_state)];
	ELSE
		lines := ARRAY[format('Anomalies on the bill (%s): %s', f.bill_state, f.anomalies::text)]
			|| ARRAY(SELECT l FROM evcharge.anomaly_causes(f.order_no) WITH ORDINALITY c2(code, name, cause, i),
			                       unnest(evcharge.chart_wrap(format('%s %s: %s', c2.code, c2.name, c2.cause), f.px1 - f.px0 - 16, 12))
			                       WITH ORDINALITY w(l, j)
			         ORDER BY c2.i, w.j);
	END IF;
	svg := '<g id="anomalies">'
		|| format('<rect class="box" x="%s" y="%s" width="%s" height="%s"/>', f.px0, evcharge.chart_num(y), f.px1 - f.px0,
		          10 + 16 * cardinality(lines));
	FOR k IN 1 .. cardinality(lines) LOOP
		svg := svg || evcharge.chart_text(f.px0 + 8, y + 16 * k, NULL, CASE WHEN k <= heads THEN 'head' END, lines[k]);
	END LOOP;
	svg := svg || '</g>';
	bottom := y + 10 + 16 * cardinality(lines);
END $$;
COMMENT ON FUNCTION evcharge.chart_anomaly_box(evcharge.chart_frame, float8) IS
	'step 9 of the support chart: <g id="anomalies">: a box with the bill''s codes as operators write them (8+11) and a line per code with its name and its cause (anomaly_causes), wrapped; or that there are none, or no bill yet';

-- Step 9 (driver): the receipt: per class, when it was delivered, how
-- much, at which prices; then the fees and the total of the bill, and
-- whether it is paid.  No code and no internal word: a held bill is "being
-- checked", a bill that could not be priced "to follow".
CREATE FUNCTION evcharge.chart_receipt(f evcharge.chart_frame, y float8, OUT svg text, OUT bottom float8)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
	wh bigint[] := CASE WHEN f.has_bill THEN f.bill_wh_by_class ELSE f.live_wh_by_class END;
	priced boolean := f.priced;
	col int[] := ARRAY[0, 300, 420, 640];
	lang text := f.lang;
	x0 float8 := f.px0;
	said text;
	line_y float8;
BEGIN
	svg := '<g id="receipt">';
	line_y := y;
	svg := svg || evcharge.chart_text(x0 + col[1], line_y, NULL, 'head', evcharge.chart_word(lang, 'period'))
		|| evcharge.chart_text(x0 + col[2] + 90, line_y, 'end', 'head', evcharge.chart_word(lang, 'energy'))
		|| evcharge.chart_text(x0 + col[3], line_y, NULL, 'head',
		                       format('%s (%s)', evcharge.chart_word(lang, 'electricity'), evcharge.chart_word(lang, 'per_kwh')))
		|| evcharge.chart_text(x0 + col[4], line_y, NULL, 'head',
		                       format('%s (%s)', evcharge.chart_word(lang, 'service'), evcharge.chart_word(lang, 'per_kwh')));
	FOR r IN
		SELECT cl.class, cl.rank, coalesce(wh[cl.rank], 0) AS class_wh,
		       (SELECT min(sp.band_from) FROM evcharge.chart_band_spans(f) sp
		        WHERE sp.band_class = cl.class AND sp.band_to > coalesce(f.bill_started_at, f.started_at, f.t0)) AS first_at,
		       (SELECT string_agg(to_char(greatest(sp.band_from, coalesce(f.bill_started_at, f.started_at)) AT TIME ZONE f.tz, 'HH24:MI')
		                          || '–' || to_char(least(sp.band_to, coalesce(f.bill_ended_at, f.charging_ended_at, f.t1)) AT TIME ZONE f.tz, 'HH24:MI'),
		                          ', ' ORDER BY sp.band_from)
		        FROM evcharge.chart_band_spans(f) sp
		        WHERE sp.band_class = cl.class AND sp.band_to > coalesce(f.bill_started_at, f.started_at)
		          AND sp.band_from < coalesce(f.bill_ended_at, f.charging_ended_at, f.t1)) AS spans,
		       (SELECT string_agg(DISTINCT to_char(sp.energy_price, 'FM990.0000'), ' / ') FROM evcharge.chart_band_spans(f) sp
		        WHERE sp.band_class = cl.class) AS e_price,
		       (SELECT string_agg(DISTINCT to_char(sp.service_price, 'FM990.0000'), ' / ') FROM evcharge.chart_band_spans(f) sp
		        WHERE sp.band_class = cl.class) AS s_price
		FROM (SELECT c AS class, evcharge.chart_class_rank(c) AS rank FROM unnest(f.classes) c) cl
		WHERE coalesce(wh[cl.rank], 0) > 0
		ORDER BY first_at, cl.rank, cl.class
	LOOP
		line_y := line_y + 20;
		svg := svg || format('<rect class="band-%s" x="%s" y="%s" width="10" height="10"/>', evcharge.xml_escape(r.class),
		                     evcharge.chart_num(x0), evcharge.chart_num(line_y - 9))
			|| evcharge.chart_text(x0 + 16, line_y, NULL, NULL,
			                       format('%s %s', evcharge.chart_class_name(r.class, lang), coalesce(r.spans, '')))
			|| evcharge.chart_text(x0 + col[2] + 90, line_y, 'end', NULL, evcharge.chart_kwh(r.class_wh) || ' kWh')
			|| evcharge.chart_text(x0 + col[3], line_y, NULL, NULL,
			                       CASE WHEN priced THEN coalesce(r.e_price, '') ELSE evcharge.chart_word(lang, 'pending') END)
			|| evcharge.chart_text(x0 + col[4], line_y, NULL, NULL,
			                       CASE WHEN priced THEN coalesce(r.s_price, '') ELSE evcharge.chart_word(lang, 'pending') END);
	END LOOP;
	line_y := line_y + 8;
	svg := svg || format('<line class="rule" x1="%s" y1="%s" x2="%s" y2="%s"/>', x0, evcharge.chart_num(line_y), f.px1, evcharge.chart_num(line_y));
	line_y := line_y + 20;
	IF priced THEN
		said := format('%s %s · %s %s', evcharge.chart_word(lang, 'electricity'), f.energy_fee,
		               evcharge.chart_word(lang, 'service'), f.service_fee)
			|| CASE WHEN f.occupancy_fee > 0 THEN format(' · %s %s', evcharge.chart_word(lang, 'occupancy'), f.occupancy_fee) ELSE '' END
			|| CASE WHEN f.discount > 0 THEN format(' · %s -%s', evcharge.chart_word(lang, 'discount'), f.discount) ELSE '' END
			|| format(' (%s)', evcharge.chart_word(lang, 'yuan'));
		svg := svg || evcharge.chart_text(x0, line_y, NULL, NULL, said)
			|| evcharge.chart_text(f.px1, line_y, 'end', 'total',
			                       format('%s %s %s', evcharge.chart_word(lang, 'total'), f.total, evcharge.chart_word(lang, 'yuan')));
		IF EXISTS (SELECT 1 FROM unnest(f.applied) x WHERE x LIKE 'group: %' OR x LIKE 'promotion: %') THEN
			line_y := line_y + 20;
			svg := svg || evcharge.chart_text(x0, line_y, NULL, NULL, evcharge.chart_word(lang, 'member_price'));
		END IF;
	END IF;
	line_y := line_y + 22;
	svg := svg || evcharge.chart_text(x0, line_y, NULL, 'head', evcharge.chart_word(lang, CASE
		WHEN NOT f.has_bill THEN 'no_bill'
		WHEN NOT priced THEN 'no_price'
		WHEN f.bill_state = 'held' THEN 'held'
		WHEN f.bill_state = 'settled' THEN 'settled'
		ELSE 'final' END));
	svg := svg || '</g>';
	bottom := line_y;
END $$;
COMMENT ON FUNCTION evcharge.chart_receipt(evcharge.chart_frame, float8) IS
	'step 9 of the driver''s chart: <g id="receipt">: a line per class delivered (its times, kWh, electricity and service price per kWh), the bill''s fees and total in yuan, and whether it is paid, to be paid, being checked (held) or not priced yet, in the driver''s words';

-- Step 10: the document: declaration, root with its size, title,
-- description, the style sheet (a colour for every class shown), the
-- header lines and the body.
CREATE FUNCTION evcharge.chart_document(f evcharge.chart_frame, body text, height int) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT array_to_string(ARRAY[
		'<?xml version="1.0" encoding="UTF-8"?>',
		format('<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%s" height="%s" viewBox="0 0 %s %s">',
		       f.width, height, f.width, height),
		format('<title>%s</title>', evcharge.xml_escape(CASE WHEN f.view = 'driver'
			THEN format('%s %s %s', evcharge.chart_word(f.lang, 'title'), evcharge.chart_word(f.lang, 'order'), f.order_no)
			ELSE format('Charging evidence for order %s', f.order_no) END)),
		format('<desc>%s</desc>', evcharge.xml_escape(CASE WHEN f.view = 'driver'
			THEN format('%s (kWh), %s (%s); %s', evcharge.chart_word(f.lang, 'delivered'), evcharge.chart_word(f.lang, 'local_time'), f.tz,
			            f.station_name)
			ELSE format('Energy measured (Wh, left axis) and power (kW, right axis) from the heartbeats of gun %s at station %s, on the station''s local time (%s); background bands are the tariff classes in force.',
			            f.gun, f.station_name, f.tz) END)),
		'<style type="text/css">'
		'text { font-family: sans-serif; font-size: 12px; fill: #222222; } '
		'.title { font-size: 16px; font-weight: bold; } .head { font-weight: bold; } .total { font-size: 14px; font-weight: bold; } '
		|| CASE WHEN f.view = 'support' THEN '.warn { fill: #cc0000; } .claim-text { fill: #6a1b9a; } ' ELSE '.band-name { fill: #444444; } ' END
		|| coalesce((SELECT string_agg(format('.band-%s { fill: %s; }', evcharge.xml_escape(c), evcharge.chart_class_colour(c)), ' ' ORDER BY i)
		             FROM unnest(f.classes) WITH ORDINALITY u(c, i)) || ' ', '')
		|| '.grid { stroke: #cccccc; stroke-width: 1; } .axis { stroke: #444444; stroke-width: 1; } '
		'.frame { fill: none; stroke: #444444; stroke-width: 1; } '
		'.energy { fill: none; stroke: #1f4e79; stroke-width: 2; } '
		'.mark { stroke: #000000; stroke-width: 1; stroke-dasharray: 4 3; } '
		'.label-box { fill: #ffffff; fill-opacity: 0.85; } '
		|| CASE WHEN f.view = 'support' THEN
		'.power { fill: none; stroke: #c55a11; stroke-width: 1.5; stroke-dasharray: 6 3; } '
		'.claim { fill: none; stroke: #6a1b9a; stroke-width: 1.5; stroke-dasharray: 2 3; } .claim-end { fill: #6a1b9a; } '
		'.jump { fill: #cc0000; } .leader { stroke: #cc0000; stroke-width: 0.8; } .gap { fill: #888888; fill-opacity: 0.35; } '
		'.box { fill: #fff8e1; stroke: #b58900; stroke-width: 1; }'
		ELSE '.rule { stroke: #888888; stroke-width: 1; }' END
		|| '</style>',
		format('<rect x="0" y="0" width="%s" height="%s" fill="#ffffff"/>', f.width, height),
		'<g id="header">' || (SELECT string_agg(E'\n' || evcharge.chart_text(f.px0, 26 + 20 * (h.i - 1), NULL, CASE WHEN h.i = 1 THEN 'title' END, h.l), '' ORDER BY h.i)
		                      FROM unnest(f.header) WITH ORDINALITY h(l, i)) || E'\n</g>',
		regexp_replace(body, '><', E'>\n<', 'g'),
		'</svg>'], E'\n') || E'\n';
END;
COMMENT ON FUNCTION evcharge.chart_document(evcharge.chart_frame, text, int) IS
	'step 10 of a chart: the SVG 1.1 document around the body: declaration, root with width, height and viewBox, title, description, the inline style sheet with a colour for every class shown, a white background and <g id="header"> with the header lines';

-- The evidence as a chart for support: an SVG 1.1 document with no
-- external reference and no script.  Energy measured (Wh, left axis) and
-- power (kW, right axis) over the station's wall-clock time, the tariff
-- classes in force as background bands, the pile's claim beside the
-- measured curve, the start, end of charging and unplug as dashed lines,
-- meter jumps and silences while charging marked, labels placed off the
-- curves, and the bill's anomalies with their causes in a box below.
-- Every number is written with fixed decimals and nothing depends on the
-- time of the call, so the same data always gives the same document.
CREATE FUNCTION evcharge.session_chart(p_order_no text) RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	f evcharge.chart_frame;
	body text;
	taken float8[] := '{}';
	step record;
	below record;
BEGIN
	f := evcharge.chart_load(p_order_no, 'support', 'en');
	body := evcharge.chart_bands(f) || evcharge.chart_axes(f) || evcharge.chart_curves(f);
	IF coalesce(cardinality(f.ev_ts), 0) = 0 THEN
		body := body || evcharge.chart_text((f.px0 + f.px1) / 2, (f.py0 + f.py1) / 2, 'middle', NULL, 'no heartbeats');
		taken := evcharge.chart_text_box('no heartbeats', (f.px0 + f.px1) / 2, (f.py0 + f.py1) / 2, 'middle', 12);
	END IF;
	step := evcharge.chart_moments(f, taken);
	body := body || step.svg;
	step := evcharge.chart_marks(f, step.taken);
	body := body || step.svg;
	step := evcharge.chart_claim_label(f, step.taken);
	body := body || step.svg;
	below := evcharge.chart_legend(f, f.py1 + 62);
	body := body || below.svg;
	below := evcharge.chart_anomaly_box(f, below.bottom + 20);
	body := body || below.svg;
	RETURN evcharge.chart_document(f, body, ceil(below.bottom + 12)::int);
END $$;
COMMENT ON FUNCTION evcharge.session_chart(text) IS
	'the evidence of a session for support as a self-contained SVG 1.1 document: energy measured (Wh) and power (kW) over the station''s local time, tariff classes as background bands with their prices, the pile''s claim beside the measured curve, start, end of charging and unplug, meter jumps and silences while charging, labels placed off the curves and each other, the bill''s anomaly codes with their causes; deterministic';

-- The same charge as a receipt the driver can be sent, in the driver's
-- language (zh, the default, or en): what was delivered when (the energy
-- curve as billed, over the tariff bands named in the driver's words), at
-- which prices, the fees and the total in yuan, and whether it is paid.
-- No anomaly code, no heartbeat, no meter jump: those are support's.
CREATE FUNCTION evcharge.driver_chart(p_order_no text, p_lang text DEFAULT 'zh') RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	f evcharge.chart_frame;
	body text;
	taken float8[] := '{}';
	step record;
	below record;
BEGIN
	IF p_lang NOT IN ('zh', 'en') THEN
		RAISE EXCEPTION 'language "%" is not one the driver''s chart is written in', p_lang
			USING ERRCODE = 'invalid_parameter_value',
			      DETAIL = 'The driver''s chart is written in Chinese (zh) and English (en).',
			      HINT = format('Use driver_chart(%L) for Chinese or driver_chart(%L, ''en'') for English.', p_order_no, p_order_no);
	END IF;
	f := evcharge.chart_load(p_order_no, 'driver', p_lang);
	body := evcharge.chart_bands(f) || evcharge.chart_axes(f) || evcharge.chart_curves(f);
	IF coalesce(cardinality(f.ev_ts), 0) = 0 THEN
		body := body || evcharge.chart_text((f.px0 + f.px1) / 2, (f.py0 + f.py1) / 2, 'middle', NULL,
		                                    evcharge.chart_word(p_lang, 'no_heartbeats'));
		taken := evcharge.chart_text_box(evcharge.chart_word(p_lang, 'no_heartbeats'), (f.px0 + f.px1) / 2, (f.py0 + f.py1) / 2, 'middle', 12);
	END IF;
	step := evcharge.chart_moments(f, taken);
	body := body || step.svg;
	step := evcharge.chart_band_labels(f, step.taken);
	body := body || step.svg;
	below := evcharge.chart_legend(f, f.py1 + 62);
	body := body || below.svg;
	below := evcharge.chart_receipt(f, below.bottom + 30);
	body := body || below.svg;
	RETURN evcharge.chart_document(f, body, ceil(below.bottom + 16)::int);
END $$;
COMMENT ON FUNCTION evcharge.driver_chart(text, text) IS
	'the charge as a receipt for the driver, a self-contained SVG 1.1 document in the driver''s language (zh, default, or en): the energy delivered as billed over the station''s local time and its tariff bands named, a line per class with its times, kWh and prices, the fees and total in yuan and whether it is paid; no codes or internal words; 22023 for another language';
