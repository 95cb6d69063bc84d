// links: cmf/*.c cmf/api/*.c cmf/http/*.c cmf/csfle/*.c db/*.c crypto/*.c k8s/*.c build/gen/migrations.c
/*
 * Tests for cmf/http/dispatch.c without a daemon or a database: 404 and 405 decided before any handler;
 * a public route's handler runs once with its arguments; a handler that defers is finished later by
 * cmf_call_complete, which runs the transport's completion exactly once with the reply in place; a
 * handler that forgets to reply answers 500 rather than nothing; the headers step (cmf_dispatch_begin)
 * refuses without a body and lets a request through to a handler that sees the body given later, or
 * drops it (cmf_dispatch_abandon) without running anything.
 */
#include <string.h>

#include "tests/unit/check_main.h"
#include "cmf/http/dispatch.h"
#include "cmf/http/reply.h"

static struct cmf_call *parked;
static int handled, completed;

static void
reply_now(struct cmf_call *call)
{
	handled++;
	cmf_reply_error(call->resp, 418, "arg %s", call->args[0]);
}

static void
reply_later(struct cmf_call *call)
{
	handled++;
	if (cmf_call_defer(call) == 0)
		parked = call;
	else
		cmf_reply_empty(call->resp, 202); /* this transport cannot wait: answered now */
}

static void
reply_never(struct cmf_call *call)
{
	(void)call;
	handled++;
}

static void
reply_body(struct cmf_call *call)
{
	handled++;
	cmf_reply_error(call->resp, 418, "body %.*s", (int)call->req->body_len, call->req->body);
}

static void
on_complete(struct cmf_call *call, void *cls)
{
	(void)call;
	*(int *)cls += 1;
}

