/* cmf Kafka catalogs API (/cmf/api/v1/catalogs/kafka and their databases): CMF's shapes, public config only. */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cmf/http/audit.h"
#include "cmf/csfle/csfle.h"
#include "cmf/log.h"
#include "cmf/http/reply.h"
#include "cmf/api/resource.h"
#include "cmf/api/routes.h"

/*
 * connectionConfig keys that hold credentials, refused with 422. connectionConfig is public
 * configuration: stored in clear and returned by every read, so a credential there leaks; it belongs
 * in a Secret that connectionSecretId names (the resolution for jobs merges the two). Matched
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

static int
key_sensitive(const char *key)
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

/* The connection of a catalog (spec.srInstance) or a database (spec.kafkaCluster), checked. */
struct connection_input {
	json_t *config;        /* borrowed from the body */
	const char *secret_id; /* borrowed, NULL when none */
};

static int
connection_input(json_t *spec, const char *key, struct cmf_response *resp, struct connection_input *out)
{
	static const char *const conn_keys[] = { "connectionConfig", "connectionSecretId", NULL };
	char field[64], why[512], names[CMF_NAMES_JOIN_MAX];
	json_t *conn, *v, *bad = NULL;
	const char *k;

	memset(out, 0, sizeof(*out));
	snprintf(field, sizeof(field), "spec.%s", key);
	conn = json_object_get(spec, key);
	if (conn == NULL) {
		cmf_reply_error(resp, 400, "%s is required (connectionConfig and, for credentials, connectionSecretId)",
				field);
		return -1;
	}
	if (cmf_resource_object_check(conn, field, conn_keys, resp) != 0)
		return -1;
	out->config = json_object_get(conn, "connectionConfig");
	if (out->config == NULL) {
		cmf_reply_error(resp, 400, "%s.connectionConfig is required", field);
		return -1;
	}
	if (!json_is_object(out->config)) {
		cmf_reply_error(resp, 400, "%s.connectionConfig must be an object of strings", field);
		return -1;
	}
	json_object_foreach (out->config, k, v) {
		if (k[0] == '\0') {
			cmf_reply_error(resp, 400, "%s.connectionConfig: keys must not be empty", field);
			return -1;
		}
		if (!json_is_string(v)) {
			cmf_reply_error(resp, 400, "%s.connectionConfig.%.64s must be a string", field, k);
			return -1;
		}
	}
	/* Every offending key named at once, so one round trip fixes them all. */
	json_object_foreach (out->config, k, v) {
		/* Rule executor parameters are KMS credentials: a CsfleConfig's credentials secret holds them. */
		if (key_sensitive(k) || cmf_csfle_credential_key(k) || cmf_resource_url_has_credentials(json_string_value(v))) {
			if (bad == NULL)
				bad = json_array();
			json_array_append_new(bad, json_string(k));
		}
	}
	if (bad != NULL) {
		cmf_resource_names_join(bad, names, sizeof(names));
		cmf_reply_error(resp, 422,
				"%s.connectionConfig holds sensitive key%s (%s): put them in a Secret and reference it "
				"with connectionSecretId",
				field, json_array_size(bad) > 1 ? "s" : "", names);
		json_decref(bad);
		return -1;
	}
	v = json_object_get(conn, "connectionSecretId");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_string(v)) {
			cmf_reply_error(resp, 400, "%s.connectionSecretId must be a string", field);
			return -1;
		}
		snprintf(field + strlen(field), sizeof(field) - strlen(field), ".connectionSecretId");
		if (cmf_resource_name_check(field, json_string_value(v), why, sizeof(why)) != 0) {
			cmf_reply_error(resp, 400, "%s", why);
			return -1;
		}
		out->secret_id = json_string_value(v);
	}
	return 0;
}

/* A list field of CMF's that cmf does not implement: absent, null or empty, else 422 with `why`. */
static int
unsupported_list(json_t *spec, const char *key, const char *why, struct cmf_response *resp)
{
	json_t *v = json_object_get(spec, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v)) {
		cmf_reply_error(resp, 400, "spec.%s must be an array", key);
		return -1;
	}
	if (json_array_size(v) > 0) {
		cmf_reply_error(resp, 422, "spec.%s is not supported: %s", key, why);
		return -1;
	}
	return 0;
}

