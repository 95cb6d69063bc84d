// links: crypto/buf.c crypto/util.c crypto/log.c
/* Unit tests for crypto/buf.c: appends, the cap to the byte, growth, reserve/commit, take-out, NUL, free. */
#include "crypto/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "tests/unit/check_main.h"

/* Content and length are exactly `want`, and a NUL follows it. */
static void
expect_content(const struct crypto_buf *b, const void *want, size_t wantlen)
{
	const uint8_t *p = crypto_buf_ptr(b);

	ck_assert_uint_eq(crypto_buf_len(b), wantlen);
	ck_assert_ptr_nonnull(p);
	ck_assert(memcmp(p, want, wantlen) == 0);
	ck_assert_uint_eq(p[wantlen], 0);
}

START_TEST(test_appends)
{
	static const uint8_t bin[] = { 'a', 0, 0xff, 'b' };
	struct crypto_buf *b;

	ck_assert_int_eq(crypto_buf_new(1024, &b), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_put_str(b, "key="), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_put(b, "value", 5), CRYPTO_OK);
	ck_assert_str_eq(crypto_buf_str(b), "key=value");
	expect_content(b, "key=value", 9);
	/* Empty appends change nothing, and need no data pointer. */
	ck_assert_int_eq(crypto_buf_put(b, NULL, 0), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_put_str(b, ""), CRYPTO_OK);
	expect_content(b, "key=value", 9);
	/* Binary content with NULs of its own: the length counts them, the text stops at the first. */
	ck_assert_int_eq(crypto_buf_put(b, bin, sizeof(bin)), CRYPTO_OK);
	expect_content(b, "key=valuea\0\xff" "b", 13);
	ck_assert_str_eq(crypto_buf_str(b), "key=valuea");
	crypto_buf_free(b);
}
END_TEST

START_TEST(test_cap_exact_boundary)
{
	struct crypto_buf *b;
	uint8_t *dp;

	ck_assert_int_eq(crypto_buf_new(10, &b), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_put(b, "0123456", 7), CRYPTO_OK);
	/* One append crossing the cap is refused whole: nothing of it is kept. */
	ck_assert_int_eq(crypto_buf_put(b, "7890", 4), CRYPTO_ERR_TOO_LARGE);
	expect_content(b, "0123456", 7);
	/* Exactly up to the cap is fine. */
	ck_assert_int_eq(crypto_buf_put(b, "789", 3), CRYPTO_OK);
	expect_content(b, "0123456789", 10);
	/* One byte past it is not, however it is asked for, and the content stays as it was. */
	ck_assert_int_eq(crypto_buf_put(b, "x", 1), CRYPTO_ERR_TOO_LARGE);
	ck_assert_int_eq(crypto_buf_put_str(b, "x"), CRYPTO_ERR_TOO_LARGE);
	dp = (uint8_t *)1;
	ck_assert_int_eq(crypto_buf_reserve(b, 1, &dp), CRYPTO_ERR_TOO_LARGE);
	ck_assert_ptr_null(dp);
	ck_assert_int_eq(crypto_buf_put(b, "x", SIZE_MAX), CRYPTO_ERR_TOO_LARGE);
	expect_content(b, "0123456789", 10);
	/* Nothing more is still an append that fits. */
	ck_assert_int_eq(crypto_buf_put(b, "", 0), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_reserve(b, 0, &dp), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_commit(b, 0), CRYPTO_OK);
	expect_content(b, "0123456789", 10);
	crypto_buf_free(b);

	/* A zero cap holds only the empty content. */
	ck_assert_int_eq(crypto_buf_new(0, &b), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_put(b, "x", 1), CRYPTO_ERR_TOO_LARGE);
	ck_assert_int_eq(crypto_buf_put(b, "", 0), CRYPTO_OK);
	expect_content(b, "", 0);
	crypto_buf_free(b);
}
END_TEST

