/* cmf text: bounded, valid-UTF-8 excerpts of untrusted text for messages. */
#include <stdbool.h>
#include <string.h>

#include "cmf/text.h"

void
cmf_text_excerpt(const char *s, size_t n, size_t max, char *dst, size_t dstlen)
{
	size_t len = n < max ? n : max;

	if (dstlen < 4) {
		if (dstlen > 0)
			dst[0] = '\0';
		return;
	}
	if (len > dstlen - 4)
		len = dstlen - 4; /* room for "..." and the NUL */
	if (len < n) {
		/* Do not cut a multi-byte character: back off over continuation bytes, then its lead byte. */
		while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		dst[i] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
	}
	dst[len] = '\0';
	if (len < n)
		strcat(dst, "...");
}

/* Length of the valid UTF-8 sequence at `s` (RFC 3629: no overlongs, surrogates or > U+10FFFF), or 0. */
static size_t
utf8_seq_len(const unsigned char *s)
{
	size_t n;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0; /* also stops at the terminating NUL */
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

void
cmf_utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p != '\0') {
		size_t n = utf8_seq_len(p);

		if (n == 0)
			*p++ = '?';
		else
			p += n;
	}
}


size_t
cmf_text_log_escape(const char *src, char *dst, size_t dstlen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)src;
	size_t o = 0;

	if (dstlen == 0)
		return 0;
	while (*p != '\0') {
		size_t n = utf8_seq_len(p);
		/* Line breaks and tabs read as spaces (libpq's messages end with one); C1 controls and any
		 * other byte that is a control or not UTF-8 are shown as \xNN, never passed to a terminal. */
		bool space = *p == '\n' || *p == '\r' || *p == '\t';
		bool escape = !space && (n == 0 || *p < 0x20 || *p == 0x7f || (n == 2 && p[0] == 0xc2 && p[1] < 0xa0));
		size_t need = space ? 1 : escape ? 4 * (n == 0 ? 1 : n) : n;

		if (o + need >= dstlen)
			break;
		if (space) {
			dst[o++] = ' ';
			p++;
		} else if (escape) {
			for (size_t i = 0; i < (n == 0 ? 1 : n); i++, p++) {
				dst[o++] = '\\';
				dst[o++] = 'x';
				dst[o++] = hex[*p >> 4];
				dst[o++] = hex[*p & 0xf];
			}
		} else {
			memcpy(dst + o, p, n);
			o += n;
			p += n;
		}
	}
	dst[o] = '\0';
	return o;
}
