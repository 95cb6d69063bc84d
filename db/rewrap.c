/*
 * db rewrap: every stored ciphertext moved to the newest data-key term (and ciphertext version), online, in
 * bounded batches, one rewrap at a time across all replicas, resumable after a kill at any point.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/internal.h"

/*
 * Rows per transaction: large enough that the per-transaction costs (the lock check, the progress row,
 * COMMIT) stay small beside the rows' own UPDATEs, small enough that a batch holds its row locks only
 * for a few milliseconds and fits well inside database.requestTimeoutSeconds.
 */
#define REWRAP_BATCH 512

/*
 * One rewrap at a time: a session-level advisory lock (beside the initialization lock's 6516070).
 * PostgreSQL frees it when the holder's session ends, so a rewrap killed with -9 leaves no stale claim
 * and the next run starts at once.
 */
#define REWRAP_LOCK "6516071"
/* Held by this session (a reconnect loses it silently), else taken if free: never twice (one unlock frees it). */
static const struct db_statement st_rewrap_hold = {
	"rewrap_hold",
	"SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND "
	"granted AND classid = 0 AND objid = " REWRAP_LOCK " AND objsubid = 1) THEN true ELSE "
	"pg_try_advisory_lock(" REWRAP_LOCK ") END",
	0,
};
static const struct db_statement st_rewrap_unlock = {
	"rewrap_unlock", "SELECT pg_advisory_unlock(" REWRAP_LOCK ")", 0,
};
static const struct db_statement st_rewrap_begin = {
	"rewrap_begin",
	"INSERT INTO cmf_rewrap (id, state, started_by, target_term, total, started_at, updated_at) "
	"VALUES (1, 'running', $1, $2::integer, $3::bigint, now(), now()) ON CONFLICT (id) DO UPDATE SET "
	"state = 'running', started_by = $1, target_term = $2::integer, total = $3::bigint, done = 0, unreadable = 0, "
	"batches = 0, started_at = now(), updated_at = now(), finished_at = NULL, error = NULL",
	3,
};
static const struct db_statement st_rewrap_batch = {
	"rewrap_batch",
	"UPDATE cmf_rewrap SET done = done + $1::bigint, unreadable = unreadable + $2::bigint, batches = batches + 1, "
	"updated_at = now(), state = CASE WHEN $3::boolean THEN 'done' ELSE state END, "
	"finished_at = CASE WHEN $3::boolean THEN now() END WHERE id = 1",
	3,
};
static const struct db_statement st_rewrap_failed = {
	"rewrap_failed",
	"UPDATE cmf_rewrap SET state = 'failed', error = $1, updated_at = now(), finished_at = now() WHERE id = 1",
	1,
};
/* Who holds the rewrap now, from its progress row: for the refusal of a second one. */
static const struct db_statement st_rewrap_row = {
	"rewrap_row",
	"SELECT started_by, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), done, total "
	"FROM cmf_rewrap WHERE id = 1",
	0,
};

struct rewrap_run {
	const char *started_by;
	const struct db_audit *audit;
	uint32_t target;
	long long total;
	struct db_rewrap_progress p;
	void (*progress)(void *cls, const struct db_rewrap_progress *p);
	int (*go_on)(void *cls);
	void *cls;
	char *why;
	size_t whylen;
	bool lost;     /* the lock went to another rewrap (this session lost it) */
	int stopped;   /* go_on's refusal: DB_ERR_KEY_UNAVAILABLE (key revoked) or DB_ERR_INTERNAL (stopping) */
};

/* One boolean-returning statement, run on its own. */
struct bool_stmt {
	const struct db_statement *st;
	bool value;
};

static int
bool_body(struct db_conn *c, void *cls)
{
	struct bool_stmt *b = cls;
	PGresult *res = NULL;
	int r;

	r = db_exec_stmt(c, b->st, NULL, 0, &res);
	b->value = r == DB_OK && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return r;
}

