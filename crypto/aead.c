/* crypto AEAD: AES-GCM sealing and opening in cmf's versioned ciphertext format (crypto.h). */
#include "crypto/crypto.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "crypto/log.h"

/*
 * Largest identity (AAD) accepted. Identities are short names ("secret/<name>/<uid>/<version>"); 64 KiB is far
 * above any of them and keeps every length handed to EVP well inside an int.
 */
#define AEAD_MAX_IDENT (64u * 1024u)

/* Offsets inside the header: version(1) | term(4, big endian) | nonce(12). */
#define AEAD_OFF_TERM 1
#define AEAD_OFF_NONCE 5

static const EVP_CIPHER *
aead_cipher(const struct crypto_key *key)
{
	switch (crypto_key_len(key)) {
	case 16:
		return EVP_aes_128_gcm();
	case 32:
		return EVP_aes_256_gcm();
	default:
		return NULL;
	}
}

/*
 * The GCM core, encrypt direction: ct (ptlen bytes) and tag from pt under key and an explicit 96-bit
 * nonce, authenticating aad1 followed by aad2 (either may be empty). Lengths are ≤ CRYPTO_MAX_PLAINTEXT
 * or AEAD_MAX_IDENT (checked by callers), so they fit in an int.
 */
static int
aead_gcm_encrypt(const struct crypto_key *key, const uint8_t nonce[CRYPTO_NONCE_LEN], const uint8_t *aad1,
		 size_t aad1len, const uint8_t *aad2, size_t aad2len, const uint8_t *pt, size_t ptlen, uint8_t *ct,
		 uint8_t tag[CRYPTO_TAG_LEN])
{
	const EVP_CIPHER *cipher = aead_cipher(key);
	EVP_CIPHER_CTX *ctx = NULL;
	int n = 0, fin = 0, r = CRYPTO_ERR_INTERNAL;

	if (cipher == NULL) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL) {
		r = CRYPTO_ERR_ALLOC;
		goto out;
	}
	if (EVP_EncryptInit_ex(ctx, cipher, NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, crypto_key_bytes(key), nonce) != 1)
		goto fail;
	if (aad1len > 0 && EVP_EncryptUpdate(ctx, NULL, &n, aad1, (int)aad1len) != 1)
		goto fail;
	if (aad2len > 0 && EVP_EncryptUpdate(ctx, NULL, &n, aad2, (int)aad2len) != 1)
		goto fail;
	n = 0;
	if (ptlen > 0 && EVP_EncryptUpdate(ctx, ct, &n, pt, (int)ptlen) != 1)
		goto fail;
	if (EVP_EncryptFinal_ex(ctx, ct + n, &fin) != 1 || (size_t)n + (size_t)fin != ptlen ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTO_TAG_LEN, tag) != 1)
		goto fail;
	r = CRYPTO_OK;
	goto out;
fail:
	crypto_log_openssl(__func__);
	r = CRYPTO_ERR_INTERNAL;
out:
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

/*
 * The GCM core, decrypt direction: pt (ctlen bytes, the caller's private buffer) from ct. A tag that does
 * not verify is CRYPTO_ERR_MAC_INVALID and pt is wiped, so no unauthenticated plaintext survives.
 */
