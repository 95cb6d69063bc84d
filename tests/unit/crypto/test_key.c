/* links: crypto/aead.c crypto/key.c crypto/keyring.c crypto/util.c cmf/log.c cmf/text.c crypto/log.c */
/* Unit tests for crypto/key.c and crypto/util.c: key file parsing, key id, key helpers, random, UUIDs. */
#include "crypto/crypto.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tests/unit/check_main.h"

/* Room for any parse message (they are one sentence of about 300 characters). */
#define WHY_SIZE 512

/* A 32-byte key whose bytes include none of the base64 alphabet or whitespace (so it is never "textual"). */
static void
fill_key(uint8_t *k, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		k[i] = (uint8_t)(0x80 | ((seed + i * 7) & 0x7f));
}

/* Standard base64 of buf (EVP_EncodeBlock, so the test does not trust the code under test) + suffix. */
static size_t
b64(const uint8_t *buf, size_t n, const char *suffix, uint8_t *dst, size_t dstsize)
{
	int len;

	ck_assert_uint_ge(dstsize, (n + 2) / 3 * 4 + strlen(suffix) + 1);
	len = EVP_EncodeBlock(dst, buf, (int)n);
	ck_assert_int_ge(len, 0);
	memcpy(dst + len, suffix, strlen(suffix) + 1);
	return (size_t)len + strlen(suffix);
}

/* Parse and expect success with exactly `want` as the key. */
static void
expect_key(const uint8_t *in, size_t inlen, const uint8_t *want, size_t wantlen)
{
	struct crypto_key *k = (struct crypto_key *)1;
	char why[WHY_SIZE];
	int r;

	memset(why, 'x', sizeof(why));
	r = crypto_key_parse(in, inlen, &k, why, sizeof(why));
	ck_assert_msg(r == CRYPTO_OK, "parse of %zu bytes failed: %d %s", inlen, r, why);
	ck_assert_ptr_nonnull(k);
	ck_assert_str_eq(why, "");
	ck_assert_uint_eq(crypto_key_len(k), wantlen);
	ck_assert_mem_eq(crypto_key_bytes(k), want, wantlen);
	crypto_key_free(k);
}

/* The message `why` contains `part`. */
static void
expect_says(const char *why, const char *part)
{
	ck_assert_msg(strstr(why, part) != NULL, "want '%s' in: %s", part, why);
}

/* Parse and expect CRYPTO_ERR_KEY_FORMAT, with `part` in the message unless NULL; the message is left in why. */
static void
expect_refused(const uint8_t *in, size_t inlen, char why[WHY_SIZE], const char *part)
{
	struct crypto_key *k = (struct crypto_key *)1;
	int r;

	memset(why, 'x', WHY_SIZE);
	r = crypto_key_parse(in, inlen, &k, why, WHY_SIZE);
	ck_assert_int_eq(r, CRYPTO_ERR_KEY_FORMAT);
	ck_assert_ptr_null(k);
	ck_assert_ptr_nonnull(memchr(why, '\0', WHY_SIZE));
	ck_assert_uint_gt(strlen(why), 0);
	ck_assert_msg(strstr(why, "16 or 32") != NULL, "no allowed lengths in: %s", why);
	if (part != NULL)
		expect_says(why, part);
}

START_TEST(test_raw_accepted)
{
	uint8_t k[32];

	fill_key(k, 32, 1);
	expect_key(k, 16, k, 16);
	expect_key(k, 32, k, 32);
	/* Trailing newline, NUL, whitespace are key bytes under the raw rule: nothing is stripped. */
	k[31] = '\n';
	expect_key(k, 32, k, 32);
	k[31] = '\0';
	expect_key(k, 32, k, 32);
	k[30] = ' ';
	k[31] = '\t';
	expect_key(k, 32, k, 32);
	k[14] = '\r';
	k[15] = '\n';
	expect_key(k, 16, k, 16);
	memset(k, 0, sizeof(k));
	expect_key(k, 32, k, 32);
	memset(k, '\n', sizeof(k));
	expect_key(k, 16, k, 16);
	expect_key(k, 32, k, 32);
}
END_TEST

