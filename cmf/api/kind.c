/* cmf API kinds: the generic get/list/create/update/delete handlers every resource kind is served by. */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/api/kind.h"
#include "cmf/app.h"
#include "cmf/cache.h"
#include "cmf/config.h"
#include "cmf/api/resource.h"
#include "cmf/http/reply.h"
#include "cmf/log.h"

/* Room for "database 'x' in catalog 'y'" with two names of 253 characters. */
#define KIND_WHAT_MAX 600

/* "secret 'x'" or, nested, "secret mapping 'x' in environment 'y'". */
static void
kind_what(const struct cmf_kind *k, const char *const *keys, char *buf, size_t len)
{
	if (k->parent_what != NULL)
		snprintf(buf, len, "%s '%s' in %s '%s'", k->what, keys[1], k->parent_what, keys[0]);
	else
		snprintf(buf, len, "%s '%s'", k->what, keys[0]);
}

/* The keys a request names (the parent's from the path; the item's name when `item`), checked. */
static int
path_keys(struct cmf_call *call, const struct cmf_kind *k, bool item, const char **keys)
{
	size_t n = 0;

	keys[0] = keys[1] = NULL;
	if (k->parent_what != NULL) {
		keys[n] = call->args[n];
		if (cmf_resource_path_name(call->resp, k->parent_what, keys[n]) != 0)
			return -1;
		n++;
	}
	if (item) {
		keys[n] = call->args[n];
		if (cmf_resource_path_name(call->resp, k->what, keys[n]) != 0)
			return -1;
	}
	return 0;
}

/* "<audit>/<keys>": the resource an audited call is about. */
static void
name_resource(struct cmf_call *call, const struct cmf_kind *k, const char *const *keys)
{
	if (k->parent_what != NULL)
		cmf_call_resource(call, "%s/%s/%s", k->audit, keys[0], keys[1]);
	else
		cmf_call_resource(call, "%s/%s", k->audit, keys[0]);
}

/* An item's keys from the path, checked, naming the audited resource. */
static int
item_keys(struct cmf_call *call, const struct cmf_kind *k, const char **keys)
{
	if (path_keys(call, k, true, keys) != 0)
		return -1;
	name_resource(call, k, keys);
	return 0;
}

/* The reply for a failed store call on the row of `keys` (`in`: the write's input, or NULL; `m`: its precondition). */
static void
kind_error(struct cmf_call *call, const struct cmf_kind *k, int r, enum db_missing missing, const char *const *keys,
	   const struct cmf_kind_input *in, const struct db_match *m)
{
	char what[KIND_WHAT_MAX];

	if (r == DB_ERR_PRECONDITION && m != NULL) {
		kind_what(k, keys, what, sizeof(what));
		if (m->current > 0 && m->none_match)
			cmf_reply_error(call->resp, 412, "%s exists (version %lld): If-None-Match: * wants none", what,
					m->current);
		else if (m->current > 0)
			cmf_reply_error(call->resp, 412,
					"%s is at version %lld: If-Match does not name it; read it again (its ETag) and retry",
					what, m->current);
		else
			cmf_reply_error(call->resp, 412, "%s does not exist: If-Match needs an existing %s", what, k->what);
	} else if (r == DB_ERR_NOT_FOUND && missing == DB_MISSING_PARENT) {
		cmf_reply_error(call->resp, 404, "%s '%s' not found", k->parent_what, keys[0]);
	} else if (r == DB_ERR_NOT_FOUND && missing == DB_MISSING_REF && in != NULL) {
		cmf_reply_error(call->resp, 404, "%s '%s' not found: %s", k->ref_what,
				json_string_value(json_object_get(in->doc, k->ref_field)), k->ref_advice);
	} else if (r == DB_ERR_CONFLICT && k->exists_in_parent) {
		cmf_reply_error(call->resp, 409, "%s '%s' already exists in %s '%s'", k->what, keys[1], k->parent_what,
				keys[0]);
	} else {
		kind_what(k, keys, what, sizeof(what));
		cmf_reply_db_error(call->resp, r, what);
	}
}

int
cmf_kind_set(struct cmf_call *call, struct cmf_kind_input *in, const char *key, json_t *value)
{
	if (value != NULL && json_object_set(in->doc, key, value) == 0)
		return 0;
	cmf_reply_error(call->resp, 500, "out of memory");
	return -1;
}

