/* cmf OIDC: bearer JWTs verified with OpenSSL EVP against the keys of a mounted JWKS (RFC 7515, 7517, 7519). */
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/http/oidc.h"
#include "cmf/log.h"
#include "crypto/crypto.h"
#include "crypto/log.h"
#include "k8s/k8s.h"

/* A provider publishes a few keys (current, next, previous); 64 bounds the work a document can cause. */
#define JWKS_KEYS_MAX 64
/* A kid is an opaque short string (a fingerprint or a date); longer ones are refused, not truncated. */
#define KID_MAX 256
/* RSA keys below 2048 bits are refused (NIST SP 800-131A); above 8192 a verification becomes a DoS lever. */
#define RSA_BITS_MIN 2048
#define RSA_BITS_MAX 8192
/* P-256: 32-byte coordinates; a JOSE ES256 signature is r||s, 64 bytes (RFC 7518 §3.4). */
#define P256_COORD 32

enum key_alg { ALG_RS256, ALG_ES256 };

struct oidc_key {
	char kid[KID_MAX + 1];
	bool has_kid;
	enum key_alg alg;
	EVP_PKEY *pkey;
};

struct cmf_oidc_keys {
	size_t n;
	struct oidc_key k[JWKS_KEYS_MAX];
};

const char *
cmf_oidc_strerror(int r)
{
	switch (r) {
	case CMF_OIDC_OK:
		return "ok";
	case CMF_OIDC_MALFORMED:
		return "malformed";
	case CMF_OIDC_ALG:
		return "alg-not-allowed";
	case CMF_OIDC_KID:
		return "unknown-kid";
	case CMF_OIDC_SIGNATURE:
		return "bad-signature";
	case CMF_OIDC_ISSUER:
		return "wrong-issuer";
	case CMF_OIDC_AUDIENCE:
		return "wrong-audience";
	case CMF_OIDC_EXPIRED:
		return "expired";
	case CMF_OIDC_NOT_YET_VALID:
		return "not-yet-valid";
	default:
		return "internal-error";
	}
}

static bool
b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * base64url without padding (RFC 7515 §2) → bytes, by OpenSSL's decoder: the URL alphabet is translated
 * and the padding put back first. *out (len *outlen, plus a NUL) is freed by the caller with crypto_freezero.
 * Returns 0, or -1 (not base64url, or no memory).
 */
