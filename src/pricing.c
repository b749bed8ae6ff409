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
 * worked example: 8.75 + 0.999 = 9.749 -> 9.74).  The sums are
 * PriceEnergy's (engine_core.c), which the pipeline's running amount uses
 * too; an amount beyond 64 bits is an error, never a wrapped figure.
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

#include "engine_core.h"
#include "tariff.h"

PG_FUNCTION_INFO_V1(tou_tariff_price);
PG_FUNCTION_INFO_V1(price);

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

/*
 * price(tariff, wh[]) -> charge_amount (kwh, energy_fee, service_fee,
 * total, class_kwh[], class_energy_fee[], class_service_fee[]).  wh has 4
 * figures (sharp..valley) or 5 (and deep valley); the per-class arrays
 * have as many as wh or the plan's classes, whichever is more, so a
 * 4-class plan priced with 4 figures answers as before 0.3.0.
 */
Datum
tou_tariff_price(PG_FUNCTION_ARGS)
{
	TouTariff  *t = PG_GETARG_TOU_TARIFF_P(0);
	ArrayType  *wh_arr = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *wh_d;
	bool	   *wh_nulls;
	int			n;
	int64		wh[TOU_CLASSES] = {0, 0, 0, 0, 0};
	int			nout;
	EnginePrice p;
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
	if (n != TOU_CLASSES_V1 && n != TOU_CLASSES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("energy per class has %d elements, not 4 or 5", n),
				 errhint("Give Wh for sharp, peak, flat and valley, and deep valley when the plan has it, as split_energy returns them.")));

	for (i = 0; i < n; i++)
		wh[i] = wh_nulls[i] ? 0 : DatumGetInt64(wh_d[i]);
	nout = Max(n, TouTariffClassCount(t));

	switch (PriceEnergy(wh, t->energy, t->service, false, &p))
	{
		case ENGINE_OK:
			break;
		case ENGINE_NEGATIVE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("energy of class \"%s\" is negative: %lld Wh",
							TouClassNames[p.bad_class], (long long) wh[p.bad_class])));
			break;
		case ENGINE_UNPRICED:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the plan has no price for class \"%s\", which has %lld Wh",
							TouClassNames[p.bad_class], (long long) wh[p.bad_class]),
					 errdetail("evcharge never bills energy at a default price."),
					 errhint("Split the energy with the same plan that prices it.")));
			break;
		default:
			if (p.bad_class >= 0)
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("amount out of range for %lld Wh in class \"%s\"",
								(long long) wh[p.bad_class], TouClassNames[p.bad_class]),
						 errdetail("Wh times the price in ten-thousandths of a yuan per kWh exceeds 64 bits.")));
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("amount out of range"),
					 errdetail("The sum over the classes exceeds 64 bits.")));
	}
	for (i = 0; i < nout; i++)
	{
		kwh_d[i] = TrimmedNumeric(wh[i], 3);
		e_d[i] = TrimmedNumeric(p.energy_units[i], 7);
		s_d[i] = TrimmedNumeric(p.service_units[i], 7);
	}

	values[0] = NumericGetDatum(int64_div_fast_to_numeric(p.wh_sum, 3));
	values[1] = NumericGetDatum(int64_div_fast_to_numeric(p.energy_fen, 2));
	values[2] = NumericGetDatum(int64_div_fast_to_numeric(p.service_fen, 2));
	values[3] = NumericGetDatum(int64_div_fast_to_numeric(p.total_fen, 2));
	values[4] = NumericArray(kwh_d, nout);
	values[5] = NumericArray(e_d, nout);
	values[6] = NumericArray(s_d, nout);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * The same function under the C name of releases 0.1.0 and 0.2.0, whose
 * install scripts (sql/release/) declare evcharge.price() with it: they
 * are frozen, and a database at either keeps working with this library
 * until ALTER EXTENSION UPDATE points it at tou_tariff_price.
 */
Datum
price(PG_FUNCTION_ARGS)
{
	return tou_tariff_price(fcinfo);
}
