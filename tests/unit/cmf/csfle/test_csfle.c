// links: cmf/csfle/*.c cmf/text.c
/* Unit tests for cmf/csfle/: each CSFLE check tripped and passed, schemas, credentials, resolved configs, ruleSet. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/csfle/csfle.h"
#include "tests/unit/check_main.h"

static json_t *
J(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &e);

	if (j == NULL)
		ck_abort_msg("bad test JSON: %s at %d:%d", e.text, e.line, e.column);
	return j;
}

/* Some message of `arr` contains `part`. */
static int
has(json_t *arr, const char *part)
{
	size_t i;
	json_t *m;

	json_array_foreach (arr, i, m)
		if (strstr(json_string_value(m), part) != NULL)
			return 1;
	return 0;
}

static void
dump(const char *what, json_t *arr)
{
	char *d = json_dumps(arr, JSON_INDENT(1));

	fprintf(stderr, "%s: %s\n", what, d);
	free(d);
}

#define HAS(arr, part)                                                                                     \
	do {                                                                                               \
		if (!has(arr, part)) {                                                                     \
			dump(#arr, arr);                                                                   \
			ck_abort_msg("no message with: %s", part);                                         \
		}                                                                                          \
	} while (0)

#define COUNT(arr, n)                                                                                      \
	do {                                                                                               \
		if (json_array_size(arr) != (size_t)(n)) {                                                 \
			dump(#arr, arr);                                                                   \
			ck_abort_msg("%s: %zu messages, want %d", #arr, json_array_size(arr), (int)(n));  \
		}                                                                                          \
	} while (0)

struct res {
	json_t *p, *w;
};

static struct res
check_text(const char *spec_text)
{
	json_t *spec = J(spec_text);
	struct res r = {json_array(), json_array()};

	cmf_csfle_check(spec, r.p, r.w);
	json_decref(spec);
	return r;
}

static void
res_free(struct res *r)
{
	json_decref(r->p);
	json_decref(r->w);
}

/* A NULL-ended list of message parts for expect_res. */
#define MSGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/*
 * Expects of a check's result `r`, then frees it: each part in `problems` and in `warnings` (MSGS lists, or
 * NULL for none) is in some message of its kind, and there are `np` problems and `nw` warnings (-1: not
 * counted).
 */
static void
expect_res(struct res r, int np, const char *const problems[], int nw, const char *const warnings[])
{
	for (size_t i = 0; problems != NULL && problems[i] != NULL; i++)
		HAS(r.p, problems[i]);
	for (size_t i = 0; warnings != NULL && warnings[i] != NULL; i++)
		HAS(r.w, warnings[i]);
	if (np >= 0)
		COUNT(r.p, np);
	if (nw >= 0)
		COUNT(r.w, nw);
	res_free(&r);
}

/* expect_res on the check of the spec `spec_text`. */
static void
expect_check(const char *spec_text, int np, const char *const problems[], int nw, const char *const warnings[])
{
	expect_res(check_text(spec_text), np, problems, nw, warnings);
}

#define AVRO_ORDER                                                                                                  \
	"{\\\"type\\\":\\\"record\\\",\\\"name\\\":\\\"Order\\\",\\\"fields\\\":["                                  \
	"{\\\"name\\\":\\\"id\\\",\\\"type\\\":\\\"long\\\"},"                                                       \
	"{\\\"name\\\":\\\"ssn\\\",\\\"type\\\":\\\"string\\\",\\\"confluent:tags\\\":[\\\"PII\\\"]},"               \
	"{\\\"name\\\":\\\"card\\\",\\\"type\\\":[\\\"null\\\",\\\"bytes\\\"],\\\"confluent:tags\\\":[\\\"CRITICAL\\\"]}]}"

/* A clean spec: no problems, no warnings. */
#define CLEAN_SPEC                                                                                          \
	"{\"kms\":{\"type\":\"aws-kms\",\"keyId\":\"arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab\","   \
	"\"credentialsSecretId\":\"kms-creds\"},"                                                             \
	"\"kek\":{\"name\":\"pii-kek\",\"shared\":false},"                                                     \
	"\"dek\":{\"algorithm\":\"AES256_SIV\",\"expiryDays\":90},"                                            \
	"\"preserveSourceFields\":false,\"latestCacheTtlSec\":300,"                                            \
	"\"rules\":[{\"name\":\"encryptCritical\",\"kind\":\"TRANSFORM\",\"type\":\"ENCRYPT\","                \
	"\"tags\":[\"CRITICAL\"],\"mode\":\"WRITEREAD\",\"onFailure\":\"ERROR,NONE\"},"                        \
	"{\"name\":\"encryptPII\",\"tags\":[\"PII\"],\"onSuccess\":\"NONE\",\"onFailure\":\"ERROR\"},"        \
	"{\"name\":\"payload\",\"type\":\"ENCRYPT_PAYLOAD\",\"mode\":\"WRITE\",\"disabled\":false}],"        \
	"\"schemas\":[{\"subject\":\"orders-value\",\"schemaType\":\"AVRO\",\"schema\":\"" AVRO_ORDER "\"}]}"

START_TEST(test_clean_spec)
{
	expect_check(CLEAN_SPEC, 0, NULL, 0, NULL);
	/* The minimal spec: defaults everywhere. */
	expect_check("{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"_k\",\"shared\":true},"
		     "\"latestCacheTtlSec\":0,\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}",
		     0, NULL, 0, NULL);
	/* Neither credentials nor a shared KEK: ambient credentials, which cmf cannot check. */
	expect_check("{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"_k\"},"
		     "\"latestCacheTtlSec\":0,\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}",
		     0, NULL, 1, MSGS("ambient KMS credentials"));
}
END_TEST

START_TEST(test_all_problems_at_once)
{
	expect_check("{\"kms\":{\"type\":\"AWS\",\"keyId\":\"x\",\"region\":\"eu\"},"
		     "\"kek\":{\"name\":\"1bad\",\"shared\":\"no\"},"
		     "\"dek\":{\"algorithm\":\"AES256\",\"expiryDays\":-1},\"preserveSourceFields\":\"true\","
		     "\"latestCacheTtlSec\":-5,\"extra\":1,"
		     "\"rules\":["
		     "{\"name\":\"a\",\"tags\":[\"PII\"],\"mode\":\"READWRITE\"},"
		     "{\"name\":\"a\",\"tags\":[],\"kind\":\"CONDITION\"},"
		     "{\"name\":\"c\",\"tags\":[\"X\"],\"onFailure\":\"error\"},"
		     "{\"name\":\"d\",\"tags\":[\"X\"],\"onFailure\":\"ERROR, NONE\"},"
		     "{\"name\":\"e\",\"tags\":[\"X\"],\"mode\":\"WRITE\",\"onFailure\":\"ERROR,NONE\"},"
		     "{\"name\":\"f\",\"type\":\"ENCRYPT_PAYLOAD\",\"tags\":[\"X\"]},"
		     "{\"name\":\"g\"},"
		     "{\"name\":\"h\",\"type\":\"DECRYPT\",\"tags\":[\"X\",\"X\"],\"disabled\":1,"
		     "\"onSucess\":\"NONE\"},"
		     "{\"name\":\"i\",\"tags\":[\"X\"],\"onFailure\":\"ERROR,NONE,DLQ\"},"
		     "{\"name\":\"j\",\"tags\":[\"X\"],\"mode\":\"write\"},"
		     "{\"name\":\"k\",\"tags\":\"X\"}, 7]}",
		     26,
		     MSGS("spec: unknown field 'extra'",
			  "spec.kms: unknown field 'region'",
			  "spec.kms.type 'AWS' is not a canonical KMS type: use 'aws-kms'",
			  "spec.kek.name '1bad' must match ^[A-Za-z_][A-Za-z0-9_-]*$",
			  "spec.kek.shared must be true or false",
			  "spec.dek.algorithm 'AES256' is not a DEK algorithm",
			  "spec.dek.expiryDays must be an integer >= 0",
			  "spec.preserveSourceFields must be true or false",
			  "spec.latestCacheTtlSec must be an integer >= -1",
			  "spec.rules[0].mode 'READWRITE' is not a mode: use WRITEREAD (there is no READWRITE)",
			  "spec.rules[1].name 'a' is not unique",
			  "spec.rules[1].tags must name at least one tag: an ENCRYPT rule with no tags targets every "
			  "field",
			  "spec.rules[1].kind 'CONDITION' must be TRANSFORM",
			  "spec.rules[2].onFailure 'error' is not an action: ERROR, NONE or DLQ (case-sensitive)",
			  "spec.rules[3].onFailure 'ERROR, NONE' must not contain spaces",
			  "spec.rules[4].onFailure 'ERROR,NONE': the two-value form (write,read) is only for mode "
			  "WRITEREAD, not WRITE",
			  "spec.rules[5]: an ENCRYPT_PAYLOAD rule encrypts the whole payload (an encoding rule) and "
			  "takes no tags",
			  "spec.rules[6].tags must name at least one tag",
			  "spec.rules[7].type 'DECRYPT' must be ENCRYPT",
			  "spec.rules[7].disabled must be true or false",
			  "spec.rules[7]: unknown field 'onSucess'",
			  "spec.rules[7].tags: tag 'X' is listed twice",
			  "spec.rules[8].onFailure 'ERROR,NONE,DLQ' is not an action",
			  "spec.rules[9].mode 'write' is not a mode: WRITE, READ or WRITEREAD (case-sensitive)",
			  "spec.rules[10].tags must be an array of tag names",
			  "spec.rules[11] must be an object"),
		     -1, NULL);
	/* A duplicated tag, once the rule is otherwise fine. */
	expect_check("{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"k\"},"
		     "\"latestCacheTtlSec\":1,\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\",\"PII\"]}]}",
		     1, MSGS("spec.rules[0].tags: tag 'PII' is listed twice"), -1, NULL);
}
END_TEST

START_TEST(test_wrong_types_never_crash)
{
	static const char *const specs[] = {
		"null", "[]", "\"spec\"", "7", "{}", "{\"kms\":[],\"kek\":1,\"dek\":\"x\",\"rules\":{},\"schemas\":{}}",
		"{\"kms\":{\"type\":1,\"keyId\":null,\"credentialsSecretId\":\"\"},\"kek\":{\"name\":[]},"
		"\"dek\":{\"expiryDays\":1.5},\"rules\":[{\"name\":1,\"tags\":[1,\"\"],\"mode\":2,\"onFailure\":3}],"
		"\"schemas\":[1,{\"subject\":2},{\"subject\":\"s\",\"schemaType\":\"PROTOBUF\",\"schema\":\"x\"},"
		"{\"subject\":\"t\",\"schemaType\":\"AVRO\",\"schema\":\"{not json\"}]}",
	};

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		struct res r = check_text(specs[i]);
		json_t *spec = J(specs[i]);

		ck_assert_uint_gt(json_array_size(r.p), 0);
		ck_assert_ptr_null(cmf_csfle_ruleset(spec));
		json_decref(spec);
		res_free(&r);
	}
	expect_check(specs[6], -1,
		     MSGS("spec.kms.type must be a non-empty string",
			  "spec.kms.keyId must be a non-empty string",
			  "spec.kms.credentialsSecretId must be a non-empty string",
			  "spec.kek.name must be a non-empty string",
			  "spec.dek.expiryDays must be an integer >= 0",
			  "spec.rules[0].name must be a non-empty string",
			  "spec.rules[0].tags[0] must be a non-empty string",
			  "spec.rules[0].tags[1] must be a non-empty string",
			  "spec.rules[0].mode must be a non-empty string",
			  "spec.rules[0].onFailure must be a string",
			  "spec.schemas[0] must be an object",
			  "spec.schemas[1].subject must be a non-empty string",
			  "spec.schemas[2].schemaType 'PROTOBUF' must be AVRO or JSON",
			  "spec.schemas[3] (subject 't'): the AVRO schema is not valid JSON (line 1, column"),
		     -1, NULL);
	expect_check("{}", 3, MSGS("spec.kms is required", "spec.kek is required", "spec.rules is required"),
		     -1, MSGS("spec.latestCacheTtlSec is unset"));
}
END_TEST

static void
expect_key(const char *type, const char *key, int ok)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "{\"kms\":{\"type\":\"%s\",\"keyId\":\"%s\"},\"kek\":{\"name\":\"k\"},\"latestCacheTtlSec\":60,"
		 "\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}", type, key);
	if (ok)
		expect_check(text, 0, NULL, -1, NULL);
	else
		expect_check(text, 1, MSGS("spec.kms.keyId '"), -1, NULL);
}

