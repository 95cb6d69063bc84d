/* cmf resources: body parsing and the checks every CMF resource shares, each failure a 400 naming a field. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmf/api/body.h"
#include "cmf/http/reply.h"
#include "cmf/api/resource.h"

int
cmf_resource_body(struct cmf_request *req, struct cmf_response *resp, json_t **out)
{
	char err[256];
	int fmt;

	*out = NULL;
	fmt = cmf_body_format_of(req->content_type);
	if (fmt < 0) {
		/* The media type is a header, not body content: safe to echo, truncated. */
		cmf_reply_error(resp, 415, "unsupported Content-Type '%.64s': send application/json or application/yaml",
				req->content_type);
		return -1;
	}
	if (req->body_len == 0) {
		cmf_reply_error(resp, 400, "the request body is empty: send the resource as JSON or YAML");
		return -1;
	}
	if (cmf_body_parse(req->body, req->body_len, (enum cmf_body_format)fmt, out, err, sizeof(err)) != 0) {
		cmf_reply_error(resp, 400, "%s", err);
		return -1;
	}
	return 0;
}

int
cmf_resource_body_member(struct cmf_request *req, struct cmf_response *resp, const char *name, json_t **value)
{
	const char *const keys[] = { name, NULL };
	json_t *body = NULL;
	int r = -1;

	*value = NULL;
	if (cmf_resource_body(req, resp, &body) != 0)
		return -1;
	if (cmf_resource_object_check(body, "", keys, resp) == 0) {
		*value = json_incref(json_object_get(body, name));
		r = 0;
	}
	json_decref(body);
	return r;
}

int
cmf_resource_name_check(const char *field, const char *name, char *why, size_t whylen)
{
	size_t len = strlen(name), label = 0;

	if (len < CMF_NAME_MIN || len > CMF_NAME_MAX) {
		snprintf(why, whylen, "%s '%.64s%s' must be %d to %d characters (it has %zu)", field, name,
			 len > 64 ? "..." : "", CMF_NAME_MIN, CMF_NAME_MAX, len);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		int alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');

		if (!alnum && ch != '-' && ch != '.')
			goto bad;
		if ((i == 0 || i == len - 1) && !alnum)
			goto bad;
		if (ch == '.') {
			/* Each dot-separated label starts and ends alphanumeric and is at most 63 characters. */
			if (!isalnum((unsigned char)name[i - 1]) || !isalnum((unsigned char)name[i + 1]))
				goto bad;
			label = 0;
		} else if (++label > 63) {
			goto bad;
		}
	}
	return 0;
bad:
	snprintf(why, whylen,
		 "%s '%.64s%s' is not a valid name: use lowercase letters, digits, '-' and '.', starting and ending "
		 "with a letter or digit (DNS-1123 subdomain)",
		 field, name, len > 64 ? "..." : "");
	return -1;
}

int
cmf_resource_name_member(json_t *obj, const char *key, const char *field, bool required, const char *must_be,
			 struct cmf_response *resp, json_t **out)
{
	json_t *v = json_object_get(obj, key);
	char why[512]; /* a sentence around a name of up to 253 characters */

	*out = NULL;
	if (v == NULL || (!required && json_is_null(v))) {
		if (!required)
			return 0;
		cmf_reply_error(resp, 400, "%s is required", field);
		return -1;
	}
	if (!json_is_string(v)) {
		cmf_reply_error(resp, 400, "%s must be %s", field, must_be);
		return -1;
	}
	if (cmf_resource_name_check(field, json_string_value(v), why, sizeof(why)) != 0) {
		cmf_reply_error(resp, 400, "%s", why);
		return -1;
	}
	*out = v;
	return 0;
}

int
cmf_resource_path_name(struct cmf_response *resp, const char *what, const char *name)
{
	char why[512];

	if (cmf_resource_name_check("name", name, why, sizeof(why)) == 0)
		return 0;
	cmf_reply_error(resp, 404, "%s '%.253s' not found", what, name);
	return -1;
}

