/*
 * cmf tokens (/cmf/api/v1/tokens, admin only): create (value shown once), list, get, revoke. Roles: admin,
 * environment-reader (scoped to spec.environments) and metrics-reader (GET /metrics only).
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmf/api/kind.h"
#include "cmf/api/resource.h"
#include "cmf/http/auth.h"
#include "cmf/http/reply.h"

/* An environment-reader's scope: 64 environments is far more than one job needs; bounds the row. */

/* A token as returned; the value itself (status.token) only in the create response. */
static json_t *
token_json(json_t *row, const struct cmf_kind_input *in)
{
	json_t *spec = json_pack("{s:O,s:O}", "role", json_object_get(row, "role"), "environments",
				 json_object_get(row, "environments"));
	json_t *status = json_pack("{s:O,s:O}", "tokenId", json_object_get(row, "id"), "expired",
				   json_object_get(row, "expired"));
	const char *expires = json_string_value(json_object_get(row, "expires"));

	if (spec != NULL && expires != NULL && expires[0] != '\0')
		json_object_set_new(spec, "expiresAt", json_string(expires));
	if (status != NULL && in != NULL && in->once[0] != '\0')
		json_object_set_new(status, "token", json_string(in->once));
	return json_pack("{s:s,s:s,s:{s:O,s:O,s:O,s:O},s:o,s:o}", "apiVersion", CMF_API_VERSION, "kind", "ApiToken",
			 "metadata", "name", json_object_get(row, "name"), "uid", json_object_get(row, "uid"),
			 "creationTimestamp", json_object_get(row, "created"), "createdBy",
			 json_object_get(row, "createdBy"), "spec", spec, "status", status);
}

static int
token_input(struct cmf_call *call, json_t *spec, struct cmf_kind_input *in)
{
	struct cmf_response *resp = call->resp;
	const char *role;
	json_t *v, *envs;
	long long exp;

	v = json_object_get(spec, "role");
	role = json_string_value(v); /* NULL when not a string */
	if (role == NULL || (strcmp(role, "admin") != 0 && strcmp(role, "environment-reader") != 0 &&
			     strcmp(role, "metrics-reader") != 0)) {
		cmf_reply_error(resp, 400, "spec.role must be \"admin\", \"environment-reader\" or \"metrics-reader\"");
		return -1;
	}
	v = json_object_get(spec, "environments");
	if (cmf_resource_environments_check(v, resp) != 0)
		return -1;
	envs = v != NULL ? json_incref(v) : json_array();
	if (cmf_kind_set(call, in, "environments", envs) != 0) {
		json_decref(envs);
		return -1;
	}
	json_decref(envs);
	if (strcmp(role, "environment-reader") == 0 && json_array_size(envs) == 0) {
		cmf_reply_error(resp, 422, "an environment-reader token needs spec.environments (the environments it may read)");
		return -1;
	}
	if (strcmp(role, "admin") == 0 && json_array_size(envs) > 0) {
		cmf_reply_error(resp, 422, "spec.environments applies to environment-reader tokens; an admin token reaches every environment");
		return -1;
	}
	if (strcmp(role, "metrics-reader") == 0 && json_array_size(envs) > 0) {
		cmf_reply_error(resp, 422, "spec.environments applies to environment-reader tokens; a metrics-reader token reads only /metrics");
		return -1;
	}
	v = json_object_get(spec, "expiresAt");
	if (v != NULL) {
		if (!json_is_string(v) || cmf_resource_time(json_string_value(v), &exp) != 0) {
			cmf_reply_error(resp, 400, "spec.expiresAt must be an RFC 3339 UTC time such as 2027-01-31T00:00:00Z");
			return -1;
		}
		if (exp <= (long long)time(NULL)) {
			cmf_reply_error(resp, 422, "spec.expiresAt is in the past");
			return -1;
		}
	}
	if (v != NULL && cmf_kind_set(call, in, "expiresAt", v) != 0)
		return -1;
	return cmf_kind_set(call, in, "role", json_object_get(spec, "role"));
}


/*
 * A new token: its value is kept in in->once for this response only (the response buffer is wiped when
 * freed); the store gets its public id and the SHA-256 of its secret part.
 */
static int
token_prepare(struct cmf_call *call, const char *const *keys, bool update, struct cmf_kind_input *in)
{
	char id[CMF_TOKEN_ID_SIZE];
	unsigned char b64[45]; /* base64 of 32 bytes: 44 characters and a NUL */
	uint8_t hash[32];
	json_t *doc = NULL;
	int ret = -1;

	(void)keys;
	(void)update;
	if (cmf_auth_token_new(in->once, id, hash) != 0 || EVP_EncodeBlock(b64, hash, sizeof(hash)) != 44) {
		cmf_reply_error(call->resp, 500, "internal error");
		goto out;
	}
	doc = json_pack("{s:s,s:s,s:s}", "id", id, "secretHash", (const char *)b64, "createdBy",
			call->req->principal.name);
	if (doc == NULL || json_object_update(in->doc, doc) != 0) {
		cmf_reply_error(call->resp, 500, "out of memory");
		goto out;
	}
	ret = 0;
out:
	json_decref(doc);
	OPENSSL_cleanse(hash, sizeof(hash));
	OPENSSL_cleanse(b64, sizeof(b64));
	return ret;
}

static const char *const spec_keys[] = { "role", "environments", "expiresAt", NULL };

const struct cmf_kind cmf_kind_token = {
	.kind = "ApiToken", .what = "token", .audit = "token", .segs = { "tokens" },
	.ops = CMF_OP_BIT(CMF_OP_LIST) | CMF_OP_BIT(CMF_OP_CREATE) | CMF_OP_BIT(CMF_OP_GET) | CMF_OP_BIT(CMF_OP_DELETE),
	/* DELETE revokes: the row stays so the audit trail can name the token. */
	.actions = { [CMF_OP_CREATE] = "token.create", [CMF_OP_DELETE] = "token.revoke" },
	.create = DB_WRITE_CREATE, .store = &db_kind_token, .spec_keys = spec_keys, .no_labels = true,
	.spec_hint = " (spec.role: admin, environment-reader or metrics-reader)",
	.input = token_input, .prepare = token_prepare, .to_json = token_json,
};
