/*-------------------------------------------------------------------------
 *
 * evcharge.c
 *	  Owns the module itself: the magic block and _PG_init, where the
 *	  extension's settings (GUCs) are registered as later units add them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Called once when the library is loaded into a backend. */
void
_PG_init(void)
{
}