static int
begin_body(struct db_conn *c, void *cls)
{
	struct rewrap_run *t = cls;
	char term_s[16], total_s[24], resource[96];
	struct db_param p[] = { { t->started_by, 0, 0 }, { term_s, 0, 0 }, { total_s, 0, 0 } };
	PGresult *res = NULL;
	int r;

	snprintf(term_s, sizeof(term_s), "%" PRIu32, t->target);
	snprintf(total_s, sizeof(total_s), "%lld", t->total);
	r = db_exec_stmt(c, &st_rewrap_begin, p, 3, &res);
	PQclear(res);
	snprintf(resource, sizeof(resource), "rewrap/term-%" PRIu32 "/rows-%lld", t->target, t->total);
	if (r == DB_OK)
		r = db_audit_insert_as(c, t->audit, "encryption.rewrap.start", "success", resource);
	return r;
}

/* First in each batch: this session still holds the rewrap (taken again after a reconnect if free). */
static int
batch_begin(void *cls, struct db_conn *c)
{
	struct rewrap_run *t = cls;
	PGresult *res = NULL;
	int r;

	/* Between batches: the key may have been revoked, or the process be stopping. */
	if (t->go_on != NULL && (t->stopped = t->go_on(t->cls)) != DB_OK)
		return t->stopped;
	r = db_exec_stmt(c, &st_rewrap_hold, NULL, 0, &res);
	if (r == DB_OK && (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0)) {
		t->lost = true;
		r = DB_ERR_CONFLICT;
	}
	PQclear(res);
	return r;
}

static int
batch_end(void *cls, struct db_conn *c, long long moved, long long unreadable, bool last)
{
	struct rewrap_run *t = cls;
	char moved_s[24], unread_s[24], resource[128];
	struct db_param p[] = { { moved_s, 0, 0 }, { unread_s, 0, 0 }, { last ? "true" : "false", 0, 0 } };
	PGresult *res = NULL;
	int r;

	snprintf(moved_s, sizeof(moved_s), "%lld", moved);
	snprintf(unread_s, sizeof(unread_s), "%lld", unreadable);
	r = db_exec_stmt(c, &st_rewrap_batch, p, 3, &res);
	PQclear(res);
	if (r == DB_OK && last) {
		snprintf(resource, sizeof(resource), "rewrap/term-%" PRIu32 "/rewrapped-%lld/unreadable-%lld", t->target,
			 t->p.done + moved, t->p.unreadable + unreadable);
		r = db_audit_insert_as(c, t->audit, "encryption.rewrap.end", t->p.unreadable + unreadable == 0 ? "success" : "failure",
				resource);
	}
	return r;
}

static void
batch_progress(void *cls, long long moved, long long unreadable)
{
	struct rewrap_run *t = cls;

	t->p.done = moved;
	t->p.unreadable = unreadable;
	if (t->progress != NULL)
		t->progress(t->cls, &t->p);
}

struct failed_tx {
	struct rewrap_run *t;
	const char *error;
};

static int
failed_body(struct db_conn *c, void *cls)
{
	struct failed_tx *f = cls;
	struct db_param p[] = { { f->error, 0, 0 } };
	char resource[96];
	PGresult *res = NULL;
	int r;

	r = db_exec_stmt(c, &st_rewrap_failed, p, 1, &res);
	PQclear(res);
	snprintf(resource, sizeof(resource), "rewrap/term-%" PRIu32 "/rewrapped-%lld", f->t->target, f->t->p.done);
	if (r == DB_OK)
		r = db_audit_insert_as(c, f->t->audit, "encryption.rewrap.end", "failure", resource);
	return r;
}

