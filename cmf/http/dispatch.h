/*
 * cmf dispatch: one call from route to reply. The dispatcher owns every cross-cutting step: it routes
 * (404/405), authenticates and authorizes from the headers, builds the audit event from the route's
 * action, gives the handler its database connection and sealer, records the outcome, and releases.
 * A handler only names the resource it touched and replies; it never writes an action string or an
 * audit call.
 */
#ifndef CMF_HTTP_DISPATCH_H
#define CMF_HTTP_DISPATCH_H

#include <stdatomic.h>
#include <stdbool.h>

#include "cmf/app.h"
#include "cmf/http/request.h"
#include "cmf/http/router.h"
#include "db/db.h"

/* Room for an audited resource: "database/<catalog>/<name>" with two names of 253 characters. */
#define CMF_CALL_RESOURCE_MAX 640

/* One request being served. Handlers read req, resp, route and args; the rest is the dispatcher's. */
struct cmf_call {
	struct cmf_request *req;
	struct cmf_response *resp;
	const struct cmf_route *route;
	const char *pattern; /* the route's pattern as text ("/cmf/api/v1/secrets/{*}"); NULL: none matched */
	const char *args[CMF_ROUTE_MAX_ARGS + 1]; /* the "*" segments, NULL-terminated */
	/* The dispatcher's state: use the functions below. */
	struct db_audit audit;
	char resource[CMF_CALL_RESOURCE_MAX];
	bool outcome_unknown; /* a store call lost its connection during COMMIT */
	bool deferred;
	bool held; /* waiting as a watch request (cmf_call_hold): its handler runs again on each change */
	void (*armed)(struct cmf_call *call, void *cls);
	void *armed_cls;
	atomic_int holds; /* a deferred call ends when both the handler and its completion are done */
	struct cmf_sealer_hold hold;
	bool sealer_held;
	void (*on_complete)(struct cmf_call *call, void *cls);
	void *complete_cls;
};

/*
 * Serve `req` against `routes` (n entries) into `resp`: cmf_dispatch_begin, then cmf_dispatch_run. Returns
 * 0 when the reply is complete; 1 when the handler deferred it (cmf_call_defer): then `on_complete(call,
 * cls)` runs once the handler calls cmf_call_complete, from whichever thread does, with `resp` filled;
 * `req` and `resp` must live until then. `on_complete` may be NULL for a transport that never lets
 * handlers defer. For a transport that has the whole request (body included) at once.
 */
int cmf_dispatch(struct cmf_request *req, struct cmf_response *resp, const struct cmf_route *routes, size_t n,
		 void (*on_complete)(struct cmf_call *call, void *cls), void *cls);

/*
 * The headers step, for a transport that has the request line and headers but no body yet (req->body
 * is not read): route (404/405), authenticate, authorize, and build the audit event. Returns 0 when the
 * reply in `resp` is complete (a refusal, audited as one; `on_complete` has run), *out NULL: the body
 * must not be read. Returns 1 when the request may go on: *out is the call (owned by the transport),
 * to be given to cmf_dispatch_run once req->body holds the body, or to cmf_dispatch_abandon when the
 * request ends before that. `req`, `resp`, `on_complete` and `cls` as for cmf_dispatch.
 */
int cmf_dispatch_begin(struct cmf_request *req, struct cmf_response *resp, const struct cmf_route *routes,
		       size_t n, void (*on_complete)(struct cmf_call *call, void *cls), void *cls,
		       struct cmf_call **out);

/*
 * The handler step of a call cmf_dispatch_begin let through (taken over: do not use `call` after this).
 * Returns as cmf_dispatch does: 0, the reply is complete; 1, deferred (on_complete runs later).
 */
int cmf_dispatch_run(struct cmf_call *call);

/*
 * Drop a call cmf_dispatch_begin let through whose request ended before its body (the client went
 * away, the body was over the limit): no handler runs and nothing is audited, as for any request cut
 * off before it is complete. The principal is released; `call` is freed. NULL is a no-op.
 */
