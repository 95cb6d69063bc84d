// links: cmf/reply.c cmf/text.c cmf/http.c cmf/log.c crypto/util.c
/* Fuzz the router: split any path, dispatch with every method; exactly one handler or a 404/405 reply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/router.c"

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
	req.method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
	req.path = path[0] != '\0' ? strdup(path) : strdup("/");
	cmf_router_split(&req, path);
	calls = 0;
	cmf_router_dispatch(&req, &resp);
	if (calls > 1)
		abort();
	if (calls == 1) {
		if (resp.status != 299)
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
