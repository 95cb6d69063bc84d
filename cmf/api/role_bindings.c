/*
 * cmf role bindings (/cmf/api/v1/role-bindings, admin only): the role of a principal that is not a cmf
 * token — a client certificate's mapped name, "cert:<name>" (auth.mtls.principal), or an OIDC token's
 * "oidc:<issuer>#<subject>" (auth.oauth). A principal has one
 * binding; without one it is authenticated and refused (403). Same roles and scoping as tokens.
 */
#include <string.h>

#include "cmf/api/kind.h"
#include "cmf/api/resource.h"
#include "cmf/http/reply.h"

/* An environment-reader's scope: as for tokens, 64 environments bound the row. */

static json_t *
binding_json(json_t *row, const struct cmf_kind_input *in)
{
	(void)in;
	return cmf_kind_envelope(&cmf_kind_role_binding, row,
				 json_pack("{s:O,s:O,s:O}", "principal", json_object_get(row, "principal"), "role",
					   json_object_get(row, "role"), "environments",
					   json_object_get(row, "environments")),
				 NULL);
}

/* "cert:" or "oidc:" and a name that fits struct cmf_principal's name (the prefix included). */
static bool
principal_ok(const char *p)
{
	size_t n = p != NULL ? strlen(p) : 0;

	if (n < 6 || n >= sizeof(((struct cmf_principal *)0)->name) ||
	    (strncmp(p, "cert:", 5) != 0 && strncmp(p, "oidc:", 5) != 0))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return false;
	return true;
}

static int
binding_input(struct cmf_call *call, json_t *spec, struct cmf_kind_input *in)
{
	struct cmf_response *resp = call->resp;
	const char *role, *principal = json_string_value(json_object_get(spec, "principal"));
	json_t *envs = json_object_get(spec, "environments");

	if (!principal_ok(principal)) {
		cmf_reply_error(resp, 400,
				"spec.principal must be \"cert:<name>\" (the name a client certificate maps to, "
				"auth.mtls.principalMappingRules) or \"oidc:<issuer>#<subject>\" (an OIDC token's, "
				"auth.oauth), at most %zu characters",
				sizeof(((struct cmf_principal *)0)->name) - 1);
		return -1;
	}
	role = json_string_value(json_object_get(spec, "role"));
	if (role == NULL || (strcmp(role, "admin") != 0 && strcmp(role, "environment-reader") != 0 &&
			     strcmp(role, "metrics-reader") != 0)) {
		cmf_reply_error(resp, 400, "spec.role must be \"admin\", \"environment-reader\" or \"metrics-reader\"");
		return -1;
	}
	if (cmf_resource_environments_check(envs, resp) != 0)
		return -1;
	if ((strcmp(role, "environment-reader") == 0) != (json_array_size(envs) > 0)) {
		cmf_reply_error(resp, 422, json_array_size(envs) > 0
						   ? "spec.environments applies to the environment-reader role only"
						   : "an environment-reader binding needs spec.environments (the environments it may read)");
		return -1;
	}
	if (cmf_kind_set(call, in, "principal", json_object_get(spec, "principal")) != 0 ||
	    cmf_kind_set(call, in, "role", json_object_get(spec, "role")) != 0)
		return -1;
	return envs != NULL ? cmf_kind_set(call, in, "environments", envs) : 0;
}

/*
 * A principal has one binding: a write giving it a second one is 409 naming the one it has (the table's
 * unique principal still decides a race, with the generic "already exists").
 */
static int
binding_prepare(struct cmf_call *call, const char *const *keys, bool update, struct cmf_kind_input *in)
{
	const char *principal = json_string_value(json_object_get(in->doc, "principal"));
	struct db_role_binding *b = NULL;
	int r;

	(void)update;
	r = db_role_binding_lookup(cmf_call_conn(call), principal, &b);
	if (r == DB_ERR_NOT_FOUND)
		return 0;
	if (r != DB_OK) {
		cmf_reply_db_error(call->resp, r, NULL);
		return -1;
	}
	r = strcmp(b->name, keys[0]) == 0 ? 0 : -1;
	if (r != 0)
		cmf_reply_error(call->resp, 409,
				"principal '%s' already has role binding '%s': change that one (a principal has one role)",
				principal, b->name);
	db_role_binding_free(b);
	return r;
}

static const char *const spec_keys[] = { "principal", "role", "environments", NULL };

const struct cmf_kind cmf_kind_role_binding = {
	.kind = "RoleBinding", .what = "role binding", .audit = "role-binding", .segs = { "role-bindings" },
	.ops = CMF_OPS_ALL,
	.actions = { [CMF_OP_CREATE] = "role-binding.create", [CMF_OP_UPDATE] = "role-binding.update",
		     [CMF_OP_DELETE] = "role-binding.delete" },
	.create = DB_WRITE_CREATE, .store = &db_kind_role_binding, .spec_keys = spec_keys,
	.spec_hint = " (spec.principal: cert:<name> or oidc:<issuer>#<subject>; spec.role: admin, "
		     "environment-reader or metrics-reader)",
	.input = binding_input, .prepare = binding_prepare, .to_json = binding_json, .name_first = true,
};
