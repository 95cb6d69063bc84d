// links: cmf/log.c cmf/text.c crypto/*.c k8s/*.c
/*
 * Tests for cmf/http/oidc.c: base64url through OpenSSL's decoder, the JWKS parser (RSA and P-256 keys
 * built with EVP_PKEY_fromdata, what is skipped and what refuses the document), and every way a JWT is
 * refused — alg confusion (none, HS256, an RSA alg on an EC key), kid selection, signatures (ES256's
 * r||s), iss, aud, exp/nbf/iat at the skew's edges, the principal claim — against keys made here.
 */
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "tests/unit/check_main.h"
#include "cmf/http/oidc.c"

/* A fixed clock: tokens are made valid from 1000 to 2000. */
#define NOW 1500

static EVP_PKEY *rsa_key, *rsa_other, *ec_key;

static void
b64u(const uint8_t *in, size_t len, char *out, size_t outlen)
{
	unsigned char *t = malloc(4 * ((len + 2) / 3) + 1);
	int n = EVP_EncodeBlock(t, in, (int)len);
	size_t j = 0;

	for (int i = 0; i < n && t[i] != '='; i++)
		out[j++] = t[i] == '+' ? '-' : t[i] == '/' ? '_' : (char)t[i];
	ck_assert_uint_lt(j, outlen);
	out[j] = '\0';
	free(t);
}

static void
bn_b64u(EVP_PKEY *k, const char *param, int pad, char *out, size_t outlen)
{
	BIGNUM *bn = NULL;
	uint8_t buf[1024];
	int n;

	ck_assert_int_eq(EVP_PKEY_get_bn_param(k, param, &bn), 1);
	n = pad > 0 ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	ck_assert_int_gt(n, 0);
	b64u(buf, (size_t)n, out, outlen);
	BN_free(bn);
}

/* A JWK of `k` as JSON text (`extra`: more members, e.g. ",\"alg\":\"RS256\"", or ""). */
static void
jwk(EVP_PKEY *k, const char *kid, const char *extra, char *out, size_t outlen)
{
	char a[1024], b[1024], kidm[300] = "";

	if (kid != NULL)
		snprintf(kidm, sizeof(kidm), ",\"kid\":\"%s\"", kid);
	if (EVP_PKEY_is_a(k, "RSA")) {
		bn_b64u(k, OSSL_PKEY_PARAM_RSA_N, 0, a, sizeof(a));
		bn_b64u(k, OSSL_PKEY_PARAM_RSA_E, 0, b, sizeof(b));
		snprintf(out, outlen, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s%s}", a, b, kidm, extra);
	} else {
		bn_b64u(k, OSSL_PKEY_PARAM_EC_PUB_X, 32, a, sizeof(a));
		bn_b64u(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32, b, sizeof(b));
		snprintf(out, outlen, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"%s%s}", a, b, kidm, extra);
	}
}

static struct cmf_oidc_keys *
keys_ok(const char *doc)
{
	struct cmf_oidc_keys *k = NULL;
	char why[512] = "";

	ck_assert_msg(cmf_oidc_keys_parse((const uint8_t *)doc, strlen(doc), &k, why, sizeof(why)) == 0, "%s", why);
	ck_assert_ptr_nonnull(k);
	return k;
}

static void
keys_bad(const char *doc, const char *why_has)
{
	struct cmf_oidc_keys *k = (void *)1;
	char why[512] = "";

	ck_assert_int_eq(cmf_oidc_keys_parse((const uint8_t *)doc, strlen(doc), &k, why, sizeof(why)), -1);
	ck_assert_ptr_null(k);
	ck_assert_msg(strstr(why, why_has) != NULL, "why '%s' lacks '%s'", why, why_has);
}

/* The usual set: RSA "r1" and EC "e1". */
static struct cmf_oidc_keys *
keys_std(void)
{
	static char doc[8192];
	char a[4096], b[1024];

	jwk(rsa_key, "r1", ",\"use\":\"sig\",\"alg\":\"RS256\"", a, sizeof(a));
	jwk(ec_key, "e1", "", b, sizeof(b));
	snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", a, b);
	return keys_ok(doc);
}

