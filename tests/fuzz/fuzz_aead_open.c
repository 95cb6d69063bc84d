/* links: crypto/aead.c crypto/key.c crypto/keyring.c crypto/util.c cmf/log.c cmf/text.c crypto/log.c */
/* libFuzzer harness: crypto_aead_open on arbitrary bytes, and seal/open round trips of arbitrary plaintext. */
#include "crypto/aead.c"

#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"

/* The seed corpus holds ciphertexts sealed under this key (bytes 0..31) and identity. */
static const char fuzz_ident[] = "secret/fuzz/1";

static const struct crypto_key *
fuzz_key(size_t len)
{
	static struct crypto_key *k16, *k32;
	struct crypto_key **k = len == 16 ? &k16 : &k32;

	if (*k == NULL) {
		uint8_t b[32];

		for (int i = 0; i < 32; i++)
			b[i] = (uint8_t)i;
		CHECK(crypto_key_from_bytes(b, len, k) == CRYPTO_OK);
	}
	return *k;
}

/*
 * Open arbitrary bytes. Forging a tag is out of reach, so a success means the input is a genuine
 * ciphertext under the fixed key and identity (some seeds are): re-sealing its plaintext with the input's
 * own term and nonce must give back exactly the input. Anything else must fail with nothing handed over.
 */
static void
check_open(const struct crypto_key *k, const uint8_t *data, size_t size)
{
	uint8_t *pt = (uint8_t *)1, *again;
	size_t ptlen = 1, againlen;
	uint32_t term = 0;
	int r, rt;

	r = crypto_aead_open(k, (const uint8_t *)fuzz_ident, strlen(fuzz_ident), data, size, &pt, &ptlen);
	rt = crypto_aead_term(data, size, &term);
	if (size < CRYPTO_OVERHEAD)
		CHECK(r == CRYPTO_ERR_TRUNCATED && rt == CRYPTO_ERR_TRUNCATED);
	else if (data[0] < CRYPTO_FORMAT_V1 || data[0] > CRYPTO_FORMAT_MAX)
		CHECK(r == CRYPTO_ERR_VERSION && rt == CRYPTO_ERR_VERSION);
	else
		CHECK((r == CRYPTO_OK || r == CRYPTO_ERR_MAC_INVALID) && rt == CRYPTO_OK);
	if (r != CRYPTO_OK) {
		CHECK(pt == NULL && ptlen == 0);
		return;
	}
	CHECK(pt != NULL && ptlen == size - CRYPTO_OVERHEAD && pt[ptlen] == '\0');
	CHECK(aead_seal_with_nonce(k, data[0], term, data + AEAD_OFF_NONCE, (const uint8_t *)fuzz_ident,
				   strlen(fuzz_ident), pt, ptlen, &again, &againlen) == CRYPTO_OK);
	CHECK(againlen == size && memcmp(again, data, size) == 0);
	free(again);
	OPENSSL_cleanse(pt, ptlen);
	free(pt);
}

/* Seal the input as plaintext, open it back, and check that a changed identity or bit does not open. */
static void
check_round_trip(const struct crypto_key *k, const uint8_t *data, size_t size)
{
	static const char other[] = "secret/fuzz/2";
	uint8_t *ct, *pt;
	size_t ctlen, ptlen, bit;
	uint32_t term = size > 0 ? data[0] * 0x01010101u : 7, got;

	if (size > CRYPTO_MAX_PLAINTEXT)
		return;
	CHECK(crypto_aead_seal(k, term, (const uint8_t *)fuzz_ident, strlen(fuzz_ident), data, size, &ct, &ctlen) ==
	      CRYPTO_OK);
	CHECK(ctlen == size + CRYPTO_OVERHEAD);
	CHECK(crypto_aead_term(ct, ctlen, &got) == CRYPTO_OK && got == term);
	CHECK(crypto_aead_open(k, (const uint8_t *)fuzz_ident, strlen(fuzz_ident), ct, ctlen, &pt, &ptlen) ==
	      CRYPTO_OK);
	CHECK(ptlen == size && memcmp(pt, data, size) == 0 && pt[ptlen] == '\0');
	OPENSSL_cleanse(pt, ptlen);
	free(pt);
	CHECK(crypto_aead_open(k, (const uint8_t *)other, strlen(other), ct, ctlen, &pt, &ptlen) ==
		      CRYPTO_ERR_MAC_INVALID &&
	      pt == NULL);
	/* One bit flipped past the version byte, at a position the input chooses. */
	bit = 8 + (size > 1 ? ((size_t)data[size - 1] << 8 | data[size - 2]) : 0) % ((ctlen - 1) * 8);
	ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	CHECK(crypto_aead_open(k, (const uint8_t *)fuzz_ident, strlen(fuzz_ident), ct, ctlen, &pt, &ptlen) ==
		      CRYPTO_ERR_MAC_INVALID &&
	      pt == NULL);
	free(ct);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_open(fuzz_key(32), data, size);
	check_open(fuzz_key(16), data, size);
	check_round_trip(fuzz_key(size % 2 ? 16 : 32), data, size);
	return 0;
}
