/* cmf Environments API (/cmf/api/v1/environments and their secret-mappings): CMF's shapes and statuses. */
#include <stdio.h>
#include <string.h>

#include "cmf/http/audit.h"
#include "cmf/log.h"
#include "cmf/http/reply.h"
#include "cmf/api/resource.h"
#include "cmf/api/routes.h"

/* The defaults CMF keeps per environment: stored and returned as given (objects of any shape). */
static const char *const default_keys[] = { "flinkApplicationDefaults", "computePoolDefaults", "statementDefaults",
					    NULL };

/* An Environment as returned (CMF's Environment: no apiVersion/kind; `secrets` from its mappings). */
static json_t *
env_json(const struct db_environment *e)
{
	json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "name", e->name, "created_time", e->created, "updated_time",
			      e->updated, "kubernetesNamespace", e->kubernetes_namespace);

	if (j == NULL)
		return NULL;
	json_object_update(j, e->defaults);
	json_object_set_new(j, "metadata",
			    cmf_resource_metadata_json(e->name, e->uid, e->created, e->updated, e->labels, e->annotations));
	json_object_set(j, "secrets", e->secrets);
	return j;
}

/* A PostEnvironment body, checked; the borrowed pointers point into `body` and `envelope`. */
struct env_input {
	json_t *body, *envelope;
	const char *name, *ns;
	json_t *labels, *annotations;
	json_t *defaults; /* new object holding the defaults given */
};

static void
env_input_clear(struct env_input *in)
{
	json_decref(in->body);
	json_decref(in->envelope);
	json_decref(in->labels);
	json_decref(in->annotations);
	json_decref(in->defaults);
	memset(in, 0, sizeof(*in));
}

/*
 * kubernetesNamespace as CMF's schema has it: 1 to 253 characters matching
 * ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$ (253 is the DNS name limit).
 */
static int
namespace_ok(const char *s)
{
	size_t len = strlen(s);

	if (len < 1 || len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		/* Each dot-separated label starts and ends with a letter or digit. */
		int label_edge = i == 0 || i == len - 1 || s[i - 1] == '.' || s[i + 1] == '.';

		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
			continue;
		if (ch == '.' && i > 0 && i < len - 1 && s[i - 1] != '.')
			continue;
		if (ch == '-' && !label_edge)
			continue;
		return 0;
	}
	return 1;
}

static int
env_input(struct cmf_request *req, struct cmf_response *resp, struct env_input *in)
{
	/* PostEnvironment's fields, plus Environment's read-only ones (accepted and ignored, so a GET can be
	 * sent back): created_time, updated_time, secrets, status. */
	static const char *const keys[] = { "name",	      "metadata",		  "kubernetesNamespace",
					    "kubernetesClusterName", "flinkApplicationDefaults", "computePoolDefaults",
					    "statementDefaults",     "created_time",		  "updated_time",
					    "secrets",		      "status",			  NULL };
	char why[512];
	json_t *jname, *meta, *v;

	memset(in, 0, sizeof(*in));
	if (cmf_resource_body(req, resp, &in->body) != 0)
		return -1;
	if (cmf_resource_object_check(in->body, "", keys, resp) != 0)
		goto bad;
	v = json_object_get(in->body, "kubernetesClusterName");
	if (v != NULL && !json_is_null(v)) {
		cmf_reply_error(resp, 422, "kubernetesClusterName is not supported: cmf manages no Kubernetes clusters");
		goto bad;
	}
	/* The name: `name` (deprecated by CMF) or metadata.name; both must agree when both are given. */
	jname = json_object_get(in->body, "name");
	if (jname != NULL && !json_is_string(jname)) {
		cmf_reply_error(resp, 400, "name must be a string");
		goto bad;
	}
	if (jname != NULL && cmf_resource_name_check("name", json_string_value(jname), why, sizeof(why)) != 0) {
		cmf_reply_error(resp, 400, "%s", why);
		goto bad;
	}
	meta = json_object_get(in->body, "metadata");
	if (meta == NULL && jname == NULL) {
		cmf_reply_error(resp, 400, "metadata.name is required (or the deprecated name)");
		goto bad;
	}
	if (meta == NULL) {
		meta = json_pack("{s:O}", "name", jname);
	} else if (json_is_object(meta) && json_object_get(meta, "name") == NULL && jname != NULL) {
		meta = json_copy(meta);
		if (meta != NULL)
			json_object_set(meta, "name", jname);
	} else {
		json_incref(meta);
	}
	/* metadata is checked as every resource's is: wrapped in an envelope of its own. */
	in->envelope = json_pack("{s:s,s:s,s:o}", "apiVersion", CMF_API_VERSION, "kind", "Environment", "metadata", meta);
	if (in->envelope == NULL) {
		cmf_reply_error(resp, 500, "internal error");
		goto bad;
	}
	if (cmf_resource_envelope(in->envelope, "Environment", NULL, resp, &in->name, &in->labels, &in->annotations) !=
	    0)
		goto bad;
	if (jname != NULL && strcmp(json_string_value(jname), in->name) != 0) {
		cmf_reply_error(resp, 422, "name '%s' and metadata.name '%s' differ: send one name", json_string_value(jname),
				in->name);
		goto bad;
	}
	v = json_object_get(in->body, "kubernetesNamespace");
	if (v == NULL || json_is_null(v)) {
		cmf_reply_error(resp, 400, "kubernetesNamespace is required");
		goto bad;
	}
	if (!json_is_string(v)) {
		cmf_reply_error(resp, 400, "kubernetesNamespace must be a string");
		goto bad;
	}
	in->ns = json_string_value(v);
	if (!namespace_ok(in->ns)) {
		cmf_reply_error(resp, 400,
				"kubernetesNamespace '%.64s' is not valid: 1 to 253 lowercase letters, digits, '-' and "
				"'.', starting and ending with a letter or digit",
				in->ns);
		goto bad;
	}
	in->defaults = json_object();
	for (size_t i = 0; default_keys[i] != NULL; i++) {
		v = json_object_get(in->body, default_keys[i]);
		if (v == NULL || json_is_null(v))
			continue;
		if (!json_is_object(v)) {
			cmf_reply_error(resp, 400, "%s must be an object", default_keys[i]);
			goto bad;
		}
		json_object_set(in->defaults, default_keys[i], v);
	}
	return 0;
bad:
	env_input_clear(in);
	return -1;
}

