/* cmf router: the static route table; a path matches segment by segment, "*" captures one segment. */
#include <string.h>

#include "cmf/log.h"
#include "cmf/reply.h"
#include "cmf/router.h"

/* No pattern is longer than 8 segments nor captures more than 3. */
#define ROUTE_MAX_SEGS 8
#define ROUTE_MAX_ARGS 3

struct route {
	const char *method;
	const char *segs[ROUTE_MAX_SEGS + 1]; /* NULL-terminated */
	cmf_handler handler;
};

#define API "cmf", "api", "v1"

static const struct route routes[] = {
	{ "GET", { "healthz", NULL }, cmf_api_healthz },
	{ "GET", { "readyz", NULL }, cmf_api_readyz },
	{ "GET", { API, "secrets", NULL }, cmf_api_secrets_list },
	{ "POST", { API, "secrets", NULL }, cmf_api_secrets_create },
	{ "GET", { API, "secrets", "*", NULL }, cmf_api_secrets_get },
	{ "PUT", { API, "secrets", "*", NULL }, cmf_api_secrets_update },
	{ "DELETE", { API, "secrets", "*", NULL }, cmf_api_secrets_delete },
};

/* 1 when `req`'s path matches `rt`'s pattern, filling args with the "*" segments. */
static int
path_matches(const struct route *rt, const struct cmf_request *req, const char **args)
{
	size_t i, nargs = 0;

	for (i = 0; rt->segs[i] != NULL; i++) {
		if (i >= req->nsegs)
			return 0;
		if (strcmp(rt->segs[i], "*") == 0) {
			if (req->segs[i][0] == '\0' || nargs >= ROUTE_MAX_ARGS)
				return 0;
			args[nargs++] = req->segs[i];
		} else if (strcmp(rt->segs[i], req->segs[i]) != 0) {
			return 0;
		}
	}
	return i == req->nsegs;
}

void
cmf_router_split(struct cmf_request *req, char *path)
{
	char *p = path;

	req->nsegs = 0;
	if (*p == '/')
		p++;
	while (p != NULL && req->nsegs < CMF_HTTP_MAX_SEGMENTS) {
		char *slash = strchr(p, '/');

		if (slash != NULL)
			*slash = '\0';
		req->segs[req->nsegs++] = p;
		p = slash != NULL ? slash + 1 : NULL;
	}
	if (p != NULL)
		req->nsegs = CMF_HTTP_MAX_SEGMENTS + 1; /* too deep: no route matches */
}

void
cmf_router_dispatch(struct cmf_request *req, struct cmf_response *resp)
{
	const char *args[ROUTE_MAX_ARGS + 1] = { NULL };
	char allow[64] = "";
	int path_known = 0;

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (!path_matches(&routes[i], req, args))
			continue;
		if (strcmp(routes[i].method, req->method) == 0) {
			routes[i].handler(req, resp, args);
			return;
		}
		path_known = 1;
		if (strstr(allow, routes[i].method) == NULL) {
			if (allow[0] != '\0')
				strncat(allow, ", ", sizeof(allow) - strlen(allow) - 1);
			strncat(allow, routes[i].method, sizeof(allow) - strlen(allow) - 1);
		}
	}
	if (path_known) {
		cmf_response_header(resp, "Allow", allow);
		cmf_reply_error(resp, 405, "method %s is not allowed on %s (allowed: %s)", req->method, req->path, allow);
		return;
	}
	cmf_reply_error(resp, 404, "no such resource: %s", req->path);
}
