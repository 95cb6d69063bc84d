/*
 * cmf HTTP: libmicrohttpd with a worker-thread pool. A request is framed, routed, authenticated and
 * authorized from its headers in the first callback, so a refused one never has a body byte read; bodies
 * are capped; one access-log line per request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cmf/http/audit.h"
#include "cmf/http/daemon.h"
#include "cmf/log.h"
#include "cmf/metrics.h"
#include "cmf/http/reply.h"
#include "cmf/api/routes.h"
#include "cmf/http/dispatch.h"
#include "cmf/http/watch.h"
#include "cmf/text.h"
#include "crypto/buf.h"
#include "crypto/crypto.h"
#include "k8s/k8s.h"

/*
 * TLS PEM files (server.tls.*) are read whole: a certificate chain or a CA bundle is a few KiB, and even
 * the full public CA bundle is about 200 KiB; 1 MiB leaves room for any of them, while a setting that
 * points at the wrong file (a log, a disk image) is refused instead of read into memory.
 */
#define HTTP_TLS_PEM_MAX (1024 * 1024)

/*
 * TLS 1.3 and 1.2 only (1.0 and 1.1 are deprecated, RFC 8996), and on 1.2 only AEAD ciphers with
 * forward secrecy: no CBC/SHA-1 suites, no plain-RSA or DHE-RSA key exchange. The server's preference
 * order wins.
 */
#define HTTP_TLS_PRIORITIES                                                                        \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-RSA:-DHE-RSA:-CIPHER-ALL:+CHACHA20-POLY1305:"   \
	"+AES-256-GCM:+AES-128-GCM:-MAC-ALL:+AEAD:%SERVER_PRECEDENCE"

/* Per-request state, from the first callback to MHD's completion notice. */
struct req_ctx {
	struct cmf_request req;
	struct cmf_response resp;
	struct crypto_buf *body; /* wiped when freed: bodies carry secret values (NULL until the first byte) */
	char *path;              /* the decoded path that req.segs point into */
	size_t limit;
	int too_large;
	int responded;
	/* Let through by the headers step, waiting for its body (cmf_dispatch_begin); NULL otherwise. */
	struct cmf_call *call;
	/* Refused from the headers of a request without a body: resp is complete, sent at the last callback. */
	bool refused;
	struct timespec start;
	/*
	 * A deferred call (its reply waits for the audit writer) completes on another thread: the connection
	 * is suspended meanwhile, so no worker thread waits. The lock orders "suspended" against "completed".
	 */
	pthread_mutex_t mu;
	bool deferred, completed, suspended;
	const char *route; /* the matched route's pattern (metrics label), NULL when none matched */
};

static atomic_int in_flight;
static atomic_bool draining;

/* The request vocabulary's lookups (cmf/http/request.h), answered by libmicrohttpd. */
static const char *
io_get(void *conn, enum cmf_request_value kind, const char *name)
{
	return MHD_lookup_connection_value(conn, kind == CMF_REQUEST_QUERY ? MHD_GET_ARGUMENT_KIND : MHD_HEADER_KIND,
					   name);
}

struct io_each {
	const char *name;
	int (*fn)(void *cls, const char *value);
	void *cls;
};

static enum MHD_Result
io_each_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct io_each *e = cls;

	(void)kind;
	if (strcasecmp(key, e->name) != 0)
		return MHD_YES;
	return e->fn(e->cls, value) == 0 ? MHD_YES : MHD_NO;
}

static void
io_each(void *conn, const char *name, int (*fn)(void *cls, const char *value), void *cls)
{
	struct io_each e = { name, fn, cls };

	MHD_get_connection_values(conn, MHD_HEADER_KIND, io_each_header, &e);
}

static const struct cmf_request_io mhd_io = { io_get, io_each };

/* Response bodies may carry secret values (the resolution endpoint): wipe before freeing. */
static void
wipe_free_body(void *p)
{
	if (p != NULL)
		crypto_freezero(p, strlen(p));
}

static void
client_address(struct MHD_Connection *conn, char *out, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

	out[0] = '\0';
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)len);
}

/*
 * A request id: 8 random bytes drawn once per process, then a counter. Unique across replicas and
 * restarts (a 64-bit random prefix), and cheaper than drawing 16 random bytes per request: it names a
 * request in logs and the audit trail, it protects nothing.
 */
static uint8_t request_prefix[8];

static void
request_id_prefix(void)
{
	if (crypto_random(request_prefix, sizeof(request_prefix)) != CRYPTO_OK)
		cmf_error("cannot draw the request ids' random prefix: request ids are unique in this process only");
}

static void
request_id(char out[33])
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	static atomic_ullong counter;
	uint8_t raw[16];
	unsigned long long n;

	pthread_once(&once, request_id_prefix);
	memcpy(raw, request_prefix, sizeof(request_prefix));
	n = atomic_fetch_add(&counter, 1);
	for (int i = 0; i < 8; i++)
		raw[8 + i] = (uint8_t)(n >> (56 - 8 * i));
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = "0123456789abcdef"[raw[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[raw[i] & 15];
	}
	out[32] = '\0';
}

