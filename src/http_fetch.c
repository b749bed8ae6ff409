/*-------------------------------------------------------------------------
 *
 * http_fetch.c
 *	  Owns evcharge's HTTPS client: fetch_statement(), one GET of a partner's
 *	  or payment provider's daily statement with libcurl, the request signed
 *	  and the response's signature checked with HMAC-SHA256 (OpenSSL) over
 *	  the source, the day and the body; check_statement_url(), the rule for
 *	  the URLs it may fetch; and the settings that bound it
 *	  (evcharge.http_timeout, evcharge.http_connect_timeout,
 *	  evcharge.http_ca_file, evcharge.http_max_bytes).
 *
 *	  Only https, for the request and for any redirect, and no redirect is
 *	  followed; the server's certificate and host name are always checked.
 *	  The backend is never blocked without a limit: connect and transfer
 *	  have timeouts, the body has a size limit, and the transfer runs on
 *	  libcurl's multi interface so that the backend waits in short slices,
 *	  reporting the wait event "Extension" while it waits and serving a
 *	  cancel or termination between slices.  The callbacks never raise
 *	  errors (a longjmp through libcurl would leak it): they stop the
 *	  transfer and the error is raised after libcurl has returned; the
 *	  handles are released by PG_FINALLY on every path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <time.h>

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/pmsignal.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/wait_event.h"

#include "http_fetch.h"

PG_FUNCTION_INFO_V1(evcharge_signed_get);
PG_FUNCTION_INFO_V1(evcharge_fetch_statement);
PG_FUNCTION_INFO_V1(evcharge_check_statement_url);

/* The first line of what a statement's signature covers (docs/money.md). */
#define STATEMENT_SIGNATURE_VERSION "evcharge-statement-v1"

/* The longest the backend waits in libcurl before looking at interrupts. */
#define WAIT_SLICE_MS 100

static int	http_timeout_ms = 10000;
static int	http_connect_timeout_ms = 5000;
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
	DefineCustomIntVariable("evcharge.http_connect_timeout",
							"Longest the connection to a partner or payment provider may take, TLS handshake included.",
							"Never more than evcharge.http_timeout.",
							&http_connect_timeout_ms, 5000, 100, 600000, PGC_SUSET, GUC_UNIT_MS,
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

/*
 * Keeps the X-Signature header of the final response.  A status line starts
 * a new response (a proxy's CONNECT answer, a 100 Continue), whose headers
 * replace those of the one before.
 */
static size_t
ReadHeader(char *data, size_t size, size_t nmemb, void *arg)
{
	Transfer   *t = (Transfer *) arg;
	size_t		n = size * nmemb;
	static const char name[] = "x-signature:";
	size_t		namelen = sizeof(name) - 1;

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
		t->signature[0] = '\0';
	else if (n > namelen && pg_strncasecmp(data, name, namelen) == 0)
	{
		size_t		i = namelen;
		size_t		j = 0;

		while (i < n && (data[i] == ' ' || data[i] == '\t'))
			i++;
		while (i < n && j < sizeof(t->signature) - 1 && data[i] != '\r' && data[i] != '\n')
			t->signature[j++] = pg_ascii_tolower((unsigned char) data[i++]);
		t->signature[j] = '\0';
	}
	return n;
}

/*
 * Stops a transfer at once when the query is cancelled or the backend told
 * to end, should libcurl be busy inside one step for long (a synchronous
 * name lookup); the interrupt itself is served once libcurl has returned.
 */
static int
Progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	return (QueryCancelPending || ProcDiePending) ? 1 : 0;
}

/* Lower-case hex of len bytes into out[2 * len + 1]. */
static void
Hex(const unsigned char *bytes, unsigned int len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	unsigned int i;

	for (i = 0; i < len; i++)
	{
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 0xf];
	}
	out[2 * len] = '\0';
}

/* Lower-case hex HMAC-SHA256 of data under key, into out[65]. */
static void
HmacHex(const char *key, const char *data, size_t len, char *out)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	if (HMAC(EVP_sha256(), key, (int) strlen(key), (const unsigned char *) data, len, mac, &maclen) == NULL ||
		maclen != 32)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute an HMAC-SHA256 signature")));
	Hex(mac, maclen, out);
}

/* Lower-case hex SHA-256 of data, into out[65]. */
static void
Sha256Hex(const char *data, size_t len, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a SHA-256 digest")));
	Hex(md, mdlen, out);
}

/* A sample day put in place of {day} when a template is checked. */
#define SAMPLE_DAY "2026-11-20"

