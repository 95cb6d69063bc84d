/* links: cmf/api/render.c crypto/buf.c crypto/util.c crypto/log.c */
/* Unit tests for cmf/api/render.c: .properties escaping exactly as java.util.Properties.store, Flink SQL options. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/api/render.h"
#include "tests/unit/check_main.h"

static void
expect_escape(const char *in, int is_key, const char *want)
{
	char *got = cmf_render_properties_escape(in, is_key);

	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, want);
	free(got);
}

START_TEST(test_escape_like_java)
{
	/* Expected strings are what OpenJDK 17's Properties.store(OutputStream) writes (checked once by hand). */
	expect_escape("a b=c:d#e!f\\g", 1, "a\\ b\\=c\\:d\\#e\\!f\\\\g");
	expect_escape("a b=c:d#e!f\\g", 0, "a b\\=c\\:d\\#e\\!f\\\\g");
	expect_escape(" leading", 0, "\\ leading");
	expect_escape(" leading", 1, "\\ leading");
	expect_escape("tab\there\nnl\rcr\fff", 0, "tab\\there\\nnl\\rcr\\fff");
	expect_escape("caf\xc3\xa9", 0, "caf\\u00E9");              /* é U+00E9 */
	expect_escape("\xe2\x82\xac", 0, "\\u20AC");                /* € U+20AC */
	expect_escape("\xf0\x9f\x98\x80", 0, "\\uD83D\\uDE00");       /* 😀 U+1F600: a surrogate pair */
	expect_escape("\x01\x7f", 0, "\\u0001\\u007F");
	expect_escape("~}|{", 0, "~}|{");
	expect_escape("", 0, "");
}
END_TEST

static json_t *
obj(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	ck_assert_ptr_nonnull(j);
	return j;
}

START_TEST(test_merge_secret_wins)
{
	json_t *cfg = obj("{\"bootstrap.servers\":\"b:9092\",\"security.protocol\":\"PLAINTEXT\"}");
	json_t *sec = obj("{\"security.protocol\":\"SASL_SSL\",\"sasl.mechanism\":\"PLAIN\"}");
	json_t *m = cmf_render_merge(cfg, sec), *want = obj("{\"bootstrap.servers\":\"b:9092\","
							     "\"security.protocol\":\"SASL_SSL\",\"sasl.mechanism\":\"PLAIN\"}");

	ck_assert(json_equal(m, want));
	ck_assert_str_eq(json_string_value(json_object_get(cfg, "security.protocol")), "PLAINTEXT"); /* copy */
	json_decref(m);
	m = cmf_render_merge(cfg, NULL);
	ck_assert(json_equal(m, cfg));
	json_decref(m);
	json_decref(want);
	json_decref(cfg);
	json_decref(sec);
}
END_TEST

START_TEST(test_properties_file)
{
	json_t *kafka = obj("{\"sasl.jaas.config\":\"x required username=\\\"u\\\" password=\\\"p=1:2\\\";\","
			    "\"bootstrap.servers\":\"b:9092\"}");
	json_t *sr = obj("{\"schema.registry.url\":\"http://sr:8081\",\"basic.auth.user.info\":\"u:p\"}");
	char err[256] = "";
	char *t = cmf_render_properties(kafka, sr, "cmf: prod/c1/orders", err, sizeof(err));

	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(t, "# cmf: prod/c1/orders\n"
			    "basic.auth.user.info=u\\:p\n"
			    "bootstrap.servers=b\\:9092\n"
			    "sasl.jaas.config=x required username\\=\"u\" password\\=\"p\\=1\\:2\";\n"
			    "schema.registry.url=http\\://sr\\:8081\n");
	free(t);
	/* the same key with two values cannot go into one file */
	json_object_set_new(sr, "bootstrap.servers", json_string("other:9092"));
	ck_assert_ptr_null(cmf_render_properties(kafka, sr, NULL, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "'bootstrap.servers'"));
	/* the same value in both is fine */
	json_object_set_new(sr, "bootstrap.servers", json_string("b:9092"));
	t = cmf_render_properties(kafka, sr, NULL, err, sizeof(err));
	ck_assert_ptr_nonnull(t);
	ck_assert(strncmp(t, "basic.auth.user.info=", 21) == 0);
	free(t);
	json_decref(kafka);
	json_decref(sr);
}
END_TEST

