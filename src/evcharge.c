/*-------------------------------------------------------------------------
 *
 * evcharge.c
 *	  Owns the module itself: the magic block, _PG_init (where settings are
 *	  registered as later units add them) and library_versions(), which tells
 *	  support which libcurl and OpenSSL the server's evcharge runs with.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(evcharge_library_versions);

/* Called once when the library is loaded into a backend. */
void
_PG_init(void)
{
}

/*
 * library_versions(): (library, version) rows for evcharge itself, the
 * PostgreSQL it was built against, and the libcurl and OpenSSL it is linked
 * with at run time.
 */
Datum
evcharge_library_versions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
	const char *rows[4][2];
	int			i;

	rows[0][0] = "evcharge";
	rows[0][1] = EVCHARGE_VERSION;
	rows[1][0] = "postgresql (built against)";
	rows[1][1] = PG_VERSION;
	rows[2][0] = "libcurl";
	rows[2][1] = curl->version;
	rows[3][0] = "openssl";
	rows[3][1] = OpenSSL_version(OPENSSL_VERSION);

	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < 4; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(rows[i][0]);
		values[1] = CStringGetTextDatum(rows[i][1]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
