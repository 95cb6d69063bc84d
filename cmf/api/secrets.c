/*
 * cmf Secrets (/cmf/api/v1/secrets): CMF's shapes; spec.data values are sealed and never returned, only
 * masked. Their versions: the list (metadata only), a kept version read (GET ?version=N, kind.c) and the
 * rollback.
 */
#include <stdio.h>
#include <string.h>

#include "cmf/api/kind.h"
#include "cmf/api/resource.h"
#include "cmf/app.h"
#include "cmf/config.h"
#include "cmf/http/reply.h"
#include "cmf/log.h"

/* What every read shows in place of a data value (CMF masks the same way). */
#define MASK "****"

/*
 * A Secret as returned: data keys kept, each value masked; status.version is a string in CMF's schema. A
 * kept version read adds status.currentVersion (an addition to CMF's schema).
 */
static json_t *
secret_json(json_t *row, const struct cmf_kind_input *in)
{
	json_t *masked = json_object(), *v, *status;
	const char *k;
	char version[24];

	(void)in;
	snprintf(version, sizeof(version), "%lld", (long long)json_integer_value(json_object_get(row, "version")));
	/* A listed secret whose data fails its integrity check: named, with an empty spec and the error. */
	if (json_object_get(row, DB_LIST_INTEGRITY) != NULL) {
		json_decref(masked);
		return cmf_kind_envelope(&cmf_kind_secret, row, json_object(),
					 json_pack("{s:s,s:O,s:O}", "version", version, "environments",
						   json_object_get(row, "environments"), "error",
						   json_object_get(row, DB_LIST_INTEGRITY)));
	}
	json_object_foreach (json_object_get(row, "data"), k, v)
		json_object_set_new(masked, k, json_string(MASK));
	status = json_pack("{s:s,s:O}", "version", version, "environments", json_object_get(row, "environments"));
	if (status != NULL && (v = json_object_get(row, "currentVersion")) != NULL) {
		char current[24];

		snprintf(current, sizeof(current), "%lld", (long long)json_integer_value(v));
		json_object_set_new(status, "currentVersion", json_string(current));
	}
	return cmf_kind_envelope(&cmf_kind_secret, row, json_pack("{s:o}", "data", masked), status);
}

/* What every write of a secret tells the store besides the data: who writes and how many versions to keep. */
static int
secret_write_doc(struct cmf_call *call, json_t *doc)
{
	const char *writer = call->req->principal.name[0] != '\0' ? call->req->principal.name : "anonymous";

	if (json_object_set_new(doc, "writer", json_string(writer)) == 0 &&
	    json_object_set_new(doc, "maxVersions", json_integer(call->req->app->cfg->secrets_max_versions)) == 0)
		return 0;
	cmf_reply_error(call->resp, 500, "out of memory");
	return -1;
}

/* spec.data: an object of strings; a key is echoed in a refusal (it names a property), never a value. */
static int
secret_input(struct cmf_call *call, json_t *spec, struct cmf_kind_input *in)
{
	json_t *data = json_object_get(spec, "data"), *v;
	const char *k;

	if (data == NULL) {
		cmf_reply_error(call->resp, 400, "spec.data is required");
		return -1;
	}
	if (!json_is_object(data)) {
		cmf_reply_error(call->resp, 400, "spec.data must be an object of strings");
		return -1;
	}
	json_object_foreach (data, k, v) {
		if (k[0] == '\0') {
			cmf_reply_error(call->resp, 400, "spec.data: keys must not be empty");
			return -1;
		}
		if (!json_is_string(v)) {
			cmf_reply_error(call->resp, 400, "spec.data.%.64s must be a string", k);
			return -1;
		}
	}
	if (cmf_kind_set(call, in, "data", data) != 0)
		return -1;
	return secret_write_doc(call, in->doc);
}

static const char *const spec_keys[] = { "data", NULL };

const struct cmf_kind cmf_kind_secret = {
	.kind = "Secret", .what = "secret", .audit = "secret", .segs = { "secrets" }, .ops = CMF_OPS_ALL,
	/* Every operation decrypts (a read lists spec.data's keys): all audited. */
	.actions = { [CMF_OP_LIST] = "secret.list", [CMF_OP_CREATE] = "secret.create", [CMF_OP_GET] = "secret.read",
		     [CMF_OP_UPDATE] = "secret.update", [CMF_OP_DELETE] = "secret.delete" },
	.create = DB_WRITE_CREATE, .store = &db_kind_secret, .spec_keys = spec_keys,
	.input = secret_input, .to_json = secret_json,
	.users = "is mapped in environment", .users_none = "is mapped in an environment",
	.users_advice = "delete those secret mappings first", .cas = true,
};

/* A version's metadata as listed (the store's row as it is). */
static json_t *
secret_version_json(json_t *row, const struct cmf_kind_input *in)
{
	(void)in;
	return json_incref(row);
}

