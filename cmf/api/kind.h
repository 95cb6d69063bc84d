/*
 * cmf API kinds: one declaration per resource kind (Secret, Environment, ...) drives its routes, its
 * generic get/list/create/update/delete handlers, its audit actions and its messages. What a kind does
 * differently (a Secret's masking, the Environment POST that replaces, the database PUT that keeps
 * spec.csfleConfig, a token shown once) is a hook on its declaration, never a copied handler.
 * Adding a kind: declare it (cmf/api/<kind>.c), add its store statements (db/<kind>.c), list it in
 * cmf/api/routes.c, and a migration for its table.
 */
#ifndef CMF_API_KIND_H
#define CMF_API_KIND_H

#include <jansson.h>
#include <stdbool.h>

#include "cmf/http/dispatch.h"
#include "cmf/http/router.h"
#include "db/db.h"

enum cmf_op { CMF_OP_LIST, CMF_OP_CREATE, CMF_OP_GET, CMF_OP_UPDATE, CMF_OP_DELETE, CMF_OP__COUNT };

#define CMF_OPS_ALL ((1u << CMF_OP__COUNT) - 1)
#define CMF_OP_BIT(op) (1u << (op))

/* A write being served: what the body gave and what the store will write. */
struct cmf_kind_input {
	json_t *body;        /* the parsed body (owned) */
	const char *name;    /* the name it gives (borrowed from body) */
	json_t *doc;         /* what the store writes (owned): labels, annotations and the kind's fields */
	json_t *warnings;    /* advice for status.warnings (owned; NULL when none) */
	char once[80];       /* a value shown in this response only (a new token's); wiped after it */
};

struct cmf_kind {
	const char *kind;        /* the body's kind ("Secret"); NULL: the body has no envelope (Environment) */
	const char *what;        /* the kind in messages: "secret", "CsfleConfig" */
	const char *audit;       /* audited resources are "<audit>/<keys...>" */
	const char *parent_what; /* nested kinds: the parent in messages ("environment"); NULL otherwise */
	const char *segs[4];     /* the collection's path below /cmf/api/v1; "*" is the parent's name */
	unsigned ops;            /* CMF_OP_BIT()s served */
	const char *actions[CMF_OP__COUNT]; /* each operation's audit action; NULL: not audited */
	enum db_write create;    /* DB_WRITE_CREATE, or DB_WRITE_PUT: POST creates or replaces */
	const struct db_kind *store;
	const char *const *spec_keys; /* spec's allowed keys; NULL: any (the hook checks spec) */
	const char *spec_hint;   /* after "spec is required" in that 400, e.g. " (spec.role: ...)" */
	/*
	 * The body into in->doc. With `kind` set the envelope is checked first and in->name, in->doc
	 * (labels, annotations) and `spec` (an object) are set; without, in->body is NULL and the hook
	 * parses it. 0, or -1 with the reply made.
	 */
	int (*input)(struct cmf_call *call, json_t *spec, struct cmf_kind_input *in);
	/* Checks that need the store, after the name matched the path (may be NULL). 0, or -1 replied. */
	int (*prepare)(struct cmf_call *call, const char *const *keys, bool update, struct cmf_kind_input *in);
	/* The stored row as returned (new reference); `in` is the write's input, NULL for reads. */
	json_t *(*to_json)(json_t *row, const struct cmf_kind_input *in);
	/* 404 when what the resource refers to is missing: "<ref_what> '<doc.ref_field>' not found: <ref_advice>". */
	const char *ref_field, *ref_what, *ref_advice;
	/* 409 for a delete while referred to: "<what '<name>'> <users>[s] <names>: <advice>", or "<users_none>: <advice>". */
	const char *users, *users_none, *users_advice;
	/* 409 for a write the store finds contradicting other rows (db_kind's clash): "<what '<name>'> <clash>[s] <names>: <advice>". */
	const char *clash, *clash_advice;
	bool exists_in_parent; /* 409 for a create: "<what> '<name>' already exists in <parent> '<p>'" */
	bool name_first;       /* a PUT naming another resource is refused before the spec is read */
	bool no_labels;        /* metadata.labels and annotations are refused (not stored), before the spec */
	/*
	 * Check-and-set (a kind whose store keeps versions): each item's response carries an ETag from its uid
	 * and current version; PUT and DELETE honour If-Match (412 naming the current version), POST
	 * If-None-Match: * (412 when it exists), and secrets.requireIfMatch makes If-Match mandatory (428);
	 * GET ?version=N reads a kept version.
	 */
	bool cas;
};

/* Set in->doc's member `key` to `value` (a new reference is taken); 0, or -1 with a 500 replied. */
int cmf_kind_set(struct cmf_call *call, struct cmf_kind_input *in, const char *key, json_t *value);

/* The kinds cmf serves (cmf/api/<kind>.c). */
extern const struct cmf_kind cmf_kind_secret, cmf_kind_token, cmf_kind_environment, cmf_kind_secret_mapping,
	cmf_kind_csfle_config, cmf_kind_kafka_catalog, cmf_kind_kafka_database, cmf_kind_secret_version,
	cmf_kind_role_binding;

/* POST /cmf/api/v1/secrets/{name}/rollback {"version": N}: version N's data as a new current version. */
void cmf_api_secret_rollback(struct cmf_call *call);

/*
 * Append the routes of `k`'s operations to `out` (room for `max`): list and create on the collection,
 * get, update and delete on its items, each with the kind's audit action, admin only. Returns how many
 * were added, or 0 when they do not fit.
 */
size_t cmf_kind_routes(const struct cmf_kind *k, struct cmf_route *out, size_t max);

/* The row's metadata as CMF returns it (name, uid, creationTimestamp, updateTimestamp, labels, annotations). */
json_t *cmf_kind_metadata(json_t *row);

/* {apiVersion, kind, metadata, spec, status} for `row` of `k` (spec and status stolen; status may be NULL). */
json_t *cmf_kind_envelope(const struct cmf_kind *k, json_t *row, json_t *spec, json_t *status);

/*
 * A check-and-set kind's precondition for a PUT, DELETE (or rollback): m->if_match is the request's If-Match
 * (NULL when absent). 0, or -1 replied: 428 when secrets.requireIfMatch wants one, 400 for a list of ETags.
 */
int cmf_kind_precondition(struct cmf_call *call, const struct cmf_kind *k, struct db_match *m);

/* The ETag header of `row` (its uid and currentVersion, else version) for a check-and-set kind. */
void cmf_kind_etag(struct cmf_call *call, const struct cmf_kind *k, json_t *row);

/* The reply for a failed store call on the row of `keys` (`m`: the precondition given, or NULL). */
void cmf_kind_error(struct cmf_call *call, const struct cmf_kind *k, int r, enum db_missing missing,
		    const char *const *keys, const struct db_match *m);

/* The row of `k` at `keys`, read for a hook's check: 0 with *row, 1 when there is none, or -1 replied. */
int cmf_kind_read(struct cmf_call *call, const struct cmf_kind *k, const char *const *keys, json_t **row);

#endif
