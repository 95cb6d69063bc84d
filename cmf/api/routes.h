/* cmf API routes: the table of every route cmf serves (what `cmf routes` prints), and its handlers. */
#ifndef CMF_API_ROUTES_H
#define CMF_API_ROUTES_H

#include <stdio.h>

#include "cmf/http/dispatch.h"
#include "cmf/http/router.h"

/* The route table (static, built once; `n` receives its length). */
const struct cmf_route *cmf_api_routes(size_t *n);

/* Print the route table (`cmf routes`). */
void cmf_api_routes_print(FILE *f);

/* Handlers, one file per resource under cmf/api/. */
void cmf_api_healthz(struct cmf_call *call);
void cmf_api_readyz(struct cmf_call *call);
void cmf_api_secrets_list(struct cmf_call *call);
void cmf_api_secrets_create(struct cmf_call *call);
void cmf_api_secrets_get(struct cmf_call *call);
void cmf_api_secrets_update(struct cmf_call *call);
void cmf_api_secrets_delete(struct cmf_call *call);
void cmf_api_tokens_list(struct cmf_call *call);
void cmf_api_tokens_create(struct cmf_call *call);
void cmf_api_tokens_get(struct cmf_call *call);
void cmf_api_tokens_revoke(struct cmf_call *call);
void cmf_api_audit_list(struct cmf_call *call);
void cmf_api_environments_list(struct cmf_call *call);
void cmf_api_environments_put(struct cmf_call *call);
void cmf_api_environments_get(struct cmf_call *call);
void cmf_api_environments_delete(struct cmf_call *call);
void cmf_api_secret_mappings_list(struct cmf_call *call);
void cmf_api_secret_mappings_create(struct cmf_call *call);
void cmf_api_secret_mappings_get(struct cmf_call *call);
void cmf_api_secret_mappings_update(struct cmf_call *call);
void cmf_api_secret_mappings_delete(struct cmf_call *call);
void cmf_api_csfle_list(struct cmf_call *call);
void cmf_api_csfle_create(struct cmf_call *call);
void cmf_api_csfle_get(struct cmf_call *call);
void cmf_api_csfle_update(struct cmf_call *call);
void cmf_api_csfle_delete(struct cmf_call *call);
void cmf_api_csfle_ruleset(struct cmf_call *call);
void cmf_api_catalogs_list(struct cmf_call *call);
void cmf_api_catalogs_create(struct cmf_call *call);
void cmf_api_catalogs_get(struct cmf_call *call);
void cmf_api_catalogs_update(struct cmf_call *call);
void cmf_api_catalogs_delete(struct cmf_call *call);
void cmf_api_databases_list(struct cmf_call *call);
void cmf_api_databases_create(struct cmf_call *call);
void cmf_api_databases_get(struct cmf_call *call);
void cmf_api_databases_update(struct cmf_call *call);
void cmf_api_databases_delete(struct cmf_call *call);
void cmf_api_client_config_get(struct cmf_call *call);

#endif
