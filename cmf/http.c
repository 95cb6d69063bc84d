/* cmf HTTP: libmicrohttpd with a worker-thread pool; bodies capped, one access-log line per request. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmf/http.h"
#include "cmf/log.h"
#include "cmf/reply.h"
#include "cmf/router.h"

/*
 * Concurrent connections: a cap keeps file descriptors and per-connection memory bounded under a
 * connection flood; 1000 is far above what one replica of an admin API serves.
 */
#define HTTP_CONNECTION_LIMIT 1000

/* Per-request state, from the first callback to MHD's completion notice. */
struct req_ctx {
	struct cmf_request req;
	char *body;
	size_t len, cap;
	size_t limit;
	int too_large;
	int responded;
	struct timespec start;
};

static atomic_int in_flight;
static atomic_bool draining;

const char *
cmf_request_query(const struct cmf_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *
cmf_request_header(const struct cmf_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

void
cmf_response_header(struct cmf_response *resp, const char *name, const char *value)
{
	if (resp->nheaders >= CMF_HTTP_MAX_HEADERS) {
		cmf_error("%s: too many headers, dropping %s", __func__, name);
		return;
	}
	resp->headers[resp->nheaders].name = name;
	resp->headers[resp->nheaders].value = strdup(value);
	if (resp->headers[resp->nheaders].value != NULL)
		resp->nheaders++;
}

/* Response bodies may carry secret values (the resolution endpoint): wipe before freeing. */
static void
wipe_free_body(void *p)
{
	if (p != NULL) {
		OPENSSL_cleanse(p, strlen(p));
		free(p);
	}
}

static void
response_clear(struct cmf_response *resp)
{
	wipe_free_body(resp->body);
	resp->body = NULL;
	for (size_t i = 0; i < resp->nheaders; i++)
		free(resp->headers[i].value);
	resp->nheaders = 0;
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

static void
request_id(char out[33])
{
	uint8_t raw[16];

	if (crypto_random(raw, sizeof(raw)) != CRYPTO_OK)
		memset(raw, 0, sizeof(raw));
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
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
		response_clear(resp);
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
	response_clear(resp);
	ctx->responded = 1;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (double)(now.tv_sec - ctx->start.tv_sec) * 1e3 + (double)(now.tv_nsec - ctx->start.tv_nsec) / 1e6;
	cmf_info("%s %s %u %.1fms id=%s", ctx->req.method, ctx->req.path, resp->status, ms, ctx->req.request_id);
	return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method, const char *version,
	   const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct cmf_app *app = cls;
	struct req_ctx *ctx = *con_cls;
	struct cmf_response resp = { 0 };
	char *path = NULL;
	enum MHD_Result ret;

	(void)version;
	if (ctx == NULL) {
		const char *cl;

		ctx = calloc(1, sizeof(*ctx));
		if (ctx == NULL)
			return MHD_NO;
		clock_gettime(CLOCK_MONOTONIC, &ctx->start);
		atomic_fetch_add(&in_flight, 1);
		*con_cls = ctx;
		ctx->limit = (size_t)app->cfg->max_body_bytes;
		ctx->req.app = app;
		ctx->req.method = method;
		ctx->req.path = url;
		ctx->req.conn = conn;
		request_id(ctx->req.request_id);
		client_address(conn, ctx->req.client_addr, sizeof(ctx->req.client_addr));
		/* A declared length over the limit is refused before a byte of the body is read. */
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > ctx->limit) {
			cmf_reply_error(&resp, MHD_HTTP_CONTENT_TOO_LARGE, "request body is larger than %zu bytes",
					ctx->limit);
			return send_response(conn, ctx, &resp);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (ctx->too_large || ctx->responded)
			return MHD_YES;
		if (n > ctx->limit - ctx->len) {
			/* Chunked bodies have no declared length: stop keeping bytes once over the limit. */
			ctx->too_large = 1;
			if (ctx->body != NULL)
				OPENSSL_cleanse(ctx->body, ctx->len);
			free(ctx->body);
			ctx->body = NULL;
			ctx->len = ctx->cap = 0;
			return MHD_YES;
		}
		if (ctx->len + n > ctx->cap) {
			size_t cap = ctx->cap ? ctx->cap : 4096;
			char *nb;

			while (cap < ctx->len + n)
				cap *= 2;
			if (cap > ctx->limit)
				cap = ctx->limit;
			nb = malloc(cap);
			if (nb == NULL)
				return MHD_NO;
			if (ctx->body != NULL) {
				memcpy(nb, ctx->body, ctx->len);
				OPENSSL_cleanse(ctx->body, ctx->len);
				free(ctx->body);
			}
			ctx->body = nb;
			ctx->cap = cap;
		}
		memcpy(ctx->body + ctx->len, upload_data, n);
		ctx->len += n;
		return MHD_YES;
	}
	if (ctx->responded)
		return MHD_YES;
	if (ctx->too_large) {
		cmf_reply_error(&resp, MHD_HTTP_CONTENT_TOO_LARGE, "request body is larger than %zu bytes", ctx->limit);
		return send_response(conn, ctx, &resp);
	}
	path = strdup(url);
	if (path == NULL)
		return MHD_NO;
	cmf_router_split(&ctx->req, path);
	ctx->req.content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	ctx->req.body = ctx->body;
	ctx->req.body_len = ctx->len;
	cmf_router_dispatch(&ctx->req, &resp);
	ret = send_response(conn, ctx, &resp);
	free(path);
	return ret;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct req_ctx *ctx = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (ctx == NULL)
		return;
	if (ctx->body != NULL) {
		OPENSSL_cleanse(ctx->body, ctx->len);
		free(ctx->body);
	}
	free(ctx);
	*con_cls = NULL;
	atomic_fetch_sub(&in_flight, 1);
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

int
cmf_http_serve(struct cmf_app *app)
{
	const struct cmf_config *cfg = app->cfg;
	struct sockaddr_storage ss;
	struct MHD_Daemon *d;
	struct timespec deadline, now;
	sigset_t set;
	int v6 = 0, sig = 0;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;

	if (parse_listen(cfg->listen, &ss, &v6) != 0) {
		cmf_error("server.listen '%s' is not a usable host:port", cfg->listen);
		return -1;
	}
	if (v6)
		flags |= MHD_USE_IPv6;
	/* The logger goes first: libmicrohttpd reports errors in later options through it. */
	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, app, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
			     (unsigned)cfg->threads, MHD_OPTION_CONNECTION_TIMEOUT,
			     (unsigned)cfg->connection_timeout_seconds, MHD_OPTION_CONNECTION_LIMIT,
			     (unsigned)HTTP_CONNECTION_LIMIT, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
			     MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
	if (d == NULL) {
		cmf_error("cannot listen on %s: %s", cfg->listen, strerror(errno));
		return -1;
	}
	cmf_info("listening on %s with %d worker threads", cfg->listen, cfg->threads);

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
	MHD_stop_daemon(d);
	cmf_info("stopped");
	return 0;
}
