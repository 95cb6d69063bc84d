/* cmf render: turn a resolved configuration into the text a Flink job or Kafka client loads as is. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/api/render.h"
#include "crypto/buf.h"
#include "crypto/crypto.h"

/*
 * Cap on one rendered text. Its inputs are at most four stored documents of at most
 * server.maxBodyBytes (16 MiB at most) each; escaping writes at most six bytes per input byte, and
 * Connect repeats a Schema Registry property three times, so no configuration cmf accepts renders
 * near 1 GiB: the cap stops a runaway with an error instead of growing without bound.
 */
#define RENDER_TEXT_MAX ((size_t)1 << 30)

/*
 * The text being built, in a wiping buffer (its content may be secret), and the first error met:
 * once an append fails the later ones are skipped, and the error is reported once, by text_take.
 */
struct text {
	struct crypto_buf *b;
	int r;
};

static void
text_init(struct text *t)
{
	t->b = NULL;
	t->r = crypto_buf_new(RENDER_TEXT_MAX, &t->b);
}

static void
put(struct text *t, const char *s, size_t n)
{
	if (t->r == CRYPTO_OK)
		t->r = crypto_buf_put(t->b, s, n);
}

static void
put_str(struct text *t, const char *s)
{
	put(t, s, strlen(s));
}

/* Wipes whatever the text holds. */
static void
text_free(struct text *t)
{
	crypto_buf_free(t->b);
	t->b = NULL;
}

/*
 * Hand the text over (malloc'd, NUL-terminated; the caller wipes it), or NULL with a client message in
 * `err` when building it failed.
 */
static char *
text_take(struct text *t, char *err, size_t errlen)
{
	uint8_t *p = NULL;
	size_t len;

	if (t->r == CRYPTO_OK)
		t->r = crypto_buf_take(t->b, &p, &len);
	if (t->r == CRYPTO_ERR_TOO_LARGE) {
		if (err != NULL)
			snprintf(err, errlen, "the rendered configuration is larger than %zu bytes",
				 (size_t)RENDER_TEXT_MAX);
	} else if (t->r != CRYPTO_OK) {
		if (err != NULL)
			snprintf(err, errlen, "out of memory");
	}
	return (char *)p;
}

json_t *
cmf_render_merge(json_t *config, json_t *secret)
{
	json_t *m = json_deep_copy(config);

	if (m != NULL && secret != NULL)
		json_object_update(m, secret);
	return m;
}

char *
cmf_render_json(json_t *kafka, json_t *sr, json_t *warnings, char *err, size_t errlen)
{
	json_t *j = json_pack("{s:O,s:O}", "kafka", kafka, "schemaRegistry", sr);

	if (j != NULL && json_array_size(warnings) > 0)
		json_object_set(j, "warnings", warnings);
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(j);
	if (text == NULL)
		snprintf(err, errlen, "out of memory");
	return text;
}

/* Decode one UTF-8 sequence (the input is valid UTF-8: jansson checked it); returns its length. */
static size_t
utf8_next(const unsigned char *s, unsigned *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		*cp = ((s[0] & 0x1fu) << 6) | (s[1] & 0x3fu);
		return 2;
	}
	if ((s[0] & 0xf0) == 0xe0) {
		*cp = ((s[0] & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
		return 3;
	}
	*cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3fu) << 12) | ((s[2] & 0x3fu) << 6) | (s[3] & 0x3fu);
	return 4;
}

static void
put_u(struct text *b, unsigned unit)
{
	char u[12];

	/* Uppercase hex, as Properties.store writes it. */
	snprintf(u, sizeof(u), "\\u%04X", unit & 0xffffu);
	put(b, u, 6);
}

/* java.util.Properties.saveConvert(s, escapeSpace = is_key, escUnicode = true). */
static void
properties_escape(struct text *b, const char *s, int is_key)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (*p != '\0') {
		unsigned cp;
		size_t n = utf8_next(p, &cp);

		p += n;
		switch (cp) {
		case ' ':
			put_str(b, (i == 0 || is_key) ? "\\ " : " ");
			break;
		case '\t':
			put_str(b, "\\t");
			break;
		case '\n':
			put_str(b, "\\n");
			break;
		case '\r':
			put_str(b, "\\r");
			break;
		case '\f':
			put_str(b, "\\f");
			break;
		case '=':
		case ':':
		case '#':
		case '!':
		case '\\': {
			char e[3] = { '\\', (char)cp, '\0' };

			put_str(b, e);
			break;
		}
		default:
			if (cp < 0x20 || cp > 0x7e) {
				if (cp > 0xffff) {
					/* Java strings are UTF-16: a character above the BMP is a surrogate pair. */
					cp -= 0x10000;
					put_u(b, 0xd800 + (cp >> 10));
					put_u(b, 0xdc00 + (cp & 0x3ff));
				} else {
					put_u(b, cp);
				}
			} else {
				char c = (char)cp;

				put(b, &c, 1);
			}
		}
		i++;
	}
}

