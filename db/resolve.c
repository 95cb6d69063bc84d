/* db resolve: an environment's client configuration for one Kafka database, from one snapshot, audited. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/internal.h"

/* One statement, so one snapshot even under READ COMMITTED: everything a resolution reads. */
static const struct db_statement st_resolve = {
	"resolve",
	"SELECT c.name IS NOT NULL, c.sr_connection_config::text, c.sr_connection_secret_id, c.updated_at::text, "
	"d.name IS NOT NULL, d.kafka_connection_config::text, d.kafka_connection_secret_id, d.updated_at::text, "
	"km.secret_name, km.updated_at::text, ks.uid::text, ks.version, ks.sealed, ks.data, "
	"sm.secret_name, sm.updated_at::text, ss.uid::text, ss.version, ss.sealed, ss.data, "
	"f.name, f.spec::text, f.credentials_secret_id, f.updated_at::text, "
	"fm.secret_name, fm.updated_at::text, fs.uid::text, fs.version, fs.sealed, fs.data "
	"FROM cmf_environments e "
	"LEFT JOIN cmf_kafka_catalogs c ON c.name = $2 "
	"LEFT JOIN cmf_kafka_databases d ON d.catalog = c.name AND d.name = $3 "
	"LEFT JOIN cmf_secret_mappings km ON km.environment = e.name AND km.name = d.kafka_connection_secret_id "
	"LEFT JOIN cmf_secrets ks ON ks.name = km.secret_name "
	"LEFT JOIN cmf_secret_mappings sm ON sm.environment = e.name AND sm.name = c.sr_connection_secret_id "
	"LEFT JOIN cmf_secrets ss ON ss.name = sm.secret_name "
	"LEFT JOIN cmf_csfle_configs f ON f.name = d.csfle_config "
	"LEFT JOIN cmf_secret_mappings fm ON fm.environment = e.name AND fm.name = f.credentials_secret_id "
	"LEFT JOIN cmf_secrets fs ON fs.name = fm.secret_name "
	"WHERE e.name = $1",
	3,
};

enum {
	R_CAT, R_SR_CONFIG, R_SR_SECRET_ID, R_CAT_UPDATED,
	R_DB, R_KAFKA_CONFIG, R_KAFKA_SECRET_ID, R_DB_UPDATED,
	R_KM_SECRET, R_KM_UPDATED, R_KS_UID, R_KS_VERSION, R_KS_SEALED, R_KS_DATA,
	R_SM_SECRET, R_SM_UPDATED, R_SS_UID, R_SS_VERSION, R_SS_SEALED, R_SS_DATA,
	R_F_NAME, R_F_SPEC, R_F_SECRET_ID, R_F_UPDATED,
	R_FM_SECRET, R_FM_UPDATED, R_FS_UID, R_FS_VERSION, R_FS_SEALED, R_FS_DATA,
};

struct resolve_tx {
	const struct db_snapshot *snap;
	const struct db_sealer *sl;
	const char *env, *catalog, *database, *if_none_match, *salt;
	struct db_resolved *res;
};

/* What the resolution statement returned: kept as libpq gave it (stored values, ciphertexts sealed). */
struct db_snapshot {
	PGresult *res;
	/*
	 * The public JSON columns parsed once, when read, and shared read-only by every resolution of the
	 * snapshot (jansson's reference counts are atomic; the renderer deep-copies before it merges): NULL
	 * when absent, or when not an object (then each resolution answers DB_ERR_CORRUPT).
	 */
	json_t *kafka_config, *sr_config, *csfle_spec;
};

void
db_resolved_clear(struct db_resolved *res)
{
	json_decref(res->kafka_config);
	json_decref(res->kafka_secret);
	json_decref(res->sr_config);
	json_decref(res->sr_secret);
	json_decref(res->csfle_spec);
	json_decref(res->csfle_secret);
	/* The detail (a sentence naming resources, never a value) is only emptied: this runs per request. */
	memset(res, 0, offsetof(struct db_resolved, detail));
	res->detail[0] = '\0';
}

