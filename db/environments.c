/* db environments: CMF Environments and their secret mappings (connectionSecretId → Secret, per environment). */
#include "db/rows.h"

/* secrets: one entry per mapping of the environment. */
#define ENV_ROW                                                                                         \
	"SELECT (" DB_ROWS_META("e") " || jsonb_build_object('kubernetesNamespace', e.kubernetes_namespace, "  \
	"'defaults', e.defaults, 'secrets', (SELECT coalesce(jsonb_object_agg(m.name, m.secret_name), '{}') "  \
	"FROM cmf_secret_mappings m WHERE m.environment = e.name)))::text FROM cmf_environments e "

static const struct db_statement st_env_get = { "env_get", ENV_ROW "WHERE e.name = $1", 1 };
static const struct db_statement st_env_list = {
	"env_list", ENV_ROW "ORDER BY e.name LIMIT $1::bigint OFFSET $2::bigint", 2,
};
static const struct db_statement st_env_count = { "env_count", "SELECT count(*) FROM cmf_environments", 0 };
static const struct db_statement st_env_lock = {
	"env_lock", "SELECT 1 FROM cmf_environments WHERE name = $1 FOR UPDATE", 1,
};
static const struct db_statement st_env_insert = {
	"env_insert",
	"INSERT INTO cmf_environments (name, uid, kubernetes_namespace, labels, annotations, defaults, created_at, "
	"updated_at) SELECT $1::text, $2::uuid, d->>'kubernetesNamespace', d->'labels', d->'annotations', d->'defaults', "
	"now(), now() FROM " DB_ROWS_DOC("3"),
	3,
};
static const struct db_statement st_env_update = {
	"env_update",
	"UPDATE cmf_environments SET kubernetes_namespace = d->>'kubernetesNamespace', labels = d->'labels', "
	"annotations = d->'annotations', defaults = d->'defaults', updated_at = now() FROM " DB_ROWS_DOC("2")
	" WHERE name = $1",
	2,
};
/* Its secret mappings go with it (ON DELETE CASCADE). */
static const struct db_statement st_env_delete = { "env_delete", "DELETE FROM cmf_environments WHERE name = $1", 1 };

const struct db_kind db_kind_environment = {
	.name = "environment",
	.nkeys = 1,
	.get = &st_env_get,
	.count = &st_env_count,
	.list = &st_env_list,
	.self_lock = &st_env_lock,
	.insert = &st_env_insert,
	.update = &st_env_update,
	.del = &st_env_delete,
};

/* ---- Secret mappings ------------------------------------------------------------------------------- */

#define MAP_ROW                                                                                         \
	"SELECT (" DB_ROWS_META("m") " || jsonb_build_object('environment', m.environment, 'secretName', "    \
	"m.secret_name))::text FROM cmf_secret_mappings m "

static const struct db_statement st_env_exists = {
	"env_exists", "SELECT 1 FROM cmf_environments WHERE name = $1", 1,
};
/* Held by mapping writes: the environment cannot be deleted under them, but may be updated. */
static const struct db_statement st_env_share = {
	"env_share", "SELECT 1 FROM cmf_environments WHERE name = $1 FOR KEY SHARE", 1,
};
/* Held by mapping writes: the secret cannot be deleted under them (its delete takes FOR UPDATE first). */
static const struct db_statement st_secret_share = {
	"mapping_secret_share", "SELECT 1 FROM cmf_secrets WHERE name = $1 FOR KEY SHARE", 1,
};
static const struct db_statement st_map_get = {
	"mapping_get", MAP_ROW "WHERE m.environment = $1 AND m.name = $2", 2,
};
static const struct db_statement st_map_list = {
	"mapping_list", MAP_ROW "WHERE m.environment = $1 ORDER BY m.name LIMIT $2::bigint OFFSET $3::bigint", 3,
};
static const struct db_statement st_map_count = {
	"mapping_count", "SELECT count(*) FROM cmf_secret_mappings WHERE environment = $1", 1,
};
static const struct db_statement st_map_lock = {
	"mapping_lock", "SELECT 1 FROM cmf_secret_mappings WHERE environment = $1 AND name = $2 FOR UPDATE", 2,
};
static const struct db_statement st_map_insert = {
	"mapping_insert",
	"INSERT INTO cmf_secret_mappings (environment, name, uid, secret_name, labels, annotations, created_at, "
	"updated_at) SELECT $1::text, $2::text, $3::uuid, d->>'secretName', d->'labels', d->'annotations', now(), now() FROM "
	DB_ROWS_DOC("4"),
	4,
};
static const struct db_statement st_map_update = {
	"mapping_update",
	"UPDATE cmf_secret_mappings SET secret_name = d->>'secretName', labels = d->'labels', "
	"annotations = d->'annotations', updated_at = now() FROM " DB_ROWS_DOC("3")
	" WHERE environment = $1 AND name = $2",
	3,
};
static const struct db_statement st_map_delete = {
	"mapping_delete", "DELETE FROM cmf_secret_mappings WHERE environment = $1 AND name = $2", 2,
};

const struct db_kind db_kind_secret_mapping = {
	.name = "secret mapping",
	.nkeys = 2,
	.get = &st_map_get,
	.count = &st_map_count,
	.list = &st_map_list,
	.parent = &st_env_exists,
	.parent_share = &st_env_share,
	.self_lock = &st_map_lock,
	.insert = &st_map_insert,
	.update = &st_map_update,
	.ref_share = &st_secret_share,
	.ref_field = "secretName",
	.del = &st_map_delete,
};
