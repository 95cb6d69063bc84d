/* cmf csfle: the tagged fields of an Avro or JSON Schema schema, walked to check that each one can be encrypted. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/csfle/csfle.h"
#include "cmf/csfle/internal.h"
#include "cmf/text.h"

/* Nesting deeper than this is no real schema; the bound keeps the walkers' recursion (stack) small. */
#define DEPTH_MAX 32
/* Field paths in messages: deeper paths are cut (the message stays under CSFLE_MSG_MAX). */
#define PATH_MAX_LEN 200

/* snprintf whose cut is intended: descriptions and paths are bounded; a cut one still reads. */
static void put(char *dst, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
put(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, len, fmt, ap);
	va_end(ap);
	cmf_utf8_sanitize(dst);
}

/* Join a field path: "a.b", "a[]", cut to PATH_MAX_LEN. */
static void
path_join(char *dst, size_t len, const char *base, const char *sep, const char *name)
{
	char qn[CSFLE_QUOTE_BUF];

	if (base[0] == '\0' && sep[0] == '.')
		put(dst, len, "%s", csfle_quote(name, qn, sizeof(qn)));
	else
		put(dst, len, "%s%s%s", base, sep, name[0] != '\0' ? csfle_quote(name, qn, sizeof(qn)) : "");
	cmf_utf8_sanitize(dst);
}

struct walk {
	json_t *root;	   /* the parsed schema */
	json_t *names;	   /* Avro: defined named types, full and short name -> type object */
	json_t *rule_tags; /* tags whose fields must be encryptable; NULL: all */
	json_t *problems, *tags_found;
};

/* Record a field's tags; returns 1 when one of them is a rule tag (the field's type must be encryptable). */
static int
field_tags(struct walk *w, json_t *tags, const char *path)
{
	size_t i;
	json_t *t;
	int hit = 0;

	if (tags == NULL)
		return 0;
	if (!json_is_array(tags)) {
		csfle_msg_add(w->problems, "field %s: confluent:tags must be an array of tag names", path);
		return 0;
	}
	json_array_foreach (tags, i, t) {
		if (!json_is_string(t)) {
			csfle_msg_add(w->problems, "field %s: confluent:tags[%zu] must be a string", path, i);
			continue;
		}
		csfle_array_add_unique(w->tags_found, json_string_value(t));
		if (w->rule_tags == NULL || csfle_array_has_string(w->rule_tags, json_string_value(t)))
			hit = 1;
	}
	return hit;
}

/* A field path for a message: the root has none. */
static const char *
shown(const char *path)
{
	return path[0] != '\0' ? path : "(root)";
}

/* 1 after a problem when a walk is `depth` levels into the schema, deeper than DEPTH_MAX. */
static int
walk_too_deep(struct walk *w, const char *path, int depth)
{
	if (depth <= DEPTH_MAX)
		return 0;
	csfle_msg_add(w->problems, "field %s: the schema is nested more than %d levels deep", shown(path), DEPTH_MAX);
	return 1;
}

/*
 * The members of the array `arr` that are not null by `is_null`: how many, and in `*only` the last of
 * them (the one, when there is one). A nullable type is a choice between null and one other type.
 */
static size_t
non_null(json_t *arr, int (*is_null)(json_t *), json_t **only)
{
	size_t i, n = 0;
	json_t *v;

	*only = NULL;
	json_array_foreach (arr, i, v)
		if (!is_null(v))
			*only = v, n++;
	return n;
}

/* A type named by a string, "null" (Avro union branch, JSON Schema type list). */
static int
name_is_null(json_t *t)
{
	return json_is_string(t) && strcmp(json_string_value(t), "null") == 0;
}

/* `desc` = `before` and the compact JSON of `t` (quoted, cut), or `before` and `fallback` when it cannot be dumped. */
static void
put_json(char *desc, size_t len, const char *before, json_t *t, const char *fallback)
{
	char *d = json_dumps(t, JSON_COMPACT);
	char qb[CSFLE_QUOTE_BUF];

	put(desc, len, "%s%s", before, d != NULL ? csfle_quote(d, qb, sizeof(qb)) : fallback);
	free(d);
}

