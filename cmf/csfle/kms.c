/* cmf csfle: the KMSs a CsfleConfig may name: their types, key id forms, spec.kms, and the credentials each takes. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "cmf/csfle/csfle.h"
#include "cmf/csfle/internal.h"

/* ---- KMS key ids ---- */

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

	if ((p = csfle_skip(s, "arn:aws:kms:")) == NULL && (p = csfle_skip(s, "arn:aws-cn:kms:")) == NULL &&
	    (p = csfle_skip(s, "arn:aws-us-gov:kms:")) == NULL)
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
	if ((s = csfle_skip(p, "key/")) == NULL && (s = csfle_skip(p, "alias/")) == NULL)
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
	const char *p = csfle_skip(s, "https://"), *slash;
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
	if (!ok || (p = csfle_skip(slash, "/keys/")) == NULL)
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
		if ((p = csfle_skip(p, parts[i])) == NULL)
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

	if ((p = csfle_skip(s, "https://")) == NULL && (p = csfle_skip(s, "http://")) == NULL)
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

/* ---- the KMS types ---- */

/*
 * The credential keys each KMS's rule executor reads (Confluent's drivers: aws-driver, azure-driver,
 * gcp-driver, hcvault-driver, local-driver), and the one set a simple type requires.
 */
static const char *const aws_static[] = {"access.key.id", "secret.access.key", NULL};
static const char *const aws_known[] = {"access.key.id", "secret.access.key", "profile", "role.arn",
					"role.session.name", "role.external.id", NULL};
static const char *const azure_creds[] = {"tenant.id", "client.id", "client.secret", NULL};
static const char *const gcp_creds[] = {"client.id", "client.email", "private.key.id", "private.key", NULL};
/* account.type is the credential's "type" (the clients default to service_account); no key of its own. */
static const char *const gcp_known[] = {"client.id", "client.email", "private.key.id", "private.key", "account.type",
					NULL};
static const char *const vault_known[] = {"token.id", "approle.role.id", "approle.secret.id", "namespace", NULL};
static const char *const local_creds[] = {"secret", NULL};

/* What cmf knows of each KMS type: how its key ids look and the credentials its rule executor takes. */
static const struct kms_kind {
	const char *type;
	int (*key_id_ok)(const char *key_id); /* NULL: any non-empty key id */
	const char *key_id_form;	      /* completes "spec.kms.keyId '...' is not " */
	const char *const *creds;	      /* the one complete set; NULL: aws-kms's and hcvault's (alternatives) */
	const char *const *known;	      /* every key the secret may hold */
	const char *known_text;		      /* the complete sets, for messages; NULL: `creds` listed */
} kms_kinds[] = {
	{"aws-kms", aws_key_id_ok,
	 "an AWS KMS key: arn:aws:kms:<region>:<account>:key/<id> or arn:aws:kms:<region>:<account>:alias/<name>",
	 NULL, aws_known,
	 "access.key.id and secret.access.key, or profile, optionally with role.arn (and role.session.name, "
	 "role.external.id), or role.arn alone"},
	{"azure-kms", azure_key_id_ok,
	 "an Azure Key Vault key: https://<vault>.vault.azure.net/keys/<name>[/<version>]", azure_creds, azure_creds,
	 NULL},
	{"gcp-kms", gcp_key_id_ok, "a Google Cloud KMS key: projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>",
	 gcp_creds, gcp_known, "client.id, client.email, private.key.id, private.key and optional account.type"},
	{"hcvault", vault_key_id_ok, "a Vault transit key: http(s)://<host>[:<port>]/transit/keys/<name>", NULL,
	 vault_known,
	 "token.id and optional namespace, or approle.role.id, approle.secret.id and optional namespace"},
	{"local-kms", NULL, NULL, local_creds, local_creds, NULL},
};
#define KMS_TYPES_TEXT "aws-kms, azure-kms, gcp-kms, hcvault, local-kms"

/* The kind of KMS type `type` (exact spelling), or NULL. */
static const struct kms_kind *
kms_kind(const char *type)
{
	for (size_t i = 0; i < sizeof(kms_kinds) / sizeof(kms_kinds[0]); i++)
		if (strcmp(type, kms_kinds[i].type) == 0)
			return &kms_kinds[i];
	return NULL;
}

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

void
csfle_check_kms(json_t *kms, json_t *problems, const char **type_out, const char **key_out)
{
	static const char *const keys[] = {"type", "keyId", "credentialsSecretId", NULL};
	const struct kms_kind *kind = NULL;
	const char *type, *key;
	char qb[CSFLE_QUOTE_BUF], qk[CSFLE_QUOTE_BUF];

	*type_out = *key_out = NULL;
	if (kms == NULL) {
		csfle_msg_add(problems, "spec.kms is required");
		return;
	}
	if (!csfle_check_object(kms, "spec.kms", keys, problems))
		return;
	csfle_get_string(kms, "credentialsSecretId", "spec.kms", 0, problems);
	type = csfle_get_string(kms, "type", "spec.kms", 1, problems);
	key = csfle_get_string(kms, "keyId", "spec.kms", 1, problems);
	if (type != NULL && (kind = kms_kind(type)) == NULL) {
		const char *hint = kms_canonical_hint(type);

		if (hint != NULL)
			csfle_msg_add(problems, "spec.kms.type '%s' is not a canonical KMS type: use '%s'",
				      csfle_quote(type, qb, sizeof(qb)), hint);
		else
			csfle_msg_add(problems, "spec.kms.type '%s' is not a KMS type: one of " KMS_TYPES_TEXT,
				      csfle_quote(type, qb, sizeof(qb)));
		type = NULL;
	}
	*type_out = type;
	if (kind == NULL || key == NULL)
		return;
	if (kind->key_id_ok != NULL && !kind->key_id_ok(key)) {
		csfle_msg_add(problems, "spec.kms.keyId '%s' is not %s", csfle_quote(key, qk, sizeof(qk)),
			      kind->key_id_form);
		return;
	}
	*key_out = key;
}

