/* cmf CsfleConfigs API (/cmf/api/v1/csfle-configs): CSFLE declarations, checked, and their Schema Registry ruleSet. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/http/audit.h"
#include "cmf/csfle/csfle.h"
#include "cmf/log.h"
#include "cmf/http/reply.h"
#include "cmf/api/resource.h"
#include "cmf/api/routes.h"

/* A CsfleConfig as returned: status.warnings are the checks' advice, recomputed on every read. */
static json_t *
csfle_json(const struct db_csfle *f)
{
	json_t *problems = json_array(), *warnings = json_array();
	const char *id;

	/* Stored specs passed the checks when written; a later, stricter check shows up as a warning here. */
	cmf_csfle_check(f->spec, problems, warnings);
	/* What the spec alone cannot tell: where its credentials are mapped. */
	id = json_string_value(json_object_get(json_object_get(f->spec, "kms"), "credentialsSecretId"));
	if (id != NULL && json_array_size(f->environments_with_access) == 0 && warnings != NULL)
		json_array_append_new(warnings,
				      json_sprintf("spec.kms.credentialsSecretId '%s' is mapped in no environment: "
						   "resolutions of the databases naming this CsfleConfig get 409 until one maps it",
						   id));
	if (json_array_extend(warnings, problems) != 0) {
		json_decref(warnings);
		warnings = NULL;
	}
	json_decref(problems);
	return json_pack("{s:s,s:s,s:o,s:O,s:{s:o*,s:O,s:O}}", "apiVersion", CMF_API_VERSION, "kind", "CsfleConfig",
			 "metadata",
			 cmf_resource_metadata_json(f->name, f->uid, f->created, f->updated, f->labels, f->annotations),
			 "spec", f->spec, "status", "warnings", warnings, "databases", f->databases,
			 "environmentsWithAccess", f->environments_with_access);
}

/* POST (path_name NULL: create) or PUT (path_name: update). */
static void
csfle_write(struct cmf_request *req, struct cmf_response *resp, const char *path_name)
{
	static const char *const top_keys[] = { "spec", NULL };
	json_t *body = NULL, *labels = NULL, *annotations = NULL, *spec, *problems = NULL, *warnings = NULL;
	const char *name, *id;
	struct db_csfle *f = NULL;
	struct db_audit audit;
	char action[32], res[300], what[300], why[512];
	int r;

	if (path_name != NULL && cmf_resource_path_name(resp, "CsfleConfig", path_name) != 0)
		return;
	if (cmf_resource_body(req, resp, &body) != 0)
		return;
	if (cmf_resource_envelope(body, "CsfleConfig", top_keys, resp, &name, &labels, &annotations) != 0)
		goto out;
	if (path_name != NULL && strcmp(name, path_name) != 0) {
		cmf_reply_error(resp, 422, "metadata.name '%s' does not match the CsfleConfig name '%s' in the path", name,
				path_name);
		goto out;
	}
	spec = json_object_get(body, "spec");
	if (!json_is_object(spec)) {
		cmf_reply_error(resp, 400, "spec is required and must be an object");
		goto out;
	}
	problems = json_array();
	warnings = json_array();
	if (problems == NULL || warnings == NULL) {
		cmf_reply_error(resp, 500, "out of memory");
		goto out;
	}
	/* Every problem at once: one round trip fixes the whole declaration. */
	cmf_csfle_check(spec, problems, warnings);
	/* A connectionSecretId, so a mapping's name: one that no mapping can have would only 409 later. */
	id = json_string_value(json_object_get(json_object_get(spec, "kms"), "credentialsSecretId"));
	if (id != NULL && cmf_resource_name_check("spec.kms.credentialsSecretId", id, why, sizeof(why)) != 0)
		json_array_append_new(problems, json_string(why));
	/* The spec is public (returned by every read, in the ruleSet): a Vault token in the URL would leak. */
	id = json_string_value(json_object_get(json_object_get(spec, "kms"), "keyId"));
	if (id != NULL && cmf_resource_url_has_credentials(id))
		json_array_append_new(problems, json_string("spec.kms.keyId holds credentials in its URL: put them in the "
							    "secret that spec.kms.credentialsSecretId names"));
	if (json_array_size(problems) > 0) {
		cmf_reply_problems(resp, 422, problems);
		goto out;
	}
	snprintf(action, sizeof(action), "csfle-config.%s", path_name == NULL ? "create" : "update");
	snprintf(what, sizeof(what), "CsfleConfig '%s'", name);
	cmf_audit_init(&audit, req, action, "success", 200, res, sizeof(res), "csfle-config/%s", name);
	if (path_name == NULL)
		r = db_csfle_create(cmf_app_conn(req->app), name, labels, annotations, spec, &audit, &f);
	else
		r = db_csfle_update(cmf_app_conn(req->app), name, labels, annotations, spec, &audit, &f);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, what);
		cmf_audit_fail(req, &audit, resp->status, r);
		goto out;
	}
	cmf_audit_done(req, &audit);
	cmf_info("CsfleConfig %s %s (uid %s, %zu warning%s)", f->name, path_name == NULL ? "created" : "updated", f->uid,
		 json_array_size(warnings), json_array_size(warnings) == 1 ? "" : "s");
	cmf_reply_json(resp, 200, csfle_json(f));
