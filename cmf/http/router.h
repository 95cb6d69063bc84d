/*
 * cmf router: matching a request against a route table, and deciding from an authentication outcome
 * whether the route's permission lets it through. Pure: no I/O, no handler runs here (the dispatcher,
 * cmf/http/dispatch.h, does that), so the matcher is fuzzed on its own.
 */
#ifndef CMF_HTTP_ROUTER_H
#define CMF_HTTP_ROUTER_H

#include <stdbool.h>
#include <stdio.h>

#include "cmf/http/request.h"

/* No pattern is longer than 8 segments nor captures more than 3. */
#define CMF_ROUTE_MAX_SEGS 8
#define CMF_ROUTE_MAX_ARGS 3

/* Room for an Allow header: every method the table uses, comma-separated. */
#define CMF_ROUTE_ALLOW_MAX 64

/* Room for a route's pattern: 8 segments of the table's names (the longest is about 50 characters). */
#define CMF_ROUTE_PATTERN_MAX 160

/* Who may call a route; decided before any handler touches the database. */
enum cmf_perm {
	CMF_PERM_PUBLIC,   /* probes: no token needed */
	CMF_PERM_ADMIN,    /* the admin role */
	CMF_PERM_ENV_READ, /* admin, or an environment-reader scoped to the environment in args[0] */
	CMF_PERM_METRICS,  /* admin, or a metrics-reader (the one route a metrics-reader may call) */
};

struct cmf_call; /* cmf/http/dispatch.h */

/* A handler serves one call; it replies through call->resp (see cmf/http/dispatch.h). */
typedef void (*cmf_handler)(struct cmf_call *call);

struct cmf_route {
	const char *method;
	const char *segs[CMF_ROUTE_MAX_SEGS + 1]; /* NULL-terminated; "*" captures one non-empty segment */
	enum cmf_perm perm;
	/*
	 * The audit action recorded for every outcome: every write, and every read that decrypts. NULL: not
	 * audited (masked metadata only, probes).
	 */
	const char *audit_action;
	cmf_handler handler;
	const void *target; /* what the handler serves (a resource kind), or NULL */
	int op;             /* which of the target's operations */
};

enum cmf_route_match { CMF_ROUTE_FOUND = 0, CMF_ROUTE_NO_PATH = -1, CMF_ROUTE_NO_METHOD = -2 };

/*
 * Find the route of `req` (method and req->segs) in `routes` (n entries). CMF_ROUTE_FOUND with *route
 * and args[0..] (the "*" segments, NULL-terminated; args has CMF_ROUTE_MAX_ARGS + 1 entries);
 * CMF_ROUTE_NO_METHOD when only other methods serve the path, with `allow` (size CMF_ROUTE_ALLOW_MAX)
 * listing them; CMF_ROUTE_NO_PATH when nothing does.
 */
int cmf_router_match(const struct cmf_route *routes, size_t n, const struct cmf_request *req,
		     const struct cmf_route **route, const char **args, char *allow);

/*
 * Whether a caller authenticated with outcome `auth_result` (a CMF_AUTH_* code, cmf/http/auth.h) as
 * `p` may call `route` with `args`. 0 when allowed; otherwise the refusal: *status (400, 401, 403 or
 * 503), *message for the client, and *action the audit action of the refusal ("authenticate",
 * "authorize"; "authenticate.unmapped-certificate" and "authorize.no-role-binding" say why a
 * certificate principal was refused; NULL: not audited, as for 503 when the database could not be asked).
 */
int cmf_router_authorize(const struct cmf_route *route, int auth_result, bool auth_enabled,
			 const struct cmf_principal *p, const char *const *args, unsigned *status, const char **message,
			 const char **action);

/*
 * Write `route`'s pattern into `buf` (size len > 0; cut to fit, always NUL-terminated): "/" and each
 * segment of the table, a captured one as "*" ("/cmf/api/v1/secrets/" then "*"); "/" for no segment.
 * The metrics' route label (cmf/metrics.h) and `cmf routes` use it: it holds nothing of a request.
 * Returns the pattern's full length (as snprintf does).
 */
size_t cmf_router_pattern(const struct cmf_route *route, char *buf, size_t len);

/* Print `routes`, one "METHOD /pattern permission [audit=action]" line each (`cmf routes`). */
void cmf_router_print(FILE *f, const struct cmf_route *routes, size_t n);

/* Print one route's line as cmf_router_print does, with " query=<query>" added when `query` is not NULL. */
void cmf_router_print_line(FILE *f, const struct cmf_route *route, const char *query);

#endif
