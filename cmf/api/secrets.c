/* cmf Secrets API (/cmf/api/v1/secrets): CMF's shapes; spec.data values are never returned, only masked. */
#include <stdio.h>
#include <string.h>

#include "cmf/http/audit.h"
#include "cmf/log.h"
#include "cmf/http/reply.h"
#include "cmf/api/resource.h"
#include "cmf/api/routes.h"

/* What every read shows in place of a data value (CMF masks the same way). */
#define MASK "****"

/* A Secret as returned: data keys kept, each value masked. */
static json_t *
secret_json(const struct db_secret *s)
{
	json_t *masked = json_object(), *v;
	const char *k;
	char version[24];

	json_object_foreach (s->data, k, v)
		json_object_set_new(masked, k, json_string(MASK));
	snprintf(version, sizeof(version), "%lld", s->version);
	/* status.version is a string in CMF's schema (SecretStatus.version). */
	return json_pack("{s:s,s:s,s:o,s:{s:o},s:{s:s,s:O}}", "apiVersion", CMF_API_VERSION, "kind", "Secret",
			 "metadata",
			 cmf_resource_metadata_json(s->name, s->uid, s->created, s->updated, s->labels, s->annotations),
			 "spec", "data", masked, "status", "version", version, "environments", s->environments);
}

/* Parse and check a Secret body; on success *body holds it and the borrowed fields point into it. */
struct secret_input {
	json_t *body;
	const char *name;
	json_t *labels, *annotations;
	json_t *data; /* borrowed from body */
};

static void
input_clear(struct secret_input *in)
{
	json_decref(in->body);
	json_decref(in->labels);
	json_decref(in->annotations);
	memset(in, 0, sizeof(*in));
}

static int
secret_input(struct cmf_request *req, struct cmf_response *resp, struct secret_input *in)
{
	static const char *const top_keys[] = { "spec", NULL };
	static const char *const spec_keys[] = { "data", NULL };
	json_t *spec, *v;
	const char *k;

	memset(in, 0, sizeof(*in));
	if (cmf_resource_body(req, resp, &in->body) != 0)
		return -1;
	if (cmf_resource_envelope(in->body, "Secret", top_keys, resp, &in->name, &in->labels, &in->annotations) != 0)
		goto bad;
	spec = json_object_get(in->body, "spec");
	if (spec == NULL) {
		cmf_reply_error(resp, 400, "spec is required");
		goto bad;
	}
	if (cmf_resource_object_check(spec, "spec", spec_keys, resp) != 0)
		goto bad;
	in->data = json_object_get(spec, "data");
	if (in->data == NULL) {
		cmf_reply_error(resp, 400, "spec.data is required");
		goto bad;
	}
	if (!json_is_object(in->data)) {
		cmf_reply_error(resp, 400, "spec.data must be an object of strings");
		goto bad;
	}
	json_object_foreach (in->data, k, v) {
		if (k[0] == '\0') {
			cmf_reply_error(resp, 400, "spec.data: keys must not be empty");
			goto bad;
		}
		/* The key is echoed (it names a property), never the value. */
		if (!json_is_string(v)) {
			cmf_reply_error(resp, 400, "spec.data.%.64s must be a string", k);
			goto bad;
		}
	}
	return 0;
bad:
	input_clear(in);
	return -1;
}

/* POST (path_name NULL: create) or PUT (path_name: update that secret); the same checks, one store call. */
static void
secret_write(struct cmf_request *req, struct cmf_response *resp, const char *path_name)
{
	struct secret_input in;
	struct db_secret *s = NULL;
	struct cmf_sealer_hold hold;
	struct db_audit audit;
	char what[300], res[300];
	struct db_conn *c;
	int r;

	if (path_name != NULL && cmf_resource_path_name(resp, "secret", path_name) != 0)
		return;
	if (secret_input(req, resp, &in) != 0)
		return;
	if (path_name != NULL && strcmp(in.name, path_name) != 0) {
		cmf_reply_error(resp, 422, "metadata.name '%s' does not match the secret name '%s' in the path", in.name,
				path_name);
		goto out;
	}
	snprintf(what, sizeof(what), "secret '%s'", in.name);
	c = cmf_app_conn(req->app);
	cmf_audit_init(&audit, req, path_name == NULL ? "secret.create" : "secret.update", "success", 200, res,
		       sizeof(res), "secret/%s", in.name);
	cmf_app_sealer_acquire(req->app, &hold);
	if (path_name == NULL)
		r = db_secret_create(c, &hold.sealer, in.name, in.labels, in.annotations, in.data, &audit, &s);
	else
		r = db_secret_update(c, &hold.sealer, in.name, in.labels, in.annotations, in.data, &audit, &s);
	cmf_app_sealer_release(req->app, &hold);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, what);
		cmf_audit_fail(req, &audit, resp->status, r);
		goto out;
	}
	cmf_audit_done(req, &audit);
	cmf_info("secret %s %s (uid %s, version %lld)", s->name, path_name == NULL ? "created" : "updated", s->uid,
		 s->version);
	cmf_reply_json(resp, 200, secret_json(s));
