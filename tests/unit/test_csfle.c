// links: cmf/csfle/*.c cmf/text.c
/* Unit tests for cmf/csfle/csfle.c: each CSFLE check tripped and passed, schemas, credentials, resolved configs, ruleSet. */
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
	struct res r = check_text(CLEAN_SPEC);

	COUNT(r.p, 0);
	COUNT(r.w, 0);
	res_free(&r);
	/* The minimal spec: defaults everywhere. */
	r = check_text("{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"_k\",\"shared\":true},"
		       "\"latestCacheTtlSec\":0,\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}");
	COUNT(r.p, 0);
	COUNT(r.w, 0);
	res_free(&r);
	/* Neither credentials nor a shared KEK: ambient credentials, which cmf cannot check. */
	r = check_text("{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"_k\"},"
		       "\"latestCacheTtlSec\":0,\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}");
	COUNT(r.p, 0);
	COUNT(r.w, 1);
	ck_assert(has(r.w, "ambient KMS credentials"));
	res_free(&r);
}
END_TEST

START_TEST(test_all_problems_at_once)
{
	struct res r = check_text(
		"{\"kms\":{\"type\":\"AWS\",\"keyId\":\"x\",\"region\":\"eu\"},\"kek\":{\"name\":\"1bad\",\"shared\":\"no\"},"
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
		"{\"name\":\"h\",\"type\":\"DECRYPT\",\"tags\":[\"X\",\"X\"],\"disabled\":1,\"onSucess\":\"NONE\"},"
		"{\"name\":\"i\",\"tags\":[\"X\"],\"onFailure\":\"ERROR,NONE,DLQ\"},"
		"{\"name\":\"j\",\"tags\":[\"X\"],\"mode\":\"write\"},"
		"{\"name\":\"k\",\"tags\":\"X\"}, 7]}");

	HAS(r.p, "spec: unknown field 'extra'");
	HAS(r.p, "spec.kms: unknown field 'region'");
	HAS(r.p, "spec.kms.type 'AWS' is not a canonical KMS type: use 'aws-kms'");
	HAS(r.p, "spec.kek.name '1bad' must match ^[A-Za-z_][A-Za-z0-9_-]*$");
	HAS(r.p, "spec.kek.shared must be true or false");
	HAS(r.p, "spec.dek.algorithm 'AES256' is not a DEK algorithm");
	HAS(r.p, "spec.dek.expiryDays must be an integer >= 0");
	HAS(r.p, "spec.preserveSourceFields must be true or false");
	HAS(r.p, "spec.latestCacheTtlSec must be an integer >= -1");
	HAS(r.p, "spec.rules[0].mode 'READWRITE' is not a mode: use WRITEREAD (there is no READWRITE)");
	HAS(r.p, "spec.rules[1].name 'a' is not unique");
	HAS(r.p, "spec.rules[1].tags must name at least one tag: an ENCRYPT rule with no tags targets every field");
	HAS(r.p, "spec.rules[1].kind 'CONDITION' must be TRANSFORM");
	HAS(r.p, "spec.rules[2].onFailure 'error' is not an action: ERROR, NONE or DLQ (case-sensitive)");
	HAS(r.p, "spec.rules[3].onFailure 'ERROR, NONE' must not contain spaces");
	HAS(r.p, "spec.rules[4].onFailure 'ERROR,NONE': the two-value form (write,read) is only for mode WRITEREAD, not "
		 "WRITE");
	HAS(r.p, "spec.rules[5]: an ENCRYPT_PAYLOAD rule encrypts the whole payload (an encoding rule) and takes no tags");
	HAS(r.p, "spec.rules[6].tags must name at least one tag");
	HAS(r.p, "spec.rules[7].type 'DECRYPT' must be ENCRYPT");
	HAS(r.p, "spec.rules[7].disabled must be true or false");
	HAS(r.p, "spec.rules[7]: unknown field 'onSucess'");
	HAS(r.p, "spec.rules[7].tags: tag 'X' is listed twice");
	HAS(r.p, "spec.rules[8].onFailure 'ERROR,NONE,DLQ' is not an action");
	HAS(r.p, "spec.rules[9].mode 'write' is not a mode: WRITE, READ or WRITEREAD (case-sensitive)");
	HAS(r.p, "spec.rules[10].tags must be an array of tag names");
	HAS(r.p, "spec.rules[11] must be an object");
	COUNT(r.p, 26);
	res_free(&r);

	/* A duplicated tag, once the rule is otherwise fine. */
	r = check_text("{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"k\"},\"latestCacheTtlSec\":1,"
		       "\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\",\"PII\"]}]}");
	HAS(r.p, "spec.rules[0].tags: tag 'PII' is listed twice");
	COUNT(r.p, 1);
	res_free(&r);
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
	{
		struct res r = check_text(specs[6]);

		HAS(r.p, "spec.kms.type must be a non-empty string");
		HAS(r.p, "spec.kms.keyId must be a non-empty string");
		HAS(r.p, "spec.kms.credentialsSecretId must be a non-empty string");
		HAS(r.p, "spec.kek.name must be a non-empty string");
		HAS(r.p, "spec.dek.expiryDays must be an integer >= 0");
		HAS(r.p, "spec.rules[0].name must be a non-empty string");
		HAS(r.p, "spec.rules[0].tags[0] must be a non-empty string");
		HAS(r.p, "spec.rules[0].tags[1] must be a non-empty string");
		HAS(r.p, "spec.rules[0].mode must be a non-empty string");
		HAS(r.p, "spec.rules[0].onFailure must be a string");
		HAS(r.p, "spec.schemas[0] must be an object");
		HAS(r.p, "spec.schemas[1].subject must be a non-empty string");
		HAS(r.p, "spec.schemas[2].schemaType 'PROTOBUF' must be AVRO or JSON");
		HAS(r.p, "spec.schemas[3] (subject 't'): the AVRO schema is not valid JSON (line 1, column");
		res_free(&r);
	}
	{
		struct res r = check_text("{}");

		HAS(r.p, "spec.kms is required");
		HAS(r.p, "spec.kek is required");
		HAS(r.p, "spec.rules is required");
		COUNT(r.p, 3);
		HAS(r.w, "spec.latestCacheTtlSec is unset");
		res_free(&r);
	}
}
END_TEST

