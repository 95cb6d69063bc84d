/* cmf request bodies: JSON (jansson) or YAML (libyaml events) into one jansson tree, with messages that never quote body bytes. */
#include "cmf/api/body.h"
#include "cmf/text.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <strings.h>
#include <yaml.h>

/* Keys echoed in messages are cut here: enough to recognise a field name, short enough for one line. */
#define BODY_KEY_ECHO_MAX 64

#define YAML_TAG_STR "tag:yaml.org,2002:str"
#define YAML_TAG_INT "tag:yaml.org,2002:int"
#define YAML_TAG_BOOL "tag:yaml.org,2002:bool"
#define YAML_TAG_NULL "tag:yaml.org,2002:null"
#define YAML_TAG_FLOAT "tag:yaml.org,2002:float"
#define YAML_TAG_MAP "tag:yaml.org,2002:map"
#define YAML_TAG_SEQ "tag:yaml.org,2002:seq"

static void
body_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
body_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int
cmf_body_format_of(const char *content_type)
{
	static const struct {
		const char *type;
		int format;
	} types[] = {
		{ "application/json", CMF_BODY_JSON },
		{ "application/yaml", CMF_BODY_YAML },
		{ "application/x-yaml", CMF_BODY_YAML },
		{ "text/yaml", CMF_BODY_YAML },
	};
	const char *p, *end;
	size_t n;

	if (content_type == NULL)
		return CMF_BODY_JSON;
	p = content_type;
	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strcspn(p, ";");
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	n = (size_t)(end - p);
	if (n == 0)
		return CMF_BODY_JSON;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (strlen(types[i].type) == n && strncasecmp(p, types[i].type, n) == 0)
			return types[i].format;
	}
	return -1;
}

/* ---------------------------------------------------------------------------------------------- */
/* JSON */

/* A short English text for each jansson error code; jansson's own text can quote body bytes. */
static const char *
body_json_error_text(enum json_error_code code)
{
	switch (code) {
	case json_error_out_of_memory:
		return "out of memory";
	case json_error_stack_overflow:
		return "nesting too deep";
	case json_error_invalid_utf8:
		return "invalid UTF-8";
	case json_error_premature_end_of_input:
		return "unexpected end of input";
	case json_error_end_of_input_expected:
		return "unexpected data after the end of the document";
	case json_error_invalid_syntax:
		return "invalid syntax";
	case json_error_invalid_format:
		return "invalid format";
	case json_error_null_character:
		return "NUL characters (\\u0000) are not allowed";
	case json_error_null_byte_in_key:
		return "NUL characters are not allowed in object keys";
	case json_error_duplicate_key:
		return "duplicate object key";
	case json_error_numeric_overflow:
		return "number out of range";
	case json_error_unknown:
	case json_error_cannot_open_file:
	case json_error_invalid_argument:
	case json_error_wrong_type:
	case json_error_null_value:
	case json_error_item_not_found:
	case json_error_index_out_of_range:
		break;
	}
	return "invalid JSON";
}

/*
 * True if `v` nests no deeper than CMF_BODY_MAX_DEPTH (a container counts as one level, so a flat
 * object has depth 1). The recursion stops one level past the limit, so it is bounded by the limit,
 * not by the input.
 */
static bool
body_depth_ok(json_t *v, int depth)
{
	if (!json_is_object(v) && !json_is_array(v))
		return true;
	if (depth > CMF_BODY_MAX_DEPTH)
		return false;
	if (json_is_object(v)) {
		const char *key;
		json_t *child;

		json_object_foreach (v, key, child) {
			if (!body_depth_ok(child, depth + 1))
				return false;
		}
	} else {
		size_t i;
		json_t *child;

		json_array_foreach (v, i, child) {
			if (!body_depth_ok(child, depth + 1))
				return false;
		}
	}
	return true;
}

