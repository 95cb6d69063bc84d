/* crypto keyring: data keys (DEKs) by term, wrapped by the master key, and sealing under the newest. */
#include "crypto/crypto.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* DEKs are AES-256 (DESIGN.md "Envelope"). */
#define KEYRING_DEK_LEN 32

/* "cmf/keyring/dek/" (16) + at most 10 digits of a uint32_t + NUL = 27; 32 leaves room. */
#define KEYRING_IDENT_SIZE 32

struct keyring_entry {
	uint32_t term;
	struct crypto_key *dek;
};

/* Entries sorted by ascending term, so the current (highest) term is the last one. */
struct crypto_keyring {
	struct keyring_entry *v;
	size_t n;
};

int
crypto_keyring_new(struct crypto_keyring **out)
{
	if (out == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*out = calloc(1, sizeof(**out));
	return *out == NULL ? CRYPTO_ERR_ALLOC : CRYPTO_OK;
}

void
crypto_keyring_free(struct crypto_keyring *kr)
{
	if (kr == NULL)
		return;
	for (size_t i = 0; i < kr->n; i++)
		crypto_key_free(kr->v[i].dek);
	free(kr->v);
	free(kr);
}

uint32_t
crypto_keyring_current_term(const struct crypto_keyring *kr)
{
	return kr == NULL || kr->n == 0 ? 0 : kr->v[kr->n - 1].term;
}

size_t
crypto_keyring_count(const struct crypto_keyring *kr)
{
	return kr == NULL ? 0 : kr->n;
}

static const struct crypto_key *
keyring_find(const struct crypto_keyring *kr, uint32_t term)
{
	for (size_t i = 0; i < kr->n; i++)
		if (kr->v[i].term == term)
			return kr->v[i].dek;
	return NULL;
}

/* The AAD that binds a wrapped DEK to its term: "cmf/keyring/dek/<term>" (crypto.h). */
static size_t
keyring_ident(uint32_t term, char buf[KEYRING_IDENT_SIZE])
{
	int n = snprintf(buf, KEYRING_IDENT_SIZE, "cmf/keyring/dek/%" PRIu32, term);

	return n < 0 ? 0 : (size_t)n;
}

/* Insert `dek` under `term` (not yet held) keeping the order; takes `dek` over only on success. */
static int
keyring_insert(struct crypto_keyring *kr, uint32_t term, struct crypto_key *dek)
{
	struct keyring_entry *v;
	size_t i;

	/* Overflow guard for the realloc size below; unreachable in practice (a handful of terms). */
	if (kr->n >= SIZE_MAX / sizeof(*v) - 1)
		return CRYPTO_ERR_ALLOC;
	if ((v = realloc(kr->v, (kr->n + 1) * sizeof(*v))) == NULL)
		return CRYPTO_ERR_ALLOC;
	kr->v = v;
	for (i = kr->n; i > 0 && v[i - 1].term > term; i--)
		v[i] = v[i - 1];
	v[i].term = term;
	v[i].dek = dek;
	kr->n++;
	return CRYPTO_OK;
}

int
crypto_keyring_add_wrapped(struct crypto_keyring *kr, const struct crypto_key *master, uint32_t term,
			   const uint8_t *wrapped, size_t wrappedlen)
{
	char ident[KEYRING_IDENT_SIZE];
	struct crypto_key *dek = NULL;
	uint8_t *raw = NULL;
	size_t rawlen = 0, identlen;
	int r = CRYPTO_ERR_INTERNAL;

	/* Term 0 is what current_term reports for an empty keyring, so it never names a DEK. */
	if (kr == NULL || master == NULL || term == 0 || (wrapped == NULL && wrappedlen > 0) ||
	    keyring_find(kr, term) != NULL) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	identlen = keyring_ident(term, ident);
	/* A DEK wrapped for another term fails here too: its header term and identity are both in the AAD. */
	if ((r = crypto_aead_open(master, (const uint8_t *)ident, identlen, wrapped, wrappedlen, &raw,
				  &rawlen)) != CRYPTO_OK)
		goto out;
	if (rawlen != KEYRING_DEK_LEN) {
		/* Authentic, yet not a DEK: only a writer holding the master key could have stored it. */
		r = CRYPTO_ERR_KEY_FORMAT;
		goto out;
	}
	if ((r = crypto_key_from_bytes(raw, rawlen, &dek)) != CRYPTO_OK)
		goto out;
	if ((r = keyring_insert(kr, term, dek)) != CRYPTO_OK)
		goto out;
	dek = NULL;
out:
	crypto_freezero(raw, rawlen);
	crypto_key_free(dek);
	return r;
}

int
crypto_keyring_create(struct crypto_keyring *kr, const struct crypto_key *master, uint32_t term,
		      uint8_t **wrapped, size_t *wrappedlen)
{
	char ident[KEYRING_IDENT_SIZE];
	struct crypto_key *dek = NULL;
	uint8_t *w = NULL;
	size_t wlen = 0, identlen;
	int r = CRYPTO_ERR_INTERNAL;

	if (wrapped == NULL || wrappedlen == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*wrapped = NULL;
	*wrappedlen = 0;
	if (kr == NULL || master == NULL || term <= crypto_keyring_current_term(kr)) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	if ((r = crypto_key_generate(KEYRING_DEK_LEN, &dek)) != CRYPTO_OK)
		goto out;
	identlen = keyring_ident(term, ident);
	if ((r = crypto_aead_seal(master, term, (const uint8_t *)ident, identlen, crypto_key_bytes(dek),
				  crypto_key_len(dek), &w, &wlen)) != CRYPTO_OK)
		goto out;
	if ((r = keyring_insert(kr, term, dek)) != CRYPTO_OK)
		goto out;
	dek = NULL;
	*wrapped = w;
	*wrappedlen = wlen;
	w = NULL;
out:
	free(w);
	crypto_key_free(dek);
	return r;
}

int
crypto_keyring_rewrap(const struct crypto_key *from, const struct crypto_key *to, uint32_t term,
		      const uint8_t *wrapped, size_t wrappedlen, uint8_t **out, size_t *outlen)
{
	char ident[KEYRING_IDENT_SIZE];
	uint8_t *raw = NULL;
	size_t rawlen = 0, identlen;
	int r;

	if (out == NULL || outlen == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*out = NULL;
	*outlen = 0;
	if (from == NULL || to == NULL || term == 0 || (wrapped == NULL && wrappedlen > 0))
		return CRYPTO_ERR_INVALID_ARG;
	identlen = keyring_ident(term, ident);
	r = crypto_aead_open(from, (const uint8_t *)ident, identlen, wrapped, wrappedlen, &raw, &rawlen);
	if (r == CRYPTO_OK && rawlen != KEYRING_DEK_LEN)
		r = CRYPTO_ERR_KEY_FORMAT;
	if (r == CRYPTO_OK)
		r = crypto_aead_seal(to, term, (const uint8_t *)ident, identlen, raw, rawlen, out, outlen);
	crypto_freezero(raw, rawlen);
	return r;
}

int
crypto_keyring_seal(const struct crypto_keyring *kr, uint8_t format, const uint8_t *ident, size_t identlen,
		    const uint8_t *pt, size_t ptlen, uint8_t **out, size_t *outlen)
{
	int r;

	if (out == NULL || outlen == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*out = NULL;
	*outlen = 0;
	if (kr == NULL) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	if (kr->n == 0) {
		r = CRYPTO_ERR_NO_KEY;
		goto out;
	}
	r = crypto_aead_seal_format(kr->v[kr->n - 1].dek, format, kr->v[kr->n - 1].term, ident, identlen, pt, ptlen,
				    out, outlen);
out:
	return r;
}

int
crypto_keyring_open(const struct crypto_keyring *kr, const uint8_t *ident, size_t identlen, const uint8_t *ct,
		    size_t ctlen, uint8_t **out, size_t *outlen)
{
	const struct crypto_key *dek;
	uint32_t term = 0;
	int r;

	if (out == NULL || outlen == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*out = NULL;
	*outlen = 0;
	if (kr == NULL) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	if ((r = crypto_aead_term(ct, ctlen, &term)) != CRYPTO_OK)
		goto out;
	if ((dek = keyring_find(kr, term)) == NULL) {
		r = CRYPTO_ERR_UNKNOWN_TERM;
		goto out;
	}
	r = crypto_aead_open(dek, ident, identlen, ct, ctlen, out, outlen);
out:
	return r;
}