/* POST: create the environment, or replace the one of that name (CMF's createOrUpdateEnvironment). */
void
cmf_api_environments_put(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct env_input in;
	struct db_environment *e = NULL;
	struct db_audit audit;
	char what[300], res[300];
	struct db_conn *c;
	bool created = false;
	int r;

	(void)args;
	if (env_input(req, resp, &in) != 0)
		return;
	snprintf(what, sizeof(what), "environment '%s'", in.name);
	c = cmf_app_conn(req->app);
	/* Recorded as environment.update instead when the environment existed (decided in the transaction). */
	cmf_audit_init(&audit, req, "environment.create", "success", 200, res, sizeof(res), "environment/%s", in.name);
	r = db_environment_put(c, in.name, in.ns, in.labels, in.annotations, in.defaults, &audit, "environment.update",
			       &e, &created);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, what);
		cmf_audit_fail(req, &audit, resp->status, r);
		goto out;
	}
	if (!created)
		audit.action = "environment.update";
	cmf_audit_done(req, &audit);
	cmf_info("environment %s %s (uid %s)", e->name, created ? "created" : "updated", e->uid);
	cmf_reply_json(resp, 200, env_json(e));
out:
	db_environment_free(e);
	env_input_clear(&in);
}

void
cmf_api_environments_get(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_environment *e = NULL;
	struct db_conn *c = cmf_app_conn(req->app);
	char what[300];
	int r;

	if (cmf_resource_path_name(resp, "environment", args[0]) != 0)
		return;
	snprintf(what, sizeof(what), "environment '%s'", args[0]);
	r = db_environment_get(c, args[0], &e);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, what);
		return;
	}
	cmf_reply_json(resp, 200, env_json(e));
	db_environment_free(e);
}

void
cmf_api_environments_list(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_environment **items = NULL;
	struct db_conn *c;
	long long page, total = 0;
	size_t n = 0;
	json_t *arr;
	int size, r;

	(void)args;
	if (cmf_resource_page(req, resp, &page, &size) != 0)
		return;
	c = cmf_app_conn(req->app);
	r = db_environment_list(c, page * size, size, &items, &n, &total);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, "environments");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr, env_json(items[i]));
		db_environment_free(items[i]);
	}
	free(items);
	cmf_reply_json(resp, 200, cmf_resource_page_json(page, size, total, arr));
}

