/* cmf client configurations (GET /environments/{env}/client-configs/{catalog}/{database}): for jobs. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/app.h"
#include "cmf/cache.h"
#include "cmf/csfle/csfle.h"
#include "cmf/log.h"
#include "cmf/api/render.h"
#include "cmf/http/reply.h"
#include "cmf/http/watch.h"
#include "cmf/api/resource.h"
#include "cmf/api/routes.h"

/* Bumped whenever a format's text or a check of the resolution changes, so ETags change with it. */
#define RENDER_VERSION "cmf-render-3"

enum format { FMT_JSON, FMT_PROPERTIES, FMT_FLINK_SQL, FMT_CONNECT };

static const struct {
	const char *name;
	const char *content_type;
} formats[] = {
	[FMT_JSON] = { "json", "application/json" },
	/* Every character outside printable ASCII is \u-escaped, so the file is ASCII (ISO-8859-1 safe). */
	[FMT_PROPERTIES] = { "properties", "text/x-java-properties; charset=ISO-8859-1" },
	[FMT_FLINK_SQL] = { "flink-sql", "text/plain; charset=utf-8" },
	[FMT_CONNECT] = { "connect", "text/x-java-properties; charset=ISO-8859-1" },
};

struct render_ctx {
	struct cmf_response *resp;
	enum format fmt;
	const char *env, *catalog, *database;
};

/* Hand `text` (secret values) to the response; the response body is wiped when freed (cmf/http/daemon.c). */
static void
reply_text(struct cmf_response *resp, const char *content_type, char *text)
{
	cmf_reply_empty(resp, 200); /* drops (wipes) any earlier body */
	resp->body = text;
	resp->status = 200;
	resp->content_type = content_type;
}

/*
 * A database with CSFLE: its CsfleConfig checked against the merged configuration and applied to it
 * (cmf_csfle_apply). 0 with *warnings (new array), or -1 with the reply set (422 names every problem).
 */
static int
csfle_apply(struct render_ctx *rc, const struct db_resolved *res, json_t *kafka, json_t *sr, json_t **warnings)
{
	json_t *problems = json_array();
	int ret = -1;

	*warnings = json_array();
	if (problems == NULL || *warnings == NULL ||
	    (res->csfle_spec != NULL &&
	     cmf_csfle_apply(res->csfle_spec, res->csfle_name, res->csfle_secret, kafka, sr, problems, *warnings) != 0)) {
		/* Fail closed: a half-applied CSFLE configuration could write plaintext. */
		cmf_reply_error(rc->resp, 500, "out of memory");
		goto out;
	}
	if (json_array_size(problems) > 0) {
		cmf_reply_problems(rc->resp, 422, problems);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(*warnings); i++)
		cmf_warn("client configuration %s/%s/%s: %s", rc->env, rc->catalog, rc->database,
			 json_string_value(json_array_get(*warnings, i)));
	ret = 0;
out:
	if (ret != 0) {
		json_decref(*warnings);
		*warnings = NULL;
	}
	json_decref(problems);
	return ret;
}

/* Answer the resolution's outcome `r` (res filled by db_resolve); returns the status answered. */
static unsigned
render(struct render_ctx *rc, int r, const struct db_resolved *res)
{
	struct cmf_response *resp = rc->resp;
	json_t *kafka = NULL, *sr = NULL, *warnings = NULL;
	/* The header line and the warnings (each under 512 bytes); more are cut, the JSON keeps them all. */
	char err[600] = "", comment[4096];
	char *text = NULL;

	if (r == DB_ERR_NOT_FOUND) {
		cmf_reply_error(resp, 404, "%s", res->detail);
		return resp->status;
	}
	if (r == DB_ERR_UNMAPPED) {
		cmf_reply_error(resp, 409, "%s", res->detail);
		return resp->status;
	}
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, "the client configuration");
		return resp->status;
	}
	/* Refusals carry no ETag: a poller must not get a 304 for an answer it was refused. */
	if (res->csfle_name[0] != '\0' && rc->fmt == FMT_FLINK_SQL) {
		cmf_reply_error(resp, 422,
				"database '%s/%s' uses CsfleConfig '%s', and Flink's open-source avro-confluent format does "
				"not run Schema Registry encryption rules (it serializes through its own "
				"ConfluentSchemaRegistryCoder, not Confluent's serializers): its options would write the "
				"tagged fields in plaintext. Use format=properties with Confluent's serializers instead",
				rc->catalog, rc->database, res->csfle_name);
		return resp->status;
	}
	if (res->not_modified) {
		cmf_response_header(resp, "ETag", res->etag);
		cmf_reply_empty(resp, 304);
		return resp->status;
	}
	kafka = cmf_render_merge(res->kafka_config, res->kafka_secret);
	sr = cmf_render_merge(res->sr_config, res->sr_secret);
	if (kafka == NULL || sr == NULL || csfle_apply(rc, res, kafka, sr, &warnings) != 0) {
		json_decref(kafka);
		json_decref(sr);
		if (kafka == NULL || sr == NULL)
			cmf_reply_error(resp, 500, "out of memory");
		return resp->status;
	}
	/* The warnings travel with the configuration, where the job's operator reads it. */
	snprintf(comment, sizeof(comment), "cmf client configuration: environment %s, Kafka database %s/%s%s", rc->env,
		 rc->catalog, rc->database, res->csfle_spec != NULL ? ", CSFLE" : "");
	for (size_t i = 0; i < json_array_size(warnings); i++) {
		size_t len = strlen(comment);

		snprintf(comment + len, sizeof(comment) - len, "\nWARNING: %s",
			 json_string_value(json_array_get(warnings, i)));
	}
	if (rc->fmt == FMT_JSON)
		text = cmf_render_json(kafka, sr, warnings, err, sizeof(err));
	else if (rc->fmt == FMT_PROPERTIES)
		text = cmf_render_properties(kafka, sr, comment, err, sizeof(err));
	else if (rc->fmt == FMT_CONNECT)
		text = cmf_render_connect(sr, res->csfle_spec != NULL, comment, err, sizeof(err));
	else
		text = cmf_render_flink_sql(kafka, sr, err, sizeof(err));
	json_decref(kafka);
	json_decref(sr);
	json_decref(warnings);
	if (text == NULL) {
		cmf_reply_error(resp, strcmp(err, "out of memory") == 0 ? 500 : 422, "%s", err);
		return resp->status;
	}
	reply_text(resp, formats[rc->fmt].content_type, text);
	cmf_response_header(resp, "ETag", res->etag);
	return 200;
}

