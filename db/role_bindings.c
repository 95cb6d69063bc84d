/* db role bindings: which role a principal that is not a token (a certificate's mapped name) has. */
#include <stdlib.h>

#include "db/rows.h"

#define BINDING_ROW                                                                                      \
	"(" DB_ROWS_META("k") " || jsonb_build_object('principal', k.principal, 'role', k.role, "               \
	"'environments', to_jsonb(k.environments)))::text"
#define BINDING_COLS(X)                                                                                  \
	X(principal, "d->>'principal'") X(role, "d->>'role'")                                            \
	X(environments, "ARRAY(SELECT jsonb_array_elements_text(coalesce(d->'environments', '[]')))")

DB_KIND_STATEMENTS(binding, "cmf_role_bindings", BINDING_ROW, "TRUE", "0");
DB_WRITES(binding, "cmf_role_bindings", BINDING_COLS);
DB_STATEMENT(binding, lookup, 1,
	     "SELECT principal, role, array_to_json(environments)::text, name FROM cmf_role_bindings WHERE principal = $1");
/* Every binding: what each process keeps in memory. */
DB_STATEMENT(binding, all, 0, "SELECT principal, role, array_to_json(environments)::text, name FROM cmf_role_bindings");
enum { BC_PRINCIPAL, BC_ROLE, BC_ENVS, BC_NAME };

const struct db_kind db_kind_role_binding = { DB_KIND(binding, "role binding") };

void
db_role_binding_free(struct db_role_binding *b)
{
	if (b == NULL)
		return;
	free(b->name);
	free(b->principal);
	free(b->role);
	json_decref(b->environments);
	free(b);
}

/* Row `i` of a binding statement's result as a binding (*out; caller frees). */
static int
binding_from_row(PGresult *res, int i, struct db_role_binding **out)
{
	struct db_role_binding *b = calloc(1, sizeof(*b));
	int r;

	*out = NULL;
	if (b == NULL)
		return DB_ERR_ALLOC;
	r = db_rows_str(res, i, BC_NAME, false, &b->name);
	if (r == DB_OK)
		r = db_rows_str(res, i, BC_PRINCIPAL, false, &b->principal);
	if (r == DB_OK)
		r = db_rows_str(res, i, BC_ROLE, false, &b->role);
	if (r == DB_OK)
		r = db_rows_json(res, i, BC_ENVS, false, "role binding", &b->environments);
	if (r == DB_OK) {
		*out = b;
		b = NULL;
	}
	db_role_binding_free(b);
	return r;
}

struct binding_tx {
	const struct db_statement *st;
	const char *principal; /* NULL: every binding */
	PGresult *res;
};

static int
binding_body(struct db_conn *c, void *cls)
{
	struct binding_tx *t = cls;
	struct db_param p[] = { { t->principal, 0, 0 } };

	PQclear(t->res);
	t->res = NULL;
	return db_exec_stmt(c, t->st, t->principal != NULL ? p : NULL, t->principal != NULL ? 1 : 0, &t->res);
}

int
db_role_binding_lookup(struct db_conn *c, const char *principal, struct db_role_binding **out)
{
	struct binding_tx t = { &binding_lookup, principal, NULL };
	/* One statement: no transaction around it (asked when the bindings are not all in memory). */
	int r = db_tx_run(c, DB_TX_AUTOCOMMIT, binding_body, &t);

	*out = NULL;
	if (r == DB_OK && PQntuples(t.res) != 1)
		r = DB_ERR_NOT_FOUND;
	if (r == DB_OK)
		r = binding_from_row(t.res, 0, out);
	PQclear(t.res);
	return r;
}

int
db_role_binding_load_all(struct db_conn *c, int (*fn)(void *cls, struct db_role_binding *b), void *cls)
{
	struct binding_tx t = { &binding_all, NULL, NULL };
	int r = db_tx_run(c, DB_TX_AUTOCOMMIT, binding_body, &t);

	for (int i = 0; r == DB_OK && i < PQntuples(t.res); i++) {
		struct db_role_binding *b = NULL;

		r = binding_from_row(t.res, i, &b);
		if (r == DB_OK)
			r = fn(cls, b);
	}
	PQclear(t.res);
	return r;
}
