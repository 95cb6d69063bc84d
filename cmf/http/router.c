/* cmf router: the static route table; a path matches segment by segment, "*" captures one segment. */
#include <string.h>

#include "cmf/http/audit.h"
#include "cmf/http/auth.h"
#include "cmf/log.h"
#include "cmf/http/reply.h"
#include "cmf/http/router.h"

/* No pattern is longer than 8 segments nor captures more than 3. */
#define ROUTE_MAX_SEGS 8
#define ROUTE_MAX_ARGS 3

/*
 * Who may call a route. Checked by the router before the handler runs, so no handler touches the
 * database for a caller it would refuse.
 */
enum route_perm {
	PERM_PUBLIC,   /* probes: no token needed */
	PERM_ADMIN,    /* the admin role */
	PERM_ENV_READ, /* admin, or an environment-reader scoped to the environment in args[0] */
};

struct route {
	const char *method;
	const char *segs[ROUTE_MAX_SEGS + 1]; /* NULL-terminated */
	cmf_handler handler;
	enum route_perm perm;
	/*
	 * The audit action recorded for every outcome: every write, and every read that decrypts (secret
	 * reads decrypt spec.data to list its keys). NULL: not audited (masked metadata only, probes).
	 */
	const char *audit_action;
};

#define API "cmf", "api", "v1"

static const struct route routes[] = {
	{ "GET", { "healthz", NULL }, cmf_api_healthz, PERM_PUBLIC, NULL },
	{ "GET", { "readyz", NULL }, cmf_api_readyz, PERM_PUBLIC, NULL },
	{ "GET", { API, "secrets", NULL }, cmf_api_secrets_list, PERM_ADMIN, "secret.list" },
	{ "POST", { API, "secrets", NULL }, cmf_api_secrets_create, PERM_ADMIN, "secret.create" },
	{ "GET", { API, "secrets", "*", NULL }, cmf_api_secrets_get, PERM_ADMIN, "secret.read" },
	{ "PUT", { API, "secrets", "*", NULL }, cmf_api_secrets_update, PERM_ADMIN, "secret.update" },
	{ "DELETE", { API, "secrets", "*", NULL }, cmf_api_secrets_delete, PERM_ADMIN, "secret.delete" },
	{ "GET", { API, "tokens", NULL }, cmf_api_tokens_list, PERM_ADMIN, NULL },
	{ "POST", { API, "tokens", NULL }, cmf_api_tokens_create, PERM_ADMIN, "token.create" },
	{ "GET", { API, "tokens", "*", NULL }, cmf_api_tokens_get, PERM_ADMIN, NULL },
	{ "DELETE", { API, "tokens", "*", NULL }, cmf_api_tokens_revoke, PERM_ADMIN, "token.revoke" },
	{ "GET", { API, "audit-events", NULL }, cmf_api_audit_list, PERM_ADMIN, NULL },
	{ "GET", { API, "environments", NULL }, cmf_api_environments_list, PERM_ADMIN, NULL },
	/* Create or update (CMF): recorded as environment.update when it existed. */
	{ "POST", { API, "environments", NULL }, cmf_api_environments_put, PERM_ADMIN, "environment.create" },
	{ "GET", { API, "environments", "*", NULL }, cmf_api_environments_get, PERM_ADMIN, NULL },
	{ "DELETE", { API, "environments", "*", NULL }, cmf_api_environments_delete, PERM_ADMIN, "environment.delete" },
	{ "GET", { API, "environments", "*", "secret-mappings", NULL }, cmf_api_secret_mappings_list, PERM_ADMIN, NULL },
	{ "POST", { API, "environments", "*", "secret-mappings", NULL }, cmf_api_secret_mappings_create, PERM_ADMIN,
	  "secret-mapping.create" },
	{ "GET", { API, "environments", "*", "secret-mappings", "*", NULL }, cmf_api_secret_mappings_get, PERM_ADMIN,
	  NULL },
	{ "PUT", { API, "environments", "*", "secret-mappings", "*", NULL }, cmf_api_secret_mappings_update, PERM_ADMIN,
	  "secret-mapping.update" },
	{ "DELETE", { API, "environments", "*", "secret-mappings", "*", NULL }, cmf_api_secret_mappings_delete,
	  PERM_ADMIN, "secret-mapping.delete" },
	{ "GET", { API, "csfle-configs", NULL }, cmf_api_csfle_list, PERM_ADMIN, NULL },
	{ "POST", { API, "csfle-configs", NULL }, cmf_api_csfle_create, PERM_ADMIN, "csfle-config.create" },
	{ "GET", { API, "csfle-configs", "*", NULL }, cmf_api_csfle_get, PERM_ADMIN, NULL },
	{ "PUT", { API, "csfle-configs", "*", NULL }, cmf_api_csfle_update, PERM_ADMIN, "csfle-config.update" },
	{ "DELETE", { API, "csfle-configs", "*", NULL }, cmf_api_csfle_delete, PERM_ADMIN, "csfle-config.delete" },
	{ "GET", { API, "csfle-configs", "*", "ruleset", NULL }, cmf_api_csfle_ruleset, PERM_ADMIN, NULL },
	{ "GET", { API, "catalogs", "kafka", NULL }, cmf_api_catalogs_list, PERM_ADMIN, NULL },
	{ "POST", { API, "catalogs", "kafka", NULL }, cmf_api_catalogs_create, PERM_ADMIN, "catalog.create" },
	{ "GET", { API, "catalogs", "kafka", "*", NULL }, cmf_api_catalogs_get, PERM_ADMIN, NULL },
	{ "PUT", { API, "catalogs", "kafka", "*", NULL }, cmf_api_catalogs_update, PERM_ADMIN, "catalog.update" },
	{ "DELETE", { API, "catalogs", "kafka", "*", NULL }, cmf_api_catalogs_delete, PERM_ADMIN, "catalog.delete" },
	{ "GET", { API, "catalogs", "kafka", "*", "databases", NULL }, cmf_api_databases_list, PERM_ADMIN, NULL },
	{ "POST", { API, "catalogs", "kafka", "*", "databases", NULL }, cmf_api_databases_create, PERM_ADMIN,
	  "database.create" },
	{ "GET", { API, "catalogs", "kafka", "*", "databases", "*", NULL }, cmf_api_databases_get, PERM_ADMIN, NULL },
	{ "PUT", { API, "catalogs", "kafka", "*", "databases", "*", NULL }, cmf_api_databases_update, PERM_ADMIN,
	  "database.update" },
	{ "DELETE", { API, "catalogs", "kafka", "*", "databases", "*", NULL }, cmf_api_databases_delete, PERM_ADMIN,
	  "database.delete" },
	{ "GET", { API, "environments", "*", "client-configs", "*", "*", NULL }, cmf_api_client_config_get,
	  PERM_ENV_READ, "client-config.read" },
};