/*
 * How a request's header lines look once libmicrohttpd 0.9.75 has parsed them in place: each line is
 * "name\0 value" followed by its line end (CR LF, or a bare LF) overwritten with NULs, the lines one
 * after another in the connection's read buffer (which grows in place), the blank line last. It stores
 * each value's size as strlen(), so a NUL inside a value silently ends it ("Bearer <token>\0junk" reads
 * as "Bearer <token>") and no lookup shows the rest. What does show it is the gap between a value's end
 * and the next line's name (or the end of the header block, which MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE
 * counts from the method, where the request line starts): a line end is 1 or 2 NULs, anything else
 * is bytes the client sent after a NUL (or a folded line, moved elsewhere: RFC 9112 §5.2 allows refusing
 * it). Trailing NULs right before a bare LF look like a CR LF and are not caught: they change nothing.
 */
struct header_scan {
	const char *prev_end; /* where the previous value ended; NULL before the first header */
	size_t content_lengths;
	const char *content_length;
	size_t content_length_size;
	bool has_nul;
	bool transfer_encoding;
};

/* Whether [from, to) is all NUL bytes and between min and max bytes long. */
static bool
nul_gap(const char *from, const char *to, size_t min, size_t max)
{
	if (to < from || (size_t)(to - from) < min || (size_t)(to - from) > max)
		return false;
	for (const char *p = from; p < to; p++)
		if (*p != '\0')
			return false;
	return true;
}

static enum MHD_Result
header_scan_one(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size, const char *value,
		size_t value_size)
{
	struct header_scan *hs = cls;

	(void)kind;
	if (hs->prev_end != NULL && !nul_gap(hs->prev_end, key, 1, 2))
		hs->has_nul = true;
	hs->prev_end = value + value_size;
	if (key_size == strlen(MHD_HTTP_HEADER_TRANSFER_ENCODING) &&
	    strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
		hs->transfer_encoding = true;
	if (key_size == strlen(MHD_HTTP_HEADER_CONTENT_LENGTH) &&
	    strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		hs->content_lengths++;
		hs->content_length = value;
		hs->content_length_size = value_size;
	}
	return MHD_YES;
}

/*
 * RFC 9112 §6.1 and §6.3 from the headers, before routing: a header value holding a NUL is 400; any
 * Transfer-Encoding is 411 (this API's clients send Content-Length; a chunked body could only reach
 * libmicrohttpd's own chunk parser, whose errors are not CMF's); more than one Content-Length, or one
 * that is not a plain decimal number, is 400. Each refusal closes the connection: its framing cannot be
 * trusted. Returns 0 with *body_len the declared body length (0 when none), or -1 with ctx->resp set.
 */
static int
request_framing(struct MHD_Connection *conn, struct req_ctx *ctx, uint64_t *body_len)
{
	struct header_scan hs = { 0 };
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);

	*body_len = 0;
	MHD_get_connection_values_n(conn, MHD_HEADER_KIND, header_scan_one, &hs);
	/* The last line's end and the blank line: 2 to 4 NULs up to the end of the header block. */
	if (hs.prev_end != NULL &&
	    (ci == NULL || !nul_gap(hs.prev_end, ctx->req.method + ci->header_size, 2, 4)))
		hs.has_nul = true;
	if (hs.has_nul) {
		cmf_reply_error(&ctx->resp, MHD_HTTP_BAD_REQUEST,
				"a request header holds a NUL byte (or is folded over lines): refused");
	} else if (hs.transfer_encoding) {
		cmf_reply_error(&ctx->resp, MHD_HTTP_LENGTH_REQUIRED,
				"Transfer-Encoding is not accepted on requests: send the body with Content-Length");
	} else if (hs.content_lengths > 1) {
		cmf_reply_error(&ctx->resp, MHD_HTTP_BAD_REQUEST, "more than one Content-Length header");
	} else if (hs.content_lengths == 1) {
		const char *v = hs.content_length;
		size_t i = 0;

		/*
		 * libmicrohttpd already refused anything but digits; still, nothing unchecked decides framing.
		 * Only the comparison with the body limit matters, so a huge number saturates.
		 */
		for (; i < hs.content_length_size && v[i] >= '0' && v[i] <= '9'; i++)
			*body_len = *body_len > (UINT64_MAX - 9) / 10 ? UINT64_MAX
								       : *body_len * 10 + (uint64_t)(v[i] - '0');
		if (i == 0 || i != hs.content_length_size)
			cmf_reply_error(&ctx->resp, MHD_HTTP_BAD_REQUEST, "the Content-Length header is not a number");
		else
			return 0;
	} else {
		return 0;
	}
	cmf_response_header(&ctx->resp, MHD_HTTP_HEADER_CONNECTION, "close");
	return -1;
}

/* Header values that carry credentials: wiped in libmicrohttpd's connection memory when a request ends. */
static enum MHD_Result
header_wipe_one(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size, const char *value,
		size_t value_size)
{
	(void)cls;
	(void)kind;
	(void)key_size;
	if (value != NULL && value_size > 0 &&
	    (strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0 ||
	     strcasecmp(key, MHD_HTTP_HEADER_PROXY_AUTHORIZATION) == 0))
		OPENSSL_cleanse((void *)(uintptr_t)value, value_size); /* libmicrohttpd's own buffer, in place */
	return MHD_YES;
}

