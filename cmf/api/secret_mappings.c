/* cmf EnvironmentSecretMappings (/cmf/api/v1/environments/{env}/secret-mappings): connectionSecretId → Secret. */
#include "cmf/api/kind.h"
#include "cmf/api/resource.h"
#include "cmf/http/reply.h"

/* An EnvironmentSecretMapping as returned. spec.secretName names a Secret; it is not secret itself. */
static json_t *
mapping_json(json_t *row, const struct cmf_kind_input *in)
{
	(void)in;
	return cmf_kind_envelope(&cmf_kind_secret_mapping, row,
				 json_pack("{s:O}", "secretName", json_object_get(row, "secretName")), NULL);
}

static int
mapping_input(struct cmf_call *call, json_t *spec, struct cmf_kind_input *in)
{
	json_t *v;

	if (cmf_resource_name_member(spec, "secretName", "spec.secretName", true, "a string", call->resp, &v) != 0)
		return -1;
	return cmf_kind_set(call, in, "secretName", v);
}

static const char *const spec_keys[] = { "secretName", NULL };

const struct cmf_kind cmf_kind_secret_mapping = {
	.kind = "EnvironmentSecretMapping", .what = "secret mapping", .audit = "secret-mapping",
	.parent_what = "environment", .segs = { "environments", "*", "secret-mappings" }, .ops = CMF_OPS_ALL,
	.actions = { [CMF_OP_CREATE] = "secret-mapping.create", [CMF_OP_UPDATE] = "secret-mapping.update",
		     [CMF_OP_DELETE] = "secret-mapping.delete" },
	.create = DB_WRITE_CREATE, .store = &db_kind_secret_mapping, .spec_keys = spec_keys,
	.spec_hint = " (spec.secretName: the secret to map)", .input = mapping_input, .to_json = mapping_json,
	.ref_field = "secretName", .ref_what = "secret", .ref_advice = "create it before mapping it",
	.exists_in_parent = true,
};
