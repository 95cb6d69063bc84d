/* cmf auth: who is asking — bearer tokens checked against hashes, in constant time, never logged. */
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cmf/app.h"
#include "cmf/cache.h"
#include "cmf/http/auth.h"
#include "cmf/http/oidc.h"
#include "cmf/http/principal.h"
#include "cmf/log.h"
#include "crypto/log.h"
#include "db/db.h"
#include "k8s/k8s.h"

/* A token file holds one token; 4 KiB leaves room for whitespace, not for abuse. */
#define TOKEN_FILE_MAX 4096
/* 43 base64 characters carry 256 bits: the floor for the bootstrap token's length. */
#define TOKEN_MIN_CHARS 43
#define TOKEN_ID_HEX 16
#define TOKEN_SECRET_CHARS 43

static bool auth_on;
/* The bootstrap token's hash; replaced when the mounted file changes (cmf/keywatch.c). */
static pthread_mutex_t admin_mutex = PTHREAD_MUTEX_INITIALIZER;
static uint8_t admin_hash[32];
static bool admin_valid; /* false while the file is missing or invalid: the bootstrap token is refused */
/* auth.mtls.principal's mapping rules; NULL: a client certificate names no principal. Set before serving. */
static struct cmf_principal_rules *cert_rules;

bool
cmf_auth_enabled(void)
{
	return auth_on;
}

static int
sha256(const void *data, size_t len, uint8_t out[32])
{
	return crypto_sha256(data, len, out) == CRYPTO_OK ? 0 : -1;
}

/* Check and hash bootstrap-token file content (`buf` is wiped by the caller). */
static int
admin_token_hash(const char *path, uint8_t *buf, size_t len, uint8_t out[32], char *why, size_t whylen)
{
	while (len > 0 && isspace(buf[len - 1]))
		len--;
	if (len < TOKEN_MIN_CHARS) {
		snprintf(why, whylen,
			 "the admin token in %s is %zu characters; use at least %d (256 random bits, e.g. head -c 32 "
			 "/dev/urandom | base64)",
			 path, len, TOKEN_MIN_CHARS);
		return -1;
	}
	if (sha256(buf, len, out) != 0) {
		snprintf(why, whylen, "cannot hash the admin token");
		return -1;
	}
	return 0;
}

int
cmf_auth_admin_token_update(const char *path, uint8_t *buf, size_t len, char *why, size_t whylen)
{
	uint8_t h[32];

	if (admin_token_hash(path, buf, len, h, why, whylen) != 0) {
		cmf_auth_admin_token_disable();
		return -1;
	}
	pthread_mutex_lock(&admin_mutex);
	memcpy(admin_hash, h, sizeof(h));
	admin_valid = true;
	pthread_mutex_unlock(&admin_mutex);
	OPENSSL_cleanse(h, sizeof(h));
	return 0;
}

void
cmf_auth_admin_token_disable(void)
{
	pthread_mutex_lock(&admin_mutex);
	OPENSSL_cleanse(admin_hash, sizeof(admin_hash));
	admin_valid = false;
	pthread_mutex_unlock(&admin_mutex);
}

int
cmf_auth_init(const struct cmf_config *cfg, char *why, size_t whylen)
{
	char reason[512];
	uint8_t *buf = NULL;
	size_t len = 0;
	int loose = 0, r;

	auth_on = cfg->auth_enabled;
	cmf_principal_rules_free(cert_rules);
	cert_rules = NULL;
	if (!auth_on)
		return 0;
	/* Checked by cmf_config_load already; parsed again here to keep the compiled form. */
	if (cfg->auth_mtls_principal &&
	    cmf_principal_rules_parse(cfg->auth_mtls_principal_mapping_rules, &cert_rules, reason, sizeof(reason)) != 0) {
		snprintf(why, whylen, "auth.mtls.principalMappingRules: %s", reason);
		return -1;
	}
	if (cmf_oidc_init(cfg, why, whylen) != 0)
		return -1;
	if (k8s_secret_read_file(cfg->auth_admin_token_file, TOKEN_FILE_MAX, &buf, &len, &loose, reason,
				 sizeof(reason)) != K8S_OK) {
		snprintf(why, whylen, "cannot read the admin token (auth.adminTokenFile): %s", reason);
		return -1;
	}
	if (loose)
		cmf_warn("admin token file %s is readable by other users: restrict it to mode 0400 or 0440",
			 cfg->auth_admin_token_file);
	r = cmf_auth_admin_token_update(cfg->auth_admin_token_file, buf, len, why, whylen);
	crypto_freezero(buf, len);
	return r;
}

