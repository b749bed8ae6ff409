/*-------------------------------------------------------------------------
 *
 * http_fetch.h
 *	  The settings of evcharge's HTTP client (http_fetch.c), defined by
 *	  _PG_init in evcharge.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVCHARGE_HTTP_FETCH_H
#define EVCHARGE_HTTP_FETCH_H

extern void HttpDefineSettings(void);

#endif							/* EVCHARGE_HTTP_FETCH_H */