char *
cmf_render_properties_escape(const char *s, int is_key)
{
	struct text b;
	char *text;

	text_init(&b);
	properties_escape(&b, s, is_key);
	text = text_take(&b, NULL, 0);
	text_free(&b);
	return text;
}

/* `comment`'s lines as "# " lines; bytes outside printable ASCII become '?' (the file is ISO-8859-1). */
static void
put_comment(struct text *b, const char *comment)
{
	put_str(b, "# ");
	for (const char *p = comment; *p != '\0'; p++) {
		char c = *p;

		if (c == '\n') {
			put_str(b, "\n# ");
			continue;
		}
		if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e)
			c = '?';
		put(b, &c, 1);
	}
	put_str(b, "\n");
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of `obj`, sorted (bytewise); the array is malloc'd, the strings borrowed from obj. */
static const char **
sorted_keys(json_t *obj, size_t *n)
{
	const char **keys;
	const char *k;
	json_t *v;
	size_t i = 0;

	*n = json_object_size(obj);
	keys = calloc(*n > 0 ? *n : 1, sizeof(*keys));
	if (keys == NULL)
		return NULL;
	json_object_foreach (obj, k, v)
		keys[i++] = k;
	qsort(keys, *n, sizeof(*keys), cmp_str);
	return keys;
}

char *
cmf_render_properties(json_t *kafka, json_t *sr, const char *comment, char *err, size_t errlen)
{
	json_t *all = json_deep_copy(kafka), *v, *other;
	struct text b;
	const char **keys = NULL;
	const char *k;
	size_t n = 0;
	char *text = NULL;

	text_init(&b);
	if (all == NULL)
		goto oom;
	json_object_foreach (sr, k, v) {
		other = json_object_get(all, k);
		if (other != NULL && !json_equal(other, v)) {
			snprintf(err, errlen,
				 "property '%.200s' has one value for Kafka and another for Schema Registry; one .properties "
				 "file cannot hold both (use format=json)",
				 k);
			goto out;
		}
		json_object_set(all, k, v);
	}
	keys = sorted_keys(all, &n);
	if (keys == NULL)
		goto oom;
	if (comment != NULL)
		put_comment(&b, comment);
	for (size_t i = 0; i < n; i++) {
		properties_escape(&b, keys[i], 1);
		put_str(&b, "=");
		properties_escape(&b, json_string_value(json_object_get(all, keys[i])), 0);
		put_str(&b, "\n");
	}
	text = text_take(&b, err, errlen);
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	free(keys);
	text_free(&b);
	json_decref(all);
	return text;
}

/*
 * Schema Registry client properties and the avro-confluent format option each becomes (Flink's
 * "Confluent Avro" format documentation); used as 'value.format', hence the "value." prefix.
 */
static const struct {
	const char *sr_key;
	const char *option;
} flink_sr_options[] = {
	{ "basic.auth.credentials.source", "value.avro-confluent.basic-auth.credentials-source" },
	{ "basic.auth.user.info", "value.avro-confluent.basic-auth.user-info" },
	{ "bearer.auth.credentials.source", "value.avro-confluent.bearer-auth.credentials-source" },
	{ "bearer.auth.token", "value.avro-confluent.bearer-auth.token" },
	{ "schema.registry.basic.auth.user.info", "value.avro-confluent.basic-auth.user-info" },
	{ "schema.registry.ssl.keystore.location", "value.avro-confluent.ssl.keystore.location" },
	{ "schema.registry.ssl.keystore.password", "value.avro-confluent.ssl.keystore.password" },
	{ "schema.registry.ssl.truststore.location", "value.avro-confluent.ssl.truststore.location" },
	{ "schema.registry.ssl.truststore.password", "value.avro-confluent.ssl.truststore.password" },
	{ "schema.registry.url", "value.avro-confluent.url" },
};

static const char *
flink_option(const char *sr_key)
{
	for (size_t i = 0; i < sizeof(flink_sr_options) / sizeof(flink_sr_options[0]); i++)
		if (strcmp(flink_sr_options[i].sr_key, sr_key) == 0)
			return flink_sr_options[i].option;
	return NULL;
}

