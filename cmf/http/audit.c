/* cmf audit: one event per write, decrypted read or refusal — in PostgreSQL and as a JSON log line. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cmf/app.h"
#include "cmf/http/audit.h"
#include "cmf/log.h"
#include "cmf/text.h"

void
cmf_audit_init(struct db_audit *a, const struct cmf_request *req, const char *action, const char *outcome,
	       int status, char *resbuf, size_t reslen, const char *resource_fmt, ...)
{
	va_list ap;

	va_start(ap, resource_fmt);
	vsnprintf(resbuf, reslen, resource_fmt, ap);
	va_end(ap);
	/* Refusals name the raw path, which may hold any bytes: PostgreSQL's text and JSON want UTF-8. */
	cmf_utf8_sanitize(resbuf);
	a->principal = req->principal.name[0] != '\0' ? req->principal.name : "anonymous";
	a->action = action;
	a->resource = resbuf;
	a->outcome = outcome;
	a->status = status;
	a->request_id = req->request_id;
	a->client_address = req->client_addr;
	a->client_cert = req->client_cert;
}

void
cmf_audit_log(const struct db_audit *a)
{
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:s}", "principal", a->principal, "action", a->action,
			      "resource", a->resource, "outcome", a->outcome, "status", a->status, "requestId",
			      a->request_id, "clientAddress", a->client_address, "clientCertificate",
			      a->client_cert);
	char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

	cmf_info("audit %s", text != NULL ? text : "{\"error\":\"cannot format the audit event\"}");
	free(text);
	json_decref(j);
}

void
cmf_audit_record(struct cmf_request *req, const struct db_audit *a)
{
	struct db_conn *c = cmf_app_conn(req->app);
	int r = db_audit_record(c, a);

	/* The log line is written either way: it is the trail of last resort when PostgreSQL is down. */
	cmf_audit_log(a);
	if (r != DB_OK)
		cmf_error("audit event for request %s not stored: %s", a->request_id, db_strerror(r));
	req->audited = true;
}
