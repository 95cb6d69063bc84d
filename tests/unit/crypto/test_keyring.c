/* links: crypto/aead.c crypto/key.c crypto/keyring.c crypto/util.c cmf/log.c cmf/text.c crypto/log.c */
/* Unit tests for crypto/keyring.c: wrapping DEKs under the master key, terms, rotation, wrong masters. */
#include "crypto/crypto.h"

#include <stdlib.h>
#include <string.h>

#include "tests/unit/check_main.h"

static const char ident[] = "secret/9c0e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f/1";

static void
seal_ok(const struct crypto_keyring *kr, const char *msg, uint8_t **ct, size_t *ctlen)
{
	ck_assert_int_eq(crypto_keyring_seal(kr, CRYPTO_FORMAT_V1, (const uint8_t *)ident, strlen(ident), (const uint8_t *)msg,
					     strlen(msg), ct, ctlen),
			 CRYPTO_OK);
}

static void
open_expect(const struct crypto_keyring *kr, const uint8_t *ct, size_t ctlen, const char *msg)
{
	uint8_t *pt;
	size_t ptlen;

	ck_assert_int_eq(crypto_keyring_open(kr, (const uint8_t *)ident, strlen(ident), ct, ctlen, &pt, &ptlen),
			 CRYPTO_OK);
	ck_assert_uint_eq(ptlen, strlen(msg));
	ck_assert_str_eq((const char *)pt, msg);
	free(pt);
}

/* Create term 1, seal, reload from the wrapped bytes alone, open. For a 16- and a 32-byte master. */
static void
reload(size_t masterlen)
{
	struct crypto_keyring *kr, *kr2;
	struct crypto_key *master;
	uint8_t *w, *ct;
	size_t wlen, ctlen;
	uint32_t term;

	ck_assert_int_eq(crypto_key_generate(masterlen, &master), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_new(&kr), CRYPTO_OK);
	ck_assert_uint_eq(crypto_keyring_current_term(kr), 0);
	ck_assert_uint_eq(crypto_keyring_count(kr), 0);
	ck_assert_int_eq(crypto_keyring_create(kr, master, 1, &w, &wlen), CRYPTO_OK);
	ck_assert_uint_eq(crypto_keyring_current_term(kr), 1);
	ck_assert_uint_eq(crypto_keyring_count(kr), 1);
	/* The wrapped DEK is a 32-byte key sealed in the ciphertext format under term 1. */
	ck_assert_uint_eq(wlen, 32 + CRYPTO_OVERHEAD);
	ck_assert_int_eq(crypto_aead_term(w, wlen, &term), CRYPTO_OK);
	ck_assert_uint_eq(term, 1);
	seal_ok(kr, "first", &ct, &ctlen);
	ck_assert_int_eq(crypto_aead_term(ct, ctlen, &term), CRYPTO_OK);
	ck_assert_uint_eq(term, 1);

	ck_assert_int_eq(crypto_keyring_new(&kr2), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, master, 1, w, wlen), CRYPTO_OK);
	ck_assert_uint_eq(crypto_keyring_current_term(kr2), 1);
	open_expect(kr2, ct, ctlen, "first");
	/* The same term twice is refused. */
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, master, 1, w, wlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_uint_eq(crypto_keyring_count(kr2), 1);

	free(ct);
	free(w);
	crypto_keyring_free(kr);
	crypto_keyring_free(kr2);
	crypto_key_free(master);
}

START_TEST(test_reload_32)
{
	reload(32);
}
END_TEST

START_TEST(test_reload_16)
{
	reload(16);
}
END_TEST

START_TEST(test_wrong_master)
{
	struct crypto_keyring *kr, *kr2;
	struct crypto_key *master, *wrong, *wrong16;
	uint8_t *w;
	size_t wlen;

	ck_assert_int_eq(crypto_key_generate(32, &master), CRYPTO_OK);
	ck_assert_int_eq(crypto_key_generate(32, &wrong), CRYPTO_OK);
	ck_assert_int_eq(crypto_key_generate(16, &wrong16), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_new(&kr), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_create(kr, master, 1, &w, &wlen), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_new(&kr2), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, wrong, 1, w, wlen), CRYPTO_ERR_MAC_INVALID);
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, wrong16, 1, w, wlen), CRYPTO_ERR_MAC_INVALID);
	ck_assert_uint_eq(crypto_keyring_count(kr2), 0);
	/* A wrapped DEK moved to another term does not unwrap (its term and identity are authenticated). */
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, master, 2, w, wlen), CRYPTO_ERR_MAC_INVALID);
	ck_assert_uint_eq(crypto_keyring_count(kr2), 0);
	/* Nor with its header rewritten to claim the other term. */
	w[4] = 2;
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, master, 2, w, wlen), CRYPTO_ERR_MAC_INVALID);
	w[4] = 1;
	/* Truncated and garbage wrapped bytes. */
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, master, 1, w, 10), CRYPTO_ERR_TRUNCATED);
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, master, 1, NULL, 0), CRYPTO_ERR_TRUNCATED);
	/* A sealed value of the wrong size, correctly wrapped, is not a DEK. */
	{
		uint8_t *bad;
		size_t badlen;

		ck_assert_int_eq(crypto_aead_seal(master, 3, (const uint8_t *)"cmf/keyring/dek/3", 17,
						  (const uint8_t *)"0123456789abcdef", 16, &bad, &badlen),
				 CRYPTO_OK);
		ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, master, 3, bad, badlen), CRYPTO_ERR_KEY_FORMAT);
		free(bad);
	}
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, master, 1, w, wlen), CRYPTO_OK);
	free(w);
	crypto_keyring_free(kr);
	crypto_keyring_free(kr2);
	crypto_key_free(master);
	crypto_key_free(wrong);
	crypto_key_free(wrong16);
}
END_TEST

