/* links: crypto/aead.c crypto/key.c crypto/keyring.c crypto/util.c cmf/log.c cmf/text.c crypto/log.c */
/* libFuzzer harness: crypto_key_parse on arbitrary bytes, checking what a success and a refusal promise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cmf/log.h"
#include "crypto/crypto.h"
#include "tests/fuzz/fuzz.h"

/* Room for any parse message (one sentence of about 300 characters). */
#define WHY_SIZE 512

static int
is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A base64-decoded key re-encodes to the input text, up to unused low bits in the last character. */
static void
check_base64_round_trip(const uint8_t *data, size_t size, const struct crypto_key *k)
{
	/* Base64 of a 32-byte key is 44 characters, plus NUL. */
	uint8_t enc[48];
	size_t n = size, pad = 0;
	int enclen;

	while (n > 0 && is_space(data[n - 1]))
		n--;
	enclen = EVP_EncodeBlock(enc, crypto_key_bytes(k), (int)crypto_key_len(k));
	CHECK(enclen > 0 && (size_t)enclen == n);
	while (pad < n && data[n - 1 - pad] == '=')
		pad++;
	CHECK(pad <= 2 && memcmp(enc, data, n - pad - 1) == 0 && memcmp(enc + n - pad, data + n - pad, pad) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct crypto_key *k = (struct crypto_key *)1;
	char why[WHY_SIZE], small[WHY_SIZE];
	size_t smallsize = size > 0 ? 1 + data[0] % 64 : 1;
	int r, r2;

	/* Textual 32-byte inputs make the parser warn; that is not what is being fuzzed. */
	cmf_log_set_level(CMF_LOG_ERROR);
	memset(why, 0xa5, sizeof(why));
	r = crypto_key_parse(data, size, &k, why, sizeof(why));
	if (r == CRYPTO_OK) {
		CHECK(k != NULL && why[0] == '\0');
		CHECK(crypto_key_len(k) == 16 || crypto_key_len(k) == 32);
		if (size == 16 || size == 32)
			CHECK(crypto_key_len(k) == size && memcmp(crypto_key_bytes(k), data, size) == 0);
		else
			check_base64_round_trip(data, size, k);
		crypto_key_free(k);
	} else {
		CHECK(r == CRYPTO_ERR_KEY_FORMAT && k == NULL);
		CHECK(size != 16 && size != 32);
		CHECK(memchr(why, '\0', sizeof(why)) != NULL && why[0] != '\0');
		/* Messages are fixed text and numbers: printable ASCII, so no raw key bytes. */
		for (size_t i = 0; why[i] != '\0'; i++)
			CHECK(why[i] >= 0x20 && why[i] < 0x7f);
		CHECK(strstr(why, "16 or 32") != NULL);
	}
	/* Same answer with no message buffer, and a short one is truncated but terminated. */
	r2 = crypto_key_parse(data, size, &k, NULL, 0);
	CHECK(r2 == r);
	crypto_key_free(k);
	memset(small, 0xa5, sizeof(small));
	r2 = crypto_key_parse(data, size, &k, small, smallsize);
	CHECK(r2 == r && memchr(small, '\0', smallsize) != NULL && small[smallsize] == (char)0xa5);
	if (r != CRYPTO_OK)
		CHECK(strncmp(small, why, smallsize - 1) == 0);
	crypto_key_free(k);
	return 0;
}
