/* crypto keys: the opaque key struct, master-key file parsing (raw or base64) and the key id. */
#include "crypto/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto/log.h"

/* AES-128 and AES-256 key sizes: the only lengths an AES-GCM key can have. */
#define KEY_LEN_128 16
#define KEY_LEN_256 32

/*
 * Longest text (after stripping trailing whitespace) that is base64-decoded. Base64 of a 32-byte key is
 * 44 characters, base64 of that again is 60; 1024 is far above both, so longer text cannot be a key and
 * is refused without decoding (and the decode buffers stay small and on the stack).
 */
#define KEY_B64_MAX 1024

/* Decoded size of KEY_B64_MAX characters (every 4 characters give at most 3 bytes). */
#define KEY_B64_DEC_MAX (KEY_B64_MAX / 4 * 3)

/* Size of a reason fragment inside the parse message; it holds offsets and counts, never key bytes. */
#define KEY_REASON_SIZE 128

/* The HMAC-SHA256 message whose output identifies a key (crypto.h). */
#define KEY_ID_LABEL "cmf key id v1"

/* Bytes of HMAC-SHA256 output kept in the key id: 8 bytes = 16 hex characters (CRYPTO_KEY_ID_SIZE - 1). */
#define KEY_ID_BYTES 8

/* The tail every refusal message shares, so each names the lengths allowed. */
#define KEY_ALLOWED "an AES-GCM key must be exactly 16 or 32 bytes raw, or base64 text that decodes to exactly 16 or 32 bytes"

#define KEY_TWICE_HINT                                                                              \
	"; the key appears to be base64-encoded twice (its base64 text decodes to base64 text of a "    \
	"16- or 32-byte key); kubectl create secret --from-file encodes the file once, so store the raw " \
	"key file (openssl rand -out cmf.key 32)"

struct crypto_key {
	size_t len;
	uint8_t bytes[KEY_LEN_256];
};

static int
key_len_ok(size_t len)
{
	return len == KEY_LEN_128 || len == KEY_LEN_256;
}

