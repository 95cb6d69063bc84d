/* db environments: CMF Environments and their secret mappings (connectionSecretId → Secret, per environment). */
#include "db/rows.h"

/* secrets: one entry per mapping of the environment. */
#define ENV_ROW                                                                                         \
	"(" DB_ROWS_META("k") " || jsonb_build_object('kubernetesNamespace', k.kubernetes_namespace, "          \
	"'defaults', k.defaults, 'secrets', (SELECT coalesce(jsonb_object_agg(m.name, m.secret_name), '{}') "  \
	"FROM cmf_secret_mappings m WHERE m.environment = k.name)))::text"

/* Deleting one deletes its secret mappings with it (ON DELETE CASCADE). */
DB_KIND_STATEMENTS(environment, "cmf_environments", ENV_ROW, "TRUE", "0");
DB_STATEMENT(environment, insert, 3,
	     "INSERT INTO cmf_environments (name, uid, kubernetes_namespace, labels, annotations, defaults, created_at, "
	     "updated_at) SELECT $1::text, $2::uuid, d->>'kubernetesNamespace', d->'labels', d->'annotations', "
	     "d->'defaults', now(), now() FROM " DB_ROWS_DOC("3"));
DB_STATEMENT(environment, update, 2,
	     "UPDATE cmf_environments SET kubernetes_namespace = d->>'kubernetesNamespace', labels = d->'labels', "
	     "annotations = d->'annotations', defaults = d->'defaults', updated_at = now() FROM " DB_ROWS_DOC("2")
	     " WHERE name = $1");

/* CMF's POST creates or replaces: the lock tells which, and holds the row for the replace. */
const struct db_kind db_kind_environment = {
	.name = "environment",
	.nkeys = 1,
	DB_KIND_READS(environment),
	.self_lock = &environment_lock,
	.insert = &environment_insert,
	.update = &environment_update,
	.del = &environment_delete,
};

/* ---- Secret mappings ------------------------------------------------------------------------------- */

#define MAP_ROW "(" DB_ROWS_META("k") " || jsonb_build_object('environment', k.environment, 'secretName', k.secret_name))::text"

/* Writes hold the environment (FOR KEY SHARE: it cannot be deleted under them, but may be updated),
 * then the mapping, then the secret, which cannot be deleted under them (its delete locks it first). */
DB_NESTED_STATEMENTS(mapping, "cmf_secret_mappings", "environment", "cmf_environments", MAP_ROW);
DB_STATEMENT(mapping, secret_share, 1, "SELECT 1 FROM cmf_secrets WHERE name = $1 FOR KEY SHARE");
DB_STATEMENT(mapping, insert, 4,
	     "INSERT INTO cmf_secret_mappings (environment, name, uid, secret_name, labels, annotations, created_at, "
	     "updated_at) SELECT $1::text, $2::text, $3::uuid, d->>'secretName', d->'labels', d->'annotations', now(), "
	     "now() FROM " DB_ROWS_DOC("4"));
DB_STATEMENT(mapping, update, 3,
	     "UPDATE cmf_secret_mappings SET secret_name = d->>'secretName', labels = d->'labels', "
	     "annotations = d->'annotations', updated_at = now() FROM " DB_ROWS_DOC("3")
	     " WHERE environment = $1 AND name = $2");

const struct db_kind db_kind_secret_mapping = {
	.name = "secret mapping",
	.nkeys = 2,
	DB_NESTED_READS(mapping),
	.self_lock = &mapping_lock,
	.insert = &mapping_insert,
	.update = &mapping_update,
	.ref_share = &mapping_secret_share,
	.ref_field = "secretName",
	.del = &mapping_delete,
};