START_TEST(test_kms_key_ids)
{
	expect_key("aws-kms", "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd", 1);
	expect_key("aws-kms", "arn:aws:kms:eu-west-1:123456789012:alias/my-key", 1);
	expect_key("aws-kms", "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/k", 1);
	expect_key("aws-kms", "arn:aws:kms:us-east-1:12345:key/k", 0);	    /* account not 12 digits */
	expect_key("aws-kms", "arn:aws:s3:us-east-1:123456789012:key/k", 0); /* not KMS */
	expect_key("aws-kms", "1234abcd-12ab-34cd", 0);			    /* a bare key id */
	expect_key("aws-kms", "arn:aws:kms:us-east-1:123456789012:key/", 0);
	expect_key("azure-kms", "https://myvault.vault.azure.net/keys/my-key", 1);
	expect_key("azure-kms", "https://myvault.vault.azure.net/keys/my-key/0123abcd", 1);
	expect_key("azure-kms", "https://myvault.vault.azure.net/secrets/my-key", 0);
	expect_key("azure-kms", "http://myvault.vault.azure.net/keys/my-key", 0);
	expect_key("azure-kms", "https://example.com/keys/my-key", 0);
	expect_key("azure-kms", "https://myvault.vault.azure.net/keys/a/b/c", 0);
	expect_key("gcp-kms", "projects/p1/locations/global/keyRings/r1/cryptoKeys/k1", 1);
	expect_key("gcp-kms", "projects/p1/locations/global/keyRings/r1/cryptoKeys/k1/cryptoKeyVersions/1", 0);
	expect_key("gcp-kms", "projects//locations/global/keyRings/r1/cryptoKeys/k1", 0);
	expect_key("gcp-kms", "gcp-kms://projects/p1/locations/global/keyRings/r1/cryptoKeys/k1", 0);
	expect_key("hcvault", "http://127.0.0.1:8200/transit/keys/my-key", 1);
	expect_key("hcvault", "https://vault.example.com/transit/keys/my-key", 1);
	expect_key("hcvault", "https://vault.example.com:123456/transit/keys/my-key", 0);
	expect_key("hcvault", "https://vault.example.com/keys/my-key", 0); /* no mount */
	expect_key("hcvault", "vault.example.com/transit/keys/my-key", 0);
	expect_key("hcvault", "https://vault.example.com/transit/keys/", 0);
	expect_key("local-kms", "anything at all", 1);

	expect_check("{\"kms\":{\"type\":\"aliyun\",\"keyId\":\"k\"},\"kek\":{\"name\":\"k\"},"
		     "\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}",
		     1, MSGS("spec.kms.type 'aliyun' is not a KMS type: one of aws-kms, azure-kms, gcp-kms, hcvault, "
			     "local-kms"),
		     -1, NULL);
}
END_TEST

