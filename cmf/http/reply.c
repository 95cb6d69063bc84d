/* cmf replies: every HTTP answer's body is built here, errors in CMF's {"errors":[{"message"}]} shape. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/log.h"
#include "cmf/http/reply.h"
#include "cmf/metrics.h"
#include "cmf/text.h"
#include "crypto/crypto.h"

/* Sent when even building an error body fails: a fixed string that cannot fail. */
static const char fallback_body[] = "{\"errors\":[{\"message\":\"internal error\"}]}";

/* Drop a body already set: it may hold secret values (a resolution discarded late), so wipe it. */
static void
body_drop(struct cmf_response *resp)
{
	if (resp->body != NULL)
		crypto_freezero(resp->body, strlen(resp->body));
	resp->body = NULL;
}

void
cmf_reply_json(struct cmf_response *resp, unsigned status, json_t *json)
{
	char *text = json != NULL ? json_dumps(json, JSON_COMPACT) : NULL;

	json_decref(json);
	body_drop(resp);
	resp->body = text;
	resp->status = status;
	resp->content_type = "application/json";
	if (text == NULL) {
		cmf_error("%s: cannot serialize a %u reply", __func__, status);
		resp->status = 500;
		resp->body = strdup(fallback_body);
	}
}

/* THE error body: one {"message"} per sentence (already sanitized), in CMF's {"errors":[...]}. */
static void
reply_errors(struct cmf_response *resp, unsigned status, const char *const *msgs, size_t n)
{
	json_t *errors = json_array();

	for (size_t i = 0; errors != NULL && i < n; i++)
		if (json_array_append_new(errors, json_pack("{s:s}", "message", msgs[i])) != 0) {
			json_decref(errors);
			errors = NULL;
		}
	if (status == 503)
		cmf_response_header(resp, "Retry-After", "1");
	cmf_reply_json(resp, status, errors != NULL ? json_pack("{s:o}", "errors", errors) : NULL);
}

void
cmf_reply_error(struct cmf_response *resp, unsigned status, const char *fmt, ...)
{
	/* Client messages are one sentence; 2 KiB holds one quoting three names of 253 characters. */
	char msg[2048];
	const char *one[] = { msg };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cmf_utf8_sanitize(msg);
	reply_errors(resp, status, one, 1);
}

void
cmf_reply_problems(struct cmf_response *resp, unsigned status, json_t *problems)
{
	size_t n = json_array_size(problems), m = 0;
	const char **msgs = calloc(n > 0 ? n : 1, sizeof(*msgs));

	if (msgs == NULL) {
		cmf_reply_json(resp, 500, NULL); /* the fixed "internal error" body */
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (json_is_string(json_array_get(problems, i)))
			msgs[m++] = json_string_value(json_array_get(problems, i));
	if (m == 0)
		cmf_reply_json(resp, 500, NULL); /* an error must say something */
	else
		reply_errors(resp, status, msgs, m);
	free(msgs);
}

void
cmf_reply_empty(struct cmf_response *resp, unsigned status)
{
	body_drop(resp);
	resp->status = status;
}

void
cmf_reply_db_error(struct cmf_response *resp, int db_err, const char *what)
{
	/* What PostgreSQL failed to do for a client (the metrics' error count); refusals are not errors. */
	if (db_err == DB_ERR_UNAVAILABLE || db_err == DB_ERR_INTERNAL || db_err == DB_ERR_BUSY ||
	    db_err == DB_ERR_OUTCOME_UNKNOWN)
		cmf_metrics_add(CMF_M_PG_ERRORS, 1);
	switch (db_err) {
	case DB_ERR_NOT_FOUND:
		cmf_reply_error(resp, 404, "%s not found", what);
		return;
	case DB_ERR_CONFLICT:
		cmf_reply_error(resp, 409, "%s already exists", what);
		return;
	case DB_ERR_UNAVAILABLE:
		cmf_reply_error(resp, 503, "database unavailable");
		return;
	case DB_ERR_BUSY:
		cmf_reply_error(resp, 503, "database busy with concurrent updates; retry");
		return;
	case DB_ERR_KEY_UNAVAILABLE:
		cmf_reply_error(resp, 503, "encryption key unavailable");
		return;
	case DB_ERR_NONCE_BUDGET:
		cmf_reply_error(resp, 503, "the data encryption key reached its usage limit and must be rotated");
		return;
	case DB_ERR_TOO_LARGE:
		cmf_reply_error(resp, 413, "the data of %s is larger than %u bytes once serialized", what,
				(unsigned)CRYPTO_MAX_PLAINTEXT);
		return;
	case DB_ERR_OUTCOME_UNKNOWN:
		cmf_reply_error(resp, 503,
				"the database connection was lost while committing: %s may or may not have been changed; "
				"read it back before retrying",
				what);
		return;
	case DB_ERR_INVALID:
		cmf_reply_error(resp, 400, "a value for %s was refused as invalid", what);
		return;
	case DB_ERR_CORRUPT:
		cmf_reply_error(resp, 500, "stored data for %s failed its integrity check; see the server log", what);
		return;
	case DB_ERR_RETIRED:
		/* Crypto-shredding at work (cmf retire-deks): the key is gone on purpose; nothing can open it. */
		cmf_reply_error(resp, 500,
				"stored data for %s is sealed under a retired data key and can never be decrypted; write "
				"it again (see the server log)",
				what);
		return;
	default:
		cmf_reply_error(resp, 500, "internal error");
		return;
	}
}
