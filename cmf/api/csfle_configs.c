/* cmf CsfleConfigs (/cmf/api/v1/csfle-configs): CSFLE declarations, checked, and their Schema Registry ruleSet. */
#include <string.h>

#include "cmf/api/kind.h"
#include "cmf/api/resource.h"
#include "cmf/api/routes.h"
#include "cmf/csfle/csfle.h"
#include "cmf/http/reply.h"

/* A CsfleConfig as returned: status.warnings are the checks' advice, recomputed on every read. */
static json_t *
csfle_json(json_t *row, const struct cmf_kind_input *in)
{
	json_t *spec = json_object_get(row, "spec"), *envs = json_object_get(row, "environmentsWithAccess");
	json_t *problems = json_array(), *warnings = json_array();
	const char *id;

	/* Stored specs passed the checks when written; a later, stricter check shows up as a warning here. */
	cmf_csfle_check(spec, problems, warnings);
	/* What the spec alone cannot tell: where its credentials are mapped. */
	id = json_string_value(json_object_get(json_object_get(spec, "kms"), "credentialsSecretId"));
	if (id != NULL && json_array_size(envs) == 0 && warnings != NULL)
		json_array_append_new(warnings,
				      json_sprintf("spec.kms.credentialsSecretId '%s' is mapped in no environment: "
						   "resolutions of the databases naming this CsfleConfig get 409 until one maps it",
						   id));
	/* The write's own advice (a forced change of keys): in this response only. */
	if (in != NULL && in->warnings != NULL && warnings != NULL)
		json_array_extend(warnings, in->warnings);
	if (json_array_extend(warnings, problems) != 0) {
		json_decref(warnings);
		warnings = NULL;
	}
	json_decref(problems);
	return cmf_kind_envelope(&cmf_kind_csfle_config, row, json_incref(spec),
				 json_pack("{s:o*,s:O,s:O}", "warnings", warnings, "databases",
					   json_object_get(row, "databases"), "environmentsWithAccess", envs));
}

/* The spec, with every problem at once (422): one round trip fixes the whole declaration. */
static int
csfle_input(struct cmf_call *call, json_t *spec, struct cmf_kind_input *in)
{
	json_t *problems = json_array(), *warnings = json_array();
	char why[512];
	const char *id;
	int ret = -1;

	if (problems == NULL || warnings == NULL) {
		cmf_reply_error(call->resp, 500, "out of memory");
		goto out;
	}
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
		cmf_reply_problems(call->resp, 422, problems);
		goto out;
	}
	ret = cmf_kind_set(call, in, "spec", spec);
out:
	json_decref(problems);
	json_decref(warnings);
	return ret;
}

/*
 * Before an update: readers use the latest ruleSet, so changing the KEK, the KMS key or the DEK algorithm
 * of a config that databases use leaves what they wrote before unreadable. Refused (409, naming them)
 * unless ?force=true, which keeps the advice in status.warnings. The databases are those the stored row
 * lists when read here; one named in between is not counted (a forced change is the operator's call).
 */
static int
csfle_prepare(struct cmf_call *call, const char *const *keys, bool update, struct cmf_kind_input *in)
{
	const char *force = cmf_request_query(call->req, "force");
	char changed[128], names[CMF_NAMES_JOIN_MAX];
	json_t *stored = NULL, *dbs, *w;
	size_t n;
	int r, ret = -1;

	if (force != NULL && strcmp(force, "true") != 0 && strcmp(force, "false") != 0) {
		cmf_reply_error(call->resp, 400, "query parameter force must be true or false");
		return -1;
	}
	if (!update)
		return 0;
	r = cmf_kind_read(call, &cmf_kind_csfle_config, keys, &stored);
	if (r != 0)
		return r > 0 ? 0 : -1; /* none: the write's 404 */
	dbs = json_object_get(stored, "databases");
	if (json_array_size(dbs) == 0 || cmf_csfle_identity_changes(json_object_get(stored, "spec"),
								    json_object_get(in->doc, "spec"), changed,
								    sizeof(changed)) == 0) {
		ret = 0;
		goto out;
	}
	n = json_array_size(dbs);
	cmf_resource_names_join(dbs, names, sizeof(names));
	if (force == NULL || strcmp(force, "true") != 0) {
		cmf_reply_error(call->resp, 409,
				"CsfleConfig '%s' is used by database%s %s: changing %s leaves the records written "
				"before unreadable (readers use the latest ruleSet, which would no longer name the keys "
				"they were encrypted with); create a new CsfleConfig for new data, or repeat with "
				"?force=true if those records may be lost",
				keys[0], n > 1 ? "s" : "", names, changed);
		goto out;
	}
	w = json_sprintf("%s changed with force=true while database%s %s use%s this CsfleConfig: records written "
			 "before can no longer be read with the latest ruleSet",
			 changed, n > 1 ? "s" : "", names, n > 1 ? "" : "s");
	if (in->warnings == NULL)
		in->warnings = json_array();
	if (w == NULL || json_array_append_new(in->warnings, w) != 0) {
		cmf_reply_error(call->resp, 500, "out of memory");
		goto out;
	}
	ret = 0;
out:
	json_decref(stored);
	return ret;
}

const struct cmf_kind cmf_kind_csfle_config = {
	.kind = "CsfleConfig", .what = "CsfleConfig", .audit = "csfle-config", .segs = { "csfle-configs" },
	.ops = CMF_OPS_ALL,
	.actions = { [CMF_OP_CREATE] = "csfle-config.create", [CMF_OP_UPDATE] = "csfle-config.update",
		     [CMF_OP_DELETE] = "csfle-config.delete" },
	.create = DB_WRITE_CREATE, .store = &db_kind_csfle_config, .spec_hint = " and must be an object",
	.name_first = true,
	.input = csfle_input, .prepare = csfle_prepare, .to_json = csfle_json,
	/* Deleting it would silently switch encryption off for these databases' jobs. */
	.users = "is used by database", .users_none = "is used by database (created concurrently)",
	.users_advice = "remove spec.csfleConfig from them first",
	/* The store's clash check (db/csfle.c): one KEK, one KMS key. */
	.clash = "names its KEK (spec.kek.name) with another KMS key (spec.kms.type, spec.kms.keyId) than CsfleConfig",
	.clash_advice = "Confluent's clients refuse a KEK whose KMS key differs from the rule's, so every write would "
			"fail; use the same KMS key, or another spec.kek.name",
};

void
cmf_api_csfle_ruleset(struct cmf_call *call)
{
	struct cmf_response *resp = call->resp;
	json_t *row = NULL, *spec, *problems, *ruleset;
	int r;

	if (cmf_resource_path_name(resp, "CsfleConfig", call->args[0]) != 0)
		return;
	r = cmf_kind_read(call, &cmf_kind_csfle_config, call->args, &row);
	if (r > 0)
		cmf_reply_error(resp, 404, "CsfleConfig '%s' not found", call->args[0]);
	if (r != 0)
		return;
	spec = json_object_get(row, "spec");
	ruleset = cmf_csfle_ruleset(spec);
	if (ruleset != NULL) {
		cmf_reply_json(resp, 200, ruleset);
	} else {
		/* Stored before a stricter check: say what to fix rather than render rules that may not hold. */
		problems = json_array();
		cmf_csfle_check(spec, problems, NULL);
		if (json_array_size(problems) > 0)
			cmf_reply_problems(resp, 422, problems);
		else
			cmf_reply_error(resp, 500, "out of memory");
		json_decref(problems);
	}
	json_decref(row);
}