/* ---- credentials ---- */

/* A key of `data` is set. */
static int
has(json_t *data, const char *key)
{
	return json_object_get(data, key) != NULL;
}

/*
 * aws-kms (Confluent's aws-driver): access.key.id + secret.access.key, else profile, are the base
 * credentials; role.arn then assumes that role with them (or with the ambient ones when there are none),
 * as session role.session.name (default confluent-encrypt) with role.external.id. Returns the set whose
 * missing keys make it partial (the static keys), or NULL when complete or already refused.
 */
static const char *const *
aws_set(json_t *data, json_t *problems)
{
	int key = has(data, "access.key.id") || has(data, "secret.access.key"), profile = has(data, "profile");
	int role = has(data, "role.arn"), role_opts = has(data, "role.session.name") || has(data, "role.external.id");

	if (key && profile) {
		csfle_msg_add(problems, "KMS credentials for aws-kms: both access.key.id/secret.access.key and profile "
			      "are set, and the clients ignore the profile: keep one");
		return NULL;
	}
	if (role_opts && !role) {
		csfle_msg_add(problems, "KMS credentials for aws-kms: role.session.name and role.external.id are for "
			      "assuming role.arn, which is not set");
		return NULL;
	}
	if (key)
		return aws_static;
	if (!profile && !role)
		csfle_msg_add(problems, "KMS credentials for aws-kms are incomplete: set access.key.id and "
			      "secret.access.key, or profile, or role.arn (clients would silently fall back to ambient "
			      "credentials)");
	return NULL;
}

/* hcvault: token.id, or approle.role.id + approle.secret.id; namespace optional with either. */
static const char *const *
vault_set(json_t *data, json_t *problems)
{
	static const char *const token[] = {"token.id", NULL};
	static const char *const approle[] = {"approle.role.id", "approle.secret.id", NULL};
	int has_token = has(data, "token.id");
	int has_role = has(data, "approle.role.id") || has(data, "approle.secret.id");

	if (has_token && has_role) {
		csfle_msg_add(problems, "KMS credentials for hcvault: both token.id and approle.* are set: keep one");
		return NULL;
	}
	if (!has_token && !has_role) {
		csfle_msg_add(problems, "KMS credentials for hcvault are incomplete: set token.id, or approle.role.id "
			      "and approle.secret.id (clients would fall back to ambient credentials)");
		return NULL;
	}
	return has_token ? token : approle;
}

void
cmf_csfle_check_credentials(const char *kms_type, json_t *secret_data, json_t *problems)
{
	const struct kms_kind *kind = kms_type != NULL ? kms_kind(kms_type) : NULL;
	const char *const *set;
	const char *known_text, *k;
	char qb[CSFLE_QUOTE_BUF], missing[CSFLE_MSG_MAX / 2], known_buf[CSFLE_MSG_MAX / 2];
	json_t *v;

	if (kind == NULL) {
		csfle_msg_add(problems, "KMS credentials: unknown KMS type (one of " KMS_TYPES_TEXT ")");
		return;
	}
	if (!json_is_object(secret_data)) {
		csfle_msg_add(problems, "KMS credentials for %s: the secret's data must be an object of strings",
			      kms_type);
		return;
	}
	known_text = kind->known_text != NULL ? kind->known_text
					      : csfle_keys_text(kind->creds, known_buf, sizeof(known_buf));
	json_object_foreach (secret_data, k, v) {
		if (!csfle_str_in(k, kind->known))
			csfle_msg_add(problems, "KMS credentials for %s: unknown key '%s' (expected %s)", kms_type,
				      csfle_quote(k, qb, sizeof(qb)), known_text);
		else if (!json_is_string(v) || json_string_length(v) == 0)
			csfle_msg_add(problems, "KMS credentials for %s: key '%s' must be a non-empty string", kms_type,
				      k);
	}
	if (kind->creds != NULL)
		set = kind->creds;
	else if (strcmp(kind->type, "aws-kms") == 0)
		set = aws_set(secret_data, problems);
	else
		set = vault_set(secret_data, problems);
	if (set == NULL)
		return;
	missing[0] = '\0';
	for (size_t i = 0; set[i] != NULL; i++)
		if (!has(secret_data, set[i])) {
			if (missing[0] != '\0')
				strcat(missing, ", ");
			strcat(missing, set[i]); /* fits: the longest set's names are < 80 bytes */
		}
	if (missing[0] != '\0')
		csfle_msg_add(problems,
			      "KMS credentials for %s are incomplete: missing %s (clients would silently fall "
			      "back to ambient credentials)",
			      kms_type, missing);
}
