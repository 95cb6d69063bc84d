/* crypto buf: a growable byte buffer for secret bytes that leaves no copy behind (after OpenSSH's sshbuf). */
#ifndef CMF_CRYPTO_BUF_H
#define CMF_CRYPTO_BUF_H

#include <stddef.h>
#include <stdint.h>

/*
 * A buffer holds at most `max` bytes of content (the cap given to crypto_buf_new), always followed by
 * one NUL byte that is not counted, so text content reads as a C string (binary content may hold NULs
 * of its own: use crypto_buf_len, not strlen). Growing allocates a new block, copies the content,
 * wipes and frees the old block (realloc could leave a copy of the content in freed memory), so the
 * content exists in one place only. crypto_buf_free wipes the whole block.
 *
 * Return codes are crypto/crypto.h's: CRYPTO_OK, CRYPTO_ERR_INVALID_ARG (NULL buffer, bad lengths),
 * CRYPTO_ERR_ALLOC, and CRYPTO_ERR_TOO_LARGE when an append would take the content past the cap. A
 * failed call leaves the buffer as it was: the cap is never an abort, and never a partial append.
 * Pointers given by crypto_buf_ptr, crypto_buf_str and crypto_buf_reserve are borrowed and become
 * invalid at the next call that may grow the buffer (put, put_str, reserve) and at take and free.
 * Not safe for concurrent use.
 */
struct crypto_buf;

/* A new empty buffer capped at `max` bytes of content. Nothing is allocated until the first append. */
int crypto_buf_new(size_t max, struct crypto_buf **out);

/* Wipes every byte of the block (OPENSSL_cleanse) and frees it with the buffer; NULL is a no-op. */
void crypto_buf_free(struct crypto_buf *b);

/* Append `len` bytes from `data` (borrowed; may be NULL when len is 0). */
int crypto_buf_put(struct crypto_buf *b, const void *data, size_t len);

/* Append the string `s` (borrowed) without its NUL: crypto_buf_put(b, s, strlen(s)). */
int crypto_buf_put_str(struct crypto_buf *b, const char *s);

/*
 * Room to write `len` more bytes in place (e.g. with read(2)): on success *dp points just past the
 * content, at `len` writable bytes. They become content only through crypto_buf_commit; until then the
 * content's NUL may be overwritten. Fails as crypto_buf_put would for `len` bytes; *dp is NULL then.
 */
int crypto_buf_reserve(struct crypto_buf *b, size_t len, uint8_t **dp);

/*
 * Count the first `len` bytes written at the last crypto_buf_reserve's *dp as content, and
 * NUL-terminate it. `len` (may be 0) must not exceed what that call reserved: CRYPTO_ERR_INVALID_ARG
 * otherwise, or when nothing is reserved (a put or take in between ends the reservation).
 */
int crypto_buf_commit(struct crypto_buf *b, size_t len);

/* Bytes of content (the NUL not counted); 0 for NULL. */
size_t crypto_buf_len(const struct crypto_buf *b);

/* The content, borrowed (see above), followed by a NUL; "" for an empty or NULL buffer, never NULL. */
const uint8_t *crypto_buf_ptr(const struct crypto_buf *b);

/* The same, as text: the bytes up to the first NUL. */
const char *crypto_buf_str(const struct crypto_buf *b);

/*
 * Take the content out: on success *out is a malloc'd block holding *outlen bytes followed by a NUL
 * (always allocated, "" for an empty buffer), now owned by the caller, who must free it with
 * crypto_freezero(*out, *outlen): nothing past the NUL holds content (the unused tail is wiped here).
 * The buffer is left empty with the same cap, still to be freed with crypto_buf_free.
 * On failure *out is NULL, *outlen 0, and the buffer keeps its content.
 */
int crypto_buf_take(struct crypto_buf *b, uint8_t **out, size_t *outlen);

#endif
