/* cmf audit API (/cmf/api/v1/audit-events, admin only): the trail, newest first, filtered and paged. */
#include <stdlib.h>

#include "cmf/app.h"
#include "cmf/config.h"
#include "cmf/http/audit.h"
#include "cmf/http/reply.h"
#include "cmf/api/resource.h"
#include "cmf/api/routes.h"

/* How long a read of the trail waits for the events queued before it (a few batches at most). */
#define AUDIT_FLUSH_MS 5000

void
cmf_api_audit_list(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	static const char *const times[] = { "since", "until" };
	const char *filters[] = { cmf_request_query(req, "principal"), cmf_request_query(req, "resource"),
				  cmf_request_query(req, "since"), cmf_request_query(req, "until") };
	long long page, total = 0;
	json_t *items = NULL, *body, *meta;
	char oldest[40];
	int size, r;

	(void)args;
	if (cmf_resource_page(req, resp, &page, &size) != 0)
		return;
	for (size_t i = 0; i < 2; i++) {
		const char *v = cmf_request_query(req, times[i]);

		if (v != NULL && cmf_resource_time(v, NULL) != 0) {
			cmf_reply_error(resp, 400, "%s must be an RFC 3339 UTC time such as 2026-11-26T00:00:00Z", times[i]);
			return;
		}
	}
	/* Everything queued before this read (open merge windows too) is committed first: act, then read, see. */
	if (cmf_audit_flush(AUDIT_FLUSH_MS) != 0) {
		cmf_reply_error(resp, 503, "the audit trail cannot be brought up to date now; try again");
		return;
	}
	r = db_resource_list(cmf_call_conn(call), &db_kind_audit_event, NULL, filters, page * size, size, &items, &total);
	if (r == DB_OK)
		r = db_audit_oldest(cmf_call_conn(call), oldest, sizeof(oldest));
	if (r != DB_OK) {
		json_decref(items);
		cmf_reply_db_error(resp, r, "audit events");
		return;
	}
	/*
	 * How far back the trail goes, whatever the filters: the oldest event kept (null when none) and the
	 * retention in force (0: every event is kept), so a reader can tell "nothing happened" from "pruned".
	 */
	body = cmf_resource_page_json(page, size, total, items);
	meta = json_object_get(body, "metadata");
	if (meta == NULL ||
	    json_object_set_new(meta, "oldestTime", oldest[0] != '\0' ? json_string(oldest) : json_null()) != 0 ||
	    json_object_set_new(meta, "retentionDays", json_integer(req->app->cfg->audit_retention_days)) != 0) {
		json_decref(body);
		cmf_reply_error(resp, 500, "out of memory");
		return;
	}
	cmf_reply_json(resp, 200, body);
}