/*
 * A compact JWS of `header` and `payload` (JSON texts) signed by `k` (RS256 or ES256 by its type), or
 * with `sig` (base64url) as the signature when k is NULL. Returns a static buffer.
 */
static const char *
token(EVP_PKEY *k, const char *header, const char *payload, const char *sig)
{
	static char out[16384];
	uint8_t s[1024];
	size_t slen = sizeof(s);
	char h[4096], p[8192], sb[2048];
	EVP_MD_CTX *md;

	b64u((const uint8_t *)header, strlen(header), h, sizeof(h));
	b64u((const uint8_t *)payload, strlen(payload), p, sizeof(p));
	snprintf(out, sizeof(out), "%s.%s", h, p);
	if (k == NULL) {
		snprintf(out + strlen(out), sizeof(out) - strlen(out), ".%s", sig);
		return out;
	}
	md = EVP_MD_CTX_new();
	ck_assert_int_eq(EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, k, NULL), 1);
	ck_assert_int_eq(EVP_DigestSign(md, s, &slen, (const uint8_t *)out, strlen(out)), 1);
	EVP_MD_CTX_free(md);
	if (EVP_PKEY_is_a(k, "EC")) {
		const uint8_t *d = s;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &d, (long)slen);
		uint8_t rs[64];

		ck_assert_ptr_nonnull(es);
		BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
		ECDSA_SIG_free(es);
		memcpy(s, rs, 64);
		slen = 64;
	}
	b64u(s, slen, sb, sizeof(sb));
	snprintf(out + strlen(out), sizeof(out) - strlen(out), ".%s", sb);
	return out;
}

static const struct cmf_oidc_policy POL = { "https://idp.example", "cmf", "sub", 60 };
#define GOOD_CLAIMS "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"alice\",\"iat\":1000,\"exp\":2000}"
#define RS_HDR "{\"alg\":\"RS256\",\"kid\":\"r1\"}"
#define ES_HDR "{\"alg\":\"ES256\",\"kid\":\"e1\"}"

static int
verify_at(const struct cmf_oidc_keys *k, const char *tok, time_t now, char *principal)
{
	char p[300];

	return cmf_oidc_verify(k, &POL, tok, strlen(tok), now, principal != NULL ? principal : p, 300);
}

static void
setup(void)
{
	rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	rsa_other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ck_assert(rsa_key != NULL && rsa_other != NULL && ec_key != NULL);
}

static void
teardown(void)
{
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(rsa_other);
	EVP_PKEY_free(ec_key);
}