static enum MHD_Result
send_response(struct MHD_Connection *conn, struct req_ctx *ctx, struct cmf_response *resp)
{
	struct MHD_Response *r;
	struct timespec now;
	enum MHD_Result ret;
	size_t len = resp->body != NULL ? strlen(resp->body) : 0;
	double ms;

	if (resp->body != NULL)
		r = MHD_create_response_from_buffer_with_free_callback(len, resp->body, wipe_free_body);
	else
		r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (r == NULL) {
		cmf_response_clear(resp);
		return MHD_NO;
	}
	resp->body = NULL; /* owned by MHD now */
	if (len > 0)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
					resp->content_type != NULL ? resp->content_type : "application/json");
	/* Nothing this service returns may be cached by a proxy or client: several bodies carry secrets. */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Request-Id", ctx->req.request_id);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	for (size_t i = 0; i < resp->nheaders; i++)
		MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
	if (atomic_load(&draining))
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(conn, resp->status, r);
	MHD_destroy_response(r);
	cmf_response_clear(resp);
	ctx->responded = 1;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (double)(now.tv_sec - ctx->start.tv_sec) * 1e3 + (double)(now.tv_nsec - ctx->start.tv_nsec) / 1e6;
	cmf_info("%s %s %u %.1fms id=%s", ctx->req.method, ctx->req.path, resp->status, ms, ctx->req.request_id);
	cmf_metrics_request(ctx->route, ctx->req.method, resp->status, ms / 1e3);
	return ret;
}

/* The client CA is configured: mutual TLS, every request must carry a verified client certificate. */
static bool
tls_client_required(const struct cmf_config *cfg)
{
	return cfg->tls_client_ca_file != NULL && cfg->tls_client_ca_file[0] != '\0';
}

/*
 * Mutual TLS. Given MHD_OPTION_HTTPS_MEM_TRUST, libmicrohttpd 0.9.75 only asks for a client certificate
 * (gnutls_certificate_server_set_request(GNUTLS_CERT_REQUEST)) and verifies nothing: the handshake
 * completes without a certificate, or with one from any issuer. So each request verifies the peer's chain
 * against the client CA here (signatures, validity dates, and the TLS client-authentication key purpose
 * when the certificate lists purposes), then copies the first certificate's subject DN (RFC 4514 text)
 * into `subject` (size `len`); a DN that does not fit, is empty, or holds control bytes or invalid UTF-8
 * is refused, never truncated or altered. Returns 0 when verified; -1 otherwise, with the reason logged
 * at WARN (the subject DN is the only part of a certificate that is ever logged), and `subject`
 * "unverified: " followed by a short, sanitized excerpt of the presented DN (for the audit trail), or ""
 * when none was read.
 */
static int
tls_client_verify(struct MHD_Connection *conn, char *subject, size_t len)
{
	/* gnutls_typed_vdata_st.data is not const, so the OID lives in a writable array. */
	static char client_auth_oid[] = GNUTLS_KP_TLS_WWW_CLIENT;
	gnutls_typed_vdata_st purpose = { .type = GNUTLS_DT_KEY_PURPOSE_OID,
					  .data = (unsigned char *)client_auth_oid };
	const union MHD_ConnectionInfo *ci;
	gnutls_session_t session;
	const gnutls_datum_t *peers;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t dn = { NULL, 0 }, why = { NULL, 0 };
	unsigned npeers = 0, status = 0;
	char addr[64], shown[160], *copy = NULL;
	int r, ret = -1;

	subject[0] = '\0';
	shown[0] = '\0';
	client_address(conn, addr, sizeof(addr));
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci == NULL || ci->tls_session == NULL) {
		cmf_warn("client certificate refused (client %s): no TLS session", addr);
		goto out;
	}
	session = ci->tls_session;
	peers = gnutls_certificate_get_peers(session, &npeers);
	if (gnutls_certificate_type_get2(session, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_X509 || peers == NULL ||
	    npeers == 0) {
		cmf_warn("client certificate refused (client %s): the client presented no certificate", addr);
		goto out;
	}
	if ((r = gnutls_x509_crt_init(&crt)) < 0 ||
	    (r = gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER)) < 0) {
		cmf_warn("client certificate refused (client %s): gnutls_x509_crt_import: %s", addr,
			 gnutls_strerror(r));
		goto out;
	}
	/* RFC 4514 order (most specific first, "CN=job-runner,O=flink"): flags 0, not the compat order. */
	r = gnutls_x509_crt_get_dn3(crt, &dn, 0);
	if (r < 0 || dn.size == 0 || memchr(dn.data, '\0', dn.size) != NULL) {
		cmf_warn("client certificate refused (client %s): it has no usable subject DN%s%s", addr,
			 r < 0 ? ": " : "", r < 0 ? gnutls_strerror(r) : "");
		goto out;
	}
	if (dn.size >= len) {
		cmf_warn("client certificate refused (client %s): its subject DN is longer than %zu bytes", addr,
			 len - 1);
		goto out;
	}
	memcpy(subject, dn.data, dn.size);
	subject[dn.size] = '\0';
	/* For the log: valid UTF-8, control bytes as '?', and short; the DN is checked as sent below. */
	if ((copy = strdup(subject)) == NULL)
		goto out;
	cmf_utf8_sanitize(copy);
	cmf_text_excerpt(copy, strlen(copy), 120, shown, sizeof(shown));
	r = gnutls_certificate_verify_peers(session, &purpose, 1, &status);
	if (r < 0) {
		cmf_warn("client certificate '%s' refused (client %s): gnutls_certificate_verify_peers: %s", shown,
			 addr, gnutls_strerror(r));
		goto out;
	}
	if (status != 0) {
		if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) < 0)
			why.data = NULL;
		while (why.data != NULL && why.size > 0 && why.data[why.size - 1] == ' ')
			why.data[--why.size] = '\0'; /* GnuTLS ends each sentence with a space */
		cmf_warn("client certificate '%s' refused (client %s): %s", shown, addr,
			 why.data != NULL ? (const char *)why.data : "not verified by the client CA");
		goto out;
	}
	/* The DN names the principal (and reaches logs and the audit trail): it must be plain UTF-8 text. */
	for (size_t i = 0; i < dn.size; i++) {
		if ((unsigned char)subject[i] < 0x20 || subject[i] == 0x7f) {
			cmf_warn("client certificate '%s' refused (client %s): its subject DN holds control bytes",
				 shown, addr);
			goto out;
		}
	}
	if (strcmp(copy, subject) != 0) {
		cmf_warn("client certificate '%s' refused (client %s): its subject DN is not valid UTF-8", shown,
			 addr);
		goto out;
	}
	cmf_debug("client certificate '%s' verified (client %s)", shown, addr);
	ret = 0;
