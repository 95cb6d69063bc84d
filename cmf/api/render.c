/* cmf render: turn a resolved configuration into the text a Flink job or Kafka client loads as is. */
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/api/render.h"

/* A growing text buffer that wipes what it leaves behind: its content may be secret. */
struct buf {
	char *p;
	size_t len, cap;
	int failed;
};

static void
buf_put(struct buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		np = malloc(cap);
		if (np == NULL) {
			b->failed = 1;
			return;
		}
		if (b->p != NULL) {
			memcpy(np, b->p, b->len);
			OPENSSL_cleanse(b->p, b->cap);
			free(b->p);
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

static void
buf_wipe(struct buf *b)
{
	if (b->p != NULL) {
		OPENSSL_cleanse(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

/* Hand the text over, or NULL (wiped) when building it failed. */
static char *
buf_take(struct buf *b)
{
	char *p;

	if (b->failed) {
		buf_wipe(b);
		return NULL;
	}
	if (b->p == NULL)
		buf_put(b, "", 0);
	p = b->p;
	b->p = NULL;
	return p;
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
put_u(struct buf *b, unsigned unit)
{
	char u[12];

	/* Uppercase hex, as Properties.store writes it. */
	snprintf(u, sizeof(u), "\\u%04X", unit & 0xffffu);
	buf_put(b, u, 6);
}

/* java.util.Properties.saveConvert(s, escapeSpace = is_key, escUnicode = true). */
static void
properties_escape(struct buf *b, const char *s, int is_key)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (*p != '\0') {
		unsigned cp;
		size_t n = utf8_next(p, &cp);

		p += n;
		switch (cp) {
		case ' ':
			buf_str(b, (i == 0 || is_key) ? "\\ " : " ");
			break;
		case '\t':
			buf_str(b, "\\t");
			break;
		case '\n':
			buf_str(b, "\\n");
			break;
		case '\r':
			buf_str(b, "\\r");
			break;
		case '\f':
			buf_str(b, "\\f");
			break;
		case '=':
		case ':':
		case '#':
		case '!':
		case '\\': {
			char e[3] = { '\\', (char)cp, '\0' };

			buf_str(b, e);
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

				buf_put(b, &c, 1);
			}
		}
		i++;
	}
}

char *
cmf_render_properties_escape(const char *s, int is_key)
{
	struct buf b = { 0 };

	properties_escape(&b, s, is_key);
	return buf_take(&b);
}

/* `comment`'s lines as "# " lines; bytes outside printable ASCII become '?' (the file is ISO-8859-1). */
static void
put_comment(struct buf *b, const char *comment)
{
	buf_str(b, "# ");
	for (const char *p = comment; *p != '\0'; p++) {
		char c = *p;

		if (c == '\n') {
			buf_str(b, "\n# ");
			continue;
		}
		if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e)
			c = '?';
		buf_put(b, &c, 1);
	}
	buf_str(b, "\n");
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
	struct buf b = { 0 };
	const char **keys = NULL;
	const char *k;
	size_t n = 0;
	char *text = NULL;

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
		buf_str(&b, "=");
		properties_escape(&b, json_string_value(json_object_get(all, keys[i])), 0);
		buf_str(&b, "\n");
	}
	text = buf_take(&b);
	if (text == NULL)
		goto oom;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	free(keys);
	buf_wipe(&b);
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
sql_escaped(struct buf *b, const char *s)
{
	for (const char *q; (q = strchr(s, '\'')) != NULL; s = q + 1) {
		buf_put(b, s, (size_t)(q - s));
		buf_str(b, "''");
	}
	buf_str(b, s);
}

/* One "'<prefix><key>' = '<value>'" line of the WITH clause, comma-separated from the previous one. */
static void
sql_option(struct buf *b, const char *prefix, const char *key, const char *value, int *first)
{
	if (!*first)
		buf_str(b, ",\n");
	*first = 0;
	buf_str(b, "'");
	buf_str(b, prefix);
	sql_escaped(b, key);
	buf_str(b, "' = '");
	sql_escaped(b, value);
	buf_str(b, "'");
}

char *
cmf_render_flink_sql(json_t *kafka, json_t *sr, char *err, size_t errlen)
{
	struct buf b = { 0 }, missing = { 0 };
	const char **keys = NULL;
	json_t *emitted = NULL; /* Flink option -> [source key, value] */
	size_t n = 0;
	int first = 1;
	char *text = NULL;

	keys = sorted_keys(sr, &n);
	if (keys == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		if (flink_option(keys[i]) == NULL) {
			buf_str(&missing, missing.len > 0 ? ", " : "");
			buf_str(&missing, keys[i]);
		}
	}
	if (missing.len > 0 || missing.failed) {
		snprintf(err, errlen,
			 "Schema Registry properties with no avro-confluent option in Flink: %.300s (use format=properties or "
			 "format=json)",
			 missing.p != NULL ? missing.p : "?");
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
				buf_wipe(&b);
				goto out;
			}
			continue;
		}
		json_object_set_new(emitted, opt, json_pack("[s,s]", keys[i], val));
		sql_option(&b, "", opt, val, &first);
	}
	buf_str(&b, "\n");
	text = buf_take(&b);
	if (text == NULL)
		goto oom;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	free(keys);
	json_decref(emitted);
	buf_wipe(&b);
	buf_wipe(&missing);
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