int
cmf_kind_read(struct cmf_call *call, const struct cmf_kind *k, const char *const *keys, json_t **row)
{
	enum db_missing missing = DB_MISSING_NONE;
	int r = db_resource_get(cmf_call_conn(call), k->store, cmf_call_sealer(call), keys, row, &missing);

	if (r == DB_OK)
		return 0;
	if (r == DB_ERR_NOT_FOUND)
		return 1;
	kind_error(call, k, r, missing, keys, NULL, NULL);
	return -1;
}

void
cmf_kind_error(struct cmf_call *call, const struct cmf_kind *k, int r, enum db_missing missing, const char *const *keys,
	       const struct db_match *m)
{
	kind_error(call, k, r, missing, keys, NULL, m);
}

void
cmf_kind_etag(struct cmf_call *call, const struct cmf_kind *k, json_t *row)
{
	json_t *v = json_object_get(row, "currentVersion");
	char etag[DB_ETAG_MAX];

	if (!k->cas)
		return;
	if (v == NULL)
		v = json_object_get(row, "version");
	db_resource_etag(json_string_value(json_object_get(row, "uid")), (long long)json_integer_value(v), etag,
			 sizeof(etag));
	cmf_response_header(call->resp, "ETag", etag);
}

int
cmf_kind_precondition(struct cmf_call *call, const struct cmf_kind *k, struct db_match *m)
{
	const char *v, *nm;

	memset(m, 0, sizeof(*m));
	if (!k->cas)
		return 0;
	v = cmf_request_header(call->req, "If-Match");
	/* RFC 9110 §13.1.2: If-None-Match: * on a change means "only if there is none" (412 when there is). */
	nm = cmf_request_header(call->req, "If-None-Match");
	m->none_match = nm != NULL && strcmp(nm, "*") == 0;
	/* "*" matches any version, so it does not show the writer has seen the one it changes. */
	if ((v == NULL || strcmp(v, "*") == 0) && call->req->app->cfg->secrets_require_if_match) {
		cmf_reply_error(call->resp, 428,
				"If-Match with the ETag of the version read is required to change a %s "
				"(secrets.requireIfMatch; * is not enough)",
				k->what);
		return -1;
	}
	/* One ETag or "*": a list would let a writer overwrite whichever of several versions it finds. */
	if (v != NULL && (strchr(v, ',') != NULL || cmf_request_header_count(call->req, "If-Match") > 1)) {
		cmf_reply_error(call->resp, 400, "If-Match: give one ETag (or *)");
		return -1;
	}
	if (v != NULL) {
		/* Optional whitespace around a field value is not part of it (RFC 9110 §5.5). */
		size_t n;

		v += strspn(v, " \t");
		n = strlen(v);
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n >= sizeof(m->given)) {
			cmf_reply_error(call->resp, 400, "If-Match: not an ETag this service gives");
			return -1;
		}
		memcpy(m->given, v, n);
		m->given[n] = '\0';
		m->if_match = m->given;
	}
	return 0;
}

/* GET ?version=N of a check-and-set kind: that kept version, masked like any read. */
static void
kind_get_version(struct cmf_call *call, const struct cmf_kind *k, const char *const *keys, const char *v)
{
	enum db_missing missing = DB_MISSING_NONE;
	char *end = NULL, what[KIND_WHAT_MAX];
	json_t *row = NULL;
	long long version;
	int r;

	errno = 0;
	version = strtoll(v, &end, 10);
	if (v[0] < '1' || v[0] > '9' || *end != '\0' || errno != 0) {
		cmf_reply_error(call->resp, 400, "version must be a positive integer");
		return;
	}
	kind_what(k, keys, what, sizeof(what));
	cmf_call_resource(call, "%s/%s/versions/%lld", k->audit, keys[0], version);
	r = db_resource_get_version(cmf_call_conn(call), k->store, cmf_call_sealer(call), keys, version, &row, &missing);
	if (r == DB_ERR_NOT_FOUND && missing == DB_MISSING_REF)
		cmf_reply_error(call->resp, 404, "%s has no version %lld", what, version);
	else if (r == DB_ERR_GONE)
		cmf_reply_error(call->resp, 410, "%s version %lld was destroyed (beyond secrets.maxVersions): its "
				"metadata is kept, its data is not", what, version);
	else if (r != DB_OK)
		kind_error(call, k, r, missing, keys, NULL, NULL);
	else {
		cmf_kind_etag(call, k, row);
		cmf_reply_json(call->resp, 200, k->to_json(row, NULL));
	}
	json_decref(row);
}