START_TEST(test_b64url)
{
	static const struct {
		const char *in;
		int ok;
		size_t len;
		const char *bytes;
	} cases[] = {
		{ "", 0, 0, "" },	     { "A", 0, 0, "" },	     { "QQ", 1, 1, "A" },     { "QUI", 1, 2, "AB" },
		{ "QUJD", 1, 3, "ABC" },     { "QUJDRA", 1, 4, "ABCD" }, { "-_-_", 1, 3, "\xfb\xff\xbf" },
		{ "QQ==", 0, 0, "" },	     { "Q+Q", 0, 0, "" },	 { "Q/Q", 0, 0, "" },	  { "QU JD", 0, 0, "" },
		{ "QUJD\n", 0, 0, "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *out = (void *)1;
		size_t n = 99;
		int r = b64url_decode(cases[i].in, strlen(cases[i].in), &out, &n);

		ck_assert_msg((r == 0) == cases[i].ok, "%s: %d", cases[i].in, r);
		if (!cases[i].ok) {
			ck_assert_ptr_null(out);
			ck_assert_uint_eq(n, 0);
			continue;
		}
		ck_assert_uint_eq(n, cases[i].len);
		ck_assert(memcmp(out, cases[i].bytes, n) == 0);
		ck_assert_uint_eq(out[n], 0);
		crypto_freezero(out, n + 1);
	}
}
END_TEST

START_TEST(test_jwks_parse)
{
	struct cmf_oidc_keys *k;
	char a[4096], b[4096], doc[16384];
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);

	k = keys_std();
	ck_assert_uint_eq(cmf_oidc_keys_count(k), 2);
	cmf_oidc_keys_free(k);
	/* Skipped: other key types and curves, encryption keys, an alg that is not the key type's. */
	jwk(rsa_key, "r1", "", a, sizeof(a));
	snprintf(doc, sizeof(doc),
		 "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"},{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"},"
		 "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"},%s]}",
		 a);
	k = keys_ok(doc);
	ck_assert_uint_eq(cmf_oidc_keys_count(k), 1);
	cmf_oidc_keys_free(k);
	jwk(rsa_key, "enc", ",\"use\":\"enc\"", a, sizeof(a));
	jwk(ec_key, "e384", ",\"alg\":\"ES384\"", b, sizeof(b));
	snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", a, b);
	keys_bad(doc, "no usable key");
	/* Refused as a whole: a broken supported key, one kid twice, a weak key, a point off the curve. */
	jwk(rsa_key, "same", "", a, sizeof(a));
	jwk(ec_key, "same", "", b, sizeof(b));
	snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", a, b);
	keys_bad(doc, "two keys have kid same");
	jwk(small, "weak", "", a, sizeof(a));
	snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", a);
	keys_bad(doc, "key 1 (kid weak): an RSA key of 1024 bits");
	jwk(ec_key, "bent", "", a, sizeof(a));
	{
		/* One character of y changed: the same shape, another point. */
		char *y = strstr(a, "\"y\":\"") + 5;

		y[3] = y[3] == 'A' ? 'B' : 'A';
	}
	snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", a);
	keys_bad(doc, "not a point on P-256");
	keys_bad("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}", "x and y must be");
	keys_bad("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"not base64!\",\"e\":\"AQAB\"}]}", "n and e must be base64url");
	keys_bad("{\"keys\":[{\"kty\":\"RSA\",\"kid\":7}]}", "kid must be a string");
	keys_bad("{\"keys\":[\"RSA\"]}", "key 1: not a JSON object");
	keys_bad("not json", "not JSON");
	keys_bad("{\"keys\":{}}", "not a JWKS");
	keys_bad("{\"keys\":[],\"keys\":[]}", "not JSON");
	keys_bad("{\"keys\":[]}", "no usable key");
	{
		size_t n = 0;

		n += (size_t)snprintf(doc + n, sizeof(doc) - n, "{\"keys\":[");
		for (int i = 0; i < JWKS_KEYS_MAX + 1; i++)
			n += (size_t)snprintf(doc + n, sizeof(doc) - n, "%s{\"kty\":\"oct\"}", i ? "," : "");
		snprintf(doc + n, sizeof(doc) - n, "]}");
		keys_bad(doc, "at most 64 are accepted");
	}
	EVP_PKEY_free(small);
}
END_TEST

START_TEST(test_verify_good)
{
	struct cmf_oidc_keys *k = keys_std();
	char p[300];

	ck_assert_int_eq(verify_at(k, token(rsa_key, RS_HDR, GOOD_CLAIMS, NULL), NOW, p), CMF_OIDC_OK);
	ck_assert_str_eq(p, "oidc:https://idp.example#alice");
	ck_assert_int_eq(verify_at(k, token(ec_key, ES_HDR, GOOD_CLAIMS, NULL), NOW, p), CMF_OIDC_OK);
	ck_assert_str_eq(p, "oidc:https://idp.example#alice");
	/* aud as an array; typ and other header members are ignored. */
	ck_assert_int_eq(verify_at(k, token(rsa_key, "{\"typ\":\"JWT\",\"alg\":\"RS256\",\"kid\":\"r1\"}",
					    "{\"iss\":\"https://idp.example\",\"aud\":[\"x\",\"cmf\"],\"sub\":\"bob\","
					    "\"exp\":2000.5}",
					    NULL),
				   NOW, p),
			 CMF_OIDC_OK);
	ck_assert_str_eq(p, "oidc:https://idp.example#bob");
	{
		const char *t = token(rsa_key, RS_HDR, GOOD_CLAIMS, NULL);

		ck_assert(cmf_oidc_is_jwt(t, strlen(t)));
	}
	cmf_oidc_keys_free(k);
}
END_TEST

