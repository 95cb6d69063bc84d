/* links: cmf/csfle.c cmf/text.c */
/* libFuzzer harness for cmf/csfle.c: any JSON as a CsfleConfig spec, credentials or resolved config, any text as a schema — never a crash; a ruleSet only for a spec without problems; every message valid UTF-8. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/csfle.h"

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
		cmf_csfle_check_resolved(j, json_object_get(j, "sr"), problems, warnings);
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