/* The strong ETag: SHA-256 over the salt and every identity/version the answer depends on. */
static int
compute_etag(const char *salt, PGresult *res, char out[36])
{
	static const int cols[] = { R_SR_SECRET_ID, R_CAT_UPDATED, R_KAFKA_SECRET_ID, R_DB_UPDATED,
				    R_KM_SECRET,    R_KM_UPDATED,  R_KS_UID,	      R_KS_VERSION,
				    R_SM_SECRET,    R_SM_UPDATED,  R_SS_UID,	      R_SS_VERSION,
				    R_F_NAME,	    R_F_UPDATED,   R_F_SECRET_ID,     R_FM_SECRET,
				    R_FM_UPDATED,   R_FS_UID,	   R_FS_VERSION };
	/* Names of 253 characters, uuids, times and numbers: 19 values and the salt fit in 8 KiB. */
	char buf[8192];
	size_t at = 0;
	unsigned char h[32];

	for (size_t i = 0; i <= sizeof(cols) / sizeof(cols[0]); i++) {
		const char *v = i == 0				   ? salt
				: PQgetisnull(res, 0, cols[i - 1]) ? "\x01"
								   : PQgetvalue(res, 0, cols[i - 1]);
		size_t len = strlen(v) + 1;

		/* NUL-separated: no two different sequences of values hash the same bytes. */
		if (at + len > sizeof(buf))
			return DB_ERR_INTERNAL;
		memcpy(buf + at, v, len);
		at += len;
	}
	if (crypto_sha256(buf, at, h) != CRYPTO_OK)
		return DB_ERR_INTERNAL;
	out[0] = '"';
	for (int i = 0; i < 16; i++) {
		out[1 + 2 * i] = "0123456789abcdef"[h[i] >> 4];
		out[2 + 2 * i] = "0123456789abcdef"[h[i] & 15];
	}
	out[33] = '"';
	out[34] = '\0';
	return DB_OK;
}

/*
 * Whether an If-None-Match value lists `etag`; weak comparison, as RFC 9110 asks for it. "*" is not
 * honoured: only an ETag of an answer actually given (a 200) may earn a 304, never one that the
 * checks would now refuse.
 */
static bool
etag_listed(const char *inm, const char *etag)
{
	const char *p = inm;

	while (p != NULL && *p != '\0') {
		size_t len;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		len = strcspn(p, ", \t");
		if (len == strlen(etag) && strncmp(p, etag, len) == 0)
			return true;
		p += len;
	}
	return false;
}