START_TEST(test_verify_alg_and_kid)
{
	struct cmf_oidc_keys *k = keys_std(), *one;
	char a[4096], doc[8192], p[300] = "x";

	/* none and HS256 (an HMAC over the public key's text) are never tried. */
	ck_assert_int_eq(verify_at(k, token(NULL, "{\"alg\":\"none\",\"kid\":\"r1\"}", GOOD_CLAIMS, ""), NOW, p),
			 CMF_OIDC_ALG);
	ck_assert_str_eq(p, "");
	ck_assert_int_eq(verify_at(k, token(NULL, "{\"alg\":\"HS256\",\"kid\":\"r1\"}", GOOD_CLAIMS, "c2lnbmF0dXJl"), NOW,
				   NULL),
			 CMF_OIDC_ALG);
	ck_assert_int_eq(verify_at(k, token(NULL, "{\"alg\":\"RS384\",\"kid\":\"r1\"}", GOOD_CLAIMS, "c2ln"), NOW, NULL),
			 CMF_OIDC_ALG);
	/* The alg must be the selected key's: RS256 naming the EC key, ES256 naming the RSA key. */
	ck_assert_int_eq(verify_at(k, token(rsa_key, "{\"alg\":\"RS256\",\"kid\":\"e1\"}", GOOD_CLAIMS, NULL), NOW, NULL),
			 CMF_OIDC_ALG);
	ck_assert_int_eq(verify_at(k, token(ec_key, "{\"alg\":\"ES256\",\"kid\":\"r1\"}", GOOD_CLAIMS, NULL), NOW, NULL),
			 CMF_OIDC_ALG);
	/* kid: unknown; absent while two keys could be meant; absent with one key. */
	ck_assert_int_eq(verify_at(k, token(rsa_key, "{\"alg\":\"RS256\",\"kid\":\"r2\"}", GOOD_CLAIMS, NULL), NOW, NULL),
			 CMF_OIDC_KID);
	ck_assert_int_eq(verify_at(k, token(rsa_key, "{\"alg\":\"RS256\"}", GOOD_CLAIMS, NULL), NOW, NULL), CMF_OIDC_KID);
	jwk(rsa_key, NULL, "", a, sizeof(a));
	snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", a);
	one = keys_ok(doc);
	ck_assert_int_eq(verify_at(one, token(rsa_key, "{\"alg\":\"RS256\"}", GOOD_CLAIMS, NULL), NOW, NULL), CMF_OIDC_OK);
	/* A kid names a key by its kid only: a key without one is not "any". */
	ck_assert_int_eq(verify_at(one, token(rsa_key, RS_HDR, GOOD_CLAIMS, NULL), NOW, NULL), CMF_OIDC_KID);
	cmf_oidc_keys_free(one);
	cmf_oidc_keys_free(k);
}
END_TEST

START_TEST(test_verify_signature)
{
	struct cmf_oidc_keys *k = keys_std();
	char t[16384], *dot;

	ck_assert_int_eq(verify_at(k, token(rsa_other, RS_HDR, GOOD_CLAIMS, NULL), NOW, NULL), CMF_OIDC_SIGNATURE);
	/* The claims changed after signing (alice → alicf). */
	snprintf(t, sizeof(t), "%s", token(rsa_key, RS_HDR, GOOD_CLAIMS, NULL));
	dot = strrchr(t, '.');
	{
		char other[16384];

		snprintf(other, sizeof(other), "%s",
			 token(NULL, RS_HDR, "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"alicf\",\"iat\":1000,"
					     "\"exp\":2000}",
			       dot + 1));
		ck_assert_int_eq(verify_at(k, other, NOW, NULL), CMF_OIDC_SIGNATURE);
	}
	/* ES256: r||s of 64 bytes; a DER signature, or a short one, is not JOSE's. */
	ck_assert_int_eq(verify_at(k, token(NULL, ES_HDR, GOOD_CLAIMS, "AAAA"), NOW, NULL), CMF_OIDC_SIGNATURE);
	snprintf(t, sizeof(t), "%s", token(ec_key, ES_HDR, GOOD_CLAIMS, NULL));
	dot = strrchr(t, '.');
	dot[5] = dot[5] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(verify_at(k, t, NOW, NULL), CMF_OIDC_SIGNATURE);
	cmf_oidc_keys_free(k);
}
END_TEST