START_TEST(test_rotation)
{
	struct crypto_keyring *kr, *kr2, *old;
	struct crypto_key *master;
	uint8_t *w1, *w2, *ct1, *ct2, *pt = (uint8_t *)1;
	size_t w1len, w2len, ct1len, ct2len, ptlen = 1;
	uint32_t term;

	ck_assert_int_eq(crypto_key_generate(32, &master), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_new(&kr), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_create(kr, master, 1, &w1, &w1len), CRYPTO_OK);
	seal_ok(kr, "under one", &ct1, &ct1len);
	ck_assert_int_eq(crypto_keyring_create(kr, master, 2, &w2, &w2len), CRYPTO_OK);
	ck_assert_uint_eq(crypto_keyring_current_term(kr), 2);
	ck_assert_uint_eq(crypto_keyring_count(kr), 2);
	open_expect(kr, ct1, ct1len, "under one");
	seal_ok(kr, "under two", &ct2, &ct2len);
	ck_assert_int_eq(crypto_aead_term(ct2, ct2len, &term), CRYPTO_OK);
	ck_assert_uint_eq(term, 2);
	open_expect(kr, ct2, ct2len, "under two");

	/* Terms ≤ the current one are refused, and leave the keyring and the out-parameters alone. */
	{
		uint8_t *w = (uint8_t *)1;
		size_t wlen = 1;

		ck_assert_int_eq(crypto_keyring_create(kr, master, 2, &w, &wlen), CRYPTO_ERR_INVALID_ARG);
		ck_assert_ptr_null(w);
		ck_assert_uint_eq(wlen, 0);
		ck_assert_int_eq(crypto_keyring_create(kr, master, 1, &w, &wlen), CRYPTO_ERR_INVALID_ARG);
		ck_assert_int_eq(crypto_keyring_create(kr, master, 0, &w, &wlen), CRYPTO_ERR_INVALID_ARG);
		ck_assert_uint_eq(crypto_keyring_count(kr), 2);
	}

	/* Loaded in either order, the newest term is current. */
	ck_assert_int_eq(crypto_keyring_new(&kr2), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, master, 2, w2, w2len), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, master, 1, w1, w1len), CRYPTO_OK);
	ck_assert_uint_eq(crypto_keyring_current_term(kr2), 2);
	open_expect(kr2, ct1, ct1len, "under one");
	open_expect(kr2, ct2, ct2len, "under two");
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, master, 0, w1, w1len), CRYPTO_ERR_INVALID_ARG);

	/* A keyring that only holds term 1 does not know term 2. */
	ck_assert_int_eq(crypto_keyring_new(&old), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_add_wrapped(old, master, 1, w1, w1len), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_open(old, (const uint8_t *)ident, strlen(ident), ct2, ct2len, &pt, &ptlen),
			 CRYPTO_ERR_UNKNOWN_TERM);
	ck_assert_ptr_null(pt);
	ck_assert_uint_eq(ptlen, 0);
	open_expect(old, ct1, ct1len, "under one");

	/* Every bit flip through the keyring fails: version, unknown term or MAC, never success. */
	for (size_t bit = 0; bit < ct2len * 8; bit++) {
		int r;

		ct2[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		r = crypto_keyring_open(kr2, (const uint8_t *)ident, strlen(ident), ct2, ct2len, &pt, &ptlen);
		if (bit < 8)
			ck_assert_int_eq(r, CRYPTO_ERR_VERSION);
		else if (bit < 40)
			/* Term 2 with one bit flipped is 3, 0 or a large term: only 3 could be held, and is not. */
			ck_assert_int_eq(r, CRYPTO_ERR_UNKNOWN_TERM);
		else
			ck_assert_int_eq(r, CRYPTO_ERR_MAC_INVALID);
		ck_assert_ptr_null(pt);
		ct2[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* A term flip that lands on a held term (2 → 1 is not one bit; rewrite it) is a MAC failure. */
	ct2[4] = 1;
	ck_assert_int_eq(crypto_keyring_open(kr2, (const uint8_t *)ident, strlen(ident), ct2, ct2len, &pt, &ptlen),
			 CRYPTO_ERR_MAC_INVALID);
	ct2[4] = 2;
	ck_assert_int_eq(crypto_keyring_open(kr2, (const uint8_t *)ident, strlen(ident), ct2, 5, &pt, &ptlen),
			 CRYPTO_ERR_TRUNCATED);

	free(w1);
	free(w2);
	free(ct1);
	free(ct2);
	crypto_keyring_free(kr);
	crypto_keyring_free(kr2);
	crypto_keyring_free(old);
	crypto_key_free(master);
}
END_TEST

START_TEST(test_empty_and_args)
{
	struct crypto_keyring *kr;
	struct crypto_key *master;
	uint8_t *out = (uint8_t *)1, *w;
	size_t outlen = 1, wlen;

	ck_assert_int_eq(crypto_keyring_new(&kr), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_seal(kr, CRYPTO_FORMAT_V1, NULL, 0, (const uint8_t *)"x", 1, &out, &outlen), CRYPTO_ERR_NO_KEY);
	ck_assert_ptr_null(out);
	ck_assert_uint_eq(outlen, 0);
	ck_assert_int_eq(crypto_key_generate(32, &master), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_create(kr, NULL, 1, &w, &wlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_keyring_create(NULL, master, 1, &w, &wlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_keyring_create(kr, master, 1, NULL, &wlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_keyring_seal(NULL, CRYPTO_FORMAT_V1, NULL, 0, NULL, 0, &out, &outlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_keyring_open(NULL, NULL, 0, NULL, 0, &out, &outlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_keyring_new(NULL), CRYPTO_ERR_INVALID_ARG);
	ck_assert_uint_eq(crypto_keyring_current_term(NULL), 0);
	ck_assert_uint_eq(crypto_keyring_count(NULL), 0);
	/* Terms need not be consecutive; the maximum term works. */
	ck_assert_int_eq(crypto_keyring_create(kr, master, UINT32_MAX, &w, &wlen), CRYPTO_OK);
	ck_assert_uint_eq(crypto_keyring_current_term(kr), UINT32_MAX);
	free(w);
	ck_assert_int_eq(crypto_keyring_seal(kr, CRYPTO_FORMAT_V1, NULL, 0, NULL, 0, &out, &outlen), CRYPTO_OK);
	free(out);
	crypto_keyring_free(kr);
	crypto_keyring_free(NULL);
	crypto_key_free(master);
}
END_TEST

/* A master-key rotation: the same DEK wrapped by a new key opens what the old wrapping sealed; the old key
 * cannot open the new wrapping, a wrong `from` refuses, and a wrapping moved to another term does not open. */
START_TEST(test_rewrap_to_a_new_master)
{
	struct crypto_keyring *kr, *kr2;
	struct crypto_key *old, *new, *other;
	uint8_t *w, *w2, *ct, *bad = (uint8_t *)1;
	size_t wlen, w2len, ctlen, badlen = 1;

	ck_assert_int_eq(crypto_key_generate(32, &old), CRYPTO_OK);
	ck_assert_int_eq(crypto_key_generate(16, &new), CRYPTO_OK);
	ck_assert_int_eq(crypto_key_generate(32, &other), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_new(&kr), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_create(kr, old, 3, &w, &wlen), CRYPTO_OK);
	seal_ok(kr, "under term 3", &ct, &ctlen);
	ck_assert_int_eq(crypto_keyring_rewrap(old, new, 3, w, wlen, &w2, &w2len), CRYPTO_OK);
	ck_assert_uint_eq(w2len, wlen);
	ck_assert_int_eq(crypto_keyring_new(&kr2), CRYPTO_OK);
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, old, 3, w2, w2len), CRYPTO_ERR_MAC_INVALID);
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, new, 4, w2, w2len), CRYPTO_ERR_MAC_INVALID);
	ck_assert_int_eq(crypto_keyring_add_wrapped(kr2, new, 3, w2, w2len), CRYPTO_OK);
	open_expect(kr2, ct, ctlen, "under term 3");
	ck_assert_int_eq(crypto_keyring_rewrap(other, new, 3, w, wlen, &bad, &badlen), CRYPTO_ERR_MAC_INVALID);
	ck_assert_ptr_null(bad);
	ck_assert_uint_eq(badlen, 0);
	ck_assert_int_eq(crypto_keyring_rewrap(old, new, 0, w, wlen, &bad, &badlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_keyring_rewrap(NULL, new, 3, w, wlen, &bad, &badlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_keyring_rewrap(old, new, 3, w, wlen, NULL, &badlen), CRYPTO_ERR_INVALID_ARG);
	free(w);
	free(w2);
	free(ct);
	crypto_keyring_free(kr);
	crypto_keyring_free(kr2);
	crypto_key_free(old);
	crypto_key_free(new);
	crypto_key_free(other);
}
END_TEST

CMF_CHECK_SUITE("crypto_keyring", test_reload_32, test_reload_16, test_wrong_master, test_rotation,
	test_empty_and_args, test_rewrap_to_a_new_master)
