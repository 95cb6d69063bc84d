/* db rows: what the stores share — column decoding, existence checks, the SQL shape of a resource row. */
#ifndef CMF_DB_ROWS_H
#define CMF_DB_ROWS_H

#include "db/internal.h"

/* A timestamptz column as RFC 3339 UTC with milliseconds, the form every resource returns. */
#define DB_ROWS_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/*
 * What every resource row (struct db_kind) starts from, as jsonb, for the table alias `t`: name, uid,
 * created, updated, labels, annotations. A kind adds its fields with `||`.
 */
#define DB_ROWS_META(t)                                                                                  \
	"jsonb_build_object('name', " t ".name, 'uid', " t ".uid::text, 'created', " DB_ROWS_TS(t ".created_at") \
	", 'updated', " DB_ROWS_TS(t ".updated_at") ", 'labels', " t ".labels, 'annotations', " t ".annotations)"

/* The doc a write statement reads from: its parameter $N as the jsonb `d` ("... FROM " DB_ROWS_DOC("3")). */
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

#endif
