/* cmf audit: building, logging and recording audit events for requests (stored by db/, never values). */
#ifndef CMF_AUDIT_H
#define CMF_AUDIT_H

#include "cmf/http/request.h"
#include "db/db.h"

/*
 * Fill `a` for `req` (principal, request id, client address and certificate are borrowed from req).
 * `resource` is copied into `resbuf` (size reslen) so callers can build it on the stack.
 */
void cmf_audit_init(struct db_audit *a, const struct cmf_request *req, const char *action, const char *outcome,
		    int status, char *resbuf, size_t reslen, const char *resource_fmt, ...)
	__attribute__((format(printf, 8, 9)));

/* The structured log line: "audit {json}" with the event's fields. */
void cmf_audit_log(const struct db_audit *a);

/*
 * Record `a` in a transaction of its own and log it, then mark the request audited. For refusals, reads
 * and failed writes (cmf/http/dispatch.c); successful writes pass their event to the store, which
 * writes it in the same transaction.
 */
void cmf_audit_record(struct cmf_request *req, const struct db_audit *a);

#endif
