/* cmf Environments (/cmf/api/v1/environments): CMF's shapes; POST creates or replaces. */
#include <stdio.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "cmf/csfle/csfle.h"
#include "cmf/http/reply.h"
#include "cmf/text.h"
#include "cmf/api/resource.h"
#include "cmf/api/kind.h"

/* The defaults CMF keeps per environment: stored and returned as given (objects of any shape). */
static const char *const default_keys[] = { "flinkApplicationDefaults", "computePoolDefaults", "statementDefaults",
					    NULL };

/*
 * The Flink configuration maps inside the defaults, wherever they sit (flinkApplicationDefaults.spec,
 * computePoolDefaults.clusterSpec, statementDefaults.detached, ...): Flink reads them as key/value
 * settings, and cmf stores and returns them in clear, so they take no credential (the connectionConfig
 * rule). The Kubernetes structure around them (podTemplate env secretKeyRef, secretName,
 * imagePullSecrets) is how credentials are injected and is not checked.
 */
static const char *const flink_config_maps[] = { "flinkConfiguration", NULL };

/* Flink settings that name Kubernetes Secrets to inject, not credentials: allowed despite "secret". */
static const char *const flink_secret_refs[] = { "kubernetes.secrets", "kubernetes.env.secretKeyRef", NULL };

/* A path in an error message is cut here: enough to find the setting. */
#define DEFAULTS_PATH_MAX 256
/* A Flink configuration key is checked whole up to this length; a longer one is refused. */
#define DEFAULTS_KEY_MAX 1024

/*
 * Flink's own credential settings the connectionConfig rule does not know (matched anywhere in the key,
 * ignoring case): Azure's fs.azure.account.key.<account>..., metric reporters' API keys, S3's access key.
 */
static const char *const flink_credential_parts[] = { "account.key", "apikey", "api-key", "api.key", "access-key",
						      NULL };

static bool
flink_credential_key(const char *key)
{
	char lower[DEFAULTS_KEY_MAX];
	size_t n = 0;

	for (; key[n] != '\0' && n < sizeof(lower) - 1; n++)
		lower[n] = (char)tolower((unsigned char)key[n]);
	lower[n] = '\0';
	for (size_t i = 0; flink_credential_parts[i] != NULL; i++)
		if (strstr(lower, flink_credential_parts[i]) != NULL)
			return true;
	return false;
}

static bool
flink_secret_ref(const char *key)
{
	for (size_t i = 0; flink_secret_refs[i] != NULL; i++)
		if (strcasecmp(key, flink_secret_refs[i]) == 0)
			return true;
	return false;
}

/*
 * Add to `bad` the path of every credential setting in the Flink configuration map `map` at `path`. A
 * nested object is a YAML-style nested key ("s3: {secret-key: ...}" is Flink's "s3.secret-key"): its
 * keys are checked joined with dots. Returns -1 when out of memory.
 */
static int
config_map_check(json_t *map, const char *path, const char *prefix, json_t *bad)
{
	const char *k;
	json_t *v;

	json_object_foreach (map, k, v) {
		char key[DEFAULTS_KEY_MAX], where[2 * DEFAULTS_PATH_MAX];
		/* A key too long to hold whole is refused rather than checked cut (a cut could hide its end). */
		bool whole = (size_t)snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] != '\0' ? "." : "", k) <
			     sizeof(key);

		if (whole && json_is_object(v)) {
			if (config_map_check(v, path, key, bad) != 0)
				return -1;
			continue;
		}
		if (whole && flink_secret_ref(key))
			continue;
		if (whole && !cmf_resource_key_sensitive(key) && !cmf_csfle_credential_key(key) &&
		    !flink_credential_key(key) &&
		    !(json_is_string(v) && cmf_resource_url_has_credentials(json_string_value(v))))
			continue;
		snprintf(where, sizeof(where), "%s[%.*s%s]", path, DEFAULTS_PATH_MAX, key,
			 strlen(key) > DEFAULTS_PATH_MAX ? "..." : "");
		cmf_utf8_sanitize(where); /* a cut may split a character */
		if (json_array_append_new(bad, json_string(where)) != 0)
			return -1;
	}
	return 0;
}

