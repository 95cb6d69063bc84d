// links: cmf/http/router.c cmf/http/request.c cmf/http/reply.c cmf/metrics.c cmf/text.c cmf/log.c crypto/log.c crypto/util.c
/*
 * Fuzz the router on its own (no daemon, no database, no handler): any path, method and authentication
 * outcome against a table shaped like cmf's (probes, collections, nested items, an environment-reader
 * route). A match captures only non-empty segments; a miss is 404 or 405 with an Allow header that
 * omits the method; a refusal is 400/401/403/503 exactly when the outcome and role call for it; every
 * error body built from the path is CMF's shape and valid JSON.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/http/auth.h"
#include "cmf/http/reply.h"
#include "cmf/http/router.h"

#define API "cmf", "api", "v1"

static const struct cmf_route routes[] = {
	{ "GET", { "healthz", NULL }, CMF_PERM_PUBLIC, NULL, NULL, NULL, 0 },
	{ "GET", { API, "secrets", NULL }, CMF_PERM_ADMIN, "secret.list", NULL, NULL, 0 },
	{ "POST", { API, "secrets", NULL }, CMF_PERM_ADMIN, "secret.create", NULL, NULL, 0 },
	{ "GET", { API, "secrets", "*", NULL }, CMF_PERM_ADMIN, "secret.read", NULL, NULL, 0 },
	{ "PUT", { API, "secrets", "*", NULL }, CMF_PERM_ADMIN, "secret.update", NULL, NULL, 0 },
	{ "DELETE", { API, "secrets", "*", NULL }, CMF_PERM_ADMIN, "secret.delete", NULL, NULL, 0 },
	{ "GET", { API, "environments", "*", "secret-mappings", "*", NULL }, CMF_PERM_ADMIN, NULL, NULL, NULL, 0 },
	{ "GET", { API, "environments", "*", "client-configs", "*", "*", NULL }, CMF_PERM_ENV_READ,
	  "client-config.read", NULL, NULL, 0 },
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The route's permission against the outcome: what the router must decide. */
static unsigned
expected_status(const struct cmf_route *rt, int auth, const struct cmf_principal *p, const char *env)
{
	if (rt->perm == CMF_PERM_PUBLIC)
		return 0;
	if (auth == CMF_AUTH_UNAVAILABLE)
		return 503;
	if (auth == CMF_AUTH_AMBIGUOUS)
		return 400;
	if (auth != CMF_AUTH_OK)
		return 401;
	if (rt->perm == CMF_PERM_ADMIN)
		return p->role == CMF_ROLE_ADMIN ? 0 : 403;
	return p->role == CMF_ROLE_ADMIN || strcmp(env, "prod") == 0 ? 0 : 403;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS" };
	const char *args[CMF_ROUTE_MAX_ARGS + 1];
	const struct cmf_route *rt;
	char allow[CMF_ROUTE_ALLOW_MAX];
	struct cmf_principal p;
	struct cmf_request req;
	struct cmf_response resp;
	const char *msg, *action;
	unsigned status;
	char *path;
	int auth, r;

	/* Paths longer than MHD's default 32 KiB connection memory never reach the router. */
	if (size == 0 || size > 32768)
		return 0;
	path = malloc(size);
	if (path == NULL)
		return 0;
	memcpy(path, data + 1, size - 1);
	path[size - 1] = '\0';
	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	memset(&p, 0, sizeof(p));
	req.method = methods[(data[0] & 7) % (sizeof(methods) / sizeof(methods[0]))];
	/* Bits 3-5: the authentication outcome (0 = OK, else a CMF_AUTH_* failure); bit 6: the role. */
	auth = -(int)((data[0] >> 3) & 7) % 7;
	p.role = (data[0] & 0x40) ? CMF_ROLE_ADMIN : CMF_ROLE_ENV_READER;
	p.environments = json_pack("[s]", "prod");
	req.path = path[0] != '\0' ? strdup(path) : strdup("/");
	cmf_request_split(&req, path);
	r = cmf_router_match(routes, NROUTES, &req, &rt, args, allow);
	if (r == CMF_ROUTE_FOUND) {
		size_t nargs = 0;

		if (rt < routes || rt >= routes + NROUTES || strcmp(rt->method, req.method) != 0)
			abort();
		for (const char *const *s = rt->segs; *s != NULL; s++)
			nargs += strcmp(*s, "*") == 0;
		for (size_t i = 0; i < nargs; i++)
			if (args[i] == NULL || args[i][0] == '\0')
				abort(); /* "*" never captures an empty segment */
		if (args[nargs] != NULL)
			abort();
		r = cmf_router_authorize(rt, auth, true, &p, args, &status, &msg, &action);
		if ((r == 0) != (expected_status(rt, auth, &p, args[0]) == 0))
			abort();
		if (r != 0 && (status != expected_status(rt, auth, &p, args[0]) || msg == NULL || msg[0] == '\0'))
			abort();
		/* Every refusal is audited, except when the database could not even be asked. */
		if (r != 0 && (action == NULL) != (status == 503))
			abort();
		/* With authentication off, decrypted secrets are never served, even to the anonymous admin. */
		if (rt->perm == CMF_PERM_ENV_READ && auth == CMF_AUTH_OK &&
		    cmf_router_authorize(rt, auth, false, &p, args, &status, &msg, &action) == 0)
			abort();
	} else {
		json_error_t err;
		json_t *body;

		if (r == CMF_ROUTE_NO_METHOD) {
			if (allow[0] == '\0' || strstr(allow, req.method) != NULL)
				abort();
			cmf_reply_error(&resp, 405, "method %s is not allowed on %s (allowed: %s)", req.method, req.path,
					allow);
		} else if (r == CMF_ROUTE_NO_PATH) {
			cmf_reply_error(&resp, 404, "no such resource: %s", req.path);
		} else {
			abort();
		}
		/* Every error body is CMF's shape and valid JSON, whatever bytes the path held. */
		body = resp.body != NULL ? json_loads(resp.body, 0, &err) : NULL;
		if (body == NULL || json_array_size(json_object_get(body, "errors")) != 1)
			abort();
		json_decref(body);
	}
	cmf_response_clear(&resp);
	cmf_principal_clear(&p);
	free((char *)req.path);
	free(path);
	return 0;
}
