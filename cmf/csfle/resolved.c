/* cmf csfle: the checks of a database's resolved client configuration under CSFLE, and applying a CsfleConfig to it. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cmf/csfle/csfle.h"
#include "cmf/csfle/internal.h"

/* `key` is `name` or ends with ".<name>". */
static int
key_is(const char *key, const char *name)
{
	size_t kl = strlen(key), nl = strlen(name);

	if (kl == nl)
		return strcmp(key, name) == 0;
	return kl > nl && key[kl - nl - 1] == '.' && strcmp(key + kl - nl, name) == 0;
}

/* Java's Boolean.parseBoolean: only "true" (any case) is true; JSON true too. */
static int
is_true(json_t *v)
{
	return json_is_true(v) || (json_is_string(v) && strcasecmp(json_string_value(v), "true") == 0);
}

/*
 * `key` has a "rule.executors.<x>.<rest>" part (<x> non-empty) at its start or after a '.', where
 * <rest> is `suffix` (`whole`) or starts with it (not `whole`).
 */
static int
rule_executor_key(const char *key, const char *suffix, int whole)
{
	const char *p = key;

	while ((p = strstr(p, "rule.executors.")) != NULL) {
		if (p == key || p[-1] == '.') {
			const char *x = p + strlen("rule.executors.");
			const char *dot = strchr(x, '.');

			if (dot != NULL && dot != x &&
			    (whole ? strcmp(dot + 1, suffix) == 0 : csfle_skip(dot + 1, suffix) != NULL))
				return 1;
		}
		p++;
	}
	return 0;
}

/*
 * A boolean a check reads, as a string with spaces around it ("true "): Kafka's ConfigDef trims it, but
 * Boolean.parseBoolean and cmf read it as false, so what cmf checked is not what a client does.
 */
static int
bool_key(const char *key)
{
	return key_is(key, "auto.register.schemas") || key_is(key, "use.latest.version") ||
	       key_is(key, "rule.service.loader.enable") || rule_executor_key(key, "disabled", 1);
}

static int
spaced(json_t *v)
{
	const char *s = json_string_value(v);
	size_t n = s != NULL ? strlen(s) : 0;

	return n > 0 && (isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]));
}

static int
contains_none(const char *s)
{
	for (; *s != '\0'; s++)
		if (strncasecmp(s, "NONE", 4) == 0)
			return 1;
	return 0;
}

static void
resolved_one(json_t *props, const char *where, json_t *problems, json_t *warnings, int *has_url)
{
	char qb[CSFLE_QUOTE_BUF];
	const char *k;
	json_t *v;

	if (props == NULL)
		return;
	if (!json_is_object(props)) {
		csfle_msg_add(problems, "the resolved %s config must be an object", where);
		return;
	}
	json_object_foreach (props, k, v) {
		csfle_quote(k, qb, sizeof(qb));
		if (key_is(k, "schema.registry.url") && json_is_string(v) && json_string_length(v) > 0)
			*has_url = 1;
		if (bool_key(k) && spaced(v))
			csfle_msg_add(problems,
				      "%s: %s has spaces around its value: Kafka's configuration trims them, "
				      "Boolean.parseBoolean does not, so clients may read it either way; write exactly "
				      "true or false",
				      where, qb);
		else if (key_is(k, "auto.register.schemas") && is_true(v))
			csfle_msg_add(problems,
				      "%s: %s=true registers schemas without the encryption rules: set it to false",
				      where, qb);
		else if (key_is(k, "use.latest.version") && !is_true(v))
			csfle_msg_add(problems,
				      "%s: %s must be true, or the clients use a schema without the encryption rules",
				      where, qb);
		else if (key_is(k, "rule.service.loader.enable") && !is_true(v))
			csfle_msg_add(problems, "%s: %s=false stops the clients from loading the encryption rule "
				      "executor", where, qb);
		else if (rule_executor_key(k, "disabled", 1) && is_true(v))
			csfle_msg_add(problems, "%s: %s=true switches encryption off", where, qb);
		else if (rule_executor_key(k, "onFailure", 1) && json_is_string(v) &&
			 contains_none(json_string_value(v)))
			csfle_msg_add(problems, "%s: %s containing NONE lets plaintext through when encryption fails",
				      where, qb);
		else if (strcmp(k, "errors.deadletterqueue.topic.name") == 0 || strncmp(k, "dlq.", 4) == 0 ||
			 (strncmp(k, "reporter.", 9) == 0 && key_is(k, "topic.name")))
			csfle_msg_add(warnings,
				      "%s: %s: dead letter queue and reporter topics are not encrypted and may "
				      "receive decrypted records",
				      where, qb);
	}
}

/* Both maps checked: 1 when either has a non-empty schema.registry.url. */
static int
resolved_both(json_t *kafka, json_t *sr, json_t *problems, json_t *warnings)
{
	int has_url = 0;

	resolved_one(kafka, "kafka", problems, warnings, &has_url);
	resolved_one(sr, "schemaRegistry", problems, warnings, &has_url);
	return has_url;
}

