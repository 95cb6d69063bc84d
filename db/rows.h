/* db rows: what the stores of named (and nested) resources share — column decoding, existence, paging. */
#ifndef CMF_DB_ROWS_H
#define CMF_DB_ROWS_H

#include "db/internal.h"

/* A timestamptz column as RFC 3339 UTC with milliseconds, the form every resource returns. */
#define DB_ROWS_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/*
 * The JSON text of column `col` of `row`, parsed into *out (new reference), which must be an object
 * (want_object) or an array. A stored value of another shape is DB_ERR_CORRUPT (logged naming `what`).
 */
int db_rows_json(PGresult *res, int row, int col, bool want_object, const char *what, json_t **out);

/* strdup of column `col` of `row`; NULL for SQL NULL when `nullable`. DB_ERR_ALLOC on failure. */
int db_rows_str(PGresult *res, int row, int col, bool nullable, char **out);

/* Run `st` (parameters p[0..n)): 1 when it returns a row, 0 when none, or a DB_ERR_* code. */
int db_rows_exists(struct db_conn *c, const struct db_statement *st, const struct db_param *p, int n);

/* Decode row `row` of `res` into a new item (*out), or free one; the page runner is generic over both. */
typedef int (*db_rows_decode)(PGresult *res, int row, void **out);
typedef void (*db_rows_free)(void *item);

/*
 * One page of a list, read in one snapshot. `count` and `list` take the `nkeys` key parameters
 * (none, or the parent's name), `list` then LIMIT and OFFSET. When `parent` is not NULL it is run
 * first with the keys, and no row makes it DB_ERR_NOT_FOUND. On success `items` is a malloc'd array
 * of `n` items (free each with `free_item`, then the array) and `total` the count.
 */
struct db_rows_page {
	const struct db_statement *parent, *count, *list;
	const char *keys[2];
	int nkeys;
	long long offset;
	int limit;
	db_rows_decode decode;
	db_rows_free free_item;
	void **items;
	size_t n;
	long long total;
};

int db_rows_page_read(struct db_conn *c, struct db_rows_page *pg);

/*
 * Delete the row named `name` unless others still refer to it, in one transaction: `lock` (one
 * parameter, the name; FOR UPDATE) holds it first, so a referrer being created waits and then finds
 * it gone; `users` returns a JSON array of the referrers' names; `del` deletes, with the foreign key
 * (RESTRICT) as the backstop. `audit` is recorded in the same transaction. DB_ERR_NOT_FOUND if absent;
 * DB_ERR_CONFLICT while referred to: *users (when not NULL) is then a new array of them (empty if only
 * the foreign key caught one created concurrently), NULL on every other return.
 */
struct db_rows_delete {
	const struct db_statement *lock, *users, *del;
};

int db_rows_delete_unreferenced(struct db_conn *c, const struct db_rows_delete *st, const char *name,
				const struct db_audit *audit, json_t **users);

#endif