static void
expect_key(const char *type, const char *key, int ok)
{
	char text[1024];
	struct res r;

	snprintf(text, sizeof(text),
		 "{\"kms\":{\"type\":\"%s\",\"keyId\":\"%s\"},\"kek\":{\"name\":\"k\"},\"latestCacheTtlSec\":60,"
		 "\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}", type, key);
	r = check_text(text);
	if (ok)
		COUNT(r.p, 0);
	else {
		COUNT(r.p, 1);
		HAS(r.p, "spec.kms.keyId '");
	}
	res_free(&r);
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

	{
		struct res r = check_text("{\"kms\":{\"type\":\"aliyun\",\"keyId\":\"k\"},\"kek\":{\"name\":\"k\"},"
					  "\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}");

		HAS(r.p, "spec.kms.type 'aliyun' is not a KMS type: one of aws-kms, azure-kms, gcp-kms, hcvault, local-kms");
		COUNT(r.p, 1);
		res_free(&r);
	}
}
END_TEST

START_TEST(test_kek_name_limits)
{
	char name[300], text[1024];
	struct res r;

	memset(name, 'a', 256);
	name[256] = '\0';
	snprintf(text, sizeof(text), "{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"%s\"},"
		 "\"latestCacheTtlSec\":1,\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}", name);
	r = check_text(text);
	COUNT(r.p, 0);
	res_free(&r);
	name[256] = 'a';
	name[257] = '\0';
	snprintf(text, sizeof(text), "{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"%s\"},"
		 "\"latestCacheTtlSec\":1,\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}", name);
	r = check_text(text);
	HAS(r.p, "have at most 256 characters");
	res_free(&r);
	r = check_text("{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"pii.kek\"},"
		       "\"latestCacheTtlSec\":1,\"rules\":[{\"name\":\"r\",\"tags\":[\"PII\"]}]}");
	HAS(r.p, "spec.kek.name 'pii.kek' must match");
	res_free(&r);
}
END_TEST

#define HEAD "{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"k\"},\"kek\":{\"name\":\"k\",\"shared\":true},"