static int
b64url_decode(const char *in, size_t len, uint8_t **out, size_t *outlen)
{
	size_t pad = (4 - len % 4) % 4, tlen = len + pad, cap = tlen / 4 * 3 + 1;
	unsigned char *t = NULL, *o = NULL;
	int n, r = -1;

	*out = NULL;
	*outlen = 0;
	/* One character left over carries 6 bits: no byte. The cap keeps int arithmetic below safe. */
	if (len == 0 || len % 4 == 1 || len > CMF_OIDC_JWKS_MAX)
		goto out;
	for (size_t i = 0; i < len; i++)
		if (!b64url_char(in[i]))
			goto out;
	if ((t = malloc(tlen + 1)) == NULL || (o = malloc(cap)) == NULL)
		goto out;
	for (size_t i = 0; i < len; i++)
		t[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : (unsigned char)in[i];
	memset(t + len, '=', pad);
	t[tlen] = '\0';
	n = EVP_DecodeBlock(o, t, (int)tlen);
	if (n < 0 || (size_t)n < pad)
		goto out;
	*outlen = (size_t)n - pad;
	o[*outlen] = '\0';
	*out = o;
	o = NULL;
	r = 0;
out:
	crypto_freezero(t, t != NULL ? tlen + 1 : 0);
	crypto_freezero(o, o != NULL ? cap : 0);
	return r;
}

/* A base64url member of a JWK decoded; NULL with *len 0 if absent or not base64url. */
static uint8_t *
jwk_bytes(json_t *jwk, const char *member, size_t *len)
{
	const char *s = json_string_value(json_object_get(jwk, member));
	uint8_t *b = NULL;

	*len = 0;
	if (s == NULL || b64url_decode(s, strlen(s), &b, len) != 0)
		return NULL;
	return b;
}

static EVP_PKEY *
pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

/* An RSA public key from n and e. Returns the key, or NULL with `why`. */
static EVP_PKEY *
jwk_rsa(json_t *jwk, char *why, size_t whylen)
{
	size_t nlen, elen;
	uint8_t *nb = jwk_bytes(jwk, "n", &nlen), *eb = jwk_bytes(jwk, "e", &elen);
	BIGNUM *n = NULL, *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;
	int bits;

	if (nb == NULL || eb == NULL || elen > 8) {
		snprintf(why, whylen, "n and e must be base64url (e at most 8 bytes)");
		goto out;
	}
	if ((n = BN_bin2bn(nb, (int)nlen, NULL)) == NULL || (e = BN_bin2bn(eb, (int)elen, NULL)) == NULL ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 || (pkey = pkey_fromdata("RSA", bld)) == NULL) {
		crypto_log_openssl(__func__);
		snprintf(why, whylen, "OpenSSL cannot build an RSA key from n and e");
		goto out;
	}
	bits = EVP_PKEY_get_bits(pkey);
	if (bits < RSA_BITS_MIN || bits > RSA_BITS_MAX || !BN_is_odd(e) || BN_is_one(e)) {
		snprintf(why, whylen, "an RSA key of %d bits with an even or unit exponent is not accepted "
				      "(%d to %d bits, odd e > 1)",
			 bits, RSA_BITS_MIN, RSA_BITS_MAX);
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	BN_free(n);
	BN_free(e);
	OSSL_PARAM_BLD_free(bld);
	free(nb);
	free(eb);
	return pkey;
}

/* A P-256 public key from x and y (checked to be on the curve). Returns the key, or NULL with `why`. */
static EVP_PKEY *
jwk_ec(json_t *jwk, char *why, size_t whylen)
{
	size_t xlen, ylen;
	uint8_t *x = jwk_bytes(jwk, "x", &xlen), *y = jwk_bytes(jwk, "y", &ylen);
	uint8_t point[1 + 2 * P256_COORD];
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;
	EVP_PKEY_CTX *check = NULL;

	if (x == NULL || y == NULL || xlen != P256_COORD || ylen != P256_COORD) {
		snprintf(why, whylen, "x and y must be base64url of %d bytes each", P256_COORD);
		goto out;
	}
	point[0] = 0x04; /* uncompressed (SEC 1 §2.3.3) */
	memcpy(point + 1, x, P256_COORD);
	memcpy(point + 1 + P256_COORD, y, P256_COORD);
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) != 1 ||
	    (pkey = pkey_fromdata("EC", bld)) == NULL || (check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
	    EVP_PKEY_public_check(check) != 1) {
		ERR_clear_error(); /* a point off the curve is the document's fault, not a library failure */
		snprintf(why, whylen, "x and y are not a point on P-256");
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	EVP_PKEY_CTX_free(check);
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pkey;
}

void
cmf_oidc_keys_free(struct cmf_oidc_keys *k)
{
	if (k == NULL)
		return;
	for (size_t i = 0; i < k->n; i++)
		EVP_PKEY_free(k->k[i].pkey);
	free(k);
}

size_t
cmf_oidc_keys_count(const struct cmf_oidc_keys *k)
{
	return k != NULL ? k->n : 0;
}

/* One JWK into `key`: 1 if usable, 0 if skipped (another type or use), -1 with `why` if it is broken. */
static int
jwk_parse(json_t *jwk, struct oidc_key *key, char *why, size_t whylen)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *use = json_string_value(json_object_get(jwk, "use"));
	const char *alg = json_string_value(json_object_get(jwk, "alg"));
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	json_t *kid = json_object_get(jwk, "kid");

	if (!json_is_object(jwk) || kty == NULL) {
		snprintf(why, whylen, "not a JSON object with a string kty");
		return -1;
	}
	if (kid != NULL && (!json_is_string(kid) || json_string_length(kid) > KID_MAX)) {
		snprintf(why, whylen, "kid must be a string of at most %d characters", KID_MAX);
		return -1;
	}
	if (use != NULL && strcmp(use, "sig") != 0)
		return 0;
	if (strcmp(kty, "RSA") == 0) {
		key->alg = ALG_RS256;
		if (alg != NULL && strcmp(alg, "RS256") != 0)
			return 0;
	} else if (strcmp(kty, "EC") == 0 && crv != NULL && strcmp(crv, "P-256") == 0) {
		key->alg = ALG_ES256;
		if (alg != NULL && strcmp(alg, "ES256") != 0)
			return 0;
	} else {
		return 0;
	}
	key->pkey = key->alg == ALG_RS256 ? jwk_rsa(jwk, why, whylen) : jwk_ec(jwk, why, whylen);
	if (key->pkey == NULL)
		return -1;
	key->has_kid = kid != NULL;
	if (kid != NULL)
		snprintf(key->kid, sizeof(key->kid), "%s", json_string_value(kid));
	return 1;
}

int
cmf_oidc_keys_parse(const uint8_t *buf, size_t len, struct cmf_oidc_keys **out, char *why, size_t whylen)
{
	struct cmf_oidc_keys *k = NULL;
	json_error_t jerr;
	json_t *doc = NULL, *keys, *jwk;
	char reason[256];
	size_t i;
	int r = -1;

	*out = NULL;
	if (len > CMF_OIDC_JWKS_MAX) {
		snprintf(why, whylen, "the JWKS is %zu bytes; at most %d are read", len, CMF_OIDC_JWKS_MAX);
		goto out;
	}
	doc = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL) {
		snprintf(why, whylen, "not JSON (line %d: %s)", jerr.line, jerr.text);
		goto out;
	}
	keys = json_object_get(doc, "keys");
	if (!json_is_array(keys)) {
		snprintf(why, whylen, "not a JWKS: expected an object with a \"keys\" array");
		goto out;
	}
	if (json_array_size(keys) > JWKS_KEYS_MAX) {
		snprintf(why, whylen, "%zu keys; at most %d are accepted", json_array_size(keys), JWKS_KEYS_MAX);
		goto out;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	json_array_foreach(keys, i, jwk) {
		struct oidc_key *key = &k->k[k->n];
		int u = jwk_parse(jwk, key, reason, sizeof(reason));
		const char *kid = json_string_value(json_object_get(jwk, "kid"));

		if (u < 0) {
			snprintf(why, whylen, "key %zu%s%s%s: %s", i + 1, kid != NULL ? " (kid " : "", kid != NULL ? kid : "",
				 kid != NULL ? ")" : "", reason);
			goto out;
		}
		if (u == 0)
			continue;
		k->n++;
		for (size_t j = 0; j + 1 < k->n; j++) {
			if (key->has_kid && k->k[j].has_kid && strcmp(k->k[j].kid, key->kid) == 0) {
				snprintf(why, whylen, "two keys have kid %s: a token could not say which it is signed with",
					 key->kid);
				goto out;
			}
		}
	}
	if (k->n == 0) {
		snprintf(why, whylen, "no usable key (RSA of %d+ bits or EC P-256, for signatures, RS256 or ES256)",
			 RSA_BITS_MIN);
		goto out;
	}
	*out = k;
	k = NULL;
	r = 0;
out:
	cmf_oidc_keys_free(k);
	json_decref(doc);
	return r;
}

/* A part of a compact JWS: base64url of a JSON object. Returns the object, or NULL. */
static json_t *
part_json(const char *p, size_t len)
{
	uint8_t *b = NULL;
	size_t n = 0;
	json_t *j;

	if (b64url_decode(p, len, &b, &n) != 0)
		return NULL;
	j = json_loadb((const char *)b, n, JSON_REJECT_DUPLICATES, NULL);
	crypto_freezero(b, n + 1);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* The two dots of a compact JWS: 0 with their offsets, or -1 if there are not exactly two. */
static int
jwt_split(const char *tok, size_t len, size_t *d1, size_t *d2)
{
	const char *a = memchr(tok, '.', len), *b;

	if (a == NULL)
		return -1;
	b = memchr(a + 1, '.', len - (size_t)(a + 1 - tok));
	if (b == NULL || memchr(b + 1, '.', len - (size_t)(b + 1 - tok)) != NULL)
		return -1;
	*d1 = (size_t)(a - tok);
	*d2 = (size_t)(b - tok);
	return 0;
}

bool
cmf_oidc_is_jwt(const char *tok, size_t len)
{
	size_t d1, d2;
	json_t *h;

	if (len > CMF_OIDC_TOKEN_MAX || jwt_split(tok, len, &d1, &d2) != 0)
		return false;
	h = part_json(tok, d1);
	json_decref(h);
	return h != NULL;
}

/* The key for a token's header: by kid, or the only key when the token names none. */
static const struct oidc_key *
key_select(const struct cmf_oidc_keys *keys, const char *kid)
{
	if (kid == NULL)
		return keys->n == 1 ? &keys->k[0] : NULL;
	for (size_t i = 0; i < keys->n; i++)
		if (keys->k[i].has_kid && strcmp(keys->k[i].kid, kid) == 0)
			return &keys->k[i];
	return NULL;
}

/* JOSE's r||s as the DER ECDSA-Sig-Value EVP_DigestVerify expects. *der: OPENSSL_free. Returns its length, or -1. */
static int
es256_der(const uint8_t *sig, size_t len, unsigned char **der)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	int n = -1;

	*der = NULL;
	if (len != 2 * P256_COORD)
		return -1;
	if ((es = ECDSA_SIG_new()) == NULL || (r = BN_bin2bn(sig, P256_COORD, NULL)) == NULL ||
	    (s = BN_bin2bn(sig + P256_COORD, P256_COORD, NULL)) == NULL || ECDSA_SIG_set0(es, r, s) != 1)
		goto out;
	r = s = NULL; /* owned by `es` now */
	n = i2d_ECDSA_SIG(es, der);
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return n;
}

/* CMF_OIDC_OK if `sig` signs `input` under `key`; CMF_OIDC_SIGNATURE if not. */
static int
signature_check(const struct oidc_key *key, const uint8_t *sig, size_t siglen, const char *input, size_t inlen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *der = NULL;
	const unsigned char *s = sig;
	size_t slen = siglen;
	int n, r = CMF_OIDC_SIGNATURE;

	if (md == NULL) {
		r = CMF_OIDC_INTERNAL;
		goto out;
	}
	if (key->alg == ALG_ES256) {
		if ((n = es256_der(sig, siglen, &der)) < 0)
			goto out;
		s = der;
		slen = (size_t)n;
	}
	if (EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, key->pkey, NULL) != 1) {
		crypto_log_openssl(__func__);
		r = CMF_OIDC_INTERNAL;
		goto out;
	}
	if (EVP_DigestVerify(md, s, slen, (const unsigned char *)input, inlen) == 1)
		r = CMF_OIDC_OK;
out:
	ERR_clear_error(); /* a bad signature leaves errors behind: they are the token's, not ours */
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	return r;
}