static int
key_allowed(const char *key, const char *const *allowed)
{
	for (size_t i = 0; allowed != NULL && allowed[i] != NULL; i++)
		if (strcmp(key, allowed[i]) == 0)
			return 1;
	return 0;
}

int
cmf_resource_object_check(json_t *obj, const char *field, const char *const *allowed, struct cmf_response *resp)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj)) {
		cmf_reply_error(resp, 400, "%s must be an object", field);
		return -1;
	}
	json_object_foreach (obj, key, v) {
		if (!key_allowed(key, allowed)) {
			cmf_reply_error(resp, 400, "%s%s%.64s: unknown field", field, field[0] != '\0' ? "." : "", key);
			return -1;
		}
	}
	return 0;
}

/* labels/annotations: absent → {}, else an object of strings. Returns a new reference or NULL (replied). */
static json_t *
string_map(json_t *metadata, const char *key, struct cmf_response *resp)
{
	json_t *m = json_object_get(metadata, key), *v;
	const char *k;

	if (m == NULL || json_is_null(m))
		return json_object();
	if (!json_is_object(m)) {
		cmf_reply_error(resp, 400, "metadata.%s must be an object of strings", key);
		return NULL;
	}
	json_object_foreach (m, k, v) {
		if (!json_is_string(v)) {
			cmf_reply_error(resp, 400, "metadata.%s.%.64s must be a string", key, k);
			return NULL;
		}
	}
	return json_incref(m);
}

static int
string_field(json_t *obj, const char *field, const char *expect, struct cmf_response *resp)
{
	json_t *v = json_object_get(obj, field);

	if (v == NULL) {
		cmf_reply_error(resp, 400, "%s is required (\"%s\")", field, expect);
		return -1;
	}
	if (!json_is_string(v)) {
		cmf_reply_error(resp, 400, "%s must be a string", field);
		return -1;
	}
	if (strcmp(json_string_value(v), expect) != 0) {
		cmf_reply_error(resp, 400, "%s must be \"%s\"", field, expect);
		return -1;
	}
	return 0;
}

int
cmf_resource_envelope(json_t *body, const char *kind, const char *const *top_keys, struct cmf_response *resp,
		      const char **name, json_t **labels, json_t **annotations)
{
	static const char *const meta_keys[] = { "name",   "labels",	       "annotations",
						 "uid", "creationTimestamp", "updateTimestamp", NULL };
	char why[512];
	json_t *metadata, *jname;
	const char *key;
	json_t *v;

	*name = NULL;
	*labels = *annotations = NULL;
	json_object_foreach (body, key, v) {
		if (strcmp(key, "apiVersion") != 0 && strcmp(key, "kind") != 0 && strcmp(key, "metadata") != 0 &&
		    strcmp(key, "status") != 0 && !key_allowed(key, top_keys)) {
			cmf_reply_error(resp, 400, "%.64s: unknown field", key);
			return -1;
		}
	}
	if (string_field(body, "apiVersion", CMF_API_VERSION, resp) != 0 || string_field(body, "kind", kind, resp) != 0)
		return -1;
	metadata = json_object_get(body, "metadata");
	if (metadata == NULL) {
		cmf_reply_error(resp, 400, "metadata is required");
		return -1;
	}
	if (cmf_resource_object_check(metadata, "metadata", meta_keys, resp) != 0)
		return -1;
	jname = json_object_get(metadata, "name");
	if (jname == NULL) {
		cmf_reply_error(resp, 400, "metadata.name is required");
		return -1;
	}
	if (!json_is_string(jname)) {
		cmf_reply_error(resp, 400, "metadata.name must be a string");
		return -1;
	}
	if (cmf_resource_name_check("metadata.name", json_string_value(jname), why, sizeof(why)) != 0) {
		cmf_reply_error(resp, 400, "%s", why);
		return -1;
	}
	*labels = string_map(metadata, "labels", resp);
	if (*labels == NULL)
		return -1;
	*annotations = string_map(metadata, "annotations", resp);
	if (*annotations == NULL) {
		json_decref(*labels);
		*labels = NULL;
		return -1;
	}
	*name = json_string_value(jname);
	return 0;
}