static int
body_parse_json(const char *buf, size_t len, json_t **out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root = NULL;
	int ret = -1;

	/* No JSON_ALLOW_NUL: "\u0000" is refused, so every string is a C string downstream. */
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		const char *what = body_json_error_text(json_error_code(&jerr));

		if (jerr.line > 0)
			body_set_err(err, errlen, "malformed JSON at line %d, column %d: %s", jerr.line,
				     jerr.column, what);
		else
			body_set_err(err, errlen, "malformed JSON: %s", what);
		goto out;
	}
	if (!json_is_object(root)) {
		body_set_err(err, errlen, "the request body must be a JSON object");
		goto out;
	}
	if (!body_depth_ok(root, 1)) {
		body_set_err(err, errlen, "the request body is nested deeper than %d levels",
			     CMF_BODY_MAX_DEPTH);
		goto out;
	}
	*out = root;
	root = NULL;
	ret = 0;
out:
	json_decref(root);
	return ret;
}

/* ---------------------------------------------------------------------------------------------- */
/* YAML */

/* One open container while building the tree from events. */
struct body_frame {
	json_t *node;     /* the object or array being filled (owned by the stack until popped) */
	char *key;        /* mapping only: the pending key, NULL when a key is expected next */
	size_t key_len;
};

struct body_yaml {
	struct body_frame stack[CMF_BODY_MAX_DEPTH];
	int depth;
	json_t *root;     /* the finished top-level node */
	char *err;
	size_t errlen;
};

static bool
body_is_null_text(const char *s, size_t n)
{
	return n == 0 || (n == 1 && s[0] == '~') || (n == 4 && (strcmp(s, "null") == 0 ||
								 strcmp(s, "Null") == 0 ||
								 strcmp(s, "NULL") == 0));
}

/* 1 for true, 0 for false, -1 for neither (YAML 1.2 core schema spellings). */
static int
body_bool_text(const char *s)
{
	if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
		return 1;
	if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
		return 0;
	return -1;
}