void
cmf_csfle_check_resolved(json_t *kafka, json_t *sr, json_t *problems, json_t *warnings)
{
	if (!resolved_both(kafka, sr, problems, warnings))
		csfle_msg_add(problems, "no schema.registry.url: CSFLE needs Schema Registry for its rules and keys");
}

void
cmf_csfle_check_public(json_t *kafka, json_t *sr, json_t *problems, json_t *warnings)
{
	resolved_both(kafka, sr, problems, warnings);
}

int
cmf_csfle_credential_key(const char *key)
{
	return rule_executor_key(key, "param.", 0);
}

/* One property cmf sets for CSFLE: taken out of `kafka` (it goes to `sr`, once) and set in `sr`. */
static int
apply_set(json_t *kafka, json_t *sr, const char *key, json_t *value)
{
	json_object_del(kafka, key);
	return json_object_set_new(sr, key, value);
}

/* A credential key in a resolved map: the KMS credentials come from one place only. */
static void
apply_foreign_credentials(json_t *props, const char *where, const char *config, json_t *problems)
{
	char qb[CSFLE_QUOTE_BUF], cb[CSFLE_QUOTE_BUF];
	const char *k;
	json_t *v;

	json_object_foreach (props, k, v) {
		if (cmf_csfle_credential_key(k))
			csfle_msg_add(problems,
				      "%s: %s: rule executor parameters come only from the credentials secret of "
				      "CsfleConfig '%s' (spec.kms.credentialsSecretId); remove it",
				      where, csfle_quote(k, qb, sizeof(qb)), csfle_quote(config, cb, sizeof(cb)));
	}
}

/* The spec's latestCacheTtlSec against one set in a resolved map: two values, one client. */
static void
apply_ttl(json_t *props, const char *where, json_t *ttl, json_t *problems)
{
	char want[32], qb[CSFLE_QUOTE_BUF];
	const char *k;
	json_t *v;

	snprintf(want, sizeof(want), "%lld", (long long)json_integer_value(ttl));
	json_object_foreach (props, k, v) {
		if (key_is(k, "latest.cache.ttl.sec") &&
		    (!json_is_string(v) || strcmp(json_string_value(v), want) != 0))
			csfle_msg_add(problems, "%s: %s differs from the CsfleConfig's latestCacheTtlSec (%s): set it "
				      "in one place", where, csfle_quote(k, qb, sizeof(qb)), want);
	}
}

/* What the database's configuration must satisfy for `spec`, public parts or merged (`need_url`). */
static void
check_configs(json_t *spec, const char *config, json_t *kafka, json_t *sr, int need_url, json_t *problems,
	      json_t *warnings)
{
	json_t *ttl = json_object_get(spec, "latestCacheTtlSec");

	apply_foreign_credentials(kafka, "kafka", config, problems);
	apply_foreign_credentials(sr, "schemaRegistry", config, problems);
	if (need_url)
		cmf_csfle_check_resolved(kafka, sr, problems, warnings);
	else
		cmf_csfle_check_public(kafka, sr, problems, warnings);
	if (json_is_integer(ttl)) {
		apply_ttl(kafka, "kafka", ttl, problems);
		apply_ttl(sr, "schemaRegistry", ttl, problems);
	}
}

void
cmf_csfle_check_database(json_t *spec, const char *config, json_t *kafka, json_t *sr, json_t *problems,
			 json_t *warnings)
{
	check_configs(spec, config, kafka, sr, 0, problems, warnings);
}

int
cmf_csfle_apply(json_t *spec, const char *config, json_t *creds, json_t *kafka, json_t *sr, json_t *problems,
		json_t *warnings)
{
	json_t *kms = json_object_get(spec, "kms"), *ttl = json_object_get(spec, "latestCacheTtlSec"), *v;
	int has_creds = json_object_get(kms, "credentialsSecretId") != NULL, failed = 0;
	size_t before = json_array_size(problems);
	const char *k;
	char key[512];

	check_configs(spec, config, kafka, sr, 1, problems, warnings);
	if (has_creds)
		cmf_csfle_check_credentials(json_string_value(json_object_get(kms, "type")), creds, problems);
	if (json_array_size(problems) > before)
		return 0;
	/* Every set is checked: a configuration missing one of these writes plaintext or uses ambient credentials. */
	failed |= apply_set(kafka, sr, "auto.register.schemas", json_string("false"));
	failed |= apply_set(kafka, sr, "use.latest.version", json_string("true"));
	if (json_is_integer(ttl)) {
		snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(ttl));
		failed |= apply_set(kafka, sr, "latest.cache.ttl.sec", json_string(key));
	}
	if (has_creds) {
		json_object_foreach (creds, k, v) {
			snprintf(key, sizeof(key), "rule.executors._default_.param.%s", k); /* known keys: short */
			failed |= json_object_set(sr, key, v);
		}
	}
	return failed ? -1 : 0;
}