/* "cmf_<16 hex>_<43 base64url>": split into id and secret; 0 if the shape is right. */
static int
token_split(const char *t, size_t len, char id[CMF_TOKEN_ID_SIZE], const char **secret)
{
	if (len != CMF_TOKEN_SIZE - 1 || strncmp(t, "cmf_", 4) != 0 || t[4 + TOKEN_ID_HEX] != '_')
		return -1;
	for (size_t i = 4; i < 4 + TOKEN_ID_HEX; i++)
		if (!isxdigit((unsigned char)t[i]) || isupper((unsigned char)t[i]))
			return -1;
	memcpy(id, t + 4, TOKEN_ID_HEX);
	id[TOKEN_ID_HEX] = '\0';
	*secret = t + 5 + TOKEN_ID_HEX;
	return 0;
}

/* Check an API token against its row (from the cache, else PostgreSQL). */
static int
api_token(struct cmf_request *req, const char *tok, size_t len)
{
	char id[CMF_TOKEN_ID_SIZE];
	const char *secret;
	uint8_t hash[32];
	const struct cmf_cached_token *ct = NULL;
	const struct db_token *t;
	struct timespec now;
	bool stale = false;
	int r;

	if (token_split(tok, len, id, &secret) != 0)
		return CMF_AUTH_BAD;
	if (sha256(secret, TOKEN_SECRET_CHARS, hash) != 0)
		return CMF_AUTH_UNAVAILABLE;
	r = cmf_cache_token(cmf_app_conn(req->app), id, &ct, &stale);
	if (r == DB_ERR_NOT_FOUND) {
		r = CMF_AUTH_BAD;
		goto out;
	}
	if (r != DB_OK) {
		r = CMF_AUTH_UNAVAILABLE;
		goto out;
	}
	t = ct->token;
	if (CRYPTO_memcmp(hash, t->secret_hash, sizeof(hash)) != 0) {
		r = CMF_AUTH_BAD;
		goto out;
	}
	/*
	 * The id tells apart tokens that shared a name (one revoked, one new). Set for expired and revoked
	 * tokens too: the refusal is audited under the token that made it (with no role).
	 */
	snprintf(req->principal.name, sizeof(req->principal.name), "token:%s/%s", t->name, t->id);
	clock_gettime(CLOCK_REALTIME, &now);
	if (ct->revoked) {
		r = CMF_AUTH_REVOKED;
	} else if (t->expires_at > 0 && (double)now.tv_sec + (double)now.tv_nsec / 1e9 >= t->expires_at) {
		r = CMF_AUTH_EXPIRED;
	} else {
		req->principal.role = strcmp(t->role, "admin") == 0		 ? CMF_ROLE_ADMIN
				      : strcmp(t->role, "metrics-reader") == 0 ? CMF_ROLE_METRICS_READER
									    : CMF_ROLE_ENV_READER;
		req->principal.environments = json_incref(t->environments);
		req->principal.stale = stale;
		req->principal.expires_at = t->expires_at > 0 ? t->expires_at : 0;
		r = CMF_AUTH_OK;
	}
out:
	OPENSSL_cleanse(hash, sizeof(hash));
	cmf_cache_token_release(ct);
	return r;
}

/* The role of req->principal.name from its binding; with none, authenticated with no role (the router: 403). */
static int
bound_principal(struct cmf_request *req)
{
	struct db_role_binding *b = NULL;
	int r;

	r = cmf_cache_binding(cmf_app_conn(req->app), req->principal.name, &b);
	if (r == DB_ERR_NOT_FOUND)
		return CMF_AUTH_OK; /* authenticated, with no role: refused by the router (403) */
	if (r != DB_OK)
		return CMF_AUTH_UNAVAILABLE;
	req->principal.role = strcmp(b->role, "admin") == 0		 ? CMF_ROLE_ADMIN
			      : strcmp(b->role, "metrics-reader") == 0 ? CMF_ROLE_METRICS_READER
								    : CMF_ROLE_ENV_READER;
	req->principal.environments = json_incref(b->environments);
	db_role_binding_free(b);
	return CMF_AUTH_OK;
}

/*
 * The principal of a verified client certificate: its subject DN mapped by the rules, then its role from
 * its binding. The DN is the client CA's word, so it is not rate-limited as made-up token ids are.
 */