void
cmf_api_environments_delete(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_conn *c = cmf_app_conn(req->app);
	struct db_audit audit;
	char what[300], res[300];
	int r;

	if (cmf_resource_path_name(resp, "environment", args[0]) != 0)
		return;
	snprintf(what, sizeof(what), "environment '%s'", args[0]);
	cmf_audit_init(&audit, req, "environment.delete", "success", 204, res, sizeof(res), "environment/%s", args[0]);
	r = db_environment_delete(c, args[0], &audit);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, what);
		cmf_audit_fail(req, &audit, resp->status, r);
		return;
	}
	cmf_audit_done(req, &audit);
	cmf_info("environment %s deleted, with its secret mappings", args[0]);
	cmf_reply_empty(resp, 204);
}

/* ---- Secret mappings ------------------------------------------------------------------------------- */

#define MAPPING_KIND "EnvironmentSecretMapping"

/* An EnvironmentSecretMapping as returned. spec.secretName names a Secret; it is not secret itself. */
static json_t *
mapping_json(const struct db_secret_mapping *m)
{
	return json_pack("{s:s,s:s,s:o,s:{s:s}}", "apiVersion", CMF_API_VERSION, "kind", MAPPING_KIND, "metadata",
			 cmf_resource_metadata_json(m->name, m->uid, m->created, m->updated, m->labels, m->annotations),
			 "spec", "secretName", m->secret_name);
}

struct mapping_input {
	json_t *body;
	const char *name, *secret;
	json_t *labels, *annotations;
};

static void
mapping_input_clear(struct mapping_input *in)
{
	json_decref(in->body);
	json_decref(in->labels);
	json_decref(in->annotations);
	memset(in, 0, sizeof(*in));
}

static int
mapping_input(struct cmf_request *req, struct cmf_response *resp, struct mapping_input *in)
{
	static const char *const top_keys[] = { "spec", NULL };
	static const char *const spec_keys[] = { "secretName", NULL };
	char why[512];
	json_t *spec, *v;

	memset(in, 0, sizeof(*in));
	if (cmf_resource_body(req, resp, &in->body) != 0)
		return -1;
	if (cmf_resource_envelope(in->body, MAPPING_KIND, top_keys, resp, &in->name, &in->labels, &in->annotations) !=
	    0)
		goto bad;
	spec = json_object_get(in->body, "spec");
	if (spec == NULL) {
		cmf_reply_error(resp, 400, "spec is required (spec.secretName: the secret to map)");
		goto bad;
	}
	if (cmf_resource_object_check(spec, "spec", spec_keys, resp) != 0)
		goto bad;
	v = json_object_get(spec, "secretName");
	if (v == NULL) {
		cmf_reply_error(resp, 400, "spec.secretName is required");
		goto bad;
	}
	if (!json_is_string(v)) {
		cmf_reply_error(resp, 400, "spec.secretName must be a string");
		goto bad;
	}
	if (cmf_resource_name_check("spec.secretName", json_string_value(v), why, sizeof(why)) != 0) {
		cmf_reply_error(resp, 400, "%s", why);
		goto bad;
	}
	in->secret = json_string_value(v);
	return 0;
bad:
	mapping_input_clear(in);
	return -1;
}

/* The reply for a failed mapping call: which of environment, mapping or secret is missing, or the rest. */
static void
mapping_error(struct cmf_response *resp, int r, enum db_missing missing, const char *env, const char *name,
	      const char *secret)
{
	char what[600];

	if (r == DB_ERR_NOT_FOUND && missing == DB_MISSING_PARENT) {
		cmf_reply_error(resp, 404, "environment '%s' not found", env);
	} else if (r == DB_ERR_NOT_FOUND && missing == DB_MISSING_REF) {
		cmf_reply_error(resp, 404, "secret '%s' not found: create it before mapping it", secret);
	} else if (r == DB_ERR_CONFLICT) {
		cmf_reply_error(resp, 409, "secret mapping '%s' already exists in environment '%s'", name, env);
	} else {
		snprintf(what, sizeof(what), "secret mapping '%s' in environment '%s'", name, env);
		cmf_reply_db_error(resp, r, what);
	}
}

