/* cmf dispatch: route, authenticate, authorize, run the handler, audit, release — in that order, once. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cmf/http/audit.h"
#include "cmf/http/auth.h"
#include "cmf/http/dispatch.h"
#include "cmf/http/reply.h"
#include "cmf/log.h"
#include "cmf/text.h"

struct db_conn *
cmf_call_conn(struct cmf_call *call)
{
	return cmf_app_conn(call->req->app);
}

const struct db_sealer *
cmf_call_sealer(struct cmf_call *call)
{
	if (!call->sealer_held) {
		cmf_app_sealer_acquire(call->req->app, &call->hold);
		call->sealer_held = true;
	}
	return &call->hold.sealer;
}

void
cmf_call_resource(struct cmf_call *call, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(call->resource, sizeof(call->resource), fmt, ap);
	va_end(ap);
	cmf_utf8_sanitize(call->resource);
}

struct db_audit *
cmf_call_audit(struct cmf_call *call, unsigned status, const char *action)
{
	if (call->route->audit_action == NULL)
		return NULL;
	if (action != NULL)
		call->audit.action = action;
	call->audit.outcome = "success";
	call->audit.status = (int)status;
	return &call->audit;
}

void
cmf_call_stored(struct cmf_call *call, int db_err)
{
	if (call->route->audit_action == NULL)
		return;
	if (db_err == DB_OK) {
		/* Committed with the write: only the log line is left to write. */
		cmf_audit_log(&call->audit);
		call->req->audited = true;
	} else {
		call->outcome_unknown = db_err == DB_ERR_OUTCOME_UNKNOWN;
	}
}

int
cmf_call_defer(struct cmf_call *call)
{
	if (call->on_complete == NULL)
		return -1;
	call->deferred = true;
	return 0;
}

void
cmf_call_complete(struct cmf_call *call)
{
	struct cmf_request *req = call->req;

	/* A handler that returned without a reply is a bug: answer it as one rather than drop the connection. */
	if (call->resp->status == 0) {
		cmf_error("%s %s: the handler made no reply", req->method, req->path);
		cmf_reply_error(call->resp, 500, "internal error");
	}
	/* An audited request the store did not record with its write: a read, a refusal, a failure. */
	if (call->route != NULL && call->route->audit_action != NULL && !req->audited) {
		call->audit.outcome = call->outcome_unknown ? "unknown"
				      : call->resp->status < 400 ? "success"
								  : "failure";
		call->audit.status = (int)call->resp->status;
		cmf_audit_record(req, &call->audit);
	}
	if (call->sealer_held)
		cmf_app_sealer_release(req->app, &call->hold);
	cmf_principal_clear(&req->principal);
	if (call->on_complete != NULL)
		call->on_complete(call, call->complete_cls);
	free(call);
}

/* Refuse before any handler, recording the refusal when it has an audit action. */
static void
refuse(struct cmf_call *call, unsigned status, const char *action, const char *message)
{
	if (action != NULL) {
		call->audit.action = action;
		call->audit.outcome = "denied";
		call->audit.status = (int)status;
		cmf_audit_record(call->req, &call->audit);
	}
	if (status == 401)
		cmf_response_header(call->resp, "WWW-Authenticate", "Bearer realm=\"cmf\"");
	cmf_reply_error(call->resp, status, "%s", message);
}

int
cmf_dispatch(struct cmf_request *req, struct cmf_response *resp, const struct cmf_route *routes, size_t n,
	     void (*on_complete)(struct cmf_call *call, void *cls), void *cls)
{
	struct cmf_call *call = calloc(1, sizeof(*call));
	char allow[CMF_ROUTE_ALLOW_MAX];
	const char *message, *action;
	unsigned status;
	int r;

	if (call == NULL) {
		cmf_reply_error(resp, 500, "internal error");
		return 0;
	}
	call->req = req;
	call->resp = resp;
	call->on_complete = on_complete;
	call->complete_cls = cls;
	r = cmf_router_match(routes, n, req, &call->route, call->args, allow);
	if (r == CMF_ROUTE_NO_METHOD) {
		cmf_response_header(resp, "Allow", allow);
		cmf_reply_error(resp, 405, "method %s is not allowed on %s (allowed: %s)", req->method, req->path, allow);
	} else if (r == CMF_ROUTE_NO_PATH) {
		cmf_reply_error(resp, 404, "no such resource: %s", req->path);
	}
	if (r != CMF_ROUTE_FOUND) {
		cmf_call_complete(call);
		return 0;
	}
	r = call->route->perm == CMF_PERM_PUBLIC ? CMF_AUTH_OK : cmf_auth_authenticate(req);
	/* The event every audited outcome starts from (after authentication: it names the principal); refusals
	 * and resources not yet named name the request path. A public route (a probe) has neither. */
	if (call->route->perm != CMF_PERM_PUBLIC || call->route->audit_action != NULL)
		cmf_audit_init(&call->audit, req, call->route->audit_action, "success", 0, call->resource,
			       sizeof(call->resource), "%s", req->path);
	if (cmf_router_authorize(call->route, r, cmf_auth_enabled(), &req->principal, call->args, &status, &message,
				 &action) != 0) {
		refuse(call, status, action, message);
		/* A refusal is recorded once, as a refusal: never again as the route's outcome. */
		req->audited = true;
		cmf_call_complete(call);
		return 0;
	}
	call->route->handler(call);
	if (call->deferred)
		return 1;
	cmf_call_complete(call);
	return 0;
}
