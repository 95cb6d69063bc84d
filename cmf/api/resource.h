/* cmf resources: what every CMF-shaped resource handler shares — body parsing, envelope, names, paging. */
#ifndef CMF_RESOURCE_H
#define CMF_RESOURCE_H

#include <jansson.h>
#include <stdbool.h>

#include "cmf/http/request.h"

#define CMF_API_VERSION "cmf.confluent.io/v1"

/* DNS-1123 subdomain names of 4 to 253 characters (CMF's rule; 253 is the DNS name limit). */
#define CMF_NAME_MIN 4
#define CMF_NAME_MAX 253

/* Page sizes: 20 is Spring Data's default (CMF is a Spring service); 100 bounds one decrypting page. */
#define CMF_PAGE_SIZE_DEFAULT 20
#define CMF_PAGE_SIZE_MAX 100

/*
 * Parse the request body as JSON or YAML (by Content-Type) into an object. On failure replies
 * (415 unsupported type, 400 empty/malformed naming the position) and returns -1.
 * On success *out is a new reference.
 */
int cmf_resource_body(struct cmf_request *req, struct cmf_response *resp, json_t **out);

/*
 * A body of one member (an action's: {"target": ...}, {"version": N}, {"retire": true}): cmf_resource_body,
 * no member but `name`, and *value a new reference to it (NULL when absent). 0, or -1 replied.
 */
int cmf_resource_body_member(struct cmf_request *req, struct cmf_response *resp, const char *name, json_t **value);

/*
 * 0 when `name` is a valid resource name, else -1 with a sentence in `why` naming `field` and the
 * rule broken, e.g. "metadata.name 'Ab' must be 4 to 253 characters".
 */
int cmf_resource_name_check(const char *field, const char *name, char *why, size_t whylen);

/*
 * The environments an environment-reader scope names (a token's or a role binding's spec.environments):
 * NULL or an array of at most CMF_RESOURCE_MAX_ENVIRONMENTS valid environment names. Returns 0, or -1
 * with the 400 in `resp`.
 */
#define CMF_RESOURCE_MAX_ENVIRONMENTS 64
int cmf_resource_environments_check(json_t *envs, struct cmf_response *resp);

/*
 * The name in member `key` of `obj`, reported as `field` ("spec.secretName"). Absent (or null, unless
 * `required`): 0 with *out NULL, or with `required` 400 "<field> is required". A string that is a valid
 * name: 0 with *out (borrowed). Anything else replies 400 ("<field> must be <must_be>", or the name rule
 * it breaks) and returns -1.
 */
int cmf_resource_name_member(json_t *obj, const char *key, const char *field, bool required, const char *must_be,
			     struct cmf_response *resp, json_t **out);

/*
 * A resource name taken from the path: 0 if it could name a resource, else replies 404
 * "<what> '<name>' not found" (no such resource can exist) and returns -1. Keeps bytes that are not
 * a valid name away from the database.
 */
int cmf_resource_path_name(struct cmf_response *resp, const char *what, const char *name);

/*
 * Check the envelope of a CMF resource body: apiVersion == CMF_API_VERSION and kind == `kind`
 * (both required strings), only the top-level keys in `top_keys` (NULL-terminated; apiVersion,
 * kind, metadata, status are always allowed — status is read-only and ignored), metadata an object
 * with only name/labels/annotations and the read-only uid/creationTimestamp/updateTimestamp,
 * metadata.name a valid name, labels/annotations objects of strings (absent → empty objects).
 * On failure replies 400 naming the field and returns -1. On success the borrowed pointers are set
 * (*labels and *annotations are new references the caller decref's).
 */
int cmf_resource_envelope(json_t *body, const char *kind, const char *const *top_keys, struct cmf_response *resp,
			  const char **name, json_t **labels, json_t **annotations);

/*
 * Check that `obj` (at dotted path `field`) is an object and has no keys outside `allowed`
 * (NULL-terminated). Replies 400 and returns -1 otherwise.
 */
int cmf_resource_object_check(json_t *obj, const char *field, const char *const *allowed, struct cmf_response *resp);

/*
 * 0 when `s` is an RFC 3339 UTC time "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (the form cmf writes), with
 * *t its seconds since the epoch (t may be NULL); -1 otherwise.
 */
int cmf_resource_time(const char *s, long long *t);

/* Read `page` (≥ 0) and `size` (1..CMF_PAGE_SIZE_MAX) query parameters; replies 400 and returns -1 if bad. */
/*
 * The query parameter `name` as a decimal integer from `min` (≥ 0) to `max`; *out = `def` when it is
 * absent. 0, or -1 with the reply set (400 naming the parameter and its range).
 */
int cmf_resource_query_int(struct cmf_request *req, struct cmf_response *resp, const char *name, long long min,
			   long long max, long long def, long long *out);

int cmf_resource_page(struct cmf_request *req, struct cmf_response *resp, long long *page, int *size);

/* {pageable:{page,size,sort:{...}}, metadata:{size:total}, items} — `items` is stolen. */
json_t *cmf_resource_page_json(long long page, int size, long long total, json_t *items);

/* metadata {name, uid, creationTimestamp, updateTimestamp, labels, annotations} (borrowed JSON copied). */
json_t *cmf_resource_metadata_json(const char *name, const char *uid, const char *created, const char *updated,
				   json_t *labels, json_t *annotations);

/* Room for a joined list of names in one error message (the reply caps a message at 1 KiB). */
#define CMF_NAMES_JOIN_MAX 640

/*
 * Join the strings of the array `names` (borrowed) as "a, b, c" into buf, always NUL-terminated; when
 * they do not all fit, as many as fit are followed by "and N more".
 */
void cmf_resource_names_join(json_t *names, char *buf, size_t len);

/*
 * 1 when the configuration key `key` names a credential (passwords, secrets, passphrases, JAAS
 * configurations, basic-auth user info, bearer tokens, private keys; case-insensitive, also as the last
 * dotted part, e.g. "properties.sasl.jaas.config"): what public configuration (stored in clear, returned
 * by every read) refuses. Kafka and Schema Registry client names; the rule is in cmf/api/resource.c.
 */
int cmf_resource_key_sensitive(const char *key);

/*
 * 1 when `v` holds a URL with user information in it ("https://user:password@host", what Schema
 * Registry's basic.auth.credentials.source=URL reads, or "https://token@vault"): a credential hidden
 * in a public setting.
 */
int cmf_resource_url_has_credentials(const char *v);

#endif
