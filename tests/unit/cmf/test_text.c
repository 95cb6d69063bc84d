/* links: cmf/text.c */
#include "cmf/text.h"

#include <string.h>

#include "tests/unit/check_main.h"

START_TEST(test_log_escape)
{
	char out[128];

	/* Plain UTF-8 (é, €, an emoji) passes unchanged; line breaks and tabs read as spaces. */
	ck_assert_uint_eq(cmf_text_log_escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", out, sizeof(out)), 14);
	ck_assert_str_eq(out, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91");
	cmf_text_log_escape("a\r\nb\tc", out, sizeof(out));
	ck_assert_str_eq(out, "a  b c");
	/* C0 and DEL, C1 (U+0085, U+009B as UTF-8), invalid bytes, an overlong and a surrogate: \xNN. */
	cmf_text_log_escape("\x1b[31mred\x07\x7f", out, sizeof(out));
	ck_assert_str_eq(out, "\\x1b[31mred\\x07\\x7f");
	cmf_text_log_escape("\xc2\x85|\xc2\x9b|\xc2\xa0", out, sizeof(out));
	ck_assert_str_eq(out, "\\xc2\\x85|\\xc2\\x9b|\xc2\xa0");
	cmf_text_log_escape("\xff\xfe|\xc0\xaf|\xed\xa0\x80", out, sizeof(out));
	ck_assert_str_eq(out, "\\xff\\xfe|\\xc0\\xaf|\\xed\\xa0\\x80");
	/* Cut at a boundary, never half an escape or half a character. */
	ck_assert_uint_eq(cmf_text_log_escape("ab\x1b", out, 6), 2);
	ck_assert_str_eq(out, "ab");
	ck_assert_uint_eq(cmf_text_log_escape("a\xe2\x82\xac", out, 4), 1);
	ck_assert_str_eq(out, "a");
}
END_TEST

CMF_CHECK_SUITE("text", test_log_escape)
