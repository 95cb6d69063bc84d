/* cmf csfle: the checks of a CsfleConfig spec: its fields, KEK, DEK, rules, schemas and the tags between them. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cmf/csfle/csfle.h"
#include "cmf/csfle/internal.h"

/* KEK names: Schema Registry's documented limit. */
#define KEK_NAME_MAX 256
/* Rule names: no documented limit; 256 keeps messages short and matches the KEK name limit. */
#define RULE_NAME_MAX 256

static void
check_bool(json_t *obj, const char *key, const char *path, json_t *problems)
{
	json_t *v = json_object_get(obj, key);

	if (v != NULL && !json_is_boolean(v))
		csfle_msg_add(problems, "%s.%s must be true or false", path, key);
}

/* ---- KEK, DEK ---- */

static int
kek_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > KEK_NAME_MAX || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-') || (unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}

static const char *
check_kek(json_t *kek, json_t *problems)
{
	static const char *const keys[] = {"name", "shared", NULL};
	const char *name;
	char qb[CSFLE_QUOTE_BUF];

	if (kek == NULL) {
		csfle_msg_add(problems, "spec.kek is required");
		return NULL;
	}
	if (!csfle_check_object(kek, "spec.kek", keys, problems))
		return NULL;
	check_bool(kek, "shared", "spec.kek", problems);
	name = csfle_get_string(kek, "name", "spec.kek", 1, problems);
	if (name != NULL && !kek_name_ok(name)) {
		csfle_msg_add(problems,
			      "spec.kek.name '%s' must match ^[A-Za-z_][A-Za-z0-9_-]*$ and have at most %d characters",
			      csfle_quote(name, qb, sizeof(qb)), KEK_NAME_MAX);
		return NULL;
	}
	return name;
}

static const char *const dek_algorithms[] = {"AES128_GCM", "AES256_GCM", "AES256_SIV", NULL};

/* Returns the expiry days (>= 0), or -1 when unset or invalid. */
static json_int_t
check_dek(json_t *dek, json_t *problems)
{
	static const char *const keys[] = {"algorithm", "expiryDays", NULL};
	const char *alg;
	json_t *exp;
	char qb[CSFLE_QUOTE_BUF];

	if (dek == NULL)
		return -1;
	if (!csfle_check_object(dek, "spec.dek", keys, problems))
		return -1;
	alg = csfle_get_string(dek, "algorithm", "spec.dek", 0, problems);
	if (alg != NULL && !csfle_str_in(alg, dek_algorithms))
		csfle_msg_add(problems,
			      "spec.dek.algorithm '%s' is not a DEK algorithm: AES128_GCM, AES256_GCM or AES256_SIV",
			      csfle_quote(alg, qb, sizeof(qb)));
	exp = json_object_get(dek, "expiryDays");
	if (exp == NULL)
		return -1;
	if (!json_is_integer(exp) || json_integer_value(exp) < 0) {
		csfle_msg_add(problems, "spec.dek.expiryDays must be an integer >= 0");
		return -1;
	}
	return json_integer_value(exp);
}

/* ---- rules ---- */

static const char *const actions[] = {"ERROR", "NONE", "DLQ", NULL};
static const char *const modes[] = {"WRITE", "READ", "WRITEREAD", NULL};
/* Modes Confluent documents for migration rules (schema evolution), never run when a record is written or read. */
static const char *const migration_modes[] = {"UPGRADE", "DOWNGRADE", "UPDOWN", NULL};

/* The entry of `actions` equal to `s` (a string that outlives `s`), or NULL when `s` is no action. */
static const char *
action(const char *s)
{
	for (size_t i = 0; actions[i] != NULL; i++)
		if (strcmp(s, actions[i]) == 0)
			return actions[i];
	return NULL;
}

/*
 * Check an onSuccess/onFailure value. Returns its write-side action ("ERROR", "NONE", "DLQ") when the
 * value is valid and applies to writes (the first of "X,Y"), else NULL.
 */