/* A KafkaCatalog (catalog NULL) or KafkaDatabase body, checked. */
struct kafka_input {
	json_t *body;
	const char *name;
	json_t *labels, *annotations;
	struct connection_input conn;
	const char *csfle_config; /* database: spec.csfleConfig (cmf's extension), NULL when none */
	bool csfle_given;         /* spec.csfleConfig present (null included): absent on PUT keeps the stored one */
	char *csfle_kept;         /* the stored name kept by such a PUT (owned) */
};

static void
kafka_input_clear(struct kafka_input *in)
{
	json_decref(in->body);
	json_decref(in->labels);
	json_decref(in->annotations);
	free(in->csfle_kept);
	memset(in, 0, sizeof(*in));
}

static int
kafka_input(struct cmf_request *req, struct cmf_response *resp, const char *catalog, struct kafka_input *in)
{
	static const char *const top_keys[] = { "spec", NULL };
	static const char *const cat_spec_keys[] = { "srInstance", "kafkaClusters", NULL };
	static const char *const db_spec_keys[] = { "kafkaCluster", "ddlEnvironments", "csfleConfig", NULL };
	char why[512]; /* a sentence around a name of up to 253 characters */
	json_t *spec, *v;

	memset(in, 0, sizeof(*in));
	if (cmf_resource_body(req, resp, &in->body) != 0)
		return -1;
	if (cmf_resource_envelope(in->body, catalog == NULL ? "KafkaCatalog" : "KafkaDatabase", top_keys, resp,
				  &in->name, &in->labels, &in->annotations) != 0)
		goto bad;
	spec = json_object_get(in->body, "spec");
	if (spec == NULL) {
		cmf_reply_error(resp, 400, "spec is required");
		goto bad;
	}
	if (cmf_resource_object_check(spec, "spec", catalog == NULL ? cat_spec_keys : db_spec_keys, resp) != 0)
		goto bad;
	if (catalog == NULL) {
		snprintf(why, sizeof(why), "create databases under /cmf/api/v1/catalogs/kafka/%s/databases", in->name);
		if (unsupported_list(spec, "kafkaClusters", why, resp) != 0 ||
		    connection_input(spec, "srInstance", resp, &in->conn) != 0)
			goto bad;
	} else {
		if (unsupported_list(spec, "ddlEnvironments", "cmf runs no SQL statements; leave it out", resp) != 0 ||
		    connection_input(spec, "kafkaCluster", resp, &in->conn) != 0)
			goto bad;
		v = json_object_get(spec, "csfleConfig");
		in->csfle_given = v != NULL;
		if (v != NULL && !json_is_null(v)) {
			if (!json_is_string(v)) {
				cmf_reply_error(resp, 400, "spec.csfleConfig must be the name of a CsfleConfig (a string)");
				goto bad;
			}
			if (cmf_resource_name_check("spec.csfleConfig", json_string_value(v), why, sizeof(why)) != 0) {
				cmf_reply_error(resp, 400, "%s", why);
				goto bad;
			}
			in->csfle_config = json_string_value(v);
		}
	}
	return 0;
bad:
	kafka_input_clear(in);
	return -1;
}

/* A KafkaCatalog or KafkaDatabase as returned; connectionConfig is public, so it is returned as stored. */
static json_t *
kafka_json(const struct db_kafka *k)
{
	json_t *conn = json_pack("{s:O}", "connectionConfig", k->connection_config);

	json_t *j;

	if (conn != NULL && k->connection_secret_id != NULL)
		json_object_set_new(conn, "connectionSecretId", json_string(k->connection_secret_id));
	j = json_pack("{s:s,s:s,s:o,s:{s:o},s:{s:O}}", "apiVersion", CMF_API_VERSION, "kind",
		      k->catalog == NULL ? "KafkaCatalog" : "KafkaDatabase", "metadata",
		      cmf_resource_metadata_json(k->name, k->uid, k->created, k->updated, k->labels, k->annotations),
		      "spec", k->catalog == NULL ? "srInstance" : "kafkaCluster", conn, "status", "environmentsWithAccess",
		      k->environments_with_access);
	if (j != NULL && k->csfle_config != NULL)
		json_object_set_new(json_object_get(j, "spec"), "csfleConfig", json_string(k->csfle_config));
	return j;
}

