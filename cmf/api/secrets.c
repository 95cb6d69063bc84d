/* cmf Secrets (/cmf/api/v1/secrets): CMF's shapes; spec.data values are sealed and never returned, only masked. */
#include <stdio.h>

#include "cmf/api/kind.h"
#include "cmf/api/resource.h"
#include "cmf/http/reply.h"

/* What every read shows in place of a data value (CMF masks the same way). */
#define MASK "****"

/* A Secret as returned: data keys kept, each value masked; status.version is a string in CMF's schema. */
static json_t *
secret_json(json_t *row, const struct cmf_kind_input *in)
{
	json_t *masked = json_object(), *v;
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
	return cmf_kind_envelope(&cmf_kind_secret, row, json_pack("{s:o}", "data", masked),
				 json_pack("{s:s,s:O}", "version", version, "environments",
					   json_object_get(row, "environments")));
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
	return cmf_kind_set(call, in, "data", data);
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
	.users_advice = "delete those secret mappings first",
};
