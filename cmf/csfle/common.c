/* cmf csfle: the helpers every CSFLE check uses: messages, quoted names, string sets and the keys of spec objects. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cmf/csfle/internal.h"
#include "cmf/text.h"

void
csfle_msg_add(json_t *arr, const char *fmt, ...)
{
	char buf[CSFLE_MSG_MAX];
	va_list ap;

	if (arr == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cmf_utf8_sanitize(buf); /* vsnprintf may have cut a character in two */
	json_array_append_new(arr, json_string(buf));
}

const char *
csfle_quote(const char *s, char *dst, size_t len)
{
	cmf_text_excerpt(s, strlen(s), CSFLE_QUOTE_MAX, dst, len);
	return dst;
}

int
csfle_str_in(const char *s, const char *const *set)
{
	for (size_t i = 0; set[i] != NULL; i++)
		if (strcmp(s, set[i]) == 0)
			return 1;
	return 0;
}

int
csfle_array_has_string(json_t *arr, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach (arr, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return 1;
	return 0;
}

void
csfle_array_add_unique(json_t *arr, const char *s)
{
	if (arr != NULL && !csfle_array_has_string(arr, s))
		json_array_append_new(arr, json_string(s));
}

const char *
csfle_skip(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* The key lists joined are cmf's own (spec objects, credential sets: at most 8 short names, < 100 bytes). */
#define KEYS_TEXT_MAX (CSFLE_MSG_MAX / 2)

const char *
csfle_keys_text(const char *const *keys, char *dst, size_t len)
{
	size_t n = 0;

	dst[0] = '\0';
	for (size_t i = 0; keys[i] != NULL && n < len; i++)
		n += (size_t)snprintf(dst + n, len - n, "%s%s", i > 0 ? ", " : "", keys[i]);
	return dst;
}

void
csfle_unknown_keys(json_t *obj, const char *path, const char *const *allowed, json_t *problems)
{
	char qb[CSFLE_QUOTE_BUF], known[KEYS_TEXT_MAX];
	const char *k;
	json_t *v;

	csfle_keys_text(allowed, known, sizeof(known));
	json_object_foreach (obj, k, v)
		if (!csfle_str_in(k, allowed))
			csfle_msg_add(problems, "%s: unknown field '%s' (known: %s)", path,
				      csfle_quote(k, qb, sizeof(qb)), known);
}

int
csfle_check_object(json_t *obj, const char *path, const char *const *allowed, json_t *problems)
{
	char known[KEYS_TEXT_MAX];

	if (!json_is_object(obj)) {
		csfle_msg_add(problems, "%s must be an object {%s}", path,
			      csfle_keys_text(allowed, known, sizeof(known)));
		return 0;
	}
	csfle_unknown_keys(obj, path, allowed, problems);
	return 1;
}

const char *
csfle_get_string(json_t *obj, const char *key, const char *path, int required, json_t *problems)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL) {
		if (required)
			csfle_msg_add(problems, "%s.%s is required", path, key);
		return NULL;
	}
	if (!json_is_string(v) || json_string_length(v) == 0) {
		csfle_msg_add(problems, "%s.%s must be a non-empty string", path, key);
		return NULL;
	}
	return json_string_value(v);
}
