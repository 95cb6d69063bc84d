/* db csfle: CsfleConfigs, the CSFLE declarations KafkaDatabases name (spec checked by cmf/csfle/). */
#include "db/rows.h"

/*
 * databases: "catalog/name" of every database naming the config; environmentsWithAccess: those mapping
 * its credentialsSecretId (a job elsewhere gets 409 for the mapping).
 */
#define CSFLE_ROW                                                                                       \
	"(" DB_ROWS_META("k") " || jsonb_build_object('spec', k.spec, 'databases', "                        \
	"(SELECT coalesce(jsonb_agg(b.catalog || '/' || b.name ORDER BY b.catalog, b.name), '[]') "          \
	"FROM cmf_kafka_databases b WHERE b.csfle_config = k.name), 'environmentsWithAccess', "              \
	"(SELECT coalesce(jsonb_agg(m.environment ORDER BY m.environment), '[]') FROM cmf_secret_mappings m " \
	"WHERE m.name = k.credentials_secret_id)))::text"
/* credentials_secret_id is kept beside the spec so the resolution joins the credentials' mapping by a column. */
#define CSFLE_COLS(X) X(spec, "d->'spec'") X(credentials_secret_id, "d->'spec'->'kms'->>'credentialsSecretId'")

DB_KIND_STATEMENTS(csfle, "cmf_csfle_configs", CSFLE_ROW, "TRUE", "0");
DB_WRITES(csfle, "cmf_csfle_configs", CSFLE_COLS);
/* Deleting a config that databases name would silently switch their encryption off. */
DB_STATEMENT(csfle, users, 1,
	     "SELECT coalesce(json_agg(catalog || '/' || name ORDER BY catalog, name), '[]')::text "
	     "FROM cmf_kafka_databases WHERE csfle_config = $1");

const struct db_kind db_kind_csfle_config = { DB_KIND_REFERRED(csfle, "CsfleConfig") };
