/*
 * cmf cache: what every token check and every resolution reads, held in memory and kept current by
 * PostgreSQL's change notifications, so that the hot path asks PostgreSQL nothing.
 *
 * Correctness rests on four rules:
 *  - every table read here has a trigger that notifies at commit (migration 5), and one listening
 *    session per process (its own thread) empties the cache of that table when told;
 *  - the listener proves it is alive (a heartbeat every second, answered within 2 s); while it is not,
 *    nothing is cached (every call reads PostgreSQL) and on its return the order is LISTEN, empty
 *    everything (the full resynchronisation: entries are read again on demand), then cache again;
 *    every 60 s everything is emptied anyway, as a backstop;
 *  - a process empties the cache itself after each write it makes, before answering it, so a client
 *    that writes and then reads on the same process never sees the old state;
 *  - a value read from PostgreSQL is kept only if no emptying happened since the read began (a
 *    generation number, taken before the read), so a read that raced a change never installs the old
 *    state.
 * Snapshots hold secret values only as stored (sealed); tokens only as the hash of their secret part.
 */
#ifndef CMF_CACHE_H
#define CMF_CACHE_H

#include <stdbool.h>

#include "cmf/app.h"
#include "db/db.h"

/*
 * Start the listener thread when cache.enabled (it connects to database.listenUrl, else database.url);
 * caching begins once it listens. 0, or -1 (logged) when the thread cannot start.
 */
int cmf_cache_start(struct cmf_app *app);

/* Stop and join the listener; the cache is emptied and stays off. No-op when not started. */
void cmf_cache_stop(void);

/* Empty every table now (the key is revoked); tokens are reloaded whole by the listener right after. */
void cmf_cache_invalidate(void);

/*
 * After a write of this process, before it is answered: empty the resolution snapshots and resource rows;
 * when `tokens_too` (a token or a role binding was written), reload every token and every role binding
 * through `c` and swap them in (emptied instead if that fails).
 */
void cmf_cache_invalidate_write(struct db_conn *c, bool tokens_too);

/*
 * Have `fn` called after every change the cache takes in: an emptying (a notification, a write of this
 * process, a resynchronisation, key revocation, the listener lost or back) and every reload of the tokens
 * or role bindings, once what changed is visible to lookups. One subscriber (the watch requests,
 * cmf/http/watch.c); NULL removes it. `fn` runs on the thread that made the change, so it must only
 * signal, never call back into the cache. Set before serving.
 */
void cmf_cache_on_change(void (*fn)(void));

/* Whether entries are being cached (the listener is live). */
bool cmf_cache_live(void);

/* A token as looked up (a held, immutable entry). */
struct cmf_cached_token {
	const struct db_token *token;
	bool revoked;
};

/*
 * The token with public id `id` (16 hex digits) from memory, else from PostgreSQL through `c` (then kept).
 * The listener keeps every token in memory (loaded whole, swapped in on each change), so an id not in
 * memory is unknown but for a token created elsewhere a moment ago. Its lookups are rate-limited: an id
 * found absent is answered absent for a second without asking again, and at most
 * CMF_CACHE_TOKEN_MISSES_PER_SECOND ids are looked up per second while caching (a flood of made-up ids
 * must not become a flood of queries): past that, DB_ERR_NOT_FOUND while every token is in memory, and
 * DB_ERR_BUSY in the moment after a token write of this process, before the reload. DB_ERR_NOT_FOUND when no token has this id (revoked ones do: see `revoked`). On DB_OK *out
 * is held: release it with cmf_cache_token_release.
 *
 * While PostgreSQL is away (cmf_ready_database false) and the listener with it, the tokens kept from
 * before answer without asking: an id they do not hold is DB_ERR_NOT_FOUND (a refusal needs no database),
 * one they hold comes with *stale true, good only for an answer that discloses nothing new (a 304). Every
 * other DB_OK sets *stale false.
 */
#define CMF_CACHE_TOKEN_MISSES_PER_SECOND 500
int cmf_cache_token(struct db_conn *c, const char *id, const struct cmf_cached_token **out, bool *stale);
void cmf_cache_token_release(const struct cmf_cached_token *t);

/*
 * The role binding of `principal` ("cert:<name>"): from the set in memory (every binding, loaded whole by
 * the listener and swapped in on each change, like the tokens), else from PostgreSQL through `c` (while not
 * listening, or before the first load). DB_OK with *out a copy (free with db_role_binding_free);
 * DB_ERR_NOT_FOUND when it has none; another DB_ERR_* when PostgreSQL could not be asked. Never answered
 * from what was kept while PostgreSQL is away: a binding grants, and may have been deleted meanwhile.
 */
int cmf_cache_binding(struct db_conn *c, const char *principal, struct db_role_binding **out);

/* A resolution snapshot as read (a held, immutable entry). */
struct cmf_cached_snapshot {
	const struct db_snapshot *snapshot;
};

/*
 * The resolution snapshot of (env, catalog, database) from memory, else read through `c` (then kept).
 * On DB_OK *out is held (use it, then cmf_cache_snapshot_release); else a db_snapshot_read error.
 * While PostgreSQL is away (as for tokens) the snapshot kept from before comes with *stale true: good for
 * a 304 only (its ETag may be out of date; its values must not be served). Otherwise *stale is false.
 */
int cmf_cache_snapshot(struct db_conn *c, const char *env, const char *catalog, const char *database,
		       const struct cmf_cached_snapshot **out, bool *stale);
void cmf_cache_snapshot_release(const struct cmf_cached_snapshot *s);

/*
 * GET of one resource: its row from memory, else fetched through `c` (then kept), decoded with `sl` —
 * the same answers as db_resource_get (db/db.h), which answers for a missing row (it says what is missing).
 * Sealed values stay sealed in memory and are opened per call.
 */
int cmf_cache_resource_get(struct db_conn *c, const struct db_kind *k, const struct db_sealer *sl, const char *const *keys,
			   json_t **out, enum db_missing *missing);

#endif
