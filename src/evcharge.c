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
#include "utils/guc.h"

#include "drop_guard.h"
#include "http_fetch.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(evcharge_library_versions);

/* Settings; SQL reads them with evcharge.setting_int(). */
static int	offline_after = 180;
static int	incident_window = 120;
static int	incident_min_piles = 3;
static int	partitions_ahead_days = 7;
static int	heartbeat_retention_days = 90;

/* Called once when the library is loaded into a backend: the settings. */
void
_PG_init(void)
{
	DefineCustomIntVariable("evcharge.offline_after",
							"Silence after which a gun is marked offline.",
							"sweep_offline() marks a gun offline when its last heartbeat is older than this.",
							&offline_after, 180, 30, 86400, PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("evcharge.incident_window",
							"How close together piles of one station must fall silent to be one network incident.",
							NULL, &incident_window, 120, 0, 3600, PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("evcharge.incident_min_piles",
							"How many piles of one station falling silent together make a network incident.",
							NULL, &incident_min_piles, 3, 2, 10000, PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("evcharge.partitions_ahead_days",
							"Days of heartbeat partitions maintain_partitions() creates ahead.",
							NULL, &partitions_ahead_days, 7, 1, 366, PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("evcharge.heartbeat_retention_days",
							"Days of heartbeats kept; maintain_partitions() drops older partitions.",
							NULL, &heartbeat_retention_days, 90, 1, 36600, PGC_SUSET, 0,
							NULL, NULL, NULL);
	HttpDefineSettings();
	DropGuardDefineSettings();
	MarkGUCPrefixReserved("evcharge");
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
