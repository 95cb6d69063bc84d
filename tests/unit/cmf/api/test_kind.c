// links: cmf/*.c cmf/api/*.c cmf/http/*.c cmf/csfle/*.c db/*.c crypto/*.c k8s/*.c build/gen/migrations.c
/*
 * Tests for cmf/api/kind.c: a kind declaration alone drives routes — a toy kind (and one nested in it)
 * gets its collection and item routes, permissions and audit actions with no handler of its own, the
 * router finds them, and `cmf routes` prints them; the real table holds every kind's operations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check_main.h"
#include "cmf/api/kind.h"
#include "cmf/api/routes.h"
#include "cmf/http/router.h"

/* A toy store: no statement is run by these tests, so none is declared. */
static const struct cmf_kind toy_widget = {
	.kind = "Widget", .what = "widget", .audit = "widget", .segs = { "widgets" },
	.ops = CMF_OP_BIT(CMF_OP_LIST) | CMF_OP_BIT(CMF_OP_GET) | CMF_OP_BIT(CMF_OP_DELETE),
	.actions = { [CMF_OP_DELETE] = "widget.delete" },
};

static const struct cmf_kind toy_gadget = {
	.kind = "Gadget", .what = "gadget", .audit = "gadget", .parent_what = "widget",
	.segs = { "widgets", "*", "gadgets" }, .ops = CMF_OPS_ALL,
	.actions = { [CMF_OP_CREATE] = "gadget.create", [CMF_OP_UPDATE] = "gadget.update" },
};

/* The table the toy kinds make, printed as `cmf routes` prints the real one. */
static char *
toy_routes_text(struct cmf_route *routes, size_t *n)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	*n = cmf_kind_routes(&toy_widget, routes, 16);
	*n += cmf_kind_routes(&toy_gadget, routes + *n, 16 - *n);
	cmf_router_print(f, routes, *n);
	fclose(f);
	return text;
}

START_TEST(test_toy_kind_routes)
{
	struct cmf_route routes[16];
	size_t n;
	char *text = toy_routes_text(routes, &n);

	ck_assert_uint_eq(n, 8);
	ck_assert_str_eq(text, "GET /cmf/api/v1/widgets admin\n"
			       "GET /cmf/api/v1/widgets/* admin\n"
			       "DELETE /cmf/api/v1/widgets/* admin audit=widget.delete\n"
			       "GET /cmf/api/v1/widgets/*/gadgets admin\n"
			       "POST /cmf/api/v1/widgets/*/gadgets admin audit=gadget.create\n"
			       "GET /cmf/api/v1/widgets/*/gadgets/* admin\n"
			       "PUT /cmf/api/v1/widgets/*/gadgets/* admin audit=gadget.update\n"
			       "DELETE /cmf/api/v1/widgets/*/gadgets/* admin\n");
	for (size_t i = 0; i < n; i++) {
		ck_assert_ptr_nonnull(routes[i].handler);
		ck_assert_ptr_eq(routes[i].target, i < 3 ? &toy_widget : &toy_gadget);
		ck_assert_int_eq(routes[i].perm, CMF_PERM_ADMIN);
	}
	free(text);
	/* No room: nothing half-added. */
	ck_assert_uint_eq(cmf_kind_routes(&toy_gadget, routes, 4), 0);
}
END_TEST

/* Route `method path` against the toy table; the route found (or NULL), args and Allow set. */
static const struct cmf_route *
toy_match(const char *method, const char *path, const char **args, char *allow, int *r)
{
	static struct cmf_route routes[16];
	static size_t n;
	static char buf[256];
	struct cmf_request req;
	const struct cmf_route *rt = NULL;
	char *text = toy_routes_text(routes, &n);

	free(text);
	memset(&req, 0, sizeof(req));
	snprintf(buf, sizeof(buf), "%s", path);
	req.method = method;
	req.path = path;
	cmf_request_split(&req, buf);
	*r = cmf_router_match(routes, n, &req, &rt, args, allow);
	return rt;
}

START_TEST(test_toy_kind_matches)
{
	const char *args[CMF_ROUTE_MAX_ARGS + 1];
	char allow[CMF_ROUTE_ALLOW_MAX];
	const struct cmf_route *rt;
	int r;

	rt = toy_match("GET", "/cmf/api/v1/widgets/w-one/gadgets/g-two", args, allow, &r);
	ck_assert_int_eq(r, CMF_ROUTE_FOUND);
	ck_assert_ptr_eq(rt->target, &toy_gadget);
	ck_assert_int_eq(rt->op, CMF_OP_GET);
	ck_assert_str_eq(args[0], "w-one");
	ck_assert_str_eq(args[1], "g-two");
	ck_assert_ptr_null(args[2]);
	rt = toy_match("PUT", "/cmf/api/v1/widgets/w-one", args, allow, &r);
	ck_assert_ptr_null(rt);
	ck_assert_int_eq(r, CMF_ROUTE_NO_METHOD);
	ck_assert_str_eq(allow, "GET, DELETE");
	toy_match("GET", "/cmf/api/v1/widgets/w-one/gizmos", args, allow, &r);
	ck_assert_int_eq(r, CMF_ROUTE_NO_PATH);
	toy_match("GET", "/cmf/api/v1/widgets//gadgets", args, allow, &r);
	ck_assert_int_eq(r, CMF_ROUTE_NO_PATH);
}
END_TEST

START_TEST(test_real_table_from_kinds)
{
	static const struct cmf_kind *const kinds[] = { &cmf_kind_secret,	  &cmf_kind_token,
							&cmf_kind_environment,	  &cmf_kind_secret_mapping,
							&cmf_kind_csfle_config,	  &cmf_kind_kafka_catalog,
							&cmf_kind_kafka_database, &cmf_kind_secret_version,
							&cmf_kind_role_binding };
	size_t n, served = 0, from_kinds = 0;
	const struct cmf_route *routes = cmf_api_routes(&n);

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		for (int op = 0; op < CMF_OP__COUNT; op++)
			served += (kinds[k]->ops & CMF_OP_BIT(op)) != 0;
		ck_assert_ptr_nonnull(kinds[k]->store);
		ck_assert_ptr_nonnull(kinds[k]->to_json);
		/* A kind that is written parses its bodies; one only listed (a secret's versions) has none. */
		if (kinds[k]->ops & (CMF_OP_BIT(CMF_OP_CREATE) | CMF_OP_BIT(CMF_OP_UPDATE)))
			ck_assert_ptr_nonnull(kinds[k]->input);
	}
	for (size_t i = 0; i < n; i++)
		from_kinds += routes[i].target != NULL;
	/* Every kind's operations, and ten routes of their own (probes, audit trail, ruleSet, resolution, metrics,
	 * a secret's rollback, the encryption status, its rotation and the rewrap). */
	ck_assert_uint_eq(from_kinds, served);
	ck_assert_uint_eq(n, served + 10);
}
END_TEST

CMF_CHECK_SUITE("kind", test_toy_kind_routes, test_toy_kind_matches, test_real_table_from_kinds)
