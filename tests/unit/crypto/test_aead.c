/* links: crypto/aead.c crypto/key.c crypto/keyring.c crypto/util.c cmf/log.c cmf/text.c crypto/log.c */
/* Unit tests for crypto/aead.c: GCM known answers, the ciphertext format, round trips and tampering. */
#include "crypto/aead.c"

#include <stdio.h>
#include <string.h>

#include "tests/unit/check_main.h"

/* Longest known-answer field in bytes (the 64-byte plaintexts of the McGrew–Viega test cases). */
#define KAT_MAX 64

struct kat {
	const char *name, *key, *iv, *aad, *pt, *ct, *tag;
};

/*
 * McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", Appendix B test cases with 96-bit IVs:
 * 1-4 use AES-128, 13-16 AES-256 (the same vectors as NIST's gcmEncryptExtIV files).
 */
#define TC_K "feffe9928665731c6d6a8f9467308308"
#define TC_IV "cafebabefacedbaddecaf888"
#define TC_P60                                                                                          \
	"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525" \
	"b16aedf5aa0de657ba637b39"
#define TC_A "feedfacedeadbeeffeedfacedeadbeefabaddad2"
static const struct kat kats[] = {
	{"TC1", "00000000000000000000000000000000", "000000000000000000000000", "", "", "",
	 "58e2fccefa7e3061367f1d57a4e7455a"},
	{"TC2", "00000000000000000000000000000000", "000000000000000000000000", "",
	 "00000000000000000000000000000000", "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"},
	{"TC3", TC_K, TC_IV, "", TC_P60 "1aafd255",
	 "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa05"
	 "1ba30b396a0aac973d58e091473f5985",
	 "4d5c2af327cd64a62cf35abd2ba6fab4"},
	{"TC4", TC_K, TC_IV, TC_A, TC_P60,
	 "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa05"
	 "1ba30b396a0aac973d58e091",
	 "5bc94fbc3221a5db94fae95ae7121a47"},
	{"TC13", "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "",
	 "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
	{"TC14", "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "",
	 "00000000000000000000000000000000", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
	{"TC15", TC_K TC_K, TC_IV, "", TC_P60 "1aafd255",
	 "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838"
	 "c5f61e6393ba7a0abcc9f662898015ad",
	 "b094dac5d93471bdec1a502270e3cc6c"},
	{"TC16", TC_K TC_K, TC_IV, TC_A, TC_P60,
	 "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838"
	 "c5f61e6393ba7a0abcc9f662",
	 "76fc6ece0f4e1768cddf8853bb2d551b"},
};

static size_t
unhex(const char *s, uint8_t *out, size_t outsize)
{
	size_t n = strlen(s) / 2;

	ck_assert_uint_le(n, outsize);
	for (size_t i = 0; i < n; i++) {
		unsigned int b;

		ck_assert_int_eq(sscanf(s + 2 * i, "%2x", &b), 1);
		out[i] = (uint8_t)b;
	}
	return n;
}

START_TEST(test_gcm_known_answers)
{
	for (size_t t = 0; t < sizeof(kats) / sizeof(kats[0]); t++) {
		const struct kat *v = &kats[t];
		uint8_t key[32], iv[12], aad[KAT_MAX], pt[KAT_MAX], ct[KAT_MAX], tag[16];
		uint8_t got[KAT_MAX + 1], gottag[16];
		size_t keylen = unhex(v->key, key, sizeof(key)), aadlen = unhex(v->aad, aad, sizeof(aad));
		size_t ptlen = unhex(v->pt, pt, sizeof(pt));
		struct crypto_key *k;

		ck_assert_uint_eq(unhex(v->iv, iv, sizeof(iv)), 12);
		ck_assert_uint_eq(unhex(v->ct, ct, sizeof(ct)), ptlen);
		ck_assert_uint_eq(unhex(v->tag, tag, sizeof(tag)), 16);
		ck_assert_int_eq(crypto_key_from_bytes(key, keylen, &k), CRYPTO_OK);

		ck_assert_int_eq(aead_gcm_encrypt(k, iv, aad, aadlen, NULL, 0, pt, ptlen, got, gottag), CRYPTO_OK);
		ck_assert_msg(memcmp(got, ct, ptlen) == 0, "%s: ciphertext", v->name);
		ck_assert_msg(memcmp(gottag, tag, 16) == 0, "%s: tag", v->name);
		/* AAD given in two pieces (as seal does: header, then identity) is the same AAD. */
		if (aadlen > 0) {
			ck_assert_int_eq(aead_gcm_encrypt(k, iv, aad, 7, aad + 7, aadlen - 7, pt, ptlen, got, gottag),
					 CRYPTO_OK);
			ck_assert_msg(memcmp(gottag, tag, 16) == 0, "%s: split AAD tag", v->name);
		}

		memset(got, 0xee, sizeof(got));
		ck_assert_int_eq(aead_gcm_decrypt(k, iv, aad, aadlen, NULL, 0, ct, ptlen, tag, got), CRYPTO_OK);
		ck_assert_msg(memcmp(got, pt, ptlen) == 0, "%s: decrypt", v->name);
		/* A wrong tag: MAC_INVALID, and the unauthenticated plaintext is wiped. */
		tag[15] ^= 0x01;
		memset(got, 0xee, sizeof(got));
		ck_assert_int_eq(aead_gcm_decrypt(k, iv, aad, aadlen, NULL, 0, ct, ptlen, tag, got),
				 CRYPTO_ERR_MAC_INVALID);
		for (size_t i = 0; i < ptlen; i++)
			ck_assert_uint_eq(got[i], 0);
		crypto_key_free(k);
	}
}
END_TEST

START_TEST(test_format_layout)
{
	static const uint8_t nonce[12] = {0xca, 0xfe, 0xba, 0xbe, 0xfa, 0xce, 0xdb, 0xad, 0xde, 0xca, 0xf8, 0x88};
	static const char ident[] = "secret/6f1c9a52-1f0b-4b8e-9f51-0c7e2b7d1e44/3";
	static const char msg[] = "hunter2";
	uint8_t key[32], body[sizeof(msg)], tag[16];
	struct crypto_key *k;
	uint8_t *ct, *pt;
	size_t ctlen, ptlen;
	uint32_t term;

	memset(key, 0x42, sizeof(key));
	ck_assert_int_eq(crypto_key_from_bytes(key, 32, &k), CRYPTO_OK);
	ck_assert_int_eq(aead_seal_with_nonce(k, CRYPTO_FORMAT_V1, 0x01020304, nonce, (const uint8_t *)ident, strlen(ident),
					      (const uint8_t *)msg, strlen(msg), &ct, &ctlen),
			 CRYPTO_OK);
	ck_assert_uint_eq(ctlen, strlen(msg) + CRYPTO_OVERHEAD);
	ck_assert_uint_eq(ct[0], 1);
	ck_assert_uint_eq(ct[1], 0x01);
	ck_assert_uint_eq(ct[2], 0x02);
	ck_assert_uint_eq(ct[3], 0x03);
	ck_assert_uint_eq(ct[4], 0x04);
	ck_assert_mem_eq(ct + 5, nonce, 12);
	/* Body and tag are GCM under the nonce with AAD = the 17-byte header followed by the identity. */
	ck_assert_int_eq(aead_gcm_encrypt(k, nonce, ct, CRYPTO_HEADER_LEN, (const uint8_t *)ident, strlen(ident),
					  (const uint8_t *)msg, strlen(msg), body, tag),
			 CRYPTO_OK);
	ck_assert_mem_eq(ct + CRYPTO_HEADER_LEN, body, strlen(msg));
	ck_assert_mem_eq(ct + CRYPTO_HEADER_LEN + strlen(msg), tag, 16);
	ck_assert_int_eq(crypto_aead_term(ct, ctlen, &term), CRYPTO_OK);
	ck_assert_uint_eq(term, 0x01020304);
	ck_assert_int_eq(crypto_aead_open(k, (const uint8_t *)ident, strlen(ident), ct, ctlen, &pt, &ptlen),
			 CRYPTO_OK);
	ck_assert_uint_eq(ptlen, strlen(msg));
	ck_assert_str_eq((const char *)pt, msg);
	free(pt);
	free(ct);
	crypto_key_free(k);
}
END_TEST

/* Seal, check the envelope, open, compare. */
static void
round_trip(size_t keylen, size_t ptlen)
{
	static const char ident[] = "secret/0b9e3c1a-5d2f-4f7e-8a6b-1c2d3e4f5a6b/1";
	struct crypto_key *k;
	uint8_t *msg, *ct, *pt;
	size_t ctlen, outlen;
	uint32_t term;

	ck_assert_int_eq(crypto_key_generate(keylen, &k), CRYPTO_OK);
	ck_assert_ptr_nonnull(msg = malloc(ptlen + 1));
	for (size_t i = 0; i < ptlen; i++)
		msg[i] = (uint8_t)(i * 31 + 7);
	ck_assert_int_eq(crypto_aead_seal(k, 7, (const uint8_t *)ident, strlen(ident), ptlen ? msg : NULL, ptlen,
					  &ct, &ctlen),
			 CRYPTO_OK);
	ck_assert_uint_eq(ctlen, ptlen + CRYPTO_OVERHEAD);
	ck_assert_int_eq(crypto_aead_term(ct, ctlen, &term), CRYPTO_OK);
	ck_assert_uint_eq(term, 7);
	if (ptlen >= 16)
		ck_assert(memcmp(ct + CRYPTO_HEADER_LEN, msg, 16) != 0);
	ck_assert_int_eq(crypto_aead_open(k, (const uint8_t *)ident, strlen(ident), ct, ctlen, &pt, &outlen),
			 CRYPTO_OK);
	ck_assert_ptr_nonnull(pt);
	ck_assert_uint_eq(outlen, ptlen);
	ck_assert(memcmp(pt, msg, ptlen) == 0);
	ck_assert_uint_eq(pt[ptlen], 0);
	OPENSSL_cleanse(pt, outlen);
	free(pt);
	free(ct);
	free(msg);
	crypto_key_free(k);
}

START_TEST(test_round_trips)
{
	static const size_t lens[] = {0, 1, 15, 16, 17, 1000, 1u << 20};

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		round_trip(16, lens[i]);
		round_trip(32, lens[i]);
	}
}
END_TEST

/* A fresh AES-256 key for each test (those that need one take it as k), made and freed by a checked fixture. */
static struct crypto_key *key32;

static void
setup(void)
{
	ck_assert_int_eq(crypto_key_generate(32, &key32), CRYPTO_OK);
}

static void
teardown(void)
{
	crypto_key_free(key32);
	key32 = NULL;
}

START_TEST(test_empty_identity_and_nonce_randomness)
{
	const struct crypto_key *k = key32;
	uint8_t *a, *b, *pt;
	size_t alen, blen, ptlen;

	ck_assert_int_eq(crypto_aead_seal(k, 1, NULL, 0, (const uint8_t *)"x", 1, &a, &alen), CRYPTO_OK);
	ck_assert_int_eq(crypto_aead_seal(k, 1, NULL, 0, (const uint8_t *)"x", 1, &b, &blen), CRYPTO_OK);
	/* Random nonces: the same plaintext never seals to the same bytes. */
	ck_assert(memcmp(a + 5, b + 5, 12) != 0);
	ck_assert(memcmp(a, b, alen) != 0);
	/* NULL and "" are the same empty identity. */
	ck_assert_int_eq(crypto_aead_open(k, (const uint8_t *)"", 0, a, alen, &pt, &ptlen), CRYPTO_OK);
	ck_assert_uint_eq(ptlen, 1);
	free(pt);
	ck_assert_int_eq(crypto_aead_open(k, (const uint8_t *)"x", 1, a, alen, &pt, &ptlen), CRYPTO_ERR_MAC_INVALID);
	ck_assert_ptr_null(pt);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_size_limits)
{
	const struct crypto_key *k = key32;
	uint8_t *big, *ct = (uint8_t *)1, *pt = (uint8_t *)1;
	size_t ctlen = 1, ptlen = 1;

	ck_assert_ptr_nonnull(big = calloc(1, CRYPTO_MAX_PLAINTEXT + CRYPTO_OVERHEAD + 1));
	ck_assert_int_eq(crypto_aead_seal(k, 1, NULL, 0, big, CRYPTO_MAX_PLAINTEXT + 1, &ct, &ctlen),
			 CRYPTO_ERR_INVALID_ARG);
	ck_assert_ptr_null(ct);
	ck_assert_uint_eq(ctlen, 0);
	/* Exactly the limit is accepted. */
	ck_assert_int_eq(crypto_aead_seal(k, 1, NULL, 0, big, CRYPTO_MAX_PLAINTEXT, &ct, &ctlen), CRYPTO_OK);
	ck_assert_int_eq(crypto_aead_open(k, NULL, 0, ct, ctlen, &pt, &ptlen), CRYPTO_OK);
	ck_assert_uint_eq(ptlen, CRYPTO_MAX_PLAINTEXT);
	free(pt);
	free(ct);
	/* A ciphertext whose body would exceed the limit is refused before decryption. */
	big[0] = CRYPTO_FORMAT_V1;
	ck_assert_int_eq(crypto_aead_open(k, NULL, 0, big, CRYPTO_MAX_PLAINTEXT + CRYPTO_OVERHEAD + 1, &pt, &ptlen),
			 CRYPTO_ERR_INVALID_ARG);
	ck_assert_ptr_null(pt);
	/* Identities are capped too. */
	ck_assert_int_eq(crypto_aead_seal(k, 1, big, AEAD_MAX_IDENT + 1, big, 1, &ct, &ctlen),
			 CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_aead_seal(k, 1, big, AEAD_MAX_IDENT, big, 1, &ct, &ctlen), CRYPTO_OK);
	ck_assert_int_eq(crypto_aead_open(k, big, AEAD_MAX_IDENT, ct, ctlen, &pt, &ptlen), CRYPTO_OK);
	free(pt);
	free(ct);
	free(big);
}
END_TEST

START_TEST(test_every_bit_flip_fails)
{
	static const char ident[] = "secret/1d8a0c6e-3b57-4c1f-a2e9-7f6d5c4b3a21/2";
	static const char msg[] = "postgres://app:s3cr3t@db:5432/app";
	struct crypto_key *k;
	uint8_t *ct, *pt;
	size_t ctlen, ptlen;

	for (int keylen = 16; keylen <= 32; keylen += 16) {
		ck_assert_int_eq(crypto_key_generate((size_t)keylen, &k), CRYPTO_OK);
		ck_assert_int_eq(crypto_aead_seal(k, 3, (const uint8_t *)ident, strlen(ident), (const uint8_t *)msg,
						  strlen(msg), &ct, &ctlen),
				 CRYPTO_OK);
		for (size_t bit = 0; bit < ctlen * 8; bit++) {
			int r;

			ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			pt = (uint8_t *)1;
			ptlen = 1;
			r = crypto_aead_open(k, (const uint8_t *)ident, strlen(ident), ct, ctlen, &pt, &ptlen);
			ck_assert_msg(r == (bit < 8 ? CRYPTO_ERR_VERSION : CRYPTO_ERR_MAC_INVALID), "bit %zu: %d", bit,
				      r);
			ck_assert_ptr_null(pt);
			ck_assert_uint_eq(ptlen, 0);
			ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		/* Restored: opens again. */
		ck_assert_int_eq(crypto_aead_open(k, (const uint8_t *)ident, strlen(ident), ct, ctlen, &pt, &ptlen),
				 CRYPTO_OK);
		free(pt);
		free(ct);
		crypto_key_free(k);
	}
}
END_TEST

START_TEST(test_every_truncation_fails)
{
	static const char ident[] = "secret/x/1";
	const struct crypto_key *k = key32;
	uint8_t msg[40], *ct, *pt;
	size_t ctlen, ptlen;

	memset(msg, 'm', sizeof(msg));
	ck_assert_int_eq(crypto_aead_seal(k, 1, (const uint8_t *)ident, strlen(ident), msg, sizeof(msg), &ct, &ctlen),
			 CRYPTO_OK);
	for (size_t len = 0; len < ctlen; len++) {
		int r = crypto_aead_open(k, (const uint8_t *)ident, strlen(ident), len ? ct : NULL, len, &pt, &ptlen);
		uint32_t term;

		ck_assert_msg(r == (len < CRYPTO_OVERHEAD ? CRYPTO_ERR_TRUNCATED : CRYPTO_ERR_MAC_INVALID),
			      "len %zu: %d", len, r);
		ck_assert_ptr_null(pt);
		ck_assert_uint_eq(ptlen, 0);
		if (len < CRYPTO_OVERHEAD)
			ck_assert_int_eq(crypto_aead_term(ct, len, &term), CRYPTO_ERR_TRUNCATED);
	}
	/* Header checks come in this order: length first, then version. */
	ct[0] = CRYPTO_FORMAT_MAX + 1;
	ck_assert_int_eq(crypto_aead_open(k, (const uint8_t *)ident, strlen(ident), ct, 10, &pt, &ptlen),
			 CRYPTO_ERR_TRUNCATED);
	ck_assert_int_eq(crypto_aead_open(k, (const uint8_t *)ident, strlen(ident), ct, ctlen, &pt, &ptlen),
			 CRYPTO_ERR_VERSION);
	{
		uint32_t term = 9;

		ck_assert_int_eq(crypto_aead_term(ct, ctlen, &term), CRYPTO_ERR_VERSION);
		ck_assert_uint_eq(term, 0);
	}
	free(ct);
}
END_TEST

START_TEST(test_identity_binding)
{
	static const char a1[] = "secret/4a3b2c1d-0000-4000-8000-00000000000a/1";
	static const char b1[] = "secret/4a3b2c1d-0000-4000-8000-00000000000b/1";
	static const char a2[] = "secret/4a3b2c1d-0000-4000-8000-00000000000a/2";
	const struct crypto_key *k = key32;
	struct crypto_key *other, *short_key;
	uint8_t key[32], *ct, *pt = (uint8_t *)1;
	size_t ctlen, ptlen = 1;

	memcpy(key, crypto_key_bytes(k), 32);
	key[0] ^= 0x80;
	ck_assert_int_eq(crypto_key_from_bytes(key, 32, &other), CRYPTO_OK);
	ck_assert_int_eq(crypto_key_from_bytes(crypto_key_bytes(k), 16, &short_key), CRYPTO_OK);
	ck_assert_int_eq(crypto_aead_seal(k, 1, (const uint8_t *)a1, strlen(a1), (const uint8_t *)"v", 1, &ct, &ctlen),
			 CRYPTO_OK);
	/* The row moved to another uid, an old version replayed, no identity, a longer identity. */
	ck_assert_int_eq(crypto_aead_open(k, (const uint8_t *)b1, strlen(b1), ct, ctlen, &pt, &ptlen),
			 CRYPTO_ERR_MAC_INVALID);
	ck_assert_ptr_null(pt);
	ck_assert_int_eq(crypto_aead_open(k, (const uint8_t *)a2, strlen(a2), ct, ctlen, &pt, &ptlen),
			 CRYPTO_ERR_MAC_INVALID);
	ck_assert_int_eq(crypto_aead_open(k, NULL, 0, ct, ctlen, &pt, &ptlen), CRYPTO_ERR_MAC_INVALID);
	ck_assert_int_eq(crypto_aead_open(k, (const uint8_t *)a1, strlen(a1) + 1, ct, ctlen, &pt, &ptlen),
			 CRYPTO_ERR_MAC_INVALID);
	/* Wrong key: one bit off, or the right key's first half as an AES-128 key. */
	ck_assert_int_eq(crypto_aead_open(other, (const uint8_t *)a1, strlen(a1), ct, ctlen, &pt, &ptlen),
			 CRYPTO_ERR_MAC_INVALID);
	ck_assert_int_eq(crypto_aead_open(short_key, (const uint8_t *)a1, strlen(a1), ct, ctlen, &pt, &ptlen),
			 CRYPTO_ERR_MAC_INVALID);
	ck_assert_ptr_null(pt);
	ck_assert_uint_eq(ptlen, 0);
	ck_assert_int_eq(crypto_aead_open(k, (const uint8_t *)a1, strlen(a1), ct, ctlen, &pt, &ptlen), CRYPTO_OK);
	ck_assert_uint_eq(ptlen, 1);
	ck_assert_int_eq(pt[0], 'v');
	free(pt);
	free(ct);
	crypto_key_free(other);
	crypto_key_free(short_key);
}
END_TEST

START_TEST(test_formats)
{
	static const char ident[] = "secret/orders/4a3b2c1d-0000-4000-8000-00000000000a/1";
	const struct crypto_key *k = key32;
	uint8_t *ct, *pt = (uint8_t *)1, format = 9;
	size_t ctlen, ptlen = 1;

	/* Only formats 1 and 2 are written. */
	for (int bad = 0; bad < 256; bad += 3)
		if (bad != CRYPTO_FORMAT_V1 && bad != CRYPTO_FORMAT_V2)
			ck_assert_int_eq(crypto_aead_seal_format(k, (uint8_t)bad, 1, NULL, 0, (const uint8_t *)"v", 1, &ct,
								 &ctlen),
					 CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_aead_seal_format(k, CRYPTO_FORMAT_V2, 7, (const uint8_t *)ident, strlen(ident),
						 (const uint8_t *)"v", 1, &ct, &ctlen),
			 CRYPTO_OK);
	ck_assert_uint_eq(ct[0], CRYPTO_FORMAT_V2);
	ck_assert_int_eq(crypto_aead_format(ct, ctlen, &format), CRYPTO_OK);
	ck_assert_uint_eq(format, CRYPTO_FORMAT_V2);
	ck_assert_int_eq(crypto_aead_open(k, (const uint8_t *)ident, strlen(ident), ct, ctlen, &pt, &ptlen), CRYPTO_OK);
	ck_assert_uint_eq(ptlen, 1);
	free(pt);
	/* The format byte is authenticated: relabelled as format 1 it no longer opens. */
	ct[0] = CRYPTO_FORMAT_V1;
	ck_assert_int_eq(crypto_aead_format(ct, ctlen, &format), CRYPTO_OK);
	ck_assert_uint_eq(format, CRYPTO_FORMAT_V1);
	ck_assert_int_eq(crypto_aead_open(k, (const uint8_t *)ident, strlen(ident), ct, ctlen, &pt, &ptlen),
			 CRYPTO_ERR_MAC_INVALID);
	ck_assert_ptr_null(pt);
	/* An unknown format, and a header too short to hold one. */
	ct[0] = CRYPTO_FORMAT_MAX + 1;
	ck_assert_int_eq(crypto_aead_format(ct, ctlen, &format), CRYPTO_ERR_VERSION);
	ck_assert_uint_eq(format, 0);
	ck_assert_int_eq(crypto_aead_format(ct, CRYPTO_OVERHEAD - 1, &format), CRYPTO_ERR_TRUNCATED);
	ck_assert_int_eq(crypto_aead_format(ct, ctlen, NULL), CRYPTO_ERR_INVALID_ARG);
	free(ct);
}
END_TEST

START_TEST(test_args)
{
	struct crypto_key *k;
	uint8_t *out = (uint8_t *)1, buf[64] = {1};
	size_t outlen = 1;
	uint32_t term;

	ck_assert_int_eq(crypto_key_generate(16, &k), CRYPTO_OK);
	ck_assert_int_eq(crypto_aead_seal(NULL, 1, NULL, 0, buf, 1, &out, &outlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_ptr_null(out);
	ck_assert_uint_eq(outlen, 0);
	ck_assert_int_eq(crypto_aead_seal(k, 1, NULL, 0, buf, 1, NULL, &outlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_aead_seal(k, 1, NULL, 0, buf, 1, &out, NULL), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_aead_seal(k, 1, NULL, 3, buf, 1, &out, &outlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_aead_seal(k, 1, NULL, 0, NULL, 1, &out, &outlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_aead_open(NULL, NULL, 0, buf, sizeof(buf), &out, &outlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_aead_open(k, NULL, 0, NULL, 40, &out, &outlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_aead_open(k, NULL, 5, buf, sizeof(buf), &out, &outlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_aead_open(k, NULL, 0, buf, sizeof(buf), NULL, &outlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_aead_term(buf, sizeof(buf), NULL), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_aead_term(NULL, 40, &term), CRYPTO_ERR_INVALID_ARG);
	ck_assert_ptr_null(out);
	crypto_key_free(k);
}
END_TEST

/* The 16 MiB and every-bit-flip cases take a few seconds under ASan. */
static const struct cmf_check_opts crypto_aead_opts = { .setup = setup, .teardown = teardown, .timeout = 120 };

CMF_CHECK_SUITE_WITH("crypto_aead", &crypto_aead_opts, test_gcm_known_answers, test_format_layout,
	test_round_trips, test_empty_identity_and_nonce_randomness, test_size_limits, test_every_bit_flip_fails,
	test_every_truncation_fails, test_identity_binding, test_formats, test_args)