/*
 * A database naming a CsfleConfig: its public configuration and its catalog's, checked as the
 * resolution will check them merged with the secrets (cmf_csfle_check_public). Problems are
 * refused here, so they show when written rather than when a job starts; *warnings gets the advice
 * (DLQ and reporter topics). The resolution checks again: the catalog may change in between.
 */
static int
database_csfle_check(struct cmf_request *req, struct cmf_response *resp, const char *catalog,
		     const struct kafka_input *in, json_t **warnings)
{
	struct db_kafka *cat = NULL;
	struct db_csfle *f = NULL;
	json_t *problems = json_array();
	int r, ret = -1;

	*warnings = json_array();
	if (problems == NULL || *warnings == NULL) {
		cmf_reply_error(resp, 500, "out of memory");
		goto out;
	}
	r = db_kafka_catalog_get(cmf_app_conn(req->app), catalog, &cat);
	if (r == DB_OK)
		r = db_csfle_get(cmf_app_conn(req->app), in->csfle_config, &f);
	if (r == DB_ERR_NOT_FOUND) {
		ret = 0; /* the write answers 404 for the catalog or the CsfleConfig */
		goto out;
	}
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, "the catalog or CsfleConfig");
		goto out;
	}
	cmf_csfle_check_database(f->spec, f->name, in->conn.config, cat->connection_config, problems, *warnings);
	if (json_array_size(problems) > 0) {
		cmf_reply_problems(resp, 422, problems);
		goto out;
	}
	ret = 0;
out:
	if (ret != 0) {
		json_decref(*warnings);
		*warnings = NULL;
	}
	json_decref(problems);
	db_kafka_free(cat);
	db_csfle_free(f);
	return ret;
}

/*
 * A PUT of a database without spec.csfleConfig keeps the CsfleConfig it names: a client that speaks
 * only CMF's fields must not switch its encryption off by updating it (null removes it explicitly).
 * 0, or -1 with the reply set; a database that does not exist is left to the write's 404.
 */
static int
database_csfle_keep(struct cmf_request *req, struct cmf_response *resp, const char *catalog, struct kafka_input *in)
{
	struct db_kafka *k = NULL;
	int r = db_kafka_database_get(cmf_app_conn(req->app), catalog, in->name, &k, NULL);

	if (r == DB_ERR_NOT_FOUND)
		return 0;
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, "the database");
		return -1;
	}
	if (k->csfle_config != NULL) {
		in->csfle_kept = strdup(k->csfle_config);
		if (in->csfle_kept == NULL) {
			db_kafka_free(k);
			cmf_reply_error(resp, 500, "out of memory");
			return -1;
		}
		in->csfle_config = in->csfle_kept;
	}
	db_kafka_free(k);
	return 0;
}

/* The reply for a failed call on a catalog (catalog NULL) or database. */
static void
kafka_error(struct cmf_response *resp, int r, enum db_missing missing, const char *catalog, const char *name,
	    const char *csfle_config)
{
	char what[600];

	if (catalog == NULL)
		snprintf(what, sizeof(what), "catalog '%s'", name);
	else
		snprintf(what, sizeof(what), "database '%s' in catalog '%s'", name, catalog);
	if (r == DB_ERR_NOT_FOUND && missing == DB_MISSING_PARENT)
		cmf_reply_error(resp, 404, "catalog '%s' not found", catalog);
	else if (r == DB_ERR_NOT_FOUND && missing == DB_MISSING_REF)
		cmf_reply_error(resp, 404, "CsfleConfig '%s' not found: create it before naming it in spec.csfleConfig",
				csfle_config);
	else
		cmf_reply_db_error(resp, r, what);
}

