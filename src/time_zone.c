/*-------------------------------------------------------------------------
 *
 * time_zone.c
 *	  Owns which time zones evcharge accepts: zones of the time zone
 *	  database that say where a station is (Asia/Shanghai), never POSIX
 *	  strings such as "UTC+8" or "+08:00", which PostgreSQL reads with the
 *	  sign inverted, nor abbreviations, Etc/GMT-8 or localtime.  The SQL
 *	  functions is_time_zone and check_time_zone (the check of the domain
 *	  evcharge.time_zone) and the look-up the energy split uses.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "time_zone.h"

PG_FUNCTION_INFO_V1(evcharge_is_time_zone);
PG_FUNCTION_INFO_V1(evcharge_check_time_zone);

/*
 * What the split (and every zone evcharge stores) accepts: a zone of the
 * time zone database, as pg_timezone_names lists it, that says where a
 * station is.  The rest is refused, and the verdict says why.
 */
typedef enum ZoneVerdict
{
	ZONE_OK,
	ZONE_UNKNOWN,				/* neither a zone name nor anything else */
	ZONE_POSIX,					/* a POSIX string: "UTC+8", "+08:00" */
	ZONE_INVERTED,				/* Etc/GMT-8: a zone whose sign is POSIX's */
	ZONE_ABBREVIATION,			/* CET: AT TIME ZONE reads the abbreviation */
	ZONE_NOT_A_PLACE			/* localtime, posixrules, Factory */
} ZoneVerdict;

/* The names pg_timezone_names lists, sorted without regard to case. */
static char **zone_names = NULL;
static int	nzone_names = 0;

static int
CompareZoneNames(const void *a, const void *b)
{
	return pg_strcasecmp(*(char *const *) a, *(char *const *) b);
}

/*
 * ZoneListed: whether the time zone database has this name (without regard
 * to case, as pg_tzset looks names up).  The list is read once per backend,
 * the way pg_timezone_names reads it.
 */
static bool
ZoneListed(const char *name)
{
	if (zone_names == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		pg_tzenum  *e = pg_tzenumerate_start();
		pg_tz	   *tz;
		int			cap = 1024;
		int			n = 0;
		char	  **names = palloc(sizeof(char *) * cap);

		while ((tz = pg_tzenumerate_next(e)) != NULL)
		{
			if (n == cap)
			{
				cap *= 2;
				names = repalloc(names, sizeof(char *) * cap);
			}
			names[n++] = pstrdup(pg_get_timezone_name(tz));
		}
		pg_tzenumerate_end(e);
		qsort(names, n, sizeof(char *), CompareZoneNames);
		MemoryContextSwitchTo(old);
		nzone_names = n;
		zone_names = names;
	}
	return bsearch(&name, zone_names, nzone_names, sizeof(char *), CompareZoneNames) != NULL;
}

/* "GMT+8", "Etc/GMT-14" (and under posix/): an offset with POSIX's sign. */
static bool
IsInvertedOffsetZone(const char *name)
{
	const char *p = name;

	if (pg_strncasecmp(p, "posix/", 6) == 0)
		p += 6;
	if (pg_strncasecmp(p, "Etc/", 4) == 0)
		p += 4;
	if (pg_strncasecmp(p, "GMT", 3) != 0 || (p[3] != '+' && p[3] != '-'))
		return false;
	for (p += 4; *p == '0'; p++)
		;
	return *p != '\0';			/* GMT+0, GMT-0 are UTC */
}