/* A JSON object column of a snapshot, parsed (NULL when absent or not an object). */
static json_t *
parse_config(PGresult *res, int col)
{
	json_error_t jerr;
	json_t *v;

	if (PQntuples(res) != 1 || PQgetisnull(res, 0, col))
		return NULL;
	v = json_loads(PQgetvalue(res, 0, col), 0, &jerr);
	if (!json_is_object(v)) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/* One of the snapshot's parsed objects, for the caller (a new reference); DB_ERR_CORRUPT if it is not one. */
static int
load_config(json_t *parsed, json_t **out)
{
	*out = json_incref(parsed);
	return parsed != NULL ? DB_OK : DB_ERR_CORRUPT;
}

/* The data of the secret mapped to a connectionSecretId, or DB_ERR_UNMAPPED. */
static int
open_mapped(struct resolve_tx *t, PGresult *res, const char *id, int c_secret, int c_uid, int c_version,
	    int c_sealed, int c_data, const char *used_by, json_t **out)
{
	*out = NULL;
	if (PQgetisnull(res, 0, c_secret)) {
		snprintf(t->res->detail, sizeof(t->res->detail),
			 "connectionSecretId '%s' (used by %s) has no secret mapping in environment '%s': create one with "
			 "POST /cmf/api/v1/environments/%s/secret-mappings",
			 id, used_by, t->env, t->env);
		return DB_ERR_UNMAPPED;
	}
	return db_secret_data_open(t->sl, PQgetvalue(res, 0, c_secret), PQgetvalue(res, 0, c_uid),
				   strtoll(PQgetvalue(res, 0, c_version), NULL, 10),
				   strcmp(PQgetvalue(res, 0, c_sealed), "t") == 0, PQgetvalue(res, 0, c_data), out);
}

/* Look up, decide, decrypt: the outcome the renderer is called with. */
static int
resolve_lookup(struct resolve_tx *t, PGresult *res)
{
	char used_by[600];
	int r;

	if (PQntuples(res) == 0) {
		snprintf(t->res->detail, sizeof(t->res->detail), "environment '%s' not found", t->env);
		return DB_ERR_NOT_FOUND;
	}
	if (strcmp(PQgetvalue(res, 0, R_CAT), "t") != 0) {
		snprintf(t->res->detail, sizeof(t->res->detail), "Kafka catalog '%s' not found", t->catalog);
		return DB_ERR_NOT_FOUND;
	}
	if (strcmp(PQgetvalue(res, 0, R_DB), "t") != 0) {
		snprintf(t->res->detail, sizeof(t->res->detail), "database '%s' not found in Kafka catalog '%s'", t->database,
			 t->catalog);
		return DB_ERR_NOT_FOUND;
	}
	r = compute_etag(t->salt, res, t->res->etag);
	if (r != DB_OK)
		return r;
	/* A missing mapping is reported even to a poller: the configuration it has is no longer what it'd get. */
	if (!PQgetisnull(res, 0, R_KAFKA_SECRET_ID) && PQgetisnull(res, 0, R_KM_SECRET)) {
		snprintf(used_by, sizeof(used_by), "database '%s/%s'", t->catalog, t->database);
		return open_mapped(t, res, PQgetvalue(res, 0, R_KAFKA_SECRET_ID), R_KM_SECRET, 0, 0, 0, 0, used_by,
				   &t->res->kafka_secret);
	}
	if (!PQgetisnull(res, 0, R_SR_SECRET_ID) && PQgetisnull(res, 0, R_SM_SECRET)) {
		snprintf(used_by, sizeof(used_by), "the Schema Registry of catalog '%s'", t->catalog);
		return open_mapped(t, res, PQgetvalue(res, 0, R_SR_SECRET_ID), R_SM_SECRET, 0, 0, 0, 0, used_by,
				   &t->res->sr_secret);
	}
	if (!PQgetisnull(res, 0, R_F_SECRET_ID) && PQgetisnull(res, 0, R_FM_SECRET)) {
		snprintf(used_by, sizeof(used_by), "the KMS credentials of CsfleConfig '%s'", PQgetvalue(res, 0, R_F_NAME));
		return open_mapped(t, res, PQgetvalue(res, 0, R_F_SECRET_ID), R_FM_SECRET, 0, 0, 0, 0, used_by,
				   &t->res->csfle_secret);
	}
	/* Known before the 304: a format that cannot carry CSFLE is refused even to a poller. */
	if (!PQgetisnull(res, 0, R_F_NAME))
		snprintf(t->res->csfle_name, sizeof(t->res->csfle_name), "%s", PQgetvalue(res, 0, R_F_NAME));
	if (t->if_none_match != NULL && etag_listed(t->if_none_match, t->res->etag)) {
		t->res->not_modified = true;
		return DB_OK;
	}
	if (load_config(t->snap->kafka_config, &t->res->kafka_config) != DB_OK ||
	    load_config(t->snap->sr_config, &t->res->sr_config) != DB_OK)
		return DB_ERR_CORRUPT;
	if (!PQgetisnull(res, 0, R_KAFKA_SECRET_ID)) {
		r = open_mapped(t, res, PQgetvalue(res, 0, R_KAFKA_SECRET_ID), R_KM_SECRET, R_KS_UID, R_KS_VERSION,
				R_KS_SEALED, R_KS_DATA, "", &t->res->kafka_secret);
		if (r != DB_OK)
			return r;
	}
	if (!PQgetisnull(res, 0, R_SR_SECRET_ID)) {
		r = open_mapped(t, res, PQgetvalue(res, 0, R_SR_SECRET_ID), R_SM_SECRET, R_SS_UID, R_SS_VERSION,
				R_SS_SEALED, R_SS_DATA, "", &t->res->sr_secret);
		if (r != DB_OK)
			return r;
	}
	if (!PQgetisnull(res, 0, R_F_NAME)) {
		if (load_config(t->snap->csfle_spec, &t->res->csfle_spec) != DB_OK)
			return DB_ERR_CORRUPT;
	}
	if (!PQgetisnull(res, 0, R_F_SECRET_ID)) {
		r = open_mapped(t, res, PQgetvalue(res, 0, R_F_SECRET_ID), R_FM_SECRET, R_FS_UID, R_FS_VERSION,
				R_FS_SEALED, R_FS_DATA, "", &t->res->csfle_secret);
		if (r != DB_OK)
			return r;
	}
	return DB_OK;
}

struct read_tx {
	const char *env, *catalog, *database;
	PGresult *res;
};

static int
read_body(struct db_conn *c, void *cls)
{
	struct read_tx *t = cls;
	struct db_param p[] = { { t->env, 0, 0 }, { t->catalog, 0, 0 }, { t->database, 0, 0 } };

	PQclear(t->res);
	t->res = NULL;
	return db_exec_stmt(c, &st_resolve, p, 3, &t->res);
}

int
db_snapshot_read(struct db_conn *c, const char *env, const char *catalog, const char *database,
		 struct db_snapshot **out)
{
	struct read_tx t = { env, catalog, database, NULL };
	struct db_snapshot *s = NULL;
	int r;

	*out = NULL;
	/* One statement, so one snapshot even without BEGIN/COMMIT: one round trip. */
	r = db_tx_run(c, DB_TX_AUTOCOMMIT, read_body, &t);
	if (r == DB_OK && (s = malloc(sizeof(*s))) == NULL)
		r = DB_ERR_ALLOC;
	if (r != DB_OK) {
		PQclear(t.res);
		return r;
	}
	s->res = t.res;
	s->kafka_config = parse_config(t.res, R_KAFKA_CONFIG);
	s->sr_config = parse_config(t.res, R_SR_CONFIG);
	s->csfle_spec = parse_config(t.res, R_F_SPEC);
	*out = s;
	return DB_OK;
}

void
db_snapshot_free(struct db_snapshot *s)
{
	if (s == NULL)
		return;
	json_decref(s->kafka_config);
	json_decref(s->sr_config);
	json_decref(s->csfle_spec);
	PQclear(s->res);
	free(s);
}

int
db_resolve(const struct db_snapshot *s, const struct db_sealer *sl, const char *env, const char *catalog,
	   const char *database, const char *if_none_match, const char *etag_salt, struct db_resolved *out)
{
	struct resolve_tx t = { s, sl, env, catalog, database, if_none_match, etag_salt, out };
	int r;

	/* Everything but the detail buffer (1.5 KiB, written only for a refusal): this runs per request. */
	memset(out, 0, offsetof(struct db_resolved, detail));
	out->detail[0] = '\0';
	r = resolve_lookup(&t, s->res);
	if (r != DB_OK) {
		/* On an error only the detail (and the ETag, unused) are meaningful: nothing decrypted stays. */
		char detail[sizeof(out->detail)];

		memcpy(detail, out->detail, sizeof(detail));
		db_resolved_clear(out);
		memcpy(out->detail, detail, sizeof(detail));
	}
	return r;
}
