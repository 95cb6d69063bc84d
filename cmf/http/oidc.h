/* cmf OIDC: bearer JWTs (RS256, ES256) verified against a mounted JWKS, and the principal they name. */
#ifndef CMF_OIDC_H
#define CMF_OIDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cmf/config.h"

/* A bearer JWT is refused above this many bytes before anything is decoded (an ID token is ~1 KiB). */
#define CMF_OIDC_TOKEN_MAX 8192
/* A JWKS file above this is refused: a provider publishes a handful of keys, a few KiB. */
#define CMF_OIDC_JWKS_MAX (256 * 1024)

/*
 * Verification results: 0, or why the token is refused. Every refusal is a 401; the reason goes to the
 * audit trail (cmf_oidc_strerror), never the token.
 */
enum {
	CMF_OIDC_OK = 0,
	CMF_OIDC_MALFORMED = -1,     /* not a JWS compact serialization of JSON; no exp or principal; a claim's type */
	CMF_OIDC_ALG = -2,           /* alg not RS256/ES256, or not the selected key's */
	CMF_OIDC_KID = -3,           /* no key with this kid (or no kid and not exactly one key) */
	CMF_OIDC_SIGNATURE = -4,     /* the signature does not verify */
	CMF_OIDC_ISSUER = -5,        /* iss is not auth.oauth.issuer */
	CMF_OIDC_AUDIENCE = -6,      /* aud does not contain auth.oauth.audience */
	CMF_OIDC_EXPIRED = -7,       /* at or past exp + skew */
	CMF_OIDC_NOT_YET_VALID = -8, /* before nbf - skew, or iat later than now + skew */
	CMF_OIDC_INTERNAL = -9,      /* out of memory or a library failure (logged) */
};

/* The reason's audit name: "malformed", "bad-signature", "alg-not-allowed", ... Never NULL. */
const char *cmf_oidc_strerror(int r);

/* A parsed JWKS: immutable once made, so it may be shared by threads. */
struct cmf_oidc_keys;

/*
 * Parse a JWKS document (`buf`, `len` bytes, borrowed): {"keys":[...]}. Usable keys are kty RSA (n, e; at
 * least 2048 bits) and kty EC with crv P-256 (x, y on the curve), whose `use` (if present) is "sig" and
 * whose `alg` (if present) is RS256 resp. ES256; other keys are skipped. A supported key that cannot be
 * built, two keys with one kid, or no usable key at all refuse the whole document. Returns 0 with *out
 * (free with cmf_oidc_keys_free), or -1 with `why` naming the problem (never key bytes) and *out NULL.
 */
int cmf_oidc_keys_parse(const uint8_t *buf, size_t len, struct cmf_oidc_keys **out, char *why, size_t whylen);

void cmf_oidc_keys_free(struct cmf_oidc_keys *k);

/* Usable keys in `k`. */
size_t cmf_oidc_keys_count(const struct cmf_oidc_keys *k);

/* What a token must say besides its signature (strings borrowed for the call). */
struct cmf_oidc_policy {
	const char *issuer;          /* iss must be exactly this */
	const char *audience;        /* aud (a string or an array of strings) must contain this */
	const char *principal_claim; /* a non-empty string claim naming the subject */
	long skew;                   /* seconds allowed on exp, nbf and iat */
};

/*
 * Whether a bearer credential is a JWT (and goes to cmf_oidc_verify rather than cmf's token table): two
 * dots, and the part before the first is base64url of a JSON object. No signature is checked here.
 */
bool cmf_oidc_is_jwt(const char *tok, size_t len);

/*
 * Verify the JWT `tok` (`len` bytes, borrowed, not NUL-terminated) at time `now` against `keys` and
 * `pol`. On CMF_OIDC_OK `principal` (size plen) holds "oidc:<iss>#<claim>"; a principal that does not
 * fit is CMF_OIDC_MALFORMED. Otherwise a negative CMF_OIDC_* and `principal` is empty. Decoded copies of
 * the token are wiped; nothing is logged but library failures.
 */
int cmf_oidc_verify(const struct cmf_oidc_keys *keys, const struct cmf_oidc_policy *pol, const char *tok, size_t len,
		    time_t now, char *principal, size_t plen);

/*
 * The process's OIDC state, from auth.oauth.*: with auth.oauth.enabled, read and parse the JWKS file
 * (k8s_secret_read_file's checks); `cfg` must outlive the process's use of it. No-op when disabled.
 * Returns 0, or -1 with `why` (the JWKS file cannot be read or holds no usable key).
 */
int cmf_oidc_init(const struct cmf_config *cfg, char *why, size_t whylen);

/* Whether bearer JWTs are accepted (auth.oauth.enabled, after cmf_oidc_init). */
bool cmf_oidc_enabled(void);

/*
 * The JWKS file changed: parse `buf` (borrowed) and, if it is good, use it from the next request on.
 * A bad document keeps the keys in use: -1 with `why`. Returns 0 on a swap; 1 (with `why`) when, while
 * serving, the document is a JWKS emptied on purpose ({"keys": []}): no key is in use any more.
 */
int cmf_oidc_jwks_update(const uint8_t *buf, size_t len, char *why, size_t whylen);

/*
 * cmf_oidc_verify with the process's keys and policy, at the current time. A verdict of CMF_OIDC_OK is
 * kept (by the token's SHA-256, in a bounded table) until the token's exp + skew or the next change of
 * keys, so a client repeating a token is not verified again; refusals are not kept. On CMF_OIDC_OK,
 * *expires_at (may be NULL) receives when the token stops being accepted (exp + skew, Unix seconds), so a
 * held watch ends then; 0 otherwise.
 */
int cmf_oidc_authenticate(const char *tok, size_t len, char *principal, size_t plen, double *expires_at);

/* Free the process's keys and forget the verdicts kept (at exit, for leak checkers). */
void cmf_oidc_shutdown(void);

#endif
