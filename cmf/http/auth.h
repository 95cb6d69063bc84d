/* cmf auth: bearer tokens — the bootstrap admin token from a file, and API tokens stored as hashes. */
#ifndef CMF_AUTH_H
#define CMF_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmf/config.h"
#include "cmf/http/request.h"

/* "cmf_" + 16 hex (id) + "_" + 43 base64url (256-bit secret) = 64 characters, plus NUL. */
#define CMF_TOKEN_SIZE 65
#define CMF_TOKEN_ID_SIZE 17

/*
 * Read the bootstrap admin token (cfg->auth_admin_token_file, trailing whitespace stripped) and keep
 * only its SHA-256; the file content is wiped. It must be at least 43 characters (256 bits as
 * base64). With auth.mtls.principal, compile the mapping rules (kept for the process's life; a second
 * call replaces them); with auth.oauth.enabled, load the JWKS (cmf_oidc_init). No-op when authentication
 * is disabled. Returns 0, or -1 with `why` naming the problem.
 */
int cmf_auth_init(const struct cmf_config *cfg, char *why, size_t whylen);

/*
 * The bootstrap token's file changed (the kubelet swapped the Secret): take `buf` (its new content,
 * `len` bytes, borrowed; the caller wipes it) as the bootstrap token. Content that is not a valid token
 * disables the bootstrap token until a valid one comes (-1, `why` says what is wrong).
 */
int cmf_auth_admin_token_update(const char *path, uint8_t *buf, size_t len, char *why, size_t whylen);

/* Refuse the bootstrap token (its file is gone or unreadable) until an update brings a valid one. */
void cmf_auth_admin_token_disable(void);

/* Authentication results. */
enum {
	CMF_AUTH_OK = 0,
	CMF_AUTH_MISSING = -1,     /* no Authorization header, or not "Bearer <token>" */
	CMF_AUTH_BAD = -2,         /* unknown or wrong token */
	CMF_AUTH_EXPIRED = -3,
	CMF_AUTH_REVOKED = -4,
	CMF_AUTH_UNAVAILABLE = -5, /* the database could not be asked */
	CMF_AUTH_AMBIGUOUS = -6,   /* more than one Authorization header */
	CMF_AUTH_UNMAPPED = -7,    /* no token, and the client certificate's subject maps to no principal */
	/* A bearer JWT refused (auth.oauth): CMF_AUTH_OIDC_MALFORMED - 1 - n is cmf_oidc's -1 - n (cmf/http/oidc.h). */
	CMF_AUTH_OIDC_MALFORMED = -8,
	CMF_AUTH_OIDC_ALG = -9,
	CMF_AUTH_OIDC_KID = -10,
	CMF_AUTH_OIDC_SIGNATURE = -11,
	CMF_AUTH_OIDC_ISSUER = -12,
	CMF_AUTH_OIDC_AUDIENCE = -13,
	CMF_AUTH_OIDC_EXPIRED = -14,
	CMF_AUTH_OIDC_NOT_YET_VALID = -15,
};

/*
 * Authenticate `req` from its Authorization header into req->principal (environments owned by the
 * principal; free with cmf_principal_clear). Token copies are wiped; nothing is logged but the
 * outcome. With authentication disabled, every request is the principal "anonymous" with the admin role.
 *
 * With auth.mtls.principal, a request with no Authorization header and a verified client certificate
 * (req->client_cert_verified) is the principal "cert:<name>", <name> being its subject DN mapped by
 * auth.mtls.principalMappingRules: CMF_AUTH_UNMAPPED when no rule maps it; CMF_AUTH_OK otherwise, with the
 * role of its binding (cmf_cache_binding), or CMF_ROLE_NONE when it has none (the router refuses it, 403).
 * A bearer token, when sent, wins: the certificate is then only the transport's identity.
 *
 * With auth.oauth.enabled, a bearer credential that is a JWT (cmf_oidc_is_jwt) and not the bootstrap
 * token is verified by cmf/http/oidc.c: refused with a CMF_AUTH_OIDC_* reason, or the principal
 * "oidc:<issuer>#<claim>" with the role of its binding (CMF_ROLE_NONE without one), as a certificate's.
 * Anything else (and every JWT when auth.oauth is off) goes to cmf's own tokens.
 */
int cmf_auth_authenticate(struct cmf_request *req);


/* Whether authentication is enabled (set by cmf_auth_init). */
bool cmf_auth_enabled(void);

/*
 * A new API token: `value` (the only copy that ever leaves the process: shown once), its public `id`
 * and the SHA-256 of its secret part, which is what gets stored. Returns 0, or -1 if RAND_bytes fails.
 */
int cmf_auth_token_new(char value[CMF_TOKEN_SIZE], char id[CMF_TOKEN_ID_SIZE], uint8_t hash[32]);

#endif