START_TEST(test_verify_claims)
{
	static const struct {
		const char *claims;
		int want;
	} cases[] = {
		{ "{\"iss\":\"https://idp.example/\",\"aud\":\"cmf\",\"sub\":\"a\",\"exp\":2000}", CMF_OIDC_ISSUER },
		{ "{\"aud\":\"cmf\",\"sub\":\"a\",\"exp\":2000}", CMF_OIDC_ISSUER },
		/* jansson refuses an escaped NUL (no JSON_ALLOW_NUL): no prefix can pass for the issuer. */
		{ "{\"iss\":\"https://idp.example\\u0000x\",\"aud\":\"cmf\",\"sub\":\"a\",\"exp\":2000}", CMF_OIDC_MALFORMED },
		{ "{\"iss\":7,\"aud\":\"cmf\",\"sub\":\"a\",\"exp\":2000}", CMF_OIDC_ISSUER },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmfx\",\"sub\":\"a\",\"exp\":2000}", CMF_OIDC_AUDIENCE },
		{ "{\"iss\":\"https://idp.example\",\"aud\":[],\"sub\":\"a\",\"exp\":2000}", CMF_OIDC_AUDIENCE },
		{ "{\"iss\":\"https://idp.example\",\"sub\":\"a\",\"exp\":2000}", CMF_OIDC_AUDIENCE },
		{ "{\"iss\":\"https://idp.example\",\"aud\":[1],\"sub\":\"a\",\"exp\":2000}", CMF_OIDC_MALFORMED },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"a\"}", CMF_OIDC_MALFORMED },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"a\",\"exp\":\"2000\"}", CMF_OIDC_MALFORMED },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"a\",\"exp\":2000,\"nbf\":null}", CMF_OIDC_MALFORMED },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"exp\":2000}", CMF_OIDC_MALFORMED },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"\",\"exp\":2000}", CMF_OIDC_MALFORMED },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":5,\"exp\":2000}", CMF_OIDC_MALFORMED },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"a\\nb\",\"exp\":2000}", CMF_OIDC_MALFORMED },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"a\\u0000b\",\"exp\":2000}", CMF_OIDC_MALFORMED },
		{ "[1]", CMF_OIDC_MALFORMED },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"a\",\"exp\":1440}", CMF_OIDC_EXPIRED },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"a\",\"exp\":1441}", CMF_OIDC_OK },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"a\",\"exp\":2000,\"nbf\":1560}", CMF_OIDC_OK },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"a\",\"exp\":2000,\"nbf\":1561}",
		  CMF_OIDC_NOT_YET_VALID },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"a\",\"exp\":2000,\"iat\":1560}", CMF_OIDC_OK },
		{ "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"a\",\"exp\":2000,\"iat\":1561}",
		  CMF_OIDC_NOT_YET_VALID },
	};
	struct cmf_oidc_keys *k = keys_std();
	char p[300], longsub[400];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = verify_at(k, token(ec_key, ES_HDR, cases[i].claims, NULL), NOW, p);

		ck_assert_msg(r == cases[i].want, "%s: %s, want %s", cases[i].claims, cmf_oidc_strerror(r),
			      cmf_oidc_strerror(cases[i].want));
		if (r != CMF_OIDC_OK)
			ck_assert_str_eq(p, "");
	}
	/* Another principal claim. */
	{
		struct cmf_oidc_policy pol = POL;
		const char *t = token(rsa_key, RS_HDR,
				      "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"u-1\",\"email\":\"a@b\",\"exp\":2000}",
				      NULL);

		pol.principal_claim = "email";
		ck_assert_int_eq(cmf_oidc_verify(k, &pol, t, strlen(t), NOW, p, sizeof(p)), CMF_OIDC_OK);
		ck_assert_str_eq(p, "oidc:https://idp.example#a@b");
		pol.skew = 0;
		ck_assert_int_eq(cmf_oidc_verify(k, &pol, t, strlen(t), 2000, p, sizeof(p)), CMF_OIDC_EXPIRED);
		ck_assert_int_eq(cmf_oidc_verify(k, &pol, t, strlen(t), 1999, p, sizeof(p)), CMF_OIDC_OK);
	}
	/* A principal that does not fit is refused, never cut. */
	memset(longsub, 'a', 300);
	longsub[300] = '\0';
	{
		char claims[600];

		snprintf(claims, sizeof(claims), "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"%s\",\"exp\":2000}",
			 longsub);
		ck_assert_int_eq(verify_at(k, token(rsa_key, RS_HDR, claims, NULL), NOW, p), CMF_OIDC_MALFORMED);
	}
	cmf_oidc_keys_free(k);
}
END_TEST