/* A non-negative decimal integer ≤ max, or -1. */
static long long
parse_count(const char *s, long long max)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	return v;
}

int
cmf_resource_query_int(struct cmf_request *req, struct cmf_response *resp, const char *name, long long min,
		       long long max, long long def, long long *out)
{
	const char *s = cmf_request_query(req, name);
	long long v;

	*out = def;
	if (s == NULL)
		return 0;
	v = parse_count(s, max);
	if (v < min) {
		cmf_reply_error(resp, 400, "%s must be an integer from %lld to %lld", name, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int
cmf_resource_page(struct cmf_request *req, struct cmf_response *resp, long long *page, int *size)
{
	/* Page numbers beyond 10^9 only ever return empty pages; the bound keeps page*size in range. */
	const long long max_page = 1000000000LL;
	const char *p = cmf_request_query(req, "page"), *s = cmf_request_query(req, "size");
	long long v;

	*page = 0;
	*size = CMF_PAGE_SIZE_DEFAULT;
	if (p != NULL) {
		v = parse_count(p, max_page);
		if (v < 0) {
			cmf_reply_error(resp, 400, "page must be an integer from 0 to %lld", max_page);
			return -1;
		}
		*page = v;
	}
	if (s != NULL) {
		v = parse_count(s, CMF_PAGE_SIZE_MAX);
		if (v < 1) {
			cmf_reply_error(resp, 400, "size must be an integer from 1 to %d", CMF_PAGE_SIZE_MAX);
			return -1;
		}
		*size = (int)v;
	}
	return 0;
}

json_t *
cmf_resource_page_json(long long page, int size, long long total, json_t *items)
{
	return json_pack("{s:{s:I,s:i,s:{s:b,s:b,s:b}},s:{s:I},s:o}", "pageable", "page", (json_int_t)page, "size",
			 size, "sort", "sorted", 0, "unsorted", 1, "empty", 1, "metadata", "size", (json_int_t)total,
			 "items", items);
}

json_t *
cmf_resource_metadata_json(const char *name, const char *uid, const char *created, const char *updated,
			   json_t *labels, json_t *annotations)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:O,s:O}", "name", name, "uid", uid, "creationTimestamp", created,
			 "updateTimestamp", updated, "labels", labels, "annotations", annotations);
}

int
cmf_resource_time(const char *s, long long *t)
{
	struct tm tm;
	size_t i;

	/* Fixed positions: digits everywhere but the separators "-", "-", "T", ":", ":". */
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";

	for (i = 0; shape[i] != '\0'; i++) {
		if (s[i] == '\0' || (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i]))
			return -1;
	}
	if (s[i] == '.') {
		size_t digits = 0;

		for (i++; isdigit((unsigned char)s[i]); i++)
			digits++;
		if (digits == 0 || digits > 9)
			return -1;
	}
	if (s[i] != 'Z' || s[i + 1] != '\0')
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = atoi(s) - 1900;
	tm.tm_mon = atoi(s + 5) - 1;
	tm.tm_mday = atoi(s + 8);
	tm.tm_hour = atoi(s + 11);
	tm.tm_min = atoi(s + 14);
	tm.tm_sec = atoi(s + 17);
	if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	if (t != NULL)
		*t = (long long)timegm(&tm);
	return 0;
}

void
cmf_resource_names_join(json_t *names, char *buf, size_t len)
{
	/* Room kept for ", and 4294967295 more". */
	const size_t tail = 24;
	size_t i, n = json_array_size(names), used = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		const char *name = json_string_value(json_array_get(names, i));
		size_t need = strlen(name != NULL ? name : "") + 2;

		if (len <= tail || used + need + tail >= len)
			break;
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i > 0 ? ", " : "", name != NULL ? name : "");
	}
	if (i < n && len > tail)
		snprintf(buf + used, len - used, "%sand %zu more", i > 0 ? ", " : "", n - i);
}