out:
	/* A refused certificate is still named in the audit trail, by what it claims, marked as such. */
	if (ret != 0 && shown[0] != '\0')
		snprintf(subject, len, "unverified: %s", shown);
	else if (ret != 0)
		subject[0] = '\0';
	free(copy);
	gnutls_free(dn.data);
	gnutls_free(why.data);
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	return ret;
}

/* The dispatcher finished a call (on this thread, or on the audit writer's for a deferred one). */
static void
call_done(struct cmf_call *call, void *cls)
{
	struct req_ctx *ctx = cls;

	struct MHD_Connection *conn = ctx->req.conn;
	bool resume;

	ctx->route = call->pattern;
	pthread_mutex_lock(&ctx->mu);
	ctx->completed = true;
	resume = ctx->suspended;
	ctx->suspended = false;
	pthread_mutex_unlock(&ctx->mu);
	/* Last: once resumed, the connection may answer and free ctx at once on another thread. */
	if (resume)
		MHD_resume_connection(conn);
}

/* A request's state from its first callback (counted in flight until on_completed). NULL when out of memory. */
static struct req_ctx *
ctx_new(struct cmf_app *app, struct MHD_Connection *conn, const char *url, const char *method)
{
	struct req_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL)
		return NULL;
	clock_gettime(CLOCK_MONOTONIC, &ctx->start);
	pthread_mutex_init(&ctx->mu, NULL);
	atomic_fetch_add(&in_flight, 1);
	ctx->limit = (size_t)app->cfg->max_body_bytes;
	ctx->req.app = app;
	ctx->req.method = method;
	ctx->req.path = url;
	ctx->req.conn = conn;
	ctx->req.io = &mhd_io;
	request_id(ctx->req.request_id);
	client_address(conn, ctx->req.client_addr, sizeof(ctx->req.client_addr));
	return ctx;
}

static enum MHD_Result dispatch_reply(struct MHD_Connection *conn, struct req_ctx *ctx, const char *url);
static int dispatch_headers(struct MHD_Connection *conn, struct req_ctx *ctx, const char *url);
static enum MHD_Result dispatch_body(struct MHD_Connection *conn, struct req_ctx *ctx);

/*
 * server.probeListen: /healthz and /readyz only, plain HTTP, a thread per connection, so a probe never
 * queues behind an API worker thread that waits on PostgreSQL. Nothing else of the API is reachable
 * here, and no request body is kept.
 */
