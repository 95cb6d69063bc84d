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

/* The routes of their own (resources are served by the generic handlers of cmf/api/kind.c). */
void cmf_api_healthz(struct cmf_call *call);
void cmf_api_readyz(struct cmf_call *call);
void cmf_api_audit_list(struct cmf_call *call);
/* GET /cmf/api/v1/encryption and POST .../encryption/rotate {"target": "dek"} (cmf/api/encryption.c). */
void cmf_api_encryption_get(struct cmf_call *call);
void cmf_api_encryption_rotate(struct cmf_call *call);
void cmf_api_encryption_rewrap(struct cmf_call *call);
/* Stop a rewrap this process runs (at its next batch; it shows as interrupted) and wait for its thread:
 * before the app it uses is cleaned up. */
void cmf_api_encryption_stop(void);
void cmf_api_csfle_ruleset(struct cmf_call *call);
void cmf_api_client_config_get(struct cmf_call *call);
/* GET /metrics (cmf/api/metrics.c): 404 when metrics.enabled is false. */
void cmf_api_metrics(struct cmf_call *call);

#endif
