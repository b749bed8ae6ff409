/*-------------------------------------------------------------------------
 *
 * drop_guard.h
 *	  The drop guard's setting (evcharge.allow_drop), registered by
 *	  _PG_init in evcharge.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVCHARGE_DROP_GUARD_H
#define EVCHARGE_DROP_GUARD_H

extern void DropGuardDefineSettings(void);

#endif							/* EVCHARGE_DROP_GUARD_H */
