/* links: cmf/api/body.c cmf/text.c */
/* libFuzzer harness for JSON request bodies: an accepted body is an object within the depth limit and survives a dump/parse round trip. */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/api/body.h"
#include "tests/fuzz/fuzz.h"

/* fuzz_body_yaml.c includes this file with FUZZ_BODY_FORMAT set to CMF_BODY_YAML. */
#ifndef FUZZ_BODY_FORMAT
#define FUZZ_BODY_FORMAT CMF_BODY_JSON
#endif

/* Depth of nested containers (a flat object is 1); the tree is already bounded by the parser. */
static int
depth_of(json_t *v)
{
	int max = 0;

	if (json_is_object(v)) {
		const char *k;
		json_t *c;

		json_object_foreach (v, k, c) {
			int d = depth_of(c);

			max = d > max ? d : max;
		}
		return max + 1;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *c;

		json_array_foreach (v, i, c) {
			int d = depth_of(c);

			max = d > max ? d : max;
		}
		return max + 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Messages are short; 256 bytes is what the server uses too. */
	char err[256];
	json_t *v = (json_t *)&err, *again = NULL;
	char *text;
	int rc;

	err[0] = '\0';
	rc = cmf_body_parse((const char *)data, size, FUZZ_BODY_FORMAT, &v, err, sizeof(err));
	if (rc != 0) {
		json_t *msg = json_string(err);

		assert(rc == -1 && v == NULL && err[0] != '\0');
		assert(msg != NULL); /* the message is valid UTF-8, ready for an error body */
		json_decref(msg);
		return 0;
	}
	assert(v != NULL && json_is_object(v));
	assert(depth_of(v) <= CMF_BODY_MAX_DEPTH);
	text = json_dumps(v, JSON_COMPACT);
	assert(text != NULL);
	rc = cmf_body_parse(text, strlen(text), CMF_BODY_JSON, &again, err, sizeof(err));
	assert(rc == 0 && json_equal(v, again));
	free(text);
	json_decref(again);
	json_decref(v);
	return 0;
}
