/*-------------------------------------------------------------------------
 *
 * http_fetch.c
 *	  Owns evcharge.signed_get(): one HTTP(S) GET to a partner or payment
 *	  provider with libcurl, the request signed and the response's signature
 *	  checked with HMAC-SHA256 (OpenSSL), and the settings that bound it
 *	  (evcharge.http_timeout, evcharge.http_ca_file, evcharge.http_max_bytes).
 *
 *	  The backend is never blocked without a limit: connect and transfer
 *	  have timeouts, a cancel or termination aborts the transfer within a
 *	  second (libcurl's progress callback), and the body has a size limit.
 *	  Only http and https, no redirects.  The callbacks never raise errors
 *	  (a longjmp through libcurl would leak it): they stop the transfer and
 *	  the error is raised after curl_easy_perform() returns.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <time.h>

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "http_fetch.h"

PG_FUNCTION_INFO_V1(evcharge_signed_get);

static int	http_timeout_ms = 10000;
static char *http_ca_file = NULL;
static int	http_max_kb = 65536;
static bool curl_ready = false;

void
HttpDefineSettings(void)
{
	DefineCustomIntVariable("evcharge.http_timeout",
							"Longest a request to a partner or payment provider may take, connection included.",
							NULL, &http_timeout_ms, 10000, 100, 600000, PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomStringVariable("evcharge.http_ca_file",
							   "File of CA certificates that partners' and providers' servers are checked against; empty: the system's.",
							   NULL, &http_ca_file, "", PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("evcharge.http_max_bytes",
							"Largest response body accepted from a partner or payment provider.",
							NULL, &http_max_kb, 65536, 1, 524288, PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
}

/* What the callbacks collect; they set flags instead of raising errors. */
typedef struct Transfer
{
	char	   *body;			/* NUL-terminated */
	size_t		len;
	size_t		cap;
	size_t		max_bytes;
	bool		too_large;
	bool		out_of_memory;
	bool		interrupted;
	char		signature[129];	/* the response's X-Signature header */
} Transfer;

static size_t
WriteBody(char *data, size_t size, size_t nmemb, void *arg)
{
	Transfer   *t = (Transfer *) arg;
	size_t		n = size * nmemb;

	if (t->len + n > t->max_bytes)
	{
		t->too_large = true;
		return 0;				/* stops the transfer */
	}
	if (t->len + n + 1 > t->cap)
	{
		size_t		cap = Max(t->cap * 2, t->len + n + 1);
		char	   *grown = palloc_extended(cap, MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);

		if (grown == NULL)
		{
			t->out_of_memory = true;
			return 0;
		}
		memcpy(grown, t->body, t->len + 1);
		pfree(t->body);
		t->body = grown;
		t->cap = cap;
	}
	memcpy(t->body + t->len, data, n);
	t->len += n;
	t->body[t->len] = '\0';
	return n;
}

static size_t
ReadHeader(char *data, size_t size, size_t nmemb, void *arg)
{
	Transfer   *t = (Transfer *) arg;
	size_t		n = size * nmemb;
	static const char name[] = "x-signature:";
	size_t		namelen = sizeof(name) - 1;

	if (n > namelen && pg_strncasecmp(data, name, namelen) == 0)
	{
		size_t		i = namelen;
		size_t		j = 0;

		while (i < n && (data[i] == ' ' || data[i] == '\t'))
			i++;
		while (i < n && j < sizeof(t->signature) - 1 && data[i] != '\r' && data[i] != '\n')
			t->signature[j++] = data[i++];
		t->signature[j] = '\0';
	}
	return n;
}

static int
Progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	Transfer   *t = (Transfer *) arg;

	if (InterruptPending)
	{
		t->interrupted = true;
		return 1;				/* aborts; the interrupt is served after */
	}
	return 0;
}