START_TEST(test_growth_keeps_content)
{
	/* Several doublings past the first block, one byte and one odd-sized piece at a time. */
	enum { N = 5000 };
	static uint8_t want[N];
	struct crypto_buf *b;
	size_t n = 0;

	for (size_t i = 0; i < N; i++)
		want[i] = (uint8_t)(i * 7 + 1);
	ck_assert_int_eq(crypto_buf_new(N, &b), CRYPTO_OK);
	while (n < N) {
		size_t piece = n % 3 == 0 ? 1 : 37;

		if (piece > N - n)
			piece = N - n;
		ck_assert_int_eq(crypto_buf_put(b, want + n, piece), CRYPTO_OK);
		n += piece;
		expect_content(b, want, n);
	}
	ck_assert_int_eq(crypto_buf_put(b, "x", 1), CRYPTO_ERR_TOO_LARGE);
	expect_content(b, want, N);
	crypto_buf_free(b);

	/* A cap of SIZE_MAX grows like any other. */
	ck_assert_int_eq(crypto_buf_new(SIZE_MAX, &b), CRYPTO_OK);
	for (size_t i = 0; i < N; i += 100)
		ck_assert_int_eq(crypto_buf_put(b, want + i, 100), CRYPTO_OK);
	expect_content(b, want, N);
	crypto_buf_free(b);
}
END_TEST

START_TEST(test_reserve_commit)
{
	struct crypto_buf *b;
	uint8_t *dp;

	ck_assert_int_eq(crypto_buf_new(8, &b), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_put_str(b, "ab"), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_reserve(b, 6, &dp), CRYPTO_OK);
	ck_assert_ptr_eq(dp, crypto_buf_ptr(b) + 2);
	/* Written past what is committed: only the committed bytes count, and the NUL comes after them. */
	memcpy(dp, "cdefgh", 6);
	ck_assert_int_eq(crypto_buf_commit(b, 7), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_buf_commit(b, 3), CRYPTO_OK);
	expect_content(b, "abcde", 5);
	/* A commit ends the reservation; so does a put. */
	ck_assert_int_eq(crypto_buf_commit(b, 1), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_buf_reserve(b, 1, &dp), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_put_str(b, "f"), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_commit(b, 1), CRYPTO_ERR_INVALID_ARG);
	expect_content(b, "abcdef", 6);
	/* Reserving past the cap fails, and the buffer is unchanged. */
	ck_assert_int_eq(crypto_buf_reserve(b, 3, &dp), CRYPTO_ERR_TOO_LARGE);
	ck_assert_int_eq(crypto_buf_reserve(b, 2, &dp), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_commit(b, 0), CRYPTO_OK);
	expect_content(b, "abcdef", 6);
	/* A first reservation allocates the first block. */
	crypto_buf_free(b);
	ck_assert_int_eq(crypto_buf_new(4, &b), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_reserve(b, 4, &dp), CRYPTO_OK);
	memcpy(dp, "wxyz", 4);
	ck_assert_int_eq(crypto_buf_commit(b, 4), CRYPTO_OK);
	expect_content(b, "wxyz", 4);
	crypto_buf_free(b);
}
END_TEST

START_TEST(test_take)
{
	struct crypto_buf *b;
	uint8_t *out = (uint8_t *)1, *dp;
	size_t outlen = 1;

	ck_assert_int_eq(crypto_buf_new(64, &b), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_put_str(b, "password=s3cret"), CRYPTO_OK);
	/* Bytes reserved and written but never committed are not handed over. */
	ck_assert_int_eq(crypto_buf_reserve(b, 4, &dp), CRYPTO_OK);
	memcpy(dp, "XXXX", 4);
	ck_assert_int_eq(crypto_buf_take(b, &out, &outlen), CRYPTO_OK);
	ck_assert_uint_eq(outlen, 15);
	ck_assert_str_eq((const char *)out, "password=s3cret");
	crypto_freezero(out, outlen);
	/* The buffer is left empty, with the same cap, and usable again. */
	expect_content(b, "", 0);
	ck_assert_int_eq(crypto_buf_put_str(b, "again"), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_take(b, &out, &outlen), CRYPTO_OK);
	ck_assert_uint_eq(outlen, 5);
	ck_assert_str_eq((const char *)out, "again");
	crypto_freezero(out, outlen);
	/* An empty buffer still hands over a block: "". Twice in a row, too. */
	ck_assert_int_eq(crypto_buf_take(b, &out, &outlen), CRYPTO_OK);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(outlen, 0);
	ck_assert_str_eq((const char *)out, "");
	crypto_freezero(out, outlen);
	ck_assert_int_eq(crypto_buf_take(b, &out, &outlen), CRYPTO_OK);
	ck_assert_str_eq((const char *)out, "");
	crypto_freezero(out, outlen);
	crypto_buf_free(b);
	/* A buffer that never held anything, with a zero cap. */
	ck_assert_int_eq(crypto_buf_new(0, &b), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_take(b, &out, &outlen), CRYPTO_OK);
	ck_assert_str_eq((const char *)out, "");
	crypto_freezero(out, outlen);
	crypto_buf_free(b);
}
END_TEST

