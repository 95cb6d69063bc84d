/* db catalogs: CMF KafkaCatalogs (Schema Registry connection) and their KafkaDatabases (Kafka connection). */
#include "db/rows.h"

/*
 * A catalog or database row. environmentsWithAccess: the environments with a secret mapping for the
 * connectionSecretId (none without one).
 */
#define KAFKA_ROW(extra, config, secret_id)                                                             \
	"(" DB_ROWS_META("k") " || jsonb_build_object(" extra "'connectionConfig', " config ", "               \
	"'connectionSecretId', " secret_id ", 'environmentsWithAccess', (SELECT coalesce(jsonb_agg(m.environment " \
	"ORDER BY m.environment), '[]') FROM cmf_secret_mappings m WHERE m.name = " secret_id ")))::text"

/* A catalog with databases is not deleted: its lock first, so a database being created waits and then
 * finds it gone. */
DB_KIND_STATEMENTS(catalog, "cmf_kafka_catalogs", KAFKA_ROW("", "k.sr_connection_config", "k.sr_connection_secret_id"),
		   "TRUE", "0");
DB_STATEMENT(catalog, insert, 3,
	     "INSERT INTO cmf_kafka_catalogs (name, uid, labels, annotations, sr_connection_config, "
	     "sr_connection_secret_id, created_at, updated_at) SELECT $1::text, $2::uuid, d->'labels', d->'annotations', "
	     "d->'connectionConfig', d->>'connectionSecretId', now(), now() FROM " DB_ROWS_DOC("3"));
DB_STATEMENT(catalog, update, 2,
	     "UPDATE cmf_kafka_catalogs SET labels = d->'labels', annotations = d->'annotations', "
	     "sr_connection_config = d->'connectionConfig', sr_connection_secret_id = d->>'connectionSecretId', "
	     "updated_at = now() FROM " DB_ROWS_DOC("2") " WHERE name = $1");
DB_STATEMENT(catalog, databases, 1,
	     "SELECT coalesce(json_agg(name ORDER BY name), '[]')::text FROM cmf_kafka_databases WHERE catalog = $1");

const struct db_kind db_kind_kafka_catalog = {
	.name = "catalog",
	.nkeys = 1,
	DB_KIND_READS(catalog),
	.insert = &catalog_insert,
	.update = &catalog_update,
	.del_lock = &catalog_lock,
	.users = &catalog_databases,
	.del = &catalog_delete,
};

/* ---- Databases ------------------------------------------------------------------------------------- */

/* Writes hold the catalog, and the CsfleConfig they name, FOR KEY SHARE: neither is deleted under them. */
DB_NESTED_STATEMENTS(database, "cmf_kafka_databases", "catalog", "cmf_kafka_catalogs",
		     KAFKA_ROW("'catalog', k.catalog, 'csfleConfig', k.csfle_config, ", "k.kafka_connection_config",
			       "k.kafka_connection_secret_id"));
DB_STATEMENT(database, csfle_share, 1, "SELECT 1 FROM cmf_csfle_configs WHERE name = $1 FOR KEY SHARE");
DB_STATEMENT(database, insert, 4,
	     "INSERT INTO cmf_kafka_databases (catalog, name, uid, labels, annotations, kafka_connection_config, "
	     "kafka_connection_secret_id, csfle_config, created_at, updated_at) SELECT $1::text, $2::text, $3::uuid, "
	     "d->'labels', d->'annotations', d->'connectionConfig', d->>'connectionSecretId', d->>'csfleConfig', now(), "
	     "now() FROM " DB_ROWS_DOC("4"));
DB_STATEMENT(database, update, 3,
	     "UPDATE cmf_kafka_databases SET labels = d->'labels', annotations = d->'annotations', "
	     "kafka_connection_config = d->'connectionConfig', kafka_connection_secret_id = d->>'connectionSecretId', "
	     "csfle_config = d->>'csfleConfig', updated_at = now() FROM " DB_ROWS_DOC("3")
	     " WHERE catalog = $1 AND name = $2");

const struct db_kind db_kind_kafka_database = {
	.name = "database",
	.nkeys = 2,
	DB_NESTED_READS(database),
	.insert = &database_insert,
	.update = &database_update,
	.ref_share = &database_csfle_share,
	.ref_field = "csfleConfig",
	.del = &database_delete,
};
