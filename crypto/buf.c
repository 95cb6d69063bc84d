/* crypto buf: a capped, growable byte buffer that wipes every block it lets go of (crypto/buf.h). */
#include "crypto/buf.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "crypto/crypto.h"

/*
 * Content bytes the first block holds: a key file or a short text fits in one allocation, and from
 * there capacity doubles, so text built a few bytes at a time is copied O(log n) times, not per append.
 */
#define BUF_FIRST_BLOCK 256

/* The block is `cap` + 1 bytes: room for `cap` bytes of content and the NUL after them. */
struct crypto_buf {
	uint8_t *p;      /* NULL until the first append */
	size_t len;      /* content bytes, ≤ cap ≤ max */
	size_t cap;      /* content bytes the block has room for */
	size_t max;      /* the cap given at creation */
	size_t reserved; /* bytes handed out by the last crypto_buf_reserve, 0 once committed or ended */
};

int
crypto_buf_new(size_t max, struct crypto_buf **out)
{
	struct crypto_buf *b = NULL;
	int r = CRYPTO_ERR_INTERNAL;

	if (out == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*out = NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		r = CRYPTO_ERR_ALLOC;
		goto out;
	}
	b->max = max;
	*out = b;
	b = NULL;
	r = CRYPTO_OK;
out:
	free(b);
	return r;
}

void
crypto_buf_free(struct crypto_buf *b)
{
	if (b == NULL)
		return;
	if (b->p != NULL)
		crypto_freezero(b->p, b->cap + 1);
	free(b);
}

/*
 * Make room for `len` more content bytes (and the NUL), allocating a first block even for 0. A larger
 * block is a new allocation: the content is copied and the old block wiped and freed, never realloc'd.
 */
static int
buf_make_room(struct crypto_buf *b, size_t len)
{
	uint8_t *np = NULL;
	size_t need, ncap;
	int r = CRYPTO_ERR_INTERNAL;

	/* b->len ≤ b->max always, so this cannot overflow. */
	if (len > b->max - b->len) {
		r = CRYPTO_ERR_TOO_LARGE;
		goto out;
	}
	need = b->len + len;
	if (b->p != NULL && need <= b->cap) {
		r = CRYPTO_OK;
		goto out;
	}
	ncap = b->cap > SIZE_MAX / 2 ? SIZE_MAX : b->cap * 2;
	if (ncap < BUF_FIRST_BLOCK)
		ncap = BUF_FIRST_BLOCK;
	if (ncap < need)
		ncap = need;
	if (ncap > b->max)
		ncap = b->max;
	/* need ≤ ncap ≤ max; the NUL needs one byte more, which SIZE_MAX content bytes cannot have. */
	if (ncap == SIZE_MAX || (np = malloc(ncap + 1)) == NULL) {
		r = CRYPTO_ERR_ALLOC;
		goto out;
	}
	if (b->len > 0)
		memcpy(np, b->p, b->len);
	np[b->len] = '\0';
	if (b->p != NULL)
		crypto_freezero(b->p, b->cap + 1);
	b->p = np;
	b->cap = ncap;
	b->reserved = 0;
	np = NULL;
	r = CRYPTO_OK;
out:
	free(np);
	return r;
}

int
crypto_buf_put(struct crypto_buf *b, const void *data, size_t len)
{
	int r;

	if (b == NULL || (data == NULL && len > 0))
		return CRYPTO_ERR_INVALID_ARG;
	b->reserved = 0;
	if (len == 0)
		return CRYPTO_OK;
	if ((r = buf_make_room(b, len)) != CRYPTO_OK)
		return r;
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return CRYPTO_OK;
}

int
crypto_buf_put_str(struct crypto_buf *b, const char *s)
{
	if (s == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	return crypto_buf_put(b, s, strlen(s));
}

int
crypto_buf_reserve(struct crypto_buf *b, size_t len, uint8_t **dp)
{
	int r;

	if (dp == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*dp = NULL;
	if (b == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	b->reserved = 0;
	if ((r = buf_make_room(b, len)) != CRYPTO_OK)
		return r;
	b->reserved = len;
	*dp = b->p + b->len;
	return CRYPTO_OK;
}

int
crypto_buf_commit(struct crypto_buf *b, size_t len)
{
	if (b == NULL || len > b->reserved)
		return CRYPTO_ERR_INVALID_ARG;
	b->len += len;
	b->reserved = 0;
	/* The caller may have written over the old NUL, and may have written past `len`: terminate here. */
	if (b->p != NULL)
		b->p[b->len] = '\0';
	return CRYPTO_OK;
}

size_t
crypto_buf_len(const struct crypto_buf *b)
{
	return b != NULL ? b->len : 0;
}

const uint8_t *
crypto_buf_ptr(const struct crypto_buf *b)
{
	return b != NULL && b->p != NULL ? b->p : (const uint8_t *)"";
}

const char *
crypto_buf_str(const struct crypto_buf *b)
{
	return (const char *)crypto_buf_ptr(b);
}

int
crypto_buf_take(struct crypto_buf *b, uint8_t **out, size_t *outlen)
{
	int r = CRYPTO_ERR_INTERNAL;

	if (out == NULL || outlen == NULL)
		return CRYPTO_ERR_INVALID_ARG;
	*out = NULL;
	*outlen = 0;
	if (b == NULL) {
		r = CRYPTO_ERR_INVALID_ARG;
		goto out;
	}
	/* An empty buffer may have no block yet: the caller still gets one, holding "". */
	if ((r = buf_make_room(b, 0)) != CRYPTO_OK)
		goto out;
	b->p[b->len] = '\0';
	/* Reserved but uncommitted bytes may lie past the NUL: the caller wipes only what it is told of. */
	OPENSSL_cleanse(b->p + b->len + 1, b->cap - b->len);
	*out = b->p;
	*outlen = b->len;
	b->p = NULL;
	b->len = b->cap = b->reserved = 0;
	r = CRYPTO_OK;
out:
	return r;
}
