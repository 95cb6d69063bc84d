/*
 * cmf dispatch: route, authenticate, authorize, run the handler, audit, release — in that order, once. The
 * first three happen from the headers alone (cmf_dispatch_begin), before the transport reads a body byte.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/cache.h"
#include "cmf/http/audit.h"
#include "cmf/http/auth.h"
#include "cmf/http/dispatch.h"
#include "cmf/http/reply.h"
#include "cmf/log.h"
#include "cmf/text.h"

/*
 * Each route's pattern as text ("/cmf/api/v1/secrets/ *"), for the audit trail's route and the metrics'
 * label: built once per route table, so the strings are few, fixed and never chosen by a client. Read
 * without a lock on every request once published.
 */
struct patterns {
	const struct cmf_route *table;
	size_t n;
	char *text[];
};
static pthread_mutex_t patterns_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct patterns *) patterns;

static struct patterns *
patterns_build(const struct cmf_route *routes, size_t n)
{
	struct patterns *p = calloc(1, sizeof(*p) + n * sizeof(p->text[0]));

	if (p == NULL)
		return NULL;
	p->table = routes;
	p->n = n;
	for (size_t i = 0; i < n; i++) {
		char text[CMF_ROUTE_PATTERN_MAX];

		cmf_router_pattern(&routes[i], text, sizeof(text));
		if ((p->text[i] = strdup(text)) == NULL)
			return p; /* that route and those after it are filed as unrouted */
	}
	return p;
}

static const char *
route_pattern(const struct cmf_route *routes, size_t n, const struct cmf_route *rt)
{
	struct patterns *p = atomic_load(&patterns);

	if (p == NULL || p->table != routes) {
		pthread_mutex_lock(&patterns_mu);
		p = atomic_load(&patterns);
		/* A previous table's strings stay allocated: calls of it may still hold them (only tests switch). */
		if ((p == NULL || p->table != routes) && (p = patterns_build(routes, n)) != NULL)
			atomic_store(&patterns, p);
		pthread_mutex_unlock(&patterns_mu);
	}
	if (p == NULL || p->table != routes || rt < routes || rt >= routes + p->n || p->text[rt - routes] == NULL)
		return CMF_AUDIT_UNROUTED;
	return p->text[rt - routes];
}

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
cmf_call_audit_also(struct cmf_call *call, const char *action, int status, const char *fmt, ...)
{
	char resource[CMF_CALL_RESOURCE_MAX];
	struct db_audit a = call->audit;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(resource, sizeof(resource), fmt, ap);
	va_end(ap);
	cmf_utf8_sanitize(resource);
	a.action = action;
	a.outcome = "failure";
	a.status = status;
	a.resource = resource;
	if (cmf_audit_submit(&a, NULL, NULL) != 0)
		cmf_audit_log(&a);
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
	/* Two holds: the handler's (released when it returns to the dispatcher) and the completion's. */
	atomic_store(&call->holds, 2);
	call->deferred = true;
	return 0;
}

/* The audit writer committed (or failed to commit) the event of a reply that carries values. */
static void
audited_reply_done(void *cls, bool ok)
{
	struct cmf_call *call = cls;

	if (!ok) {
		/* The values never leave: the event is stored later as this 503 (cmf_audit_submit). */
		cmf_response_clear(call->resp);
		cmf_reply_db_error(call->resp, DB_ERR_UNAVAILABLE, "the audit trail");
	}
	cmf_call_complete(call);
}

void
cmf_call_reply_audited(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	int r;

	req->audited = true;
	if (call->route->audit_action == NULL)
		return;
	call->audit.outcome = "success";
	call->audit.status = (int)call->resp->status;
	if (call->on_complete != NULL) {
		/* The holds before deferring: a held watch has one (its waiter's), which a refused submit keeps. */
		int holds = atomic_load(&call->holds);

		/* Deferred before submitting: the writer may complete the call before the submit returns. */
		cmf_call_defer(call);
		r = cmf_audit_submit(&call->audit, audited_reply_done, call);
		if (r == 0)
			return;
		call->deferred = false;
		atomic_store(&call->holds, holds);
	} else {
		r = cmf_audit_commit(&call->audit);
	}
	if (r != 0) {
		/* The log line is the event's only record: it says what the client got. */
		call->audit.outcome = "failure";
		call->audit.status = 503;
		cmf_audit_log(&call->audit);
		cmf_error("audit event for request %s not stored: the audit queue is full", req->request_id);
		cmf_response_clear(call->resp);
		cmf_reply_error(call->resp, 503, "the audit trail is not accepting events; try again");
	}
}

void
cmf_call_complete(struct cmf_call *call)
{
	struct cmf_request *req = call->req;

	if (call->deferred && atomic_fetch_sub(&call->holds, 1) != 1) {
		/* A held call whose handler just returned: the waiter alone has it now. */
		if (call->held && call->armed != NULL) {
			void (*armed)(struct cmf_call *, void *) = call->armed;

			call->armed = NULL;
			armed(call, call->armed_cls);
		}
		return; /* the other side finishes it */
	}

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
		if (cmf_audit_record(req, &call->audit) != 0 && call->resp->status < 500) {
			/* Not in the trail, so not answered: the client may try again. */
			cmf_response_clear(call->resp);
			cmf_reply_error(call->resp, 503, "the audit trail is not accepting events; try again");
		}
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
	/* A refusal stays a refusal even when the queue is full (the event is then in the log line only). */
	if (status == 401)
		cmf_response_header(call->resp, "WWW-Authenticate", "Bearer realm=\"cmf\"");
	cmf_reply_error(call->resp, status, "%s", message);
}