static int
aead_gcm_decrypt(const struct crypto_key *key, const uint8_t nonce[CRYPTO_NONCE_LEN], const uint8_t *aad1,
		 size_t aad1len, const uint8_t *aad2, size_t aad2len, const uint8_t *ct, size_t ctlen,
		 const uint8_t tag[CRYPTO_TAG_LEN], uint8_t *pt)
{
	const EVP_CIPHER *cipher = aead_cipher(key);
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t tagcopy[CRYPTO_TAG_LEN];
	int n = 0, fin = 0, r = CRYPTO_ERR_INTERNAL;

	/* EVP_CTRL_GCM_SET_TAG takes a non-const pointer; give it a copy rather than cast const away. */
	memcpy(tagcopy, tag, sizeof(tagcopy));
	if (cipher == NULL) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL) {
		r = CRYPTO_ERR_ALLOC;
		goto out;
	}
	if (EVP_DecryptInit_ex(ctx, cipher, NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, crypto_key_bytes(key), nonce) != 1)
		goto fail;
	if (aad1len > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad1, (int)aad1len) != 1)
		goto fail;
	if (aad2len > 0 && EVP_DecryptUpdate(ctx, NULL, &n, aad2, (int)aad2len) != 1)
		goto fail;
	n = 0;
	if (ctlen > 0 && EVP_DecryptUpdate(ctx, pt, &n, ct, (int)ctlen) != 1)
		goto fail;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTO_TAG_LEN, tagcopy) != 1)
		goto fail;
	if (EVP_DecryptFinal_ex(ctx, pt + n, &fin) != 1) {
		/* Wrong key, wrong AAD or tampering: expected, not an OpenSSL malfunction; nothing to log. */
		ERR_clear_error();
		r = CRYPTO_ERR_MAC_INVALID;
		goto out;
	}
	if ((size_t)n + (size_t)fin != ctlen)
		goto fail;
	r = CRYPTO_OK;
	goto out;
fail:
	crypto_log_openssl(__func__);
	r = CRYPTO_ERR_INTERNAL;
out:
	if (r != CRYPTO_OK && ctlen > 0)
		OPENSSL_cleanse(pt, ctlen);
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