void cmf_dispatch_abandon(struct cmf_call *call);

/* The calling thread's database connection (see cmf_app_conn). */
struct db_conn *cmf_call_conn(struct cmf_call *call);

/* The sealer for this call's store operations: taken on first use, released when the call completes. */
const struct db_sealer *cmf_call_sealer(struct cmf_call *call);

/*
 * Name the resource this call is about for its audit event ("secret/<name>"; printf format); until
 * named, the event names the request path.
 */
void cmf_call_resource(struct cmf_call *call, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The audit event a store writes inside the write's transaction, as a success answered with `status`
 * (NULL when the route is not audited: stores accept NULL). `action` replaces the route's action when
 * not NULL (an Environment POST that updates); a store may set its status and outcome (a resolution
 * records what it answered). Report the store's result with cmf_call_stored.
 */
struct db_audit *cmf_call_audit(struct cmf_call *call, unsigned status, const char *action);

/*
 * One more event for this call, besides its own (a listed secret whose data fails its integrity check):
 * the call's principal and client with `action`, outcome "failure" and `status`, about the resource named
 * by the printf format. Queued like refusals (merged when identical); logged when it cannot be queued.
 */
void cmf_call_audit_also(struct cmf_call *call, const char *action, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * The result of the store call that got cmf_call_audit's event: DB_OK means the event was committed
 * with the write (it is logged now); DB_ERR_OUTCOME_UNKNOWN makes the failure's event "unknown"
 * rather than "failure". Any other error is recorded as a failure when the call completes.
 */
void cmf_call_stored(struct cmf_call *call, int db_err);

/*
 * The reply in call->resp carries decrypted values: it leaves only once its audit event is committed.
 * The handler returns right after this call. Where the transport can wait (a completion was given to
 * cmf_dispatch) the call is deferred without blocking the thread and completes from the audit writer;
 * otherwise this blocks until the commit. If the event cannot be committed the reply becomes 503 and the
 * values are wiped.
 */
void cmf_call_reply_audited(struct cmf_call *call);

/*
 * Keep the call open after the handler returns; the reply is finished by cmf_call_complete. 0, or -1
 * when the transport cannot wait for a reply (it gave cmf_dispatch no completion): the handler must
 * then reply before it returns.
 */
int cmf_call_defer(struct cmf_call *call);

/*
 * Keep a call waiting after its handler returns, as a watch request (cmf/http/watch.c): deferred
 * (cmf_call_defer), with the keyring released meanwhile (a key revocation never waits for a watcher).
 * The reply built so far stays in call->resp: it is what cmf_call_complete answers when the wait ends
 * without news. The handler returns right after this call; once it has, `armed(call, cls)` runs (on the
 * dispatcher's thread, once): from then on the call belongs to the waiter alone, who ends it with
 * cmf_dispatch_again or cmf_call_complete (armed may do so itself). 0 (also, doing nothing, for a call
 * already held: a re-run), or -1 when the transport cannot wait (the handler then answers at once).
 */
int cmf_call_hold(struct cmf_call *call, void (*armed)(struct cmf_call *call, void *cls), void *cls);

/*
 * Run a held call again from its headers, on the calling thread (which needs no MHD context): authenticate
 * and authorize it anew (a token revoked or expired meanwhile is refused and audited as at the first
 * call), then run its handler into a cleared call->resp. When the reply's status is `unchanged` and
 * `keep` is true, nothing is answered or audited: the call stays held and false is returned. Otherwise
 * the reply is answered as any call's (audited; when it carries values, once its event is committed)
 * and true is returned: `call` is no longer the caller's.
 */
bool cmf_dispatch_again(struct cmf_call *call, unsigned unchanged, bool keep);

/*
 * Finish a deferred call (safe to call before the handler has returned, from any thread): record its audit event if still due (with the status in call->resp), release
 * the sealer and the principal, and run the transport's completion. `call` is freed.
 */
void cmf_call_complete(struct cmf_call *call);

#endif