static const char *const avro_primitives[] = {"null", "boolean", "int", "long", "float", "double", "bytes", "string",
					      NULL};

/*
 * 1 when values of Avro type `t` can be encrypted (string or bytes, through nullable unions, arrays,
 * maps), else 0 and a description of the type in `desc`.
 */
static int
avro_encryptable(struct walk *w, json_t *t, int depth, char *desc, size_t len)
{
	char inner[CSFLE_MSG_MAX / 2], qb[CSFLE_QUOTE_BUF];

	if (depth > DEPTH_MAX) {
		put(desc, len, "a type nested too deeply");
		return 0;
	}
	if (json_is_string(t)) {
		const char *s = json_string_value(t);
		json_t *named;

		if (strcmp(s, "string") == 0 || strcmp(s, "bytes") == 0)
			return 1;
		if (csfle_str_in(s, avro_primitives)) {
			put(desc, len, "%s", s);
			return 0;
		}
		named = json_object_get(w->names, s);
		if (named != NULL)
			return avro_encryptable(w, named, depth + 1, desc, len);
		put(desc, len, "'%s' (a type not defined in this schema)", csfle_quote(s, qb, sizeof(qb)));
		return 0;
	}
	if (json_is_array(t)) {
		json_t *only;
		size_t n = non_null(t, name_is_null, &only);

		if (n == 1)
			return avro_encryptable(w, only, depth + 1, desc, len);
		if (n == 0)
			put(desc, len, "null");
		else
			put_json(desc, len, "union ", t, "of several types");
		return 0;
	}
	if (json_is_object(t)) {
		json_t *ty = json_object_get(t, "type");
		const char *s = json_string_value(ty), *name = json_string_value(json_object_get(t, "name"));

		if (s == NULL)
			return ty != NULL ? avro_encryptable(w, ty, depth + 1, desc, len)
					  : (put(desc, len, "no type"), 0);
		if (strcmp(s, "record") == 0 || strcmp(s, "error") == 0 || strcmp(s, "enum") == 0 ||
		    strcmp(s, "fixed") == 0) {
			put(desc, len, "%s %s", s, name != NULL ? csfle_quote(name, qb, sizeof(qb)) : "");
			return 0;
		}
		if (strcmp(s, "array") == 0 || strcmp(s, "map") == 0) {
			if (avro_encryptable(w, json_object_get(t, strcmp(s, "array") == 0 ? "items" : "values"),
					     depth + 1, inner, sizeof(inner)))
				return 1;
			put(desc, len, "%s<%s>", s, inner);
			return 0;
		}
		return avro_encryptable(w, ty, depth + 1, desc, len);
	}
	put(desc, len, "no type");
	return 0;
}

static void
avro_name(struct walk *w, json_t *t, const char *ns)
{
	const char *name = json_string_value(json_object_get(t, "name"));
	const char *tns = json_string_value(json_object_get(t, "namespace"));
	const char *dot;
	char full[512];

	if (name == NULL)
		return;
	if (tns == NULL)
		tns = ns;
	dot = strrchr(name, '.');
	json_object_set(w->names, dot != NULL ? dot + 1 : name, t);
	if (dot == NULL && tns != NULL && tns[0] != '\0') {
		snprintf(full, sizeof(full), "%s.%s", tns, name);
		json_object_set(w->names, full, t);
	} else
		json_object_set(w->names, name, t);
}