static enum MHD_Result
on_probe(void *cls, struct MHD_Connection *conn, const char *url, const char *method, const char *version,
	 const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct req_ctx *ctx = *con_cls;

	(void)version;
	(void)upload_data;
	if (ctx == NULL) {
		if ((ctx = ctx_new(cls, conn, url, method)) == NULL)
			return MHD_NO;
		*con_cls = ctx;
		if (strcmp(url, "/healthz") != 0 && strcmp(url, "/readyz") != 0) {
			cmf_reply_error(&ctx->resp, MHD_HTTP_NOT_FOUND,
					"no such resource: server.probeListen serves /healthz and /readyz only");
			return send_response(conn, ctx, &ctx->resp);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (ctx->responded)
		return MHD_YES;
	return dispatch_reply(conn, ctx, url);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method, const char *version,
	   const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct cmf_app *app = cls;
	struct req_ctx *ctx = *con_cls;

	(void)version;
	if (ctx == NULL) {
		uint64_t body_len;

		if ((ctx = ctx_new(app, conn, url, method)) == NULL)
			return MHD_NO;
		*con_cls = ctx;
		/*
		 * A response queued here, in the first callback, makes libmicrohttpd skip the body unread, send
		 * no "100 Continue" and close the connection after the reply.
		 */
		/*
		 * Mutual TLS first: a request without a verified client certificate gets its audited 401 whatever
		 * else is wrong with it, and never reaches the router.
		 */
		if (tls_client_required(app->cfg) &&
		    tls_client_verify(conn, ctx->req.client_cert, sizeof(ctx->req.client_cert)) != 0) {
			struct db_audit a;
			char res[300];

			/* A failed authentication like any other: audited, with the subject it presented. */
			cmf_audit_init(&a, &ctx->req, "authenticate", "denied", MHD_HTTP_UNAUTHORIZED, res, sizeof(res),
				       "%s", url);
			cmf_audit_record(&ctx->req, &a);
			cmf_reply_error(&ctx->resp, MHD_HTTP_UNAUTHORIZED,
					"a client certificate signed by the configured client CA is required");
			return send_response(conn, ctx, &ctx->resp);
		}
		/* Past the check above, a required certificate is a verified one: it may name the principal. */
		ctx->req.client_cert_verified = tls_client_required(app->cfg);
		if (request_framing(conn, ctx, &body_len) != 0)
			return send_response(conn, ctx, &ctx->resp);
		/* A declared length over the limit is refused before a byte of the body is read. */
		if (body_len > ctx->limit) {
			cmf_reply_error(&ctx->resp, MHD_HTTP_CONTENT_TOO_LARGE, "request body is larger than %zu bytes",
					ctx->limit);
			return send_response(conn, ctx, &ctx->resp);
		}
		if (dispatch_headers(conn, ctx, url) != 0)
			return MHD_NO;
		if (ctx->call != NULL)
			return MHD_YES; /* let through: libmicrohttpd may now send "100 Continue" and read the body */
		/*
		 * Refused from the headers. With a body announced, answer now: its bytes are never read and the
		 * connection closes. So with "Expect" (libmicrohttpd 0.9.75 sends "100 Continue" after this
		 * callback whenever no reply is queued, even for an empty body). Otherwise answer at the last
		 * callback, which keeps a keep-alive connection open (libmicrohttpd closes any connection
		 * answered in the first callback).
		 */
		if (body_len > 0 || MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT) != NULL)
			return send_response(conn, ctx, &ctx->resp);
		ctx->refused = true;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		int r;

		*upload_data_size = 0;
		if (ctx->too_large || ctx->responded || ctx->call == NULL)
			return MHD_YES;
		r = ctx->body != NULL ? CRYPTO_OK : crypto_buf_new(ctx->limit, &ctx->body);
		if (r == CRYPTO_OK)
			r = crypto_buf_put(ctx->body, upload_data, n);
		if (r == CRYPTO_ERR_TOO_LARGE) {
			/* Cannot happen (Content-Length was checked, Transfer-Encoding refused): kept as a backstop. */
			ctx->too_large = 1;
			crypto_buf_free(ctx->body);
			ctx->body = NULL;
		}
		return r == CRYPTO_OK || r == CRYPTO_ERR_TOO_LARGE ? MHD_YES : MHD_NO;
	}
	if (ctx->responded)
		return MHD_YES;
	if (ctx->deferred) {
		cmf_metrics_gauge_add(CMF_G_SUSPENDED_CONNECTIONS, -1);
		return send_response(conn, ctx, &ctx->resp); /* resumed: the reply is complete */
	}
	if (ctx->refused)
		return send_response(conn, ctx, &ctx->resp);
	if (ctx->too_large) {
		cmf_dispatch_abandon(ctx->call);
		ctx->call = NULL;
		cmf_reply_error(&ctx->resp, MHD_HTTP_CONTENT_TOO_LARGE, "request body is larger than %zu bytes", ctx->limit);
		return send_response(conn, ctx, &ctx->resp);
	}
	return dispatch_body(conn, ctx);
}

/* The request line and headers of `url`, as the dispatcher reads them. 0, or -1 when out of memory. */
static int
request_headers(struct MHD_Connection *conn, struct req_ctx *ctx, const char *url)
{
	ctx->path = strdup(url);
	if (ctx->path == NULL)
		return -1;
	cmf_request_split(&ctx->req, ctx->path);
	ctx->req.content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	return 0;
}

/*
 * The headers are in (first callback): route, authenticate and authorize. Either ctx->call is set (go
 * on to the body) or ctx->resp holds the refusal. 0, or -1 when out of memory.
 */
static int
dispatch_headers(struct MHD_Connection *conn, struct req_ctx *ctx, const char *url)
{
	size_t nroutes;
	const struct cmf_route *routes = cmf_api_routes(&nroutes);

	if (request_headers(conn, ctx, url) != 0)
		return -1;
	cmf_dispatch_begin(&ctx->req, &ctx->resp, routes, nroutes, call_done, ctx, &ctx->call);
	return 0;
}

/* Answer now, or suspend the connection until the call (1 from the dispatcher: deferred) completes. */
static enum MHD_Result
reply_or_wait(struct MHD_Connection *conn, struct req_ctx *ctx, int dispatched)
{
	if (dispatched == 1) {
		bool wait;

		pthread_mutex_lock(&ctx->mu);
		ctx->deferred = true;
		wait = !ctx->completed;
		if (wait) {
			MHD_suspend_connection(conn);
			ctx->suspended = true;
			cmf_metrics_gauge_add(CMF_G_SUSPENDED_CONNECTIONS, 1);
		}
		pthread_mutex_unlock(&ctx->mu);
		if (wait)
			return MHD_YES;
	}
	return send_response(conn, ctx, &ctx->resp);
}

/* The body is in: run the handler of the call the headers let through. */
static enum MHD_Result
dispatch_body(struct MHD_Connection *conn, struct req_ctx *ctx)
{
	struct cmf_call *call = ctx->call;

	ctx->call = NULL; /* taken over by the dispatcher */
	ctx->req.body = (const char *)crypto_buf_ptr(ctx->body);
	ctx->req.body_len = crypto_buf_len(ctx->body);
	return reply_or_wait(conn, ctx, cmf_dispatch_run(call));
}

/* A complete request of the probe listener (no body is kept): route it and answer. */
static enum MHD_Result
dispatch_reply(struct MHD_Connection *conn, struct req_ctx *ctx, const char *url)
{
	size_t nroutes;
	const struct cmf_route *routes = cmf_api_routes(&nroutes);

	if (request_headers(conn, ctx, url) != 0)
		return MHD_NO;
	return reply_or_wait(conn, ctx, cmf_dispatch(&ctx->req, &ctx->resp, routes, nroutes, call_done, ctx));
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct req_ctx *ctx = *con_cls;

	(void)cls;
	(void)toe;
	/*
	 * The bearer token is still in libmicrohttpd's connection memory, which it frees unwiped when the
	 * connection closes: wipe it where it lies, before the request's memory is reused or freed.
	 */
	MHD_get_connection_values_n(conn, MHD_HEADER_KIND, header_wipe_one, NULL);
	if (ctx == NULL)
		return;
	cmf_dispatch_abandon(ctx->call); /* the request ended before its body */
	crypto_buf_free(ctx->body);
	cmf_response_clear(&ctx->resp);
	free(ctx->path);
	pthread_mutex_destroy(&ctx->mu);
	free(ctx);
	*con_cls = NULL;
	atomic_fetch_sub(&in_flight, 1);
}

/* Open connections, for the metrics. */
static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context, enum MHD_ConnectionNotificationCode toe)
{
	(void)cls;
	(void)conn;
	(void)socket_context;
	cmf_metrics_gauge_add(CMF_G_OPEN_CONNECTIONS, toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

/*
 * libmicrohttpd's own %-decoding, except that a decoded NUL (%00) becomes 0x7f: a NUL would silently
 * cut a name short ("abcd%00junk" read as "abcd"), while 0x7f is refused by every name and number check.
 */
static size_t
unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	size_t n = MHD_http_unescape(s);

	(void)cls;
	(void)conn;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\0')
			s[i] = 0x7f;
	return n;
}

__attribute__((format(printf, 2, 0))) static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	(void)cls;
	/* Its "port 0" misleads (the address is passed whole); cmf's own error names the address and errno. */
	if (strncmp(fmt, "Failed to bind to port ", 23) == 0)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	cmf_warn("libmicrohttpd: %s", buf);
}