static const char *
check_action(json_t *v, const char *path, const char *mode, json_t *problems)
{
	const char *s, *comma, *write_action;
	char qb[CSFLE_QUOTE_BUF], a[8], b[8];
	size_t n;

	if (!json_is_string(v)) {
		csfle_msg_add(problems, "%s must be a string: ERROR, NONE, DLQ or, with mode WRITEREAD, \"X,Y\"", path);
		return NULL;
	}
	s = json_string_value(v);
	csfle_quote(s, qb, sizeof(qb));
	if (strpbrk(s, " \t\r\n") != NULL) {
		csfle_msg_add(problems, "%s '%s' must not contain spaces (write \"ERROR,NONE\", not \"ERROR, NONE\")",
			      path, qb);
		return NULL;
	}
	comma = strchr(s, ',');
	if (comma == NULL) {
		if ((write_action = action(s)) == NULL)
			csfle_msg_add(problems, "%s '%s' is not an action: ERROR, NONE or DLQ (case-sensitive)", path,
				      qb);
		return write_action;
	}
	n = (size_t)(comma - s);
	if (strchr(comma + 1, ',') != NULL || n >= sizeof(a) || strlen(comma + 1) >= sizeof(b)) {
		csfle_msg_add(problems, "%s '%s' is not an action: ERROR, NONE or DLQ, or two of them as \"X,Y\"", path,
			      qb);
		return NULL;
	}
	memcpy(a, s, n);
	a[n] = '\0';
	strcpy(b, comma + 1);
	if ((write_action = action(a)) == NULL || action(b) == NULL) {
		csfle_msg_add(problems, "%s '%s': each of \"X,Y\" must be ERROR, NONE or DLQ (case-sensitive)", path,
			      qb);
		return NULL;
	}
	if (mode != NULL && strcmp(mode, "WRITEREAD") != 0) {
		csfle_msg_add(problems, "%s '%s': the two-value form (write,read) is only for mode WRITEREAD, not %s",
			      path, qb, mode);
		return NULL;
	}
	return write_action;
}

/* What check_rules learns about the rules, for the warnings and the schema checks. */
struct rules_seen {
	json_t *tags;	   /* tags of enabled ENCRYPT rules that run on WRITE, unique */
	json_t *tag_rules; /* tag -> name of the first such rule using it */
	int ok;		   /* every rule is well-formed */
};

