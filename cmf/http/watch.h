/*
 * cmf watch requests: a client configuration asked with watch=true whose answer would be 304 (its
 * If-None-Match holds the current ETag) is held instead, its connection suspended, until the answer
 * changes, its credential ends, or its timeout passes. One thread serves every held request: it sleeps on
 * one condition variable until the cache reports a change (cmf_cache_on_change: a PostgreSQL notification,
 * a write of this process, a token or role-binding reload) or the earliest deadline (a timeout, a token's
 * expiry), then runs the held requests concerned again through the dispatcher (cmf_dispatch_again), which
 * authenticates, authorizes, resolves and audits exactly as for a plain GET. An idle watcher costs a list
 * entry and a suspended connection: no thread, no timer, no polling.
 */
#ifndef CMF_HTTP_WATCH_H
#define CMF_HTTP_WATCH_H

#include "cmf/app.h"
#include "cmf/http/dispatch.h"

/*
 * timeoutSeconds: 30 s by default, as Kubernetes' own watches and most HTTP proxies' idle timeouts allow;
 * at most 300 s, so that a watcher whose client went away (a suspended connection is not polled) frees
 * its slot within five minutes.
 */
#define CMF_WATCH_TIMEOUT_DEFAULT 30
#define CMF_WATCH_TIMEOUT_MAX 300

/*
 * Start the watch thread, holding at most app->cfg->max_watchers requests, and subscribe it to the
 * cache's changes. 0, or -1 (logged) when the thread cannot start (watch requests are then answered at
 * once, like plain GETs).
 */
int cmf_watch_start(struct cmf_app *app);

/*
 * Shutting down: every held request is answered at once with the reply it holds (its 304), later ones
 * are not held, and the thread is joined. No-op when not started.
 */
void cmf_watch_stop(void);

/* cmf_watch_hold's results. */
enum {
	CMF_WATCH_HELD = 0,  /* held: the handler returns at once, the reply comes later */
	CMF_WATCH_FULL = -1, /* server.maxWatchers requests are held already (or out of memory): answer 503 */
	CMF_WATCH_OFF = -2,  /* not watching (shutting down, no watch thread, a transport that cannot wait):
				answer the reply in call->resp now */
};

/*
 * A counter of the changes seen so far: read it before reading what the reply is computed from, and
 * pass it to cmf_watch_hold, so a change that lands in between is not missed.
 */
unsigned long long cmf_watch_epoch(void);

/*
 * Hold `call`, whose handler just built the 304 in call->resp from what it read after `epoch`, for at most
 * `timeout_seconds` (1..CMF_WATCH_TIMEOUT_MAX). Each change runs the call again; the first reply other
 * than 304 is answered (200 with the new body, or the error the change caused: 401 for a revoked or
 * expired token, 409 for a removed mapping, ...). At the timeout it runs once more and that reply is
 * answered, 304 or not. For a call already held (the handler running again) this does nothing and
 * returns CMF_WATCH_HELD.
 */
int cmf_watch_hold(struct cmf_call *call, int timeout_seconds, unsigned long long epoch);

#endif