json_t *
cmf_kind_metadata(json_t *row)
{
	return cmf_resource_metadata_json(json_string_value(json_object_get(row, "name")),
					  json_string_value(json_object_get(row, "uid")),
					  json_string_value(json_object_get(row, "created")),
					  json_string_value(json_object_get(row, "updated")), json_object_get(row, "labels"),
					  json_object_get(row, "annotations"));
}

json_t *
cmf_kind_envelope(const struct cmf_kind *k, json_t *row, json_t *spec, json_t *status)
{
	return json_pack("{s:s,s:s,s:o,s:o,s:o*}", "apiVersion", CMF_API_VERSION, "kind", k->kind, "metadata",
			 cmf_kind_metadata(row), "spec", spec, "status", status);
}

static void
kind_get(struct cmf_call *call)
{
	const struct cmf_kind *k = call->route->target;
	enum db_missing missing = DB_MISSING_NONE;
	const char *keys[2];
	json_t *row = NULL;
	int r;

	if (item_keys(call, k, keys) != 0)
		return;
	/* A kept version: always from the database (the cache holds current rows only). */
	if (k->cas && cmf_request_query(call->req, "version") != NULL) {
		kind_get_version(call, k, keys, cmf_request_query(call->req, "version"));
		return;
	}
	/*
	 * A GET: from memory when cached (kept current as resolutions are, cmf/cache.h). Not a token: its row
	 * says whether it has expired, which changes with the clock, not with a write.
	 */
	if (k->store == &db_kind_token)
		r = db_resource_get(cmf_call_conn(call), k->store, cmf_call_sealer(call), keys, &row, &missing);
	else
		r = cmf_cache_resource_get(cmf_call_conn(call), k->store, cmf_call_sealer(call), keys, &row, &missing);
	if (r != DB_OK) {
		kind_error(call, k, r, missing, keys, NULL, NULL);
		return;
	}
	cmf_kind_etag(call, k, row);
	cmf_reply_json(call->resp, 200, k->to_json(row, NULL));
	json_decref(row);
}

static void
kind_list(struct cmf_call *call)
{
	const struct cmf_kind *k = call->route->target;
	const char *keys[2];
	json_t *rows = NULL, *items, *row;
	char what[KIND_WHAT_MAX];
	long long page, total = 0;
	size_t i;
	int size, r;

	if (path_keys(call, k, false, keys) != 0 || cmf_resource_page(call->req, call->resp, &page, &size) != 0)
		return;
	r = db_resource_list(cmf_call_conn(call), k->store, cmf_call_sealer(call), keys, page * size, size, &rows,
			     &total);
	if (r == DB_ERR_NOT_FOUND) {
		cmf_reply_error(call->resp, 404, "%s '%s' not found", k->parent_what, keys[0]);
		return;
	}
	if (r != DB_OK) {
		snprintf(what, sizeof(what), "%ss", k->what);
		cmf_reply_db_error(call->resp, r, what);
		return;
	}
	items = json_array();
	json_array_foreach (rows, i, row) {
		/* Listed, marked, and in the audit trail: a tampered or damaged row is evidence, not noise. */
		if (json_object_get(row, DB_LIST_INTEGRITY) != NULL && k->audit != NULL) {
			char action[64];

			snprintf(action, sizeof(action), "%s.integrity", k->audit);
			cmf_call_audit_also(call, action, 500, "%s/%s", k->audit,
					    json_string_value(json_object_get(row, "name")));
		}
		json_array_append_new(items, k->to_json(row, NULL));
	}
	json_decref(rows);
	cmf_reply_json(call->resp, 200, cmf_resource_page_json(page, size, total, items));
}

/* The body of a write into `in`: the envelope (when the kind has one), spec, then the kind's own checks. */
/* 422 when a PUT's body names another resource than its path; 0 when it names the same (or on POST). */
static int
name_matches(struct cmf_call *call, const struct cmf_kind *k, const char *name, const char *path_name)
{
	if (path_name == NULL || strcmp(name, path_name) == 0)
		return 0;
	cmf_reply_error(call->resp, 422, "metadata.name '%s' does not match the %s name '%s' in the path", name, k->what,
			path_name);
	return -1;
}

