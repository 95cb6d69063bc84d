/* db csfle: CsfleConfigs, the CSFLE declarations KafkaDatabases name (spec checked by cmf/csfle/). */
#include "db/rows.h"

/*
 * databases: "catalog/name" of every database naming the config; environmentsWithAccess: those mapping
 * its credentialsSecretId (a job elsewhere gets 409 for the mapping).
 */
#define CSFLE_ROW                                                                                       \
	"SELECT (" DB_ROWS_META("f") " || jsonb_build_object('spec', f.spec, 'databases', "                 \
	"(SELECT coalesce(jsonb_agg(b.catalog || '/' || b.name ORDER BY b.catalog, b.name), '[]') "          \
	"FROM cmf_kafka_databases b WHERE b.csfle_config = f.name), 'environmentsWithAccess', "              \
	"(SELECT coalesce(jsonb_agg(m.environment ORDER BY m.environment), '[]') FROM cmf_secret_mappings m " \
	"WHERE m.name = f.credentials_secret_id)))::text FROM cmf_csfle_configs f "

static const struct db_statement st_get = { "csfle_get", CSFLE_ROW "WHERE f.name = $1", 1 };
static const struct db_statement st_list = {
	"csfle_list", CSFLE_ROW "ORDER BY f.name LIMIT $1::bigint OFFSET $2::bigint", 2,
};
static const struct db_statement st_count = { "csfle_count", "SELECT count(*) FROM cmf_csfle_configs", 0 };
static const struct db_statement st_lock = {
	"csfle_lock", "SELECT 1 FROM cmf_csfle_configs WHERE name = $1 FOR UPDATE", 1,
};
/* credentials_secret_id is kept beside the spec so the resolution joins the credentials' mapping by a column. */
static const struct db_statement st_insert = {
	"csfle_insert",
	"INSERT INTO cmf_csfle_configs (name, uid, labels, annotations, spec, credentials_secret_id, created_at, "
	"updated_at) SELECT $1::text, $2::uuid, d->'labels', d->'annotations', d->'spec', "
	"d->'spec'->'kms'->>'credentialsSecretId', now(), now() FROM " DB_ROWS_DOC("3"),
	3,
};
static const struct db_statement st_update = {
	"csfle_update",
	"UPDATE cmf_csfle_configs SET labels = d->'labels', annotations = d->'annotations', spec = d->'spec', "
	"credentials_secret_id = d->'spec'->'kms'->>'credentialsSecretId', updated_at = now() FROM " DB_ROWS_DOC("2")
	" WHERE name = $1",
	2,
};
/* Deleting a config that databases name would silently switch their encryption off. */
static const struct db_statement st_users = {
	"csfle_users",
	"SELECT coalesce(json_agg(catalog || '/' || name ORDER BY catalog, name), '[]')::text FROM cmf_kafka_databases "
	"WHERE csfle_config = $1",
	1,
};
static const struct db_statement st_delete = { "csfle_delete", "DELETE FROM cmf_csfle_configs WHERE name = $1", 1 };

const struct db_kind db_kind_csfle_config = {
	.name = "CsfleConfig",
	.nkeys = 1,
	.get = &st_get,
	.count = &st_count,
	.list = &st_list,
	.insert = &st_insert,
	.update = &st_update,
	.del_lock = &st_lock,
	.users = &st_users,
	.del = &st_delete,
};
