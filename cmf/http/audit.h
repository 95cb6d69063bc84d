/*
 * cmf audit: building audit events for requests, logging them, and storing them through one writer
 * thread that commits them in batches (never values: events name resources, not their data).
 *
 * Three ways in, one table:
 *  - a successful write's event is committed by the store in the write's own transaction (db/);
 *  - a response that carries decrypted values waits for its event's batch to commit before it is sent
 *    (cmf_audit_submit with a completion, or cmf_audit_commit), so nothing decrypted leaves unaudited;
 *  - every other event (reads without values, 304s, refusals, failures) is queued without waiting, and
 *    identical ones within one second are merged into one row with a count: the merge key is (client
 *    address, principal, action, route, status), plus outcome and client certificate.
 */
#ifndef CMF_AUDIT_H
#define CMF_AUDIT_H

#include <stdbool.h>

#include "cmf/app.h"
#include "cmf/http/request.h"
#include "db/db.h"

/* The route an event is filed under when the request matched none (or was refused before routing). */
#define CMF_AUDIT_UNROUTED "unrouted"

/*
 * Fill `a` for `req` (principal, request id, client address and certificate are borrowed from req).
 * `resource` is copied into `resbuf` (size reslen) so callers can build it on the stack. The route is
 * CMF_AUDIT_UNROUTED until the caller sets a->route.
 */
void cmf_audit_init(struct db_audit *a, const struct cmf_request *req, const char *action, const char *outcome,
		    int status, char *resbuf, size_t reslen, const char *resource_fmt, ...)
	__attribute__((format(printf, 8, 9)));

/* The structured log line: "audit {json}" with the event's fields (and its count when merged). */
void cmf_audit_log(const struct db_audit *a);

/*
 * Start the writer threads, each with a database connection of its own; the queue holds at most
 * audit.queueCapacity events. With audit.retentionDays set, also start the retention job (a thread with
 * its own connection): at start and then hourly it deletes events first seen more than that many days
 * ago, in small batches, logging one line per pass with the count. 0, or -1 (logged).
 */
int cmf_audit_start(struct cmf_app *app);

/*
 * Stop the retention job (between two batches), store what is queued (closing every merge window), then
 * stop the writer. Waits up to `timeout_ms`
 * for PostgreSQL; past it the events still queued are reported in the log (each was already logged as
 * an "audit" line) and dropped, and waiting completions are told the commit failed. No-op if not started.
 */
void cmf_audit_stop(int timeout_ms);

/*
 * Queue `a` (copied; resource cut at DB_AUDIT_RESOURCE_MAX bytes). With `done` NULL the event is merged
 * with identical ones and nobody waits. With `done`, the event is stored alone and done(cls, ok) runs
 * once, from the writer thread, after its batch committed (ok) or failed to (then the event stays
 * queued, as a failure with status 503, and is stored once PostgreSQL is back). Returns 0, or -1 when
 * the queue is full or the writer is not running (then done never runs): the caller answers 503.
 */
int cmf_audit_submit(const struct db_audit *a, void (*done)(void *cls, bool ok), void *cls);

/* Queue `a` and block until it is committed: 0, or -1 (full queue, or the commit failed). */
int cmf_audit_commit(const struct db_audit *a);

/*
 * Commit every event queued before this call, merge windows included, waiting up to `timeout_ms`: so a
 * client that acts and then reads the trail sees its events. 0, or -1 on timeout.
 */
int cmf_audit_flush(int timeout_ms);

/*
 * Record `a` for a request without waiting (merged when identical; see above) and mark the request
 * audited. For refusals, reads and failed writes (cmf/http/dispatch.c); successful writes pass their
 * event to the store, which writes it in the same transaction. 0, or -1 when the queue is full (the
 * event is logged, not stored: the caller answers 503).
 */
int cmf_audit_record(struct cmf_request *req, const struct db_audit *a);


#endif