static void
check_rules(json_t *rules, json_t *problems, json_t *warnings, struct rules_seen *seen)
{
	static const char *const keys[] = {"name",	"kind",	     "type",	  "tags",
					   "mode",	"onSuccess", "onFailure", "disabled", NULL};
	json_t *names = json_array();
	const char *lenient_rule = NULL, *lenient_action = NULL;
	size_t lenient_index = 0, i;
	json_t *r;

	seen->ok = 0;
	if (rules == NULL) {
		csfle_msg_add(problems, "spec.rules is required: at least one encryption rule");
		goto out;
	}
	if (!json_is_array(rules) || json_array_size(rules) == 0) {
		csfle_msg_add(problems, "spec.rules must be a non-empty array of rules");
		goto out;
	}
	seen->ok = 1;
	json_array_foreach (rules, i, r) {
		char path[64], sub[96], qb[CSFLE_QUOTE_BUF], qt[CSFLE_QUOTE_BUF];
		const char *name, *kind, *type = "ENCRYPT", *mode = "WRITEREAD", *wa = "ERROR";
		json_t *tags, *v, *of;
		size_t before = json_array_size(problems), j;
		int disabled, payload;

		snprintf(path, sizeof(path), "spec.rules[%zu]", i);
		if (!json_is_object(r)) {
			csfle_msg_add(problems, "%s must be an object {name, tags, mode, onFailure, ...}", path);
			seen->ok = 0;
			continue;
		}
		csfle_unknown_keys(r, path, keys, problems);
		name = csfle_get_string(r, "name", path, 1, problems);
		if (name != NULL && strlen(name) > RULE_NAME_MAX)
			csfle_msg_add(problems, "%s.name must have at most %d characters", path, RULE_NAME_MAX);
		else if (name != NULL && csfle_array_has_string(names, name))
			csfle_msg_add(problems, "%s.name '%s' is not unique: rule names must be", path,
				      csfle_quote(name, qb, sizeof(qb)));
		if (name != NULL)
			csfle_array_add_unique(names, name);
		kind = csfle_get_string(r, "kind", path, 0, problems);
		if (kind != NULL && strcmp(kind, "TRANSFORM") != 0)
			csfle_msg_add(problems, "%s.kind '%s' must be TRANSFORM (encryption rules transform fields)",
				      path, csfle_quote(kind, qb, sizeof(qb)));
		if ((v = json_object_get(r, "type")) != NULL) {
			type = csfle_get_string(r, "type", path, 0, problems);
			if (type != NULL && strcmp(type, "ENCRYPT") != 0 && strcmp(type, "ENCRYPT_PAYLOAD") != 0) {
				csfle_msg_add(problems,
					      "%s.type '%s' must be ENCRYPT (field-level, a domain rule) or "
					      "ENCRYPT_PAYLOAD (whole payload, an encoding rule)",
					      path, csfle_quote(type, qb, sizeof(qb)));
				type = NULL;
			}
		}
		payload = type != NULL && strcmp(type, "ENCRYPT_PAYLOAD") == 0;
		if ((v = json_object_get(r, "mode")) != NULL) {
			mode = csfle_get_string(r, "mode", path, 0, problems);
			if (mode != NULL && strcmp(mode, "READWRITE") == 0) {
				csfle_msg_add(problems, "%s.mode 'READWRITE' is not a mode: use WRITEREAD (there is no "
					      "READWRITE)", path);
				mode = NULL;
			} else if (mode != NULL && csfle_str_in(mode, migration_modes)) {
				csfle_msg_add(problems,
					      "%s.mode '%s' is a migration rule mode: encryption rules run on WRITE, READ "
					      "or WRITEREAD", path, mode);
				mode = NULL;
			} else if (mode != NULL && !csfle_str_in(mode, modes)) {
				csfle_msg_add(problems,
					      "%s.mode '%s' is not a mode: WRITE, READ or WRITEREAD (case-sensitive)",
					      path, csfle_quote(mode, qb, sizeof(qb)));
				mode = NULL;
			}
		}
		check_bool(r, "disabled", path, problems);
		disabled = json_is_true(json_object_get(r, "disabled"));
		tags = json_object_get(r, "tags");
		if (payload) {
			if (tags != NULL)
				csfle_msg_add(problems,
					      "%s: an ENCRYPT_PAYLOAD rule encrypts the whole payload (an encoding "
					      "rule) and takes no tags",
					      path);
		} else if (type != NULL) {
			if (tags == NULL || (json_is_array(tags) && json_array_size(tags) == 0))
				csfle_msg_add(problems,
					      "%s.tags must name at least one tag: an ENCRYPT rule with no tags "
					      "targets every field",
					      path);
			else if (!json_is_array(tags))
				csfle_msg_add(problems, "%s.tags must be an array of tag names", path);
			else
				json_array_foreach (tags, j, v)
					if (!json_is_string(v) || json_string_length(v) == 0)
						csfle_msg_add(problems, "%s.tags[%zu] must be a non-empty string",
							      path, j);
		}
		if (json_is_array(tags) && !payload) {
			json_t *uniq = json_array();

			json_array_foreach (tags, j, v) {
				if (!json_is_string(v))
					continue;
				if (csfle_array_has_string(uniq, json_string_value(v)))
					csfle_msg_add(problems, "%s.tags: tag '%s' is listed twice", path,
						csfle_quote(json_string_value(v), qt, sizeof(qt)));
				csfle_array_add_unique(uniq, json_string_value(v));
			}
			json_decref(uniq);
		}
		if ((v = json_object_get(r, "onSuccess")) != NULL) {
			snprintf(sub, sizeof(sub), "%s.onSuccess", path);
			check_action(v, sub, mode, problems);
		}
		if ((of = json_object_get(r, "onFailure")) != NULL) {
			snprintf(sub, sizeof(sub), "%s.onFailure", path);
			wa = check_action(of, sub, mode, problems);
		}
		if (json_array_size(problems) != before) {
			seen->ok = 0;
			continue;
		}
		/* A well-formed rule: the warnings. */
		if (disabled) {
			csfle_msg_add(warnings, "%s '%s' is disabled: %s written in plaintext", path,
				      csfle_quote(name, qb, sizeof(qb)),
				      payload ? "payloads are" : "its tagged fields are");
			continue;
		}
		/* A rule that does not run on WRITE protects nothing a producer sends: as good as disabled. */
		if (strstr(mode, "WRITE") == NULL) {
			csfle_msg_add(warnings,
				      "%s '%s' has mode %s: it does not run when records are written, so %s written "
				      "in plaintext (use WRITEREAD)",
				      path, csfle_quote(name, qb, sizeof(qb)), mode,
				      payload ? "payloads are" : "its tagged fields are");
			continue;
		}
		if (!payload)
			json_array_foreach (tags, j, v) {
				csfle_array_add_unique(seen->tags, json_string_value(v));
				if (json_object_get(seen->tag_rules, json_string_value(v)) == NULL)
					json_object_set_new(seen->tag_rules, json_string_value(v), json_string(name));
			}
		if (strcmp(wa, "NONE") == 0)
			csfle_msg_add(warnings,
				      "%s '%s': onFailure NONE on writes lets plaintext be written when encryption "
				      "fails (use ERROR, or \"ERROR,NONE\" with WRITEREAD)",
				      path, csfle_quote(name, qb, sizeof(qb)));
		else if (strcmp(wa, "DLQ") == 0)
			csfle_msg_add(warnings,
				      "%s '%s': onFailure DLQ on writes sends records that failed encryption to a "
				      "dead letter queue, which is not encrypted",
				      path, csfle_quote(name, qb, sizeof(qb)));
		if (strcmp(wa, "ERROR") == 0 && lenient_rule != NULL)
			csfle_msg_add(warnings,
				      "%s '%s' fails strictly (ERROR) but comes after the lenient rule '%s' "
				      "(spec.rules[%zu], %s): order rules by sensitivity, strict rules first",
				      path, csfle_quote(name, qb, sizeof(qb)),
				      csfle_quote(lenient_rule, qt, sizeof(qt)), lenient_index, lenient_action);
		if (strcmp(wa, "ERROR") != 0 && lenient_rule == NULL) {
			lenient_rule = name;
			lenient_action = wa;
			lenient_index = i;
		}
	}
out:
	json_decref(names);
}