static const struct cmf_route routes[] = {
	{ "GET", { "now", "*", NULL }, CMF_PERM_PUBLIC, NULL, reply_now, NULL, 0 },
	{ "GET", { "later", NULL }, CMF_PERM_PUBLIC, NULL, reply_later, NULL, 0 },
	{ "GET", { "never", NULL }, CMF_PERM_PUBLIC, NULL, reply_never, NULL, 0 },
	{ "GET", { "body", NULL }, CMF_PERM_PUBLIC, NULL, reply_body, NULL, 0 },
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* Dispatch `method path`; returns cmf_dispatch's result, the reply in *resp. */
static int
dispatch(const char *method, const char *path, struct cmf_request *req, struct cmf_response *resp, char *buf)
{
	memset(req, 0, sizeof(*req));
	memset(resp, 0, sizeof(*resp));
	strcpy(buf, path);
	req->method = method;
	req->path = path;
	cmf_request_split(req, buf);
	handled = completed = 0;
	return cmf_dispatch(req, resp, routes, NROUTES, on_complete, &completed);
}

START_TEST(test_routes_and_replies)
{
	struct cmf_request req;
	struct cmf_response resp;
	char buf[64];

	ck_assert_int_eq(dispatch("GET", "/now/x-1", &req, &resp, buf), 0);
	ck_assert_int_eq(handled, 1);
	ck_assert_int_eq(completed, 1);
	ck_assert_uint_eq(resp.status, 418);
	ck_assert_ptr_nonnull(strstr(resp.body, "arg x-1"));
	cmf_response_clear(&resp);
	dispatch("POST", "/now/x-1", &req, &resp, buf);
	ck_assert_int_eq(handled, 0);
	ck_assert_uint_eq(resp.status, 405);
	ck_assert_str_eq(resp.headers[0].name, "Allow");
	ck_assert_str_eq(resp.headers[0].value, "GET");
	cmf_response_clear(&resp);
	dispatch("GET", "/nowhere", &req, &resp, buf);
	ck_assert_int_eq(handled, 0);
	ck_assert_int_eq(completed, 1);
	ck_assert_uint_eq(resp.status, 404);
	cmf_response_clear(&resp);
	dispatch("GET", "/never", &req, &resp, buf);
	ck_assert_int_eq(handled, 1);
	ck_assert_uint_eq(resp.status, 500);
	cmf_response_clear(&resp);
}
END_TEST

START_TEST(test_deferred_completion)
{
	struct cmf_request req;
	struct cmf_response resp;
	char buf[64];

	parked = NULL;
	ck_assert_int_eq(dispatch("GET", "/later", &req, &resp, buf), 1);
	ck_assert_int_eq(handled, 1);
	ck_assert_ptr_nonnull(parked);
	/* Nothing is finished while the handler holds the call. */
	ck_assert_int_eq(completed, 0);
	ck_assert_uint_eq(resp.status, 0);
	cmf_reply_empty(parked->resp, 204);
	cmf_call_complete(parked);
	ck_assert_int_eq(completed, 1);
	ck_assert_uint_eq(resp.status, 204);
	cmf_response_clear(&resp);
	/* A transport without a completion cannot let a handler defer: the call finishes before dispatch returns. */
	parked = NULL;
	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	strcpy(buf, "/later");
	req.method = "GET";
	req.path = "/later";
	cmf_request_split(&req, buf);
	ck_assert_int_eq(cmf_dispatch(&req, &resp, routes, NROUTES, NULL, NULL), 0);
	ck_assert_ptr_null(parked);
	ck_assert_uint_eq(resp.status, 202);
	cmf_response_clear(&resp);
}
END_TEST

/* The headers step of `method path`: cmf_dispatch_begin's result, the call in *call. */
static int
begin(const char *method, const char *path, struct cmf_request *req, struct cmf_response *resp, char *buf,
      struct cmf_call **call)
{
	memset(req, 0, sizeof(*req));
	memset(resp, 0, sizeof(*resp));
	strcpy(buf, path);
	req->method = method;
	req->path = path;
	cmf_request_split(req, buf);
	handled = completed = 0;
	return cmf_dispatch_begin(req, resp, routes, NROUTES, on_complete, &completed, call);
}

START_TEST(test_headers_then_body)
{
	struct cmf_request req;
	struct cmf_response resp;
	struct cmf_call *call = (struct cmf_call *)&req; /* not NULL: begin must set it */
	char buf[64];

	/* Refused from the headers: complete, no call, no handler. */
	ck_assert_int_eq(begin("POST", "/nowhere", &req, &resp, buf, &call), 0);
	ck_assert_ptr_null(call);
	ck_assert_int_eq(handled, 0);
	ck_assert_int_eq(completed, 1);
	ck_assert_uint_eq(resp.status, 404);
	cmf_response_clear(&resp);
	ck_assert_int_eq(begin("POST", "/body", &req, &resp, buf, &call), 0);
	ck_assert_ptr_null(call);
	ck_assert_uint_eq(resp.status, 405);
	cmf_response_clear(&resp);
	/* Let through: nothing runs until the body is in (a GET: a write would need the app's cache). */
	ck_assert_int_eq(begin("GET", "/body", &req, &resp, buf, &call), 1);
	ck_assert_ptr_nonnull(call);
	ck_assert_int_eq(handled, 0);
	ck_assert_int_eq(completed, 0);
	ck_assert_uint_eq(resp.status, 0);
	req.body = "hello";
	req.body_len = 5;
	ck_assert_int_eq(cmf_dispatch_run(call), 0);
	ck_assert_int_eq(handled, 1);
	ck_assert_int_eq(completed, 1);
	ck_assert_ptr_nonnull(strstr(resp.body, "body hello"));
	cmf_response_clear(&resp);
	/* A request that ends before its body: dropped, nothing runs or completes (ASan checks the free). */
	ck_assert_int_eq(begin("GET", "/body", &req, &resp, buf, &call), 1);
	cmf_dispatch_abandon(call);
	cmf_dispatch_abandon(NULL);
	ck_assert_int_eq(handled, 0);
	ck_assert_int_eq(completed, 0);
	ck_assert_uint_eq(resp.status, 0);
}
END_TEST

CMF_CHECK_SUITE("dispatch", test_routes_and_replies, test_deferred_completion, test_headers_then_body)
