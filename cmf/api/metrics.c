/* cmf metrics endpoint: GET /metrics, the Prometheus exposition of cmf/metrics.h, for Prometheus to scrape. */
#include "cmf/api/routes.h"
#include "cmf/http/reply.h"
#include "cmf/metrics.h"

void
cmf_api_metrics(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	struct cmf_app *app = req->app;
	const struct db_sealer *sl;
	char *text;

	/* Switched off (metrics.enabled=false): as if the route did not exist. */
	if (!app->cfg->metrics_enabled) {
		cmf_reply_error(resp, 404, "no such resource: %s", req->path);
		return;
	}
	/*
	 * One hold on the keyring gives both facts at once: loaded or not, and its current DEK term.
	 * Encryptions under that term are not known in memory (db/seal.c keeps only this process's
	 * reservation), so that series is left out (-1).
	 */
	sl = cmf_call_sealer(call);
	text = cmf_metrics_render(sl->keyring != NULL, app->encryption_enabled ? app->key_id : "",
				  sl->keyring != NULL ? crypto_keyring_current_term(sl->keyring) : 0, -1);
	if (text == NULL) {
		cmf_reply_error(resp, 500, "out of memory");
		return;
	}
	cmf_reply_empty(resp, 200); /* drops any earlier body */
	resp->body = text;
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