/* The refusal of a second rewrap names the one running. */
static int
busy_body(struct db_conn *c, void *cls)
{
	struct rewrap_run *t = cls;
	PGresult *res = NULL;
	int r;

	r = db_exec_stmt(c, &st_rewrap_row, NULL, 0, &res);
	if (r == DB_OK && PQntuples(res) == 1)
		snprintf(t->why, t->whylen,
			 "a rewrap is already running (started by %s at %s; %s of %s ciphertexts done): one runs at a "
			 "time across all replicas",
			 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
	else
		snprintf(t->why, t->whylen, "a rewrap is already running: one runs at a time across all replicas");
	PQclear(res);
	return r;
}

int
db_rewrap(struct db_conn *c, const struct db_sealer *sl, const char *started_by, const struct db_audit *audit,
	  void (*progress)(void *cls, const struct db_rewrap_progress *p), int (*go_on)(void *cls), void *cls,
	  struct db_rewrap_progress *out, char *why, size_t whylen)
{
	char scratch[8];
	struct rewrap_run t = {
		.started_by = started_by,
		.audit = audit,
		.progress = progress,
		.go_on = go_on,
		.cls = cls,
		.why = why != NULL ? why : scratch,
		.whylen = why != NULL ? whylen : sizeof(scratch),
	};
	struct db_reseal_opts o = {
		.batch = REWRAP_BATCH, .begin = batch_begin, .end = batch_end, .progress = batch_progress, .cls = &t,
	};
	struct bool_stmt lock = { &st_rewrap_hold, false }, unlock = { &st_rewrap_unlock, false };
	struct db_reseal_result res;
	int r;

	memset(out, 0, sizeof(*out));
	t.why[0] = '\0';
	if (!sl->enabled) {
		snprintf(t.why, t.whylen, "encryption is disabled: there is nothing to rewrap");
		return DB_ERR_MODE_MISMATCH;
	}
	if (sl->keyring == NULL) {
		snprintf(t.why, t.whylen, "the encryption key is unavailable: nothing can be rewrapped");
		return DB_ERR_KEY_UNAVAILABLE;
	}
	t.target = o.below_term = crypto_keyring_current_term(sl->keyring);
	r = db_tx_run(c, DB_TX_AUTOCOMMIT, bool_body, &lock);
	if (r != DB_OK)
		goto out;
	if (!lock.value) {
		(void)db_tx_run(c, DB_TX_READ, busy_body, &t);
		return DB_ERR_CONFLICT;
	}
	if ((r = db_reseal_count(c, t.target, &t.total)) != DB_OK || (r = db_tx_run(c, DB_TX_WRITE, begin_body, &t)) != DB_OK)
		goto out_unlock;
	t.p.total = t.total;
	t.p.target = t.target;
	if (progress != NULL)
		progress(cls, &t.p);
	crypto_log_info("rewrap started by %s: %lld ciphertext(s) to move to data key term %" PRIu32, started_by, t.total,
			t.target);
	r = db_reseal_run(c, sl, &o, &res);
	if (r != DB_OK) {
		struct failed_tx f = { &t, t.lost ? "another rewrap took over"
					   : t.stopped == DB_ERR_KEY_UNAVAILABLE ? "the encryption key became unavailable"
										  : db_strerror(r) };

		if (t.lost)
			(void)db_tx_run(c, DB_TX_READ, busy_body, &t);
		else if (t.stopped == DB_ERR_INTERNAL)
			/* The process is stopping: left "running" without its lock, the status says interrupted. */
			snprintf(t.why, t.whylen, "the rewrap was interrupted by the process stopping; run it again to go on");
		else
			(void)db_tx_run(c, DB_TX_WRITE, failed_body, &f);
		goto out_unlock;
	}
	t.p.done = res.resealed;
	t.p.unreadable = res.unreadable;
	crypto_log_info("rewrap done: %lld ciphertext(s) moved to data key term %" PRIu32 ", %lld left that do not open",
			res.resealed, t.target, res.unreadable);
out_unlock:
	(void)db_tx_run(c, DB_TX_AUTOCOMMIT, bool_body, &unlock);
out:
	if (r != DB_OK && t.why[0] == '\0')
		snprintf(t.why, t.whylen, "the rewrap stopped: %s (what was rewrapped stays so; run it again to go on)",
			 db_strerror(r));
	*out = t.p;
	out->target = t.target;
	return r;
}