static void
avro_walk(struct walk *w, json_t *t, const char *path, const char *ns, int depth)
{
	char sub[PATH_MAX_LEN], desc[CSFLE_MSG_MAX / 2];
	const char *s;
	size_t i;
	json_t *v;

	if (walk_too_deep(w, path, depth))
		return;
	if (json_is_array(t)) {
		json_array_foreach (t, i, v)
			avro_walk(w, v, path, ns, depth + 1);
		return;
	}
	if (!json_is_object(t))
		return;
	s = json_string_value(json_object_get(t, "type"));
	if (s == NULL) {
		avro_walk(w, json_object_get(t, "type"), path, ns, depth + 1);
		return;
	}
	if (strcmp(s, "enum") == 0 || strcmp(s, "fixed") == 0) {
		avro_name(w, t, ns);
	} else if (strcmp(s, "array") == 0) {
		path_join(sub, sizeof(sub), path, "[]", "");
		avro_walk(w, json_object_get(t, "items"), sub, ns, depth + 1);
	} else if (strcmp(s, "map") == 0) {
		path_join(sub, sizeof(sub), path, "{}", "");
		avro_walk(w, json_object_get(t, "values"), sub, ns, depth + 1);
	} else if (strcmp(s, "record") == 0 || strcmp(s, "error") == 0) {
		const char *tns = json_string_value(json_object_get(t, "namespace"));
		const char *name = json_string_value(json_object_get(t, "name"));
		json_t *fields = json_object_get(t, "fields");
		char nsbuf[256];

		avro_name(w, t, ns);
		if (tns == NULL && name != NULL && strrchr(name, '.') != NULL) {
			snprintf(nsbuf, sizeof(nsbuf), "%.*s", (int)(strrchr(name, '.') - name), name);
			tns = nsbuf;
		}
		if (tns == NULL)
			tns = ns;
		if (!json_is_array(fields)) {
			csfle_msg_add(w->problems, "record %s: fields must be an array", shown(path));
			return;
		}
		json_array_foreach (fields, i, v) {
			const char *fname = json_string_value(json_object_get(v, "name"));

			if (!json_is_object(v) || fname == NULL) {
				csfle_msg_add(w->problems, "record %s: fields[%zu] must be an object with a name",
					shown(path), i);
				continue;
			}
			path_join(sub, sizeof(sub), path, ".", fname);
			if (field_tags(w, json_object_get(v, "confluent:tags"), sub) &&
			    !avro_encryptable(w, json_object_get(v, "type"), 0, desc, sizeof(desc)))
				csfle_msg_add(w->problems,
					      "field %s is tagged for encryption but its type is %s: only string "
					      "and bytes fields can be encrypted",
					      sub, desc);
			avro_walk(w, json_object_get(v, "type"), sub, tns, depth + 1);
		}
	}
}

/* Resolve a local JSON Schema $ref ("#/definitions/X", "#/$defs/X"), or NULL. */
static json_t *
js_ref(struct walk *w, const char *ref)
{
	const char *p;

	if ((p = csfle_skip(ref, "#/definitions/")) != NULL)
		return json_object_get(json_object_get(w->root, "definitions"), p);
	if ((p = csfle_skip(ref, "#/$defs/")) != NULL)
		return json_object_get(json_object_get(w->root, "$defs"), p);
	return NULL;
}

static int
js_is_null(json_t *s)
{
	json_t *t = json_object_get(s, "type");

	return json_is_string(t) && strcmp(json_string_value(t), "null") == 0;
}

/* 1 when JSON Schema `s` describes strings (through nullable types, oneOf/anyOf with null, items, local $ref). */
static int
js_encryptable(struct walk *w, json_t *s, int depth, char *desc, size_t len)
{
	char inner[CSFLE_MSG_MAX / 2], qb[CSFLE_QUOTE_BUF];
	json_t *t, *ref, *alt;

	if (depth > DEPTH_MAX) {
		put(desc, len, "a type nested too deeply");
		return 0;
	}
	if (!json_is_object(s)) {
		put(desc, len, "no declared type");
		return 0;
	}
	if (json_is_string(ref = json_object_get(s, "$ref"))) {
		json_t *target = js_ref(w, json_string_value(ref));

		if (target != NULL)
			return js_encryptable(w, target, depth + 1, desc, len);
		put(desc, len, "an unresolved $ref '%s'", csfle_quote(json_string_value(ref), qb, sizeof(qb)));
		return 0;
	}
	t = json_object_get(s, "type");
	if (json_is_array(t)) {
		json_t *only;

		if (non_null(t, name_is_null, &only) != 1) {
			put_json(desc, len, "", t, "several types");
			return 0;
		}
		t = only; /* ["string","null"] is a nullable string */
	}
	if (json_is_string(t)) {
		if (strcmp(json_string_value(t), "string") == 0)
			return 1;
		if (strcmp(json_string_value(t), "array") == 0) {
			if (js_encryptable(w, json_object_get(s, "items"), depth + 1, inner, sizeof(inner)))
				return 1;
			put(desc, len, "array<%s>", inner);
			return 0;
		}
		put(desc, len, "%s", csfle_quote(json_string_value(t), qb, sizeof(qb)));
		return 0;
	}
	if (t != NULL) {
		put(desc, len, "an invalid type");
		return 0;
	}
	if (json_is_array(alt = json_object_get(s, "oneOf")) || json_is_array(alt = json_object_get(s, "anyOf"))) {
		json_t *only;
		size_t n = non_null(alt, js_is_null, &only);

		if (n == 1)
			return js_encryptable(w, only, depth + 1, desc, len);
		put(desc, len, "a choice of %zu non-null types", n);
		return 0;
	}
	put(desc, len, "no declared type");
	return 0;
}