static int
kind_input(struct cmf_call *call, const struct cmf_kind *k, const char *path_name, struct cmf_kind_input *in)
{
	static const char *const top_keys[] = { "spec", NULL };
	json_t *labels = NULL, *annotations = NULL, *spec;

	if (k->kind == NULL)
		return k->input(call, NULL, in);
	if (cmf_resource_body(call->req, call->resp, &in->body) != 0)
		return -1;
	if (cmf_resource_envelope(in->body, k->kind, top_keys, call->resp, &in->name, &labels, &annotations) != 0)
		return -1;
	in->doc = json_pack("{s:o,s:o}", "labels", labels, "annotations", annotations);
	if (in->doc == NULL) {
		cmf_reply_error(call->resp, 500, "out of memory");
		return -1;
	}
	if (k->no_labels && (json_object_size(json_object_get(in->doc, "labels")) > 0 ||
			     json_object_size(json_object_get(in->doc, "annotations")) > 0)) {
		cmf_reply_error(call->resp, 400, "metadata.labels and metadata.annotations are not stored for %s", k->kind);
		return -1;
	}
	if (k->name_first && name_matches(call, k, in->name, path_name) != 0)
		return -1;
	spec = json_object_get(in->body, "spec");
	if (spec == NULL || (k->spec_keys == NULL && !json_is_object(spec))) {
		cmf_reply_error(call->resp, 400, "spec is required%s", k->spec_hint != NULL ? k->spec_hint : "");
		return -1;
	}
	if (k->spec_keys != NULL && cmf_resource_object_check(spec, "spec", k->spec_keys, call->resp) != 0)
		return -1;
	return k->input(call, spec, in);
}

static void
input_clear(struct cmf_kind_input *in)
{
	json_decref(in->body);
	json_decref(in->doc);
	json_decref(in->warnings);
	OPENSSL_cleanse(in->once, sizeof(in->once));
}

/* POST (create, or create-or-replace) and PUT (update): one path for every kind. */
static void
kind_write(struct cmf_call *call, bool update)
{
	const struct cmf_kind *k = call->route->target;
	enum db_write how = update ? DB_WRITE_UPDATE : k->create;
	enum db_missing missing = DB_MISSING_NONE;
	struct cmf_kind_input in;
	struct db_match m;
	const char *keys[2], *inm = NULL;
	json_t *row = NULL, *clash = NULL;
	char what[KIND_WHAT_MAX], names[CMF_NAMES_JOIN_MAX];
	bool created = false;
	int r, last = k->parent_what != NULL ? 1 : 0;

	memset(&in, 0, sizeof(in));
	memset(&m, 0, sizeof(m));
	if (path_keys(call, k, update, keys) != 0 || (update && cmf_kind_precondition(call, k, &m) != 0) ||
	    kind_input(call, k, update ? keys[last] : NULL, &in) != 0 ||
	    name_matches(call, k, in.name, update ? keys[last] : NULL) != 0)
		goto out;
	if (k->cas && !update)
		inm = cmf_request_header(call->req, "If-None-Match");
	keys[last] = in.name;
	if (k->prepare != NULL && k->prepare(call, keys, update, &in) != 0)
		goto out;
	name_resource(call, k, keys);
	r = db_resource_write(cmf_call_conn(call), k->store, cmf_call_sealer(call), how, keys, in.doc,
			      cmf_call_audit(call, 200, NULL), k->actions[CMF_OP_UPDATE], &m, &row, &created, &clash,
			      &missing);
	if (r == DB_OK && how == DB_WRITE_PUT && !created)
		cmf_call_audit(call, 200, k->actions[CMF_OP_UPDATE]); /* what the store recorded */
	cmf_call_stored(call, r);
	if (r == DB_ERR_CONFLICT && clash != NULL && k->clash != NULL) {
		kind_what(k, keys, what, sizeof(what));
		cmf_resource_names_join(clash, names, sizeof(names));
		cmf_reply_error(call->resp, 409, "%s %s%s %s: %s", what, k->clash, json_array_size(clash) > 1 ? "s" : "",
				names, k->clash_advice);
		goto out;
	}
	if (r == DB_ERR_CONFLICT && inm != NULL && strcmp(inm, "*") == 0) {
		/* Create only if absent (If-None-Match: *): the precondition failed rather than a plain conflict. */
		kind_what(k, keys, what, sizeof(what));
		cmf_reply_error(call->resp, 412, "%s already exists (If-None-Match: *)", what);
		goto out;
	}
	if (r != DB_OK) {
		kind_error(call, k, r, missing, keys, &in, &m);
		goto out;
	}
	cmf_kind_etag(call, k, row);
	cmf_info("%s %s%s%s %s (uid %s)", k->what, last ? keys[0] : "", last ? "/" : "", keys[last],
		 created ? "created" : "updated", json_string_value(json_object_get(row, "uid")));
	cmf_reply_json(call->resp, 200, k->to_json(row, &in));
out:
	json_decref(row);
	json_decref(clash);
	input_clear(&in);
}

