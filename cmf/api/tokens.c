/* cmf tokens API (/cmf/api/v1/tokens, admin only): create (value shown once), list, get, revoke. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmf/http/audit.h"
#include "cmf/http/auth.h"
#include "cmf/log.h"
#include "cmf/http/reply.h"
#include "cmf/api/resource.h"
#include "cmf/api/routes.h"

/* An environment-reader's scope: 64 environments is far more than one job needs; bounds the row. */
#define TOKEN_MAX_ENVIRONMENTS 64

/* A token as returned; `value` (the token itself) only in the create response. */
static json_t *
token_json(const struct db_token *t, const char *value)
{
	json_t *spec = json_pack("{s:s,s:O}", "role", t->role, "environments", t->environments);
	json_t *status = json_pack("{s:s,s:b}", "tokenId", t->id, "expired", t->expired);

	if (t->expires[0] != '\0')
		json_object_set_new(spec, "expiresAt", json_string(t->expires));
	if (value != NULL)
		json_object_set_new(status, "token", json_string(value));
	return json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s},s:o,s:o}", "apiVersion", CMF_API_VERSION, "kind", "ApiToken",
			 "metadata", "name", t->name, "uid", t->uid, "creationTimestamp", t->created, "createdBy",
			 t->created_by, "spec", spec, "status", status);
}

struct token_input {
	json_t *body, *labels, *annotations;
	const char *name, *role, *expires;
	json_t *environments; /* new reference */
};

static void
input_clear(struct token_input *in)
{
	json_decref(in->body);
	json_decref(in->labels);
	json_decref(in->annotations);
	json_decref(in->environments);
	memset(in, 0, sizeof(*in));
}

static int
token_input(struct cmf_request *req, struct cmf_response *resp, struct token_input *in)
{
	static const char *const top_keys[] = { "spec", NULL };
	static const char *const spec_keys[] = { "role", "environments", "expiresAt", NULL };
	char why[512];
	json_t *spec, *v;
	size_t i;
	long long exp;

	memset(in, 0, sizeof(*in));
	if (cmf_resource_body(req, resp, &in->body) != 0)
		return -1;
	if (cmf_resource_envelope(in->body, "ApiToken", top_keys, resp, &in->name, &in->labels, &in->annotations) != 0)
		goto bad;
	if (json_object_size(in->labels) > 0 || json_object_size(in->annotations) > 0) {
		cmf_reply_error(resp, 400, "metadata.labels and metadata.annotations are not stored for ApiToken");
		goto bad;
	}
	spec = json_object_get(in->body, "spec");
	if (spec == NULL) {
		cmf_reply_error(resp, 400, "spec is required (spec.role: admin or environment-reader)");
		goto bad;
	}
	if (cmf_resource_object_check(spec, "spec", spec_keys, resp) != 0)
		goto bad;
	v = json_object_get(spec, "role");
	if (!json_is_string(v) || (strcmp(json_string_value(v), "admin") != 0 &&
				   strcmp(json_string_value(v), "environment-reader") != 0)) {
		cmf_reply_error(resp, 400, "spec.role must be \"admin\" or \"environment-reader\"");
		goto bad;
	}
	in->role = json_string_value(v);
	v = json_object_get(spec, "environments");
	if (v != NULL && !json_is_array(v)) {
		cmf_reply_error(resp, 400, "spec.environments must be an array of environment names");
		goto bad;
	}
	in->environments = v != NULL ? json_incref(v) : json_array();
	if (json_array_size(in->environments) > TOKEN_MAX_ENVIRONMENTS) {
		cmf_reply_error(resp, 400, "spec.environments: at most %d environments", TOKEN_MAX_ENVIRONMENTS);
		goto bad;
	}
	json_array_foreach (in->environments, i, v) {
		if (!json_is_string(v)) {
			cmf_reply_error(resp, 400, "spec.environments[%zu] must be a string", i);
			goto bad;
		}
		if (cmf_resource_name_check("spec.environments[]", json_string_value(v), why, sizeof(why)) != 0) {
			cmf_reply_error(resp, 400, "%s", why);
			goto bad;
		}
	}
	if (strcmp(in->role, "environment-reader") == 0 && json_array_size(in->environments) == 0) {
		cmf_reply_error(resp, 422, "an environment-reader token needs spec.environments (the environments it may read)");
		goto bad;
	}
	if (strcmp(in->role, "admin") == 0 && json_array_size(in->environments) > 0) {
		cmf_reply_error(resp, 422, "spec.environments applies to environment-reader tokens; an admin token reaches every environment");
		goto bad;
	}
	v = json_object_get(spec, "expiresAt");
	if (v != NULL) {
		if (!json_is_string(v) || cmf_resource_time(json_string_value(v), &exp) != 0) {
			cmf_reply_error(resp, 400, "spec.expiresAt must be an RFC 3339 UTC time such as 2027-01-31T00:00:00Z");
			goto bad;
		}
		if (exp <= (long long)time(NULL)) {
			cmf_reply_error(resp, 422, "spec.expiresAt is in the past");
			goto bad;
		}
		in->expires = json_string_value(v);
	}
	return 0;
bad:
	input_clear(in);
	return -1;
}