START_TEST(test_kek_name_limits)
{
	char name[300], text[1024];

	/* 256 characters are fine, 257 are not. */
	for (size_t len = 256; len <= 257; len++) {
		memset(name, 'a', len);
		name[len] = '\0';
		snprintf(text, sizeof(text),
			 "{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"%s\"},"
			 "\"latestCacheTtlSec\":1,\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}", name);
		if (len == 256)
			expect_check(text, 0, NULL, -1, NULL);
		else
			expect_check(text, -1, MSGS("have at most 256 characters"), -1, NULL);
	}
	expect_check("{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"pii.kek\"},"
		     "\"latestCacheTtlSec\":1,\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}",
		     -1, MSGS("spec.kek.name 'pii.kek' must match"), -1, NULL);
}
END_TEST

#define HEAD "{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"k\",\"shared\":true},"

START_TEST(test_warnings)
{
	/* Seven warnings: the READ rule's NONE writes nothing, but the rule itself leaves writes in plaintext. */
	expect_check(HEAD "\"latestCacheTtlSec\":-1,\"rules\":["
			  "{\"name\":\"pii\",\"tags\":[\"PII\"],\"onFailure\":\"NONE,NONE\"},"
			  "{\"name\":\"critical\",\"tags\":[\"CRITICAL\"],\"onFailure\":\"ERROR,NONE\"},"
			  "{\"name\":\"dlq\",\"tags\":[\"D\"],\"mode\":\"WRITE\",\"onFailure\":\"DLQ\"},"
			  "{\"name\":\"reader\",\"tags\":[\"R\"],\"mode\":\"READ\",\"onFailure\":\"NONE\"},"
			  "{\"name\":\"off\",\"tags\":[\"O\"],\"disabled\":true},"
			  "{\"name\":\"strict\",\"tags\":[\"S\"]}]}",
		     0, NULL, 7,
		     MSGS("spec.latestCacheTtlSec is -1: clients keep the latest schema forever",
			  "spec.rules[3] 'reader' has mode READ: it does not run when records are written",
			  "spec.rules[0] 'pii': onFailure NONE on writes lets plaintext be written",
			  "spec.rules[1] 'critical' fails strictly (ERROR) but comes after the lenient rule 'pii' "
			  "(spec.rules[0], NONE): order rules by sensitivity, strict rules first",
			  "spec.rules[2] 'dlq': onFailure DLQ on writes",
			  "spec.rules[4] 'off' is disabled: its tagged fields are written in plaintext",
			  "spec.rules[5] 'strict' fails strictly (ERROR) but comes after the lenient rule 'pii'"));
	/* Seed 002's optimized order: strict first, lenient after — only the NONE warnings remain. */
	expect_check(HEAD "\"latestCacheTtlSec\":60,\"rules\":["
			  "{\"name\":\"encryptCritical\",\"tags\":[\"CRITICAL\"],\"onFailure\":\"ERROR,NONE\"},"
			  "{\"name\":\"encryptPII\",\"tags\":[\"PII\"],\"onFailure\":\"NONE,NONE\"}]}",
		     0, NULL, 1, MSGS("spec.rules[1] 'encryptPII': onFailure NONE on writes"));
}
END_TEST

START_TEST(test_tag_cross_check)
{
	/*
	 * Rule tag SECRET on no field; schema tag INTERNAL used by no enabled rule (rule 'off' is disabled).
	 * No problem: age is tagged, but not with a tag a rule encrypts.
	 */
	expect_check(HEAD "\"latestCacheTtlSec\":60,\"rules\":[{\"name\":\"pii\",\"tags\":[\"PII\",\"SECRET\"]},"
			  "{\"name\":\"off\",\"tags\":[\"INTERNAL\"],\"disabled\":true}],"
			  "\"schemas\":[{\"subject\":\"s-value\",\"schemaType\":\"JSON\",\"schema\":"
			  "\"{\\\"type\\\":\\\"object\\\",\\\"properties\\\":{"
			  "\\\"ssn\\\":{\\\"type\\\":\\\"string\\\",\\\"confluent:tags\\\":[\\\"PII\\\"]},"
			  "\\\"age\\\":{\\\"type\\\":\\\"integer\\\",\\\"confluent:tags\\\":[\\\"INTERNAL\\\"]}}}\"}]}",
		     0, NULL, 3,
		     MSGS("rule 'pii' tag 'SECRET' is on no field of the given schemas",
			  "schema tag 'INTERNAL' is used by no enabled rule",
			  "spec.rules[1] 'off' is disabled"));
}
END_TEST

/* Issue 13 item 11: a rule that does not run on WRITE is as good as disabled, for warnings and tags. */
START_TEST(test_read_mode)
{
	/* Its tag covers no field: the schema's PII fields are written in plaintext, and both say so. */
	expect_check(HEAD "\"latestCacheTtlSec\":60,\"rules\":[{\"name\":\"readOnly\",\"tags\":[\"PII\"],"
			  "\"mode\":\"READ\"}],"
			  "\"schemas\":[{\"subject\":\"s-value\",\"schemaType\":\"AVRO\",\"schema\":\"" AVRO_ORDER "\"}]}",
		     0, NULL, 3,
		     MSGS("spec.rules[0] 'readOnly' has mode READ: it does not run when records are written, so its "
			  "tagged fields are written in plaintext (use WRITEREAD)",
			  "schema tag 'PII' is used by no enabled rule that runs on WRITE: its fields are written in "
			  "plaintext",
			  "schema tag 'CRITICAL' is used by no enabled rule that runs on WRITE"));
	/* A WRITE rule beside it covers the tag: only the READ rule's own warning remains. */
	expect_check(HEAD "\"latestCacheTtlSec\":60,\"rules\":[{\"name\":\"readOnly\",\"tags\":[\"PII\"],"
			  "\"mode\":\"READ\"},{\"name\":\"w\",\"tags\":[\"PII\",\"CRITICAL\"],\"mode\":\"WRITE\"}],"
			  "\"schemas\":[{\"subject\":\"s-value\",\"schemaType\":\"AVRO\",\"schema\":\"" AVRO_ORDER "\"}]}",
		     0, NULL, 1, MSGS("spec.rules[0] 'readOnly' has mode READ"));
	/* An encoding rule: the payloads. */
	expect_check(HEAD "\"latestCacheTtlSec\":60,\"rules\":[{\"name\":\"p\",\"type\":\"ENCRYPT_PAYLOAD\","
			  "\"mode\":\"READ\"}]}",
		     0, NULL, 1, MSGS("spec.rules[0] 'p' has mode READ: it does not run when records are written, so "
				      "payloads are written in plaintext"));
	/* Confluent's migration rule modes never run on a record written or read: refused, named as such. */
	expect_check(HEAD "\"latestCacheTtlSec\":60,\"rules\":[{\"name\":\"a\",\"tags\":[\"PII\"],"
			  "\"mode\":\"UPGRADE\"},{\"name\":\"b\",\"tags\":[\"PII\"],\"mode\":\"UPDOWN\"},"
			  "{\"name\":\"c\",\"tags\":[\"PII\"],\"mode\":\"DOWNGRADE\"}]}",
		     3, MSGS("spec.rules[0].mode 'UPGRADE' is a migration rule mode", "spec.rules[1].mode 'UPDOWN'",
			     "spec.rules[2].mode 'DOWNGRADE'"), -1, NULL);
}
END_TEST