/* template with every {day} replaced by day (as SQL's replace() would). */
static char *
FillTemplate(const char *template, const char *day)
{
	StringInfoData buf;
	const char *p = template;
	const char *hit;

	initStringInfo(&buf);
	while ((hit = strstr(p, "{day}")) != NULL)
	{
		appendBinaryStringInfo(&buf, p, (int) (hit - p));
		appendStringInfoString(&buf, day);
		p = hit + strlen("{day}");
	}
	appendStringInfoString(&buf, p);
	return buf.data;
}

/*
 * The rule for every URL evcharge fetches a statement from, as libcurl
 * itself reads it: https, a host, no user name or password (the URL is
 * shown in errors and logs; the shared secret authenticates), and, for a
 * template, {day} somewhere.  Raises 22023 naming what is wrong; returns
 * the path and query, which is what the request's signature covers.
 */
static char *
CheckUrl(const char *url, bool is_template)
{
	const char *parsed = is_template ? FillTemplate(url, SAMPLE_DAY) : url;
	CURLU	   *u;
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *user = NULL;
	char	   *password = NULL;
	char	   *path = NULL;
	char	   *query = NULL;
	char	   *result;
	bool		valid;
	bool		https;
	bool		credentials;

	if (is_template && strstr(url, "{day}") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("statement URL template \"%s\" has no {day}", url),
				 errdetail("Every day's statement is fetched from its own URL, {day} replaced by the day as YYYY-MM-DD."),
				 errhint("Write the URL such as https://partner.example/statements/{day}.csv.")));
	u = curl_url();
	if (u == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	valid = curl_url_set(u, CURLUPART_URL, parsed, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
		host[0] != '\0';
	https = valid && pg_strcasecmp(scheme, "https") == 0;
	credentials = valid &&
		(curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
		 curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK);
	if (valid && https && !credentials)
	{
		if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
			path = NULL;
		if (curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
			query = NULL;
		result = psprintf("%s%s%s", path ? path : "/", query ? "?" : "", query ? query : "");
	}
	else
		result = NULL;
	curl_free(path);
	curl_free(query);
	curl_free(user);
	curl_free(password);
	curl_free(scheme);
	if (credentials)
	{
		char	   *h = pstrdup(host);

		curl_free(host);
		curl_url_cleanup(u);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("statement URL of host \"%s\" carries a user name or password", h),
				 errdetail("The URL is shown in errors, findings and logs, and a password in it would be too."),
				 errhint("Leave credentials out of the URL: the request and the statement are authenticated by the source's shared secret.")));
	}
	curl_free(host);
	curl_url_cleanup(u);
	if (!valid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("statement URL \"%s\" is not a valid URL", url),
				 errhint("Write the URL such as https://partner.example/statements/{day}.csv.")));
	if (!https)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("statement URL \"%s\" is not https", url),
				 errdetail("Statements are fetched over HTTPS only, with the server's certificate checked: over plain http anyone on the way could read or withhold them."),
				 errhint("Use the partner's https:// address, such as https://partner.example/statements/{day}.csv.")));
	return result;
}

/* A statement's day as YYYY-MM-DD; raises 22008 for a day out of range. */
static char *
FormatDay(DateADT day)
{
	int			year;
	int			month;
	int			mday;

	if (DATE_NOT_FINITE(day))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("a statement's day cannot be %s", DATE_IS_NOBEGIN(day) ? "-infinity" : "infinity"),
				 errhint("Ask for one calendar day, such as 2026-11-20.")));
	j2date(day + POSTGRES_EPOCH_JDATE, &year, &month, &mday);
	if (year < 1 || year > 9999)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("a statement's day must be in the years 1 to 9999"),
				 errdetail("The day is written YYYY-MM-DD in the URL and in the signature."),
				 errhint("Ask for one calendar day, such as 2026-11-20.")));
	return psprintf("%04d-%02d-%02d", year, month, mday);
}

/*
 * What a statement's X-Signature is the HMAC-SHA256 of: four lines joined
 * by "\n", no trailing newline (docs/money.md, "Signatures").
 */
static char *
StatementStringToSign(const char *source, const char *day, const char *body, size_t len)
{
	char		digest[65];

	Sha256Hex(body, len, digest);
	return psprintf("%s\n%s\n%s\n%s", STATEMENT_SIGNATURE_VERSION, source, day, digest);
}

