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

/*
 * One KEK, one KMS key: Confluent's clients refuse a KEK registered with another KMS key than the rule
 * names ("found KEK ... with kms key id X which differs from rule kms keyId Y"), so the second config
 * naming the KEK with another key would fail every write. The other configs ($1: the name written, $2:
 * the doc) that name the doc's KEK with another KMS type or key id.
 */
DB_STATEMENT(csfle, clash, 2,
	     "SELECT coalesce(json_agg(o.name ORDER BY o.name), '[]')::text FROM cmf_csfle_configs o, "
	     DB_ROWS_DOC("2") " WHERE o.name <> $1::text AND o.spec->'kek'->>'name' = d->'spec'->'kek'->>'name' "
	     "AND (o.spec->'kms'->>'type', o.spec->'kms'->>'keyId') IS DISTINCT FROM "
	     "(d->'spec'->'kms'->>'type', d->'spec'->'kms'->>'keyId')");

const struct db_kind db_kind_csfle_config = { DB_KIND_REFERRED(csfle, "CsfleConfig"), .clash = &csfle_clash };
