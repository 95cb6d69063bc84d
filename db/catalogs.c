/* db catalogs: CMF KafkaCatalogs (Schema Registry connection) and their KafkaDatabases (Kafka connection). */
#include "db/rows.h"

/*
 * A catalog or database row. environmentsWithAccess: the environments with a secret mapping for the
 * connectionSecretId (none without one).
 */
#define KAFKA_ROW(extra, config, secret_id, table)                                                      \
	"SELECT (" DB_ROWS_META("k") " || jsonb_build_object(" extra "'connectionConfig', " config ", "         \
	"'connectionSecretId', " secret_id ", 'environmentsWithAccess', (SELECT coalesce(jsonb_agg(m.environment " \
	"ORDER BY m.environment), '[]') FROM cmf_secret_mappings m WHERE m.name = " secret_id ")))::text FROM " table " k "
#define CAT_ROW KAFKA_ROW("", "k.sr_connection_config", "k.sr_connection_secret_id", "cmf_kafka_catalogs")
#define DB_ROW                                                                                          \
	KAFKA_ROW("'catalog', k.catalog, 'csfleConfig', k.csfle_config, ", "k.kafka_connection_config",         \
		  "k.kafka_connection_secret_id", "cmf_kafka_databases")

static const struct db_statement st_cat_get = { "catalog_get", CAT_ROW "WHERE k.name = $1", 1 };
static const struct db_statement st_cat_list = {
	"catalog_list", CAT_ROW "ORDER BY k.name LIMIT $1::bigint OFFSET $2::bigint", 2,
};
static const struct db_statement st_cat_count = { "catalog_count", "SELECT count(*) FROM cmf_kafka_catalogs", 0 };
static const struct db_statement st_cat_lock = {
	"catalog_lock", "SELECT 1 FROM cmf_kafka_catalogs WHERE name = $1 FOR UPDATE", 1,
};
static const struct db_statement st_cat_insert = {
	"catalog_insert",
	"INSERT INTO cmf_kafka_catalogs (name, uid, labels, annotations, sr_connection_config, sr_connection_secret_id, "
	"created_at, updated_at) SELECT $1::text, $2::uuid, d->'labels', d->'annotations', d->'connectionConfig', "
	"d->>'connectionSecretId', now(), now() FROM " DB_ROWS_DOC("3"),
	3,
};
static const struct db_statement st_cat_update = {
	"catalog_update",
	"UPDATE cmf_kafka_catalogs SET labels = d->'labels', annotations = d->'annotations', "
	"sr_connection_config = d->'connectionConfig', sr_connection_secret_id = d->>'connectionSecretId', "
	"updated_at = now() FROM " DB_ROWS_DOC("2") " WHERE name = $1",
	2,
};
static const struct db_statement st_cat_databases = {
	"catalog_databases",
	"SELECT coalesce(json_agg(name ORDER BY name), '[]')::text FROM cmf_kafka_databases WHERE catalog = $1", 1,
};
static const struct db_statement st_cat_delete = {
	"catalog_delete", "DELETE FROM cmf_kafka_catalogs WHERE name = $1", 1,
};

const struct db_kind db_kind_kafka_catalog = {
	.name = "catalog",
	.nkeys = 1,
	.get = &st_cat_get,
	.count = &st_cat_count,
	.list = &st_cat_list,
	.insert = &st_cat_insert,
	.update = &st_cat_update,
	.del_lock = &st_cat_lock,
	.users = &st_cat_databases,
	.del = &st_cat_delete,
};

/* ---- Databases ------------------------------------------------------------------------------------- */

static const struct db_statement st_cat_exists = {
	"catalog_exists", "SELECT 1 FROM cmf_kafka_catalogs WHERE name = $1", 1,
};
/* Held by database writes: the catalog cannot be deleted under them. */
static const struct db_statement st_cat_share = {
	"catalog_share", "SELECT 1 FROM cmf_kafka_catalogs WHERE name = $1 FOR KEY SHARE", 1,
};
/* Held by database writes naming a CsfleConfig: it cannot be deleted under them. */
static const struct db_statement st_csfle_share = {
	"database_csfle_share", "SELECT 1 FROM cmf_csfle_configs WHERE name = $1 FOR KEY SHARE", 1,
};
static const struct db_statement st_db_get = {
	"database_get", DB_ROW "WHERE k.catalog = $1 AND k.name = $2", 2,
};
static const struct db_statement st_db_list = {
	"database_list", DB_ROW "WHERE k.catalog = $1 ORDER BY k.name LIMIT $2::bigint OFFSET $3::bigint", 3,
};
static const struct db_statement st_db_count = {
	"database_count", "SELECT count(*) FROM cmf_kafka_databases WHERE catalog = $1", 1,
};
static const struct db_statement st_db_insert = {
	"database_insert",
	"INSERT INTO cmf_kafka_databases (catalog, name, uid, labels, annotations, kafka_connection_config, "
	"kafka_connection_secret_id, csfle_config, created_at, updated_at) SELECT $1::text, $2::text, $3::uuid, "
	"d->'labels', d->'annotations', d->'connectionConfig', d->>'connectionSecretId', d->>'csfleConfig', now(), "
	"now() FROM " DB_ROWS_DOC("4"),
	4,
};
static const struct db_statement st_db_update = {
	"database_update",
	"UPDATE cmf_kafka_databases SET labels = d->'labels', annotations = d->'annotations', "
	"kafka_connection_config = d->'connectionConfig', kafka_connection_secret_id = d->>'connectionSecretId', "
	"csfle_config = d->>'csfleConfig', updated_at = now() FROM " DB_ROWS_DOC("3")
	" WHERE catalog = $1 AND name = $2",
	3,
};
static const struct db_statement st_db_delete = {
	"database_delete", "DELETE FROM cmf_kafka_databases WHERE catalog = $1 AND name = $2", 2,
};

const struct db_kind db_kind_kafka_database = {
	.name = "database",
	.nkeys = 2,
	.get = &st_db_get,
	.count = &st_db_count,
	.list = &st_db_list,
	.parent = &st_cat_exists,
	.parent_share = &st_cat_share,
	.insert = &st_db_insert,
	.update = &st_db_update,
	.ref_share = &st_csfle_share,
	.ref_field = "csfleConfig",
	.del = &st_db_delete,
};
