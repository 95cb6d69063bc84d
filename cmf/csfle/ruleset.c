/* cmf csfle: the Schema Registry ruleSet (domain and encoding rules) built from a CsfleConfig spec without problems. */
#include <stdio.h>
#include <string.h>

#include "cmf/csfle/csfle.h"

json_t *
cmf_csfle_ruleset(json_t *spec)
{
	json_t *problems = json_array(), *domain = json_array(), *encoding = json_array(), *out = NULL;
	json_t *kms, *dek, *rules, *r, *v;
	const char *alg;
	size_t i;
	int preserve;

	if (problems == NULL || domain == NULL || encoding == NULL)
		goto out;
	cmf_csfle_check(spec, problems, NULL);
	if (json_array_size(problems) > 0)
		goto out;
	kms = json_object_get(spec, "kms");
	dek = json_object_get(spec, "dek");
	alg = json_string_value(json_object_get(dek, "algorithm"));
	preserve = json_is_true(json_object_get(spec, "preserveSourceFields"));
	rules = json_object_get(spec, "rules");
	json_array_foreach (rules, i, r) {
		const char *type = json_string_value(json_object_get(r, "type"));
		const char *mode = json_string_value(json_object_get(r, "mode"));
		int payload = type != NULL && strcmp(type, "ENCRYPT_PAYLOAD") == 0;
		json_t *params, *rule;
		char days[32];

		params = json_pack("{s:s,s:s,s:s,s:s}", "encrypt.kek.name",
				   json_string_value(json_object_get(json_object_get(spec, "kek"), "name")),
				   "encrypt.kms.key.id", json_string_value(json_object_get(kms, "keyId")),
				   "encrypt.kms.type", json_string_value(json_object_get(kms, "type")),
				   "encrypt.dek.algorithm", alg != NULL ? alg : "AES256_GCM");
		if (params == NULL)
			goto fail;
		if ((v = json_object_get(dek, "expiryDays")) != NULL) {
			snprintf(days, sizeof(days), "%lld", (long long)json_integer_value(v));
			json_object_set_new(params, "encrypt.dek.expiry.days", json_string(days));
		}
		json_object_set_new(params, "preserve.source.fields", json_string(preserve ? "true" : "false"));
		rule = json_pack("{s:O,s:s,s:s,s:s}", "name", json_object_get(r, "name"), "kind", "TRANSFORM", "mode",
				 mode != NULL ? mode : "WRITEREAD", "type", payload ? "ENCRYPT_PAYLOAD" : "ENCRYPT");
		if (rule == NULL) {
			json_decref(params);
			goto fail;
		}
		if (!payload)
			json_object_set(rule, "tags", json_object_get(r, "tags"));
		json_object_set_new(rule, "params", params);
		if ((v = json_object_get(r, "onSuccess")) != NULL)
			json_object_set(rule, "onSuccess", v);
		if ((v = json_object_get(r, "onFailure")) != NULL)
			json_object_set(rule, "onFailure", v);
		json_object_set_new(rule, "disabled", json_boolean(json_is_true(json_object_get(r, "disabled"))));
		json_array_append_new(payload ? encoding : domain, rule);
	}
	out = json_pack("{s:O,s:O}", "domainRules", domain, "encodingRules", encoding);
	goto out;
fail:
	out = NULL;
out:
	json_decref(problems);
	json_decref(domain);
	json_decref(encoding);
	return out;
}
