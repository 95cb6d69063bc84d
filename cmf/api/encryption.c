/* cmf encryption API (/cmf/api/v1/encryption, admin only): the status, and the on-demand data-key rotation. */
#include <inttypes.h>
#include <string.h>

#include "cmf/app.h"
#include "cmf/log.h"
#include "cmf/http/reply.h"
#include "cmf/api/resource.h"
#include "cmf/api/routes.h"

void
cmf_api_encryption_get(struct cmf_call *call)
{
	struct cmf_app *app = call->req->app;
	struct cmf_sealer_hold hold;
	json_t *st = NULL;
	int r;

	r = db_encryption_status(cmf_call_conn(call), &st);
	if (r != DB_OK) {
		cmf_reply_db_error(call->resp, r, "encryption status");
		return;
	}
	/* What this process holds beside what is stored: a replica that has not loaded a new term shows it. */
	cmf_app_sealer_acquire(app, &hold);
	if (json_object_set_new(st, "loadedTerm", json_integer(crypto_keyring_current_term(hold.sealer.keyring))) != 0 ||
	    json_object_set_new(st, "rotateAfterEncryptions",
				json_integer(app->encryption_enabled ? app->cfg->encryption_dek_rotate_after : 0)) != 0) {
		cmf_app_sealer_release(app, &hold);
		json_decref(st);
		cmf_reply_error(call->resp, 500, "out of memory");
		return;
	}
	cmf_app_sealer_release(app, &hold);
	cmf_reply_json(call->resp, 200, st);
}

/* The body: {"target": "dek"}. 0, or -1 replied. */
static int
rotate_input(struct cmf_call *call)
{
	static const char *const keys[] = { "target", NULL };
	json_t *body = NULL;
	const char *target;
	int r = -1;

	if (cmf_resource_body(call->req, call->resp, &body) != 0)
		return -1;
	if (cmf_resource_object_check(body, "", keys, call->resp) != 0)
		goto out;
	target = json_string_value(json_object_get(body, "target"));
	if (target == NULL || strcmp(target, "dek") != 0) {
		cmf_reply_error(call->resp, 400, "target must be \"dek\": the data key is the only target that can be rotated");
		goto out;
	}
	r = 0;
out:
	json_decref(body);
	return r;
}

void
cmf_api_encryption_rotate(struct cmf_call *call)
{
	struct cmf_app *app = call->req->app;
	char why[512];
	uint32_t term = 0;
	bool created = false;
	int r;

	cmf_call_resource(call, "dek");
	if (rotate_input(call) != 0)
		return;
	if (!app->encryption_enabled) {
		cmf_reply_error(call->resp, 409, "encryption is disabled: there is no data key to rotate");
		return;
	}
	r = cmf_app_dek_rotate(app, cmf_call_conn(call), 0, cmf_call_audit(call, 200, NULL), &term, &created, why,
			       sizeof(why));
	cmf_call_stored(call, r);
	if (r != DB_OK) {
		if (r != DB_ERR_KEY_UNAVAILABLE && r != DB_ERR_UNAVAILABLE)
			cmf_warn("data key rotation failed: %s", why);
		cmf_reply_db_error(call->resp, r, "data key");
		return;
	}
	cmf_call_resource(call, "dek/%" PRIu32, term);
	cmf_reply_json(call->resp, 200, json_pack("{s:s,s:I}", "target", "dek", "term", (json_int_t)term));
}
