/*
 * cmf request: the request/response vocabulary of every layer above the HTTP daemon (router, dispatcher,
 * handlers, replies). Nothing here knows libmicrohttpd: the daemon installs how headers and query
 * parameters are looked up (struct cmf_request_io), so the layers below it can be tested without it.
 */
#ifndef CMF_HTTP_REQUEST_H
#define CMF_HTTP_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "cmf/app.h"

/* Path segments beyond this are 404 before routing: no route is deeper than 8. */
#define CMF_HTTP_MAX_SEGMENTS 16

/* Headers a handler may add; a response carries few. */
#define CMF_HTTP_MAX_HEADERS 6

/* Who is asking, once cmf/http/auth.c has authenticated the request (before any handler runs). */
enum cmf_role { CMF_ROLE_NONE = 0, CMF_ROLE_ENV_READER = 1, CMF_ROLE_ADMIN = 2, CMF_ROLE_METRICS_READER = 3 };

struct cmf_principal {
	/*
	 * "admin" (bootstrap token), "token:<name>/<id>", "cert:<mapped name>" (a client certificate, with
	 * auth.mtls.principal), "anonymous" (auth disabled)
	 */
	char name[300];
	enum cmf_role role; /* CMF_ROLE_NONE for an authenticated principal with no role binding */
	json_t *environments; /* environment-reader scope: array of names (owned; NULL otherwise) */
	/* Authenticated from the tokens kept while PostgreSQL is away (cmf_cache_token): good for a 304 only. */
	bool stale;
	/* When the credential expires (Unix time, seconds); 0: never. A held watch request ends then (401). */
	double expires_at;
};

/* Forget a principal: its scope released, every field zeroed. */
void cmf_principal_clear(struct cmf_principal *p);

/* Whether `p` may read what environment `env` needs (admin, or an environment-reader scoped to it). */
bool cmf_principal_env_allowed(const struct cmf_principal *p, const char *env);

/* Which values of a request a lookup reads. */
enum cmf_request_value { CMF_REQUEST_HEADER, CMF_REQUEST_QUERY };

/*
 * How the transport answers lookups on its connection (`conn`, opaque here). `get` returns the first
 * value named `name` (headers case-insensitively), or NULL; the pointer stays valid for the request.
 * `each` calls `fn` with every header line named `name`, in order, until `fn` returns non-zero.
 */
struct cmf_request_io {
	const char *(*get)(void *conn, enum cmf_request_value kind, const char *name);
	void (*each)(void *conn, const char *name, int (*fn)(void *cls, const char *value), void *cls);
};

/* One request as handlers see it. Everything is borrowed for the duration of the request. */
struct cmf_request {
	struct cmf_app *app;
	const char *method;
	const char *path;                        /* decoded path, without the query string */
	const char *segs[CMF_HTTP_MAX_SEGMENTS]; /* path split on '/', empty segments kept */
	size_t nsegs;
	const char *content_type; /* NULL if absent */
	const char *body;         /* NOT NUL-terminated; may be NULL when body_len is 0 */
	size_t body_len;
	char request_id[33];
	char client_addr[64];  /* peer IP address (text), for the audit trail */
	char client_cert[256]; /* with mutual TLS: the verified client certificate's subject DN; else "" */
	bool client_cert_verified; /* client_cert was verified against the client CA (it may name the principal) */
	struct cmf_principal principal; /* set by the dispatcher before the handler runs */
	bool audited;                   /* this request's audit event is recorded */
	const struct cmf_request_io *io; /* installed by the transport; NULL: no headers, no query */
	void *conn;                      /* the transport's connection, passed to io */
};

/*
 * Split a decoded path in place (NULs written into `path`, which must outlive `req`) into req->segs;
 * empty segments are kept ("/a//b" has an empty one) and a path deeper than CMF_HTTP_MAX_SEGMENTS
 * gets nsegs = CMF_HTTP_MAX_SEGMENTS + 1, which no route matches.
 */
void cmf_request_split(struct cmf_request *req, char *path);

/* A query parameter's value (decoded), or NULL if absent. */
const char *cmf_request_query(const struct cmf_request *req, const char *name);

/* A request header's value (the first, if repeated), or NULL if absent. */
const char *cmf_request_header(const struct cmf_request *req, const char *name);

/*
 * Every line of a list-valued header (If-None-Match, ...) joined with ",", into `buf` (size len);
 * NULL when absent or when the lines do not fit (then treat it as absent: the caller loses nothing
 * but an optimisation).
 */
const char *cmf_request_header_list(const struct cmf_request *req, const char *name, char *buf, size_t len);

/* How many times a header (case-insensitive name) appears in the request. */
int cmf_request_header_count(const struct cmf_request *req, const char *name);

/* What a handler produces. The body is owned and wiped when freed (it may carry secret values). */
struct cmf_response {
	unsigned status;
	char *body;        /* NUL-terminated text, malloc'd; NULL for no body (204) */
	const char *content_type;
	struct {
		const char *name;
		char *value; /* malloc'd */
	} headers[CMF_HTTP_MAX_HEADERS];
	size_t nheaders;
};

/* Forget a response built so far: headers freed, body wiped and freed (it may hold secret values). */
void cmf_response_clear(struct cmf_response *resp);

/* Add a header (value copied). Silently ignored beyond CMF_HTTP_MAX_HEADERS (a programming error, logged). */
void cmf_response_header(struct cmf_response *resp, const char *name, const char *value);

#endif