int
crypto_key_from_bytes(const uint8_t *bytes, size_t len, struct crypto_key **out)
{
	struct crypto_key *k = NULL;
	int r = CRYPTO_ERR_INTERNAL;

	if (out == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*out = NULL;
	if (bytes == NULL || !key_len_ok(len)) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	/* The secure heap when cmf/cli/main.c set it up (locked, not dumped); ordinary memory otherwise. */
	if ((k = OPENSSL_secure_zalloc(sizeof(*k))) == NULL) {
		r = CRYPTO_ERR_ALLOC;
		goto out;
	}
	memcpy(k->bytes, bytes, len);
	k->len = len;
	*out = k;
	k = NULL;
	r = CRYPTO_OK;
out:
	crypto_key_free(k);
	return r;
}

int
crypto_key_generate(size_t len, struct crypto_key **out)
{
	uint8_t buf[KEY_LEN_256];
	int r = CRYPTO_ERR_INTERNAL;

	if (out == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*out = NULL;
	if (!key_len_ok(len)) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	if ((r = crypto_random(buf, len)) != CRYPTO_OK)
		goto out;
	r = crypto_key_from_bytes(buf, len, out);
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

size_t
crypto_key_len(const struct crypto_key *k)
{
	return k == NULL ? 0 : k->len;
}

const uint8_t *
crypto_key_bytes(const struct crypto_key *k)
{
	return k == NULL ? NULL : k->bytes;
}

int
crypto_key_equal(const struct crypto_key *a, const struct crypto_key *b)
{
	if (a == NULL || b == NULL || a->len != b->len)
		return 0;
	return CRYPTO_memcmp(a->bytes, b->bytes, a->len) == 0;
}

void
crypto_key_free(struct crypto_key *k)
{
	if (k != NULL)
		OPENSSL_secure_clear_free(k, sizeof(*k));
}

int
crypto_key_id(const struct crypto_key *k, char out[CRYPTO_KEY_ID_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t md[EVP_MAX_MD_SIZE];
	size_t mdlen = 0;
	int r = CRYPTO_ERR_INTERNAL;

	if (out == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	out[0] = '\0';
	if (k == NULL || !key_len_ok(k->len)) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, k->bytes, k->len, (const uint8_t *)KEY_ID_LABEL,
		      strlen(KEY_ID_LABEL), md, sizeof(md), &mdlen) == NULL ||
	    mdlen < KEY_ID_BYTES) {
		crypto_log_openssl(__func__);
		goto out;
	}
	for (size_t i = 0; i < KEY_ID_BYTES; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0x0f];
	}
	out[2 * KEY_ID_BYTES] = '\0';
	r = CRYPTO_OK;
out:
	OPENSSL_cleanse(md, sizeof(md));
	return r;
}

/* ---- Parsing ------------------------------------------------------------------------------------ */

static int
key_is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
key_is_b64_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
	       c == '/';
}

/* Length of `s` without its trailing whitespace. */
static size_t
key_rstrip(const uint8_t *s, size_t n)
{
	while (n > 0 && key_is_space(s[n - 1]))
		n--;
	return n;
}

/*
 * Check that s[0..n) is base64 as EVP_DecodeBlock produces it: standard alphabet, length a multiple of 4,
 * '=' only as one or two final padding characters. On success *declen is the real decoded length; on
 * failure `reason` says what is wrong (offsets and counts only, never the characters themselves).
 * Non-canonical final characters (unused low bits not zero) are accepted, as EVP_DecodeBlock does.
 */
static int
key_b64_check(const uint8_t *s, size_t n, size_t *declen, char *reason, size_t reasonlen)
{
	size_t pad = 0;

	*declen = 0;
	if (n > KEY_B64_MAX) {
		snprintf(reason, reasonlen, "it is too long to be base64 of a key");
		return -1;
	}
	while (pad < n && s[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++) {
		if (s[i] == '=') {
			snprintf(reason, reasonlen, "it has '=' padding at offset %zu, before the end", i);
			return -1;
		}
		if (!key_is_b64_char(s[i])) {
			snprintf(reason, reasonlen, "the character at offset %zu is outside the base64 alphabet",
				 i);
			return -1;
		}
	}
	if (pad > 2) {
		snprintf(reason, reasonlen, "it ends in %zu '=' characters; base64 padding is at most 2", pad);
		return -1;
	}
	if (n % 4 != 0) {
		snprintf(reason, reasonlen,
			 "base64 text is a multiple of 4 characters long and this is %zu after stripping "
			 "trailing whitespace",
			 n);
		return -1;
	}
	*declen = n / 4 * 3 - pad;
	return 0;
}

/*
 * Decode s[0..n) (already checked by key_b64_check, n ≤ KEY_B64_MAX) into dst (KEY_B64_DEC_MAX bytes).
 * EVP_DecodeBlock counts padding as output bytes, so the caller's real length comes from the check.
 */
static int
key_b64_decode(const uint8_t *s, size_t n, uint8_t *dst)
{
	if (n == 0)
		return 0;
	if (EVP_DecodeBlock(dst, s, (int)n) < 0) {
		crypto_log_openssl(__func__);
		return -1;
	}
	return 0;
}

/*
 * Whether `dec` (the decoded key text) is itself base64 text, with optional trailing whitespace, of a
 * 16- or 32-byte key: the double-encoding mistake.
 */
static int
key_is_double_b64(const uint8_t *dec, size_t declen)
{
	uint8_t inner[KEY_B64_DEC_MAX];
	char reason[KEY_REASON_SIZE];
	size_t n = key_rstrip(dec, declen), innerlen;
	int twice = 0;

	if (key_b64_check(dec, n, &innerlen, reason, sizeof(reason)) != 0 || !key_len_ok(innerlen))
		goto out;
	if (key_b64_decode(dec, n, inner) != 0)
		goto out;
	twice = 1;
out:
	OPENSSL_cleanse(inner, sizeof(inner));
	return twice;
}

/*
 * Whether the bytes are printable base64 (or hex) text, perhaps with trailing whitespace, which a random
 * raw key practically never is.
 */
static int
key_looks_textual(const uint8_t *buf, size_t len)
{
	len = key_rstrip(buf, len);
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!key_is_b64_char(buf[i]) && buf[i] != '=')
			return 0;
	return 1;
}

int
crypto_key_parse(const uint8_t *buf, size_t len, struct crypto_key **out, char *why, size_t whylen)
{
	uint8_t dec[KEY_B64_DEC_MAX];
	char reason[KEY_REASON_SIZE];
	size_t n, declen = 0;
	int r = CRYPTO_ERR_INTERNAL;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (out == NULL || (buf == NULL && len > 0)) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "invalid argument");
		return CRYPTO_ERR_INVALID_ARG;
	}
	*out = NULL;

	if (len == 0) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "the key file is empty; " KEY_ALLOWED);
		r = CRYPTO_ERR_KEY_FORMAT;
		goto out;
	}

	/* Rule 1: exactly 16 or 32 bytes is the raw key, whatever the bytes are (nothing is stripped). */
	if (key_len_ok(len)) {
		if (key_looks_textual(buf, len))
			crypto_log_warn("the key is %zu bytes of printable base64/hex text and is used as a raw %zu-byte "
				 "key, not decoded; if that is not intended, store a raw key file (openssl rand "
				 "-out cmf.key 32)",
				 len, len);
		r = crypto_key_from_bytes(buf, len, out);
		goto out;
	}

	/* Rule 2: base64 text, trailing whitespace stripped, that decodes to exactly 16 or 32 bytes. */
	n = key_rstrip(buf, len);
	if (n == 0) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "the key is %zu bytes, all whitespace; " KEY_ALLOWED, len);
		r = CRYPTO_ERR_KEY_FORMAT;
		goto out;
	}
	if (key_b64_check(buf, n, &declen, reason, sizeof(reason)) != 0) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "the key is %zu bytes; " KEY_ALLOWED ", and this is not base64: %s",
				 len, reason);
		r = CRYPTO_ERR_KEY_FORMAT;
		goto out;
	}
	if (key_b64_decode(buf, n, dec) != 0) {
		r = CRYPTO_ERR_INTERNAL;
		goto out;
	}
	if (!key_len_ok(declen)) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen,
				 "the key file holds base64 text that decodes to %zu bytes; an AES-GCM key must be "
				 "exactly 16 or 32 bytes (raw, or base64 text that decodes to exactly 16 or 32 "
				 "bytes)%s",
				 declen, key_is_double_b64(dec, declen) ? KEY_TWICE_HINT : "");
		r = CRYPTO_ERR_KEY_FORMAT;
		goto out;
	}
	r = crypto_key_from_bytes(dec, declen, out);
out:
	OPENSSL_cleanse(dec, sizeof(dec));
	return r;
}