START_TEST(test_base64_accepted)
{
	static const char *const suffixes[] = {"", "\n", "\r\n", " ", "   ", "\t", " \t\r\n\n"};
	uint8_t k[32], text[128];

	fill_key(k, 32, 2);
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t n = b64(k, 16, suffixes[i], text, sizeof(text));

		expect_key(text, n, k, 16);
		n = b64(k, 32, suffixes[i], text, sizeof(text));
		expect_key(text, n, k, 32);
	}
}
END_TEST

START_TEST(test_raw_rule_comes_first)
{
	/*
	 * Decided by DESIGN.md's order: a 32-byte file is the raw key even when it is base64 text. So base64
	 * of a 16-byte key (24 characters) padded with 8 spaces, or base64 of 24 bytes (32 characters), is a
	 * raw 32-byte key (crypto_key_parse logs a warning that it looks like text).
	 */
	uint8_t k[32], text[128];
	size_t n;

	fill_key(k, 32, 3);
	n = b64(k, 16, "        ", text, sizeof(text));
	ck_assert_uint_eq(n, 32);
	expect_key(text, n, text, 32);
	n = b64(k, 24, "", text, sizeof(text));
	ck_assert_uint_eq(n, 32);
	expect_key(text, n, text, 32);
}
END_TEST

START_TEST(test_refused_empty)
{
	char why[WHY_SIZE];

	expect_refused((const uint8_t *)"", 0, why, "the key file is empty");
	expect_refused(NULL, 0, why, "the key file is empty");
	/* Whitespace only: not raw (length), and nothing left after stripping. */
	expect_refused((const uint8_t *)" \n", 2, why, "the key is 2 bytes");
}
END_TEST

START_TEST(test_refused_raw_lengths)
{
	static const size_t lens[] = {1, 15, 17, 24, 31, 33, 64};
	uint8_t k[64];
	char why[WHY_SIZE], want[64];

	fill_key(k, sizeof(k), 4);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		snprintf(want, sizeof(want), "the key is %zu bytes;", lens[i]);
		expect_refused(k, lens[i], why, want);
	}
	/* A raw 16-byte key plus a newline is 17 bytes: refused, and its length is named. */
	k[16] = '\n';
	expect_refused(k, 17, why, "the key is 17 bytes;");
}
END_TEST

START_TEST(test_refused_base64_wrong_length)
{
	uint8_t k[64], text[256];
	char why[WHY_SIZE];
	size_t n;

	fill_key(k, sizeof(k), 5);
	/* openssl rand -base64 24 > file: 32 characters plus a newline, decoding to 24 bytes. */
	n = b64(k, 24, "\n", text, sizeof(text));
	expect_refused(text, n, why, "the key file holds base64 text that decodes to 24 bytes");
	ck_assert_ptr_null(strstr(why, "twice"));
	n = b64(k, 48, "\n", text, sizeof(text));
	expect_refused(text, n, why, "decodes to 48 bytes");
	n = b64(k, 1, "", text, sizeof(text));
	expect_refused(text, n, why, "decodes to 1 bytes");
}
END_TEST

