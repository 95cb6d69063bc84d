// links: cmf/http/oidc.c cmf/log.c cmf/text.c crypto/*.c k8s/*.c
/*
 * libFuzzer harness for cmf/http/oidc.c. The first byte chooses: 't' verifies the rest as a bearer JWT
 * against a fixed P-256 key (kid f1; the corpus holds tokens it signed), anything else parses the rest
 * as a JWKS. Checked: a verdict is one of the reasons, a refusal names no principal, a success names
 * "oidc:<issuer>#..." and only for what cmf_oidc_is_jwt calls a JWT; a JWKS is a set of 1..64 keys or a
 * refusal that says why.
 */
#include <string.h>

#include "cmf/http/oidc.h"
#include "cmf/log.h"
#include "tests/fuzz/fuzz.h"

static const char JWKS[] = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"f1\","
			   "\"x\":\"6ALLUhDwK4l-wdTJQntvf7cNMr4SiiCC2MgpAC8dJX0\","
			   "\"y\":\"tQkEu6q306dbGLn2MirfsOrFf_v-zv_KjGTYAggUmTA\"}]}";
static const struct cmf_oidc_policy POL = { "https://idp.example", "cmf", "sub", 60 };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cmf_oidc_keys *fixed;
	struct cmf_oidc_keys *k = (struct cmf_oidc_keys *)1;
	char why[512], principal[300];
	int r;

	cmf_log_set_level(CMF_LOG_ERROR);
	if (fixed == NULL)
		CHECK(cmf_oidc_keys_parse((const uint8_t *)JWKS, sizeof(JWKS) - 1, &fixed, why, sizeof(why)) == 0);
	if (size > 0 && data[0] == 't') {
		const char *tok = (const char *)data + 1;

		memset(principal, 0xa5, sizeof(principal));
		r = cmf_oidc_verify(fixed, &POL, tok, size - 1, 1500, principal, sizeof(principal));
		CHECK(r <= CMF_OIDC_OK && r >= CMF_OIDC_NOT_YET_VALID);
		if (r == CMF_OIDC_OK) {
			CHECK(cmf_oidc_is_jwt(tok, size - 1));
			CHECK(strncmp(principal, "oidc:https://idp.example#", 25) == 0 && strlen(principal) > 25);
		} else {
			CHECK(principal[0] == '\0');
		}
		if (!cmf_oidc_is_jwt(tok, size - 1))
			CHECK(r == CMF_OIDC_MALFORMED);
		return 0;
	}
	why[0] = '\0';
	r = cmf_oidc_keys_parse(size > 0 ? data + 1 : data, size > 0 ? size - 1 : 0, &k, why, sizeof(why));
	if (r == 0) {
		CHECK(k != NULL && cmf_oidc_keys_count(k) >= 1 && cmf_oidc_keys_count(k) <= 64);
		cmf_oidc_keys_free(k);
	} else {
		CHECK(r == -1 && k == NULL && why[0] != '\0' && memchr(why, '\0', sizeof(why)) != NULL);
	}
	return 0;
}