/* POST (path_name NULL: create) or PUT (path_name: update that mapping). */
static void
mapping_write(struct cmf_request *req, struct cmf_response *resp, const char *env, const char *path_name)
{
	struct mapping_input in;
	struct db_secret_mapping *m = NULL;
	enum db_missing missing = DB_MISSING_NONE;
	struct db_audit audit;
	char res[600];
	struct db_conn *c;
	int r;

	if (cmf_resource_path_name(resp, "environment", env) != 0)
		return;
	if (path_name != NULL && cmf_resource_path_name(resp, "secret mapping", path_name) != 0)
		return;
	if (mapping_input(req, resp, &in) != 0)
		return;
	if (path_name != NULL && strcmp(in.name, path_name) != 0) {
		cmf_reply_error(resp, 422, "metadata.name '%s' does not match the secret mapping name '%s' in the path",
				in.name, path_name);
		goto out;
	}
	c = cmf_app_conn(req->app);
	cmf_audit_init(&audit, req, path_name == NULL ? "secret-mapping.create" : "secret-mapping.update", "success",
		       200, res, sizeof(res), "secret-mapping/%s/%s", env, in.name);
	if (path_name == NULL)
		r = db_secret_mapping_create(c, env, in.name, in.secret, in.labels, in.annotations, &audit, &m, &missing);
	else
		r = db_secret_mapping_update(c, env, in.name, in.secret, in.labels, in.annotations, &audit, &m, &missing);
	if (r != DB_OK) {
		mapping_error(resp, r, missing, env, in.name, in.secret);
		cmf_audit_fail(req, &audit, resp->status, r);
		goto out;
	}
	cmf_audit_done(req, &audit);
	cmf_info("secret mapping %s in environment %s %s (secret %s)", m->name, env,
		 path_name == NULL ? "created" : "updated", m->secret_name);
	cmf_reply_json(resp, 200, mapping_json(m));
out:
	db_secret_mapping_free(m);
	mapping_input_clear(&in);
}

void
cmf_api_secret_mappings_create(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	mapping_write(req, resp, args[0], NULL);
}

void
cmf_api_secret_mappings_update(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	mapping_write(req, resp, args[0], args[1]);
}

void
cmf_api_secret_mappings_get(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_secret_mapping *m = NULL;
	enum db_missing missing = DB_MISSING_NONE;
	struct db_conn *c = cmf_app_conn(req->app);
	int r;

	if (cmf_resource_path_name(resp, "environment", args[0]) != 0 ||
	    cmf_resource_path_name(resp, "secret mapping", args[1]) != 0)
		return;
	r = db_secret_mapping_get(c, args[0], args[1], &m, &missing);
	if (r != DB_OK) {
		mapping_error(resp, r, missing, args[0], args[1], NULL);
		return;
	}
	cmf_reply_json(resp, 200, mapping_json(m));
	db_secret_mapping_free(m);
}

void
cmf_api_secret_mappings_list(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_secret_mapping **items = NULL;
	struct db_conn *c;
	long long page, total = 0;
	size_t n = 0;
	json_t *arr;
	int size, r;

	if (cmf_resource_path_name(resp, "environment", args[0]) != 0)
		return;
	if (cmf_resource_page(req, resp, &page, &size) != 0)
		return;
	c = cmf_app_conn(req->app);
	r = db_secret_mapping_list(c, args[0], page * size, size, &items, &n, &total);
	if (r == DB_ERR_NOT_FOUND) {
		cmf_reply_error(resp, 404, "environment '%s' not found", args[0]);
		return;
	}
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, "secret mappings");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr, mapping_json(items[i]));
		db_secret_mapping_free(items[i]);
	}
	free(items);
	cmf_reply_json(resp, 200, cmf_resource_page_json(page, size, total, arr));
}

void
cmf_api_secret_mappings_delete(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	enum db_missing missing = DB_MISSING_NONE;
	struct db_conn *c = cmf_app_conn(req->app);
	struct db_audit audit;
	char res[600];
	int r;

	if (cmf_resource_path_name(resp, "environment", args[0]) != 0 ||
	    cmf_resource_path_name(resp, "secret mapping", args[1]) != 0)
		return;
	cmf_audit_init(&audit, req, "secret-mapping.delete", "success", 204, res, sizeof(res), "secret-mapping/%s/%s",
		       args[0], args[1]);
	r = db_secret_mapping_delete(c, args[0], args[1], &audit, &missing);
	if (r != DB_OK) {
		mapping_error(resp, r, missing, args[0], args[1], NULL);
		cmf_audit_fail(req, &audit, resp->status, r);
		return;
	}
	cmf_audit_done(req, &audit);
	cmf_info("secret mapping %s in environment %s deleted", args[1], args[0]);
	cmf_reply_empty(resp, 204);
}
