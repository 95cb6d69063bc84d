/* cmf replies: the one place that turns results and errors into HTTP responses with CMF's bodies. */
#ifndef CMF_REPLY_H
#define CMF_REPLY_H

#include <jansson.h>

#include "cmf/http/request.h"

/* Reply `status` with `json` serialized (the reference is stolen: decref'd here, even on failure). */
void cmf_reply_json(struct cmf_response *resp, unsigned status, json_t *json);

/*
 * THE error reply: `status` with CMF's body {"errors":[{"message":"..."}]}. The message is for
 * clients: never library error text, never secret values. 503 answers carry Retry-After.
 */
void cmf_reply_error(struct cmf_response *resp, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * The same body with one {"message"} per string of `problems` (borrowed array of valid UTF-8
 * sentences, e.g. cmf/csfle/csfle.c's), so a client fixes all of them in one round trip.
 */
void cmf_reply_problems(struct cmf_response *resp, unsigned status, json_t *problems);

/* 204 without a body. */
void cmf_reply_empty(struct cmf_response *resp, unsigned status);

/*
 * Map a db/ error to its reply (404/409/503/500) with `what` (e.g. "secret 'x'") in the message for
 * NOT_FOUND and CONFLICT; the rest use fixed texts ("database unavailable", "encryption key
 * unavailable", ...).
 */
void cmf_reply_db_error(struct cmf_response *resp, int db_err, const char *what);

#endif