START_TEST(test_refused_not_base64)
{
	uint8_t k[32], text[256];
	char why[WHY_SIZE];
	size_t n;

	expect_refused((const uint8_t *)"this is not a key!!\n", 20, why, "the key is 20 bytes;");
	expect_says(why, "offset 4 is outside the base64 alphabet");

	fill_key(k, 32, 6);
	/* A character outside the alphabet inside otherwise valid base64 of 32 bytes. */
	n = b64(k, 32, "\n", text, sizeof(text));
	text[10] = '*';
	expect_refused(text, n, why, "the key is 45 bytes;");
	expect_says(why, "offset 10 is outside the base64 alphabet");
	/* The message names offsets, never the text: no run of the key's base64 appears in it. */
	ck_assert_ptr_null(strstr(why, (const char *)(text + 11)));
	/* A newline inside the text is not stripped (only trailing whitespace is). */
	text[10] = '\n';
	expect_refused(text, n, why, "offset 10 is outside");
	/* Base64 URL-safe alphabet is not the standard one. */
	text[10] = '-';
	expect_refused(text, n, why, NULL);
	/* '=' padding inside. */
	text[10] = '=';
	expect_refused(text, n, why, "'=' padding at offset 10");
	/* Padding removed: 43 characters, not a multiple of 4. */
	n = b64(k, 32, "", text, sizeof(text));
	ck_assert_uint_eq(text[43], '=');
	text[43] = '\n';
	expect_refused(text, n, why, "this is 43 after stripping");
	/* Three padding characters. */
	expect_refused((const uint8_t *)"AAAAAAAAAAAAAAAAAAAAA===", 24, why, "ends in 3 '='");
	/* Padding followed by more characters. */
	expect_refused((const uint8_t *)"AAAAAAAAAAAAAAAAAAAAAA==AAAA", 28, why, "'=' padding at offset 22");
	/* Too long to be a key at all: not decoded. */
	{
		uint8_t big[2000];

		memset(big, 'A', sizeof(big));
		expect_refused(big, sizeof(big), why, "the key is 2000 bytes;");
		expect_says(why, "too long");
	}
}
END_TEST

START_TEST(test_refused_leading_whitespace)
{
	/*
	 * Decided: only trailing whitespace is stripped (crypto.h), so leading whitespace before otherwise
	 * valid base64 of a 32-byte key is refused, naming offset 0. Both the 45-byte form (" " + 44) and a
	 * 44-byte form ("\n" + the 43 characters before the padding) are refused.
	 */
	uint8_t k[32], text[256];
	char why[WHY_SIZE];
	size_t n;

	fill_key(k, 32, 7);
	text[0] = ' ';
	n = 1 + b64(k, 32, "", text + 1, sizeof(text) - 1);
	ck_assert_uint_eq(n, 45);
	expect_refused(text, n, why, "the key is 45 bytes;");
	expect_says(why, "offset 0 is outside the base64 alphabet");
	text[0] = '\n';
	expect_refused(text, 44, why, "the key is 44 bytes;");
	expect_says(why, "offset 0 is outside");
}
END_TEST

START_TEST(test_refused_double_base64)
{
	static const char *const inner_suffixes[] = {"", "\n", "\r\n", " "};
	uint8_t k[32], once[128], twice[256];
	char why[WHY_SIZE];
	size_t n1, n2;

	fill_key(k, 32, 8);
	for (size_t i = 0; i < sizeof(inner_suffixes) / sizeof(inner_suffixes[0]); i++) {
		/* kubectl create secret --from-file on a file that already held base64 of a 32-byte key. */
		n1 = b64(k, 32, inner_suffixes[i], once, sizeof(once));
		n2 = b64(once, n1, "\n", twice, sizeof(twice));
		expect_refused(twice, n2, why, "the key file holds base64 text that decodes to");
		expect_says(why, "base64-encoded twice");
		expect_says(why, "openssl rand -out cmf.key 32");
		expect_says(why, "kubectl create secret --from-file");
	}
	/* 16-byte key, inner text with a newline: 25 bytes → 36 characters of outer base64. */
	n1 = b64(k, 16, "\n", once, sizeof(once));
	n2 = b64(once, n1, "", twice, sizeof(twice));
	expect_refused(twice, n2, why, "decodes to 25 bytes");
	expect_says(why, "twice");
	/* Base64 of base64 of 24 bytes: wrong length twice over, no hint. */
	n1 = b64(k, 24, "\n", once, sizeof(once));
	n2 = b64(once, n1, "", twice, sizeof(twice));
	expect_refused(twice, n2, why, NULL);
	ck_assert_ptr_null(strstr(why, "twice"));
}
END_TEST

