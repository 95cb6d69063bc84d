/* cmf KafkaCatalogs and KafkaDatabases (/cmf/api/v1/catalogs/kafka[/{cat}/databases]): public config only. */
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cmf/csfle/csfle.h"
#include "cmf/http/reply.h"
#include "cmf/api/resource.h"
#include "cmf/api/kind.h"

/*
 * The connection of a catalog (spec.srInstance) or a database (spec.kafkaCluster), checked, into the
 * doc's connectionConfig and connectionSecretId (null when none).
 */
static int
connection_input(struct cmf_call *call, json_t *spec, const char *key, struct cmf_kind_input *in)
{
	struct cmf_response *resp = call->resp;
	static const char *const conn_keys[] = { "connectionConfig", "connectionSecretId", NULL };
	char field[96], names[CMF_NAMES_JOIN_MAX];
	json_t *conn, *v, *bad = NULL, *config;
	const char *k;

	snprintf(field, sizeof(field), "spec.%s", key);
	conn = json_object_get(spec, key);
	if (conn == NULL) {
		cmf_reply_error(resp, 400, "%s is required (connectionConfig and, for credentials, connectionSecretId)",
				field);
		return -1;
	}
	if (cmf_resource_object_check(conn, field, conn_keys, resp) != 0)
		return -1;
	config = json_object_get(conn, "connectionConfig");
	if (config == NULL) {
		cmf_reply_error(resp, 400, "%s.connectionConfig is required", field);
		return -1;
	}
	if (!json_is_object(config)) {
		cmf_reply_error(resp, 400, "%s.connectionConfig must be an object of strings", field);
		return -1;
	}
	json_object_foreach (config, k, v) {
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
	json_object_foreach (config, k, v) {
		/* Rule executor parameters are KMS credentials: a CsfleConfig's credentials secret holds them. */
		if (cmf_resource_key_sensitive(k) || cmf_csfle_credential_key(k) || cmf_resource_url_has_credentials(json_string_value(v))) {
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
	snprintf(field + strlen(field), sizeof(field) - strlen(field), ".connectionSecretId");
	if (cmf_resource_name_member(conn, "connectionSecretId", field, false, "a string", resp, &v) != 0 ||
	    cmf_kind_set(call, in, "connectionConfig", config) != 0)
		return -1;
	return cmf_kind_set(call, in, "connectionSecretId", v != NULL ? v : json_null());
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

/* A KafkaCatalog or KafkaDatabase as returned; connectionConfig is public, so it is returned as stored. */
static json_t *
kafka_json(const struct cmf_kind *k, const char *conn_key, json_t *row, const struct cmf_kind_input *in)
{
	json_t *conn = json_pack("{s:O}", "connectionConfig", json_object_get(row, "connectionConfig"));
	json_t *spec = json_pack("{s:o}", conn_key, conn);
	json_t *status = json_pack("{s:O}", "environmentsWithAccess", json_object_get(row, "environmentsWithAccess"));
	json_t *id = json_object_get(row, "connectionSecretId"), *csfle = json_object_get(row, "csfleConfig");

	if (conn != NULL && json_is_string(id))
		json_object_set(conn, "connectionSecretId", id);
	if (spec != NULL && json_is_string(csfle))
		json_object_set(spec, "csfleConfig", csfle);
	if (status != NULL && in != NULL && json_array_size(in->warnings) > 0)
		json_object_set(status, "warnings", in->warnings);
	return cmf_kind_envelope(k, row, spec, status);
}

static json_t *
catalog_json(json_t *row, const struct cmf_kind_input *in)
{
	return kafka_json(&cmf_kind_kafka_catalog, "srInstance", row, in);
}

static json_t *
database_json(json_t *row, const struct cmf_kind_input *in)
{
	return kafka_json(&cmf_kind_kafka_database, "kafkaCluster", row, in);
}

static int
catalog_input(struct cmf_call *call, json_t *spec, struct cmf_kind_input *in)
{
	char why[512]; /* a sentence around a name of up to 253 characters */

	snprintf(why, sizeof(why), "create databases under /cmf/api/v1/catalogs/kafka/%s/databases", in->name);
	if (unsupported_list(spec, "kafkaClusters", why, call->resp) != 0 ||
	    connection_input(call, spec, "srInstance", in) != 0)
		return -1;
	return 0;
}

static int
database_input(struct cmf_call *call, json_t *spec, struct cmf_kind_input *in)
{
	json_t *name;

	if (unsupported_list(spec, "ddlEnvironments", "cmf runs no SQL statements; leave it out", call->resp) != 0 ||
	    connection_input(call, spec, "kafkaCluster", in) != 0 ||
	    cmf_resource_name_member(spec, "csfleConfig", "spec.csfleConfig", false,
				     "the name of a CsfleConfig (a string)", call->resp, &name) != 0)
		return -1;
	/* Absent (not null) on a PUT keeps the stored CsfleConfig: database_prepare reads it. */
	if (json_object_get(spec, "csfleConfig") == NULL)
		return 0;
	return cmf_kind_set(call, in, "csfleConfig", json_object_get(spec, "csfleConfig"));
}

/*
 * Before a database write:
 * - a PUT without spec.csfleConfig keeps the CsfleConfig it names: a client that speaks only CMF's fields
 *   must not switch its encryption off by updating it (null removes it explicitly);
 * - a database naming a CsfleConfig has its public configuration and its catalog's checked as the
 *   resolution will check them merged with the secrets (cmf_csfle_check_database): problems are refused
 *   here, so they show when written rather than when a job starts; the advice (DLQ and reporter topics)
 *   goes to status.warnings. The resolution checks again: the catalog may change in between.
 * A catalog, database or CsfleConfig that does not exist is left to the write's 404.
 */
static int
database_prepare(struct cmf_call *call, const char *const *keys, bool update, struct cmf_kind_input *in)
{
	json_t *stored = NULL, *cat = NULL, *cfg = NULL, *problems = NULL;
	const char *cfg_key[1];
	int r, ret = -1;

	if (update && json_object_get(in->doc, "csfleConfig") == NULL) {
		r = cmf_kind_read(call, &cmf_kind_kafka_database, keys, &stored);
		if (r < 0)
			goto out;
		if (r == 0 && json_object_set(in->doc, "csfleConfig", json_object_get(stored, "csfleConfig")) != 0) {
			cmf_reply_error(call->resp, 500, "out of memory");
			goto out;
		}
	}
	cfg_key[0] = json_string_value(json_object_get(in->doc, "csfleConfig"));
	if (cfg_key[0] == NULL) {
		ret = 0;
		goto out;
	}
	r = cmf_kind_read(call, &cmf_kind_kafka_catalog, keys, &cat);
	if (r == 0)
		r = cmf_kind_read(call, &cmf_kind_csfle_config, cfg_key, &cfg);
	if (r != 0) {
		ret = r > 0 ? 0 : -1;
		goto out;
	}
	problems = json_array();
	in->warnings = json_array();
	if (problems == NULL || in->warnings == NULL) {
		cmf_reply_error(call->resp, 500, "out of memory");
		goto out;
	}
	cmf_csfle_check_database(json_object_get(cfg, "spec"), cfg_key[0], json_object_get(in->doc, "connectionConfig"),
				 json_object_get(cat, "connectionConfig"), problems, in->warnings);
	if (json_array_size(problems) > 0) {
		cmf_reply_problems(call->resp, 422, problems);
		goto out;
	}
	ret = 0;
out:
	json_decref(stored);
	json_decref(cat);
	json_decref(cfg);
	json_decref(problems);
	return ret;
}

static const char *const catalog_spec_keys[] = { "srInstance", "kafkaClusters", NULL };
static const char *const database_spec_keys[] = { "kafkaCluster", "ddlEnvironments", "csfleConfig", NULL };

const struct cmf_kind cmf_kind_kafka_catalog = {
	.kind = "KafkaCatalog", .what = "catalog", .audit = "catalog", .segs = { "catalogs", "kafka" },
	.ops = CMF_OPS_ALL,
	.actions = { [CMF_OP_CREATE] = "catalog.create", [CMF_OP_UPDATE] = "catalog.update",
		     [CMF_OP_DELETE] = "catalog.delete" },
	.create = DB_WRITE_CREATE, .store = &db_kind_kafka_catalog, .spec_keys = catalog_spec_keys,
	.input = catalog_input, .to_json = catalog_json,
	.users = "still has database", .users_none = "still has databases", .users_advice = "delete them first",
};

/* A database nested in its catalog; spec.csfleConfig is cmf's extension beside CMF's fields. */
const struct cmf_kind cmf_kind_kafka_database = {
	.kind = "KafkaDatabase", .what = "database", .audit = "database", .parent_what = "catalog",
	.segs = { "catalogs", "kafka", "*", "databases" }, .ops = CMF_OPS_ALL,
	.actions = { [CMF_OP_CREATE] = "database.create", [CMF_OP_UPDATE] = "database.update",
		     [CMF_OP_DELETE] = "database.delete" },
	.create = DB_WRITE_CREATE, .store = &db_kind_kafka_database, .spec_keys = database_spec_keys,
	.input = database_input, .prepare = database_prepare, .to_json = database_json,
	.ref_field = "csfleConfig", .ref_what = "CsfleConfig",
	.ref_advice = "create it before naming it in spec.csfleConfig",
};