out:
	db_secret_free(s);
	input_clear(&in);
}

void
cmf_api_secrets_create(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	(void)args;
	secret_write(req, resp, NULL);
}

void
cmf_api_secrets_update(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	secret_write(req, resp, args[0]);
}

void
cmf_api_secrets_get(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_secret *s = NULL;
	struct cmf_sealer_hold hold;
	struct db_audit audit;
	char what[300], res[300];
	struct db_conn *c = cmf_app_conn(req->app);
	int r;

	if (cmf_resource_path_name(resp, "secret", args[0]) != 0)
		return;
	snprintf(what, sizeof(what), "secret '%s'", args[0]);
	/* A read decrypts spec.data (to list its keys): audited, after the read's own transaction. */
	cmf_audit_init(&audit, req, "secret.read", "success", 200, res, sizeof(res), "secret/%s", args[0]);
	cmf_app_sealer_acquire(req->app, &hold);
	r = db_secret_get(c, &hold.sealer, args[0], &s);
	cmf_app_sealer_release(req->app, &hold);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, what);
		cmf_audit_fail(req, &audit, resp->status, r);
		return;
	}
	cmf_audit_record(req, &audit);
	cmf_reply_json(resp, 200, secret_json(s));
	db_secret_free(s);
}

void
cmf_api_secrets_list(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_secret **items = NULL;
	struct cmf_sealer_hold hold;
	struct db_conn *c;
	long long page, total = 0;
	size_t n = 0;
	json_t *arr;
	int size, r;

	(void)args;
	if (cmf_resource_page(req, resp, &page, &size) != 0)
		return;
	c = cmf_app_conn(req->app);
	cmf_app_sealer_acquire(req->app, &hold);
	r = db_secret_list(c, &hold.sealer, page * size, size, &items, &n, &total);
	cmf_app_sealer_release(req->app, &hold);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, "secrets");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr, secret_json(items[i]));
		db_secret_free(items[i]);
	}
	free(items);
	cmf_reply_json(resp, 200, cmf_resource_page_json(page, size, total, arr));
}

void
cmf_api_secrets_delete(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_conn *c = cmf_app_conn(req->app);
	struct db_audit audit;
	char what[300], res[300], names[CMF_NAMES_JOIN_MAX];
	json_t *mapped_in = NULL;
	int r;

	if (cmf_resource_path_name(resp, "secret", args[0]) != 0)
		return;
	snprintf(what, sizeof(what), "secret '%s'", args[0]);
	cmf_audit_init(&audit, req, "secret.delete", "success", 204, res, sizeof(res), "secret/%s", args[0]);
	r = db_secret_delete(c, args[0], &audit, &mapped_in);
	if (r == DB_ERR_CONFLICT) {
		if (json_array_size(mapped_in) > 0) {
			cmf_resource_names_join(mapped_in, names, sizeof(names));
			cmf_reply_error(resp, 409, "%s is mapped in environment%s %s: delete those secret mappings first",
					what, json_array_size(mapped_in) > 1 ? "s" : "", names);
		} else {
			cmf_reply_error(resp, 409, "%s is mapped in an environment: delete those secret mappings first",
					what);
		}
		json_decref(mapped_in);
		cmf_audit_fail(req, &audit, resp->status, r);
		return;
	}
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, what);
		cmf_audit_fail(req, &audit, resp->status, r);
		return;
	}
	cmf_audit_done(req, &audit);
	cmf_info("secret %s deleted", args[0]);
	cmf_reply_empty(resp, 204);
}