START_TEST(test_parse_args)
{
	struct crypto_key *k = (struct crypto_key *)1;
	uint8_t key[32];
	char why[8];

	fill_key(key, 32, 9);
	ck_assert_int_eq(crypto_key_parse(key, 32, NULL, NULL, 0), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_key_parse(NULL, 32, &k, NULL, 0), CRYPTO_ERR_INVALID_ARG);
	/* `why` may be NULL, and a short one is truncated but NUL-terminated. */
	ck_assert_int_eq(crypto_key_parse(key, 3, &k, NULL, 0), CRYPTO_ERR_KEY_FORMAT);
	ck_assert_ptr_null(k);
	ck_assert_int_eq(crypto_key_parse(key, 3, &k, why, sizeof(why)), CRYPTO_ERR_KEY_FORMAT);
	ck_assert_uint_eq(strlen(why), sizeof(why) - 1);
	ck_assert_int_eq(crypto_key_parse(key, 32, &k, NULL, 0), CRYPTO_OK);
	crypto_key_free(k);
}
END_TEST

/* The key id definition, computed independently with HMAC(). */
static void
expected_id(const uint8_t *key, size_t len, char out[CRYPTO_KEY_ID_SIZE])
{
	static const char label[] = "cmf key id v1";
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, (int)len, (const uint8_t *)label, strlen(label), md, &mdlen));
	ck_assert_uint_eq(mdlen, 32);
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

START_TEST(test_key_id)
{
	struct crypto_key *a, *b, *c;
	char ida[CRYPTO_KEY_ID_SIZE], ida2[CRYPTO_KEY_ID_SIZE], idb[CRYPTO_KEY_ID_SIZE],
	    want[CRYPTO_KEY_ID_SIZE];
	uint8_t bytes[32];

	for (int i = 0; i < 32; i++)
		bytes[i] = (uint8_t)i;
	/* Known answers (HMAC-SHA256 of "cmf key id v1" under 00 01 .. 1f, and under 00 .. 0f). */
	ck_assert_int_eq(crypto_key_from_bytes(bytes, 32, &a), CRYPTO_OK);
	ck_assert_int_eq(crypto_key_id(a, ida), CRYPTO_OK);
	ck_assert_str_eq(ida, "9cf24df77fc16014");
	crypto_key_free(a);
	ck_assert_int_eq(crypto_key_from_bytes(bytes, 16, &a), CRYPTO_OK);
	ck_assert_int_eq(crypto_key_id(a, ida), CRYPTO_OK);
	ck_assert_str_eq(ida, "55a4ce1cf13f0780");
	crypto_key_free(a);

	for (int round = 0; round < 8; round++) {
		size_t len = round % 2 ? 16 : 32;

		ck_assert_int_eq(crypto_key_generate(len, &a), CRYPTO_OK);
		ck_assert_int_eq(crypto_key_generate(len, &b), CRYPTO_OK);
		ck_assert_int_eq(crypto_key_id(a, ida), CRYPTO_OK);
		ck_assert_int_eq(crypto_key_id(a, ida2), CRYPTO_OK);
		ck_assert_int_eq(crypto_key_id(b, idb), CRYPTO_OK);
		ck_assert_str_eq(ida, ida2);
		ck_assert_str_ne(ida, idb);
		ck_assert_uint_eq(strlen(ida), CRYPTO_KEY_ID_SIZE - 1);
		for (int i = 0; i < 16; i++)
			ck_assert(isxdigit((unsigned char)ida[i]) && !isupper((unsigned char)ida[i]));
		expected_id(crypto_key_bytes(a), len, want);
		ck_assert_str_eq(ida, want);
		/* Same bytes, same id. */
		ck_assert_int_eq(crypto_key_from_bytes(crypto_key_bytes(a), len, &c), CRYPTO_OK);
		ck_assert_int_eq(crypto_key_id(c, idb), CRYPTO_OK);
		ck_assert_str_eq(ida, idb);
		crypto_key_free(a);
		crypto_key_free(b);
		crypto_key_free(c);
	}
	ck_assert_int_eq(crypto_key_id(NULL, ida), CRYPTO_ERR_INVALID_ARG);
	ck_assert_str_eq(ida, "");
}
END_TEST