out:
	db_csfle_free(f);
	json_decref(problems);
	json_decref(warnings);
	json_decref(labels);
	json_decref(annotations);
	json_decref(body);
}

/* Read one for a GET handler; 0 with *out, or -1 with the reply sent. */
static int
csfle_load(struct cmf_request *req, struct cmf_response *resp, const char *name, struct db_csfle **out)
{
	char what[300];
	int r;

	*out = NULL;
	if (cmf_resource_path_name(resp, "CsfleConfig", name) != 0)
		return -1;
	r = db_csfle_get(cmf_app_conn(req->app), name, out);
	if (r != DB_OK) {
		snprintf(what, sizeof(what), "CsfleConfig '%s'", name);
		cmf_reply_db_error(resp, r, what);
		return -1;
	}
	return 0;
}

void
cmf_api_csfle_list(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_csfle **items = NULL;
	long long page, total = 0;
	size_t n = 0;
	json_t *arr;
	int size, r;

	(void)args;
	if (cmf_resource_page(req, resp, &page, &size) != 0)
		return;
	r = db_csfle_list(cmf_app_conn(req->app), page * size, size, &items, &n, &total);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, "CsfleConfigs");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr, csfle_json(items[i]));
		db_csfle_free(items[i]);
	}
	free(items);
	cmf_reply_json(resp, 200, cmf_resource_page_json(page, size, total, arr));
}

void
cmf_api_csfle_create(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	(void)args;
	csfle_write(req, resp, NULL);
}

void
cmf_api_csfle_get(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_csfle *f;

	if (csfle_load(req, resp, args[0], &f) != 0)
		return;
	cmf_reply_json(resp, 200, csfle_json(f));
	db_csfle_free(f);
}

void
cmf_api_csfle_update(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	csfle_write(req, resp, args[0]);
}

void
cmf_api_csfle_delete(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_audit audit;
	char what[300], res[300], names[CMF_NAMES_JOIN_MAX];
	json_t *databases = NULL;
	int r;

	if (cmf_resource_path_name(resp, "CsfleConfig", args[0]) != 0)
		return;
	snprintf(what, sizeof(what), "CsfleConfig '%s'", args[0]);
	cmf_audit_init(&audit, req, "csfle-config.delete", "success", 204, res, sizeof(res), "csfle-config/%s", args[0]);
	r = db_csfle_delete(cmf_app_conn(req->app), args[0], &audit, &databases);
	if (r == DB_ERR_CONFLICT) {
		/* Deleting it would silently switch encryption off for these databases' jobs. */
		cmf_resource_names_join(databases, names, sizeof(names));
		cmf_reply_error(resp, 409, "%s is used by database%s %s: remove spec.csfleConfig from them first", what,
				json_array_size(databases) > 1 ? "s" : "",
				json_array_size(databases) > 0 ? names : "(created concurrently)");
		json_decref(databases);
		cmf_audit_fail(req, &audit, resp->status, r);
		return;
	}
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, what);
		cmf_audit_fail(req, &audit, resp->status, r);
		return;
	}
	cmf_audit_done(req, &audit);
	cmf_info("CsfleConfig %s deleted", args[0]);
	cmf_reply_empty(resp, 204);
}

void
cmf_api_csfle_ruleset(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_csfle *f;
	json_t *problems, *ruleset;

	if (csfle_load(req, resp, args[0], &f) != 0)
		return;
	ruleset = cmf_csfle_ruleset(f->spec);
	if (ruleset != NULL) {
		cmf_reply_json(resp, 200, ruleset);
	} else {
		/* Stored before a stricter check: say what to fix rather than render rules that may not hold. */
		problems = json_array();
		cmf_csfle_check(f->spec, problems, NULL);
		if (json_array_size(problems) > 0)
			cmf_reply_problems(resp, 422, problems);
		else
			cmf_reply_error(resp, 500, "out of memory");
		json_decref(problems);
	}
	db_csfle_free(f);
}
