/* links: cmf/api/body.c cmf/text.c cmf/log.c crypto/log.c */
/* Tests for cmf/api/body.c: JSON and YAML bodies into one tree, limits, and messages that never quote body bytes. */
#include "cmf/api/body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check_main.h"

static char err[256];

static int
parse(const char *text, enum cmf_body_format format, json_t **out)
{
	return cmf_body_parse(text, strlen(text), format, out, err, sizeof(err));
}

/* Parses `text` and expects failure; returns err for further checks. */
static const char *
expect_fail(const char *text, size_t len, enum cmf_body_format format)
{
	json_t *v = (json_t *)1;

	ck_assert_msg(cmf_body_parse(text, len, format, &v, err, sizeof(err)) == -1, "accepted: %s", text);
	ck_assert_ptr_null(v);
	ck_assert_msg(err[0] != '\0', "no message for: %s", text);
	return err;
}

static const char secret_json[] =
	"{\"apiVersion\":\"cmf.confluent.io/v1\",\"kind\":\"Secret\","
	"\"metadata\":{\"name\":\"kafka-creds\",\"labels\":{\"team\":\"data\"},\"annotations\":{}},"
	"\"spec\":{\"data\":{\"username\":\"svc\",\"password\":\"p@ss: w0rd\",\"port\":\"9092\"}},"
	"\"status\":{\"version\":3,\"environments\":[\"prod\",\"staging\"],\"ready\":true,\"ratio\":0.5,"
	"\"note\":null}}";

static const char secret_yaml[] = "apiVersion: cmf.confluent.io/v1\n"
				  "kind: Secret\n"
				  "metadata:\n"
				  "  name: kafka-creds\n"
				  "  labels:\n"
				  "    team: data\n"
				  "  annotations: {}\n"
				  "spec:\n"
				  "  data:\n"
				  "    username: svc\n"
				  "    password: 'p@ss: w0rd'\n"
				  "    port: \"9092\"\n"
				  "status:\n"
				  "  version: 3\n"
				  "  environments:\n"
				  "    - prod\n"
				  "    - staging\n"
				  "  ready: true\n"
				  "  ratio: 0.5\n"
				  "  note: ~\n";

START_TEST(test_json_ok)
{
	json_t *v = NULL;

	ck_assert_int_eq(parse(secret_json, CMF_BODY_JSON, &v), 0);
	ck_assert(json_is_object(v));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(v, "spec"), "data"),
							   "password")),
			 "p@ss: w0rd");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(v, "status"), "version")), 3);
	json_decref(v);
}
END_TEST