/* Walk `v` (at `path`) for Flink configuration maps and check each. Returns -1 when out of memory. */
static int
defaults_check(json_t *v, const char *path, json_t *bad)
{
	char sub[DEFAULTS_PATH_MAX];
	const char *k;
	json_t *child;
	size_t i;

	if (json_is_array(v)) {
		json_array_foreach (v, i, child) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			if (defaults_check(child, sub, bad) != 0)
				return -1;
		}
		return 0;
	}
	json_object_foreach (v, k, child) {
		bool config = false;

		snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] != '\0' ? "." : "", k);
		for (size_t m = 0; flink_config_maps[m] != NULL; m++)
			config = config || strcmp(k, flink_config_maps[m]) == 0;
		if (config && json_is_object(child) ? config_map_check(child, sub, "", bad) != 0
						     : defaults_check(child, sub, bad) != 0)
			return -1;
	}
	return 0;
}

/* An Environment as returned (CMF's Environment: no apiVersion/kind; `secrets` from its mappings). */
static json_t *
env_json(json_t *row, const struct cmf_kind_input *in)
{
	json_t *j = json_pack("{s:O,s:O,s:O,s:O}", "name", json_object_get(row, "name"), "created_time",
			      json_object_get(row, "created"), "updated_time", json_object_get(row, "updated"),
			      "kubernetesNamespace", json_object_get(row, "kubernetesNamespace"));

	(void)in;
	if (j == NULL)
		return NULL;
	json_object_update(j, json_object_get(row, "defaults"));
	json_object_set_new(j, "metadata", cmf_kind_metadata(row));
	json_object_set(j, "secrets", json_object_get(row, "secrets"));
	return j;
}

/*
 * kubernetesNamespace as CMF's schema has it: 1 to 253 characters matching
 * ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$ (253 is the DNS name limit).
 */
static int
namespace_ok(const char *s)
{
	size_t len = strlen(s);

	if (len < 1 || len > 253)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		/* Each dot-separated label starts and ends with a letter or digit. */
		int label_edge = i == 0 || i == len - 1 || s[i - 1] == '.' || s[i + 1] == '.';

		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
			continue;
		if (ch == '.' && i > 0 && i < len - 1 && s[i - 1] != '.')
			continue;
		if (ch == '-' && !label_edge)
			continue;
		return 0;
	}
	return 1;
}