/* GET /cmf/api/v1/secrets/{name}/versions: metadata only, paged like every list; audited like every read. */
const struct cmf_kind cmf_kind_secret_version = {
	.what = "secret version", .audit = "secret", .parent_what = "secret", .segs = { "secrets", "*", "versions" },
	.ops = CMF_OP_BIT(CMF_OP_LIST), .actions = { [CMF_OP_LIST] = "secret.versions" },
	.store = &db_kind_secret_version, .to_json = secret_version_json,
};

/* The rollback's body: {"version": N}, N a positive integer. 0, or -1 replied. */
static int
rollback_input(struct cmf_call *call, long long *version)
{
	json_t *v = NULL;
	int r;

	if (cmf_resource_body_member(call->req, call->resp, "version", &v) != 0)
		return -1;
	r = json_is_integer(v) && json_integer_value(v) >= 1 ? 0 : -1;
	if (r != 0)
		cmf_reply_error(call->resp, 400, "version is required: the positive integer of the version to roll back to");
	else
		*version = (long long)json_integer_value(v);
	json_decref(v);
	return r;
}

/*
 * A rollback is an update whose data is a kept version's: the version is read (opened under its own
 * number), then written as a new current version through the one write path, conditional on the current
 * version read with it, so the new number is known before the write and the audit event names both
 * ("secret/<name>/versions/<from>-><to>"). Without If-Match, a write that got in between is retried on.
 */
void
cmf_api_secret_rollback(struct cmf_call *call)
{
	const struct cmf_kind *k = &cmf_kind_secret;
	const char *keys[2] = { call->args[0], NULL };
	enum db_missing missing = DB_MISSING_NONE;
	struct db_match m;
	const char *client_match;
	json_t *old = NULL, *doc = NULL, *row = NULL;
	char etag[DB_ETAG_MAX];
	long long from = 0, current = 0;
	int r = DB_ERR_PRECONDITION;

	if (cmf_resource_path_name(call->resp, k->what, keys[0]) != 0)
		return;
	cmf_call_resource(call, "secret/%s", keys[0]);
	if (cmf_kind_precondition(call, k, &m) != 0 || rollback_input(call, &from) != 0)
		return;
	cmf_call_resource(call, "secret/%s/versions/%lld", keys[0], from);
	client_match = m.if_match;
	for (int attempt = 0; attempt < 3 && r == DB_ERR_PRECONDITION; attempt++) {
		json_decref(old);
		json_decref(doc);
		old = doc = NULL;
		r = db_resource_get_version(cmf_call_conn(call), k->store, cmf_call_sealer(call), keys, from, &old,
					    &missing);
		if (r != DB_OK)
			break;
		current = (long long)json_integer_value(json_object_get(old, "currentVersion"));
		db_resource_etag(json_string_value(json_object_get(old, "uid")), current, etag, sizeof(etag));
		m.if_match = client_match != NULL ? client_match : etag;
		doc = json_pack("{s:O,s:O,s:O}", "labels", json_object_get(old, "labels"), "annotations",
				json_object_get(old, "annotations"), "data", json_object_get(old, "data"));
		if (doc == NULL || secret_write_doc(call, doc) != 0) {
			if (doc == NULL)
				cmf_reply_error(call->resp, 500, "out of memory");
			goto out;
		}
		cmf_call_resource(call, "secret/%s/versions/%lld->%lld", keys[0], from, current + 1);
		r = db_resource_write(cmf_call_conn(call), k->store, cmf_call_sealer(call), DB_WRITE_UPDATE, keys, doc,
				      cmf_call_audit(call, 200, NULL), NULL, &m, &row, NULL, NULL, &missing);
		if (client_match != NULL || m.none_match)
			break; /* the client's own precondition: answered, never retried */
	}
	cmf_call_stored(call, r);
	if (r == DB_ERR_PRECONDITION && client_match == NULL && !m.none_match)
		r = DB_ERR_BUSY; /* writes kept getting in between: the client's If-Match was not what failed */
	if (r == DB_ERR_NOT_FOUND && missing == DB_MISSING_REF)
		cmf_reply_error(call->resp, 404, "secret '%s' has no version %lld", keys[0], from);
	else if (r == DB_ERR_GONE)
		cmf_reply_error(call->resp, 410, "secret '%s' version %lld was destroyed (beyond secrets.maxVersions): it "
				"cannot be rolled back to", keys[0], from);
	else if (r != DB_OK)
		cmf_kind_error(call, k, r, missing, keys, &m);
	else {
		cmf_info("secret %s rolled back to version %lld as version %lld", keys[0], from,
			 (long long)json_integer_value(json_object_get(row, "version")));
		cmf_kind_etag(call, k, row);
		cmf_reply_json(call->resp, 200, secret_json(row, NULL));
	}
out:
	json_decref(old);
	json_decref(doc);
	json_decref(row);
}
