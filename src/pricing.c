/*-------------------------------------------------------------------------
 *
 * pricing.c
 *	  Owns price(): what energy per class costs under one plan, as an
 *	  evcharge.charge_amount.
 *
 * Money is exact: Wh times a price in ten-thousandths of a yuan per kWh is
 * an integer number of 10^-7 yuan, summed exactly; each money figure
 * (energy_fee, service_fee) is truncated to the fen once, from the exact
 * sum over classes, never rounded up; total = energy_fee + service_fee.
 * The per-class detail is given exact (not truncated), so that a support
 * engineer can show how the truncated figures come about (the domain's
 * worked example: 8.75 + 0.999 = 9.749 -> 9.74).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "tariff.h"

PG_FUNCTION_INFO_V1(price);

/* 10^-7 yuan per fen. */
#define UNITS_PER_FEN INT64CONST(100000)

static Datum
TrimmedNumeric(int64 value, int log10)
{
	return DirectFunctionCall1(numeric_trim_scale,
							   NumericGetDatum(int64_div_fast_to_numeric(value, log10)));
}

static Datum
NumericArray(const Datum *d, int n)
{
	return PointerGetDatum(construct_array(unconstify(Datum *, d), n, NUMERICOID, -1, false,
										   TYPALIGN_INT));
}

static int64
MultiplyOrError(int64 wh, int64 price, int cls)
{
	int64		r;

	if (pg_mul_s64_overflow(wh, price, &r))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("amount out of range for %lld Wh in class \"%s\"",
						(long long) wh, TouClassNames[cls])));
	return r;
}

/*
 * price(tariff, wh[4]) -> charge_amount (kwh, energy_fee, service_fee,
 * total, class_kwh[], class_energy_fee[], class_service_fee[]).
 */
Datum
price(PG_FUNCTION_ARGS)
{
	TouTariff  *t = PG_GETARG_TOU_TARIFF_P(0);
	ArrayType  *wh_arr = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *wh_d;
	bool	   *wh_nulls;
	int			n;
	int64		wh[TOU_CLASSES];
	int64		e_units[TOU_CLASSES];
	int64		s_units[TOU_CLASSES];
	int64		e_sum = 0;
	int64		s_sum = 0;
	int64		wh_sum = 0;
	int64		e_fen;
	int64		s_fen;
	Datum		kwh_d[TOU_CLASSES];
	Datum		e_d[TOU_CLASSES];
	Datum		s_d[TOU_CLASSES];
	TupleDesc	desc;
	Datum		values[7];
	bool		nulls[7] = {false, false, false, false, false, false, false};
	int			i;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "price() must return a composite type");
	desc = BlessTupleDesc(desc);

	if (ARR_NDIM(wh_arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("energy per class must be a one-dimensional array")));
	deconstruct_array(wh_arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &wh_d, &wh_nulls, &n);
	if (n != TOU_CLASSES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("energy per class has %d elements, not 4", n),
				 errhint("Give Wh for sharp, peak, flat and valley, as split_energy returns them.")));

	for (i = 0; i < TOU_CLASSES; i++)
	{
		wh[i] = wh_nulls[i] ? 0 : DatumGetInt64(wh_d[i]);
		if (wh[i] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("energy of class \"%s\" is negative: %lld Wh",
							TouClassNames[i], (long long) wh[i])));
		if (wh[i] > 0 && t->energy[i] == TOU_NO_PRICE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the plan has no price for class \"%s\", which has %lld Wh",
							TouClassNames[i], (long long) wh[i]),
					 errdetail("evcharge never bills energy at a default price."),
					 errhint("Split the energy with the same plan that prices it.")));
		e_units[i] = wh[i] > 0 ? MultiplyOrError(wh[i], t->energy[i], i) : 0;
		s_units[i] = wh[i] > 0 ? MultiplyOrError(wh[i], t->service[i], i) : 0;
		if (pg_add_s64_overflow(e_sum, e_units[i], &e_sum) ||
			pg_add_s64_overflow(s_sum, s_units[i], &s_sum) ||
			pg_add_s64_overflow(wh_sum, wh[i], &wh_sum))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("amount out of range")));
		kwh_d[i] = TrimmedNumeric(wh[i], 3);
		e_d[i] = TrimmedNumeric(e_units[i], 7);
		s_d[i] = TrimmedNumeric(s_units[i], 7);
	}

	e_fen = e_sum / UNITS_PER_FEN;	/* truncation: the sums are >= 0 */
	s_fen = s_sum / UNITS_PER_FEN;

	values[0] = NumericGetDatum(int64_div_fast_to_numeric(wh_sum, 3));
	values[1] = NumericGetDatum(int64_div_fast_to_numeric(e_fen, 2));
	values[2] = NumericGetDatum(int64_div_fast_to_numeric(s_fen, 2));
	values[3] = NumericGetDatum(int64_div_fast_to_numeric(e_fen + s_fen, 2));
	values[4] = NumericArray(kwh_d, TOU_CLASSES);
	values[5] = NumericArray(e_d, TOU_CLASSES);
	values[6] = NumericArray(s_d, TOU_CLASSES);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