START_TEST(test_nul_termination)
{
	struct crypto_buf *b;
	uint8_t *dp;

	ck_assert_int_eq(crypto_buf_new(300, &b), CRYPTO_OK);
	/* Before anything is allocated the content is already "", never NULL. */
	ck_assert_ptr_nonnull(crypto_buf_str(b));
	ck_assert_str_eq(crypto_buf_str(b), "");
	/* After every append, across the first growth, the text ends right after the content. */
	for (int i = 0; i < 300; i++) {
		ck_assert_int_eq(crypto_buf_put(b, "z", 1), CRYPTO_OK);
		ck_assert_uint_eq(strlen(crypto_buf_str(b)), (size_t)i + 1);
	}
	crypto_buf_free(b);
	/* A commit of fewer bytes than were written terminates after the committed ones. */
	ck_assert_int_eq(crypto_buf_new(16, &b), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_reserve(b, 8, &dp), CRYPTO_OK);
	memset(dp, 'q', 8);
	ck_assert_int_eq(crypto_buf_commit(b, 2), CRYPTO_OK);
	ck_assert_str_eq(crypto_buf_str(b), "qq");
	crypto_buf_free(b);
}
END_TEST

START_TEST(test_free_empty_and_args)
{
	struct crypto_buf *b = (struct crypto_buf *)1;
	uint8_t *out = (uint8_t *)1, *dp = (uint8_t *)1;
	size_t outlen = 1;

	/* Freeing a buffer that never allocated a block, and NULL. */
	ck_assert_int_eq(crypto_buf_new(16, &b), CRYPTO_OK);
	crypto_buf_free(b);
	crypto_buf_free(NULL);
	/* A buffer emptied by take is freed the same way. */
	ck_assert_int_eq(crypto_buf_new(16, &b), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_put_str(b, "x"), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_take(b, &out, &outlen), CRYPTO_OK);
	crypto_freezero(out, outlen);
	crypto_buf_free(b);
	/* Arguments. */
	ck_assert_int_eq(crypto_buf_new(16, NULL), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_buf_put(NULL, "x", 1), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_buf_put_str(NULL, "x"), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_buf_commit(NULL, 0), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_buf_reserve(NULL, 1, &dp), CRYPTO_ERR_INVALID_ARG);
	ck_assert_ptr_null(dp);
	ck_assert_int_eq(crypto_buf_take(NULL, &out, &outlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_ptr_null(out);
	ck_assert_uint_eq(outlen, 0);
	ck_assert_uint_eq(crypto_buf_len(NULL), 0);
	ck_assert_str_eq(crypto_buf_str(NULL), "");
	ck_assert_int_eq(crypto_buf_new(16, &b), CRYPTO_OK);
	ck_assert_int_eq(crypto_buf_put(b, NULL, 1), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_buf_put_str(b, NULL), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_buf_reserve(b, 1, NULL), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_buf_take(b, NULL, &outlen), CRYPTO_ERR_INVALID_ARG);
	ck_assert_int_eq(crypto_buf_take(b, &out, NULL), CRYPTO_ERR_INVALID_ARG);
	expect_content(b, "", 0);
	crypto_buf_free(b);
	/* crypto_freezero is NULL-safe; the cap error has its own text. */
	crypto_freezero(NULL, 16);
	ck_assert_str_ne(crypto_strerror(CRYPTO_ERR_TOO_LARGE), crypto_strerror(CRYPTO_ERR_ALLOC));
}
END_TEST

CMF_CHECK_SUITE("crypto_buf", test_appends, test_cap_exact_boundary, test_growth_keeps_content, test_reserve_commit,
		test_take, test_nul_termination, test_free_empty_and_args)