/* Seal with an explicit nonce: crypto_aead_seal without the randomness, so tests can fix the nonce. */
static int
aead_seal_with_nonce(const struct crypto_key *key, uint8_t format, uint32_t term,
		     const uint8_t nonce[CRYPTO_NONCE_LEN], const uint8_t *ident, size_t identlen, const uint8_t *pt, size_t ptlen, uint8_t **out,
		     size_t *outlen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = CRYPTO_ERR_INTERNAL;

	if (out == NULL || outlen == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*out = NULL;
	*outlen = 0;
	if (aead_cipher(key) == NULL || nonce == NULL || format < CRYPTO_FORMAT_V1 || format > CRYPTO_FORMAT_MAX ||
	    (ident == NULL && identlen > 0) ||
	    identlen > AEAD_MAX_IDENT || (pt == NULL && ptlen > 0) || ptlen > CRYPTO_MAX_PLAINTEXT) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	len = ptlen + CRYPTO_OVERHEAD;
	if ((buf = malloc(len)) == NULL) {
		r = CRYPTO_ERR_ALLOC;
		goto out;
	}
	buf[0] = format;
	buf[AEAD_OFF_TERM] = (uint8_t)(term >> 24);
	buf[AEAD_OFF_TERM + 1] = (uint8_t)(term >> 16);
	buf[AEAD_OFF_TERM + 2] = (uint8_t)(term >> 8);
	buf[AEAD_OFF_TERM + 3] = (uint8_t)term;
	memcpy(buf + AEAD_OFF_NONCE, nonce, CRYPTO_NONCE_LEN);
	r = aead_gcm_encrypt(key, nonce, buf, CRYPTO_HEADER_LEN, ident, identlen, pt, ptlen,
			     buf + CRYPTO_HEADER_LEN, buf + CRYPTO_HEADER_LEN + ptlen);
	if (r != CRYPTO_OK)
		goto out;
	*out = buf;
	*outlen = len;
	buf = NULL;
out:
	crypto_freezero(buf, len);
	return r;
}

int
crypto_aead_seal(const struct crypto_key *key, uint32_t term, const uint8_t *ident, size_t identlen,
		 const uint8_t *pt, size_t ptlen, uint8_t **out, size_t *outlen)
{
	return crypto_aead_seal_format(key, CRYPTO_FORMAT_V1, term, ident, identlen, pt, ptlen, out, outlen);
}

int
crypto_aead_seal_format(const struct crypto_key *key, uint8_t format, uint32_t term, const uint8_t *ident,
			size_t identlen, const uint8_t *pt, size_t ptlen, uint8_t **out, size_t *outlen)
{
	uint8_t nonce[CRYPTO_NONCE_LEN];
	int r;

	if (out == NULL || outlen == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*out = NULL;
	*outlen = 0;
	if ((r = crypto_random(nonce, sizeof(nonce))) != CRYPTO_OK)
		goto out;
	r = aead_seal_with_nonce(key, format, term, nonce, ident, identlen, pt, ptlen, out, outlen);
out:
	return r;
}

/* TRUNCATED and VERSION checks shared by open and term. */
static int
aead_check_header(const uint8_t *ct, size_t ctlen)
{
	if (ctlen < CRYPTO_OVERHEAD)
		return CRYPTO_ERR_TRUNCATED;
	if (ct[0] < CRYPTO_FORMAT_V1 || ct[0] > CRYPTO_FORMAT_MAX)
		return CRYPTO_ERR_VERSION;
	return CRYPTO_OK;
}

int
crypto_aead_format(const uint8_t *ct, size_t ctlen, uint8_t *format)
{
	int r = CRYPTO_ERR_INVALID_ARG;

	if (format == NULL)
		goto out;
	*format = 0;
	if (ct == NULL && ctlen > 0)
		goto out;
	if ((r = aead_check_header(ct, ctlen)) != CRYPTO_OK)
		goto out;
	*format = ct[0];
out:
	return r;
}

int
crypto_aead_term(const uint8_t *ct, size_t ctlen, uint32_t *term)
{
	int r;

	if (term == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*term = 0;
	if (ct == NULL && ctlen > 0)
		return CRYPTO_ERR_INVALID_ARG;
	if ((r = aead_check_header(ct, ctlen)) != CRYPTO_OK)
		return r;
	*term = (uint32_t)ct[AEAD_OFF_TERM] << 24 | (uint32_t)ct[AEAD_OFF_TERM + 1] << 16 |
		(uint32_t)ct[AEAD_OFF_TERM + 2] << 8 | (uint32_t)ct[AEAD_OFF_TERM + 3];
	return CRYPTO_OK;
}

int
crypto_aead_open(const struct crypto_key *key, const uint8_t *ident, size_t identlen, const uint8_t *ct,
		 size_t ctlen, uint8_t **out, size_t *outlen)
{
	uint8_t *pt = NULL;
	size_t ptlen = 0;
	int r = CRYPTO_ERR_INTERNAL;

	if (out == NULL || outlen == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*out = NULL;
	*outlen = 0;
	if (aead_cipher(key) == NULL || (ident == NULL && identlen > 0) || identlen > AEAD_MAX_IDENT ||
	    (ct == NULL && ctlen > 0)) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	if ((r = aead_check_header(ct, ctlen)) != CRYPTO_OK)
		goto out;
	ptlen = ctlen - CRYPTO_OVERHEAD;
	if (ptlen > CRYPTO_MAX_PLAINTEXT) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	/* Always allocated (one extra byte for the convenience NUL), even for an empty plaintext. */
	if ((pt = malloc(ptlen + 1)) == NULL) {
		r = CRYPTO_ERR_ALLOC;
		goto out;
	}
	r = aead_gcm_decrypt(key, ct + AEAD_OFF_NONCE, ct, CRYPTO_HEADER_LEN, ident, identlen,
			     ct + CRYPTO_HEADER_LEN, ptlen, ct + CRYPTO_HEADER_LEN + ptlen, pt);
	if (r != CRYPTO_OK) {
		if (r == CRYPTO_ERR_MAC_INVALID)
			crypto_log_debug("%s: authentication tag did not verify", __func__);
		goto out;
	}
	pt[ptlen] = '\0';
	*out = pt;
	*outlen = ptlen;
	pt = NULL;
out:
	crypto_freezero(pt, ptlen + 1);
	return r;
}
