/* cmf health: /healthz says the process is alive; /readyz says whether it can serve secrets now. */
#include "cmf/reply.h"
#include "cmf/router.h"

void
cmf_api_healthz(struct cmf_request *req, struct cmf_response *resp, const char *const *args)
{
	(void)req;
	(void)args;
	cmf_reply_json(resp, 200, json_pack("{s:s}", "status", "alive"));
}

void
cmf_api_readyz(struct cmf_request *req, struct cmf_response *resp, const char *const *args)
{
	struct cmf_app *app = req->app;
	struct db_conn *c = cmf_app_conn(app);
	struct db_sealer sealer;
	json_t *reasons = json_array(), *warnings = json_array(), *body;
	int db_ok = c != NULL && db_ping(c) == DB_OK;

	(void)args;
	if (!db_ok)
		json_array_append_new(reasons, json_string("database unavailable"));
	cmf_app_sealer_acquire(app, &sealer);
	if (sealer.enabled && sealer.keyring == NULL)
		json_array_append_new(reasons, json_pack("s+", "encryption key unavailable: ",
							 app->key_unavailable_reason != NULL ? app->key_unavailable_reason
											    : "keyring not loaded"));
	cmf_app_sealer_release(app);
	if (!app->encryption_enabled)
		json_array_append_new(warnings, json_string("encryption is DISABLED: secrets are stored in plaintext in "
							    "the database (development only; cannot be changed later)"));
	body = json_pack("{s:s,s:{s:b,s:s},s:o}", "status", json_array_size(reasons) == 0 ? "ready" : "not ready",
			 "encryption", "enabled", app->encryption_enabled, "keyId",
			 app->encryption_enabled ? app->key_id : "", "warnings", warnings);
	if (json_array_size(reasons) > 0) {
		/* CMF's error body, plus the per-check reasons for operators. */
		json_t *errors = json_array();
		size_t i;
		json_t *r;

		json_array_foreach (reasons, i, r)
			json_array_append_new(errors, json_pack("{s:O}", "message", r));
		json_object_set_new(body, "errors", errors);
		cmf_response_header(resp, "Retry-After", "1");
	}
	json_decref(reasons);
	cmf_reply_json(resp, json_object_get(body, "errors") != NULL ? 503 : 200, body);
}