static void
kind_create(struct cmf_call *call)
{
	kind_write(call, false);
}

static void
kind_update(struct cmf_call *call)
{
	kind_write(call, true);
}

static void
kind_delete(struct cmf_call *call)
{
	const struct cmf_kind *k = call->route->target;
	enum db_missing missing = DB_MISSING_NONE;
	char what[KIND_WHAT_MAX], names[CMF_NAMES_JOIN_MAX];
	const char *keys[2];
	struct db_match m;
	json_t *users = NULL;
	int r;

	if (item_keys(call, k, keys) != 0 || cmf_kind_precondition(call, k, &m) != 0)
		return;
	r = db_resource_delete(cmf_call_conn(call), k->store, keys, call->req->principal.name,
			       cmf_call_audit(call, 204, NULL), &m, &users, &missing);
	cmf_call_stored(call, r);
	if (r == DB_ERR_CONFLICT && users != NULL && k->users != NULL) {
		kind_what(k, keys, what, sizeof(what));
		cmf_resource_names_join(users, names, sizeof(names));
		if (json_array_size(users) > 0)
			cmf_reply_error(call->resp, 409, "%s %s%s %s: %s", what, k->users,
					json_array_size(users) > 1 ? "s" : "", names, k->users_advice);
		else
			cmf_reply_error(call->resp, 409, "%s %s: %s", what, k->users_none, k->users_advice);
	} else if (r != DB_OK) {
		kind_error(call, k, r, missing, keys, NULL, &m);
	} else {
		cmf_info("%s %s%s%s deleted", k->what, k->parent_what != NULL ? keys[0] : "",
			 k->parent_what != NULL ? "/" : "", keys[k->parent_what != NULL ? 1 : 0]);
		cmf_reply_empty(call->resp, 204);
	}
	json_decref(users);
}

size_t
cmf_kind_routes(const struct cmf_kind *k, struct cmf_route *out, size_t max)
{
	static const struct {
		const char *method;
		bool item;
		cmf_handler handler;
	} ops[CMF_OP__COUNT] = {
		[CMF_OP_LIST] = { "GET", false, kind_list },	  [CMF_OP_CREATE] = { "POST", false, kind_create },
		[CMF_OP_GET] = { "GET", true, kind_get },	  [CMF_OP_UPDATE] = { "PUT", true, kind_update },
		[CMF_OP_DELETE] = { "DELETE", true, kind_delete },
	};
	static const char *const api[] = { "cmf", "api", "v1" };
	size_t n = 0;

	for (int op = 0; op < CMF_OP__COUNT; op++) {
		struct cmf_route *rt = &out[n];
		size_t s = 0;

		if (!(k->ops & CMF_OP_BIT(op)))
			continue;
		if (n == max)
			return 0;
		memset(rt, 0, sizeof(*rt));
		for (size_t i = 0; i < 3; i++)
			rt->segs[s++] = api[i];
		for (size_t i = 0; i < sizeof(k->segs) / sizeof(k->segs[0]) && k->segs[i] != NULL; i++)
			rt->segs[s++] = k->segs[i];
		if (ops[op].item)
			rt->segs[s++] = "*";
		rt->method = ops[op].method;
		rt->perm = CMF_PERM_ADMIN;
		rt->audit_action = k->actions[op];
		rt->handler = ops[op].handler;
		rt->target = k;
		rt->op = op;
		n++;
	}
	return n;
}