/* Parse "host:port" or "[v6]:port" into a socket address. */
static int
parse_listen(const char *listen, struct sockaddr_storage *ss, int *v6)
{
	char host[256];
	const char *colon, *port;
	struct addrinfo hints = { 0 }, *ai = NULL;
	size_t hl;
	int r;

	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		hl = (size_t)(close - listen - 1);
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, listen + 1, hl);
		port = close + 2;
	} else {
		colon = strrchr(listen, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - listen);
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, listen, hl);
		port = colon + 1;
	}
	host[hl] = '\0';
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	r = getaddrinfo(hl > 0 ? host : NULL, port, &hints, &ai);
	if (r != 0 || ai == NULL) {
		cmf_error("server.listen '%s': %s", listen, gai_strerror(r));
		return -1;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*v6 = ai->ai_family == AF_INET6;
	freeaddrinfo(ai);
	return 0;
}

/*
 * The server.tls.* PEM files as NUL-terminated copies (libmicrohttpd takes them as C strings), kept
 * until the daemon stops. The private key is wiped when freed.
 */
struct tls_pem {
	char *cert, *key, *ca; /* NULL when not configured */
	size_t key_len;
};

static void
tls_pem_free(struct tls_pem *pem)
{
	crypto_freezero(pem->key, pem->key_len);
	free(pem->cert);
	free(pem->ca);
	memset(pem, 0, sizeof(*pem));
}

