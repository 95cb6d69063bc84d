/* cmf text: making untrusted text safe to quote in client messages and logs (UTF-8, bounded). */
#ifndef CMF_TEXT_H
#define CMF_TEXT_H

#include <stddef.h>

/*
 * Copy an excerpt of `s` (`n` bytes of valid UTF-8, not necessarily NUL-terminated) into `dst`
 * (size `dstlen`, at least 4): at most `max` bytes, never half a character, control bytes as '?', and
 * "..." appended when anything was cut. Used to echo keys and found values in error messages.
 */
void cmf_text_excerpt(const char *s, size_t n, size_t max, char *dst, size_t dstlen);

/*
 * Make `s` valid UTF-8 in place: every byte of an invalid or truncated sequence becomes '?'. Client
 * messages quote names from paths and bodies, and JSON (jansson) refuses invalid UTF-8.
 */
void cmf_utf8_sanitize(char *s);

/*
 * Copy NUL-terminated `src` into `dst` (size `dstlen` > 0, always NUL-terminated) as one safe log line:
 * CR, LF and TAB become spaces; every other control byte (C0, DEL, the C1 range U+0080-U+009F) and every
 * byte that is not part of valid UTF-8 becomes the four characters \xNN; what does not fit is cut at a
 * character boundary. Returns the length written. Paths and names from requests reach log lines.
 */
size_t cmf_text_log_escape(const char *src, char *dst, size_t dstlen);

#endif