/* Lower-case hex HMAC-SHA256 of data under key, into out[65]. */
static void
HmacHex(const char *key, const char *data, size_t len, char *out)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	unsigned int i;

	if (HMAC(EVP_sha256(), key, (int) strlen(key), (const unsigned char *) data, len, mac, &maclen) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute an HMAC-SHA256 signature")));
	for (i = 0; i < maclen; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	out[2 * maclen] = '\0';
}

/* The path and query of url, which is what a request signature covers. */
static char *
UrlPathAndQuery(const char *url)
{
	CURLU	   *u = curl_url();
	char	   *path = NULL;
	char	   *query = NULL;
	char	   *scheme = NULL;
	char	   *result;

	if (u == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		(strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
	{
		curl_free(scheme);
		curl_url_cleanup(u);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not an http or https URL", url),
				 errhint("Statements are fetched from URLs such as https://partner.example/statements/2026-11-20.csv.")));
	}
	curl_free(scheme);
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		path = NULL;
	if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
		query = NULL;
	result = psprintf("%s%s%s", path ? path : "/", query ? "?" : "", query ? query : "");
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return result;
}

/*
 * signed_get(url, secret): the body of a GET whose request carries
 * X-Evcharge-Timestamp (Unix seconds) and X-Evcharge-Signature =
 * hex(HMAC-SHA256(secret, "GET\n" + path?query + "\n" + timestamp)), and
 * whose response must carry X-Signature = hex(HMAC-SHA256(secret, body)).
 */
Datum
evcharge_signed_get(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *to_sign;
	char		signature[65];
	char		expected[65];
	char		errbuf[CURL_ERROR_SIZE];
	char	   *ts_header;
	char	   *sig_header;
	struct curl_slist *volatile headers = NULL;
	CURL	   *volatile curl = NULL;
	Transfer	t;
	volatile CURLcode rc = CURLE_OK;
	volatile long status = 0;
	long		code = 0;

	if (secret[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the shared secret for \"%s\" is empty", url),
				 errhint("Every statement source has its own secret, agreed with the partner or provider.")));
	to_sign = psprintf("GET\n%s\n%lld", UrlPathAndQuery(url), (long long) time(NULL));
	HmacHex(secret, to_sign, strlen(to_sign), signature);
	ts_header = psprintf("X-Evcharge-Timestamp: %s", strrchr(to_sign, '\n') + 1);
	sig_header = psprintf("X-Evcharge-Signature: %s", signature);

	if (!curl_ready)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not initialise libcurl")));
		curl_ready = true;
	}

	memset(&t, 0, sizeof(t));
	t.cap = 8192;
	t.body = palloc(t.cap);
	t.body[0] = '\0';
	t.max_bytes = (size_t) http_max_kb * 1024;
	errbuf[0] = '\0';

	PG_TRY();
	{
		curl = curl_easy_init();
		if (curl == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("could not start a libcurl transfer")));
		headers = curl_slist_append(headers, ts_header);
		headers = curl_slist_append(headers, sig_header);
		curl_easy_setopt(curl, CURLOPT_URL, url);
		curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) http_timeout_ms);
		curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long) http_timeout_ms);
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(curl, CURLOPT_USERAGENT, "evcharge/" EVCHARGE_VERSION);
		curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
		curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
		curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, ReadHeader);
		curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
		curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, Progress);
		curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
		if (http_ca_file != NULL && http_ca_file[0] != '\0')
			curl_easy_setopt(curl, CURLOPT_CAINFO, http_ca_file);
		rc = curl_easy_perform(curl);
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
		status = code;
	}
	PG_FINALLY();
	{
		if (curl != NULL)
			curl_easy_cleanup(curl);
		curl_slist_free_all(headers);
	}
	PG_END_TRY();

	if (t.interrupted)
		CHECK_FOR_INTERRUPTS();
	if (t.out_of_memory)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory reading the response from \"%s\"", url)));
	if (t.too_large)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the response from \"%s\" is larger than %d kB", url, http_max_kb),
				 errhint("Raise evcharge.http_max_bytes if statements are really this large.")));
	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not fetch \"%s\": %s", url, curl_easy_strerror(rc)),
				 errdetail("%s", errbuf[0] ? errbuf : curl_easy_strerror(rc)),
				 rc == CURLE_OPERATION_TIMEDOUT ?
				 errhint("The request gave up after evcharge.http_timeout (%d ms).", http_timeout_ms) :
				 errhint("Check the URL, the server and, for https, evcharge.http_ca_file.")));
	if (status != 200)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_EXCEPTION),
				 errmsg("\"%s\" answered HTTP %ld", url, status),
				 errdetail("A statement is fetched with GET and must answer 200."),
				 errhint("Check the URL template of the statement source and the day asked for.")));

	HmacHex(secret, t.body, t.len, expected);
	if (t.signature[0] == '\0' || strlen(t.signature) != strlen(expected) ||
		CRYPTO_memcmp(t.signature, expected, strlen(expected)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the response from \"%s\" is not signed with the shared secret", url),
				 errdetail(t.signature[0] ? "Its X-Signature header does not match HMAC-SHA256 of the body." :
						   "It has no X-Signature header."),
				 errhint("The body may have been altered on the way, or the secret differs from the partner's.")));

	pg_verifymbstr(t.body, (int) t.len, false);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(t.body, (int) t.len));
}