START_TEST(test_warnings)
{
	struct res r = check_text(HEAD "\"latestCacheTtlSec\":-1,\"rules\":["
				       "{\"name\":\"pii\",\"tags\":[\"PII\"],\"onFailure\":\"NONE,NONE\"},"
				       "{\"name\":\"critical\",\"tags\":[\"CRITICAL\"],\"onFailure\":\"ERROR,NONE\"},"
				       "{\"name\":\"dlq\",\"tags\":[\"D\"],\"mode\":\"WRITE\",\"onFailure\":\"DLQ\"},"
				       "{\"name\":\"reader\",\"tags\":[\"R\"],\"mode\":\"READ\",\"onFailure\":\"NONE\"},"
				       "{\"name\":\"off\",\"tags\":[\"O\"],\"disabled\":true},"
				       "{\"name\":\"strict\",\"tags\":[\"S\"]}]}");

	COUNT(r.p, 0);
	HAS(r.w, "spec.latestCacheTtlSec is -1: clients keep the latest schema forever");
	HAS(r.w, "spec.rules[0] 'pii': onFailure NONE on writes lets plaintext be written");
	HAS(r.w, "spec.rules[1] 'critical' fails strictly (ERROR) but comes after the lenient rule 'pii' "
		 "(spec.rules[0], NONE): order rules by sensitivity, strict rules first");
	HAS(r.w, "spec.rules[2] 'dlq': onFailure DLQ on writes");
	HAS(r.w, "spec.rules[4] 'off' is disabled: its tagged fields are written in plaintext");
	HAS(r.w, "spec.rules[5] 'strict' fails strictly (ERROR) but comes after the lenient rule 'pii'");
	COUNT(r.w, 6); /* the READ rule's NONE writes nothing */
	res_free(&r);

	/* Seed 002's optimized order: strict first, lenient after — only the NONE warnings remain. */
	r = check_text(HEAD "\"latestCacheTtlSec\":60,\"rules\":["
			    "{\"name\":\"encryptCritical\",\"tags\":[\"CRITICAL\"],\"onFailure\":\"ERROR,NONE\"},"
			    "{\"name\":\"encryptPII\",\"tags\":[\"PII\"],\"onFailure\":\"NONE,NONE\"}]}");
	COUNT(r.p, 0);
	HAS(r.w, "spec.rules[1] 'encryptPII': onFailure NONE on writes");
	COUNT(r.w, 1);
	res_free(&r);
}
END_TEST

START_TEST(test_tag_cross_check)
{
	/* Rule tag SECRET on no field; schema tag INTERNAL used by no enabled rule (rule 'off' is disabled). */
	struct res r = check_text(
		HEAD "\"latestCacheTtlSec\":60,\"rules\":[{\"name\":\"pii\",\"tags\":[\"PII\",\"SECRET\"]},"
		     "{\"name\":\"off\",\"tags\":[\"INTERNAL\"],\"disabled\":true}],"
		     "\"schemas\":[{\"subject\":\"s-value\",\"schemaType\":\"JSON\",\"schema\":"
		     "\"{\\\"type\\\":\\\"object\\\",\\\"properties\\\":{"
		     "\\\"ssn\\\":{\\\"type\\\":\\\"string\\\",\\\"confluent:tags\\\":[\\\"PII\\\"]},"
		     "\\\"age\\\":{\\\"type\\\":\\\"integer\\\",\\\"confluent:tags\\\":[\\\"INTERNAL\\\"]}}}\"}]}");

	COUNT(r.p, 0); /* age is tagged, but not with a tag a rule encrypts */
	HAS(r.w, "rule 'pii' tag 'SECRET' is on no field of the given schemas");
	HAS(r.w, "schema tag 'INTERNAL' is used by no enabled rule");
	HAS(r.w, "spec.rules[1] 'off' is disabled");
	COUNT(r.w, 3);
	res_free(&r);
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
	struct res r = expiry_spec(28, 1); /* 28 x 365 = 10,220 */

	COUNT(r.p, 0);
	HAS(r.w, "spec.dek.expiryDays 1: 28 subject(s) x 365 new DEKs a year = 10220, which reaches the DEK Registry's "
		 "limit of 10000 retained DEKs within a year");
	COUNT(r.w, 1);
	res_free(&r);
	r = expiry_spec(27, 1); /* 9,855 */
	COUNT(r.p, 0);
	COUNT(r.w, 0);
	res_free(&r);
	r = expiry_spec(274, 10); /* 274 x 37 = 10,138 */
	HAS(r.w, "274 subject(s) x 37 new DEKs a year = 10138");
	res_free(&r);
	r = expiry_spec(0, 1); /* one subject at least, 365 */
	COUNT(r.w, 0);
	res_free(&r);
	r = expiry_spec(0, 0); /* 0: no rotation */
	COUNT(r.p, 0);
	COUNT(r.w, 0);
	res_free(&r);
}
END_TEST