START_TEST(test_malformed)
{
	struct cmf_oidc_keys *k = keys_std();
	char t[16384], big[CMF_OIDC_TOKEN_MAX + 64], *d1, *d2;

	snprintf(t, sizeof(t), "%s", token(rsa_key, RS_HDR, GOOD_CLAIMS, NULL));
	d1 = strchr(t, '.');
	d2 = strrchr(t, '.');
	/* Not JWTs at all: cmf's own tokens go elsewhere. */
	ck_assert(!cmf_oidc_is_jwt("cmf_0123456789abcdef_AAAA", 25));
	ck_assert(!cmf_oidc_is_jwt("a.b.c", 5));
	ck_assert(!cmf_oidc_is_jwt(t, (size_t)(d2 - t)));
	ck_assert_int_eq(verify_at(k, "a.b.c", NOW, NULL), CMF_OIDC_MALFORMED);
	/* Four parts; an empty payload or signature; a header that is not an object; crit. */
	{
		char four[16400];

		snprintf(four, sizeof(four), "%s.AAAA", t);
		ck_assert_int_eq(verify_at(k, four, NOW, NULL), CMF_OIDC_MALFORMED);
		ck_assert(!cmf_oidc_is_jwt(four, strlen(four)));
	}
	{
		char e[16384];

		snprintf(e, sizeof(e), "%.*s.%s", (int)(d1 - t), t, d2);
		ck_assert_int_eq(verify_at(k, e, NOW, NULL), CMF_OIDC_MALFORMED);
		snprintf(e, sizeof(e), "%.*s.", (int)(d2 - t), t);
		ck_assert_int_eq(verify_at(k, e, NOW, NULL), CMF_OIDC_MALFORMED);
		snprintf(e, sizeof(e), "%.*s.!!!!", (int)(d2 - t), t);
		ck_assert_int_eq(verify_at(k, e, NOW, NULL), CMF_OIDC_MALFORMED);
	}
	ck_assert_int_eq(verify_at(k, token(NULL, "[\"RS256\"]", GOOD_CLAIMS, "AAAA"), NOW, NULL), CMF_OIDC_MALFORMED);
	ck_assert_int_eq(verify_at(k, token(rsa_key, "{\"alg\":\"RS256\",\"kid\":\"r1\",\"crit\":[\"exp\"]}",
					    GOOD_CLAIMS, NULL),
				   NOW, NULL),
			 CMF_OIDC_MALFORMED);
	ck_assert_int_eq(verify_at(k, token(rsa_key, "{\"alg\":\"RS256\",\"kid\":1}", GOOD_CLAIMS, NULL), NOW, NULL),
			 CMF_OIDC_MALFORMED);
	/* A member twice: which one a library reads is its choice, so neither is trusted. */
	ck_assert_int_eq(verify_at(k, token(rsa_key, "{\"alg\":\"RS256\",\"alg\":\"RS256\",\"kid\":\"r1\"}",
					    GOOD_CLAIMS, NULL),
				   NOW, NULL),
			 CMF_OIDC_MALFORMED);
	/* Signed claims that are not JSON. */
	ck_assert_int_eq(verify_at(k, token(rsa_key, RS_HDR, "not json", NULL), NOW, NULL), CMF_OIDC_MALFORMED);
	/* Above the size bound: refused before decoding. */
	memset(big, 'A', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, t, strlen(t));
	ck_assert(!cmf_oidc_is_jwt(big, strlen(big)));
	ck_assert_int_eq(verify_at(k, big, NOW, NULL), CMF_OIDC_MALFORMED);
	cmf_oidc_keys_free(k);
}
END_TEST