START_TEST(test_json_malformed_never_quotes_body)
{
	static const struct {
		const char *text;
		const char *want; /* the whole message */
	} cases[] = {
		{ "{\"spec\":{\"data\":{\"password\":\"hunter2", "malformed JSON at line 1, column 36: unexpected end of input" },
		{ "{\"spec\":{\"data\":{\"password\":hunter2}}}", "malformed JSON at line 1, column 34: invalid syntax" },
		{ "{\"password\":\"hunter2\" \"x\"}", "malformed JSON at line 1, column 25: invalid syntax" },
		{ "{\"password\":\"hunter2\x01\"}", "malformed JSON at line 1, column 20: invalid syntax" },
		{ "{\"password\":\"hunter2\xff\"}", "malformed JSON at line 1, column 20: invalid UTF-8" },
		{ "{\"password\":\"hunter2\"} hunter2", "malformed JSON at line 1, column 29: unexpected data after the end of the document" },
		{ "{\"password\":\"hunter2\\u0000\"}", "malformed JSON at line 1, column 27: NUL characters (\\u0000) are not allowed" },
		{ "{\"password\":\"x\",\n\"password\":\"hunter2\"}", "malformed JSON at line 2, column 10: duplicate object key" },
		{ "{\"n\":1e99999}", "malformed JSON at line 1, column 12: number out of range" },
		{ "{\"n\":92233720368547758070}", "malformed JSON at line 1, column 25: number out of range" },
		{ "hunter2", "malformed JSON at line 1, column 6: invalid syntax" },
		{ "\"hunter2\"", "malformed JSON at line 1, column 9: invalid syntax" },
		{ "   ", "malformed JSON at line 1, column 3: unexpected end of input" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *m = expect_fail(cases[i].text, strlen(cases[i].text), CMF_BODY_JSON);

		ck_assert_msg(strstr(m, "hunter2") == NULL, "case %zu quotes the body: %s", i, m);
		ck_assert_msg(strstr(m, "near") == NULL, "case %zu has jansson's text: %s", i, m);
		ck_assert_str_eq(m, cases[i].want);
	}
}
END_TEST

START_TEST(test_json_nul_byte)
{
	static const char body[] = "{\"a\":\"x\0hunter2\"}";
	const char *m = expect_fail(body, sizeof(body) - 1, CMF_BODY_JSON);

	ck_assert(strncmp(m, "malformed JSON at line 1, column ", 33) == 0);
	ck_assert(strstr(m, "hunter2") == NULL);
}
END_TEST

START_TEST(test_json_top_level)
{
	ck_assert_str_eq(expect_fail("[1,2]", 5, CMF_BODY_JSON), "the request body must be a JSON object");
	ck_assert_str_eq(expect_fail("", 0, CMF_BODY_JSON), "the request body is empty");
	ck_assert_str_eq(expect_fail("", 0, CMF_BODY_YAML), "the request body is empty");
}
END_TEST

/* `depth` nested containers: {"a":{"a":...[...]}} alternating objects and arrays, as JSON. */
static char *
nested_json(int depth)
{
	size_t cap = (size_t)depth * 8 + 16, n = 0;
	char *s = malloc(cap);

	ck_assert_ptr_nonnull(s);
	for (int i = 0; i < depth; i++)
		n += (size_t)snprintf(s + n, cap - n, "%s", i % 2 == 0 ? "{\"a\":" : "[");
	n += (size_t)snprintf(s + n, cap - n, "1");
	for (int i = depth - 1; i >= 0; i--)
		n += (size_t)snprintf(s + n, cap - n, "%s", i % 2 == 0 ? "}" : "]");
	return s;
}

START_TEST(test_depth)
{
	json_t *v = NULL;
	char *s;

	for (int f = 0; f < 2; f++) {
		enum cmf_body_format format = f == 0 ? CMF_BODY_JSON : CMF_BODY_YAML;

		s = nested_json(CMF_BODY_MAX_DEPTH);
		ck_assert_msg(parse(s, format, &v) == 0, "%s", err);
		json_decref(v);
		v = NULL;
		free(s);
		s = nested_json(CMF_BODY_MAX_DEPTH + 1);
		ck_assert_int_eq(parse(s, format, &v), -1);
		ck_assert_ptr_null(v);
		ck_assert(strstr(err, "nested deeper than 32 levels") != NULL);
		free(s);
	}
	/* Deeper than jansson's own limit (2048). */
	s = nested_json(3000);
	ck_assert_int_eq(parse(s, CMF_BODY_JSON, &v), -1);
	ck_assert(strstr(err, "nesting too deep") != NULL);
	ck_assert_int_eq(parse(s, CMF_BODY_YAML, &v), -1);
	ck_assert(strstr(err, "nested deeper than 32 levels") != NULL);
	free(s);
}
END_TEST

START_TEST(test_yaml_equals_json)
{
	static const struct {
		const char *json, *yaml;
	} cases[] = {
		{ NULL, NULL }, /* secret_json / secret_yaml, filled below */
		{ "{\"apiVersion\":\"cmf.confluent.io/v1\",\"kind\":\"EnvironmentSecretMapping\","
		  "\"metadata\":{\"name\":\"kafka-conn\"},\"spec\":{\"secretName\":\"kafka-creds\"}}",
		  "apiVersion: cmf.confluent.io/v1\nkind: EnvironmentSecretMapping\nmetadata:\n  name: kafka-conn\n"
		  "spec:\n  secretName: kafka-creds\n" },
		{ "{\"kind\":\"KafkaCatalog\",\"metadata\":{\"name\":\"cat\"},\"spec\":{\"srInstance\":"
		  "{\"connectionConfig\":{\"schema.registry.url\":\"http://sr:8081\"},\"connectionSecretId\":\"sr\"},"
		  "\"kafkaClusters\":[{\"databaseName\":\"db1\",\"connectionConfig\":{\"bootstrap.servers\":\"k:9092\"}}]}}",
		  "---\nkind: KafkaCatalog\nmetadata: {name: cat}\nspec:\n  srInstance:\n    connectionConfig:\n"
		  "      schema.registry.url: http://sr:8081\n    connectionSecretId: sr\n  kafkaClusters:\n"
		  "  - databaseName: db1\n    connectionConfig:\n      bootstrap.servers: k:9092\n...\n" },
		/* JSON text is (nearly) YAML too */
		{ "{\"a\":[1,2.5,true,null,\"x\"],\"b\":{}}", "{\"a\": [1, 2.5, true, null, \"x\"], \"b\": {}}" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *js = i == 0 ? secret_json : cases[i].json;
		const char *ys = i == 0 ? secret_yaml : cases[i].yaml;
		json_t *j = NULL, *y = NULL;

		ck_assert_msg(parse(js, CMF_BODY_JSON, &j) == 0, "json %zu: %s", i, err);
		ck_assert_msg(parse(ys, CMF_BODY_YAML, &y) == 0, "yaml %zu: %s", i, err);
		ck_assert_msg(json_equal(j, y), "case %zu differs", i);
		json_decref(j);
		json_decref(y);
	}
}
END_TEST

/* Parses "v: <scalar>\n" as YAML and returns the value of v (a new reference). */
static json_t *
yaml_value(const char *scalar)
{
	char text[256];
	json_t *doc = NULL, *v;

	snprintf(text, sizeof(text), "v: %s\n", scalar);
	ck_assert_msg(parse(text, CMF_BODY_YAML, &doc) == 0, "%s: %s", scalar, err);
	v = json_incref(json_object_get(doc, "v"));
	ck_assert_ptr_nonnull(v);
	json_decref(doc);
	return v;
}

START_TEST(test_yaml_scalars)
{
	/* What each plain or quoted scalar becomes: the YAML 1.2 core schema as body.h states it. */
	static const struct {
		const char *yaml;
		const char *json; /* the expected value, as JSON */
	} cases[] = {
		{ "true", "true" },        { "True", "true" },       { "TRUE", "true" },
		{ "false", "false" },      { "FALSE", "false" },     { "\"true\"", "\"true\"" },
		{ "'false'", "\"false\"" }, { "yes", "\"yes\"" },     { "on", "\"on\"" },
		{ "tRUE", "\"tRUE\"" },    { "9092", "9092" },       { "\"9092\"", "\"9092\"" },
		{ "-17", "-17" },          { "+17", "17" },          { "007", "7" },
		{ "~", "null" },           { "null", "null" },       { "Null", "null" },
		{ "NULL", "null" },        { "", "null" },           { "'~'", "\"~\"" },
		{ "nUll", "\"nUll\"" },    { "1.5", "1.5" },         { "-2.5e3", "-2500.0" },
		{ ".5", "0.5" },           { "1.", "1.0" },          { "1e3", "1000.0" },
		{ "0x10", "\"0x10\"" },    { "0o17", "\"0o17\"" },   { ".inf", "\".inf\"" },
		{ ".nan", "\".nan\"" },    { "1e", "\"1e\"" },       { "1.2.3", "\"1.2.3\"" },
		{ "10.0.0.1", "\"10.0.0.1\"" }, { "k:9092", "\"k:9092\"" }, { "|\n  a\n  b", "\"a\\nb\\n\"" },
		{ ">-\n  a\n  b", "\"a b\"" }, { "!!str 5", "\"5\"" },  { "!!int \"7\"", "7" },
		{ "!!bool 'true'", "true" }, { "!!null ''", "null" }, { "!!float 2", "2.0" },
		{ "!!str", "\"\"" },       { "9223372036854775807", "9223372036854775807" },
		{ "-9223372036854775808", "-9223372036854775808" }, { "\"caf\\u00e9\"", "\"caf\\u00e9\"" },
		{ "[]", "[]" },            { "{}", "{}" },           { "!!seq [1]", "[1]" },
		{ "!!map {a: 1}", "{\"a\": 1}" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *got = yaml_value(cases[i].yaml);
		json_t *want = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);

		ck_assert_ptr_nonnull(want);
		ck_assert_msg(json_equal(got, want), "case %zu (%s): wrong value", i, cases[i].yaml);
		json_decref(got);
		json_decref(want);
	}
}
END_TEST

START_TEST(test_yaml_keys)
{
	json_t *v = NULL;

	/* keys are their text, whatever a value with that text would resolve to */
	ck_assert_int_eq(parse("1: a\ntrue: b\n~: c\n\"x y\": d\n", CMF_BODY_YAML, &v), 0);
	ck_assert_str_eq(json_string_value(json_object_get(v, "1")), "a");
	ck_assert_str_eq(json_string_value(json_object_get(v, "true")), "b");
	ck_assert_str_eq(json_string_value(json_object_get(v, "~")), "c");
	ck_assert_str_eq(json_string_value(json_object_get(v, "x y")), "d");
	json_decref(v);
	ck_assert_str_eq(expect_fail("? [a]\n: 1\n", 10, CMF_BODY_YAML), "mapping keys must be scalars (line 1)");
	ck_assert_str_eq(expect_fail("{[a]: 1}", 8, CMF_BODY_YAML), "mapping keys must be scalars (line 1)");
}
END_TEST

START_TEST(test_yaml_refusals)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "a: &x 1\nb: *x\n", "YAML anchors and aliases are not supported (line 1)" },
		{ "a: 1\nb: *x\n", "YAML anchors and aliases are not supported (line 2)" },
		{ "a: &x {b: 1}\n", "YAML anchors and aliases are not supported (line 1)" },
		{ "&x a: 1\n", "YAML anchors and aliases are not supported (line 1)" },
		{ "a: 1\n---\nb: 2\n", "the request body must hold one YAML document, found a second at line 2" },
		{ "a: 1\n...\n---\nb: 2\n", "the request body must hold one YAML document, found a second at line 3" },
		{ "a: 1\nb: 2\na: 3\n", "duplicate key 'a' at line 3" },
		{ "spec:\n  data:\n    password: x\n    password: hunter2\n", "duplicate key 'password' at line 4" },
		{ "- a\n- b\n", "the request body must be a YAML mapping (a JSON object)" },
		{ "hello\n", "the request body must be a YAML mapping (a JSON object)" },
		{ "---\n", "the request body must be a YAML mapping (a JSON object)" },
		{ "# just a comment\n", "the request body is empty" },
		{ "a: !custom x\n", "unsupported YAML tag at line 1" },
		{ "a: !!binary aGVsbG8=\n", "unsupported YAML tag at line 1" },
		{ "a: !!set {x}\n", "unsupported YAML tag at line 1" },
		{ "a: !!map x\n", "a scalar cannot be tagged !!map (line 1)" },
		{ "a: !!seq {x: 1}\n", "unsupported YAML tag at line 1" },
		{ "a: !!int abc\n", "value tagged !!int is not an integer (line 1)" },
		{ "a: !!bool yes\n", "value tagged !!bool is not true or false (line 1)" },
		{ "a: !!null x\n", "value tagged !!null is not null (line 1)" },
		{ "a: !!float .inf\n", "value tagged !!float is not a decimal number (line 1)" },
		{ "a: 1\nn: 9223372036854775808\n", "integer out of range at line 2" },
		{ "n: -9223372036854775809\n", "integer out of range at line 1" },
		{ "n: 1e999\n", "number out of range at line 1" },
		{ "a: \"x\\0y\"\n", "NUL characters are not allowed (line 1)" },
		{ "\"a\\0b\": 1\n", "NUL characters are not allowed in keys (line 1)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_str_eq(expect_fail(cases[i].text, strlen(cases[i].text), CMF_BODY_YAML), cases[i].want);
}
END_TEST

START_TEST(test_yaml_long_duplicate_key)
{
	char key[101], text[256];
	const char *m;

	memset(key, 'k', 100);
	key[100] = '\0';
	snprintf(text, sizeof(text), "%s: 1\n%s: 2\n", key, key);
	m = expect_fail(text, strlen(text), CMF_BODY_YAML);
	ck_assert_str_eq(m, "duplicate key 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...' at line 2");
	/* a cut never splits a UTF-8 character: 63 ASCII bytes then 'é' (2 bytes) straddling byte 64 */
	memset(key, 'k', 63);
	strcpy(key + 63, "\xc3\xa9tail");
	snprintf(text, sizeof(text), "%s: 1\n%s: 2\n", key, key);
	m = expect_fail(text, strlen(text), CMF_BODY_YAML);
	ck_assert(strstr(m, "kkk...' at line 2") != NULL);
	ck_assert(strstr(m, "\xc3") == NULL);
}
END_TEST

START_TEST(test_yaml_errors_never_quote_body)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "spec:\n  data:\n    password: \"hunter2\n",
		  "malformed YAML at line 4, column 1: found unexpected end of stream" },
		{ "spec:\n  data:\n    password: hunter2: x\n",
		  "malformed YAML at line 3, column 22: mapping values are not allowed in this context" },
		{ "spec:\n  data:\n    password: 'hunter2\n  x: [\n",
		  "malformed YAML at line 5, column 1: found unexpected end of stream" },
		{ "password: hunter2\n\tx: 1\n",
		  "malformed YAML at line 2, column 1: found a tab character that violates indentation" },
		{ "password: \"hunter2\\q\"\n",
		  "malformed YAML at line 1, column 19: found unknown escape character" },
		{ "password: hunter2\xff\n", "malformed YAML at byte offset 17: invalid leading UTF-8 octet" },
		{ "{password: [hunter2}\n", "malformed YAML at line 1, column 20: did not find expected ',' or ']'" },
		{ "password: hunter2\n- x\n",
		  "malformed YAML at line 2, column 1: did not find expected key" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *m = expect_fail(cases[i].text, strlen(cases[i].text), CMF_BODY_YAML);

		ck_assert_msg(strstr(m, "hunter2") == NULL, "case %zu quotes the body: %s", i, m);
		ck_assert_str_eq(m, cases[i].want);
	}
}
END_TEST

