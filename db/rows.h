/* db rows: what the stores share — column decoding, existence checks, the SQL shape of a resource row. */
#ifndef CMF_DB_ROWS_H
#define CMF_DB_ROWS_H

#include "db/internal.h"

/* A timestamptz column as RFC 3339 UTC with milliseconds, the form every resource returns. */
#define DB_ROWS_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/*
 * What every resource row (struct db_kind) starts from, as jsonb, for the table alias `t`: name, uid,
 * created, updated, labels, annotations. A kind adds its fields with `||`, or lists DB_ROWS_META_FIELDS in
 * a json_build_object of its own where an object it adds must keep its keys' order (jsonb sorts them).
 */
#define DB_ROWS_META_FIELDS(t)                                                                           \
	"'name', " t ".name, 'uid', " t ".uid::text, 'created', " DB_ROWS_TS(t ".created_at") ", 'updated', "    \
	DB_ROWS_TS(t ".updated_at") ", 'labels', " t ".labels, 'annotations', " t ".annotations"
#define DB_ROWS_META(t) "jsonb_build_object(" DB_ROWS_META_FIELDS(t) ")"

/* The doc a write statement reads from: its parameter $N as the jsonb `d` ("... FROM " DB_ROWS_DOC("3")).
 * Key parameters are cast (::text): in INSERT ... SELECT nothing else gives them a type. */
#define DB_ROWS_DOC(n) "(SELECT $" n "::jsonb AS d) doc"

/*
 * The JSON text of column `col` of `row`, parsed into *out (new reference), which must be an object
 * (want_object) or an array. A stored value of another shape is DB_ERR_CORRUPT (logged naming `what`).
 */
int db_rows_json(PGresult *res, int row, int col, bool want_object, const char *what, json_t **out);

/* strdup of column `col` of `row`; NULL for SQL NULL when `nullable`. DB_ERR_ALLOC on failure. */
int db_rows_str(PGresult *res, int row, int col, bool nullable, char **out);

/* Run `st` (parameters p[0..n)): 1 when it returns a row, 0 when none, or a DB_ERR_* code. */
int db_rows_exists(struct db_conn *c, const struct db_statement *st, const struct db_param *p, int n);

/*
 * The statements whose shape every kind shares, for a kind stored in `table` (alias k) whose row is the
 * select list `row` and whose visible rows match `live` ("TRUE": all): id_get (name), id_list (LIMIT,
 * OFFSET), id_count, id_lock (name; FOR UPDATE, returning uid and `version`, "0" for a kind without
 * versions) and id_delete (name). DB_NESTED_STATEMENTS is the same for a kind nested in `parent`,
 * keyed (the name of its parent in `ptable`, in column `pcol`; name), with id_parent and id_parent_share (FOR KEY SHARE),
 * and id_ref_share (FOR KEY SHARE) for the row of `rtable` its writes refer to.
 * Unused ones cost nothing: they are prepared on first use only.
 */
#define DB_STATEMENT(id, what, nparams, sql) \
	__attribute__((unused)) static const struct db_statement id##_##what = { #id "_" #what, sql, nparams }
#define DB_KIND_STATEMENTS(id, table, row, live, version)                                                   \
	DB_STATEMENT(id, get, 1, "SELECT " row " FROM " table " k WHERE k.name = $1 AND " live);              \
	DB_STATEMENT(id, list, 2,                                                                            \
		     "SELECT " row " FROM " table " k WHERE " live " ORDER BY k.name LIMIT $1::bigint OFFSET $2::bigint"); \
	DB_STATEMENT(id, count, 0, "SELECT count(*) FROM " table " k WHERE " live);                          \
	DB_STATEMENT(id, lock, 1, "SELECT uid::text, " version " FROM " table " WHERE name = $1 FOR UPDATE");    \
	DB_STATEMENT(id, delete, 1, "DELETE FROM " table " WHERE name = $1")
