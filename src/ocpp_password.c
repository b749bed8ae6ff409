/*-------------------------------------------------------------------------
 *
 * ocpp_password.c
 *	  Owns evcharge.ocpp_hash_password(): PBKDF2-HMAC-SHA256 of an OCPP
 *	  charge point's password (security profile 1, HTTP Basic), with
 *	  OpenSSL, which the extension links already.
 *
 *	  The bridge checks a password with the same OpenSSL call
 *	  (src/bridge/db.c), so the database and the bridge agree on the hash
 *	  without pgcrypto, which evcharge does not depend on.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "fmgr.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(evcharge_ocpp_hash_password);

/* ocpp_hash_password(password text, salt bytea, iterations int) RETURNS bytea */
Datum
evcharge_ocpp_hash_password(PG_FUNCTION_ARGS)
{
	text	   *password = PG_GETARG_TEXT_PP(0);
	bytea	   *salt = PG_GETARG_BYTEA_PP(1);
	int32		iterations = PG_GETARG_INT32(2);
	bytea	   *result;

	if (iterations < 1000 || iterations > 10000000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("PBKDF2 iteration count %d is out of range", iterations),
				 errdetail("evcharge.ocpp_hash_password() was asked for %d iterations.", iterations),
				 errhint("Use from 1000 to 10000000 iterations; ocpp_set_password() uses 4096.")));
	result = (bytea *) palloc(VARHDRSZ + 32);
	SET_VARSIZE(result, VARHDRSZ + 32);
	if (PKCS5_PBKDF2_HMAC(VARDATA_ANY(password), (int) VARSIZE_ANY_EXHDR(password),
						  (const unsigned char *) VARDATA_ANY(salt), (int) VARSIZE_ANY_EXHDR(salt),
						  iterations, EVP_sha256(), 32, (unsigned char *) VARDATA(result)) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("PBKDF2-HMAC-SHA256 failed in OpenSSL"),
				 errdetail("PKCS5_PBKDF2_HMAC() returned an error for a %d-byte salt.", (int) VARSIZE_ANY_EXHDR(salt)),
				 errhint("Check the server's OpenSSL installation.")));
	PG_RETURN_BYTEA_P(result);
}