static ZoneVerdict
JudgeZone(const char *name, pg_tz **tz_out)
{
	static const char *const not_places[] = {"localtime", "posixrules", "Factory",
	"posix/localtime", "posix/posixrules", "posix/Factory"};

	/*
	 * Zone names that are also abbreviations of PostgreSQL's default set,
	 * with summer time in the zone but not in the abbreviation.
	 */
	static const char *const abbreviations[] = {"CET", "EET", "MET", "WET"};
	pg_tz	   *tz;
	size_t		i;

	*tz_out = NULL;
	if (!ZoneListed(name))
		return pg_tzset(name) != NULL ? ZONE_POSIX : ZONE_UNKNOWN;
	for (i = 0; i < lengthof(not_places); i++)
		if (pg_strcasecmp(name, not_places[i]) == 0)
			return ZONE_NOT_A_PLACE;
	for (i = 0; i < lengthof(abbreviations); i++)
		if (pg_strcasecmp(name, abbreviations[i]) == 0)
			return ZONE_ABBREVIATION;
	if (IsInvertedOffsetZone(name))
		return ZONE_INVERTED;
	tz = pg_tzset(name);
	if (tz == NULL || !pg_tz_acceptable(tz))
		return ZONE_UNKNOWN;
	*tz_out = tz;
	return ZONE_OK;
}

/* The 22023 error for a zone JudgeZone refused. */
static void
pg_attribute_noreturn()
ReportBadZone(const char *name, ZoneVerdict v)
{
	switch (v)
	{
		case ZONE_POSIX:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time zone \"%s\" is a POSIX time zone string, not a zone name", name),
					 errdetail("PostgreSQL reads a POSIX offset with the sign inverted: \"UTC+8\" and \"+08:00\" mean eight hours west of UTC (UTC-8), not China's UTC+8, so a plan would bill the wrong hours."),
					 errhint("Use a zone name from pg_timezone_names, such as \"Asia/Shanghai\" for China.")));
			break;
		case ZONE_INVERTED:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time zone \"%s\" is an offset written with POSIX's inverted sign", name),
					 errdetail("In the zone names Etc/GMT+N and Etc/GMT-N the sign is inverted: \"Etc/GMT-8\" is UTC+8 and \"Etc/GMT+8\" is UTC-8; such a name is too easily read the wrong way round."),
					 errhint("Use the zone of a place, such as \"Asia/Shanghai\" for China.")));
			break;
		case ZONE_ABBREVIATION:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time zone \"%s\" is also a time zone abbreviation", name),
					 errdetail("AT TIME ZONE reads \"%s\" as the abbreviation, a fixed offset, while the zone of that name has summer time: reports and bills would disagree for half the year.", name),
					 errhint("Use the zone of a place, such as \"Europe/Berlin\", or \"Asia/Shanghai\" for China.")));
			break;
		case ZONE_NOT_A_PLACE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time zone \"%s\" is not the zone of a place", name),
					 errdetail("\"localtime\" follows the server's operating system, \"posixrules\" is a template of rules and \"Factory\" has no offset: none says where a station is."),
					 errhint("Use the zone of a place, such as \"Asia/Shanghai\" for China.")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time zone \"%s\" not recognized", name),
					 errdetail("It is not a zone name of the time zone database (pg_timezone_names); abbreviations such as \"CST\" are not zone names: they are ambiguous (China or US Central) and carry no clock changes."),
					 errhint("Use a zone name such as \"Asia/Shanghai\".")));
	}
	pg_unreachable();
}

/* The zone of a name, or the 22023 error saying why it is refused. */
const pg_tz *
TimeZoneOrError(const char *name)
{
	pg_tz	   *tz;
	ZoneVerdict v = JudgeZone(name, &tz);

	if (v != ZONE_OK)
		ReportBadZone(name, v);
	return tz;
}

/* The zone of a name evcharge accepts, or NULL (never an error). */
const pg_tz *
TimeZoneAccepted(const char *name)
{
	pg_tz	   *tz;

	return JudgeZone(name, &tz) == ZONE_OK ? tz : NULL;
}

/*
 * is_time_zone(name): whether evcharge accepts the zone (JudgeZone), the
 * same test split_energy and the pipeline make, so that a station whose zone passes can
 * always be priced.  Never an error: check_time_zone raises one.
 */
Datum
evcharge_is_time_zone(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(TimeZoneAccepted(text_to_cstring(PG_GETARG_TEXT_PP(0))) != NULL);
}

/*
 * check_time_zone(name): true for a zone evcharge accepts, else the 22023
 * error saying why; the check of the domain evcharge.time_zone.
 */
Datum
evcharge_check_time_zone(PG_FUNCTION_ARGS)
{
	(void) TimeZoneOrError(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_BOOL(true);
}