#define DB_NESTED_STATEMENTS(id, table, pcol, ptable, rtable, row)                                                  \
	DB_STATEMENT(id, get, 2, "SELECT " row " FROM " table " k WHERE k." pcol " = $1 AND k.name = $2");     \
	DB_STATEMENT(id, list, 3,                                                                            \
		     "SELECT " row " FROM " table " k WHERE k." pcol " = $1 ORDER BY k.name LIMIT $2::bigint "      \
		     "OFFSET $3::bigint");                                                                      \
	DB_STATEMENT(id, count, 1, "SELECT count(*) FROM " table " WHERE " pcol " = $1");                    \
	DB_STATEMENT(id, lock, 2, "SELECT uid::text, 0 FROM " table " WHERE " pcol " = $1 AND name = $2 FOR UPDATE"); \
	DB_STATEMENT(id, delete, 2, "DELETE FROM " table " WHERE " pcol " = $1 AND name = $2");              \
	DB_STATEMENT(id, parent, 1, "SELECT 1 FROM " ptable " WHERE name = $1");                             \
	DB_STATEMENT(id, parent_share, 1, "SELECT 1 FROM " ptable " WHERE name = $1 FOR KEY SHARE");           \
	DB_STATEMENT(id, ref_share, 1, "SELECT 1 FROM " rtable " WHERE name = $1 FOR KEY SHARE")

/*
 * A kind's insert and update, both made from one list of its columns, so they cannot drift apart:
 * `COLS(X)` expands X(column, "expression over the doc d") for each column beside the name, uid,
 * labels, annotations and timestamps every kind has. Insert takes (keys, uid, doc), update (keys, doc).
 */
#define DB_COL_NAME(col, expr) ", " #col
#define DB_COL_VALUE(col, expr) ", " expr
#define DB_COL_SET(col, expr) ", " #col " = " expr
#define DB_WRITES(id, table, COLS)                                                                       \
	DB_STATEMENT(id, insert, 3,                                                                       \
		     "INSERT INTO " table " (name, uid, labels, annotations, created_at, updated_at" COLS(DB_COL_NAME) \
		     ") SELECT $1::text, $2::uuid, d->'labels', d->'annotations', now(), now()" COLS(DB_COL_VALUE)   \
		     " FROM " DB_ROWS_DOC("3"));                                                                 \
	DB_STATEMENT(id, update, 2,                                                                       \
		     "UPDATE " table " SET labels = d->'labels', annotations = d->'annotations', updated_at = now()" \
		     COLS(DB_COL_SET) " FROM " DB_ROWS_DOC("2") " WHERE name = $1")
#define DB_NESTED_WRITES(id, table, pcol, COLS)                                                          \
	DB_STATEMENT(id, insert, 4,                                                                       \
		     "INSERT INTO " table " (" pcol ", name, uid, labels, annotations, created_at, updated_at"      \
		     COLS(DB_COL_NAME) ") SELECT $1::text, $2::text, $3::uuid, d->'labels', d->'annotations', now(), " \
		     "now()" COLS(DB_COL_VALUE) " FROM " DB_ROWS_DOC("4"));                                      \
	DB_STATEMENT(id, update, 3,                                                                       \
		     "UPDATE " table " SET labels = d->'labels', annotations = d->'annotations', updated_at = now()" \
		     COLS(DB_COL_SET) " FROM " DB_ROWS_DOC("3") " WHERE " pcol " = $1 AND name = $2")

/* A struct db_kind's statements from the macros above (its name in logs, the statements' id). */
#define DB_KIND(id, what)                                                                                \
	.name = what, .nkeys = 1, .get = &id##_get, .count = &id##_count, .list = &id##_list,              \
	.insert = &id##_insert, .update = &id##_update, .del = &id##_delete
/* A kind other rows refer to: deleted only when id_users (a JSON array of them) is empty. */
#define DB_KIND_REFERRED(id, what) DB_KIND(id, what), .del_lock = &id##_lock, .users = &id##_users
/* A nested kind whose writes refer to a row named by the doc's field `ref`. */
#define DB_NESTED_KIND(id, what, ref)                                                                    \
	.name = what, .nkeys = 2, .get = &id##_get, .count = &id##_count, .list = &id##_list,              \
	.parent = &id##_parent, .parent_share = &id##_parent_share, .insert = &id##_insert,                \
	.update = &id##_update, .del = &id##_delete, .ref_share = &id##_ref_share, .ref_field = ref

#endif
