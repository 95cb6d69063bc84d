/* cmf router: a static table of (method, path pattern) → handler; 404 and 405 decided here. */
#ifndef CMF_ROUTER_H
#define CMF_ROUTER_H

#include <stdio.h>

#include "cmf/http/daemon.h"

/* A handler: `args` are the path segments matched by "*" in its pattern, in order. */
typedef void (*cmf_handler)(struct cmf_request *req, struct cmf_response *resp, const char *const *args);

/*
 * Split a decoded path in place (NULs written into `path`, which must outlive `req`) into req->segs;
 * empty segments are kept ("/a//b" has an empty one) and a path deeper than CMF_HTTP_MAX_SEGMENTS
 * gets nsegs = CMF_HTTP_MAX_SEGMENTS + 1, which no route matches.
 */
void cmf_router_split(struct cmf_request *req, char *path);

/* Route `req` and run its handler; unknown paths → 404, known paths with another method → 405 + Allow. */
void cmf_router_dispatch(struct cmf_request *req, struct cmf_response *resp);

/* Print the route table, one "METHOD /pattern permission [audit=action]" line each (`cmf routes`). */
void cmf_router_print(FILE *f);

/* Handlers, one file per resource (cmf/api_*.c). */
void cmf_api_healthz(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_readyz(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_secrets_list(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_secrets_create(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_secrets_get(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_secrets_update(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_secrets_delete(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_tokens_list(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_tokens_create(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_tokens_get(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_tokens_revoke(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_audit_list(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_environments_list(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_environments_put(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_environments_get(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_environments_delete(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_secret_mappings_list(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_secret_mappings_create(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_secret_mappings_get(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_secret_mappings_update(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_secret_mappings_delete(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_csfle_list(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_csfle_create(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_csfle_get(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_csfle_update(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_csfle_delete(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_csfle_ruleset(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_catalogs_list(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_catalogs_create(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_catalogs_get(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_catalogs_update(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_catalogs_delete(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_databases_list(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_databases_create(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_databases_get(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_databases_update(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_databases_delete(struct cmf_request *req, struct cmf_response *resp, const char *const *args);
void cmf_api_client_config_get(struct cmf_request *req, struct cmf_response *resp, const char *const *args);

#endif
