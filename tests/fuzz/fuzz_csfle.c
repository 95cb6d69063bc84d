// links: cmf/csfle/*.c cmf/text.c
/* libFuzzer harness for cmf/csfle/: any JSON as a CsfleConfig spec, credentials or resolved config, any text as a schema — never a crash; a ruleSet only for a spec without problems; every message valid UTF-8. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/csfle/csfle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
messages_valid(json_t *arr)
{
	size_t i;
	json_t *m;

	json_array_foreach (arr, i, m) {
		/* jansson refuses invalid UTF-8 in json_string(): a message that was not valid would be missing. */
		assert(json_is_string(m));
		assert(json_string_length(m) > 0 && json_string_length(m) < 1024);
	}
}

/*
 * cmf_csfle_apply on a spec (the input's "spec", or a fixed valid one) with the input's "creds",
 * "kafka" and "sr": either problems and nothing applied, or the serializer settings in sr and every
 * credential there; never a crash.
 */
static void
apply_holds(json_t *in)
{
	json_error_t e;
	json_t *spec = json_object_get(in, "spec"), *fixed = NULL, *kafka, *sr, *creds = json_object_get(in, "creds");
	json_t *problems = json_array(), *warnings = json_array(), *v;
	const char *k;

	if (spec == NULL)
		spec = fixed = json_loads("{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\",\"credentialsSecretId\":\"c\"},"
					  "\"kek\":{\"name\":\"k\"},\"rules\":[{\"name\":\"r\",\"tags\":[\"P\"]}]}",
					  0, &e);
	kafka = json_is_object(json_object_get(in, "kafka")) ? json_deep_copy(json_object_get(in, "kafka")) : json_object();
	sr = json_is_object(json_object_get(in, "sr")) ? json_deep_copy(json_object_get(in, "sr")) : json_object();
	if (spec == NULL || kafka == NULL || sr == NULL || problems == NULL || warnings == NULL)
		abort();
	if (cmf_csfle_apply(spec, "fuzz", creds, kafka, sr, problems, warnings) == 0 && json_array_size(problems) == 0) {
		assert(strcmp(json_string_value(json_object_get(sr, "auto.register.schemas")), "false") == 0);
		assert(strcmp(json_string_value(json_object_get(sr, "use.latest.version")), "true") == 0);
		if (json_object_get(json_object_get(spec, "kms"), "credentialsSecretId") != NULL)
			json_object_foreach (creds, k, v) {
				char key[600];

				snprintf(key, sizeof(key), "rule.executors._default_.param.%s", k);
				assert(json_equal(json_object_get(sr, key), v));
			}
	}
	messages_valid(problems);
	messages_valid(warnings);
	json_decref(problems);
	json_decref(warnings);
	json_decref(kafka);
	json_decref(sr);
	json_decref(fixed);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *problems = json_array(), *warnings = json_array(), *tags = json_array(), *j, *rs;
	char *text = malloc(size + 1);
	json_error_t e;

	if (text == NULL || problems == NULL || warnings == NULL || tags == NULL)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	j = json_loadb((const char *)data, size, JSON_DECODE_ANY, &e);
	if (j != NULL) {
		cmf_csfle_check(j, problems, warnings);
		rs = cmf_csfle_ruleset(j);
		/* A ruleSet exactly when the spec has no problem (memory permitting). */
		assert(rs == NULL || json_array_size(problems) == 0);
		if (rs != NULL) {
			assert(json_is_array(json_object_get(rs, "domainRules")));
			json_decref(rs);
		}
		cmf_csfle_check_credentials("hcvault", j, problems);
		cmf_csfle_check_credentials("gcp-kms", j, problems);
		cmf_csfle_check_resolved(j, json_object_get(j, "sr"), problems, warnings);
		apply_holds(j);
		json_decref(j);
	}
	cmf_csfle_check_schema("AVRO", text, NULL, problems, warnings, tags);
	cmf_csfle_check_schema("JSON", text, NULL, problems, warnings, tags);
	messages_valid(problems);
	messages_valid(warnings);
	json_decref(problems);
	json_decref(warnings);
	json_decref(tags);
	free(text);
	return 0;
}