int
cmf_dispatch_begin(struct cmf_request *req, struct cmf_response *resp, const struct cmf_route *routes, size_t n,
		   void (*on_complete)(struct cmf_call *call, void *cls), void *cls, struct cmf_call **out)
{
	struct cmf_call *call = calloc(1, sizeof(*call));
	char allow[CMF_ROUTE_ALLOW_MAX];
	const char *message, *action;
	unsigned status;
	int r;

	*out = NULL;
	if (call == NULL) {
		cmf_reply_error(resp, 500, "internal error");
		return 0;
	}
	call->req = req;
	call->resp = resp;
	call->on_complete = on_complete;
	call->complete_cls = cls;
	r = cmf_router_match(routes, n, req, &call->route, call->args, allow);
	call->pattern = r == CMF_ROUTE_FOUND ? route_pattern(routes, n, call->route) : NULL;
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
	if (call->route->perm != CMF_PERM_PUBLIC || call->route->audit_action != NULL) {
		cmf_audit_init(&call->audit, req, call->route->audit_action, "success", 0, call->resource,
			       sizeof(call->resource), "%s", req->path);
		call->audit.route = call->pattern;
	}
	if (cmf_router_authorize(call->route, r, cmf_auth_enabled(), &req->principal, call->args, &status, &message,
				 &action) != 0) {
		refuse(call, status, action, message);
		/* A refusal is recorded once, as a refusal: never again as the route's outcome. */
		req->audited = true;
		cmf_call_complete(call);
		return 0;
	}
	*out = call;
	return 1;
}

/*
 * The credential checked again once the body is in: a body can take as long as the client likes to
 * arrive, and a token revoked (or expired) meanwhile must not finish its write. Returns 0, or -1 with
 * the refusal recorded and answered. A request without a body is checked once, at its first callback.
 */
static int
recheck(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	const char *message, *action;
	unsigned status;
	int r;

	if (req->body_len == 0 || call->route->perm == CMF_PERM_PUBLIC)
		return 0;
	r = cmf_auth_authenticate(req);
	if (cmf_router_authorize(call->route, r, cmf_auth_enabled(), &req->principal, call->args, &status, &message,
				 &action) == 0)
		return 0;
	refuse(call, status, action, message);
	req->audited = true;
	return -1;
}

int
cmf_dispatch_run(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	int r;

	if (recheck(call) != 0) {
		cmf_call_complete(call);
		return 0;
	}
	/*
	 * A token checked against what was kept while PostgreSQL is away grants a 304 of the resolution (the
	 * one CMF_PERM_ENV_READ route; its handler refuses anything else) and nothing more.
	 */
	if (req->principal.stale && call->route->perm != CMF_PERM_ENV_READ)
		cmf_reply_db_error(call->resp, DB_ERR_UNAVAILABLE, NULL);
	else
		call->route->handler(call);
	/*
	 * Read your own writes: whatever this call changed is dropped from this process's cache before the
	 * answer leaves (other processes follow PostgreSQL's notification). Reads never change anything.
	 */
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
		cmf_cache_invalidate_write(cmf_call_conn(call), call->route->audit_action != NULL &&
					   (strncmp(call->route->audit_action, "token.", 6) == 0 ||
					    strncmp(call->route->audit_action, "role-binding.", 13) == 0));
	r = call->deferred ? 1 : 0;
	cmf_call_complete(call); /* a deferred call: only the handler's hold; `call` may be gone now */
	return r;
}

int
cmf_call_hold(struct cmf_call *call, void (*armed)(struct cmf_call *call, void *cls), void *cls)
{
	if (call->held)
		return 0;
	if (cmf_call_defer(call) != 0)
		return -1;
	call->held = true;
	call->armed = armed;
	call->armed_cls = cls;
	if (call->sealer_held) {
		cmf_app_sealer_release(call->req->app, &call->hold);
		call->sealer_held = false;
	}
	return 0;
}

bool
cmf_dispatch_again(struct cmf_call *call, unsigned unchanged, bool keep)
{
	struct cmf_request *req = call->req;
	const char *message, *action;
	unsigned status;
	int r;

	cmf_response_clear(call->resp);
	/* Held, the call has one hold left (the waiter's). The handler may defer it again for its audit commit. */
	call->deferred = false;
	r = call->route->perm == CMF_PERM_PUBLIC ? CMF_AUTH_OK : cmf_auth_authenticate(req);
	if (cmf_router_authorize(call->route, r, cmf_auth_enabled(), &req->principal, call->args, &status, &message,
				 &action) != 0) {
		refuse(call, status, action, message);
		req->audited = true;
	} else if (req->principal.stale && call->route->perm != CMF_PERM_ENV_READ) {
		cmf_reply_db_error(call->resp, DB_ERR_UNAVAILABLE, NULL);
	} else {
		call->route->handler(call);
	}
	if (call->deferred) {
		cmf_call_complete(call); /* the handler's hold; its audit commit completes the call */
		return true;
	}
	call->deferred = true; /* back to the waiter's one hold */
	if (keep && call->resp->status == unchanged && !req->audited) {
		if (call->sealer_held) {
			cmf_app_sealer_release(req->app, &call->hold);
			call->sealer_held = false;
		}
		return false;
	}
	cmf_call_complete(call);
	return true;
}

void
cmf_dispatch_abandon(struct cmf_call *call)
{
	if (call == NULL)
		return;
	cmf_principal_clear(&call->req->principal);
	free(call);
}

int
cmf_dispatch(struct cmf_request *req, struct cmf_response *resp, const struct cmf_route *routes, size_t n,
	     void (*on_complete)(struct cmf_call *call, void *cls), void *cls)
{
	struct cmf_call *call;

	if (cmf_dispatch_begin(req, resp, routes, n, on_complete, cls, &call) == 0)
		return 0;
	return cmf_dispatch_run(call);
}