/* The hint of a transfer that failed with rc, for the setting involved. */
static int
TransferHint(CURLcode rc, bool connected)
{
	switch (rc)
	{
		case CURLE_OPERATION_TIMEDOUT:
			if (!connected)
				return errhint("The connection gave up after evcharge.http_connect_timeout (%d ms).",
							   Min(http_connect_timeout_ms, http_timeout_ms));
			return errhint("The request gave up after evcharge.http_timeout (%d ms).", http_timeout_ms);
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_SSL_CERTPROBLEM:
			return errhint("The server's certificate must be valid for the URL's host and signed by a CA of %s.",
						   (http_ca_file != NULL && http_ca_file[0] != '\0') ? "evcharge.http_ca_file" : "the system");
		default:
			return errhint("Check the URL, the server and, for its certificate, evcharge.http_ca_file.");
	}
}

/*
 * One GET of url.  The request carries X-Evcharge-Timestamp (Unix seconds)
 * and X-Evcharge-Signature = hex(HMAC-SHA256(secret, "GET\n" + path?query +
 * "\n" + timestamp)).  The response must answer 200 and carry X-Signature =
 * hex(HMAC-SHA256(secret, string to sign)), where the string to sign is
 * StatementStringToSign(source, day, body) or, when source is NULL (the
 * 0.1.0 signed_get), the body alone.  Returns the body, UTF-8, as text.
 */
static text *
SignedGet(const char *url, const char *secret, const char *source, const char *day)
{
	char	   *to_sign;
	char		signature[65];
	char		expected[65];
	char		errbuf[CURL_ERROR_SIZE];
	char	   *ts_header;
	char	   *sig_header;
	struct curl_slist *volatile headers = NULL;
	CURL	   *volatile curl = NULL;
	CURLM	   *volatile multi = NULL;
	volatile bool added = false;
	Transfer	t;
	volatile CURLcode rc = CURLE_OK;
	volatile CURLMcode mrc = CURLM_OK;
	volatile long status = 0;
	volatile bool connected = false;
	char	   *path;
	char	   *body;

	if (secret[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the shared secret for \"%s\" is empty", url),
				 errhint("Every statement source has its own secret, agreed with the partner or provider.")));
	path = CheckUrl(url, false);
	to_sign = psprintf("GET\n%s\n%lld", path, (long long) time(NULL));
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
		CURLMsg    *msg;
		int			left;
		long		code = 0;
		curl_off_t	connect_us = 0;

		multi = curl_multi_init();
		curl = curl_easy_init();
		if (multi == NULL || curl == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("could not start a libcurl transfer")));
		/* curl_slist_append returns NULL, the list kept, when it fails. */
		headers = curl_slist_append(NULL, ts_header);
		if (headers == NULL || curl_slist_append(headers, sig_header) == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("could not start a libcurl transfer")));
		if (curl_easy_setopt(curl, CURLOPT_URL, url) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) http_timeout_ms) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
							 (long) Min(http_connect_timeout_ms, http_timeout_ms)) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) t.max_bytes) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_USERAGENT, "evcharge/" EVCHARGE_VERSION) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, ReadHeader) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L) != CURLE_OK ||
			curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, Progress) != CURLE_OK ||
			(http_ca_file != NULL && http_ca_file[0] != '\0' &&
			 curl_easy_setopt(curl, CURLOPT_CAINFO, http_ca_file) != CURLE_OK))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("the libcurl of this server cannot be limited to https with certificate checks"),
					 errdetail("evcharge needs libcurl 7.85 or later, built with TLS."),
					 errhint("evcharge.library_versions() shows the libcurl the server runs with.")));
		if (curl_multi_add_handle(multi, curl) != CURLM_OK)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("could not start a libcurl transfer")));
		added = true;

		/*
		 * The transfer: libcurl does what it can without blocking, then the
		 * backend waits for its sockets at most WAIT_SLICE_MS (a signal ends
		 * the wait sooner), as wait event Extension, and serves interrupts.
		 * A cancel raises its error here, outside libcurl, and PG_FINALLY
		 * releases the handles.
		 */
		for (;;)
		{
			int			running = 0;

			mrc = curl_multi_perform(multi, &running);
			if (mrc != CURLM_OK || running == 0)
				break;
			pgstat_report_wait_start(PG_WAIT_EXTENSION);
			mrc = curl_multi_wait(multi, NULL, 0, WAIT_SLICE_MS, NULL);
			pgstat_report_wait_end();
			if (mrc != CURLM_OK)
				break;
			if (!PostmasterIsAlive())
				ereport(FATAL,
						(errcode(ERRCODE_ADMIN_SHUTDOWN),
						 errmsg("terminating connection due to unexpected postmaster exit")));
			CHECK_FOR_INTERRUPTS();
		}
		CHECK_FOR_INTERRUPTS();
		rc = CURLE_GOT_NOTHING;	/* unless libcurl says how it ended */
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == curl)
				rc = msg->data.result;
		if (curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK)
			status = code;
		if (curl_easy_getinfo(curl, CURLINFO_APPCONNECT_TIME_T, &connect_us) == CURLE_OK)
			connected = connect_us > 0;
	}
	PG_FINALLY();
	{
		if (added)
			curl_multi_remove_handle(multi, curl);
		if (curl != NULL)
			curl_easy_cleanup(curl);
		if (multi != NULL)
			curl_multi_cleanup(multi);
		curl_slist_free_all(headers);
	}
	PG_END_TRY();

	if (mrc != CURLM_OK)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not fetch \"%s\": %s", url, curl_multi_strerror(mrc))));
	if (t.out_of_memory)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory reading the response from \"%s\"", url)));
	if (t.too_large || rc == CURLE_FILESIZE_EXCEEDED)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the response from \"%s\" is larger than %d kB", url, http_max_kb),
				 errhint("Raise evcharge.http_max_bytes if statements are really this large.")));
	if (rc != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not fetch \"%s\": %s", url, curl_easy_strerror(rc)),
				 errdetail("%s", errbuf[0] ? errbuf : curl_easy_strerror(rc)),
				 TransferHint(rc, connected)));
	if (status != 200)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_EXCEPTION),
				 errmsg("\"%s\" answered HTTP %ld", url, status),
				 errdetail("A statement is fetched with GET and must answer 200; redirects are not followed."),
				 status == 401 || status == 403 ?
				 errhint("The server refused the request's signature: check that the source's secret is the partner's.") :
				 errhint("Check the URL template of the statement source and the day asked for.")));

	if (source != NULL)
	{
		char	   *covered = StatementStringToSign(source, day, t.body, t.len);

		HmacHex(secret, covered, strlen(covered), expected);
	}
	else
		HmacHex(secret, t.body, t.len, expected);
	if (t.signature[0] == '\0' || strlen(t.signature) != strlen(expected) ||
		CRYPTO_memcmp(t.signature, expected, strlen(expected)) != 0)
	{
		if (source == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("the response from \"%s\" is not signed with the shared secret", url),
					 errdetail(t.signature[0] ? "Its X-Signature header does not match HMAC-SHA256 of the body." :
							   "It has no X-Signature header."),
					 errhint("The body may have been altered on the way, or the secret differs from the partner's.")));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the statement from \"%s\" is not signed for source \"%s\" and day %s", url, source, day),
				 t.signature[0] ?
				 errdetail("Its X-Signature header is not HMAC-SHA256, under the source's secret, of \"%s\", source, day and SHA-256 of the body: "
						   "the body was altered on the way, or it is the statement of another day or source, or the secret differs from the partner's.",
						   STATEMENT_SIGNATURE_VERSION) :
				 errdetail("It has no X-Signature header."),
				 errhint("A statement is believed only when signed for its source and day, as docs/money.md (\"Signatures\") says; ask the partner for the statement of %s.", day)));
	}

	/* Statements are UTF-8; in the database's encoding, or an error. */
	body = pg_any_to_server(t.body, (int) t.len, PG_UTF8);
	return cstring_to_text(body);
}

