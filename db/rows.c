/* db rows: column decoding and existence checks shared by the stores. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/rows.h"

int
db_rows_json(PGresult *res, int row, int col, bool want_object, const char *what, json_t **out)
{
	json_error_t jerr;
	json_t *v;

	*out = NULL;
	v = json_loads(PQgetvalue(res, row, col), JSON_DECODE_ANY, &jerr);
	if (want_object ? !json_is_object(v) : !json_is_array(v)) {
		crypto_log_error("%s: %s: stored value is not a JSON %s", __func__, what, want_object ? "object" : "array");
		json_decref(v);
		return DB_ERR_CORRUPT;
	}
	*out = v;
	return DB_OK;
}

int
db_rows_str(PGresult *res, int row, int col, bool nullable, char **out)
{
	*out = NULL;
	if (nullable && PQgetisnull(res, row, col))
		return DB_OK;
	*out = strdup(PQgetvalue(res, row, col));
	return *out != NULL ? DB_OK : DB_ERR_ALLOC;
}

int
db_rows_exists(struct db_conn *c, const struct db_statement *st, const struct db_param *p, int n)
{
	PGresult *res = NULL;
	int r;

	r = db_exec_stmt(c, st, p, n, &res);
	if (r == DB_OK)
		r = PQntuples(res) > 0 ? 1 : 0;
	PQclear(res);
	return r;
}