void
cmf_api_client_config_get(struct cmf_call *call)
{
	struct cmf_request *req = call->req;
	struct cmf_response *resp = call->resp;
	const char *const *args = call->args;
	const char *f = cmf_request_query(req, "format"), *watch = cmf_request_query(req, "watch");
	struct render_ctx rc = { resp, FMT_JSON, args[0], args[1], args[2] };
	/* If-None-Match lists a poller's cached ETags (34 characters each): 4 KiB holds a hundred. */
	char salt[64], inm[4096];
	const struct cmf_cached_snapshot *snap = NULL;
	struct db_resolved res;
	unsigned status;
	bool stale = false;
	unsigned long long epoch;
	long long timeout = CMF_WATCH_TIMEOUT_DEFAULT;
	size_t i;
	int r;

	if (f != NULL) {
		for (i = 0; i < sizeof(formats) / sizeof(formats[0]) && strcmp(f, formats[i].name) != 0; i++)
			;
		if (i == sizeof(formats) / sizeof(formats[0])) {
			cmf_reply_error(resp, 400, "format must be json, properties, flink-sql or connect");
			return;
		}
		rc.fmt = (enum format)i;
	}
	if (watch != NULL && strcmp(watch, "true") != 0 && strcmp(watch, "false") != 0) {
		cmf_reply_error(resp, 400, "watch must be true or false");
		return;
	}
	if (cmf_resource_query_int(req, resp, "timeoutSeconds", 1, CMF_WATCH_TIMEOUT_MAX, CMF_WATCH_TIMEOUT_DEFAULT,
				   &timeout) != 0)
		return;
	if (cmf_resource_path_name(resp, "environment", args[0]) != 0 ||
	    cmf_resource_path_name(resp, "Kafka catalog", args[1]) != 0 ||
	    cmf_resource_path_name(resp, "database", args[2]) != 0)
		return;
	snprintf(salt, sizeof(salt), "%s/%s", RENDER_VERSION, formats[rc.fmt].name);
	cmf_call_resource(call, "client-config/%s/%s/%s", args[0], args[1], args[2]);
	/* Before the snapshot is read: a change after this point wakes the watch below at once. */
	epoch = cmf_watch_epoch();
	r = cmf_cache_snapshot(cmf_call_conn(call), args[0], args[1], args[2], &snap, &stale);
	if (r != DB_OK) {
		cmf_reply_db_error(resp, r, "the client configuration");
		return;
	}
	r = db_resolve(snap->snapshot, cmf_call_sealer(call), args[0], args[1], args[2],
		       cmf_request_header_list(req, "If-None-Match", inm, sizeof(inm)), salt, &res);
	/*
	 * Kept from before PostgreSQL went away (or authenticated so): it may be out of date, so it answers
	 * only "not modified"; anything else waits for the database.
	 */
	if ((stale || req->principal.stale) && !(r == DB_OK && res.not_modified)) {
		db_resolved_clear(&res);
		cmf_cache_snapshot_release(snap);
		cmf_reply_db_error(resp, DB_ERR_UNAVAILABLE, "the client configuration");
		return;
	}
	status = render(&rc, r, &res);
	/* The decrypted values are in the rendered text now (wiped with the response), nowhere else. */
	db_resolved_clear(&res);
	cmf_cache_snapshot_release(snap);
	/* A 200 carries values: it leaves only once its audit event is committed. Others are queued. */
	if (status == 200)
		cmf_call_reply_audited(call);
	/*
	 * A watch whose ETag is current waits for a change (cmf/http/watch.h); anything else, a refusal
	 * included, is answered now. A 304 from what was kept while PostgreSQL is away waits too: a change
	 * made meanwhile reaches it once PostgreSQL answers again.
	 */
	if (status == 304 && watch != NULL && strcmp(watch, "true") == 0 &&
	    cmf_watch_hold(call, (int)timeout, epoch) == CMF_WATCH_FULL) {
		cmf_response_clear(resp); /* its ETag header too */
		cmf_reply_error(resp, 503, "too many watch requests are held (server.maxWatchers); retry later");
	}
}