static int
env_input(struct cmf_call *call, json_t *spec, struct cmf_kind_input *in)
{
	/* PostEnvironment's fields, plus Environment's read-only ones (accepted and ignored, so a GET can be
	 * sent back): created_time, updated_time, secrets, status. */
	static const char *const keys[] = { "name",	      "metadata",		  "kubernetesNamespace",
					    "kubernetesClusterName", "flinkApplicationDefaults", "computePoolDefaults",
					    "statementDefaults",     "created_time",		  "updated_time",
					    "secrets",		      "status",			  NULL };
	struct cmf_response *resp = call->resp;
	json_t *jname, *meta, *v, *envelope = NULL, *labels = NULL, *annotations = NULL, *defaults, *bad = NULL;
	const char *name;
	char why[512];
	int ret = -1;

	(void)spec;
	if (cmf_resource_body(call->req, resp, &in->body) != 0)
		return -1;
	if (cmf_resource_object_check(in->body, "", keys, resp) != 0)
		goto bad;
	v = json_object_get(in->body, "kubernetesClusterName");
	if (v != NULL && !json_is_null(v)) {
		cmf_reply_error(resp, 422, "kubernetesClusterName is not supported: cmf manages no Kubernetes clusters");
		goto bad;
	}
	/* The name: `name` (deprecated by CMF) or metadata.name; both must agree when both are given. */
	jname = json_object_get(in->body, "name");
	if (jname != NULL && !json_is_string(jname)) {
		cmf_reply_error(resp, 400, "name must be a string");
		goto bad;
	}
	if (jname != NULL && cmf_resource_name_check("name", json_string_value(jname), why, sizeof(why)) != 0) {
		cmf_reply_error(resp, 400, "%s", why);
		goto bad;
	}
	meta = json_object_get(in->body, "metadata");
	if (meta == NULL && jname == NULL) {
		cmf_reply_error(resp, 400, "metadata.name is required (or the deprecated name)");
		goto bad;
	}
	if (meta == NULL) {
		meta = json_pack("{s:O}", "name", jname);
	} else if (json_is_object(meta) && json_object_get(meta, "name") == NULL && jname != NULL) {
		meta = json_copy(meta);
		if (meta != NULL)
			json_object_set(meta, "name", jname);
	} else {
		json_incref(meta);
	}
	/* metadata is checked as every resource's is: wrapped in an envelope of its own. */
	envelope = json_pack("{s:s,s:s,s:o}", "apiVersion", CMF_API_VERSION, "kind", "Environment", "metadata", meta);
	if (envelope == NULL) {
		cmf_reply_error(resp, 500, "internal error");
		goto bad;
	}
	if (cmf_resource_envelope(envelope, "Environment", NULL, resp, &name, &labels, &annotations) != 0)
		goto bad;
	if (jname != NULL && strcmp(json_string_value(jname), name) != 0) {
		cmf_reply_error(resp, 422, "name '%s' and metadata.name '%s' differ: send one name", json_string_value(jname),
				name);
		goto bad;
	}
	v = json_object_get(in->body, "kubernetesNamespace");
	if (v == NULL || json_is_null(v)) {
		cmf_reply_error(resp, 400, "kubernetesNamespace is required");
		goto bad;
	}
	if (!json_is_string(v)) {
		cmf_reply_error(resp, 400, "kubernetesNamespace must be a string");
		goto bad;
	}
	if (!namespace_ok(json_string_value(v))) {
		cmf_reply_error(resp, 400,
				"kubernetesNamespace '%.64s' is not valid: 1 to 253 lowercase letters, digits, '-' and "
				"'.', starting and ending with a letter or digit",
				json_string_value(v));
		goto bad;
	}
	/* The name is kept in the doc: the envelope it was read from goes at the end. */
	in->doc = json_pack("{s:s,s:O,s:O,s:O,s:{}}", "name", name, "kubernetesNamespace", v, "labels", labels,
			    "annotations", annotations, "defaults");
	if (in->doc == NULL) {
		cmf_reply_error(resp, 500, "out of memory");
		goto bad;
	}
	in->name = json_string_value(json_object_get(in->doc, "name"));
	defaults = json_object_get(in->doc, "defaults");
	for (size_t i = 0; default_keys[i] != NULL; i++) {
		v = json_object_get(in->body, default_keys[i]);
		if (v == NULL || json_is_null(v))
			continue;
		if (!json_is_object(v)) {
			cmf_reply_error(resp, 400, "%s must be an object", default_keys[i]);
			goto bad;
		}
		json_object_set(defaults, default_keys[i], v);
	}
	/* Every offending setting named at once, so one round trip fixes them all. */
	if ((bad = json_array()) == NULL || defaults_check(defaults, "", bad) != 0) {
		cmf_reply_error(resp, 500, "out of memory");
		goto bad;
	}
	if (json_array_size(bad) > 0) {
		char names[CMF_NAMES_JOIN_MAX];

		cmf_resource_names_join(bad, names, sizeof(names));
		cmf_reply_error(resp, 422,
				"environment defaults hold sensitive Flink configuration key%s (%s): they are stored and "
				"returned in clear; put credentials in a Kubernetes Secret and reference it (Flink's "
				"kubernetes.secrets or kubernetes.env.secretKeyRef, or a podTemplate secretKeyRef)",
				json_array_size(bad) > 1 ? "s" : "", names);
		goto bad;
	}
	ret = 0;
bad:
	json_decref(envelope);
	json_decref(labels);
	json_decref(annotations);
	json_decref(bad);
	return ret;
}

const struct cmf_kind cmf_kind_environment = {
	.what = "environment", .audit = "environment", .segs = { "environments" },
	.ops = CMF_OP_BIT(CMF_OP_LIST) | CMF_OP_BIT(CMF_OP_CREATE) | CMF_OP_BIT(CMF_OP_GET) | CMF_OP_BIT(CMF_OP_DELETE),
	/* POST creates or replaces (CMF's createOrUpdateEnvironment): recorded as an update when it existed. */
	.actions = { [CMF_OP_CREATE] = "environment.create", [CMF_OP_UPDATE] = "environment.update",
		     [CMF_OP_DELETE] = "environment.delete" },
	.create = DB_WRITE_PUT, .store = &db_kind_environment, .input = env_input, .to_json = env_json,
};
