/* cmf csfle: the checks a CSFLE declaration, its schemas, credentials and client config must pass, and its ruleSet. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmf/csfle/csfle.h"
#include "cmf/text.h"

/* One message: the reply caps a message at 1 KiB; quoted names are cut well below that. */
#define MSG_MAX 512
/* Quoted names, ids and tags are cut to this many bytes so a message stays readable. */
#define QUOTE_MAX 80
/* Nesting deeper than this is no real schema; the bound keeps the walkers' recursion (stack) small. */
#define DEPTH_MAX 32
/* KEK names: Schema Registry's documented limit. */
#define KEK_NAME_MAX 256
/* Rule names: no documented limit; 256 keeps messages short and matches the KEK name limit. */
#define RULE_NAME_MAX 256
/* Field paths in messages: deeper paths are cut (the message stays under MSG_MAX). */
#define PATH_MAX_LEN 200

static void msg_add(json_t *arr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
msg_add(json_t *arr, const char *fmt, ...)
{
	char buf[MSG_MAX];
	va_list ap;

	if (arr == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cmf_utf8_sanitize(buf); /* vsnprintf may have cut a character in two */
	json_array_append_new(arr, json_string(buf));
}

/* snprintf whose cut is intended: descriptions and paths are bounded; a cut one still reads. */
static void put(char *dst, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
put(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, len, fmt, ap);
	va_end(ap);
	cmf_utf8_sanitize(dst);
}

/* A bounded, printable excerpt of `s` for a message. */
static const char *
q(const char *s, char *dst, size_t len)
{
	cmf_text_excerpt(s, strlen(s), QUOTE_MAX, dst, len);
	return dst;
}

static int
str_in(const char *s, const char *const *set)
{
	for (size_t i = 0; set[i] != NULL; i++)
		if (strcmp(s, set[i]) == 0)
			return 1;
	return 0;
}

static int
array_has_string(json_t *arr, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach (arr, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return 1;
	return 0;
}

static void
array_add_unique(json_t *arr, const char *s)
{
	if (arr != NULL && !array_has_string(arr, s))
		json_array_append_new(arr, json_string(s));
}

/* Report keys of `obj` outside `allowed` (NULL-terminated), one problem each. */
static void
unknown_keys(json_t *obj, const char *path, const char *const *allowed, const char *known, json_t *problems)
{
	const char *k;
	json_t *v;
	char qb[QUOTE_MAX + 4];

	json_object_foreach (obj, k, v)
		if (!str_in(k, allowed))
			msg_add(problems, "%s: unknown field '%s' (known: %s)", path, q(k, qb, sizeof(qb)), known);
}

/* An object member that must be a non-empty string: its value, or NULL after a problem (absent: only if required). */
static const char *
get_string(json_t *obj, const char *key, const char *path, int required, json_t *problems)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL) {
		if (required)
			msg_add(problems, "%s.%s is required", path, key);
		return NULL;
	}
	if (!json_is_string(v) || json_string_length(v) == 0) {
		msg_add(problems, "%s.%s must be a non-empty string", path, key);
		return NULL;
	}
	return json_string_value(v);
}

static void
check_bool(json_t *obj, const char *key, const char *path, json_t *problems)
{
	json_t *v = json_object_get(obj, key);

	if (v != NULL && !json_is_boolean(v))
		msg_add(problems, "%s.%s must be true or false", path, key);
}

/* ---- KMS key ids ---- */

static const char *const kms_types[] = {"aws-kms", "azure-kms", "gcp-kms", "hcvault", "local-kms", NULL};
#define KMS_TYPES_TEXT "aws-kms, azure-kms, gcp-kms, hcvault, local-kms"

/* The canonical name a common spelling means (case-insensitive), or NULL. */
static const char *
kms_canonical_hint(const char *s)
{
	static const char *const alias[][2] = {
		{"aws-kms", "aws-kms"},     {"aws", "aws-kms"},	       {"aws_kms", "aws-kms"},	 {"awskms", "aws-kms"},
		{"azure-kms", "azure-kms"}, {"azure", "azure-kms"},    {"azure_kms", "azure-kms"},
		{"gcp-kms", "gcp-kms"},	    {"gcp", "gcp-kms"},	       {"gcp_kms", "gcp-kms"},	 {"google", "gcp-kms"},
		{"hcvault", "hcvault"},	    {"vault", "hcvault"},      {"hashicorp", "hcvault"}, {"hc-vault", "hcvault"},
		{"local-kms", "local-kms"}, {"local", "local-kms"},    {"local_kms", "local-kms"},
	};

	for (size_t i = 0; i < sizeof(alias) / sizeof(alias[0]); i++)
		if (strcasecmp(s, alias[i][0]) == 0)
			return alias[i][1];
	return NULL;
}

/* `s` starts with `prefix`: the rest, else NULL. */
static const char *
skip(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* A path segment: 1+ characters, none of them '/', stopping at `end` (which it skips); returns the rest or NULL. */
static const char *
segment(const char *s, char end)
{
	const char *p = s;

	while (*p != '\0' && *p != '/' && *p != end && !isspace((unsigned char)*p))
		p++;
	if (p == s || *p != end)
		return NULL;
	return end == '\0' ? p : p + 1;
}

static int
aws_key_id_ok(const char *s)
{
	const char *p;
	size_t n = 0;

	if ((p = skip(s, "arn:aws:kms:")) == NULL && (p = skip(s, "arn:aws-cn:kms:")) == NULL &&
	    (p = skip(s, "arn:aws-us-gov:kms:")) == NULL)
		return 0;
	if (!islower((unsigned char)*p))
		return 0;
	while (islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-')
		p++;
	if (*p++ != ':')
		return 0;
	while (isdigit((unsigned char)p[n]))
		n++;
	if (n != 12 || p[n] != ':') /* AWS account ids are 12 digits */
		return 0;
	p += n + 1;
	if ((s = skip(p, "key/")) == NULL && (s = skip(p, "alias/")) == NULL)
		return 0;
	for (p = s; *p != '\0'; p++)
		if (isspace((unsigned char)*p))
			return 0;
	return p != s;
}

static int
azure_key_id_ok(const char *s)
{
	static const char *const hosts[] = {".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net",
					    ".managedhsm.azure.net", NULL};
	const char *p = skip(s, "https://"), *slash;
	size_t hostlen;
	int ok = 0;

	if (p == NULL || (slash = strchr(p, '/')) == NULL)
		return 0;
	hostlen = (size_t)(slash - p);
	for (size_t i = 0; hosts[i] != NULL; i++) {
		size_t n = strlen(hosts[i]);

		if (hostlen > n && strncmp(slash - n, hosts[i], n) == 0)
			ok = 1;
	}
	if (!ok || (p = skip(slash, "/keys/")) == NULL)
		return 0;
	if ((s = segment(p, '/')) != NULL) /* name/version */
		return segment(s, '\0') != NULL;
	return segment(p, '\0') != NULL;
}

static int
gcp_key_id_ok(const char *s)
{
	static const char *const parts[] = {"projects/", "locations/", "keyRings/", "cryptoKeys/"};
	const char *p = s;

	for (size_t i = 0; i < 4; i++) {
		if ((p = skip(p, parts[i])) == NULL)
			return 0;
		if ((p = segment(p, i < 3 ? '/' : '\0')) == NULL)
			return 0;
	}
	return 1;
}

static int
vault_key_id_ok(const char *s)
{
	const char *p, *keys;

	if ((p = skip(s, "https://")) == NULL && (p = skip(s, "http://")) == NULL)
		return 0;
	if (*p == '/' || *p == ':' || *p == '\0')
		return 0;
	while (*p != '\0' && *p != '/' && *p != ':') {
		if (isspace((unsigned char)*p))
			return 0;
		p++;
	}
	if (*p == ':') {
		size_t n = 0;

		p++;
		while (isdigit((unsigned char)p[n]))
			n++;
		if (n == 0 || n > 5) /* a TCP port: 1 to 5 digits */
			return 0;
		p += n;
	}
	if (*p != '/')
		return 0;
	/* /<mount, at least one segment>/keys/<name> */
	keys = strstr(p, "/keys/");
	if (keys == NULL || keys == p)
		return 0;
	for (const char *m = p + 1; m < keys; m++)
		if (isspace((unsigned char)*m) || (*m == '/' && m[-1] == '/'))
			return 0;
	return segment(keys + 6, '\0') != NULL;
}

static void
check_kms(json_t *kms, json_t *problems, const char **type_out, const char **key_out)
{
	static const char *const keys[] = {"type", "keyId", "credentialsSecretId", NULL};
	const char *type, *key;
	char qb[QUOTE_MAX + 4], qk[QUOTE_MAX + 4];
	int ok = 1;

	*type_out = *key_out = NULL;
	if (kms == NULL) {
		msg_add(problems, "spec.kms is required");
		return;
	}
	if (!json_is_object(kms)) {
		msg_add(problems, "spec.kms must be an object {type, keyId, credentialsSecretId}");
		return;
	}
	unknown_keys(kms, "spec.kms", keys, "type, keyId, credentialsSecretId", problems);
	get_string(kms, "credentialsSecretId", "spec.kms", 0, problems);
	type = get_string(kms, "type", "spec.kms", 1, problems);
	key = get_string(kms, "keyId", "spec.kms", 1, problems);
	if (type != NULL && !str_in(type, kms_types)) {
		const char *hint = kms_canonical_hint(type);

		if (hint != NULL)
			msg_add(problems, "spec.kms.type '%s' is not a canonical KMS type: use '%s'", q(type, qb, sizeof(qb)),
				hint);
		else
			msg_add(problems, "spec.kms.type '%s' is not a KMS type: one of " KMS_TYPES_TEXT,
				q(type, qb, sizeof(qb)));
		type = NULL;
	}
	if (type == NULL || key == NULL) {
		*type_out = type;
		return;
	}
	if (strcmp(type, "aws-kms") == 0 && !aws_key_id_ok(key))
		msg_add(problems, "spec.kms.keyId '%s' is not an AWS KMS key: arn:aws:kms:<region>:<account>:key/<id> "
			"or arn:aws:kms:<region>:<account>:alias/<name>", q(key, qk, sizeof(qk))), ok = 0;
	else if (strcmp(type, "azure-kms") == 0 && !azure_key_id_ok(key))
		msg_add(problems, "spec.kms.keyId '%s' is not an Azure Key Vault key: "
			"https://<vault>.vault.azure.net/keys/<name>[/<version>]", q(key, qk, sizeof(qk))), ok = 0;
	else if (strcmp(type, "gcp-kms") == 0 && !gcp_key_id_ok(key))
		msg_add(problems, "spec.kms.keyId '%s' is not a Google Cloud KMS key: "
			"projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>", q(key, qk, sizeof(qk))), ok = 0;
	else if (strcmp(type, "hcvault") == 0 && !vault_key_id_ok(key))
		msg_add(problems, "spec.kms.keyId '%s' is not a Vault transit key: "
			"http(s)://<host>[:<port>]/transit/keys/<name>", q(key, qk, sizeof(qk))), ok = 0;
	*type_out = type;
	*key_out = ok ? key : NULL;
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
	char qb[QUOTE_MAX + 4];

	if (kek == NULL) {
		msg_add(problems, "spec.kek is required");
		return NULL;
	}
	if (!json_is_object(kek)) {
		msg_add(problems, "spec.kek must be an object {name, shared}");
		return NULL;
	}
	unknown_keys(kek, "spec.kek", keys, "name, shared", problems);
	check_bool(kek, "shared", "spec.kek", problems);
	name = get_string(kek, "name", "spec.kek", 1, problems);
	if (name != NULL && !kek_name_ok(name)) {
		msg_add(problems, "spec.kek.name '%s' must match ^[A-Za-z_][A-Za-z0-9_-]*$ and have at most %d characters",
			q(name, qb, sizeof(qb)), KEK_NAME_MAX);
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
	char qb[QUOTE_MAX + 4];

	if (dek == NULL)
		return -1;
	if (!json_is_object(dek)) {
		msg_add(problems, "spec.dek must be an object {algorithm, expiryDays}");
		return -1;
	}
	unknown_keys(dek, "spec.dek", keys, "algorithm, expiryDays", problems);
	alg = get_string(dek, "algorithm", "spec.dek", 0, problems);
	if (alg != NULL && !str_in(alg, dek_algorithms))
		msg_add(problems, "spec.dek.algorithm '%s' is not a DEK algorithm: AES128_GCM, AES256_GCM or AES256_SIV",
			q(alg, qb, sizeof(qb)));
	exp = json_object_get(dek, "expiryDays");
	if (exp == NULL)
		return -1;
	if (!json_is_integer(exp) || json_integer_value(exp) < 0) {
		msg_add(problems, "spec.dek.expiryDays must be an integer >= 0");
		return -1;
	}
	return json_integer_value(exp);
}

/* ---- rules ---- */

static const char *const actions[] = {"ERROR", "NONE", "DLQ", NULL};
static const char *const modes[] = {"WRITE", "READ", "WRITEREAD", NULL};

/*
 * Check an onSuccess/onFailure value. Returns its write-side action ("ERROR", "NONE", "DLQ") when the
 * value is valid and applies to writes (the first of "X,Y"), else NULL.
 */
static const char *
check_action(json_t *v, const char *path, const char *mode, json_t *problems)
{
	const char *s, *comma;
	char qb[QUOTE_MAX + 4], a[8], b[8];
	size_t n;

	if (!json_is_string(v)) {
		msg_add(problems, "%s must be a string: ERROR, NONE, DLQ or, with mode WRITEREAD, \"X,Y\"", path);
		return NULL;
	}
	s = json_string_value(v);
	q(s, qb, sizeof(qb));
	if (strpbrk(s, " \t\r\n") != NULL) {
		msg_add(problems, "%s '%s' must not contain spaces (write \"ERROR,NONE\", not \"ERROR, NONE\")", path, qb);
		return NULL;
	}
	comma = strchr(s, ',');
	if (comma == NULL) {
		if (!str_in(s, actions)) {
			msg_add(problems, "%s '%s' is not an action: ERROR, NONE or DLQ (case-sensitive)", path, qb);
			return NULL;
		}
		return actions[strcmp(s, "ERROR") == 0 ? 0 : strcmp(s, "NONE") == 0 ? 1 : 2];
	}
	n = (size_t)(comma - s);
	if (strchr(comma + 1, ',') != NULL || n >= sizeof(a) || strlen(comma + 1) >= sizeof(b)) {
		msg_add(problems, "%s '%s' is not an action: ERROR, NONE or DLQ, or two of them as \"X,Y\"", path, qb);
		return NULL;
	}
	memcpy(a, s, n);
	a[n] = '\0';
	strcpy(b, comma + 1);
	if (!str_in(a, actions) || !str_in(b, actions)) {
		msg_add(problems, "%s '%s': each of \"X,Y\" must be ERROR, NONE or DLQ (case-sensitive)", path, qb);
		return NULL;
	}
	if (mode != NULL && strcmp(mode, "WRITEREAD") != 0) {
		msg_add(problems, "%s '%s': the two-value form (write,read) is only for mode WRITEREAD, not %s", path, qb,
			mode);
		return NULL;
	}
	return actions[strcmp(a, "ERROR") == 0 ? 0 : strcmp(a, "NONE") == 0 ? 1 : 2];
}

/* What check_rules learns about the rules, for the warnings and the schema checks. */
struct rules_seen {
	json_t *tags;	   /* tags of enabled ENCRYPT rules, unique */
	json_t *tag_rules; /* tag -> name of the first enabled rule using it */
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
		msg_add(problems, "spec.rules is required: at least one encryption rule");
		goto out;
	}
	if (!json_is_array(rules) || json_array_size(rules) == 0) {
		msg_add(problems, "spec.rules must be a non-empty array of rules");
		goto out;
	}
	seen->ok = 1;
	json_array_foreach (rules, i, r) {
		char path[64], sub[96], qb[QUOTE_MAX + 4], qt[QUOTE_MAX + 4];
		const char *name, *kind, *type = "ENCRYPT", *mode = "WRITEREAD", *wa = "ERROR";
		json_t *tags, *v, *of;
		size_t before = json_array_size(problems), j;
		int disabled, payload;

		snprintf(path, sizeof(path), "spec.rules[%zu]", i);
		if (!json_is_object(r)) {
			msg_add(problems, "%s must be an object {name, tags, mode, onFailure, ...}", path);
			seen->ok = 0;
			continue;
		}
		unknown_keys(r, path, keys, "name, kind, type, tags, mode, onSuccess, onFailure, disabled", problems);
		name = get_string(r, "name", path, 1, problems);
		if (name != NULL && strlen(name) > RULE_NAME_MAX)
			msg_add(problems, "%s.name must have at most %d characters", path, RULE_NAME_MAX);
		else if (name != NULL && array_has_string(names, name))
			msg_add(problems, "%s.name '%s' is not unique: rule names must be", path, q(name, qb, sizeof(qb)));
		if (name != NULL)
			array_add_unique(names, name);
		kind = get_string(r, "kind", path, 0, problems);
		if (kind != NULL && strcmp(kind, "TRANSFORM") != 0)
			msg_add(problems, "%s.kind '%s' must be TRANSFORM (encryption rules transform fields)", path,
				q(kind, qb, sizeof(qb)));
		if ((v = json_object_get(r, "type")) != NULL) {
			type = get_string(r, "type", path, 0, problems);
			if (type != NULL && strcmp(type, "ENCRYPT") != 0 && strcmp(type, "ENCRYPT_PAYLOAD") != 0) {
				msg_add(problems, "%s.type '%s' must be ENCRYPT (field-level, a domain rule) or "
					"ENCRYPT_PAYLOAD (whole payload, an encoding rule)", path, q(type, qb, sizeof(qb)));
				type = NULL;
			}
		}
		payload = type != NULL && strcmp(type, "ENCRYPT_PAYLOAD") == 0;
		if ((v = json_object_get(r, "mode")) != NULL) {
			mode = get_string(r, "mode", path, 0, problems);
			if (mode != NULL && strcmp(mode, "READWRITE") == 0) {
				msg_add(problems, "%s.mode 'READWRITE' is not a mode: use WRITEREAD (there is no READWRITE)",
					path);
				mode = NULL;
			} else if (mode != NULL && !str_in(mode, modes)) {
				msg_add(problems, "%s.mode '%s' is not a mode: WRITE, READ or WRITEREAD (case-sensitive)",
					path, q(mode, qb, sizeof(qb)));
				mode = NULL;
			}
		}
		check_bool(r, "disabled", path, problems);
		disabled = json_is_true(json_object_get(r, "disabled"));
		tags = json_object_get(r, "tags");
		if (payload) {
			if (tags != NULL)
				msg_add(problems, "%s: an ENCRYPT_PAYLOAD rule encrypts the whole payload (an encoding "
					"rule) and takes no tags", path);
		} else if (type != NULL) {
			if (tags == NULL || (json_is_array(tags) && json_array_size(tags) == 0))
				msg_add(problems, "%s.tags must name at least one tag: an ENCRYPT rule with no tags "
					"targets every field", path);
			else if (!json_is_array(tags))
				msg_add(problems, "%s.tags must be an array of tag names", path);
			else
				json_array_foreach (tags, j, v)
					if (!json_is_string(v) || json_string_length(v) == 0)
						msg_add(problems, "%s.tags[%zu] must be a non-empty string", path, j);
		}
		if (json_is_array(tags) && !payload) {
			json_t *uniq = json_array();

			json_array_foreach (tags, j, v) {
				if (!json_is_string(v))
					continue;
				if (array_has_string(uniq, json_string_value(v)))
					msg_add(problems, "%s.tags: tag '%s' is listed twice", path,
						q(json_string_value(v), qt, sizeof(qt)));
				array_add_unique(uniq, json_string_value(v));
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
			msg_add(warnings, "%s '%s' is disabled: %s written in plaintext", path, q(name, qb, sizeof(qb)),
				payload ? "payloads are" : "its tagged fields are");
			continue;
		}
		if (!payload)
			json_array_foreach (tags, j, v) {
				array_add_unique(seen->tags, json_string_value(v));
				if (json_object_get(seen->tag_rules, json_string_value(v)) == NULL)
					json_object_set_new(seen->tag_rules, json_string_value(v), json_string(name));
			}
		if (strcmp(mode, "READ") == 0)
			continue; /* failure handling on reads cannot write plaintext */
		if (strcmp(wa, "NONE") == 0)
			msg_add(warnings, "%s '%s': onFailure NONE on writes lets plaintext be written when encryption "
				"fails (use ERROR, or \"ERROR,NONE\" with WRITEREAD)", path, q(name, qb, sizeof(qb)));
		else if (strcmp(wa, "DLQ") == 0)
			msg_add(warnings, "%s '%s': onFailure DLQ on writes sends records that failed encryption to a "
				"dead letter queue, which is not encrypted", path, q(name, qb, sizeof(qb)));
		if (strcmp(wa, "ERROR") == 0 && lenient_rule != NULL)
			msg_add(warnings, "%s '%s' fails strictly (ERROR) but comes after the lenient rule '%s' "
				"(spec.rules[%zu], %s): order rules by sensitivity, strict rules first", path,
				q(name, qb, sizeof(qb)), q(lenient_rule, qt, sizeof(qt)), lenient_index, lenient_action);
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

/* Join a field path: "a.b", "a[]", cut to PATH_MAX_LEN. */
static void
path_join(char *dst, size_t len, const char *base, const char *sep, const char *name)
{
	char qn[QUOTE_MAX + 4];

	if (base[0] == '\0' && sep[0] == '.')
		put(dst, len, "%s", q(name, qn, sizeof(qn)));
	else
		put(dst, len, "%s%s%s", base, sep, name[0] != '\0' ? q(name, qn, sizeof(qn)) : "");
	cmf_utf8_sanitize(dst);
}

struct walk {
	json_t *root;	   /* the parsed schema */
	json_t *names;	   /* Avro: defined named types, full and short name -> type object */
	json_t *rule_tags; /* tags whose fields must be encryptable; NULL: all */
	json_t *problems, *tags_found;
};

/* Record a field's tags; returns 1 when one of them is a rule tag (the field's type must be encryptable). */
static int
field_tags(struct walk *w, json_t *tags, const char *path)
{
	size_t i;
	json_t *t;
	int hit = 0;

	if (tags == NULL)
		return 0;
	if (!json_is_array(tags)) {
		msg_add(w->problems, "field %s: confluent:tags must be an array of tag names", path);
		return 0;
	}
	json_array_foreach (tags, i, t) {
		if (!json_is_string(t)) {
			msg_add(w->problems, "field %s: confluent:tags[%zu] must be a string", path, i);
			continue;
		}
		array_add_unique(w->tags_found, json_string_value(t));
		if (w->rule_tags == NULL || array_has_string(w->rule_tags, json_string_value(t)))
			hit = 1;
	}
	return hit;
}

static const char *const avro_primitives[] = {"null", "boolean", "int", "long", "float", "double", "bytes", "string",
					      NULL};

/* 1 when values of Avro type `t` can be encrypted (string or bytes, through nullable unions, arrays, maps), else 0 and `desc`. */
static int
avro_encryptable(struct walk *w, json_t *t, int depth, char *desc, size_t len)
{
	char inner[MSG_MAX / 2], qb[QUOTE_MAX + 4];

	if (depth > DEPTH_MAX) {
		put(desc, len, "a type nested too deeply");
		return 0;
	}
	if (json_is_string(t)) {
		const char *s = json_string_value(t);
		json_t *named;

		if (strcmp(s, "string") == 0 || strcmp(s, "bytes") == 0)
			return 1;
		if (str_in(s, avro_primitives)) {
			put(desc, len, "%s", s);
			return 0;
		}
		named = json_object_get(w->names, s);
		if (named != NULL)
			return avro_encryptable(w, named, depth + 1, desc, len);
		put(desc, len, "'%s' (a type not defined in this schema)", q(s, qb, sizeof(qb)));
		return 0;
	}
	if (json_is_array(t)) {
		json_t *only = NULL, *b;
		size_t i, n = 0;

		json_array_foreach (t, i, b)
			if (!(json_is_string(b) && strcmp(json_string_value(b), "null") == 0))
				only = b, n++;
		if (n == 1)
			return avro_encryptable(w, only, depth + 1, desc, len);
		if (n == 0)
			put(desc, len, "null");
		else {
			char *d = json_dumps(t, JSON_COMPACT);

			put(desc, len, "union %s", d != NULL ? q(d, qb, sizeof(qb)) : "of several types");
			free(d);
		}
		return 0;
	}
	if (json_is_object(t)) {
		json_t *ty = json_object_get(t, "type");
		const char *s = json_string_value(ty), *name = json_string_value(json_object_get(t, "name"));

		if (s == NULL)
			return ty != NULL ? avro_encryptable(w, ty, depth + 1, desc, len) : (put(desc, len, "no type"), 0);
		if (strcmp(s, "record") == 0 || strcmp(s, "error") == 0 || strcmp(s, "enum") == 0 ||
		    strcmp(s, "fixed") == 0) {
			put(desc, len, "%s %s", s, name != NULL ? q(name, qb, sizeof(qb)) : "");
			return 0;
		}
		if (strcmp(s, "array") == 0 || strcmp(s, "map") == 0) {
			if (avro_encryptable(w, json_object_get(t, strcmp(s, "array") == 0 ? "items" : "values"), depth + 1,
					     inner, sizeof(inner)))
				return 1;
			put(desc, len, "%s<%s>", s, inner);
			return 0;
		}
		return avro_encryptable(w, ty, depth + 1, desc, len);
	}
	put(desc, len, "no type");
	return 0;
}

static void
avro_name(struct walk *w, json_t *t, const char *ns)
{
	const char *name = json_string_value(json_object_get(t, "name"));
	const char *tns = json_string_value(json_object_get(t, "namespace"));
	const char *dot;
	char full[512];

	if (name == NULL)
		return;
	if (tns == NULL)
		tns = ns;
	dot = strrchr(name, '.');
	json_object_set(w->names, dot != NULL ? dot + 1 : name, t);
	if (dot == NULL && tns != NULL && tns[0] != '\0') {
		snprintf(full, sizeof(full), "%s.%s", tns, name);
		json_object_set(w->names, full, t);
	} else
		json_object_set(w->names, name, t);
}

static void
avro_walk(struct walk *w, json_t *t, const char *path, const char *ns, int depth)
{
	char sub[PATH_MAX_LEN], desc[MSG_MAX / 2];
	const char *s;
	size_t i;
	json_t *v;

	if (depth > DEPTH_MAX) {
		msg_add(w->problems, "field %s: the schema is nested more than %d levels deep", path[0] ? path : "(root)",
			DEPTH_MAX);
		return;
	}
	if (json_is_array(t)) {
		json_array_foreach (t, i, v)
			avro_walk(w, v, path, ns, depth + 1);
		return;
	}
	if (!json_is_object(t))
		return;
	s = json_string_value(json_object_get(t, "type"));
	if (s == NULL) {
		avro_walk(w, json_object_get(t, "type"), path, ns, depth + 1);
		return;
	}
	if (strcmp(s, "enum") == 0 || strcmp(s, "fixed") == 0) {
		avro_name(w, t, ns);
	} else if (strcmp(s, "array") == 0) {
		path_join(sub, sizeof(sub), path, "[]", "");
		avro_walk(w, json_object_get(t, "items"), sub, ns, depth + 1);
	} else if (strcmp(s, "map") == 0) {
		path_join(sub, sizeof(sub), path, "{}", "");
		avro_walk(w, json_object_get(t, "values"), sub, ns, depth + 1);
	} else if (strcmp(s, "record") == 0 || strcmp(s, "error") == 0) {
		const char *tns = json_string_value(json_object_get(t, "namespace"));
		const char *name = json_string_value(json_object_get(t, "name"));
		json_t *fields = json_object_get(t, "fields");
		char nsbuf[256];

		avro_name(w, t, ns);
		if (tns == NULL && name != NULL && strrchr(name, '.') != NULL) {
			snprintf(nsbuf, sizeof(nsbuf), "%.*s", (int)(strrchr(name, '.') - name), name);
			tns = nsbuf;
		}
		if (tns == NULL)
			tns = ns;
		if (!json_is_array(fields)) {
			msg_add(w->problems, "record %s: fields must be an array", path[0] ? path : "(root)");
			return;
		}
		json_array_foreach (fields, i, v) {
			const char *fname = json_string_value(json_object_get(v, "name"));

			if (!json_is_object(v) || fname == NULL) {
				msg_add(w->problems, "record %s: fields[%zu] must be an object with a name",
					path[0] ? path : "(root)", i);
				continue;
			}
			path_join(sub, sizeof(sub), path, ".", fname);
			if (field_tags(w, json_object_get(v, "confluent:tags"), sub) &&
			    !avro_encryptable(w, json_object_get(v, "type"), 0, desc, sizeof(desc)))
				msg_add(w->problems, "field %s is tagged for encryption but its type is %s: only string "
					"and bytes fields can be encrypted", sub, desc);
			avro_walk(w, json_object_get(v, "type"), sub, tns, depth + 1);
		}
	}
}

/* Resolve a local JSON Schema $ref ("#/definitions/X", "#/$defs/X"), or NULL. */
static json_t *
js_ref(struct walk *w, const char *ref)
{
	const char *p;

	if ((p = skip(ref, "#/definitions/")) != NULL)
		return json_object_get(json_object_get(w->root, "definitions"), p);
	if ((p = skip(ref, "#/$defs/")) != NULL)
		return json_object_get(json_object_get(w->root, "$defs"), p);
	return NULL;
}

static int
js_is_null(json_t *s)
{
	json_t *t = json_object_get(s, "type");

	return json_is_string(t) && strcmp(json_string_value(t), "null") == 0;
}

/* 1 when JSON Schema `s` describes strings (through nullable types, oneOf/anyOf with null, items, local $ref). */
static int
js_encryptable(struct walk *w, json_t *s, int depth, char *desc, size_t len)
{
	char inner[MSG_MAX / 2], qb[QUOTE_MAX + 4];
	json_t *t, *ref, *alt;

	if (depth > DEPTH_MAX) {
		put(desc, len, "a type nested too deeply");
		return 0;
	}
	if (!json_is_object(s)) {
		put(desc, len, "no declared type");
		return 0;
	}
	if (json_is_string(ref = json_object_get(s, "$ref"))) {
		json_t *target = js_ref(w, json_string_value(ref));

		if (target != NULL)
			return js_encryptable(w, target, depth + 1, desc, len);
		put(desc, len, "an unresolved $ref '%s'", q(json_string_value(ref), qb, sizeof(qb)));
		return 0;
	}
	t = json_object_get(s, "type");
	if (json_is_array(t)) {
		json_t *only = NULL, *v;
		size_t i, n = 0;

		json_array_foreach (t, i, v)
			if (!(json_is_string(v) && strcmp(json_string_value(v), "null") == 0))
				only = v, n++;
		if (n != 1) {
			char *d = json_dumps(t, JSON_COMPACT);

			put(desc, len, "%s", d != NULL ? q(d, qb, sizeof(qb)) : "several types");
			free(d);
			return 0;
		}
		t = only; /* ["string","null"] is a nullable string */
	}
	if (json_is_string(t)) {
		if (strcmp(json_string_value(t), "string") == 0)
			return 1;
		if (strcmp(json_string_value(t), "array") == 0) {
			if (js_encryptable(w, json_object_get(s, "items"), depth + 1, inner, sizeof(inner)))
				return 1;
			put(desc, len, "array<%s>", inner);
			return 0;
		}
		put(desc, len, "%s", q(json_string_value(t), qb, sizeof(qb)));
		return 0;
	}
	if (t != NULL) {
		put(desc, len, "an invalid type");
		return 0;
	}
	if (json_is_array(alt = json_object_get(s, "oneOf")) || json_is_array(alt = json_object_get(s, "anyOf"))) {
		json_t *only = NULL, *v;
		size_t i, n = 0;

		json_array_foreach (alt, i, v)
			if (!js_is_null(v))
				only = v, n++;
		if (n == 1)
			return js_encryptable(w, only, depth + 1, desc, len);
		put(desc, len, "a choice of %zu non-null types", n);
		return 0;
	}
	put(desc, len, "no declared type");
	return 0;
}

static void
js_walk(struct walk *w, json_t *s, const char *path, int depth)
{
	static const char *const alts[] = {"oneOf", "anyOf", "allOf"};
	char sub[PATH_MAX_LEN], desc[MSG_MAX / 2];
	const char *k;
	json_t *v, *props, *items, *ap;
	size_t i;

	if (!json_is_object(s))
		return;
	if (depth > DEPTH_MAX) {
		msg_add(w->problems, "field %s: the schema is nested more than %d levels deep", path[0] ? path : "(root)",
			DEPTH_MAX);
		return;
	}
	if (json_is_object(props = json_object_get(s, "properties")))
		json_object_foreach (props, k, v) {
			path_join(sub, sizeof(sub), path, ".", k);
			if (field_tags(w, json_object_get(v, "confluent:tags"), sub) &&
			    !js_encryptable(w, v, 0, desc, sizeof(desc)))
				msg_add(w->problems, "field %s is tagged for encryption but its type is %s: only string "
					"fields can be encrypted", sub, desc);
			js_walk(w, v, sub, depth + 1);
		}
	items = json_object_get(s, "items");
	path_join(sub, sizeof(sub), path, "[]", "");
	if (json_is_object(items))
		js_walk(w, items, sub, depth + 1);
	else if (json_is_array(items))
		json_array_foreach (items, i, v)
			js_walk(w, v, sub, depth + 1);
	if (json_is_object(ap = json_object_get(s, "additionalProperties"))) {
		path_join(sub, sizeof(sub), path, "{}", "");
		js_walk(w, ap, sub, depth + 1);
	}
	for (size_t a = 0; a < 3; a++)
		if (json_is_array(v = json_object_get(s, alts[a]))) {
			json_t *b;

			json_array_foreach (v, i, b)
				js_walk(w, b, path, depth + 1);
		}
}

void
cmf_csfle_check_schema(const char *schema_type, const char *schema_text, json_t *rule_tags, json_t *problems,
		       json_t *warnings, json_t *tags_found)
{
	struct walk w = {NULL, NULL, rule_tags, problems, tags_found};
	json_error_t e;

	(void)warnings;
	if (schema_type == NULL || (strcmp(schema_type, "AVRO") != 0 && strcmp(schema_type, "JSON") != 0)) {
		msg_add(problems, "schemaType must be AVRO or JSON");
		return;
	}
	if (schema_text == NULL || (w.root = json_loads(schema_text, JSON_DECODE_ANY, &e)) == NULL) {
		/* Position only: jansson's text quotes the input. */
		msg_add(problems, "the %s schema is not valid JSON (line %d, column %d)", schema_type,
			schema_text == NULL ? 0 : e.line, schema_text == NULL ? 0 : e.column);
		return;
	}
	if (strcmp(schema_type, "AVRO") == 0) {
		w.names = json_object();
		avro_walk(&w, w.root, "", "", 0);
		json_decref(w.names);
	} else {
		static const char *const defs[] = {"definitions", "$defs"};

		if (!json_is_object(w.root))
			msg_add(problems, "the JSON schema must be an object");
		js_walk(&w, w.root, "", 0);
		for (size_t d = 0; d < 2; d++) {
			json_t *all = json_object_get(w.root, defs[d]), *v;
			const char *k;
			char base[PATH_MAX_LEN];

			if (json_is_object(all))
				json_object_foreach (all, k, v) {
					path_join(base, sizeof(base), defs[d], "/", k);
					js_walk(&w, v, base, 1);
				}
		}
	}
	json_decref(w.root);
}

static void
check_schemas(json_t *schemas, struct rules_seen *seen, json_t *problems, json_t *warnings, json_t *tags_found,
	      size_t *subjects)
{
	static const char *const keys[] = {"subject", "schemaType", "schema", NULL};
	json_t *subj = json_array(), *s;
	size_t i;

	json_array_foreach (schemas, i, s) {
		char path[64], qb[QUOTE_MAX + 4];
		const char *subject, *type, *text;
		json_t *p, *m;
		size_t j;

		snprintf(path, sizeof(path), "spec.schemas[%zu]", i);
		if (!json_is_object(s)) {
			msg_add(problems, "%s must be an object {subject, schemaType, schema}", path);
			continue;
		}
		unknown_keys(s, path, keys, "subject, schemaType, schema", problems);
		subject = get_string(s, "subject", path, 1, problems);
		type = get_string(s, "schemaType", path, 1, problems);
		text = get_string(s, "schema", path, 1, problems);
		if (subject != NULL && array_has_string(subj, subject))
			msg_add(problems, "%s.subject '%s' is listed twice", path, q(subject, qb, sizeof(qb)));
		if (subject != NULL)
			array_add_unique(subj, subject);
		if (type != NULL && strcmp(type, "AVRO") != 0 && strcmp(type, "JSON") != 0) {
			msg_add(problems, "%s.schemaType '%s' must be AVRO or JSON", path, q(type, qb, sizeof(qb)));
			continue;
		}
		if (type == NULL || text == NULL)
			continue;
		p = json_array();
		cmf_csfle_check_schema(type, text, seen->ok ? seen->tags : NULL, p, warnings, tags_found);
		json_array_foreach (p, j, m)
			msg_add(problems, "%s (subject '%s'): %s", path, subject != NULL ? q(subject, qb, sizeof(qb)) : "?",
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

	if (!json_is_object(spec)) {
		msg_add(problems, "spec must be an object {kms, kek, dek, preserveSourceFields, latestCacheTtlSec, rules, "
			"schemas}");
		goto out;
	}
	unknown_keys(spec, "spec", keys,
		     "kms, kek, dek, preserveSourceFields, latestCacheTtlSec, rules, schemas", problems);
	check_kms(json_object_get(spec, "kms"), problems, &kms_type, &key_id);
	check_kek(json_object_get(spec, "kek"), problems);
	/* Seed 002: without a KEK shared with the DEK Registry, the clients themselves need KMS access. */
	if (json_is_object(json_object_get(spec, "kms")) &&
	    json_object_get(json_object_get(spec, "kms"), "credentialsSecretId") == NULL &&
	    !json_is_true(json_object_get(json_object_get(spec, "kek"), "shared")))
		msg_add(warnings, "spec.kms.credentialsSecretId is unset and spec.kek.shared is not true: the clients will "
			"use ambient KMS credentials (environment variables, instance roles); cmf cannot check them");
	expiry = check_dek(json_object_get(spec, "dek"), problems);
	check_bool(spec, "preserveSourceFields", "spec", problems);
	ttl = json_object_get(spec, "latestCacheTtlSec");
	if (ttl != NULL && (!json_is_integer(ttl) || json_integer_value(ttl) < -1))
		msg_add(problems, "spec.latestCacheTtlSec must be an integer >= -1 (seconds)");
	else if (ttl == NULL || json_integer_value(ttl) == -1)
		msg_add(warnings, "spec.latestCacheTtlSec is %s: clients keep the latest schema forever and ignore rule "
			"changes until they restart; set a number of seconds", ttl == NULL ? "unset" : "-1");
	check_rules(json_object_get(spec, "rules"), problems, warnings, &seen);

	schemas = json_object_get(spec, "schemas");
	if (schemas != NULL && !json_is_array(schemas))
		msg_add(problems, "spec.schemas must be an array of {subject, schemaType, schema}");
	else if (schemas != NULL && json_array_size(schemas) > 0) {
		json_t *found = json_array(), *t;
		size_t i;

		check_schemas(schemas, &seen, problems, warnings, found, &subjects);
		if (seen.ok) {
			char qb[QUOTE_MAX + 4], qr[QUOTE_MAX + 4];

			json_array_foreach (seen.tags, i, t)
				if (!array_has_string(found, json_string_value(t)))
					msg_add(warnings, "rule '%s' tag '%s' is on no field of the given schemas",
						q(json_string_value(json_object_get(seen.tag_rules, json_string_value(t))),
						  qr, sizeof(qr)),
						q(json_string_value(t), qb, sizeof(qb)));
			json_array_foreach (found, i, t)
				if (!array_has_string(seen.tags, json_string_value(t)))
					msg_add(warnings, "schema tag '%s' is used by no enabled rule: its fields are not "
						"encrypted", q(json_string_value(t), qb, sizeof(qb)));
		}
		json_decref(found);
	}
	if (expiry > 0) {
		/* Whole expiry periods started in a year: ceil(365 / d) new DEK versions per subject. */
		json_int_t per_year = (365 + expiry - 1) / expiry;
		json_int_t n = (json_int_t)(subjects > 0 ? subjects : 1) * per_year;

		if (n >= CMF_CSFLE_DEK_LIMIT)
			msg_add(warnings, "spec.dek.expiryDays %lld: %zu subject(s) x %lld new DEKs a year = %lld, which "
				"reaches the DEK Registry's limit of %d retained DEKs within a year",
				(long long)expiry, subjects > 0 ? subjects : 1, (long long)per_year, (long long)n,
				CMF_CSFLE_DEK_LIMIT);
	}
out:
	json_decref(seen.tags);
	json_decref(seen.tag_rules);
}

/* ---- credentials ---- */

void
cmf_csfle_check_credentials(const char *kms_type, json_t *secret_data, json_t *problems)
{
	static const char *const aws[] = {"access.key.id", "secret.access.key", NULL};
	static const char *const azure[] = {"tenant.id", "client.id", "client.secret", NULL};
	static const char *const gcp[] = {"client.id", "client.email", "private.key.id", "private.key", NULL};
	static const char *const token[] = {"token.id", NULL};
	static const char *const approle[] = {"approle.role.id", "approle.secret.id", NULL};
	static const char *const local[] = {"secret", NULL};
	static const char *const vault_all[] = {"token.id", "approle.role.id", "approle.secret.id", "namespace", NULL};
	const char *const *set = NULL, *const *known;
	const char *known_text, *k;
	char qb[QUOTE_MAX + 4], missing[MSG_MAX / 2];
	json_t *v;

	if (kms_type == NULL || !str_in(kms_type, kms_types)) {
		msg_add(problems, "KMS credentials: unknown KMS type (one of " KMS_TYPES_TEXT ")");
		return;
	}
	if (!json_is_object(secret_data)) {
		msg_add(problems, "KMS credentials for %s: the secret's data must be an object of strings", kms_type);
		return;
	}
	if (strcmp(kms_type, "aws-kms") == 0)
		set = known = aws, known_text = "access.key.id, secret.access.key";
	else if (strcmp(kms_type, "azure-kms") == 0)
		set = known = azure, known_text = "tenant.id, client.id, client.secret";
	else if (strcmp(kms_type, "gcp-kms") == 0)
		set = known = gcp, known_text = "client.id, client.email, private.key.id, private.key";
	else if (strcmp(kms_type, "local-kms") == 0)
		set = known = local, known_text = "secret";
	else {
		known = vault_all;
		known_text = "token.id and optional namespace, or approle.role.id, approle.secret.id and optional namespace";
	}
	json_object_foreach (secret_data, k, v) {
		if (!str_in(k, known))
			msg_add(problems, "KMS credentials for %s: unknown key '%s' (expected %s)", kms_type,
				q(k, qb, sizeof(qb)), known_text);
		else if (!json_is_string(v) || json_string_length(v) == 0)
			msg_add(problems, "KMS credentials for %s: key '%s' must be a non-empty string", kms_type, k);
	}
	if (set == NULL) {
		int has_token = json_object_get(secret_data, "token.id") != NULL;
		int has_role = json_object_get(secret_data, "approle.role.id") != NULL ||
			       json_object_get(secret_data, "approle.secret.id") != NULL;

		if (has_token && has_role) {
			msg_add(problems, "KMS credentials for hcvault: both token.id and approle.* are set: keep one");
			return;
		}
		set = has_token ? token : approle;
		if (!has_token && !has_role) {
			msg_add(problems, "KMS credentials for hcvault are incomplete: set token.id, or approle.role.id and "
				"approle.secret.id (clients would fall back to ambient credentials)");
			return;
		}
	}
	missing[0] = '\0';
	for (size_t i = 0; set[i] != NULL; i++)
		if (json_object_get(secret_data, set[i]) == NULL) {
			if (missing[0] != '\0')
				strcat(missing, ", ");
			strcat(missing, set[i]); /* fits: the longest set's names are < 80 bytes */
		}
	if (missing[0] != '\0')
		msg_add(problems, "KMS credentials for %s are incomplete: missing %s (clients would silently fall back to "
			"ambient credentials)", kms_type, missing);
}

/* ---- resolved client config ---- */

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

/* `key` has a "rule.executors.<x>.<suffix>" part at its start or after a '.'. */
static int
rule_executor_key(const char *key, const char *suffix)
{
	const char *p = key;

	while ((p = strstr(p, "rule.executors.")) != NULL) {
		if (p == key || p[-1] == '.') {
			const char *x = p + strlen("rule.executors.");
			const char *dot = strchr(x, '.');

			if (dot != NULL && dot != x && strcmp(dot + 1, suffix) == 0)
				return 1;
		}
		p++;
	}
	return 0;
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
	char qb[QUOTE_MAX + 4];
	const char *k;
	json_t *v;

	if (props == NULL)
		return;
	if (!json_is_object(props)) {
		msg_add(problems, "the resolved %s config must be an object", where);
		return;
	}
	json_object_foreach (props, k, v) {
		q(k, qb, sizeof(qb));
		if (key_is(k, "schema.registry.url") && json_is_string(v) && json_string_length(v) > 0)
			*has_url = 1;
		if (key_is(k, "auto.register.schemas") && is_true(v))
			msg_add(problems, "%s: %s=true registers schemas without the encryption rules: set it to false",
				where, qb);
		else if (key_is(k, "use.latest.version") && !is_true(v))
			msg_add(problems, "%s: %s must be true, or the clients use a schema without the encryption rules",
				where, qb);
		else if (key_is(k, "rule.service.loader.enable") && !is_true(v))
			msg_add(problems, "%s: %s=false stops the clients from loading the encryption rule executor", where,
				qb);
		else if (rule_executor_key(k, "disabled") && is_true(v))
			msg_add(problems, "%s: %s=true switches encryption off", where, qb);
		else if (rule_executor_key(k, "onFailure") && json_is_string(v) && contains_none(json_string_value(v)))
			msg_add(problems, "%s: %s containing NONE lets plaintext through when encryption fails", where, qb);
		else if (strcmp(k, "errors.deadletterqueue.topic.name") == 0 || strncmp(k, "dlq.", 4) == 0 ||
			 (strncmp(k, "reporter.", 9) == 0 && key_is(k, "topic.name")))
			msg_add(warnings, "%s: %s: dead letter queue and reporter topics are not encrypted and may "
				"receive decrypted records", where, qb);
	}
}

void
cmf_csfle_check_resolved(json_t *kafka, json_t *sr, json_t *problems, json_t *warnings)
{
	int has_url = 0;

	resolved_one(kafka, "kafka", problems, warnings, &has_url);
	resolved_one(sr, "schemaRegistry", problems, warnings, &has_url);
	if (!has_url)
		msg_add(problems, "no schema.registry.url: CSFLE needs Schema Registry for its rules and keys");
}

void
cmf_csfle_check_public(json_t *kafka, json_t *sr, json_t *problems, json_t *warnings)
{
	int has_url = 0;

	resolved_one(kafka, "kafka", problems, warnings, &has_url);
	resolved_one(sr, "schemaRegistry", problems, warnings, &has_url);
}

int
cmf_csfle_credential_key(const char *key)
{
	const char *p = key;

	while ((p = strstr(p, "rule.executors.")) != NULL) {
		if (p == key || p[-1] == '.') {
			const char *x = p + strlen("rule.executors."), *dot = strchr(x, '.');

			if (dot != NULL && dot != x && strncmp(dot + 1, "param.", 6) == 0)
				return 1;
		}
		p++;
	}
	return 0;
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
	char qb[QUOTE_MAX + 4], cb[QUOTE_MAX + 4];
	const char *k;
	json_t *v;

	json_object_foreach (props, k, v) {
		if (cmf_csfle_credential_key(k))
			msg_add(problems,
				"%s: %s: rule executor parameters come only from the credentials secret of CsfleConfig '%s' "
				"(spec.kms.credentialsSecretId); remove it",
				where, q(k, qb, sizeof(qb)), q(config, cb, sizeof(cb)));
	}
}

/* The spec's latestCacheTtlSec against one set in a resolved map: two values, one client. */
static void
apply_ttl(json_t *props, const char *where, json_t *ttl, json_t *problems)
{
	char want[32], qb[QUOTE_MAX + 4];
	const char *k;
	json_t *v;

	snprintf(want, sizeof(want), "%lld", (long long)json_integer_value(ttl));
	json_object_foreach (props, k, v) {
		if (key_is(k, "latest.cache.ttl.sec") && (!json_is_string(v) || strcmp(json_string_value(v), want) != 0))
			msg_add(problems, "%s: %s differs from the CsfleConfig's latestCacheTtlSec (%s): set it in one place",
				where, q(k, qb, sizeof(qb)), want);
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

/* ---- ruleSet ---- */

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