static int
cert_principal(struct cmf_request *req)
{
	/* The name and "cert:" fit struct cmf_principal's name. */
	char name[sizeof(req->principal.name) - 5];
	int r;

	r = cmf_principal_rules_map(cert_rules, req->client_cert, name, sizeof(name));
	if (r == CMF_PRINCIPAL_ERROR)
		return CMF_AUTH_UNAVAILABLE;
	if (r != CMF_PRINCIPAL_MAPPED)
		return CMF_AUTH_UNMAPPED;
	snprintf(req->principal.name, sizeof(req->principal.name), "cert:%s", name);
	return bound_principal(req);
}

/*
 * A bearer JWT: verified against the mounted JWKS, then bound like a certificate principal. Its claims
 * are the provider's word only once the signature verifies: a refusal names no principal.
 */
static int
oidc_principal(struct cmf_request *req, const char *tok, size_t len)
{
	double until = 0;
	int r = cmf_oidc_authenticate(tok, len, req->principal.name, sizeof(req->principal.name), &until);

	if (r == CMF_OIDC_OK)
		req->principal.expires_at = until;
	if (r == CMF_OIDC_INTERNAL)
		return CMF_AUTH_UNAVAILABLE;
	if (r != CMF_OIDC_OK) {
		req->principal.name[0] = '\0';
		return CMF_AUTH_OIDC_MALFORMED + 1 + r;
	}
	return bound_principal(req);
}

int
cmf_auth_authenticate(struct cmf_request *req)
{
	const char *h = cmf_request_header(req, "Authorization");
	uint8_t hash[32];
	size_t len;
	bool admin;
	int r;

	cmf_principal_clear(&req->principal);
	if (!auth_on) {
		snprintf(req->principal.name, sizeof(req->principal.name), "anonymous");
		req->principal.role = CMF_ROLE_ADMIN;
		return CMF_AUTH_OK;
	}
	/* One credential per request: a proxy reading another copy than we do would see another caller. */
	if (cmf_request_header_count(req, "Authorization") > 1)
		return CMF_AUTH_AMBIGUOUS;
	/* No token: a verified client certificate may name the principal (auth.mtls.principal). */
	if (h == NULL && cert_rules != NULL && req->client_cert_verified && req->client_cert[0] != '\0')
		return cert_principal(req);
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return CMF_AUTH_MISSING;
	h += 7;
	while (*h == ' ')
		h++;
	len = strlen(h);
	while (len > 0 && h[len - 1] == ' ')
		len--;
	if (len == 0)
		return CMF_AUTH_MISSING;
	/* The bootstrap token first: a hash comparison in constant time, no database. */
	if (sha256(h, len, hash) != 0)
		return CMF_AUTH_UNAVAILABLE;
	pthread_mutex_lock(&admin_mutex);
	admin = admin_valid && CRYPTO_memcmp(hash, admin_hash, sizeof(hash)) == 0;
	pthread_mutex_unlock(&admin_mutex);
	if (admin) {
		snprintf(req->principal.name, sizeof(req->principal.name), "admin");
		req->principal.role = CMF_ROLE_ADMIN;
		r = CMF_AUTH_OK;
	} else if (cmf_oidc_enabled() && cmf_oidc_is_jwt(h, len)) {
		r = oidc_principal(req, h, len);
	} else {
		r = api_token(req, h, len);
	}
	OPENSSL_cleanse(hash, sizeof(hash));
	return r;
}

int
cmf_auth_token_new(char value[CMF_TOKEN_SIZE], char id[CMF_TOKEN_ID_SIZE], uint8_t hash[32])
{
	uint8_t idb[TOKEN_ID_HEX / 2], secret[32];
	/* base64 of 32 bytes is 44 characters with one '=' of padding; base64url drops it. */
	unsigned char b64[45];
	int r = -1;

	if (crypto_random(idb, sizeof(idb)) != CRYPTO_OK || crypto_random(secret, sizeof(secret)) != CRYPTO_OK)
		goto out;
	for (size_t i = 0; i < sizeof(idb); i++)
		snprintf(id + 2 * i, 3, "%02x", idb[i]);
	if (EVP_EncodeBlock(b64, secret, sizeof(secret)) != 44)
		goto out;
	for (size_t i = 0; i < TOKEN_SECRET_CHARS; i++)
		b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	b64[TOKEN_SECRET_CHARS] = '\0';
	snprintf(value, CMF_TOKEN_SIZE, "cmf_%s_%s", id, (const char *)b64);
	if (sha256(b64, TOKEN_SECRET_CHARS, hash) != 0)
		goto out;
	r = 0;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(b64, sizeof(b64));
	return r;
}