START_TEST(test_flink_sql)
{
	json_t *kafka = obj("{\"sasl.jaas.config\":\"x password='it''s';\",\"bootstrap.servers\":\"b:9092\"}");
	json_t *sr = obj("{\"schema.registry.url\":\"http://sr:8081\",\"basic.auth.credentials.source\":\"USER_INFO\","
			 "\"basic.auth.user.info\":\"u:p\"}");
	char err[512] = "";
	char *t = cmf_render_flink_sql(kafka, sr, err, sizeof(err));

	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(t, "'properties.bootstrap.servers' = 'b:9092',\n"
			    "'properties.sasl.jaas.config' = 'x password=''it''''s'';',\n"
			    "'value.avro-confluent.basic-auth.credentials-source' = 'USER_INFO',\n"
			    "'value.avro-confluent.basic-auth.user-info' = 'u:p',\n"
			    "'value.avro-confluent.url' = 'http://sr:8081'\n");
	free(t);
	/* two keys naming one Flink option: once when they agree, refused when they do not */
	json_object_set_new(sr, "schema.registry.basic.auth.user.info", json_string("u:p"));
	t = cmf_render_flink_sql(kafka, sr, err, sizeof(err));
	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_nonnull(strstr(t, "'value.avro-confluent.basic-auth.user-info' = 'u:p',\n'value.avro-confluent.url'"));
	free(t);
	json_object_set_new(sr, "schema.registry.basic.auth.user.info", json_string("other:pw"));
	ck_assert_ptr_null(cmf_render_flink_sql(kafka, sr, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "'basic.auth.user.info' and 'schema.registry.basic.auth.user.info'"));
	ck_assert_ptr_null(strstr(err, "other:pw"));
	json_object_del(sr, "schema.registry.basic.auth.user.info");
	json_object_set_new(sr, "max.schemas.per.subject", json_string("10"));
	json_object_set_new(sr, "auto.register.schemas", json_string("false"));
	ck_assert_ptr_null(cmf_render_flink_sql(kafka, sr, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "auto.register.schemas, max.schemas.per.subject"));
	json_decref(kafka);
	json_decref(sr);
}
END_TEST

START_TEST(test_connect)
{
	json_t *sr = json_pack("{s:s,s:s,s:s}", "schema.registry.url", "http://sr:8081", "use.latest.version", "true",
			       "rule.executors._default_.param.secret", "k=v");
	char err[256] = "";
	char *text = cmf_render_connect(sr, 1, "head\nWARNING: caf\xc3\xa9", err, sizeof(err));

	ck_assert_msg(text != NULL, "%s", err);
	ck_assert_str_eq(text, "# head\n"
			       "# WARNING: caf??\n"
			       "csfle.enabled=true\n"
			       "key.converter.rule.executors._default_.param.secret=k\\=v\n"
			       "key.converter.schema.registry.url=http\\://sr\\:8081\n"
			       "key.converter.use.latest.version=true\n"
			       "rule.executors._default_.param.secret=k\\=v\n"
			       "value.converter.rule.executors._default_.param.secret=k\\=v\n"
			       "value.converter.schema.registry.url=http\\://sr\\:8081\n"
			       "value.converter.use.latest.version=true\n");
	free(text);
	text = cmf_render_connect(sr, 0, NULL, err, sizeof(err));
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_null(strstr(text, "csfle.enabled"));
	free(text);
	json_decref(sr);
}
END_TEST

CMF_CHECK_SUITE("render", test_escape_like_java, test_merge_secret_wins, test_properties_file, test_flink_sql,
	test_connect)
