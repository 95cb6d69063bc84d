/* crypto utilities: error strings, freeing secrets, random bytes and random UUIDs for the rest of cmf. */
#include "crypto/crypto.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>

#include "crypto/log.h"

const char *
crypto_strerror(int err)
{
	switch (err) {
	case CRYPTO_OK:
		return "success";
	case CRYPTO_ERR_INTERNAL:
		return "internal cryptographic library error";
	case CRYPTO_ERR_ALLOC:
		return "out of memory";
	case CRYPTO_ERR_INVALID_ARG:
		return "invalid argument";
	case CRYPTO_ERR_KEY_FORMAT:
		return "key is neither 16 or 32 raw bytes nor base64 of 16 or 32 bytes";
	case CRYPTO_ERR_TRUNCATED:
		return "ciphertext is truncated";
	case CRYPTO_ERR_VERSION:
		return "unknown ciphertext format version";
	case CRYPTO_ERR_UNKNOWN_TERM:
		return "ciphertext was sealed under a data key the keyring does not hold";
	case CRYPTO_ERR_MAC_INVALID:
		return "authentication tag did not verify (wrong key, wrong identity or tampered data)";
	case CRYPTO_ERR_RANDOM:
		return "random number generator failed";
	case CRYPTO_ERR_NONCE_BUDGET:
		return "data key reached its encryption limit and must be rotated";
	case CRYPTO_ERR_NO_KEY:
		return "keyring holds no data key";
	case CRYPTO_ERR_TOO_LARGE:
		return "data exceeds the buffer's size limit";
	}
	return "unknown crypto error";
}

void
crypto_freezero(void *p, size_t n)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, n);
	free(p);
}

int
crypto_random(uint8_t *buf, size_t len)
{
	int r = CRYPTO_ERR_INTERNAL;

	if (buf == NULL && len > 0) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	while (len > 0) {
		/* RAND_bytes takes an int length; larger requests are served in INT_MAX-sized pieces. */
		size_t n = len > INT_MAX ? INT_MAX : len;

		if (RAND_bytes(buf, (int)n) != 1) {
			crypto_log_openssl(__func__);
			r = CRYPTO_ERR_RANDOM;
			goto out;
		}
		buf += n;
		len -= n;
	}
	r = CRYPTO_OK;
out:
	return r;
}

int
crypto_uuid4(char out[37])
{
	/* A UUID is 128 bits. */
	uint8_t b[16];
	int r;

	if (out == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	out[0] = '\0';
	if ((r = crypto_random(b, sizeof(b))) != CRYPTO_OK)
		goto out;
	/* RFC 4122 §4.4: version 4 in the high nibble of byte 6, variant 10xx in the top bits of byte 8. */
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	/* 36 characters (32 hex digits, 4 dashes) plus NUL = 37, the size the contract gives. */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
	r = CRYPTO_OK;
out:
	return r;
}

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int
crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned int n = 0;

	pthread_once(&sha256_once, sha256_fetch);
	if (sha256_md == NULL || EVP_Digest(data, len, out, &n, sha256_md, NULL) != 1 || n != 32) {
		crypto_log_openssl(__func__);
		return CRYPTO_ERR_INTERNAL;
	}
	return CRYPTO_OK;
}

long long
crypto_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
