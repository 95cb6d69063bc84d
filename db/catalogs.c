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
#define CAT_COLS(X)                                                                                     \
	X(sr_connection_config, "d->'connectionConfig'") X(sr_connection_secret_id, "d->>'connectionSecretId'")

/* A catalog with databases is not deleted: its lock first, so a database being created waits and then
 * finds it gone. */
DB_KIND_STATEMENTS(catalog, "cmf_kafka_catalogs", KAFKA_ROW("", "k.sr_connection_config", "k.sr_connection_secret_id"),
		   "TRUE", "0");
DB_WRITES(catalog, "cmf_kafka_catalogs", CAT_COLS);
DB_STATEMENT(catalog, users, 1,
	     "SELECT coalesce(json_agg(name ORDER BY name), '[]')::text FROM cmf_kafka_databases WHERE catalog = $1");

const struct db_kind db_kind_kafka_catalog = { DB_KIND_REFERRED(catalog, "catalog") };

/* ---- Databases ------------------------------------------------------------------------------------- */

#define DB_ROW KAFKA_ROW("'catalog', k.catalog, 'csfleConfig', k.csfle_config, ", "k.kafka_connection_config", \
			 "k.kafka_connection_secret_id")
#define DATABASE_COLS(X)                                                                                \
	X(kafka_connection_config, "d->'connectionConfig'")                                              \
	X(kafka_connection_secret_id, "d->>'connectionSecretId'") X(csfle_config, "d->>'csfleConfig'")

/* Writes hold the catalog, and the CsfleConfig they name, FOR KEY SHARE: neither is deleted under them. */
DB_NESTED_STATEMENTS(database, "cmf_kafka_databases", "catalog", "cmf_kafka_catalogs", "cmf_csfle_configs", DB_ROW);
DB_NESTED_WRITES(database, "cmf_kafka_databases", "catalog", DATABASE_COLS);

const struct db_kind db_kind_kafka_database = { DB_NESTED_KIND(database, "database", "csfleConfig") };
