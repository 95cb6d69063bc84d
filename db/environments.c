/* db environments: CMF Environments and their secret mappings (connectionSecretId → Secret, per environment). */
#include "db/rows.h"

/* secrets: one entry per mapping of the environment, by name (json, not jsonb: it keeps that order). */
#define ENV_ROW                                                                                         \
	"json_build_object(" DB_ROWS_META_FIELDS("k") ", 'kubernetesNamespace', k.kubernetes_namespace, "        \
	"'defaults', k.defaults, 'secrets', (SELECT coalesce(json_object_agg(m.name, m.secret_name ORDER BY "    \
	"m.name), '{}') FROM cmf_secret_mappings m WHERE m.environment = k.name))::text"
#define ENV_COLS(X) X(kubernetes_namespace, "d->>'kubernetesNamespace'") X(defaults, "d->'defaults'")

/* Deleting one deletes its secret mappings with it (ON DELETE CASCADE). */
DB_KIND_STATEMENTS(environment, "cmf_environments", ENV_ROW, "TRUE", "0");
DB_WRITES(environment, "cmf_environments", ENV_COLS);

/* CMF's POST creates or replaces: the lock tells which, and holds the row for the replace. */
const struct db_kind db_kind_environment = { DB_KIND(environment, "environment"), .self_lock = &environment_lock };

/* ---- Secret mappings ------------------------------------------------------------------------------- */

#define MAP_ROW                                                                                         \
	"(" DB_ROWS_META("k") " || jsonb_build_object('environment', k.environment, 'secretName', k.secret_name))::text"
#define MAP_COLS(X) X(secret_name, "d->>'secretName'")

/* Writes hold the environment (FOR KEY SHARE: it cannot be deleted under them, but may be updated),
 * then the mapping, then the secret, which cannot be deleted under them (its delete locks it first). */
DB_NESTED_STATEMENTS(mapping, "cmf_secret_mappings", "environment", "cmf_environments", "cmf_secrets", MAP_ROW);
DB_NESTED_WRITES(mapping, "cmf_secret_mappings", "environment", MAP_COLS);

const struct db_kind db_kind_secret_mapping = { DB_NESTED_KIND(mapping, "secret mapping", "secretName"),
						.self_lock = &mapping_lock };
