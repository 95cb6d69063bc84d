/* cmf API routes: which handler serves which (method, path), with its permission and audit action. */
#include "cmf/api/routes.h"

#define API "cmf", "api", "v1"
#define PUBLIC CMF_PERM_PUBLIC
#define ADMIN CMF_PERM_ADMIN
#define ENV_READ CMF_PERM_ENV_READ

static const struct cmf_route routes[] = {
	{ "GET", { "healthz", NULL }, PUBLIC, NULL, cmf_api_healthz, NULL, 0 },
	{ "GET", { "readyz", NULL }, PUBLIC, NULL, cmf_api_readyz, NULL, 0 },
	{ "GET", { API, "secrets", NULL }, ADMIN, "secret.list", cmf_api_secrets_list, NULL, 0 },
	{ "POST", { API, "secrets", NULL }, ADMIN, "secret.create", cmf_api_secrets_create, NULL, 0 },
	{ "GET", { API, "secrets", "*", NULL }, ADMIN, "secret.read", cmf_api_secrets_get, NULL, 0 },
	{ "PUT", { API, "secrets", "*", NULL }, ADMIN, "secret.update", cmf_api_secrets_update, NULL, 0 },
	{ "DELETE", { API, "secrets", "*", NULL }, ADMIN, "secret.delete", cmf_api_secrets_delete, NULL, 0 },
	{ "GET", { API, "tokens", NULL }, ADMIN, NULL, cmf_api_tokens_list, NULL, 0 },
	{ "POST", { API, "tokens", NULL }, ADMIN, "token.create", cmf_api_tokens_create, NULL, 0 },
	{ "GET", { API, "tokens", "*", NULL }, ADMIN, NULL, cmf_api_tokens_get, NULL, 0 },
	{ "DELETE", { API, "tokens", "*", NULL }, ADMIN, "token.revoke", cmf_api_tokens_revoke, NULL, 0 },
	{ "GET", { API, "audit-events", NULL }, ADMIN, NULL, cmf_api_audit_list, NULL, 0 },
	{ "GET", { API, "environments", NULL }, ADMIN, NULL, cmf_api_environments_list, NULL, 0 },
	/* Create or update (CMF): recorded as environment.update when it existed. */
	{ "POST", { API, "environments", NULL }, ADMIN, "environment.create", cmf_api_environments_put, NULL, 0 },
	{ "GET", { API, "environments", "*", NULL }, ADMIN, NULL, cmf_api_environments_get, NULL, 0 },
	{ "DELETE", { API, "environments", "*", NULL }, ADMIN, "environment.delete", cmf_api_environments_delete, NULL, 0 },
	{ "GET", { API, "environments", "*", "secret-mappings", NULL }, ADMIN, NULL, cmf_api_secret_mappings_list, NULL, 0 },
	{ "POST", { API, "environments", "*", "secret-mappings", NULL }, ADMIN, "secret-mapping.create", cmf_api_secret_mappings_create, NULL, 0 },
	{ "GET", { API, "environments", "*", "secret-mappings", "*", NULL }, ADMIN, NULL, cmf_api_secret_mappings_get, NULL, 0 },
	{ "PUT", { API, "environments", "*", "secret-mappings", "*", NULL }, ADMIN, "secret-mapping.update", cmf_api_secret_mappings_update, NULL, 0 },
	{ "DELETE", { API, "environments", "*", "secret-mappings", "*", NULL }, ADMIN, "secret-mapping.delete", cmf_api_secret_mappings_delete, NULL, 0 },
	{ "GET", { API, "csfle-configs", NULL }, ADMIN, NULL, cmf_api_csfle_list, NULL, 0 },
	{ "POST", { API, "csfle-configs", NULL }, ADMIN, "csfle-config.create", cmf_api_csfle_create, NULL, 0 },
	{ "GET", { API, "csfle-configs", "*", NULL }, ADMIN, NULL, cmf_api_csfle_get, NULL, 0 },
	{ "PUT", { API, "csfle-configs", "*", NULL }, ADMIN, "csfle-config.update", cmf_api_csfle_update, NULL, 0 },
	{ "DELETE", { API, "csfle-configs", "*", NULL }, ADMIN, "csfle-config.delete", cmf_api_csfle_delete, NULL, 0 },
	{ "GET", { API, "csfle-configs", "*", "ruleset", NULL }, ADMIN, NULL, cmf_api_csfle_ruleset, NULL, 0 },
	{ "GET", { API, "catalogs", "kafka", NULL }, ADMIN, NULL, cmf_api_catalogs_list, NULL, 0 },
	{ "POST", { API, "catalogs", "kafka", NULL }, ADMIN, "catalog.create", cmf_api_catalogs_create, NULL, 0 },
	{ "GET", { API, "catalogs", "kafka", "*", NULL }, ADMIN, NULL, cmf_api_catalogs_get, NULL, 0 },
	{ "PUT", { API, "catalogs", "kafka", "*", NULL }, ADMIN, "catalog.update", cmf_api_catalogs_update, NULL, 0 },
	{ "DELETE", { API, "catalogs", "kafka", "*", NULL }, ADMIN, "catalog.delete", cmf_api_catalogs_delete, NULL, 0 },
	{ "GET", { API, "catalogs", "kafka", "*", "databases", NULL }, ADMIN, NULL, cmf_api_databases_list, NULL, 0 },
	{ "POST", { API, "catalogs", "kafka", "*", "databases", NULL }, ADMIN, "database.create", cmf_api_databases_create, NULL, 0 },
	{ "GET", { API, "catalogs", "kafka", "*", "databases", "*", NULL }, ADMIN, NULL, cmf_api_databases_get, NULL, 0 },
	{ "PUT", { API, "catalogs", "kafka", "*", "databases", "*", NULL }, ADMIN, "database.update", cmf_api_databases_update, NULL, 0 },
	{ "DELETE", { API, "catalogs", "kafka", "*", "databases", "*", NULL }, ADMIN, "database.delete", cmf_api_databases_delete, NULL, 0 },
	{ "GET", { API, "environments", "*", "client-configs", "*", "*", NULL }, ENV_READ, "client-config.read", cmf_api_client_config_get, NULL, 0 },
};

const struct cmf_route *
cmf_api_routes(size_t *n)
{
	*n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}

void
cmf_api_routes_print(FILE *f)
{
	cmf_router_print(f, routes, sizeof(routes) / sizeof(routes[0]));
}