/* ---- schemas ---- */

static void
check_schemas(json_t *schemas, struct rules_seen *seen, json_t *problems, json_t *warnings, json_t *tags_found,
	      size_t *subjects)
{
	static const char *const keys[] = {"subject", "schemaType", "schema", NULL};
	json_t *subj = json_array(), *s;
	size_t i;

	json_array_foreach (schemas, i, s) {
		char path[64], qb[CSFLE_QUOTE_BUF];
		const char *subject, *type, *text;
		json_t *p, *m;
		size_t j;

		snprintf(path, sizeof(path), "spec.schemas[%zu]", i);
		if (!csfle_check_object(s, path, keys, problems))
			continue;
		subject = csfle_get_string(s, "subject", path, 1, problems);
		type = csfle_get_string(s, "schemaType", path, 1, problems);
		text = csfle_get_string(s, "schema", path, 1, problems);
		if (subject != NULL && csfle_array_has_string(subj, subject))
			csfle_msg_add(problems, "%s.subject '%s' is listed twice", path,
				      csfle_quote(subject, qb, sizeof(qb)));
		if (subject != NULL)
			csfle_array_add_unique(subj, subject);
		if (type != NULL && strcmp(type, "AVRO") != 0 && strcmp(type, "JSON") != 0) {
			csfle_msg_add(problems, "%s.schemaType '%s' must be AVRO or JSON", path,
				      csfle_quote(type, qb, sizeof(qb)));
			continue;
		}
		if (type == NULL || text == NULL)
			continue;
		p = json_array();
		cmf_csfle_check_schema(type, text, seen->ok ? seen->tags : NULL, p, warnings, tags_found);
		json_array_foreach (p, j, m)
			csfle_msg_add(problems, "%s (subject '%s'): %s", path,
				      subject != NULL ? csfle_quote(subject, qb, sizeof(qb)) : "?",
				      json_string_value(m));
		json_decref(p);
	}
	*subjects = json_array_size(subj);
	json_decref(subj);
}

