/* cmf health: /healthz says the process is alive; /readyz says whether it can serve secrets now. */
#include "cmf/http/reply.h"
#include "cmf/api/routes.h"
#include "cmf/ready.h"
#include "cmf/text.h"

void
cmf_api_healthz(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	(void)req;
	(void)args;
	cmf_reply_json(resp, 200, json_pack("{s:s}", "status", "alive"));
}

void
cmf_api_readyz(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	struct cmf_app *app = req->app;
	json_t *errors = json_array(), *warnings = json_array(), *body;
	char reason[600];
	bool db_ok, key_ok = true;

	(void)args;
	/*
	 * Readiness follows the checks themselves, never whether a message could be built. The database's
	 * state comes from what the process last saw (cmf/ready.c): a probe never waits on PostgreSQL.
	 */
	db_ok = cmf_ready_database();
	if (!db_ok)
		json_array_append_new(errors, json_pack("{s:s}", "message", "database unavailable"));
	if (app->encryption_enabled && !cmf_app_keyring_loaded(app, reason, sizeof(reason))) {
		json_t *e;

		key_ok = false;
		/* The reason quotes a file path: keep it valid UTF-8 for jansson. */
		cmf_utf8_sanitize(reason);
		e = json_pack("{s:s+}", "message", "encryption key unavailable: ", reason);
		json_array_append_new(errors, e != NULL ? e : json_pack("{s:s}", "message", "encryption key unavailable"));
	}
	if (!app->encryption_enabled)
		json_array_append_new(warnings, json_string("encryption is DISABLED: secrets are stored in plaintext in "
							    "the database (development only; cannot be changed later)"));
	body = json_pack("{s:s,s:{s:b,s:s},s:o}", "status", db_ok && key_ok ? "ready" : "not ready", "encryption",
			 "enabled", app->encryption_enabled, "keyId", app->encryption_enabled ? app->key_id : "",
			 "warnings", warnings);
	if (db_ok && key_ok) {
		json_decref(errors);
		cmf_reply_json(resp, 200, body);
		return;
	}
	if (body == NULL) {
		json_decref(errors);
		cmf_reply_error(resp, 503, "not ready");
		return;
	}
	/* CMF's error body, one message per failing check, beside the status for operators. */
	json_object_set_new(body, "errors", errors);
	cmf_response_header(resp, "Retry-After", "1");
	cmf_reply_json(resp, 503, body);
}
