/* cmf text: bounded, valid-UTF-8 excerpts of untrusted text for messages. */
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