static bool
body_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* [-+]?[0-9]+ */
static bool
body_is_int_text(const char *s, size_t n)
{
	size_t i = 0;

	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	if (i == n)
		return false;
	for (; i < n; i++) {
		if (!body_is_digit(s[i]))
			return false;
	}
	return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? — the YAML 1.2 core schema's decimal floats. */
static bool
body_is_float_text(const char *s, size_t n)
{
	size_t i = 0, digits = 0;

	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	while (i < n && body_is_digit(s[i])) {
		i++;
		digits++;
	}
	if (i < n && s[i] == '.') {
		size_t frac = 0;

		i++;
		while (i < n && body_is_digit(s[i])) {
			i++;
			frac++;
		}
		/* ".5" needs fraction digits; "1." does not. */
		if (digits == 0 && frac == 0)
			return false;
	} else if (digits == 0) {
		return false;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t exp = 0;

		i++;
		if (i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		while (i < n && body_is_digit(s[i])) {
			i++;
			exp++;
		}
		if (exp == 0)
			return false;
	}
	return i == n;
}

/* Decimal text (already checked by body_is_int_text) to json_int_t; -1 when out of range. */
static int
body_parse_int(const char *s, size_t n, json_int_t *v)
{
	bool neg = false;
	size_t i = 0;
	/* Accumulate as a negative number: its range is the larger one, so JSON_INTEGER_MIN fits. */
	json_int_t acc = 0;
	json_int_t min = (json_int_t)1 << (sizeof(json_int_t) * CHAR_BIT - 2);

	min = -min - min; /* the most negative json_int_t, without overflowing on the way */
	if (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-';
		i++;
	}
	for (; i < n; i++) {
		int d = s[i] - '0';

		if (acc < (min + d) / 10)
			return -1;
		acc = acc * 10 - d;
	}
	if (!neg) {
		if (acc == min)
			return -1;
		acc = -acc;
	}
	*v = acc;
	return 0;
}

enum body_kind { BODY_UNRESOLVED, BODY_STR, BODY_INT, BODY_BOOL, BODY_NULL, BODY_FLOAT };

/*
 * The jansson value of a scalar event. Untagged plain scalars are resolved per the YAML 1.2 core
 * schema as body.h states it (decimal integers only: 0x10 and 0o17 are strings, and .inf/.nan are
 * strings since JSON has no such numbers); untagged quoted scalars are strings; the standard tags
 * force their type and the text must fit it.
 */
static json_t *
body_yaml_scalar(struct body_yaml *b, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	int line = (int)ev->start_mark.line + 1;
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	enum body_kind kind = BODY_UNRESOLVED;
	json_t *v = NULL;

	if (memchr(s, '\0', n) != NULL) {
		body_set_err(b->err, b->errlen, "NUL characters are not allowed (line %d)", line);
		return NULL;
	}
	if (tag == NULL) {
		if (!plain)
			kind = BODY_STR;
	} else if (strcmp(tag, YAML_TAG_STR) == 0) {
		kind = BODY_STR;
	} else if (strcmp(tag, YAML_TAG_INT) == 0) {
		kind = BODY_INT;
	} else if (strcmp(tag, YAML_TAG_BOOL) == 0) {
		kind = BODY_BOOL;
	} else if (strcmp(tag, YAML_TAG_NULL) == 0) {
		kind = BODY_NULL;
	} else if (strcmp(tag, YAML_TAG_FLOAT) == 0) {
		kind = BODY_FLOAT;
	} else if (strcmp(tag, YAML_TAG_MAP) == 0 || strcmp(tag, YAML_TAG_SEQ) == 0) {
		body_set_err(b->err, b->errlen, "a scalar cannot be tagged !!%s (line %d)",
			     tag + strlen("tag:yaml.org,2002:"), line);
		return NULL;
	} else {
		body_set_err(b->err, b->errlen, "unsupported YAML tag at line %d", line);
		return NULL;
	}

	if (kind == BODY_UNRESOLVED) {
		/* Untagged plain scalar: resolve. */
		if (body_is_null_text(s, n))
			kind = BODY_NULL;
		else if (body_bool_text(s) >= 0)
			kind = BODY_BOOL;
		else if (body_is_int_text(s, n))
			kind = BODY_INT;
		else if (body_is_float_text(s, n))
			kind = BODY_FLOAT;
		else
			kind = BODY_STR;
	}

	if (kind == BODY_STR) {
		/* libyaml hands over valid UTF-8, so a failure here is an allocation failure. */
		v = json_stringn(s, n);
	} else if (kind == BODY_NULL) {
		if (!body_is_null_text(s, n)) {
			body_set_err(b->err, b->errlen, "value tagged !!null is not null (line %d)", line);
			return NULL;
		}
		v = json_null();
	} else if (kind == BODY_BOOL) {
		int bv = body_bool_text(s);

		if (bv < 0) {
			body_set_err(b->err, b->errlen, "value tagged !!bool is not true or false (line %d)",
				     line);
			return NULL;
		}
		v = json_boolean(bv);
	} else if (kind == BODY_INT) {
		json_int_t iv;

		if (!body_is_int_text(s, n)) {
			body_set_err(b->err, b->errlen, "value tagged !!int is not an integer (line %d)", line);
			return NULL;
		}
		if (body_parse_int(s, n, &iv) != 0) {
			body_set_err(b->err, b->errlen, "integer out of range at line %d", line);
			return NULL;
		}
		v = json_integer(iv);
	} else {
		double dv;

		if (!body_is_float_text(s, n)) {
			body_set_err(b->err, b->errlen, "value tagged !!float is not a decimal number (line %d)",
				     line);
			return NULL;
		}
		/* The text is a checked decimal float, NUL-terminated by libyaml; strtod reads all of it. */
		errno = 0;
		dv = strtod(s, NULL);
		if (errno == ERANGE && (dv > 1.0 || dv < -1.0)) {
			/* Overflow only, as jansson: an underflow to 0 or a denormal is accepted. */
			body_set_err(b->err, b->errlen, "number out of range at line %d", line);
			return NULL;
		}
		v = json_real(dv);
	}
	/* Every refusal above has returned with its message; what is left is an allocation failure. */
	if (v == NULL)
		body_set_err(b->err, b->errlen, "out of memory");
	return v;
}

/* Places a finished node (a new reference, taken over) into the enclosing container or as the root. */
static int
body_yaml_place(struct body_yaml *b, json_t *node, int line)
{
	struct body_frame *f;
	int ret = -1;

	if (b->depth == 0) {
		b->root = node;
		node = NULL;
		ret = 0;
		goto out;
	}
	f = &b->stack[b->depth - 1];
	if (json_is_array(f->node)) {
		if (json_array_append_new(f->node, node) != 0) {
			node = NULL; /* json_array_append_new consumes the reference even on failure */
			body_set_err(b->err, b->errlen, "out of memory");
			goto out;
		}
		node = NULL;
		ret = 0;
		goto out;
	}
	if (f->key == NULL) {
		/* A key position: keys must be scalars, and scalar keys are handled by the caller. */
		body_set_err(b->err, b->errlen, "mapping keys must be scalars (line %d)", line);
		goto out;
	}
	if (json_object_setn_new(f->node, f->key, f->key_len, node) != 0) {
		node = NULL; /* json_object_setn_new consumes the reference even on failure */
		body_set_err(b->err, b->errlen, "invalid key or out of memory (line %d)", line);
		goto out;
	}
	node = NULL;
	free(f->key);
	f->key = NULL;
	ret = 0;
out:
	json_decref(node);
	return ret;
}

/* A scalar in key position: remember it as the pending key (its text, whatever it resolves to). */
static int
body_yaml_key(struct body_yaml *b, const yaml_event_t *ev)
{
	struct body_frame *f = &b->stack[b->depth - 1];
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	int line = (int)ev->start_mark.line + 1;

	if (tag != NULL && strcmp(tag, YAML_TAG_STR) != 0 && strcmp(tag, YAML_TAG_INT) != 0 &&
	    strcmp(tag, YAML_TAG_BOOL) != 0 && strcmp(tag, YAML_TAG_NULL) != 0 &&
	    strcmp(tag, YAML_TAG_FLOAT) != 0) {
		body_set_err(b->err, b->errlen, "unsupported YAML tag at line %d", line);
		return -1;
	}
	if (memchr(s, '\0', n) != NULL) {
		body_set_err(b->err, b->errlen, "NUL characters are not allowed in keys (line %d)", line);
		return -1;
	}
	if (json_object_getn(f->node, s, n) != NULL) {
		char shown[BODY_KEY_ECHO_MAX + 4];

		cmf_text_excerpt(s, n, BODY_KEY_ECHO_MAX, shown, sizeof(shown));
		body_set_err(b->err, b->errlen, "duplicate key '%s' at line %d", shown, line);
		return -1;
	}
	f->key = malloc(n + 1);
	if (f->key == NULL) {
		body_set_err(b->err, b->errlen, "out of memory");
		return -1;
	}
	memcpy(f->key, s, n);
	f->key[n] = '\0';
	f->key_len = n;
	return 0;
}

static bool
body_yaml_at_key(const struct body_yaml *b)
{
	const struct body_frame *f;

	if (b->depth == 0)
		return false;
	f = &b->stack[b->depth - 1];
	return json_is_object(f->node) && f->key == NULL;
}

/* Opens a mapping or sequence (start event); its node is placed when the matching end arrives. */
static int
body_yaml_open(struct body_yaml *b, const yaml_event_t *ev, bool mapping)
{
	const char *tag = (const char *)(mapping ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
	int line = (int)ev->start_mark.line + 1;
	struct body_frame *f;

	if (tag != NULL && strcmp(tag, mapping ? YAML_TAG_MAP : YAML_TAG_SEQ) != 0) {
		body_set_err(b->err, b->errlen, "unsupported YAML tag at line %d", line);
		return -1;
	}
	if (body_yaml_at_key(b)) {
		body_set_err(b->err, b->errlen, "mapping keys must be scalars (line %d)", line);
		return -1;
	}
	if (b->depth >= CMF_BODY_MAX_DEPTH) {
		body_set_err(b->err, b->errlen, "the request body is nested deeper than %d levels (line %d)",
			     CMF_BODY_MAX_DEPTH, line);
		return -1;
	}
	f = &b->stack[b->depth];
	f->node = mapping ? json_object() : json_array();
	f->key = NULL;
	f->key_len = 0;
	if (f->node == NULL) {
		body_set_err(b->err, b->errlen, "out of memory");
		return -1;
	}
	b->depth++;
	return 0;
}

static int
body_yaml_close(struct body_yaml *b, const yaml_event_t *ev)
{
	struct body_frame *f = &b->stack[b->depth - 1];
	json_t *node = f->node;

	/* libyaml only emits a mapping end after a complete key/value pair, so no key is pending. */
	free(f->key);
	f->key = NULL;
	f->node = NULL;
	b->depth--;
	return body_yaml_place(b, node, (int)ev->start_mark.line + 1);
}

static void
body_yaml_error(const yaml_parser_t *parser, char *err, size_t errlen)
{
	/* parser->problem is one of libyaml's fixed texts; problem_value (a body byte) is never shown. */
	const char *problem = parser->problem != NULL ? parser->problem : "unknown error";

	switch (parser->error) {
	case YAML_MEMORY_ERROR:
		body_set_err(err, errlen, "out of memory");
		break;
	case YAML_READER_ERROR:
		body_set_err(err, errlen, "malformed YAML at byte offset %zu: %s", parser->problem_offset,
			     problem);
		break;
	case YAML_NO_ERROR:
	case YAML_SCANNER_ERROR:
	case YAML_PARSER_ERROR:
	case YAML_COMPOSER_ERROR:
	case YAML_WRITER_ERROR:
	case YAML_EMITTER_ERROR:
	default:
		body_set_err(err, errlen, "malformed YAML at line %zu, column %zu: %s",
			     parser->problem_mark.line + 1, parser->problem_mark.column + 1, problem);
		break;
	}
}

/*
 * libyaml's allocator, replaced: a YAML body holds secret values, and libyaml keeps copies of them in
 * buffers it frees without wiping (the decoded input, scanner strings grown by realloc, tokens). It
 * allocates only through these four functions, which it calls through its PLT, so this executable's
 * definitions interpose on the library's own (glibc's malloc_usable_size tells each block's size).
 * Every block is wiped before it is freed, and a grown block is moved by hand so the old copy is wiped.
 */
void *yaml_malloc(size_t size);
void *yaml_realloc(void *ptr, size_t size);
void yaml_free(void *ptr);
yaml_char_t *yaml_strdup(const yaml_char_t *str);

void *
yaml_malloc(size_t size)
{
	return malloc(size ? size : 1);
}

void
yaml_free(void *ptr)
{
	if (ptr == NULL)
		return;
	OPENSSL_cleanse(ptr, malloc_usable_size(ptr));
	free(ptr);
}

void *
yaml_realloc(void *ptr, size_t size)
{
	size_t old;
	void *moved;

	if (ptr == NULL)
		return yaml_malloc(size);
	moved = yaml_malloc(size);
	if (moved == NULL)
		return NULL; /* as realloc: the old block stays the caller's */
	old = malloc_usable_size(ptr);
	memcpy(moved, ptr, old < size ? old : size);
	yaml_free(ptr);
	return moved;
}

yaml_char_t *
yaml_strdup(const yaml_char_t *str)
{
	size_t n;
	yaml_char_t *copy;

	if (str == NULL)
		return NULL;
	n = strlen((const char *)str) + 1;
	copy = yaml_malloc(n);
	if (copy != NULL)
		memcpy(copy, str, n);
	return copy;
}

static int
body_parse_yaml(const char *buf, size_t len, json_t **out, char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	bool parser_ok = false, have_event = false, done = false;
	int documents = 0;
	struct body_yaml b;
	int ret = -1;

	memset(&b, 0, sizeof(b));
	b.err = err;
	b.errlen = errlen;
	if (!yaml_parser_initialize(&parser)) {
		body_set_err(err, errlen, "out of memory");
		goto out;
	}
	parser_ok = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

	while (!done) {
		int line;

		if (!yaml_parser_parse(&parser, &ev)) {
			body_yaml_error(&parser, err, errlen);
			goto out;
		}
		have_event = true;
		line = (int)ev.start_mark.line + 1;
		switch (ev.type) {
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
		case YAML_NO_EVENT:
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++documents > 1) {
				body_set_err(err, errlen,
					     "the request body must hold one YAML document, found a second at line %d",
					     line);
				goto out;
			}
			break;
		case YAML_ALIAS_EVENT:
			body_set_err(err, errlen, "YAML anchors and aliases are not supported (line %d)", line);
			goto out;
		case YAML_SCALAR_EVENT: {
			json_t *v;

			if (ev.data.scalar.anchor != NULL) {
				body_set_err(err, errlen, "YAML anchors and aliases are not supported (line %d)",
					     line);
				goto out;
			}
			if (body_yaml_at_key(&b)) {
				if (body_yaml_key(&b, &ev) != 0)
					goto out;
				break;
			}
			v = body_yaml_scalar(&b, &ev);
			if (v == NULL)
				goto out;
			if (body_yaml_place(&b, v, line) != 0)
				goto out;
			break;
		}
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT: {
			bool mapping = ev.type == YAML_MAPPING_START_EVENT;
			const yaml_char_t *anchor = mapping ? ev.data.mapping_start.anchor
							    : ev.data.sequence_start.anchor;

			if (anchor != NULL) {
				body_set_err(err, errlen, "YAML anchors and aliases are not supported (line %d)",
					     line);
				goto out;
			}
			if (body_yaml_open(&b, &ev, mapping) != 0)
				goto out;
			break;
		}
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (body_yaml_close(&b, &ev) != 0)
				goto out;
			break;
		}
		yaml_event_delete(&ev);
		have_event = false;
	}

	if (documents == 0 || b.root == NULL) {
		body_set_err(err, errlen, "the request body is empty");
		goto out;
	}
	if (!json_is_object(b.root)) {
		body_set_err(err, errlen, "the request body must be a YAML mapping (a JSON object)");
		goto out;
	}
	*out = b.root;
	b.root = NULL;
	ret = 0;
out:
	if (have_event)
		yaml_event_delete(&ev);
	if (parser_ok)
		yaml_parser_delete(&parser);
	while (b.depth > 0) {
		b.depth--;
		free(b.stack[b.depth].key);
		json_decref(b.stack[b.depth].node);
	}
	json_decref(b.root);
	return ret;
}

int
cmf_body_parse(const char *buf, size_t len, enum cmf_body_format format, json_t **out, char *err,
	       size_t errlen)
{
	int ret = -1;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (len == 0) {
		body_set_err(err, errlen, "the request body is empty");
		goto out;
	}
	switch (format) {
	case CMF_BODY_JSON:
		ret = body_parse_json(buf, len, out, err, errlen);
		break;
	case CMF_BODY_YAML:
		ret = body_parse_yaml(buf, len, out, err, errlen);
		break;
	default:
		body_set_err(err, errlen, "unsupported body format");
		break;
	}
out:
	return ret;
}
