/* cmf router: a path matches a route segment by segment ("*" captures one); permissions decided here. */
#include <string.h>

#include "cmf/http/auth.h"
#include "cmf/http/router.h"

static const char *const perm_names[] = {
	[CMF_PERM_PUBLIC] = "public",
	[CMF_PERM_ADMIN] = "admin",
	[CMF_PERM_ENV_READ] = "environment-reader",
	[CMF_PERM_METRICS] = "metrics-reader",
};

size_t
cmf_router_pattern(const struct cmf_route *rt, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t j = 0; rt->segs[j] != NULL; j++) {
		/* Once cut, each later snprintf only rewrites the final NUL, but still counts its length. */
		size_t at = n < len ? n : len - 1;

		n += (size_t)snprintf(buf + at, len - at, "/%s", rt->segs[j]);
	}
	return n > 0 ? n : (size_t)snprintf(buf, len, "/");
}

void
cmf_router_print_line(FILE *f, const struct cmf_route *route, const char *query)
{
	char pattern[CMF_ROUTE_PATTERN_MAX];

	cmf_router_pattern(route, pattern, sizeof(pattern));
	fprintf(f, "%s %s %s%s%s%s%s\n", route->method, pattern, perm_names[route->perm],
		route->audit_action != NULL ? " audit=" : "", route->audit_action != NULL ? route->audit_action : "",
		query != NULL ? " query=" : "", query != NULL ? query : "");
}

void
cmf_router_print(FILE *f, const struct cmf_route *routes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cmf_router_print_line(f, &routes[i], NULL);
}

/* 1 when `req`'s path matches `rt`'s pattern, filling args with the "*" segments. */
static int
path_matches(const struct cmf_route *rt, const struct cmf_request *req, const char **args)
{
	size_t i, nargs = 0;

	for (i = 0; rt->segs[i] != NULL; i++) {
		if (i >= req->nsegs)
			return 0;
		if (strcmp(rt->segs[i], "*") == 0) {
			if (req->segs[i][0] == '\0' || nargs >= CMF_ROUTE_MAX_ARGS)
				return 0;
			args[nargs++] = req->segs[i];
		} else if (strcmp(rt->segs[i], req->segs[i]) != 0) {
			return 0;
		}
	}
	args[nargs] = NULL;
	return i == req->nsegs;
}

int
cmf_router_match(const struct cmf_route *routes, size_t n, const struct cmf_request *req,
		 const struct cmf_route **route, const char **args, char *allow)
{
	int path_known = 0;

	*route = NULL;
	allow[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (!path_matches(&routes[i], req, args))
			continue;
		if (strcmp(routes[i].method, req->method) == 0) {
			*route = &routes[i];
			return CMF_ROUTE_FOUND;
		}
		path_known = 1;
		if (strstr(allow, routes[i].method) == NULL) {
			if (allow[0] != '\0')
				strncat(allow, ", ", CMF_ROUTE_ALLOW_MAX - strlen(allow) - 1);
			strncat(allow, routes[i].method, CMF_ROUTE_ALLOW_MAX - strlen(allow) - 1);
		}
	}
	args[0] = NULL;
	return path_known ? CMF_ROUTE_NO_METHOD : CMF_ROUTE_NO_PATH;
}

int
cmf_router_authorize(const struct cmf_route *rt, int auth_result, bool auth_enabled, const struct cmf_principal *p,
		     const char *const *args, unsigned *status, const char **message, const char **action)
{
	*status = 0;
	*message = NULL;
	*action = "authenticate";
	if (rt->perm == CMF_PERM_PUBLIC)
		return 0;
	switch (auth_result) {
	case CMF_AUTH_OK:
		break;
	case CMF_AUTH_MISSING:
		*message = "authentication required: send Authorization: Bearer <token>";
		break;
	case CMF_AUTH_EXPIRED:
		*message = "the token has expired";
		break;
	case CMF_AUTH_REVOKED:
		*message = "the token has been revoked";
		break;
	case CMF_AUTH_UNAVAILABLE:
		*status = 503;
		*message = "database unavailable";
		*action = NULL;
		return -1;
	case CMF_AUTH_AMBIGUOUS:
		*status = 400;
		*message = "send exactly one Authorization header";
		return -1;
	case CMF_AUTH_UNMAPPED:
		/* The action says why in the audit trail (the event also records the certificate's subject). */
		*message = "the client certificate's subject maps to no principal (auth.mtls.principalMappingRules); "
			   "send Authorization: Bearer <token>";
		*action = "authenticate.unmapped-certificate";
		break;
	case CMF_AUTH_OIDC_MALFORMED:
	case CMF_AUTH_OIDC_ALG:
	case CMF_AUTH_OIDC_KID:
	case CMF_AUTH_OIDC_SIGNATURE:
	case CMF_AUTH_OIDC_ISSUER:
	case CMF_AUTH_OIDC_AUDIENCE:
	case CMF_AUTH_OIDC_EXPIRED:
	case CMF_AUTH_OIDC_NOT_YET_VALID: {
		/* The reason is the audit action (cmf_oidc_strerror's names); the client learns it too, the token never. */
		static const char *const why[][2] = {
			{ "authenticate.oidc-malformed", "invalid token: not a well-formed JWT with exp and the principal claim" },
			{ "authenticate.oidc-alg-not-allowed", "invalid token: the JWT's alg is not RS256 or ES256 for its key" },
			{ "authenticate.oidc-unknown-kid", "invalid token: no key in the JWKS for the JWT's kid" },
			{ "authenticate.oidc-bad-signature", "invalid token: the JWT's signature does not verify" },
			{ "authenticate.oidc-wrong-issuer", "invalid token: the JWT's issuer is not auth.oauth.issuer" },
			{ "authenticate.oidc-wrong-audience", "invalid token: the JWT's audience is not auth.oauth.audience" },
			{ "authenticate.oidc-expired", "the token has expired" },
			{ "authenticate.oidc-not-yet-valid", "the token is not yet valid (nbf or iat)" },
		};
		size_t i = (size_t)(CMF_AUTH_OIDC_MALFORMED - auth_result);

		*action = why[i][0];
		*message = why[i][1];
		break;
	}
	default:
		*message = "invalid token";
		break;
	}
	if (*message != NULL) {
		*status = 401;
		return -1;
	}
	*action = "authorize";
	*status = 403;
	if (p->role == CMF_ROLE_NONE) {
		/* Only a certificate or OIDC principal is authenticated without a role: it has no binding. */
		*message = "this principal has no role binding: an admin can create one at /cmf/api/v1/role-bindings";
		*action = "authorize.no-role-binding";
		return -1;
	}
	if (rt->perm == CMF_PERM_ENV_READ && !auth_enabled) {
		/* Decrypted secrets leave only to an authenticated caller: never with authentication off. */
		*message = "authentication is disabled (auth.enabled=false): decrypted secrets are never served without it";
		return -1;
	}
	if (rt->perm == CMF_PERM_ADMIN && p->role != CMF_ROLE_ADMIN) {
		*message = "this token's role may not do this";
		return -1;
	}
	if (rt->perm == CMF_PERM_METRICS && p->role != CMF_ROLE_ADMIN && p->role != CMF_ROLE_METRICS_READER) {
		*message = "this token's role may not do this";
		return -1;
	}
	if (rt->perm == CMF_PERM_ENV_READ && !cmf_principal_env_allowed(p, args[0])) {
		*message = "this token may not read this environment";
		return -1;
	}
	*status = 0;
	*action = NULL;
	return 0;
}
