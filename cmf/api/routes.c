/* cmf API routes: every route cmf serves, built from the kind table and a few routes of their own. */
#include <pthread.h>

#include "cmf/api/kind.h"
#include "cmf/api/routes.h"

/* Every kind's five operations and the special routes fit with room to spare. */
#define ROUTES_MAX 64

#define API "cmf", "api", "v1"

/*
 * In the order `cmf routes` prints them. An entry is a kind (its operations' routes) or a route of its
 * own (probes, metrics, the audit trail, a CsfleConfig's ruleSet, the resolution for jobs).
 */
static const struct {
	const struct cmf_kind *kind;
	struct cmf_route route;
} table[] = {
	{ NULL, { "GET", { "healthz", NULL }, CMF_PERM_PUBLIC, NULL, cmf_api_healthz, NULL, 0 } },
	{ NULL, { "GET", { "readyz", NULL }, CMF_PERM_PUBLIC, NULL, cmf_api_readyz, NULL, 0 } },
	/* Scraped every few seconds and read-only: not audited. */
	{ NULL, { "GET", { "metrics", NULL }, CMF_PERM_METRICS, NULL, cmf_api_metrics, NULL, 0 } },
	{ &cmf_kind_secret, { NULL, { NULL }, 0, NULL, NULL, NULL, 0 } },
	{ &cmf_kind_secret_version, { NULL, { NULL }, 0, NULL, NULL, NULL, 0 } },
	{ NULL,
	  { "POST", { API, "secrets", "*", "rollback", NULL }, CMF_PERM_ADMIN, "secret.rollback", cmf_api_secret_rollback,
	    NULL, 0 } },
	{ &cmf_kind_token, { NULL, { NULL }, 0, NULL, NULL, NULL, 0 } },
	{ &cmf_kind_role_binding, { NULL, { NULL }, 0, NULL, NULL, NULL, 0 } },
	{ NULL, { "GET", { API, "audit-events", NULL }, CMF_PERM_ADMIN, NULL, cmf_api_audit_list, NULL, 0 } },
	/* A status read of every ciphertext's term: admin only, not audited (as the trail itself). */
	{ NULL, { "GET", { API, "encryption", NULL }, CMF_PERM_ADMIN, NULL, cmf_api_encryption_get, NULL, 0 } },
	{ NULL,
	  { "POST", { API, "encryption", "rotate", NULL }, CMF_PERM_ADMIN, "encryption.rotate",
	    cmf_api_encryption_rotate, NULL, 0 } },
	{ NULL,
	  { "POST", { API, "encryption", "rewrap", NULL }, CMF_PERM_ADMIN, "encryption.rewrap",
	    cmf_api_encryption_rewrap, NULL, 0 } },
	{ &cmf_kind_environment, { NULL, { NULL }, 0, NULL, NULL, NULL, 0 } },
	{ &cmf_kind_secret_mapping, { NULL, { NULL }, 0, NULL, NULL, NULL, 0 } },
	{ &cmf_kind_csfle_config, { NULL, { NULL }, 0, NULL, NULL, NULL, 0 } },
	{ NULL,
	  { "GET", { API, "csfle-configs", "*", "ruleset", NULL }, CMF_PERM_ADMIN, NULL, cmf_api_csfle_ruleset, NULL,
	    0 } },
	{ &cmf_kind_kafka_catalog, { NULL, { NULL }, 0, NULL, NULL, NULL, 0 } },
	{ &cmf_kind_kafka_database, { NULL, { NULL }, 0, NULL, NULL, NULL, 0 } },
	/* Decrypted configuration for jobs: the one route open to environment-readers. */
	{ NULL,
	  { "GET", { API, "environments", "*", "client-configs", "*", "*", NULL }, CMF_PERM_ENV_READ,
	    "client-config.read", cmf_api_client_config_get, NULL, 0 } },
};

/* The query parameters of the routes of their own that take any, for `cmf routes` (each handler parses its own). */
static const struct {
	cmf_handler handler;
	const char *query;
} queries[] = {
	{ cmf_api_client_config_get, "format,watch,timeoutSeconds" },
	{ cmf_api_audit_list, "principal,resource,since,until,page,size" },
};

static struct cmf_route routes[ROUTES_MAX];
static size_t nroutes;
static pthread_once_t routes_once = PTHREAD_ONCE_INIT;

static void
routes_build(void)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (table[i].kind != NULL)
			nroutes += cmf_kind_routes(table[i].kind, routes + nroutes, ROUTES_MAX - nroutes);
		else if (nroutes < ROUTES_MAX)
			routes[nroutes++] = table[i].route;
	}
}

const struct cmf_route *
cmf_api_routes(size_t *n)
{
	pthread_once(&routes_once, routes_build);
	*n = nroutes;
	return routes;
}

void
cmf_api_routes_print(FILE *f)
{
	size_t n;
	const struct cmf_route *r = cmf_api_routes(&n);

	for (size_t i = 0; i < n; i++) {
		const char *query = NULL;

		for (size_t j = 0; j < sizeof(queries) / sizeof(queries[0]); j++)
			if (r[i].handler == queries[j].handler)
				query = queries[j].query;
		cmf_router_print_line(f, &r[i], query);
	}
}