static void
schema_check(const char *type, const char *text, json_t *rule_tags, json_t **problems, json_t **found)
{
	*problems = json_array();
	*found = json_array();
	cmf_csfle_check_schema(type, text, rule_tags, *problems, NULL, *found);
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
	json_t *rule_tags = J("[\"PII\"]"), *p, *found, *want;

	schema_check("AVRO", avro, rule_tags, &p, &found);
	HAS(p, "field age is tagged for encryption but its type is int: only string and bytes fields can be encrypted");
	HAS(p, "field score is tagged for encryption but its type is double");
	HAS(p, "field either is tagged for encryption but its type is union [\"string\",\"long\"]");
	HAS(p, "field customer.zip is tagged for encryption but its type is long");
	HAS(p, "field billTo is tagged for encryption but its type is record Customer");
	HAS(p, "field counts is tagged for encryption but its type is map<int>");
	HAS(p, "field lines[].price is tagged for encryption but its type is float");
	HAS(p, "field kind2 is tagged for encryption but its type is enum Kind");
	HAS(p, "field other is tagged for encryption but its type is 'Unknown' (a type not defined in this schema)");
	COUNT(p, 9); /* ssn, card, uuid, customer.email, notes, lines[].sku are fine; internal is no rule's tag */
	want = J("[\"PII\",\"EXTRA\",\"INTERNAL\"]");
	ck_assert(json_equal(found, want));
	json_decref(want);
	json_decref(p);
	json_decref(found);

	/* NULL rule tags: every tagged field is checked. */
	schema_check("AVRO", avro, NULL, &p, &found);
	HAS(p, "field internal is tagged for encryption but its type is int");
	COUNT(p, 10);
	json_decref(p);
	json_decref(found);

	/* Clean: nothing to report. */
	schema_check("AVRO",
		     "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":[\"null\",\"string\"],"
		     "\"confluent:tags\":[\"PII\"]},{\"name\":\"b\",\"type\":\"int\"}]}",
		     rule_tags, &p, &found);
	COUNT(p, 0);
	json_decref(p);
	json_decref(found);

	/* Malformed schemas are problems, not crashes. */
	schema_check("AVRO", "{\"type\":\"record\",\"name\":\"R\",\"fields\":{}}", rule_tags, &p, &found);
	HAS(p, "record (root): fields must be an array");
	json_decref(p);
	json_decref(found);
	schema_check("AVRO", "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"string\","
			     "\"confluent:tags\":\"PII\"},3]}", rule_tags, &p, &found);
	HAS(p, "field a: confluent:tags must be an array of tag names");
	HAS(p, "record (root): fields[1] must be an object with a name");
	json_decref(p);
	json_decref(found);
	schema_check("PROTOBUF", "syntax = \"proto3\";", rule_tags, &p, &found);
	HAS(p, "schemaType must be AVRO or JSON");
	json_decref(p);
	json_decref(found);
	json_decref(rule_tags);
}
END_TEST

START_TEST(test_avro_depth_bounded)
{
	char text[8192];
	size_t n = 0;
	json_t *p, *found;

	for (int i = 0; i < 60; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "{\"type\":\"record\",\"name\":\"R%d\",\"fields\":[{\"name\":\"f\",\"type\":", i);
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\"string\"");
	for (int i = 0; i < 60; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "}]}");
	ck_assert_uint_lt(n, sizeof(text) - 1);
	schema_check("AVRO", text, NULL, &p, &found);
	HAS(p, "is nested more than 32 levels deep");
	json_decref(p);
	json_decref(found);
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
	json_t *rule_tags = J("[\"PII\",\"PCI\"]"), *p, *found, *want;

	schema_check("JSON", js, rule_tags, &p, &found);
	HAS(p, "field age is tagged for encryption but its type is integer: only string fields can be encrypted");
	HAS(p, "field score is tagged for encryption but its type is number");
	HAS(p, "field maybe is tagged for encryption but its type is boolean");
	HAS(p, "field mixed is tagged for encryption but its type is [\"string\",\"integer\"]");
	HAS(p, "field any is tagged for encryption but its type is no declared type");
	HAS(p, "field nums is tagged for encryption but its type is array<integer>");
	HAS(p, "field customer.zip is tagged for encryption but its type is integer");
	HAS(p, "field lines[].price is tagged for encryption but its type is number");
	HAS(p, "field obj is tagged for encryption but its type is object");
	HAS(p, "field ref is tagged for encryption but its type is number");
	HAS(p, "field ext is tagged for encryption but its type is an unresolved $ref 'other.json#/x'");
	HAS(p, "field definitions/Card.cvv is tagged for encryption but its type is integer");
	COUNT(p, 12);
	want = J("[\"PII\",\"PCI\"]");
	ck_assert(json_equal(found, want));
	json_decref(want);
	json_decref(p);
	json_decref(found);

	schema_check("JSON", "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":[\"null\",\"string\"],"
			     "\"confluent:tags\":[\"PII\"]},\"n\":{\"type\":\"integer\"}}}", rule_tags, &p, &found);
	COUNT(p, 0);
	json_decref(p);
	json_decref(found);
	schema_check("JSON", "[1,2]", rule_tags, &p, &found);
	HAS(p, "the JSON schema must be an object");
	json_decref(p);
	json_decref(found);
	schema_check("JSON", NULL, rule_tags, &p, &found);
	HAS(p, "is not valid JSON");
	json_decref(p);
	json_decref(found);
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

	HAS(r.p, "spec.schemas[0] (subject 'users-value'): field age is tagged for encryption but its type is int");
	HAS(r.p, "spec.schemas[1].subject 'users-value' is listed twice");
	HAS(r.p, "spec.schemas[1]: unknown field 'references'");
	COUNT(r.p, 3);
	ck_assert_ptr_null(cmf_csfle_ruleset(json_array_get(r.p, 99)));
	res_free(&r);
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
	static const struct {
		const char *type, *complete;
	} ok[] = {
		{"aws-kms", "{\"access.key.id\":\"AKIAVALUE\",\"secret.access.key\":\"s3cr3tVALUE\"}"},
		{"azure-kms", "{\"tenant.id\":\"t\",\"client.id\":\"c\",\"client.secret\":\"s3cr3tVALUE\"}"},
		{"gcp-kms", "{\"client.id\":\"c\",\"client.email\":\"e@x\",\"private.key.id\":\"i\",\"private.key\":\"s3cr3tVALUE\"}"},
		{"hcvault", "{\"token.id\":\"s3cr3tVALUE\"}"},
		{"hcvault", "{\"token.id\":\"s3cr3tVALUE\",\"namespace\":\"ns\"}"},
		{"hcvault", "{\"approle.role.id\":\"r\",\"approle.secret.id\":\"s3cr3tVALUE\",\"namespace\":\"ns\"}"},
		{"local-kms", "{\"secret\":\"s3cr3tVALUE\"}"},
	};
	json_t *p;
	char *all;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		p = creds(ok[i].type, ok[i].complete);
		COUNT(p, 0);
		json_decref(p);
	}

	p = creds("aws-kms", "{\"access.key,id\":\"AKIAVALUE\",\"secret.access.key\":\"s3cr3tVALUE\"}");
	HAS(p, "KMS credentials for aws-kms: unknown key 'access.key,id' (expected access.key.id, secret.access.key)");
	HAS(p, "KMS credentials for aws-kms are incomplete: missing access.key.id (clients would silently fall back to "
	       "ambient credentials)");
	COUNT(p, 2);
	all = json_dumps(p, 0);
	ck_assert_ptr_null(strstr(all, "VALUE")); /* names, never values */
	free(all);
	json_decref(p);

	p = creds("azure-kms", "{\"client.secret\":\"s3cr3tVALUE\"}");
	HAS(p, "KMS credentials for azure-kms are incomplete: missing tenant.id, client.id");
	COUNT(p, 1);
	json_decref(p);
	p = creds("gcp-kms", "{\"client.id\":\"c\",\"private.key\":\"s3cr3tVALUE\",\"private_key\":\"x\"}");
	HAS(p, "missing client.email, private.key.id");
	HAS(p, "unknown key 'private_key'");
	COUNT(p, 2);
	json_decref(p);
	p = creds("hcvault", "{\"approle.role.id\":\"r\"}");
	HAS(p, "KMS credentials for hcvault are incomplete: missing approle.secret.id");
	COUNT(p, 1);
	json_decref(p);
	p = creds("hcvault", "{\"namespace\":\"ns\"}");
	HAS(p, "KMS credentials for hcvault are incomplete: set token.id, or approle.role.id and approle.secret.id");
	COUNT(p, 1);
	json_decref(p);
	p = creds("hcvault", "{\"token.id\":\"t\",\"approle.role.id\":\"r\",\"approle.secret.id\":\"s\"}");
	HAS(p, "both token.id and approle.* are set");
	COUNT(p, 1);
	json_decref(p);
	p = creds("local-kms", "{\"secret\":\"\",\"secrets\":\"s3cr3tVALUE\"}");
	HAS(p, "KMS credentials for local-kms: key 'secret' must be a non-empty string");
	HAS(p, "unknown key 'secrets'");
	COUNT(p, 2);
	json_decref(p);
	p = creds("local-kms", "{}");
	HAS(p, "missing secret");
	json_decref(p);
	p = creds("aws-kms", "[\"s3cr3tVALUE\"]");
	HAS(p, "the secret's data must be an object of strings");
	json_decref(p);
	p = creds("aws", "{}");
	HAS(p, "unknown KMS type");
	json_decref(p);
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

START_TEST(test_ruleset)
{
	json_t *spec = J(CLEAN_SPEC), *rs = cmf_csfle_ruleset(spec);
	json_t *want = J(
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

	ck_assert_ptr_nonnull(rs);
	if (!json_equal(rs, want)) {
		dump("got", rs);
		ck_abort_msg("ruleSet differs");
	}
	json_decref(rs);
	json_decref(want);
	json_decref(spec);

	/* Defaults: AES256_GCM, no expiry, WRITEREAD, preserve true; no encoding rules; disabled kept. */
	spec = J("{\"kms\":{\"type\":\"local-kms\",\"keyId\":\"mykey\"},\"kek\":{\"name\":\"k1\",\"shared\":true},"
		 "\"preserveSourceFields\":true,\"rules\":[{\"name\":\"b\",\"tags\":[\"B\",\"A\"],\"disabled\":true},"
		 "{\"name\":\"a\",\"tags\":[\"A\"]}]}");
	rs = cmf_csfle_ruleset(spec);
	want = J("{\"domainRules\":["
		 "{\"name\":\"b\",\"kind\":\"TRANSFORM\",\"mode\":\"WRITEREAD\",\"type\":\"ENCRYPT\",\"tags\":[\"B\",\"A\"],"
		 "\"params\":{\"encrypt.kek.name\":\"k1\",\"encrypt.kms.key.id\":\"mykey\",\"encrypt.kms.type\":\"local-kms\","
		 "\"encrypt.dek.algorithm\":\"AES256_GCM\",\"preserve.source.fields\":\"true\"},\"disabled\":true},"
		 "{\"name\":\"a\",\"kind\":\"TRANSFORM\",\"mode\":\"WRITEREAD\",\"type\":\"ENCRYPT\",\"tags\":[\"A\"],"
		 "\"params\":{\"encrypt.kek.name\":\"k1\",\"encrypt.kms.key.id\":\"mykey\",\"encrypt.kms.type\":\"local-kms\","
		 "\"encrypt.dek.algorithm\":\"AES256_GCM\",\"preserve.source.fields\":\"true\"},\"disabled\":false}],"
		 "\"encodingRules\":[]}");
	ck_assert_ptr_nonnull(rs);
	if (!json_equal(rs, want)) {
		dump("got", rs);
		ck_abort_msg("ruleSet differs");
	}
	json_decref(rs);
	json_decref(want);
	json_decref(spec);

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
	test_credentials, test_resolved, test_ruleset, test_apply, test_credential_key)
