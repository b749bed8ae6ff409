/*-------------------------------------------------------------------------
 *
 * time_zone.h
 *	  The time zones evcharge accepts (time_zone.c): zones of places.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVCHARGE_TIME_ZONE_H
#define EVCHARGE_TIME_ZONE_H

#include "pgtime.h"

/* The zone of a name evcharge accepts, or the 22023 error saying why not. */
extern const pg_tz *TimeZoneOrError(const char *name);

/* The zone of a name evcharge accepts, or NULL. */
extern const pg_tz *TimeZoneAccepted(const char *name);

#endif							/* EVCHARGE_TIME_ZONE_H */