START_TEST(test_key_helpers)
{
	struct crypto_key *a = (struct crypto_key *)1, *b, *c;
	uint8_t bytes[32];

	fill_key(bytes, 32, 10);
	ck_assert_int_eq(crypto_key_generate(24, &a), CRYPTO_ERR_INVALID_ARG);
	ck_assert_ptr_null(a);
	ck_assert_int_eq(crypto_key_generate(0, &a), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_key_from_bytes(bytes, 31, &a), CRYPTO_ERR_INVALID_ARG);
	ck_assert_ptr_null(a);
	ck_assert_int_eq(crypto_key_from_bytes(NULL, 32, &a), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_key_from_bytes(bytes, 32, &a), CRYPTO_OK);
	ck_assert_int_eq(crypto_key_from_bytes(bytes, 32, &b), CRYPTO_OK);
	ck_assert_int_eq(crypto_key_from_bytes(bytes, 16, &c), CRYPTO_OK);
	ck_assert_int_eq(crypto_key_equal(a, b), 1);
	ck_assert_int_eq(crypto_key_equal(a, c), 0);
	ck_assert_int_eq(crypto_key_equal(a, NULL), 0);
	ck_assert_uint_eq(crypto_key_len(c), 16);
	ck_assert_uint_eq(crypto_key_len(NULL), 0);
	ck_assert_ptr_null(crypto_key_bytes(NULL));
	crypto_key_free(b);
	bytes[31] ^= 1;
	ck_assert_int_eq(crypto_key_from_bytes(bytes, 32, &b), CRYPTO_OK);
	ck_assert_int_eq(crypto_key_equal(a, b), 0);
	crypto_key_free(a);
	crypto_key_free(b);
	crypto_key_free(c);
	crypto_key_free(NULL);
	ck_assert_int_eq(crypto_key_generate(32, &a), CRYPTO_OK);
	ck_assert_int_eq(crypto_key_generate(32, &b), CRYPTO_OK);
	ck_assert_int_eq(crypto_key_equal(a, b), 0);
	crypto_key_free(a);
	crypto_key_free(b);
}
END_TEST

START_TEST(test_util)
{
	char u[37], u2[37];
	uint8_t buf[64] = {0}, zero[64] = {0};

	ck_assert_int_eq(crypto_random(buf, sizeof(buf)), CRYPTO_OK);
	ck_assert(memcmp(buf, zero, sizeof(buf)) != 0);
	ck_assert_int_eq(crypto_random(NULL, 0), CRYPTO_OK);
	ck_assert_int_eq(crypto_random(NULL, 1), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_uuid4(u), CRYPTO_OK);
	ck_assert_int_eq(crypto_uuid4(u2), CRYPTO_OK);
	ck_assert_str_ne(u, u2);
	ck_assert_uint_eq(strlen(u), 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			ck_assert_int_eq(u[i], '-');
		else
			ck_assert(isxdigit((unsigned char)u[i]) && !isupper((unsigned char)u[i]));
	}
	ck_assert_int_eq(u[14], '4');
	ck_assert_ptr_nonnull(strchr("89ab", u[19]));
	for (int e = 0; e >= -12; e--)
		ck_assert_ptr_nonnull(crypto_strerror(e));
	ck_assert_str_eq(crypto_strerror(-100), "unknown crypto error");
	ck_assert_str_ne(crypto_strerror(CRYPTO_ERR_MAC_INVALID), crypto_strerror(CRYPTO_ERR_INTERNAL));
}
END_TEST

CMF_CHECK_SUITE("crypto_key", test_raw_accepted, test_base64_accepted, test_raw_rule_comes_first,
	test_refused_empty, test_refused_raw_lengths, test_refused_base64_wrong_length, test_refused_not_base64,
	test_refused_leading_whitespace, test_refused_double_base64, test_parse_args, test_key_id,
	test_key_helpers, test_util)