static void
js_walk(struct walk *w, json_t *s, const char *path, int depth)
{
	static const char *const alts[] = {"oneOf", "anyOf", "allOf"};
	char sub[PATH_MAX_LEN], desc[CSFLE_MSG_MAX / 2];
	const char *k;
	json_t *v, *props, *items, *ap;
	size_t i;

	if (!json_is_object(s) || walk_too_deep(w, path, depth))
		return;
	if (json_is_object(props = json_object_get(s, "properties")))
		json_object_foreach (props, k, v) {
			path_join(sub, sizeof(sub), path, ".", k);
			if (field_tags(w, json_object_get(v, "confluent:tags"), sub) &&
			    !js_encryptable(w, v, 0, desc, sizeof(desc)))
				csfle_msg_add(w->problems,
					      "field %s is tagged for encryption but its type is %s: only string "
					      "fields can be encrypted",
					      sub, desc);
			js_walk(w, v, sub, depth + 1);
		}
	items = json_object_get(s, "items");
	path_join(sub, sizeof(sub), path, "[]", "");
	if (json_is_object(items))
		js_walk(w, items, sub, depth + 1);
	else if (json_is_array(items))
		json_array_foreach (items, i, v)
			js_walk(w, v, sub, depth + 1);
	if (json_is_object(ap = json_object_get(s, "additionalProperties"))) {
		path_join(sub, sizeof(sub), path, "{}", "");
		js_walk(w, ap, sub, depth + 1);
	}
	for (size_t a = 0; a < 3; a++)
		if (json_is_array(v = json_object_get(s, alts[a]))) {
			json_t *b;

			json_array_foreach (v, i, b)
				js_walk(w, b, path, depth + 1);
		}
}

void
cmf_csfle_check_schema(const char *schema_type, const char *schema_text, json_t *rule_tags, json_t *problems,
		       json_t *warnings, json_t *tags_found)
{
	struct walk w = {NULL, NULL, rule_tags, problems, tags_found};
	json_error_t e;

	(void)warnings;
	if (schema_type == NULL || (strcmp(schema_type, "AVRO") != 0 && strcmp(schema_type, "JSON") != 0)) {
		csfle_msg_add(problems, "schemaType must be AVRO or JSON");
		return;
	}
	if (schema_text == NULL || (w.root = json_loads(schema_text, JSON_DECODE_ANY, &e)) == NULL) {
		/* Position only: jansson's text quotes the input. */
		csfle_msg_add(problems, "the %s schema is not valid JSON (line %d, column %d)", schema_type,
			schema_text == NULL ? 0 : e.line, schema_text == NULL ? 0 : e.column);
		return;
	}
	if (strcmp(schema_type, "AVRO") == 0) {
		w.names = json_object();
		avro_walk(&w, w.root, "", "", 0);
		json_decref(w.names);
	} else {
		static const char *const defs[] = {"definitions", "$defs"};

		if (!json_is_object(w.root))
			csfle_msg_add(problems, "the JSON schema must be an object");
		js_walk(&w, w.root, "", 0);
		for (size_t d = 0; d < 2; d++) {
			json_t *all = json_object_get(w.root, defs[d]), *v;
			const char *k;
			char base[PATH_MAX_LEN];

			if (json_is_object(all))
				json_object_foreach (all, k, v) {
					path_join(base, sizeof(base), defs[d], "/", k);
					js_walk(&w, v, base, 1);
				}
		}
	}
	json_decref(w.root);
}
