// links: cmf/http/reply.c cmf/text.c cmf/http/daemon.c cmf/log.c crypto/util.c k8s/secret_file.c crypto/log.c
/* Fuzz the router: any path, method and authentication outcome; one handler only when allowed, else 401/403/404/405. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/http/router.c"

static int calls;

/* Stub handlers: the router is under test, not the resources. */
#define STUB(fn)                                                                                   \
	void fn(struct cmf_request *req, struct cmf_response *resp, const char *const *args)        \
	{                                                                                          \
		(void)req;                                                                         \
		for (int i = 0; args[i] != NULL; i++)                                              \
			if (args[i][0] == '\0')                                                    \
				abort(); /* "*" never captures an empty segment */                 \
		calls++;                                                                           \
		cmf_reply_empty(resp, 299);                                                        \
	}
STUB(cmf_api_healthz)
STUB(cmf_api_readyz)
STUB(cmf_api_secrets_list)
STUB(cmf_api_secrets_create)
STUB(cmf_api_secrets_get)
STUB(cmf_api_secrets_update)
STUB(cmf_api_secrets_delete)
STUB(cmf_api_tokens_list)
STUB(cmf_api_tokens_create)
STUB(cmf_api_tokens_get)
STUB(cmf_api_tokens_revoke)
STUB(cmf_api_audit_list)
STUB(cmf_api_client_config_get)
STUB(cmf_api_environments_list)
STUB(cmf_api_environments_put)
STUB(cmf_api_environments_get)
STUB(cmf_api_environments_delete)
STUB(cmf_api_secret_mappings_list)
STUB(cmf_api_secret_mappings_create)
STUB(cmf_api_secret_mappings_get)
STUB(cmf_api_secret_mappings_update)
STUB(cmf_api_secret_mappings_delete)
STUB(cmf_api_csfle_list)
STUB(cmf_api_csfle_create)
STUB(cmf_api_csfle_get)
STUB(cmf_api_csfle_update)
STUB(cmf_api_csfle_delete)
STUB(cmf_api_csfle_ruleset)
STUB(cmf_api_catalogs_list)
STUB(cmf_api_catalogs_create)
STUB(cmf_api_catalogs_get)
STUB(cmf_api_catalogs_update)
STUB(cmf_api_catalogs_delete)
STUB(cmf_api_databases_list)
STUB(cmf_api_databases_create)
STUB(cmf_api_databases_get)
STUB(cmf_api_databases_update)
STUB(cmf_api_databases_delete)

/* Authentication and audit stand-ins: the fuzzer picks the outcome, the router must act on it. */
static int fuzz_auth_result;
static enum cmf_role fuzz_role;
static int audits;

int
cmf_auth_authenticate(struct cmf_request *req)
{
	req->principal.role = fuzz_role;
	snprintf(req->principal.name, sizeof(req->principal.name), "fuzz");
	return fuzz_auth_result;
}

bool
cmf_auth_enabled(void)
{
	return true;
}

bool
cmf_auth_env_allowed(const struct cmf_principal *p, const char *env)
{
	(void)env;
	return p->role == CMF_ROLE_ADMIN;
}

void
cmf_auth_principal_clear(struct cmf_principal *p)
{
	memset(p, 0, sizeof(*p));
}

void
cmf_audit_init(struct db_audit *a, const struct cmf_request *req, const char *action, const char *outcome,
	       int status, char *resbuf, size_t reslen, const char *resource_fmt, ...)
{
	(void)req;
	(void)resource_fmt;
	snprintf(resbuf, reslen, "fuzz");
	a->action = action;
	a->outcome = outcome;
	a->status = status;
}

void
cmf_audit_record(struct cmf_request *req, const struct db_audit *a)
{
	(void)a;
	req->audited = true;
	audits++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS" };
	struct cmf_request req;
	struct cmf_response resp;
	char *path;

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
	req.method = methods[(data[0] & 7) % (sizeof(methods) / sizeof(methods[0]))];
	/* Bits 3-5: the authentication outcome (0 = OK, else a CMF_AUTH_* failure); bit 6: the role. */
	fuzz_auth_result = -(int)((data[0] >> 3) & 7) % 6;
	fuzz_role = (data[0] & 0x40) ? CMF_ROLE_ADMIN : CMF_ROLE_ENV_READER;
	audits = 0;
	req.path = path[0] != '\0' ? strdup(path) : strdup("/");
	cmf_router_split(&req, path);
	calls = 0;
	cmf_router_dispatch(&req, &resp);
	if (calls > 1)
		abort();
	if (calls == 1) {
		/* A handler ran: only with a successful authentication and the right role, or on a probe. */
		if (resp.status != 299)
			abort();
		if (strncmp(req.path, "/cmf/", 5) == 0 && (fuzz_auth_result != CMF_AUTH_OK || fuzz_role != CMF_ROLE_ADMIN))
			abort();
	} else if (resp.status == 401 || resp.status == 403 || resp.status == 503) {
		/* Refused before any handler: a failed authentication, a reader on an admin route, or no DB. */
		int www = 0;

		for (size_t i = 0; i < resp.nheaders; i++)
			if (strcmp(resp.headers[i].name, "WWW-Authenticate") == 0)
				www = 1;
		if (resp.status == 401 && (!www || audits != 1 || fuzz_auth_result == CMF_AUTH_OK))
			abort();
		if (resp.status == 403 && (audits != 1 || fuzz_role == CMF_ROLE_ADMIN))
			abort();
		if (resp.status == 503 && fuzz_auth_result != CMF_AUTH_UNAVAILABLE)
			abort();
	} else {
		json_error_t err;
		json_t *body;

		if (resp.status != 404 && resp.status != 405)
			abort();
		/* Every error body is CMF's shape and valid JSON, whatever bytes the path held. */
		body = resp.body != NULL ? json_loads(resp.body, 0, &err) : NULL;
		if (body == NULL || json_array_size(json_object_get(body, "errors")) != 1)
			abort();
		json_decref(body);
		if (resp.status == 405) {
			int found = 0;

			for (size_t i = 0; i < resp.nheaders; i++)
				if (strcmp(resp.headers[i].name, "Allow") == 0 && resp.headers[i].value[0] != '\0' &&
				    strstr(resp.headers[i].value, req.method) == NULL)
					found = 1;
			if (!found)
				abort();
		}
	}
	for (size_t i = 0; i < resp.nheaders; i++)
		free(resp.headers[i].value);
	free(resp.body);
	free((char *)req.path);
	free(path);
	return 0;
}