/* Read the PEM file `path` of setting `name` into a new NUL-terminated string *out (*outlen bytes). */
static int
tls_pem_read(const char *name, const char *path, int is_key, char **out, size_t *outlen)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	int loose = 0, ret = -1;
	char why[512];

	*out = NULL;
	*outlen = 0;
	if (k8s_secret_read_file(path, HTTP_TLS_PEM_MAX, &raw, &len, &loose, why, sizeof(why)) != K8S_OK) {
		cmf_error("%s cannot be read: %s", name, why);
		goto out;
	}
	/* A NUL would silently end the PEM text early: this is a binary (DER?) file, not PEM. */
	if (len == 0 || memchr(raw, '\0', len) != NULL) {
		cmf_error("%s %s is not a PEM file: it is %s", name, path, len == 0 ? "empty" : "binary");
		goto out;
	}
	if (is_key && loose)
		cmf_warn("%s %s is readable by other users: restrict it to the service (mode 0400 or 0440)", name,
			 path);
	if ((*out = malloc(len + 1)) == NULL) {
		cmf_error("%s %s: out of memory", name, path);
		goto out;
	}
	memcpy(*out, raw, len);
	(*out)[len] = '\0';
	*outlen = len;
	ret = 0;
out:
	crypto_freezero(raw, len);
	return ret;
}

/*
 * Check the PEM files with GnuTLS before libmicrohttpd loads them, so that a refusal names the file
 * and the reason (a key that does not match the certificate, an encrypted key, a CA file without a
 * certificate) instead of a bare "daemon failed to start".
 */
static int
tls_pem_check(const struct cmf_config *cfg, const struct tls_pem *pem)
{
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_datum_t cert = { (unsigned char *)pem->cert, (unsigned)strlen(pem->cert) };
	gnutls_datum_t key = { (unsigned char *)pem->key, (unsigned)pem->key_len };
	int r, ret = -1;

	if ((r = gnutls_certificate_allocate_credentials(&cred)) < 0) {
		cmf_error("gnutls_certificate_allocate_credentials: %s", gnutls_strerror(r));
		goto out;
	}
	r = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (r < 0) {
		cmf_error("server.tls.certFile %s and server.tls.keyFile %s are not a usable certificate and "
			  "(unencrypted) private key: %s",
			  cfg->tls_cert_file, cfg->tls_key_file, gnutls_strerror(r));
		goto out;
	}
	if (pem->ca != NULL) {
		gnutls_datum_t ca = { (unsigned char *)pem->ca, (unsigned)strlen(pem->ca) };

		r = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
		if (r <= 0) {
			cmf_error("server.tls.clientCaFile %s holds no usable PEM CA certificate%s%s",
				  cfg->tls_client_ca_file, r < 0 ? ": " : "", r < 0 ? gnutls_strerror(r) : "");
			goto out;
		}
	}
	ret = 0;
out:
	if (cred != NULL)
		gnutls_certificate_free_credentials(cred);
	return ret;
}

/* With server.tls.certFile set, read and check the PEM files into `pem` (left empty without TLS). 0 or -1. */
static int
tls_pem_load(const struct cmf_config *cfg, struct tls_pem *pem)
{
	size_t len;

	memset(pem, 0, sizeof(*pem));
	if (cfg->tls_cert_file == NULL || cfg->tls_cert_file[0] == '\0')
		return 0;
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		cmf_error("server.tls.certFile is set but this libmicrohttpd was built without TLS support");
		return -1;
	}
	if (tls_pem_read("server.tls.certFile", cfg->tls_cert_file, 0, &pem->cert, &len) != 0 ||
	    tls_pem_read("server.tls.keyFile", cfg->tls_key_file, 1, &pem->key, &pem->key_len) != 0 ||
	    (tls_client_required(cfg) &&
	     tls_pem_read("server.tls.clientCaFile", cfg->tls_client_ca_file, 0, &pem->ca, &len) != 0) ||
	    tls_pem_check(cfg, pem) != 0) {
		tls_pem_free(pem);
		return -1;
	}
	return 0;
}

/* The probe listener (server.probeListen), or NULL (logged). */
static struct MHD_Daemon *
probe_start(struct cmf_app *app)
{
	const struct cmf_config *cfg = app->cfg;
	struct sockaddr_storage ss;
	struct MHD_Daemon *d;
	int v6 = 0;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (parse_listen(cfg->probe_listen, &ss, &v6) != 0) {
		cmf_error("server.probeListen '%s' is not a usable host:port", cfg->probe_listen);
		return NULL;
	}
	if (v6)
		flags |= MHD_USE_IPv6;
	/*
	 * A few probes at a time (the kubelet's, from the node's address): a small connection cap, a per-address
	 * cap so that no other client in the pod network can hold every slot, and an idle timeout of the
	 * probes' own timeoutSeconds (2 s), so a slow client cannot either.
	 */
	d = MHD_start_daemon(flags, 0, NULL, NULL, on_probe, app, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 32u,
			     MHD_OPTION_PER_IP_CONNECTION_LIMIT, 8u, MHD_OPTION_CONNECTION_TIMEOUT, 2u,
			     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
			     MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
			     MHD_OPTION_END);
	if (d == NULL)
		cmf_error("cannot listen on server.probeListen %s: %s", cfg->probe_listen, strerror(errno));
	else
		cmf_info("probes (/healthz, /readyz) also on %s, a thread per connection", cfg->probe_listen);
	return d;
}