/* POST (path_name NULL: create) or PUT (path_name: update) of a catalog (catalog NULL) or database. */
static void
kafka_write(struct cmf_request *req, struct cmf_response *resp, const char *catalog, const char *path_name)
{
	const char *kind = catalog == NULL ? "catalog" : "database";
	struct kafka_input in;
	struct db_kafka *k = NULL;
	enum db_missing missing = DB_MISSING_NONE;
	struct db_audit audit;
	char action[32], res[600];
	json_t *warnings = NULL, *j;
	struct db_conn *c;
	int r;

	if (catalog != NULL && cmf_resource_path_name(resp, "catalog", catalog) != 0)
		return;
	if (path_name != NULL && cmf_resource_path_name(resp, kind, path_name) != 0)
		return;
	if (kafka_input(req, resp, catalog, &in) != 0)
		return;
	if (path_name != NULL && strcmp(in.name, path_name) != 0) {
		cmf_reply_error(resp, 422, "metadata.name '%s' does not match the %s name '%s' in the path", in.name, kind,
				path_name);
		goto out;
	}
	if (catalog != NULL && path_name != NULL && !in.csfle_given && database_csfle_keep(req, resp, catalog, &in) != 0)
		goto out;
	if (in.csfle_config != NULL && database_csfle_check(req, resp, catalog, &in, &warnings) != 0)
		goto out;
	c = cmf_app_conn(req->app);
	snprintf(action, sizeof(action), "%s.%s", kind, path_name == NULL ? "create" : "update");
	if (catalog == NULL)
		cmf_audit_init(&audit, req, action, "success", 200, res, sizeof(res), "catalog/%s", in.name);
	else
		cmf_audit_init(&audit, req, action, "success", 200, res, sizeof(res), "database/%s/%s", catalog, in.name);
	if (catalog == NULL && path_name == NULL)
		r = db_kafka_catalog_create(c, in.name, in.labels, in.annotations, in.conn.config, in.conn.secret_id,
					    &audit, &k);
	else if (catalog == NULL)
		r = db_kafka_catalog_update(c, in.name, in.labels, in.annotations, in.conn.config, in.conn.secret_id,
					    &audit, &k);
	else if (path_name == NULL)
		r = db_kafka_database_create(c, catalog, in.name, in.labels, in.annotations, in.conn.config,
					     in.conn.secret_id, in.csfle_config, &audit, &k, &missing);
	else
		r = db_kafka_database_update(c, catalog, in.name, in.labels, in.annotations, in.conn.config,
					     in.conn.secret_id, in.csfle_config, &audit, &k, &missing);
	if (r != DB_OK) {
		kafka_error(resp, r, missing, catalog, in.name, in.csfle_config);
		cmf_audit_fail(req, &audit, resp->status, r);
		goto out;
	}
	cmf_audit_done(req, &audit);
	cmf_info("%s %s%s%s %s (uid %s)", kind, catalog != NULL ? catalog : "", catalog != NULL ? "/" : "", k->name,
		 path_name == NULL ? "created" : "updated", k->uid);
	j = kafka_json(k);
	if (j != NULL && json_array_size(warnings) > 0)
		json_object_set(json_object_get(j, "status"), "warnings", warnings);
	cmf_reply_json(resp, 200, j);
out:
	json_decref(warnings);
	db_kafka_free(k);
	kafka_input_clear(&in);
}

static void
kafka_get(struct cmf_request *req, struct cmf_response *resp, const char *catalog, const char *name)
{
	struct db_kafka *k = NULL;
	enum db_missing missing = DB_MISSING_NONE;
	struct db_conn *c = cmf_app_conn(req->app);
	int r;

	if (catalog != NULL && cmf_resource_path_name(resp, "catalog", catalog) != 0)
		return;
	if (cmf_resource_path_name(resp, catalog == NULL ? "catalog" : "database", name) != 0)
		return;
	if (catalog == NULL)
		r = db_kafka_catalog_get(c, name, &k);
	else
		r = db_kafka_database_get(c, catalog, name, &k, &missing);
	if (r != DB_OK) {
		kafka_error(resp, r, missing, catalog, name, NULL);
		return;
	}
	cmf_reply_json(resp, 200, kafka_json(k));
	db_kafka_free(k);
}

