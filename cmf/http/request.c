/* cmf request: path splitting, header and query access through the transport's lookups, responses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/http/request.h"
#include "cmf/log.h"
#include "crypto/crypto.h"

void
cmf_principal_clear(struct cmf_principal *p)
{
	json_decref(p->environments);
	memset(p, 0, sizeof(*p));
}

bool
cmf_principal_env_allowed(const struct cmf_principal *p, const char *env)
{
	size_t i;
	json_t *v;

	if (p->role == CMF_ROLE_ADMIN)
		return true;
	if (p->role != CMF_ROLE_ENV_READER)
		return false;
	json_array_foreach (p->environments, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), env) == 0)
			return true;
	return false;
}

void
cmf_request_split(struct cmf_request *req, char *path)
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

const char *
cmf_request_query(const struct cmf_request *req, const char *name)
{
	return req->io != NULL ? req->io->get(req->conn, CMF_REQUEST_QUERY, name) : NULL;
}

const char *
cmf_request_header(const struct cmf_request *req, const char *name)
{
	return req->io != NULL ? req->io->get(req->conn, CMF_REQUEST_HEADER, name) : NULL;
}

struct header_join {
	char *buf;
	size_t len, used;
	int cut;
	int count;
};

static int
join_header(void *cls, const char *value)
{
	struct header_join *hj = cls;
	int n;

	hj->count++;
	if (hj->buf == NULL || value == NULL)
		return 0;
	n = snprintf(hj->buf + hj->used, hj->len - hj->used, "%s%s", hj->used > 0 ? "," : "", value);
	if (n < 0 || (size_t)n >= hj->len - hj->used) {
		hj->cut = 1;
		return 1;
	}
	hj->used += (size_t)n;
	return 0;
}

const char *
cmf_request_header_list(const struct cmf_request *req, const char *name, char *buf, size_t len)
{
	struct header_join hj = { buf, len, 0, 0, 0 };

	buf[0] = '\0';
	if (req->io != NULL)
		req->io->each(req->conn, name, join_header, &hj);
	return hj.used > 0 && !hj.cut ? buf : NULL;
}

int
cmf_request_header_count(const struct cmf_request *req, const char *name)
{
	struct header_join hj = { NULL, 0, 0, 0, 0 };

	if (req->io != NULL)
		req->io->each(req->conn, name, join_header, &hj);
	return hj.count;
}

void
cmf_response_header(struct cmf_response *resp, const char *name, const char *value)
{
	if (resp->nheaders >= CMF_HTTP_MAX_HEADERS) {
		cmf_error("%s: too many headers, dropping %s", __func__, name);
		return;
	}
	resp->headers[resp->nheaders].name = name;
	resp->headers[resp->nheaders].value = strdup(value);
	if (resp->headers[resp->nheaders].value != NULL)
		resp->nheaders++;
}

void
cmf_response_clear(struct cmf_response *resp)
{
	/* Response bodies may carry secret values (the resolution endpoint): wipe before freeing. */
	if (resp->body != NULL)
		crypto_freezero(resp->body, strlen(resp->body));
	resp->body = NULL;
	for (size_t i = 0; i < resp->nheaders; i++)
		free(resp->headers[i].value);
	resp->nheaders = 0;
}