/* Inside a SQL string literal: single quotes doubled. */
static void
sql_escaped(struct text *b, const char *s)
{
	for (const char *q; (q = strchr(s, '\'')) != NULL; s = q + 1) {
		put(b, s, (size_t)(q - s));
		put_str(b, "''");
	}
	put_str(b, s);
}

/* One "'<prefix><key>' = '<value>'" line of the WITH clause, comma-separated from the previous one. */
static void
sql_option(struct text *b, const char *prefix, const char *key, const char *value, int *first)
{
	if (!*first)
		put_str(b, ",\n");
	*first = 0;
	put_str(b, "'");
	put_str(b, prefix);
	sql_escaped(b, key);
	put_str(b, "' = '");
	sql_escaped(b, value);
	put_str(b, "'");
}

char *
cmf_render_flink_sql(json_t *kafka, json_t *sr, char *err, size_t errlen)
{
	struct text b, missing;
	const char **keys = NULL;
	json_t *emitted = NULL; /* Flink option -> [source key, value] */
	size_t n = 0;
	int first = 1;
	char *text = NULL;

	text_init(&b);
	text_init(&missing);
	keys = sorted_keys(sr, &n);
	if (keys == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		if (flink_option(keys[i]) == NULL) {
			put_str(&missing, crypto_buf_len(missing.b) > 0 ? ", " : "");
			put_str(&missing, keys[i]);
		}
	}
	if (crypto_buf_len(missing.b) > 0 || missing.r != CRYPTO_OK) {
		snprintf(err, errlen,
			 "Schema Registry properties with no avro-confluent option in Flink: %.300s (use format=properties or "
			 "format=json)",
			 crypto_buf_len(missing.b) > 0 ? crypto_buf_str(missing.b) : "?");
		goto out;
	}
	free(keys);
	keys = sorted_keys(kafka, &n);
	if (keys == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++)
		sql_option(&b, "properties.", keys[i], json_string_value(json_object_get(kafka, keys[i])), &first);
	free(keys);
	keys = sorted_keys(sr, &n);
	if (keys == NULL)
		goto oom;
	/* Two Schema Registry keys may name one Flink option (basic.auth.user.info and its schema.registry.
	 * form): written once when they agree, refused when they do not. */
	emitted = json_object();
	if (emitted == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		const char *opt = flink_option(keys[i]), *val = json_string_value(json_object_get(sr, keys[i]));
		json_t *prev = json_object_get(emitted, opt);

		if (prev != NULL) {
			const char *prev_key = json_string_value(json_array_get(prev, 0));

			if (strcmp(json_string_value(json_array_get(prev, 1)), val) != 0) {
				snprintf(err, errlen,
					 "Schema Registry properties '%.100s' and '%.100s' both set Flink's '%s' to different "
					 "values: keep one",
					 prev_key, keys[i], opt);
				goto out;
			}
			continue;
		}
		json_object_set_new(emitted, opt, json_pack("[s,s]", keys[i], val));
		sql_option(&b, "", opt, val, &first);
	}
	put_str(&b, "\n");
	text = text_take(&b, err, errlen);
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	free(keys);
	json_decref(emitted);
	text_free(&b);
	text_free(&missing);
	return text;
}

char *
cmf_render_connect(json_t *sr, int csfle, const char *comment, char *err, size_t errlen)
{
	static const char *const prefixes[] = { "key.converter.", "value.converter." };
	json_t *all = json_object(), *none = json_object(), *v;
	const char *k;
	char *text = NULL, *key;

	if (all == NULL || none == NULL)
		goto oom;
	if (csfle && json_object_set_new(all, "csfle.enabled", json_string("true")) != 0)
		goto oom;
	json_object_foreach (sr, k, v) {
		/* Seed 001 lists the rule executor parameters unprefixed (Confluent Cloud's connectors read
		 * them so); a self-managed worker hands a converter only its prefixed keys: both are written. */
		if (strncmp(k, "rule.executors.", 15) == 0 && json_object_set(all, k, v) != 0)
			goto oom;
		for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
			size_t len = strlen(prefixes[i]) + strlen(k) + 1;
			int rc;

			key = malloc(len);
			if (key == NULL)
				goto oom;
			snprintf(key, len, "%s%s", prefixes[i], k);
			rc = json_object_set(all, key, v);
			free(key);
			if (rc != 0)
				goto oom;
		}
	}
	text = cmf_render_properties(all, none, comment, err, errlen);
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	json_decref(all);
	json_decref(none);
	return text;
}