START_TEST(test_verified_cache)
{
	char a[4096], doc_r[8192], doc_e[8192], claims[256], t[16384], bad[16384], p[300], why[512];
	time_t now = time(NULL);
	uint8_t h[32], h2[32];

	jwk(rsa_key, "r1", "", a, sizeof(a));
	snprintf(doc_r, sizeof(doc_r), "{\"keys\":[%s]}", a);
	jwk(ec_key, "e1", "", a, sizeof(a));
	snprintf(doc_e, sizeof(doc_e), "{\"keys\":[%s]}", a);
	policy = POL;
	oidc_on = true;
	ck_assert_int_eq(cmf_oidc_jwks_update((const uint8_t *)doc_r, strlen(doc_r), why, sizeof(why)), 0);
	snprintf(claims, sizeof(claims), "{\"iss\":\"https://idp.example\",\"aud\":\"cmf\",\"sub\":\"alice\",\"exp\":%lld}",
		 (long long)now + 100);
	snprintf(t, sizeof(t), "%s", token(rsa_key, RS_HDR, claims, NULL));
	ck_assert_int_eq(cmf_oidc_authenticate(t, strlen(t), p, sizeof(p), NULL), CMF_OIDC_OK);
	ck_assert_str_eq(p, "oidc:https://idp.example#alice");
	/* Kept until exp + skew, for a buffer it fits. */
	ck_assert_int_eq(crypto_sha256(t, strlen(t), h), CRYPTO_OK);
	ck_assert(verified[h[0]].used);
	{
		double until = 0, expires = 0;

		ck_assert(verified_lookup(h, keys_gen, (double)now + 159, p, sizeof(p), &until));
		ck_assert(until >= (double)now + 159 && until <= (double)now + 161);
		ck_assert(!verified_lookup(h, keys_gen, (double)now + 160, p, sizeof(p), &until));
		ck_assert(!verified_lookup(h, keys_gen, (double)now, p, 5, &until));
		/* The caller learns when the token stops being accepted (a held watch ends then). */
		ck_assert_int_eq(cmf_oidc_authenticate(t, strlen(t), p, sizeof(p), &expires), CMF_OIDC_OK);
		ck_assert(expires == until);
	}
	memset(p, 0, sizeof(p));
	ck_assert_int_eq(cmf_oidc_authenticate(t, strlen(t), p, sizeof(p), NULL), CMF_OIDC_OK);
	ck_assert_str_eq(p, "oidc:https://idp.example#alice");
	/* A refusal is not kept. */
	snprintf(bad, sizeof(bad), "%s", token(rsa_other, RS_HDR, claims, NULL));
	ck_assert_int_eq(cmf_oidc_authenticate(bad, strlen(bad), p, sizeof(p), NULL), CMF_OIDC_SIGNATURE);
	ck_assert_int_eq(crypto_sha256(bad, strlen(bad), h2), CRYPTO_OK);
	{
		double until = 0;

		ck_assert(!verified_lookup(h2, keys_gen, (double)now, p, sizeof(p), &until));
	}
	/* New keys: what was verified under the old ones counts no more. */
	ck_assert_int_eq(cmf_oidc_jwks_update((const uint8_t *)doc_e, strlen(doc_e), why, sizeof(why)), 0);
	ck_assert_int_eq(cmf_oidc_authenticate(t, strlen(t), p, sizeof(p), NULL), CMF_OIDC_KID);
	ck_assert_str_eq(p, "");
	cmf_oidc_shutdown();
	ck_assert(!verified[h[0]].used);
	ck_assert_int_eq(cmf_oidc_authenticate(t, strlen(t), p, sizeof(p), NULL), CMF_OIDC_KID);
}
END_TEST

START_TEST(test_strerror)
{
	ck_assert_str_eq(cmf_oidc_strerror(CMF_OIDC_SIGNATURE), "bad-signature");
	ck_assert_str_eq(cmf_oidc_strerror(CMF_OIDC_NOT_YET_VALID), "not-yet-valid");
	ck_assert_str_eq(cmf_oidc_strerror(-100), "internal-error");
}
END_TEST

static const struct cmf_check_opts opts = { .setup = setup, .teardown = teardown, .timeout = 60 };

CMF_CHECK_SUITE_WITH("oidc", &opts, test_b64url, test_jwks_parse, test_verify_good, test_verify_alg_and_kid,
		     test_verify_signature, test_verify_claims, test_malformed, test_verified_cache, test_strerror)