static const char *const perm_names[] = {
	[PERM_PUBLIC] = "public",
	[PERM_ADMIN] = "admin",
	[PERM_ENV_READ] = "environment-reader",
};

void
cmf_router_print(FILE *f)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		fprintf(f, "%s ", routes[i].method);
		for (size_t j = 0; routes[i].segs[j] != NULL; j++)
			fprintf(f, "/%s", routes[i].segs[j]);
		fprintf(f, " %s%s%s\n", perm_names[routes[i].perm], routes[i].audit_action != NULL ? " audit=" : "",
			routes[i].audit_action != NULL ? routes[i].audit_action : "");
	}
}

/* Refuse with 401/403, recording the refusal in the audit trail. */
static void
deny(struct cmf_request *req, struct cmf_response *resp, unsigned status, const char *action, const char *msg)
{
	struct db_audit a;
	char res[300];

	cmf_audit_init(&a, req, action, "denied", (int)status, res, sizeof(res), "%s", req->path);
	cmf_audit_record(req, &a);
	if (status == 401)
		cmf_response_header(resp, "WWW-Authenticate", "Bearer realm=\"cmf\"");
	cmf_reply_error(resp, status, "%s", msg);
}

/* Authenticate and authorize for `rt`; 0 to go on, -1 when a reply was made. */
static int
authorize(const struct route *rt, struct cmf_request *req, struct cmf_response *resp, const char *const *args)
{
	int r;

	if (rt->perm == PERM_PUBLIC)
		return 0;
	r = cmf_auth_authenticate(req);
	switch (r) {
	case CMF_AUTH_OK:
		break;
	case CMF_AUTH_MISSING:
		deny(req, resp, 401, "authenticate", "authentication required: send Authorization: Bearer <token>");
		return -1;
	case CMF_AUTH_EXPIRED:
		deny(req, resp, 401, "authenticate", "the token has expired");
		return -1;
	case CMF_AUTH_REVOKED:
		deny(req, resp, 401, "authenticate", "the token has been revoked");
		return -1;
	case CMF_AUTH_UNAVAILABLE:
		cmf_reply_error(resp, 503, "database unavailable");
		return -1;
	case CMF_AUTH_AMBIGUOUS:
		deny(req, resp, 400, "authenticate", "send exactly one Authorization header");
		return -1;
	default:
		deny(req, resp, 401, "authenticate", "invalid token");
		return -1;
	}
	if (rt->perm == PERM_ENV_READ && !cmf_auth_enabled()) {
		/* Decrypted secrets leave only to an authenticated caller: never with authentication off. */
		deny(req, resp, 403, "authorize",
		     "authentication is disabled (auth.enabled=false): decrypted secrets are never served without it");
		return -1;
	}
	if (rt->perm == PERM_ADMIN && req->principal.role != CMF_ROLE_ADMIN) {
		deny(req, resp, 403, "authorize", "this token's role may not do this");
		return -1;
	}
	if (rt->perm == PERM_ENV_READ && !cmf_auth_env_allowed(&req->principal, args[0])) {
		deny(req, resp, 403, "authorize", "this token may not read this environment");
		return -1;
	}
	return 0;
}

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
			if (authorize(&routes[i], req, resp, args) == 0) {
				routes[i].handler(req, resp, args);
				/* An audited request the handler did not record itself (a read, or a failed write). */
				if (routes[i].audit_action != NULL && !req->audited) {
					struct db_audit a;
					char res[300];

					cmf_audit_init(&a, req, routes[i].audit_action,
						       resp->status < 400 ? "success" : "failure", (int)resp->status, res,
						       sizeof(res), "%s", req->path);
					cmf_audit_record(req, &a);
				}
			}
			cmf_auth_principal_clear(&req->principal);
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