/* Whether a JSON string is exactly `want` (an escaped NUL inside cannot make a prefix match). */
static bool
str_eq(json_t *j, const char *want)
{
	return json_is_string(j) && json_string_length(j) == strlen(want) && strcmp(json_string_value(j), want) == 0;
}

/* A NumericDate claim: 1 with *v if present and a number, 0 if absent, -1 if of another type. */
static int
numeric_date(json_t *claims, const char *name, double *v)
{
	json_t *j = json_object_get(claims, name);

	if (j == NULL)
		return 0;
	if (!json_is_number(j))
		return -1;
	*v = json_number_value(j);
	return 1;
}

static int
audience_check(json_t *aud, const char *want)
{
	size_t i;
	json_t *a;

	if (json_is_string(aud))
		return str_eq(aud, want) ? CMF_OIDC_OK : CMF_OIDC_AUDIENCE;
	if (!json_is_array(aud))
		return aud == NULL ? CMF_OIDC_AUDIENCE : CMF_OIDC_MALFORMED;
	json_array_foreach(aud, i, a) {
		if (!json_is_string(a))
			return CMF_OIDC_MALFORMED;
		if (str_eq(a, want))
			return CMF_OIDC_OK;
	}
	return CMF_OIDC_AUDIENCE;
}

/* The claims of a token whose signature verified, checked against `pol` at `now`. */
static int
claims_check(json_t *claims, const struct cmf_oidc_policy *pol, time_t now, char *principal, size_t plen,
	     double *until)
{
	const char *iss = pol->issuer;
	json_t *sub = json_object_get(claims, pol->principal_claim);
	double exp = 0, nbf = 0, iat = 0, t = (double)now, skew = (double)pol->skew;
	int r, has_exp, has_nbf, has_iat;

	if (!str_eq(json_object_get(claims, "iss"), pol->issuer))
		return CMF_OIDC_ISSUER;
	if ((r = audience_check(json_object_get(claims, "aud"), pol->audience)) != CMF_OIDC_OK)
		return r;
	has_exp = numeric_date(claims, "exp", &exp);
	has_nbf = numeric_date(claims, "nbf", &nbf);
	has_iat = numeric_date(claims, "iat", &iat);
	if (has_exp != 1 || has_nbf < 0 || has_iat < 0)
		return CMF_OIDC_MALFORMED;
	if (t >= exp + skew)
		return CMF_OIDC_EXPIRED;
	if ((has_nbf && t + skew < nbf) || (has_iat && iat > t + skew))
		return CMF_OIDC_NOT_YET_VALID;
	if (!json_is_string(sub) || json_string_length(sub) == 0 ||
	    strlen(json_string_value(sub)) != json_string_length(sub))
		return CMF_OIDC_MALFORMED;
	for (const char *c = json_string_value(sub); *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return CMF_OIDC_MALFORMED;
	if ((size_t)snprintf(principal, plen, "oidc:%s#%s", iss, json_string_value(sub)) >= plen)
		return CMF_OIDC_MALFORMED;
	*until = exp + skew;
	return CMF_OIDC_OK;
}

/* cmf_oidc_verify, also giving the time until which the verdict holds (exp + skew) on CMF_OIDC_OK. */
static int
verify(const struct cmf_oidc_keys *keys, const struct cmf_oidc_policy *pol, const char *tok, size_t len, time_t now,
       char *principal, size_t plen, double *until)
{
	json_t *header = NULL, *claims = NULL, *kid;
	const struct oidc_key *key;
	const char *alg;
	uint8_t *sig = NULL;
	size_t d1, d2, siglen = 0;
	int r = CMF_OIDC_MALFORMED;

	if (plen > 0)
		principal[0] = '\0';
	if (len > CMF_OIDC_TOKEN_MAX || jwt_split(tok, len, &d1, &d2) != 0 || (header = part_json(tok, d1)) == NULL)
		goto out;
	/* Extensions we do not understand must not be ignored (RFC 7515 §4.1.11). */
	if (json_object_get(header, "crit") != NULL)
		goto out;
	alg = json_string_value(json_object_get(header, "alg"));
	kid = json_object_get(header, "kid");
	if (alg == NULL || (kid != NULL && !json_is_string(kid)))
		goto out;
	/* Only asymmetric algorithms: "none" and HS* (the public key as an HMAC secret) never verify. */
	if (strcmp(alg, "RS256") != 0 && strcmp(alg, "ES256") != 0) {
		r = CMF_OIDC_ALG;
		goto out;
	}
	if (d2 - d1 - 1 == 0 || len - d2 - 1 == 0 || b64url_decode(tok + d2 + 1, len - d2 - 1, &sig, &siglen) != 0)
		goto out;
	if ((key = key_select(keys, json_string_value(kid))) == NULL) {
		r = CMF_OIDC_KID;
		goto out;
	}
	if ((key->alg == ALG_RS256) != (strcmp(alg, "RS256") == 0)) {
		r = CMF_OIDC_ALG;
		goto out;
	}
	if ((r = signature_check(key, sig, siglen, tok, d2)) != CMF_OIDC_OK)
		goto out;
	/* Claims are parsed only once their signer is known. */
	if ((claims = part_json(tok + d1 + 1, d2 - d1 - 1)) == NULL) {
		r = CMF_OIDC_MALFORMED;
		goto out;
	}
	r = claims_check(claims, pol, now, principal, plen, until);
out:
	if (r != CMF_OIDC_OK && plen > 0)
		principal[0] = '\0';
	crypto_freezero(sig, sig != NULL ? siglen + 1 : 0);
	json_decref(header);
	json_decref(claims);
	return r;
}

int
cmf_oidc_verify(const struct cmf_oidc_keys *keys, const struct cmf_oidc_policy *pol, const char *tok, size_t len,
		time_t now, char *principal, size_t plen)
{
	double until;

	return verify(keys, pol, tok, len, now, principal, plen, &until);
}

/* The process's state: keys swapped under the write lock, read (verifications) under the read lock. */
static pthread_rwlock_t keys_lock = PTHREAD_RWLOCK_INITIALIZER;
/*
 * Taken around every acquisition of keys_lock, so a writer waiting for it holds new readers back: a stream
 * of tokens (each verified under the read lock, refusals included) must not keep a JWKS update, and with it
 * the key-watch thread, waiting for ever (glibc's rwlock prefers readers).
 */
static pthread_mutex_t keys_gate = PTHREAD_MUTEX_INITIALIZER;
static struct cmf_oidc_keys *keys_current;
/* Bumped with every swap of the keys: a verdict reached under other keys no longer counts. */
static uint64_t keys_gen;

/*
 * Verified tokens by the SHA-256 of their text, so that a client sending one token many times pays one
 * RSA/ECDSA verification, not one per request. Direct-mapped on the hash's first byte (a collision
 * evicts): 256 slots bound the memory to ~150 KiB. An entry holds until the token's exp + skew and only
 * under the keys it was verified with; refusals are never kept (a bad token costs its parse each time).
 */
#define VERIFIED_SLOTS 256
/* The longest principal kept: struct cmf_principal's name holds 300 bytes. */
#define VERIFIED_PRINCIPAL_MAX 512

struct verified {
	bool used;
	uint8_t hash[32];
	uint64_t gen;
	double until;
	char principal[VERIFIED_PRINCIPAL_MAX];
};

static pthread_mutex_t verified_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct verified verified[VERIFIED_SLOTS];

/* A verdict for `hash` under keys `gen` still good at `now`: 1 with `principal` filled, else 0. */
static int
verified_lookup(const uint8_t hash[32], uint64_t gen, double now, char *principal, size_t plen, double *until)
{
	struct verified *v = &verified[hash[0]];
	int hit;

	pthread_mutex_lock(&verified_mutex);
	hit = v->used && v->gen == gen && now < v->until && CRYPTO_memcmp(v->hash, hash, 32) == 0 &&
	      strlen(v->principal) < plen;
	if (hit) {
		memcpy(principal, v->principal, strlen(v->principal) + 1);
		*until = v->until;
	}
	pthread_mutex_unlock(&verified_mutex);
	return hit;
}

static void
verified_store(const uint8_t hash[32], uint64_t gen, double until, const char *principal)
{
	struct verified *v = &verified[hash[0]];

	if (strlen(principal) >= sizeof(v->principal))
		return;
	pthread_mutex_lock(&verified_mutex);
	v->used = true;
	memcpy(v->hash, hash, 32);
	v->gen = gen;
	v->until = until;
	snprintf(v->principal, sizeof(v->principal), "%s", principal);
	pthread_mutex_unlock(&verified_mutex);
}
static bool oidc_on;
static struct cmf_oidc_policy policy;

bool
cmf_oidc_enabled(void)
{
	return oidc_on;
}

/* {"keys": []}: a well-formed JWKS without any key. */
static bool
jwks_empty(const uint8_t *buf, size_t len)
{
	json_t *doc = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
	bool empty = json_is_array(json_object_get(doc, "keys")) && json_array_size(json_object_get(doc, "keys")) == 0;

	json_decref(doc);
	return empty;
}

int
cmf_oidc_jwks_update(const uint8_t *buf, size_t len, char *why, size_t whylen)
{
	struct cmf_oidc_keys *k = NULL, *old;
	int r = 0;

	if (cmf_oidc_keys_parse(buf, len, &k, why, whylen) != 0) {
		/*
		 * A JWKS emptied on purpose ({"keys": []}) while serving is the operator revoking every key: it is
		 * obeyed (every JWT refused) rather than kept at the keys read before. At start it is refused.
		 */
		if (!oidc_on || !jwks_empty(buf, len) || (k = calloc(1, sizeof(*k))) == NULL)
			return -1;
		snprintf(why, whylen, "the JWKS holds no key: every JWT is refused until keys are published again");
		r = 1;
	}
	pthread_mutex_lock(&keys_gate);
	pthread_rwlock_wrlock(&keys_lock);
	pthread_mutex_unlock(&keys_gate);
	old = keys_current;
	keys_current = k;
	keys_gen++;
	pthread_rwlock_unlock(&keys_lock);
	cmf_oidc_keys_free(old);
	return r;
}

int
cmf_oidc_init(const struct cmf_config *cfg, char *why, size_t whylen)
{
	char reason[512];
	uint8_t *buf = NULL;
	size_t len = 0;
	int loose = 0, r = -1;

	cmf_oidc_shutdown();
	oidc_on = false;
	if (!cfg->auth_enabled || !cfg->auth_oauth_enabled)
		return 0;
	if (k8s_secret_read_file(cfg->auth_oauth_jwks_file, CMF_OIDC_JWKS_MAX, &buf, &len, &loose, reason,
				 sizeof(reason)) != K8S_OK) {
		snprintf(why, whylen, "cannot read the JWKS (auth.oauth.jwksFile): %s", reason);
		goto out;
	}
	if (cmf_oidc_jwks_update(buf, len, reason, sizeof(reason)) != 0) {
		snprintf(why, whylen, "the JWKS in %s (auth.oauth.jwksFile) is not usable: %s", cfg->auth_oauth_jwks_file,
			 reason);
		goto out;
	}
	policy.issuer = cfg->auth_oauth_issuer;
	policy.audience = cfg->auth_oauth_audience;
	policy.principal_claim = cfg->auth_oauth_principal_claim;
	policy.skew = cfg->auth_oauth_clock_skew_seconds;
	oidc_on = true;
	cmf_info("OIDC bearer tokens accepted from issuer %s for audience %s (%zu keys from %s)", policy.issuer,
		 policy.audience, cmf_oidc_keys_count(keys_current), cfg->auth_oauth_jwks_file);
	r = 0;
out:
	crypto_freezero(buf, len);
	return r;
}

int
cmf_oidc_authenticate(const char *tok, size_t len, char *principal, size_t plen, double *expires_at)
{
	uint8_t hash[32];
	double until = 0;
	time_t now = time(NULL);
	int r;

	if (len > CMF_OIDC_TOKEN_MAX)
		return CMF_OIDC_MALFORMED;
	if (crypto_sha256(tok, len, hash) != CRYPTO_OK)
		return CMF_OIDC_INTERNAL;
	pthread_mutex_lock(&keys_gate);
	pthread_rwlock_rdlock(&keys_lock);
	pthread_mutex_unlock(&keys_gate);
	if (keys_current == NULL) {
		r = CMF_OIDC_KID;
	} else if (verified_lookup(hash, keys_gen, (double)now, principal, plen, &until)) {
		r = CMF_OIDC_OK;
	} else {
		r = verify(keys_current, &policy, tok, len, now, principal, plen, &until);
		if (r == CMF_OIDC_OK)
			verified_store(hash, keys_gen, until, principal);
	}
	pthread_rwlock_unlock(&keys_lock);
	if (expires_at != NULL)
		*expires_at = r == CMF_OIDC_OK ? until : 0;
	return r;
}

void
cmf_oidc_shutdown(void)
{
	pthread_mutex_lock(&keys_gate);
	pthread_rwlock_wrlock(&keys_lock);
	pthread_mutex_unlock(&keys_gate);
	cmf_oidc_keys_free(keys_current);
	keys_current = NULL;
	keys_gen++;
	pthread_rwlock_unlock(&keys_lock);
	pthread_mutex_lock(&verified_mutex);
	memset(verified, 0, sizeof(verified));
	pthread_mutex_unlock(&verified_mutex);
}