/*
 * check_statement_url(url_template): true for a URL template that
 * fetch_statement() may fetch, else an error saying what is wrong (the
 * CHECK of statement_source.url_template, so that an insert is refused
 * with that error rather than a bare constraint violation).
 */
Datum
evcharge_check_statement_url(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));

	(void) CheckUrl(url, true);
	PG_RETURN_BOOL(true);
}

/*
 * fetch_statement(source, day, url_template, secret): the body of the
 * statement of source for day, fetched from url_template with {day}
 * replaced, its signature checked over source, day and body.
 */
Datum
evcharge_fetch_statement(PG_FUNCTION_ARGS)
{
	char	   *source = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *day = FormatDay(PG_GETARG_DATEADT(1));
	char	   *template = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(3));
	const char *p;

	for (p = source; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			break;
	if (source[0] == '\0' || *p != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("statement source name \"%s\" is empty or has a control character", source),
				 errdetail("The name is a line of what a statement's signature covers."),
				 errhint("Use the name agreed with the partner, such as wxpay-12.")));
	(void) CheckUrl(template, true);
	PG_RETURN_TEXT_P(SignedGet(FillTemplate(template, day), secret, source, day));
}

/*
 * signed_get(url, secret): release 0.1.0's entry point, kept for its
 * install script; its response signature covers the body only.  0.2.0
 * calls fetch_statement() instead.
 */
Datum
evcharge_signed_get(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(1));

	PG_RETURN_TEXT_P(SignedGet(url, secret, NULL, NULL));
}