void
cmf_csfle_check(json_t *spec, json_t *problems, json_t *warnings)
{
	static const char *const keys[] = {"kms",			"kek",	 "dek", "preserveSourceFields",
					   "latestCacheTtlSec", "rules", "schemas", NULL};
	struct rules_seen seen = {json_array(), json_object(), 0};
	const char *kms_type, *key_id;
	json_t *ttl, *schemas;
	json_int_t expiry;
	size_t subjects = 0;

	if (!csfle_check_object(spec, "spec", keys, problems))
		goto out;
	csfle_check_kms(json_object_get(spec, "kms"), problems, &kms_type, &key_id);
	check_kek(json_object_get(spec, "kek"), problems);
	/* Seed 002: without a KEK shared with the DEK Registry, the clients themselves need KMS access. */
	if (json_is_object(json_object_get(spec, "kms")) &&
	    json_object_get(json_object_get(spec, "kms"), "credentialsSecretId") == NULL &&
	    !json_is_true(json_object_get(json_object_get(spec, "kek"), "shared")))
		csfle_msg_add(warnings, "spec.kms.credentialsSecretId is unset and spec.kek.shared is not true: the "
			      "clients will use ambient KMS credentials (environment variables, instance roles); cmf "
			      "cannot check them");
	expiry = check_dek(json_object_get(spec, "dek"), problems);
	check_bool(spec, "preserveSourceFields", "spec", problems);
	ttl = json_object_get(spec, "latestCacheTtlSec");
	if (ttl != NULL && (!json_is_integer(ttl) || json_integer_value(ttl) < -1))
		csfle_msg_add(problems, "spec.latestCacheTtlSec must be an integer >= -1 (seconds)");
	else if (ttl == NULL || json_integer_value(ttl) == -1)
		csfle_msg_add(warnings,
			      "spec.latestCacheTtlSec is %s: clients keep the latest schema forever and ignore rule "
			      "changes until they restart; set a number of seconds",
			      ttl == NULL ? "unset" : "-1");
	check_rules(json_object_get(spec, "rules"), problems, warnings, &seen);

	schemas = json_object_get(spec, "schemas");
	if (schemas != NULL && !json_is_array(schemas))
		csfle_msg_add(problems, "spec.schemas must be an array of {subject, schemaType, schema}");
	else if (schemas != NULL && json_array_size(schemas) > 0) {
		json_t *found = json_array(), *t;
		size_t i;

		check_schemas(schemas, &seen, problems, warnings, found, &subjects);
		if (seen.ok) {
			char qb[CSFLE_QUOTE_BUF], qr[CSFLE_QUOTE_BUF];

			json_array_foreach (seen.tags, i, t) {
				const char *tag = json_string_value(t);
				const char *rule = json_string_value(json_object_get(seen.tag_rules, tag));

				if (!csfle_array_has_string(found, tag))
					csfle_msg_add(warnings, "rule '%s' tag '%s' is on no field of the given "
						      "schemas", csfle_quote(rule, qr, sizeof(qr)),
						      csfle_quote(tag, qb, sizeof(qb)));
			}
			json_array_foreach (found, i, t) {
				const char *tag = json_string_value(t);

				if (!csfle_array_has_string(seen.tags, tag))
					csfle_msg_add(warnings, "schema tag '%s' is used by no enabled rule that runs "
						      "on WRITE: its fields are written in plaintext",
						      csfle_quote(tag, qb, sizeof(qb)));
			}
		}
		json_decref(found);
	}
	if (expiry > 0) {
		/* Whole expiry periods started in a year: ceil(365 / d) new DEK versions per subject. */
		json_int_t per_year = (365 + expiry - 1) / expiry;
		json_int_t n = (json_int_t)(subjects > 0 ? subjects : 1) * per_year;

		if (n >= CMF_CSFLE_DEK_LIMIT)
			csfle_msg_add(warnings,
				      "spec.dek.expiryDays %lld: %zu subject(s) x %lld new DEKs a year = %lld, which "
				      "reaches the DEK Registry's limit of %d retained DEKs within a year",
				      (long long)expiry, subjects > 0 ? subjects : 1, (long long)per_year, (long long)n,
				      CMF_CSFLE_DEK_LIMIT);
	}
out:
	json_decref(seen.tags);
	json_decref(seen.tag_rules);
}

/* What a string member of a spec object is, with the clients' default when absent. */
static const char *
spec_string(json_t *spec, const char *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(json_object_get(spec, obj), key));

	return s != NULL ? s : dflt;
}

size_t
cmf_csfle_identity_changes(json_t *old_spec, json_t *new_spec, char *buf, size_t len)
{
	static const struct {
		const char *obj, *key, *path, *dflt;
	} fields[] = {
		{"kek", "name", "spec.kek.name", ""},
		{"kms", "keyId", "spec.kms.keyId", ""},
		{"kms", "type", "spec.kms.type", ""},
		{"dek", "algorithm", "spec.dek.algorithm", "AES256_GCM"},
	};
	size_t n = 0, used = 0;

	if (len > 0)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (strcmp(spec_string(old_spec, fields[i].obj, fields[i].key, fields[i].dflt),
			   spec_string(new_spec, fields[i].obj, fields[i].key, fields[i].dflt)) == 0)
			continue;
		if (used < len)
			used += (size_t)snprintf(buf + used, len - used, "%s%s", n > 0 ? ", " : "", fields[i].path);
		n++;
	}
	return n;
}