int
cmf_http_serve(struct cmf_app *app)
{
	const struct cmf_config *cfg = app->cfg;
	struct sockaddr_storage ss;
	struct MHD_Daemon *d, *probes = NULL;
	struct timespec deadline, now;
	struct tls_pem pem;
	struct MHD_OptionItem tls_opts[5];
	size_t ntls = 0;
	sigset_t set;
	int v6 = 0, sig = 0;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG |
			 MHD_ALLOW_SUSPEND_RESUME;

	if (parse_listen(cfg->listen, &ss, &v6) != 0) {
		cmf_error("server.listen '%s' is not a usable host:port", cfg->listen);
		return -1;
	}
	if (v6)
		flags |= MHD_USE_IPv6;
	if (tls_pem_load(cfg, &pem) != 0)
		return -1;
	cmf_watch_start(app); /* without its thread, watch requests are answered at once (logged) */
	if (pem.cert != NULL) {
		flags |= MHD_USE_TLS;
		tls_opts[ntls++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, pem.cert };
		tls_opts[ntls++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, pem.key };
		tls_opts[ntls++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0, HTTP_TLS_PRIORITIES };
		/* Makes libmicrohttpd ask for a client certificate; tls_client_verify checks it. */
		if (pem.ca != NULL)
			tls_opts[ntls++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_TRUST, 0, pem.ca };
	}
	tls_opts[ntls] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	/* The logger goes first: libmicrohttpd reports errors in later options through it. */
	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, app, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
			     (unsigned)cfg->threads, MHD_OPTION_CONNECTION_TIMEOUT,
			     (unsigned)cfg->connection_timeout_seconds, MHD_OPTION_CONNECTION_LIMIT,
			     (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
			     (size_t)cfg->max_header_bytes, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
			     (unsigned)cfg->max_connections_per_client, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
			     MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
			     MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
	if (d == NULL) {
		if (pem.cert != NULL)
			cmf_error("cannot serve HTTPS on %s with server.tls.certFile %s and server.tls.keyFile %s%s%s "
				  "(see the libmicrohttpd message above): %s",
				  cfg->listen, cfg->tls_cert_file, cfg->tls_key_file,
				  pem.ca != NULL ? " and server.tls.clientCaFile " : "",
				  pem.ca != NULL ? cfg->tls_client_ca_file : "", strerror(errno));
		else
			cmf_error("cannot listen on %s: %s", cfg->listen, strerror(errno));
		cmf_watch_stop();
		tls_pem_free(&pem);
		return -1;
	}
	/* libmicrohttpd loaded the key into GnuTLS at start and never reads the PEM again: wipe it now. */
	if (pem.key != NULL)
		OPENSSL_cleanse(pem.key, pem.key_len);
	cmf_info("listening on %s with %d worker threads", cfg->listen, cfg->threads);
	if (cfg->probe_listen != NULL && cfg->probe_listen[0] != '\0') {
		probes = probe_start(app);
		if (probes == NULL) {
			cmf_watch_stop();
			MHD_stop_daemon(d);
			tls_pem_free(&pem);
			return -1;
		}
	}
	if (pem.cert != NULL)
		cmf_info("TLS enabled (TLS 1.2 and 1.3; certificate %s)%s%s", cfg->tls_cert_file,
			 pem.ca != NULL ? "; client certificates required, signed by " : "; no client certificates",
			 pem.ca != NULL ? cfg->tls_client_ca_file : "");

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigwait(&set, &sig);
	cmf_info("received %s: no new connections; draining %d in-flight request(s) for up to %d s",
		 sig == SIGTERM ? "SIGTERM" : "SIGINT", atomic_load(&in_flight), cfg->drain_seconds);
	atomic_store(&draining, true);
	{
		int fd = MHD_quiesce_daemon(d);

		if (fd >= 0)
			close(fd);
	}
	/* Held watch requests have nothing left to wait for: each gets its 304 now, not at the drain's end. */
	cmf_watch_stop();
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += cfg->drain_seconds;
	for (;;) {
		struct timespec tick = { 0, 20 * 1000000L };

		if (atomic_load(&in_flight) == 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > deadline.tv_sec ||
		    (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
			cmf_warn("drain timeout: %d request(s) still in flight are cut off", atomic_load(&in_flight));
			break;
		}
		nanosleep(&tick, NULL);
	}
	/*
	 * Every queued audit event is stored before the process ends, and every reply still waiting for its
	 * event is resumed (libmicrohttpd aborts in MHD_stop_daemon while a connection is suspended).
	 */
	clock_gettime(CLOCK_MONOTONIC, &now);
	cmf_audit_stop(now.tv_sec < deadline.tv_sec ? (int)(deadline.tv_sec - now.tv_sec) * 1000 : 1000);
	/* Replies just resumed are sent by libmicrohttpd's threads: let them go out before it stops. */
	for (int i = 0; i < 50 && atomic_load(&in_flight) > 0; i++) {
		struct timespec tick = { 0, 10 * 1000000L };

		nanosleep(&tick, NULL);
	}
	MHD_stop_daemon(d);
	if (probes != NULL)
		MHD_stop_daemon(probes);
	tls_pem_free(&pem); /* libmicrohttpd may use the PEM strings until it stops */
	cmf_info("stopped");
	return 0;
}