/*
 * Configuration keys that hold credentials (cmf_resource_key_sensitive): refused with 422 in public
 * configuration — a catalog's or database's connectionConfig, an environment's Flink configuration —
 * which is stored in clear and returned by every read, so a credential there leaks. Matched
 * case-insensitively, and KEY_NAME/KEY_PREFIX also after any '.', so prefixed forms such as
 * "schema.registry.basic.auth.user.info" or "properties.sasl.jaas.config" are caught too.
 */
enum key_match {
	KEY_CONTAINS, /* anywhere in the key */
	KEY_NAME,     /* the whole key, or its end after a '.' */
	KEY_PREFIX,   /* the key's start, or a start after a '.' */
};
static const struct {
	enum key_match how;
	const char *text; /* lowercase */
} sensitive_keys[] = {
	{ KEY_CONTAINS, "password" },       /* ssl.truststore.password, ssl.key.password, ... */
	{ KEY_CONTAINS, "secret" },         /* sasl.oauthbearer.client.secret, bearer.auth.client.secret */
	{ KEY_CONTAINS, "passphrase" },     /* sasl.oauthbearer.assertion.private.key.passphrase */
	{ KEY_NAME, "sasl.jaas.config" },    /* carries the SASL username and password inline */
	{ KEY_NAME, "basic.auth.user.info" }, /* Schema Registry's "user:password" */
	{ KEY_NAME, "bearer.auth.token" },   /* a Schema Registry bearer token */
	{ KEY_PREFIX, "ssl.key." },          /* the private key's settings (ssl.key.password, ...) */
	{ KEY_NAME, "ssl.keystore.key" },    /* a PEM private key given inline */
	/*
	 * Deliberately not listed: ssl.keystore.location and ssl.keystore.type name a file and its format,
	 * ssl.keystore.certificate.chain and ssl.truststore.certificates hold public certificates. They
	 * start with "ssl.key" as strings but carry no secret; their passwords are caught above.
	 */
};

/* 1 when `s` starts with the lowercase `p`, ignoring case. */
static int
ci_starts(const char *s, const char *p)
{
	for (; *p != '\0'; s++, p++)
		if (tolower((unsigned char)*s) != *p)
			return 0;
	return 1;
}

int
cmf_resource_key_sensitive(const char *key)
{
	for (size_t r = 0; r < sizeof(sensitive_keys) / sizeof(sensitive_keys[0]); r++) {
		const char *text = sensitive_keys[r].text;
		enum key_match how = sensitive_keys[r].how;

		for (size_t i = 0; key[i] != '\0'; i++) {
			if (how != KEY_CONTAINS && i > 0 && key[i - 1] != '.')
				continue;
			if (!ci_starts(key + i, text))
				continue;
			if (how != KEY_NAME || key[i + strlen(text)] == '\0')
				return 1;
		}
	}
	return 0;
}

int
cmf_resource_url_has_credentials(const char *v)
{
	for (const char *p = strstr(v, "://"); p != NULL; p = strstr(p + 3, "://")) {
		const char *auth = p + 3, *end = auth + strcspn(auth, "/?#"), *at = memchr(auth, '@', (size_t)(end - auth));

		if (at != NULL && (size_t)(at - auth) > 0)
			return 1;
	}
	return 0;
}

int
cmf_resource_environments_check(json_t *envs, struct cmf_response *resp)
{
	char why[512];
	size_t i;
	json_t *v;

	if (envs != NULL && !json_is_array(envs)) {
		cmf_reply_error(resp, 400, "spec.environments must be an array of environment names");
		return -1;
	}
	if (json_array_size(envs) > CMF_RESOURCE_MAX_ENVIRONMENTS) {
		cmf_reply_error(resp, 400, "spec.environments: at most %d environments", CMF_RESOURCE_MAX_ENVIRONMENTS);
		return -1;
	}
	json_array_foreach (envs, i, v) {
		if (!json_is_string(v)) {
			cmf_reply_error(resp, 400, "spec.environments[%zu] must be a string", i);
			return -1;
		}
		if (cmf_resource_name_check("spec.environments[]", json_string_value(v), why, sizeof(why)) != 0) {
			cmf_reply_error(resp, 400, "%s", why);
			return -1;
		}
	}
	return 0;
}