void
cmf_api_tokens_create(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct token_input in;
	struct db_token *t = NULL;
	struct db_audit audit;
	char value[CMF_TOKEN_SIZE], id[CMF_TOKEN_ID_SIZE], what[300], res[300];
	uint8_t hash[32];
	struct db_conn *c;
	int r;

	(void)args;
	if (token_input(req, resp, &in) != 0)
		return;
	snprintf(what, sizeof(what), "token '%s'", in.name);
	c = cmf_app_conn(req->app);
	if (cmf_auth_token_new(value, id, hash) != 0) {
		cmf_reply_error(resp, 500, "internal error");
		goto out;
	}
	cmf_audit_init(&audit, req, "token.create", "success", 200, res, sizeof(res), "token/%s", in.name);
	r = db_token_create(c, id, in.name, in.role, in.environments, in.expires, hash, req->principal.name, &audit, &t);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, what);
		cmf_audit_fail(req, &audit, resp->status, r);
		goto out;
	}
	cmf_audit_done(req, &audit);
	cmf_info("token %s created (id %s, role %s)", t->name, t->id, t->role);
	/* The only time the value leaves: the response buffer is wiped when freed (cmf/http/daemon.c). */
	cmf_reply_json(resp, 200, token_json(t, value));
out:
	OPENSSL_cleanse(value, sizeof(value));
	OPENSSL_cleanse(hash, sizeof(hash));
	db_token_free(t);
	input_clear(&in);
}

void
cmf_api_tokens_list(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_token **items = NULL;
	struct db_conn *c;
	long long page, total = 0;
	size_t n = 0;
	json_t *arr;
	int size, r;

	(void)args;
	if (cmf_resource_page(req, resp, &page, &size) != 0)
		return;
	c = cmf_app_conn(req->app);
	r = db_token_list(c, page * size, size, &items, &n, &total);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, "tokens");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr, token_json(items[i], NULL));
		db_token_free(items[i]);
	}
	free(items);
	cmf_reply_json(resp, 200, cmf_resource_page_json(page, size, total, arr));
}

void
cmf_api_tokens_get(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_token *t = NULL;
	struct db_conn *c = cmf_app_conn(req->app);
	char what[300];
	int r;

	if (cmf_resource_path_name(resp, "token", args[0]) != 0)
		return;
	snprintf(what, sizeof(what), "token '%s'", args[0]);
	r = db_token_get(c, args[0], &t);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, what);
		return;
	}
	cmf_reply_json(resp, 200, token_json(t, NULL));
	db_token_free(t);
}

void
cmf_api_tokens_revoke(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_conn *c = cmf_app_conn(req->app);
	struct db_audit audit;
	char what[300], res[300];
	int r;

	if (cmf_resource_path_name(resp, "token", args[0]) != 0)
		return;
	snprintf(what, sizeof(what), "token '%s'", args[0]);
	cmf_audit_init(&audit, req, "token.revoke", "success", 204, res, sizeof(res), "token/%s", args[0]);
	r = db_token_revoke(c, args[0], req->principal.name, &audit);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, what);
		cmf_audit_fail(req, &audit, resp->status, r);
		return;
	}
	cmf_audit_done(req, &audit);
	cmf_info("token %s revoked", args[0]);
	cmf_reply_empty(resp, 204);
}