START_TEST(test_format_of)
{
	ck_assert_int_eq(cmf_body_format_of(NULL), CMF_BODY_JSON);
	ck_assert_int_eq(cmf_body_format_of(""), CMF_BODY_JSON);
	ck_assert_int_eq(cmf_body_format_of("application/json"), CMF_BODY_JSON);
	ck_assert_int_eq(cmf_body_format_of("Application/JSON; charset=utf-8"), CMF_BODY_JSON);
	ck_assert_int_eq(cmf_body_format_of("application/yaml"), CMF_BODY_YAML);
	ck_assert_int_eq(cmf_body_format_of("application/x-yaml"), CMF_BODY_YAML);
	ck_assert_int_eq(cmf_body_format_of("text/yaml"), CMF_BODY_YAML);
	ck_assert_int_eq(cmf_body_format_of("TEXT/YAML;charset=UTF-8"), CMF_BODY_YAML);
	ck_assert_int_eq(cmf_body_format_of(" application/yaml ; x=y"), CMF_BODY_YAML);
	ck_assert_int_eq(cmf_body_format_of("text/plain"), -1);
	ck_assert_int_eq(cmf_body_format_of("application/jsonx"), -1);
	ck_assert_int_eq(cmf_body_format_of("application/json-patch+json"), -1);
	ck_assert_int_eq(cmf_body_format_of("application/yam"), -1);
	ck_assert_int_eq(cmf_body_format_of("multipart/form-data; boundary=x"), -1);
}
END_TEST

CMF_CHECK_SUITE("body", test_json_ok, test_json_malformed_never_quotes_body, test_json_nul_byte,
	test_json_top_level, test_depth, test_yaml_equals_json, test_yaml_scalars, test_yaml_keys,
	test_yaml_refusals, test_yaml_long_duplicate_key, test_yaml_errors_never_quote_body, test_format_of)