/* Issue 13 item 12: the fields whose change leaves old records unreadable, and only those. */
START_TEST(test_identity_changes)
{
	json_t *a = J("{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"n\"},"
		      "\"latestCacheTtlSec\":1,\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}");
	json_t *b = json_deep_copy(a);
	char buf[128];

	/* Rules, TTL, the default algorithm written out: no change of keys. */
	json_object_set_new(b, "latestCacheTtlSec", json_integer(300));
	json_object_set_new(b, "dek", J("{\"algorithm\":\"AES256_GCM\",\"expiryDays\":30}"));
	json_object_set_new(b, "rules", J("[{\"name\":\"other\",\"tags\":[\"X\"]}]"));
	ck_assert_uint_eq(cmf_csfle_identity_changes(a, b, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "");
	json_object_set_new(json_object_get(b, "kek"), "name", json_string("n2"));
	ck_assert_uint_eq(cmf_csfle_identity_changes(a, b, buf, sizeof(buf)), 1);
	ck_assert_str_eq(buf, "spec.kek.name");
	json_object_set_new(b, "kms", J("{\"type\":\"hcvault\",\"keyId\":\"http://v/transit/keys/k\"}"));
	json_object_set_new(b, "dek", J("{\"algorithm\":\"AES256_SIV\"}"));
	ck_assert_uint_eq(cmf_csfle_identity_changes(a, b, buf, sizeof(buf)), 4);
	ck_assert_str_eq(buf, "spec.kek.name, spec.kms.keyId, spec.kms.type, spec.dek.algorithm");
	/* Cut, never overrun. */
	ck_assert_uint_eq(cmf_csfle_identity_changes(a, b, buf, 10), 4);
	ck_assert_uint_eq(strlen(buf), 9);
	ck_assert_uint_eq(cmf_csfle_identity_changes(NULL, b, buf, sizeof(buf)), 4);
	json_decref(a);
	json_decref(b);
}
END_TEST

/* Issue 13 item 14: the credential sets Confluent's aws and gcp drivers read, complete or partial. */
START_TEST(test_credentials_roles)
{
	static const struct {
		const char *type, *data;
		int count;
		const char *has;
	} cases[] = {
		{"aws-kms", "{\"profile\":\"p\"}", 0, NULL},
		{"aws-kms", "{\"role.arn\":\"arn:aws:iam::123456789012:role/r\"}", 0, NULL},
		{"aws-kms", "{\"role.arn\":\"a\",\"role.session.name\":\"s\",\"role.external.id\":\"x\"}", 0, NULL},
		{"aws-kms", "{\"access.key.id\":\"A\",\"secret.access.key\":\"s3cr3tVALUE\",\"role.arn\":\"a\","
			    "\"role.external.id\":\"x\"}", 0, NULL},
		{"aws-kms", "{\"profile\":\"p\",\"role.arn\":\"a\",\"role.session.name\":\"s\"}", 0, NULL},
		{"aws-kms", "{\"access.key.id\":\"A\",\"role.arn\":\"a\"}", 1, "missing secret.access.key"},
		{"aws-kms", "{\"role.session.name\":\"s\",\"role.external.id\":\"x\"}", 1,
		 "role.session.name and role.external.id are for assuming role.arn, which is not set"},
		{"aws-kms", "{\"profile\":\"p\",\"role.external.id\":\"x\"}", 1, "which is not set"},
		{"aws-kms", "{\"access.key.id\":\"A\",\"secret.access.key\":\"s3cr3tVALUE\",\"profile\":\"p\"}", 1,
		 "both access.key.id/secret.access.key and profile are set"},
		{"aws-kms", "{}", 1, "set access.key.id and secret.access.key, or profile, or role.arn"},
		{"aws-kms", "{\"role_arn\":\"a\"}", 2, "unknown key 'role_arn'"},
		{"gcp-kms", "{\"client.id\":\"c\",\"client.email\":\"e@x\",\"private.key.id\":\"i\","
			    "\"private.key\":\"s3cr3tVALUE\",\"account.type\":\"service_account\"}", 0, NULL},
		{"gcp-kms", "{\"account.type\":\"service_account\"}", 1,
		 "missing client.id, client.email, private.key.id, private.key"},
		{"azure-kms", "{\"tenant.id\":\"t\",\"client.id\":\"c\",\"client.secret\":\"s3cr3tVALUE\","
			      "\"account.type\":\"x\"}", 1, "unknown key 'account.type'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *p = json_array(), *d = J(cases[i].data);
		char *all;

		cmf_csfle_check_credentials(cases[i].type, d, p);
		if (cases[i].has != NULL)
			HAS(p, cases[i].has);
		COUNT(p, cases[i].count);
		all = json_dumps(p, 0);
		ck_assert_msg(strstr(all, "VALUE") == NULL, "case %zu quotes a value: %s", i, all);
		free(all);
		json_decref(d);
		json_decref(p);
	}
}
END_TEST

/* Issue 13 item 15: a checked boolean with spaces around it is refused, never read one way by cmf and another by a client. */
START_TEST(test_resolved_spaced_bool)
{
	json_t *kafka = J("{\"value.converter.auto.register.schemas\":\"true \",\"use.latest.version\":\" true\","
			  "\"rule.service.loader.enable\":\"\\ttrue\",\"rule.executors.x.disabled\":\"false\\n\"}");
	json_t *sr = J("{\"schema.registry.url\":\"http://sr\",\"auto.register.schemas\":\" false\"}");
	json_t *p = json_array(), *w = json_array(), *spec;

	cmf_csfle_check_resolved(kafka, sr, p, w);
	HAS(p, "kafka: value.converter.auto.register.schemas has spaces around its value");
	HAS(p, "kafka: use.latest.version has spaces around its value");
	HAS(p, "kafka: rule.service.loader.enable has spaces");
	HAS(p, "kafka: rule.executors.x.disabled has spaces");
	HAS(p, "schemaRegistry: auto.register.schemas has spaces");
	COUNT(p, 5);
	COUNT(w, 0);
	json_decref(p);
	/* At database write too, and apply changes nothing when refusing. */
	p = json_array();
	cmf_csfle_check_public(kafka, NULL, p, NULL);
	COUNT(p, 4);
	json_decref(p);
	p = json_array();
	spec = J("{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"k\"},"
		 "\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}");
	ck_assert_int_eq(cmf_csfle_apply(spec, "cfg", NULL, kafka, sr, p, w), 0);
	COUNT(p, 5);
	ck_assert_str_eq(json_string_value(json_object_get(sr, "auto.register.schemas")), " false");
	json_decref(spec);
	/* Other keys may have spaces; only sr's " false" is left to refuse. */
	json_decref(kafka);
	json_decref(p);
	kafka = J("{\"auto.register.schemas\":\"false\",\"client.id\":\" x \",\"use.latest.version\":\"TRUE\"}");
	p = json_array();
	cmf_csfle_check_resolved(kafka, sr, p, w);
	COUNT(p, 1);
	json_decref(kafka);
	json_decref(sr);
	json_decref(p);
	json_decref(w);
}
END_TEST

/* A spec with `subjects` JSON schemas and expiryDays `days`. */
static struct res
expiry_spec(int subjects, int days)
{
	json_t *spec = J(HEAD "\"latestCacheTtlSec\":60,\"rules\":[{\"name\":\"pii\",\"tags\":[\"PII\"]}]}");
	json_t *schemas = json_array();
	struct res r = {json_array(), json_array()};

	json_object_set_new(spec, "dek", json_pack("{s:i}", "expiryDays", days));
	for (int i = 0; i < subjects; i++) {
		char subject[32];

		snprintf(subject, sizeof(subject), "s%d-value", i);
		json_array_append_new(schemas, json_pack("{s:s,s:s,s:s}", "subject", subject, "schemaType", "JSON", "schema",
							 "{\"type\":\"object\",\"properties\":{\"ssn\":{\"type\":"
							 "\"string\",\"confluent:tags\":[\"PII\"]}}}"));
	}
	if (subjects > 0)
		json_object_set_new(spec, "schemas", schemas);
	else
		json_decref(schemas);
	cmf_csfle_check(spec, r.p, r.w);
	json_decref(spec);
	return r;
}

START_TEST(test_dek_expiry)
{
	/* 28 x 365 = 10,220 */
	expect_res(expiry_spec(28, 1), 0, NULL, 1,
		   MSGS("spec.dek.expiryDays 1: 28 subject(s) x 365 new DEKs a year = 10220, which reaches the DEK "
			"Registry's limit of 10000 retained DEKs within a year"));
	expect_res(expiry_spec(27, 1), 0, NULL, 0, NULL); /* 9,855 */
	/* 274 x 37 = 10,138 */
	expect_res(expiry_spec(274, 10), -1, NULL, -1, MSGS("274 subject(s) x 37 new DEKs a year = 10138"));
	expect_res(expiry_spec(0, 1), -1, NULL, 0, NULL); /* one subject at least, 365 */
	expect_res(expiry_spec(0, 0), 0, NULL, 0, NULL);  /* 0: no rotation */
}
END_TEST

/*
 * Checks schema `text` of `type` against `rule_tags` (NULL: every tag): expect_res's `np` and `problems`,
 * and the tags found are the JSON array `found_tags` (NULL: not compared).
 */
static void
expect_schema(const char *type, const char *text, json_t *rule_tags, int np, const char *const problems[],
	      const char *found_tags)
{
	struct res r = {json_array(), json_array()};
	json_t *found = json_array();

	cmf_csfle_check_schema(type, text, rule_tags, r.p, NULL, found);
	if (found_tags != NULL) {
		json_t *want = J(found_tags);

		ck_assert(json_equal(found, want));
		json_decref(want);
	}
	json_decref(found);
	expect_res(r, np, problems, -1, NULL);
}

START_TEST(test_avro_schema)
{
	const char *avro =
		"{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"com.acme\",\"fields\":["
		"{\"name\":\"ssn\",\"type\":\"string\",\"confluent:tags\":[\"PII\"]},"
		"{\"name\":\"card\",\"type\":[\"null\",\"bytes\"],\"confluent:tags\":[\"PII\"]},"
		"{\"name\":\"uuid\",\"type\":{\"type\":\"string\",\"logicalType\":\"uuid\"},\"confluent:tags\":[\"PII\"]},"
		"{\"name\":\"age\",\"type\":\"int\",\"confluent:tags\":[\"PII\"]},"
		"{\"name\":\"score\",\"type\":[\"null\",\"double\"],\"confluent:tags\":[\"PII\",\"EXTRA\"]},"
		"{\"name\":\"either\",\"type\":[\"string\",\"long\"],\"confluent:tags\":[\"PII\"]},"
		"{\"name\":\"customer\",\"type\":{\"type\":\"record\",\"name\":\"Customer\",\"fields\":["
		"  {\"name\":\"email\",\"type\":[\"null\",\"string\"],\"confluent:tags\":[\"PII\"]},"
		"  {\"name\":\"zip\",\"type\":\"long\",\"confluent:tags\":[\"PII\"]}]}},"
		"{\"name\":\"billTo\",\"type\":[\"null\",\"Customer\"],\"confluent:tags\":[\"PII\"]},"
		"{\"name\":\"notes\",\"type\":{\"type\":\"array\",\"items\":\"string\"},\"confluent:tags\":[\"PII\"]},"
		"{\"name\":\"counts\",\"type\":{\"type\":\"map\",\"values\":\"int\"},\"confluent:tags\":[\"PII\"]},"
		"{\"name\":\"lines\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"record\",\"name\":\"Line\",\"fields\":["
		"  {\"name\":\"sku\",\"type\":\"string\",\"confluent:tags\":[\"PII\"]},"
		"  {\"name\":\"price\",\"type\":\"float\",\"confluent:tags\":[\"PII\"]}]}}},"
		"{\"name\":\"kind\",\"type\":{\"type\":\"enum\",\"name\":\"Kind\",\"symbols\":[\"A\"]}},"
		"{\"name\":\"kind2\",\"type\":\"com.acme.Kind\",\"confluent:tags\":[\"PII\"]},"
		"{\"name\":\"other\",\"type\":\"Unknown\",\"confluent:tags\":[\"PII\"]},"
		"{\"name\":\"internal\",\"type\":\"int\",\"confluent:tags\":[\"INTERNAL\"]}]}";
	json_t *rule_tags = J("[\"PII\"]");

	/* ssn, card, uuid, customer.email, notes, lines[].sku are fine; internal is no rule's tag. */
	expect_schema("AVRO", avro, rule_tags, 9,
		      MSGS("field age is tagged for encryption but its type is int: only string and bytes fields can "
			   "be encrypted",
			   "field score is tagged for encryption but its type is double",
			   "field either is tagged for encryption but its type is union [\"string\",\"long\"]",
			   "field customer.zip is tagged for encryption but its type is long",
			   "field billTo is tagged for encryption but its type is record Customer",
			   "field counts is tagged for encryption but its type is map<int>",
			   "field lines[].price is tagged for encryption but its type is float",
			   "field kind2 is tagged for encryption but its type is enum Kind",
			   "field other is tagged for encryption but its type is 'Unknown' (a type not defined in this "
			   "schema)"),
		      "[\"PII\",\"EXTRA\",\"INTERNAL\"]");
	/* NULL rule tags: every tagged field is checked. */
	expect_schema("AVRO", avro, NULL, 10, MSGS("field internal is tagged for encryption but its type is int"),
		      NULL);
	/* Clean: nothing to report. */
	expect_schema("AVRO",
		      "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":[\"null\",\"string\"],"
		      "\"confluent:tags\":[\"PII\"]},{\"name\":\"b\",\"type\":\"int\"}]}",
		      rule_tags, 0, NULL, NULL);
	/* Malformed schemas are problems, not crashes. */
	expect_schema("AVRO", "{\"type\":\"record\",\"name\":\"R\",\"fields\":{}}", rule_tags, -1,
		      MSGS("record (root): fields must be an array"), NULL);
	expect_schema("AVRO",
		      "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"string\","
		      "\"confluent:tags\":\"PII\"},3]}",
		      rule_tags, -1,
		      MSGS("field a: confluent:tags must be an array of tag names",
			   "record (root): fields[1] must be an object with a name"),
		      NULL);
	expect_schema("PROTOBUF", "syntax = \"proto3\";", rule_tags, -1, MSGS("schemaType must be AVRO or JSON"), NULL);
	json_decref(rule_tags);
}
END_TEST

START_TEST(test_avro_depth_bounded)
{
	char text[8192];
	size_t n = 0;

	for (int i = 0; i < 60; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "{\"type\":\"record\",\"name\":\"R%d\",\"fields\":[{\"name\":\"f\",\"type\":", i);
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\"string\"");
	for (int i = 0; i < 60; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "}]}");
	ck_assert_uint_lt(n, sizeof(text) - 1);
	expect_schema("AVRO", text, NULL, -1, MSGS("is nested more than 32 levels deep"), NULL);
}
END_TEST

START_TEST(test_json_schema)
{
	const char *js =
		"{\"type\":\"object\",\"properties\":{"
		"\"ssn\":{\"type\":\"string\",\"confluent:tags\":[\"PII\"]},"
		"\"email\":{\"type\":[\"string\",\"null\"],\"confluent:tags\":[\"PII\"]},"
		"\"phone\":{\"oneOf\":[{\"type\":\"null\"},{\"type\":\"string\"}],\"confluent:tags\":[\"PII\"]},"
		"\"addr\":{\"$ref\":\"#/definitions/Street\",\"confluent:tags\":[\"PII\"]},"
		"\"age\":{\"type\":\"integer\",\"confluent:tags\":[\"PII\"]},"
		"\"score\":{\"type\":[\"number\",\"null\"],\"confluent:tags\":[\"PII\"]},"
		"\"maybe\":{\"oneOf\":[{\"type\":\"null\"},{\"type\":\"boolean\"}],\"confluent:tags\":[\"PII\"]},"
		"\"mixed\":{\"type\":[\"string\",\"integer\"],\"confluent:tags\":[\"PII\"]},"
		"\"any\":{\"confluent:tags\":[\"PII\"]},"
		"\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"confluent:tags\":[\"PII\"]},"
		"\"nums\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"confluent:tags\":[\"PII\"]},"
		"\"customer\":{\"type\":\"object\",\"properties\":{"
		"  \"name\":{\"type\":\"string\",\"confluent:tags\":[\"PII\"]},"
		"  \"zip\":{\"type\":\"integer\",\"confluent:tags\":[\"PII\"]}}},"
		"\"lines\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
		"  \"price\":{\"type\":\"number\",\"confluent:tags\":[\"PII\"]}}}},"
		"\"obj\":{\"type\":\"object\",\"confluent:tags\":[\"PII\"]},"
		"\"ref\":{\"$ref\":\"#/definitions/Num\",\"confluent:tags\":[\"PII\"]},"
		"\"ext\":{\"$ref\":\"other.json#/x\",\"confluent:tags\":[\"PII\"]}},"
		"\"definitions\":{\"Street\":{\"type\":\"string\"},\"Num\":{\"type\":\"number\"},"
		"  \"Card\":{\"type\":\"object\",\"properties\":{\"cvv\":{\"type\":\"integer\",\"confluent:tags\":[\"PCI\"]}}}}}";
	json_t *rule_tags = J("[\"PII\",\"PCI\"]");

	expect_schema("JSON", js, rule_tags, 12,
		      MSGS("field age is tagged for encryption but its type is integer: only string fields can be "
			   "encrypted",
			   "field score is tagged for encryption but its type is number",
			   "field maybe is tagged for encryption but its type is boolean",
			   "field mixed is tagged for encryption but its type is [\"string\",\"integer\"]",
			   "field any is tagged for encryption but its type is no declared type",
			   "field nums is tagged for encryption but its type is array<integer>",
			   "field customer.zip is tagged for encryption but its type is integer",
			   "field lines[].price is tagged for encryption but its type is number",
			   "field obj is tagged for encryption but its type is object",
			   "field ref is tagged for encryption but its type is number",
			   "field ext is tagged for encryption but its type is an unresolved $ref 'other.json#/x'",
			   "field definitions/Card.cvv is tagged for encryption but its type is integer"),
		      "[\"PII\",\"PCI\"]");
	expect_schema("JSON",
		      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":[\"null\",\"string\"],"
		      "\"confluent:tags\":[\"PII\"]},\"n\":{\"type\":\"integer\"}}}",
		      rule_tags, 0, NULL, NULL);
	expect_schema("JSON", "[1,2]", rule_tags, -1, MSGS("the JSON schema must be an object"), NULL);
	expect_schema("JSON", NULL, rule_tags, -1, MSGS("is not valid JSON"), NULL);
	json_decref(rule_tags);
}
END_TEST

START_TEST(test_spec_schema_problem_prefixed)
{
	struct res r = check_text(
		HEAD "\"latestCacheTtlSec\":60,\"rules\":[{\"name\":\"pii\",\"tags\":[\"PII\"]}],"
		     "\"schemas\":[{\"subject\":\"users-value\",\"schemaType\":\"AVRO\",\"schema\":"
		     "\"{\\\"type\\\":\\\"record\\\",\\\"name\\\":\\\"U\\\",\\\"fields\\\":[{\\\"name\\\":\\\"age\\\","
		     "\\\"type\\\":[\\\"null\\\",\\\"int\\\"],\\\"confluent:tags\\\":[\\\"PII\\\"]}]}\"},"
		     "{\"subject\":\"users-value\",\"schemaType\":\"JSON\",\"schema\":\"{}\",\"references\":[]}]}");

	ck_assert_ptr_null(cmf_csfle_ruleset(json_array_get(r.p, 99)));
	expect_res(r, 3,
		   MSGS("spec.schemas[0] (subject 'users-value'): field age is tagged for encryption but its type "
			"is int",
			"spec.schemas[1].subject 'users-value' is listed twice",
			"spec.schemas[1]: unknown field 'references'"),
		   -1, NULL);
}
END_TEST

static json_t *
creds(const char *type, const char *data)
{
	json_t *d = J(data), *p = json_array();

	cmf_csfle_check_credentials(type, d, p);
	json_decref(d);
	return p;
}

START_TEST(test_credentials)
{
	/* A secret's data for a KMS type: the messages it gets, by part, and how many (-1: not counted). */
	static const struct {
		const char *type, *data;
		int count;
		const char *has[2];
	} cases[] = {
		{"aws-kms", "{\"access.key.id\":\"AKIAVALUE\",\"secret.access.key\":\"s3cr3tVALUE\"}", 0, {NULL}},
		{"azure-kms", "{\"tenant.id\":\"t\",\"client.id\":\"c\",\"client.secret\":\"s3cr3tVALUE\"}", 0, {NULL}},
		{"gcp-kms",
		 "{\"client.id\":\"c\",\"client.email\":\"e@x\",\"private.key.id\":\"i\","
		 "\"private.key\":\"s3cr3tVALUE\"}",
		 0, {NULL}},
		{"hcvault", "{\"token.id\":\"s3cr3tVALUE\"}", 0, {NULL}},
		{"hcvault", "{\"token.id\":\"s3cr3tVALUE\",\"namespace\":\"ns\"}", 0, {NULL}},
		{"hcvault", "{\"approle.role.id\":\"r\",\"approle.secret.id\":\"s3cr3tVALUE\",\"namespace\":\"ns\"}", 0,
		 {NULL}},
		{"local-kms", "{\"secret\":\"s3cr3tVALUE\"}", 0, {NULL}},
		{"aws-kms", "{\"access.key,id\":\"AKIAVALUE\",\"secret.access.key\":\"s3cr3tVALUE\"}", 2,
		 {"KMS credentials for aws-kms: unknown key 'access.key,id' "
		  "(expected access.key.id and secret.access.key, or profile, optionally with role.arn",
		  "KMS credentials for aws-kms are incomplete: missing access.key.id "
		  "(clients would silently fall back to ambient credentials)"}},
		{"azure-kms", "{\"client.secret\":\"s3cr3tVALUE\"}", 1,
		 {"KMS credentials for azure-kms are incomplete: missing tenant.id, client.id"}},
		{"gcp-kms", "{\"client.id\":\"c\",\"private.key\":\"s3cr3tVALUE\",\"private_key\":\"x\"}", 2,
		 {"missing client.email, private.key.id", "unknown key 'private_key'"}},
		{"hcvault", "{\"approle.role.id\":\"r\"}", 1,
		 {"KMS credentials for hcvault are incomplete: missing approle.secret.id"}},
		{"hcvault", "{\"namespace\":\"ns\"}", 1,
		 {"KMS credentials for hcvault are incomplete: set token.id, or approle.role.id and "
		  "approle.secret.id"}},
		{"hcvault", "{\"token.id\":\"t\",\"approle.role.id\":\"r\",\"approle.secret.id\":\"s\"}", 1,
		 {"both token.id and approle.* are set"}},
		{"local-kms", "{\"secret\":\"\",\"secrets\":\"s3cr3tVALUE\"}", 2,
		 {"KMS credentials for local-kms: key 'secret' must be a non-empty string", "unknown key 'secrets'"}},
		{"local-kms", "{}", -1, {"missing secret"}},
		{"aws-kms", "[\"s3cr3tVALUE\"]", -1, {"the secret's data must be an object of strings"}},
		{"aws", "{}", -1, {"unknown KMS type"}},
	};
	json_t *p;
	char *all;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		p = creds(cases[i].type, cases[i].data);
		for (size_t j = 0; j < sizeof(cases[i].has) / sizeof(cases[i].has[0]) && cases[i].has[j] != NULL; j++)
			HAS(p, cases[i].has[j]);
		if (cases[i].count >= 0)
			COUNT(p, cases[i].count);
		/* names, never values */
		all = json_dumps(p, 0);
		ck_assert_msg(strstr(all, "VALUE") == NULL, "case %zu quotes a value: %s", i, all);
		free(all);
		json_decref(p);
	}
	p = json_array();
	cmf_csfle_check_credentials(NULL, NULL, p);
	COUNT(p, 1);
	json_decref(p);
}
END_TEST

START_TEST(test_resolved)
{
	json_t *kafka = J("{\"bootstrap.servers\":\"b:9092\",\"auto.register.schemas\":\"TRUE\","
			  "\"value.converter.use.latest.version\":\"false\","
			  "\"rule.executors._default_.disabled\":\"true\","
			  "\"rule.executors.encryptPII.onFailure\":\"ERROR,NONE\","
			  "\"rule.service.loader.enable\":\"false\","
			  "\"errors.deadletterqueue.topic.name\":\"dlq-orders\","
			  "\"reporter.error.topic.name\":\"errors\",\"dlq.topic\":\"x\"}");
	json_t *sr = J("{\"basic.auth.user.info\":\"u:p\"}");
	json_t *p = json_array(), *w = json_array();

	cmf_csfle_check_resolved(kafka, sr, p, w);
	HAS(p, "kafka: auto.register.schemas=true registers schemas without the encryption rules");
	HAS(p, "kafka: value.converter.use.latest.version must be true");
	HAS(p, "kafka: rule.executors._default_.disabled=true switches encryption off");
	HAS(p, "kafka: rule.executors.encryptPII.onFailure containing NONE lets plaintext through");
	HAS(p, "kafka: rule.service.loader.enable=false stops the clients from loading the encryption rule executor");
	HAS(p, "no schema.registry.url");
	COUNT(p, 6);
	HAS(w, "kafka: errors.deadletterqueue.topic.name: dead letter queue and reporter topics are not encrypted");
	HAS(w, "kafka: reporter.error.topic.name:");
	HAS(w, "kafka: dlq.topic:");
	COUNT(w, 3);
	json_decref(kafka);
	json_decref(sr);
	json_decref(p);
	json_decref(w);

	/* Clean: explicit good values, or absent (cmf's rendering sets them). */
	kafka = J("{\"bootstrap.servers\":\"b:9092\",\"auto.register.schemas\":\"false\",\"use.latest.version\":true,"
		  "\"rule.executors._default_.param.access.key.id\":\"A\",\"rule.service.loader.enable\":\"true\"}");
	sr = J("{\"schema.registry.url\":\"http://sr:8081\"}");
	p = json_array();
	w = json_array();
	cmf_csfle_check_resolved(kafka, sr, p, w);
	COUNT(p, 0);
	COUNT(w, 0);
	cmf_csfle_check_resolved(kafka, NULL, p, w);
	HAS(p, "no schema.registry.url");
	json_decref(kafka);
	json_decref(sr);
	json_decref(p);
	json_decref(w);

	p = json_array();
	kafka = J("[1]");
	cmf_csfle_check_resolved(kafka, NULL, p, NULL);
	HAS(p, "the resolved kafka config must be an object");
	COUNT(p, 2);
	json_decref(kafka);
	json_decref(p);
}
END_TEST

/* The ruleSet of `spec_text` is the JSON `want_text`. */
static void
expect_ruleset(const char *spec_text, const char *want_text)
{
	json_t *spec = J(spec_text), *rs = cmf_csfle_ruleset(spec), *want = J(want_text);

	ck_assert_ptr_nonnull(rs);
	if (!json_equal(rs, want)) {
		dump("got", rs);
		ck_abort_msg("ruleSet differs");
	}
	json_decref(rs);
	json_decref(want);
	json_decref(spec);
}

START_TEST(test_ruleset)
{
	json_t *spec;

	expect_ruleset(
		CLEAN_SPEC,
		"{\"domainRules\":["
		"{\"name\":\"encryptCritical\",\"kind\":\"TRANSFORM\",\"mode\":\"WRITEREAD\",\"type\":\"ENCRYPT\","
		"\"tags\":[\"CRITICAL\"],\"params\":{\"encrypt.kek.name\":\"pii-kek\","
		"\"encrypt.kms.key.id\":\"arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab\","
		"\"encrypt.kms.type\":\"aws-kms\",\"encrypt.dek.algorithm\":\"AES256_SIV\","
		"\"encrypt.dek.expiry.days\":\"90\",\"preserve.source.fields\":\"false\"},"
		"\"onFailure\":\"ERROR,NONE\",\"disabled\":false},"
		"{\"name\":\"encryptPII\",\"kind\":\"TRANSFORM\",\"mode\":\"WRITEREAD\",\"type\":\"ENCRYPT\","
		"\"tags\":[\"PII\"],\"params\":{\"encrypt.kek.name\":\"pii-kek\","
		"\"encrypt.kms.key.id\":\"arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab\","
		"\"encrypt.kms.type\":\"aws-kms\",\"encrypt.dek.algorithm\":\"AES256_SIV\","
		"\"encrypt.dek.expiry.days\":\"90\",\"preserve.source.fields\":\"false\"},"
		"\"onSuccess\":\"NONE\",\"onFailure\":\"ERROR\",\"disabled\":false}],"
		"\"encodingRules\":["
		"{\"name\":\"payload\",\"kind\":\"TRANSFORM\",\"mode\":\"WRITE\",\"type\":\"ENCRYPT_PAYLOAD\","
		"\"params\":{\"encrypt.kek.name\":\"pii-kek\","
		"\"encrypt.kms.key.id\":\"arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab\","
		"\"encrypt.kms.type\":\"aws-kms\",\"encrypt.dek.algorithm\":\"AES256_SIV\","
		"\"encrypt.dek.expiry.days\":\"90\",\"preserve.source.fields\":\"false\"},\"disabled\":false}]}");
	/* Defaults: AES256_GCM, no expiry, WRITEREAD, preserve true; no encoding rules; disabled kept. */
	expect_ruleset(
		"{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"mykey\"},\"kek\":{\"name\":\"k1\",\"shared\":true},"
		"\"preserveSourceFields\":true,\"rules\":[{\"name\":\"b\",\"tags\":[\"B\",\"A\"],\"disabled\":true},"
		"{\"name\":\"a\",\"tags\":[\"A\"]}]}",
		"{\"domainRules\":["
		"{\"name\":\"b\",\"kind\":\"TRANSFORM\",\"mode\":\"WRITEREAD\",\"type\":\"ENCRYPT\",\"tags\":[\"B\",\"A\"],"
		"\"params\":{\"encrypt.kek.name\":\"k1\",\"encrypt.kms.key.id\":\"mykey\","
		"\"encrypt.kms.type\":\"local-kms\","
		"\"encrypt.dek.algorithm\":\"AES256_GCM\",\"preserve.source.fields\":\"true\"},\"disabled\":true},"
		"{\"name\":\"a\",\"kind\":\"TRANSFORM\",\"mode\":\"WRITEREAD\",\"type\":\"ENCRYPT\",\"tags\":[\"A\"],"
		"\"params\":{\"encrypt.kek.name\":\"k1\",\"encrypt.kms.key.id\":\"mykey\","
		"\"encrypt.kms.type\":\"local-kms\","
		"\"encrypt.dek.algorithm\":\"AES256_GCM\",\"preserve.source.fields\":\"true\"},\"disabled\":false}],"
		"\"encodingRules\":[]}");

	/* A spec with problems has no ruleSet; warnings alone do not stop it. */
	spec = J(HEAD "\"rules\":[{\"name\":\"a\",\"tags\":[\"A\"],\"mode\":\"READWRITE\"}]}");
	ck_assert_ptr_null(cmf_csfle_ruleset(spec));
	json_decref(spec);
	ck_assert_ptr_null(cmf_csfle_ruleset(NULL));
}
END_TEST

START_TEST(test_apply)
{
	json_t *spec = J("{\"kms\":{\"type\":\"aws-kms\",\"keyId\":\"arn:aws:kms:us-east-1:123456789012:key/k\","
			 "\"credentialsSecretId\":\"kms\"},\"kek\":{\"name\":\"kek\"},\"latestCacheTtlSec\":300,"
			 "\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}");
	json_t *creds = J("{\"access.key.id\":\"AKIA\",\"secret.access.key\":\"s3cr3t\"}");
	json_t *kafka = J("{\"bootstrap.servers\":\"b:9092\",\"use.latest.version\":\"true\"}");
	json_t *sr = J("{\"schema.registry.url\":\"http://sr\"}");
	json_t *problems = json_array(), *warnings = json_array(), *want;

	ck_assert_int_eq(cmf_csfle_apply(spec, "cfg", creds, kafka, sr, problems, warnings), 0);
	dump("problems", problems);
	ck_assert_int_eq(json_array_size(problems), 0);
	ck_assert_int_eq(json_array_size(warnings), 0);
	/* The serializer settings and credentials go to sr, once: the copy in kafka leaves. */
	want = J("{\"schema.registry.url\":\"http://sr\",\"auto.register.schemas\":\"false\","
		 "\"use.latest.version\":\"true\",\"latest.cache.ttl.sec\":\"300\","
		 "\"rule.executors._default_.param.access.key.id\":\"AKIA\","
		 "\"rule.executors._default_.param.secret.access.key\":\"s3cr3t\"}");
	ck_assert(json_equal(sr, want));
	json_decref(want);
	want = J("{\"bootstrap.servers\":\"b:9092\"}");
	ck_assert(json_equal(kafka, want));
	json_decref(want);
	json_decref(kafka);
	json_decref(sr);
	json_decref(creds);

	/* Problems: nothing changes, every one is named, no value is quoted. */
	creds = J("{\"access.key.id\":\"AKIA\"}");
	kafka = J("{\"rule.executors._default_.param.secret.access.key\":\"other-secret\","
		  "\"latest.cache.ttl.sec\":\"-1\",\"dlq.topic.name\":\"d\"}");
	sr = J("{\"schema.registry.url\":\"http://sr\",\"auto.register.schemas\":\"TRUE\"}");
	json_array_clear(problems);
	json_array_clear(warnings);
	ck_assert_int_eq(cmf_csfle_apply(spec, "cfg", creds, kafka, sr, problems, warnings), 0);
	dump("problems", problems);
	ck_assert_int_eq(json_array_size(problems), 4);
	ck_assert(has(problems, "rule.executors._default_.param.secret.access.key"));
	ck_assert(has(problems, "latestCacheTtlSec (300)"));
	ck_assert(has(problems, "auto.register.schemas"));
	ck_assert(has(problems, "missing secret.access.key"));
	ck_assert(!has(problems, "other-secret") && !has(problems, "AKIA"));
	ck_assert(has(warnings, "dlq.topic.name"));
	ck_assert_ptr_null(json_object_get(sr, "use.latest.version"));
	json_decref(kafka);
	json_decref(sr);
	json_decref(creds);

	/* No credentialsSecretId: ambient credentials, nothing to check or add. */
	json_object_del(json_object_get(spec, "kms"), "credentialsSecretId");
	kafka = J("{}");
	sr = J("{\"schema.registry.url\":\"http://sr\"}");
	json_array_clear(problems);
	ck_assert_int_eq(cmf_csfle_apply(spec, "cfg", NULL, kafka, sr, problems, NULL), 0);
	ck_assert_int_eq(json_array_size(problems), 0);
	ck_assert_int_eq(json_object_size(sr), 4);
	json_decref(kafka);
	json_decref(sr);
	json_decref(spec);
	json_decref(problems);
	json_decref(warnings);
}
END_TEST

START_TEST(test_credential_key)
{
	ck_assert(cmf_csfle_credential_key("rule.executors._default_.param.access.key.id"));
	ck_assert(cmf_csfle_credential_key("value.converter.rule.executors.enc.param.secret"));
	ck_assert(!cmf_csfle_credential_key("rule.executors._default_.onFailure"));
	ck_assert(!cmf_csfle_credential_key("rule.executors..param.x"));
	ck_assert(!cmf_csfle_credential_key("xrule.executors.a.param.x"));
	ck_assert(!cmf_csfle_credential_key("rule.executors"));
}
END_TEST

CMF_CHECK_SUITE("csfle", test_clean_spec, test_all_problems_at_once, test_wrong_types_never_crash,
	test_kms_key_ids, test_kek_name_limits, test_warnings, test_tag_cross_check, test_dek_expiry,
	test_avro_schema, test_avro_depth_bounded, test_json_schema, test_spec_schema_problem_prefixed,
	test_credentials, test_resolved, test_ruleset, test_apply, test_credential_key, test_read_mode,
	test_identity_changes, test_credentials_roles, test_resolved_spaced_bool)