static void
kafka_list(struct cmf_request *req, struct cmf_response *resp, const char *catalog)
{
	struct db_kafka **items = NULL;
	struct db_conn *c;
	long long page, total = 0;
	size_t n = 0;
	json_t *arr;
	int size, r;

	if (catalog != NULL && cmf_resource_path_name(resp, "catalog", catalog) != 0)
		return;
	if (cmf_resource_page(req, resp, &page, &size) != 0)
		return;
	c = cmf_app_conn(req->app);
	if (catalog == NULL)
		r = db_kafka_catalog_list(c, page * size, size, &items, &n, &total);
	else
		r = db_kafka_database_list(c, catalog, page * size, size, &items, &n, &total);
	if (r == DB_ERR_NOT_FOUND) {
		cmf_reply_error(resp, 404, "catalog '%s' not found", catalog);
		return;
	}
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, catalog == NULL ? "catalogs" : "databases");
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(arr, kafka_json(items[i]));
		db_kafka_free(items[i]);
	}
	free(items);
	cmf_reply_json(resp, 200, cmf_resource_page_json(page, size, total, arr));
}

void
cmf_api_catalogs_list(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	(void)args;
	kafka_list(req, resp, NULL);
}

void
cmf_api_catalogs_create(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	(void)args;
	kafka_write(req, resp, NULL, NULL);
}

void
cmf_api_catalogs_get(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	kafka_get(req, resp, NULL, args[0]);
}

void
cmf_api_catalogs_update(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	kafka_write(req, resp, NULL, args[0]);
}

void
cmf_api_catalogs_delete(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct db_conn *c = cmf_app_conn(req->app);
	struct db_audit audit;
	char what[300], res[300], names[CMF_NAMES_JOIN_MAX];
	json_t *databases = NULL;
	int r;

	if (cmf_resource_path_name(resp, "catalog", args[0]) != 0)
		return;
	snprintf(what, sizeof(what), "catalog '%s'", args[0]);
	cmf_audit_init(&audit, req, "catalog.delete", "success", 204, res, sizeof(res), "catalog/%s", args[0]);
	r = db_kafka_catalog_delete(c, args[0], &audit, &databases);
	if (r == DB_ERR_CONFLICT) {
		if (json_array_size(databases) > 0) {
			cmf_resource_names_join(databases, names, sizeof(names));
			cmf_reply_error(resp, 409, "%s still has database%s %s: delete them first", what,
					json_array_size(databases) > 1 ? "s" : "", names);
		} else {
			cmf_reply_error(resp, 409, "%s still has databases: delete them first", what);
		}
		json_decref(databases);
		cmf_audit_fail(req, &audit, resp->status, r);
		return;
	}
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, what);
		cmf_audit_fail(req, &audit, resp->status, r);
		return;
	}
	cmf_audit_done(req, &audit);
	cmf_info("catalog %s deleted", args[0]);
	cmf_reply_empty(resp, 204);
}

void
cmf_api_databases_list(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	kafka_list(req, resp, args[0]);
}

void
cmf_api_databases_create(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	kafka_write(req, resp, args[0], NULL);
}

void
cmf_api_databases_get(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	kafka_get(req, resp, args[0], args[1]);
}

void
cmf_api_databases_update(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	kafka_write(req, resp, args[0], args[1]);
}

void
cmf_api_databases_delete(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	enum db_missing missing = DB_MISSING_NONE;
	struct db_conn *c = cmf_app_conn(req->app);
	struct db_audit audit;
	char res[600];
	int r;

	if (cmf_resource_path_name(resp, "catalog", args[0]) != 0 ||
	    cmf_resource_path_name(resp, "database", args[1]) != 0)
		return;
	cmf_audit_init(&audit, req, "database.delete", "success", 204, res, sizeof(res), "database/%s/%s", args[0],
		       args[1]);
	r = db_kafka_database_delete(c, args[0], args[1], &audit, &missing);
	if (r != DB_OK) {
		kafka_error(resp, r, missing, args[0], args[1], NULL);
		cmf_audit_fail(req, &audit, resp->status, r);
		return;
	}
	cmf_audit_done(req, &audit);
	cmf_info("database %s/%s deleted", args[0], args[1]);
	cmf_reply_empty(resp, 204);
}
