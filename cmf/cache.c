/* cmf cache: tokens and resolution snapshots in memory, emptied on PostgreSQL's change notifications. */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmf/cache.h"
#include "cmf/log.h"
#include "crypto/crypto.h"
#include "cmf/metrics.h"
#include "cmf/ready.h"

/* Chains per table; a table holding more entries than its cap is emptied (a bound, not an LRU). */
#define CACHE_BUCKETS 4096
#define TOKENS_MAX 65536
#define SNAPSHOTS_MAX 16384
#define ROWS_MAX 16384
/* An id found absent is answered absent this long before PostgreSQL is asked again. */
#define ABSENT_NS 1000000000LL
/* The listener: heartbeat period and deadline, and the backstop full resynchronisation. */
#define BEAT_EVERY_MS 1000
#define BEAT_DEADLINE_MS 2000
#define RESYNC_EVERY_NS (60 * 1000000000LL)

struct entry {
	struct entry *next;
	uint64_t hash;
	atomic_int refs; /* the table's reference (while in it) and each holder's */
	long long made_ns;
	union {
		struct cmf_cached_token tok;
		struct cmf_cached_snapshot snap;
	} pub;
	struct db_token *token;
	struct db_snapshot *snapshot;
	struct db_row *row;
	size_t keylen;
	char key[];
};

struct table {
	enum cmf_metric hits, misses, invalidations;
	enum cmf_gauge entries;
	pthread_rwlock_t lock;
	struct entry *buckets[CACHE_BUCKETS];
	size_t count, max;
	atomic_ullong gen; /* bumped (under the write lock) by every emptying */
};

static struct table tokens = { CMF_M_TOKEN_CACHE_HITS, CMF_M_TOKEN_CACHE_MISSES, CMF_M_TOKEN_CACHE_INVALIDATIONS,
			       CMF_G_TOKEN_CACHE_ENTRIES, .lock = PTHREAD_RWLOCK_INITIALIZER, .max = TOKENS_MAX };
static struct table snapshots = { CMF_M_SNAPSHOT_CACHE_HITS, CMF_M_SNAPSHOT_CACHE_MISSES,
				  CMF_M_SNAPSHOT_CACHE_INVALIDATIONS, CMF_G_SNAPSHOT_CACHE_ENTRIES,
				  .lock = PTHREAD_RWLOCK_INITIALIZER, .max = SNAPSHOTS_MAX };
/* Rows of resources as GET reads them (never tokens): every resource table's change empties it. */
static struct table rows = { CMF_M_ROW_CACHE_HITS, CMF_M_ROW_CACHE_MISSES, CMF_M_ROW_CACHE_INVALIDATIONS,
			     CMF_G_ROW_CACHE_ENTRIES, .lock = PTHREAD_RWLOCK_INITIALIZER, .max = ROWS_MAX };
static atomic_bool live;
/*
 * The token table holds every token (loaded whole by the listener's thread): an id missing from it is
 * unknown but for one created elsewhere a moment ago, so a miss may answer "no such token" once the
 * lookup budget is spent, and real tokens never depend on that budget.
 */
static atomic_bool tokens_complete;
static atomic_bool tokens_reload_wanted;

/* Token-miss budget: a token bucket refilled at CMF_CACHE_TOKEN_MISSES_PER_SECOND. */
static pthread_mutex_t budget_mu = PTHREAD_MUTEX_INITIALIZER;
static double budget = CMF_CACHE_TOKEN_MISSES_PER_SECOND;
static long long budget_ns;

/*
 * Role bindings: few (one per certificate principal), so every one is kept in one immutable set, sorted by
 * principal, loaded whole and swapped in like the tokens (same listener, notification and generation rules).
 * NULL while not loaded: then a lookup asks PostgreSQL. Readers hold the set they found.
 */
struct binding_set {
	atomic_int refs;
	size_t n;
	struct db_role_binding **items;
};
static pthread_mutex_t bindings_mu = PTHREAD_MUTEX_INITIALIZER;
static struct binding_set *bindings_now;
static atomic_ullong bindings_gen; /* bumped (under bindings_mu) by every emptying */
static atomic_bool bindings_reload_wanted;

static struct {
	pthread_t thread;
	bool started;
	atomic_bool stop;
	const char *url;      /* the LISTEN session's */
	const char *main_url; /* the reloads' (database.url: may go through a pooler) */
	struct cmf_app *app;  /* whose keyring a new data-key term reloads */
} lis;

/* cmf_cache_on_change's subscriber. */
static _Atomic(void (*)(void)) changed_fn;

void
cmf_cache_on_change(void (*fn)(void))
{
	atomic_store(&changed_fn, fn);
}

static void
changed(void)
{
	void (*fn)(void) = atomic_load(&changed_fn);

	if (fn != NULL)
		fn();
}

static uint64_t
key_hash(const char *key, size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
	return h;
}

static void
entry_put(struct entry *e)
{
	if (e == NULL || atomic_fetch_sub(&e->refs, 1) != 1)
		return;
	db_token_free(e->token);
	db_snapshot_free(e->snapshot);
	db_row_free(e->row);
	free(e);
}

static struct entry *
entry_new(const char *key, size_t keylen)
{
	struct entry *e = calloc(1, sizeof(*e) + keylen);

	if (e == NULL)
		return NULL;
	memcpy(e->key, key, keylen);
	e->keylen = keylen;
	e->hash = key_hash(key, keylen);
	e->made_ns = crypto_mono_ns();
	atomic_init(&e->refs, 1);
	return e;
}

static struct entry *
table_get(struct table *t, const char *key, size_t keylen)
{
	uint64_t h = key_hash(key, keylen);
	struct entry *e;

	pthread_rwlock_rdlock(&t->lock);
	for (e = t->buckets[h % CACHE_BUCKETS]; e != NULL; e = e->next)
		if (e->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
			break;
	if (e != NULL)
		atomic_fetch_add(&e->refs, 1);
	pthread_rwlock_unlock(&t->lock);
	cmf_metrics_add(e != NULL ? t->hits : t->misses, 1);
	return e;
}

/* Empty `t` (write lock held by the caller). */
static void
table_clear_locked(struct table *t)
{
	atomic_fetch_add(&t->gen, 1);
	if (t == &tokens)
		atomic_store(&tokens_complete, false);
	for (size_t i = 0; i < CACHE_BUCKETS; i++) {
		struct entry *e = t->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			entry_put(e);
		}
		t->buckets[i] = NULL;
	}
	t->count = 0;
	cmf_metrics_add(t->invalidations, 1);
	cmf_metrics_gauge_set(t->entries, 0);
}

static void
table_clear(struct table *t)
{
	pthread_rwlock_wrlock(&t->lock);
	table_clear_locked(t);
	pthread_rwlock_unlock(&t->lock);
}

/*
 * Keep `e` (read when the table's generation was `gen`) unless the table was emptied since, or caching
 * is off: then the reader uses it once and it is gone.
 */
static void
table_put(struct table *t, struct entry *e, unsigned long long gen)
{
	struct entry **pp;

	pthread_rwlock_wrlock(&t->lock);
	if (!atomic_load(&live) || atomic_load(&t->gen) != gen)
		goto out;
	if (t->count >= t->max) {
		/* An id found absent is not worth the tokens that exist (nor a reload): it is just not kept. */
		if (t == &tokens && e->token == NULL)
			goto out;
		table_clear_locked(t); /* bounded memory; a new generation, so `e` is not kept either */
	}
	if (atomic_load(&t->gen) != gen)
		goto out;
	for (pp = &t->buckets[e->hash % CACHE_BUCKETS]; *pp != NULL; pp = &(*pp)->next) {
		struct entry *old = *pp;

		if (old->hash == e->hash && old->keylen == e->keylen && memcmp(old->key, e->key, e->keylen) == 0) {
			*pp = old->next;
			entry_put(old);
			t->count--;
			break;
		}
	}
	atomic_fetch_add(&e->refs, 1);
	e->next = t->buckets[e->hash % CACHE_BUCKETS];
	t->buckets[e->hash % CACHE_BUCKETS] = e;
	t->count++;
	cmf_metrics_gauge_set(t->entries, (double)t->count);
out:
	pthread_rwlock_unlock(&t->lock);
}

static void
binding_set_put(struct binding_set *bs)
{
	if (bs == NULL || atomic_fetch_sub(&bs->refs, 1) != 1)
		return;
	for (size_t i = 0; i < bs->n; i++)
		db_role_binding_free(bs->items[i]);
	free(bs->items);
	free(bs);
}

/* Forget the bindings: lookups ask PostgreSQL until a reload installs them again. */
static void
bindings_clear(void)
{
	struct binding_set *old;

	pthread_mutex_lock(&bindings_mu);
	atomic_fetch_add(&bindings_gen, 1);
	old = bindings_now;
	bindings_now = NULL;
	pthread_mutex_unlock(&bindings_mu);
	binding_set_put(old);
}

void
cmf_cache_invalidate(void)
{
	bindings_clear();
	atomic_store(&bindings_reload_wanted, true);
	table_clear(&tokens);
	atomic_store(&tokens_reload_wanted, true);
	table_clear(&snapshots);
	table_clear(&rows);
	changed();
}

static bool tokens_reload(struct db_conn *c);
static bool bindings_reload(struct db_conn *c);

void
cmf_cache_invalidate_write(struct db_conn *c, bool tokens_too)
{
	/*
	 * Tokens are reloaded whole before the write is answered, rather than emptied: a token created or
	 * revoked here is right at once, and real tokens never wait on the lookup budget meanwhile. If the
	 * reload fails they are emptied (looked up one by one until the listener reloads them).
	 */
	bool reloaded = false;

	for (int i = 0; tokens_too && !reloaded && i < 3 && atomic_load(&live) && c != NULL; i++)
		reloaded = tokens_reload(c);
	if (tokens_too && !reloaded) {
		table_clear(&tokens);
		atomic_store(&tokens_reload_wanted, true);
	}
	/* Role bindings the same way: a binding deleted here refuses its principal's very next request. */
	reloaded = false;
	for (int i = 0; tokens_too && !reloaded && i < 3 && atomic_load(&live) && c != NULL; i++)
		reloaded = bindings_reload(c);
	if (tokens_too && !reloaded) {
		bindings_clear();
		atomic_store(&bindings_reload_wanted, true);
	}
	table_clear(&snapshots);
	table_clear(&rows);
	changed();
}

bool
cmf_cache_live(void)
{
	return atomic_load(&live);
}

/*
 * Tokens and snapshots as they were when the listener was lost, kept (no longer filled) for the answers
 * that need no database while PostgreSQL is away: refusals and 304s (cmf_cache_token, cmf_cache_snapshot).
 * Own writes and key revocation still empty them; the listener's return empties them before caching.
 */
static atomic_bool stale_kept;
static _Atomic long long stale_since_ns; /* when the listener was lost */

/*
 * Whether the kept tables may answer: the listener is lost and PostgreSQL is not answering either, and
 * has not answered since the listener was lost (allowing the heartbeat's deadline, within which calls
 * still got through). Once it has, what was kept may be out of date (a listener down while the database
 * serves): it is dropped for good, and every answer waits for the database again.
 */
static bool
stale_usable(bool caching)
{
	long long answered, unavailable;

	if (caching || !atomic_load(&stale_kept))
		return false;
	db_health(&answered, &unavailable);
	if (answered > atomic_load(&stale_since_ns) + BEAT_DEADLINE_MS * 1000000LL) {
		if (atomic_exchange(&stale_kept, false)) {
			table_clear(&tokens);
			table_clear(&snapshots);
		}
		return false;
	}
	return !cmf_ready_database();
}

/* Caching on or off; off keeps only what stale_usable may answer, so nothing else outlives the listener. */
static void
set_live(bool on)
{
	if (!on) {
		atomic_store(&live, false);
		cmf_metrics_gauge_set(CMF_G_CACHE_ENABLED, 0);
		cmf_metrics_gauge_set(CMF_G_LISTENER_UP, 0);
		table_clear(&rows);
		bindings_clear(); /* never answered from memory while not listening: a binding grants, it never refuses */
		atomic_store(&stale_since_ns, crypto_mono_ns());
		atomic_store(&stale_kept, true);
		changed(); /* no notification comes while it is lost: whoever waits for one must know */
		return;
	}
	cmf_cache_invalidate();
	atomic_store(&stale_kept, false);
	atomic_store(&live, true);
	cmf_metrics_gauge_set(CMF_G_CACHE_ENABLED, 1);
	cmf_metrics_gauge_set(CMF_G_LISTENER_UP, 1);
}

/* One more lookup of a token not in memory, if the budget allows. */
static bool
budget_take(void)
{
	long long now = crypto_mono_ns();
	bool ok;

	pthread_mutex_lock(&budget_mu);
	budget += (double)(now - budget_ns) / 1e9 * CMF_CACHE_TOKEN_MISSES_PER_SECOND;
	if (budget > CMF_CACHE_TOKEN_MISSES_PER_SECOND)
		budget = CMF_CACHE_TOKEN_MISSES_PER_SECOND;
	budget_ns = now;
	ok = budget >= 1.0;
	if (ok)
		budget -= 1.0;
	pthread_mutex_unlock(&budget_mu);
	return ok;
}

int
cmf_cache_token(struct db_conn *c, const char *id, const struct cmf_cached_token **out, bool *stale)
{
	size_t len = strlen(id);
	struct entry *e = NULL;
	unsigned long long gen;
	bool revoked = false;
	bool caching = atomic_load(&live);
	int r;

	*out = NULL;
	*stale = false;
	if (stale_usable(caching)) {
		e = table_get(&tokens, id, len);
		if (e != NULL && e->token != NULL) {
			*out = &e->pub.tok;
			*stale = true;
			return DB_OK;
		}
		/* Known absent, or not among every token there was: a refusal needs no database. */
		r = e != NULL || atomic_load(&tokens_complete) ? DB_ERR_NOT_FOUND : DB_ERR_UNAVAILABLE;
		entry_put(e);
		return r;
	}
	if (caching && (e = table_get(&tokens, id, len)) != NULL) {
		if (e->token != NULL) {
			*out = &e->pub.tok;
			return DB_OK;
		}
		r = crypto_mono_ns() - e->made_ns < ABSENT_NS ? DB_ERR_NOT_FOUND : DB_OK;
		entry_put(e); /* absent a while ago: ask again */
		e = NULL;
		if (r != DB_OK)
			return r;
	}
	if (caching && !budget_take())
		return atomic_load(&tokens_complete) ? DB_ERR_NOT_FOUND : DB_ERR_BUSY;
	/* PostgreSQL known away: a lookup would only wait out its deadline; every token is in memory. */
	if (caching && atomic_load(&tokens_complete) && !cmf_ready_database())
		return DB_ERR_NOT_FOUND;
	gen = atomic_load(&tokens.gen);
	e = entry_new(id, len);
	if (e == NULL)
		return DB_ERR_ALLOC;
	r = db_token_lookup(c, id, &e->token, &revoked);
	if (r != DB_OK && r != DB_ERR_NOT_FOUND) {
		entry_put(e);
		return r;
	}
	e->pub.tok.token = e->token;
	e->pub.tok.revoked = revoked;
	if (caching)
		table_put(&tokens, e, gen);
	if (r != DB_OK) {
		entry_put(e);
		return r;
	}
	*out = &e->pub.tok;
	return DB_OK;
}

static struct entry *
entry_of(const void *pub)
{
	return (struct entry *)(void *)((char *)(uintptr_t)pub - offsetof(struct entry, pub));
}

void
cmf_cache_token_release(const struct cmf_cached_token *t)
{
	if (t != NULL)
		entry_put(entry_of(t));
}

int
cmf_cache_snapshot(struct db_conn *c, const char *env, const char *catalog, const char *database,
		   const struct cmf_cached_snapshot **out, bool *stale)
{
	/* Names are path segments: NUL-separated, the key is unambiguous. */
	size_t le = strlen(env), lc = strlen(catalog), ld = strlen(database), len = le + lc + ld + 2;
	char stack[800], *key = len <= sizeof(stack) ? stack : malloc(len);
	struct entry *e = NULL;
	unsigned long long gen;
	bool caching = atomic_load(&live);
	int r = DB_OK;

	*out = NULL;
	if (key == NULL)
		return DB_ERR_ALLOC;
	memcpy(key, env, le + 1);
	memcpy(key + le + 1, catalog, lc + 1);
	memcpy(key + le + lc + 2, database, ld);
	*stale = false;
	if (stale_usable(caching)) {
		e = table_get(&snapshots, key, len);
		*stale = e != NULL;
		r = e != NULL ? DB_OK : DB_ERR_UNAVAILABLE;
		goto out;
	}
	if (caching && (e = table_get(&snapshots, key, len)) != NULL)
		goto out;
	gen = atomic_load(&snapshots.gen);
	e = entry_new(key, len);
	if (e == NULL) {
		r = DB_ERR_ALLOC;
		goto out;
	}
	r = db_snapshot_read(c, env, catalog, database, &e->snapshot);
	if (r != DB_OK) {
		entry_put(e);
		e = NULL;
		goto out;
	}
	e->pub.snap.snapshot = e->snapshot;
	if (caching)
		table_put(&snapshots, e, gen);
out:
	if (key != stack)
		free(key);
	if (e != NULL)
		*out = &e->pub.snap;
	return r;
}

void
cmf_cache_snapshot_release(const struct cmf_cached_snapshot *s)
{
	if (s != NULL)
		entry_put(entry_of(s));
}

int
cmf_cache_resource_get(struct db_conn *c, const struct db_kind *k, const struct db_sealer *sl, const char *const *keys,
		       json_t **out, enum db_missing *missing)
{
	/* The kind's address, then its keys, NUL-separated: one key per row of one kind. */
	size_t l0 = strlen(keys[0]), l1 = keys[1] != NULL ? strlen(keys[1]) : 0, len = sizeof(k) + l0 + 1 + l1;
	char stack[800], *key = len <= sizeof(stack) ? stack : malloc(len);
	struct entry *e = NULL;
	unsigned long long gen;
	bool caching = atomic_load(&live);
	int r;

	*out = NULL;
	if (missing != NULL)
		*missing = DB_MISSING_NONE;
	if (key == NULL)
		return DB_ERR_ALLOC;
	memcpy(key, &k, sizeof(k));
	memcpy(key + sizeof(k), keys[0], l0 + 1);
	if (l1 > 0)
		memcpy(key + sizeof(k) + l0 + 1, keys[1], l1);
	if (!caching || (e = table_get(&rows, key, len)) == NULL) {
		gen = atomic_load(&rows.gen);
		e = entry_new(key, len);
		r = e == NULL ? DB_ERR_ALLOC : db_resource_fetch(c, k, keys, &e->row);
		if (r != DB_OK) {
			entry_put(e);
			e = NULL;
			if (key != stack)
				free(key);
			/* A missing row: the store says which of row and parent is missing (not cached). */
			return r == DB_ERR_NOT_FOUND ? db_resource_get(c, k, sl, keys, out, missing) : r;
		}
		if (caching)
			table_put(&rows, e, gen);
	}
	if (key != stack)
		free(key);
	r = db_row_decode(e->row, k, sl, out);
	entry_put(e);
	return r;
}

/* A committed change to `table`: empty what was read from it. */
static void
on_notify(void *cls, const char *table)
{
	(void)cls;
	cmf_metrics_add(CMF_M_LISTENER_NOTIFICATIONS, 1);
	/* Tokens are reloaded whole and swapped in (tokens_reload): never a moment with none in memory. */
	if (strcmp(table, "cmf_tokens") == 0) {
		atomic_store(&tokens_reload_wanted, true);
		return; /* token rows are never cached (kind.c), and snapshots hold none */
	}
	/*
	 * A data-key term was added (a rotation by any process) or retired: load the keyring again, so this
	 * process seals under the new term from its next reservation on, and holds no retired key. A failure
	 * leaves the old keyring in place: its writes go on under the old term, and a ciphertext of the new one
	 * loads it on demand (app.c). The caches are emptied first: they hold sealed rows, and a rewrap moves
	 * rows to the new term without notifying (cmf.quiet), so a cached row may still name a term being
	 * retired; read again, it names the one it has now.
	 */
	if (strcmp(table, "cmf_deks") == 0) {
		char why[512];

		table_clear(&snapshots);
		table_clear(&rows);
		if (lis.app != NULL && lis.app->encryption_enabled && cmf_app_keyring_loaded(lis.app, NULL, 0) &&
		    cmf_app_keyring_reload(lis.app, 0, why, sizeof(why)) != 0)
			cmf_warn("change listener: the data keys changed but cannot be reloaded: %s", why);
		return;
	}
	/* Bindings are reloaded whole; their rows (GET) are emptied with the others below. */
	if (strcmp(table, "cmf_role_bindings") == 0)
		atomic_store(&bindings_reload_wanted, true);
	table_clear(&snapshots);
	table_clear(&rows);
	changed();
}

struct token_load {
	struct entry **list;
	size_t n, cap;
};

static int
token_loaded(void *cls, struct db_token *t, bool revoked)
{
	struct token_load *tl = cls;
	struct entry *e;

	if (tl->n == tl->cap) {
		size_t cap = tl->cap == 0 ? 64 : tl->cap * 2;
		struct entry **list = cap <= TOKENS_MAX ? realloc(tl->list, cap * sizeof(*list)) : NULL;

		if (list == NULL) {
			db_token_free(t);
			return DB_ERR_ALLOC; /* or more tokens than the table holds: they are looked up one by one */
		}
		tl->list = list;
		tl->cap = cap;
	}
	if ((e = entry_new(t->id, strlen(t->id))) == NULL) {
		db_token_free(t);
		return DB_ERR_ALLOC;
	}
	e->token = t;
	e->pub.tok.token = t;
	e->pub.tok.revoked = revoked;
	tl->list[tl->n++] = e;
	return DB_OK;
}

/*
 * Load every token and swap them in at once (the listener's thread). A table emptied meanwhile (a write
 * of this process) may hold news the load predates: then the load is dropped and done again.
 */
static bool
tokens_reload(struct db_conn *c)
{
	static pthread_mutex_t reload_mu = PTHREAD_MUTEX_INITIALIZER;
	struct token_load tl = { NULL, 0, 0 };
	unsigned long long gen;
	bool installed = false;
	int r;

	/* One reload at a time: a writer's reload never loses to an older one that began before its commit. */
	pthread_mutex_lock(&reload_mu);
	gen = atomic_load(&tokens.gen);
	atomic_store(&tokens_reload_wanted, false);
	r = db_token_load_all(c, token_loaded, &tl);
	pthread_rwlock_wrlock(&tokens.lock);
	if (r == DB_OK && atomic_load(&live) && atomic_load(&tokens.gen) == gen) {
		table_clear_locked(&tokens);
		for (size_t i = 0; i < tl.n; i++) {
			struct entry *e = tl.list[i];

			e->next = tokens.buckets[e->hash % CACHE_BUCKETS];
			tokens.buckets[e->hash % CACHE_BUCKETS] = e;
		}
		tokens.count = tl.n;
		atomic_store(&tokens_complete, true);
		cmf_metrics_gauge_set(tokens.entries, (double)tokens.count);
		installed = true;
	}
	pthread_rwlock_unlock(&tokens.lock);
	if (!installed) {
		for (size_t i = 0; i < tl.n; i++)
			entry_put(tl.list[i]);
		/* Not installed: a failed load leaves lookups one by one; a raced one is done again. */
		if (r == DB_OK && atomic_load(&live))
			atomic_store(&tokens_reload_wanted, true);
	}
	free(tl.list);
	pthread_mutex_unlock(&reload_mu);
	if (installed)
		changed(); /* a token revoked or expired: its watch requests end now */
	return installed;
}

struct binding_load {
	struct db_role_binding **items;
	size_t n, cap;
};

/* Principals are unique (the table says so); a cap on their number is not needed beyond memory. */
static int
binding_loaded(void *cls, struct db_role_binding *b)
{
	struct binding_load *bl = cls;

	if (bl->n == bl->cap) {
		size_t cap = bl->cap == 0 ? 16 : bl->cap * 2;
		struct db_role_binding **items = realloc(bl->items, cap * sizeof(*items));

		if (items == NULL) {
			db_role_binding_free(b);
			return DB_ERR_ALLOC;
		}
		bl->items = items;
		bl->cap = cap;
	}
	bl->items[bl->n++] = b;
	return DB_OK;
}

static int
binding_cmp(const void *a, const void *b)
{
	return strcmp((*(struct db_role_binding *const *)a)->principal, (*(struct db_role_binding *const *)b)->principal);
}

/* Load every binding and swap them in at once, unless an emptying happened since the load began. */
static bool
bindings_reload(struct db_conn *c)
{
	static pthread_mutex_t reload_mu = PTHREAD_MUTEX_INITIALIZER;
	struct binding_load bl = { NULL, 0, 0 };
	struct binding_set *bs = NULL, *old = NULL;
	unsigned long long gen;
	bool installed = false;
	int r;

	pthread_mutex_lock(&reload_mu);
	gen = atomic_load(&bindings_gen);
	atomic_store(&bindings_reload_wanted, false);
	r = db_role_binding_load_all(c, binding_loaded, &bl);
	if (r == DB_OK && (bs = calloc(1, sizeof(*bs))) == NULL)
		r = DB_ERR_ALLOC;
	if (r == DB_OK) {
		qsort(bl.items, bl.n, sizeof(*bl.items), binding_cmp);
		atomic_init(&bs->refs, 1);
		bs->n = bl.n;
		bs->items = bl.items;
		bl.items = NULL;
		bl.n = 0;
		pthread_mutex_lock(&bindings_mu);
		if (atomic_load(&live) && atomic_load(&bindings_gen) == gen) {
			old = bindings_now;
			bindings_now = bs;
			bs = NULL;
			installed = true;
		}
		pthread_mutex_unlock(&bindings_mu);
	}
	binding_set_put(old);
	binding_set_put(bs);
	for (size_t i = 0; i < bl.n; i++)
		db_role_binding_free(bl.items[i]);
	free(bl.items);
	/* A raced load is done again; a failed one leaves lookups to PostgreSQL until the listener retries. */
	if (!installed && atomic_load(&live))
		atomic_store(&bindings_reload_wanted, true);
	pthread_mutex_unlock(&reload_mu);
	if (installed)
		changed();
	return installed;
}

/* A copy of `b` (the caller's to free), or NULL when out of memory. */
static struct db_role_binding *
binding_copy(const struct db_role_binding *b)
{
	struct db_role_binding *cp = calloc(1, sizeof(*cp));

	if (cp == NULL || (cp->name = strdup(b->name)) == NULL || (cp->principal = strdup(b->principal)) == NULL ||
	    (cp->role = strdup(b->role)) == NULL) {
		db_role_binding_free(cp);
		return NULL;
	}
	cp->environments = json_incref(b->environments);
	return cp;
}

int
cmf_cache_binding(struct db_conn *c, const char *principal, struct db_role_binding **out)
{
	struct binding_set *bs = NULL;
	struct db_role_binding key = { .principal = (char *)(uintptr_t)principal }, *kp = &key, **found;
	int r;

	*out = NULL;
	if (atomic_load(&live)) {
		pthread_mutex_lock(&bindings_mu);
		if ((bs = bindings_now) != NULL)
			atomic_fetch_add(&bs->refs, 1);
		pthread_mutex_unlock(&bindings_mu);
	}
	if (bs == NULL)
		return db_role_binding_lookup(c, principal, out);
	found = bsearch(&kp, bs->items, bs->n, sizeof(*bs->items), binding_cmp);
	r = found == NULL ? DB_ERR_NOT_FOUND : (*out = binding_copy(*found)) == NULL ? DB_ERR_ALLOC : DB_OK;
	binding_set_put(bs);
	return r;
}

static void
nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void *
listener(void *arg)
{
	const char *url = arg;
	struct db_listener *l = NULL;
	struct db_conn *c = NULL;
	long long next_beat = 0, last_resync = 0;
	bool was_live = false;

	while (!atomic_load(&lis.stop)) {
		long long now;
		bool beat;
		int r;

		if (l == NULL) {
			if (db_listen_open(url, cmf_app_db_password(), BEAT_DEADLINE_MS, &l) != DB_OK) {
				l = NULL;
				nap_ms(500);
				continue;
			}
			/* Listening first, then the resynchronisation, then caching: no change can fall in between. */
			set_live(true);
			cmf_metrics_add(CMF_M_LISTENER_RESYNCS, 1);
			last_resync = crypto_mono_ns();
			next_beat = last_resync + BEAT_EVERY_MS * 1000000LL;
			cmf_info("change listener: listening; caching %s", was_live ? "resumed" : "on");
			was_live = true;
		}
		/* Before waiting: a change (or a start) wants every token reloaded now. */
		if (atomic_load(&tokens_reload_wanted) && atomic_load(&live)) {
			if (c == NULL && db_conn_open(lis.main_url, cmf_app_db_password(), &c) == DB_ERR_ALLOC)
				c = NULL;
			if (c != NULL)
				tokens_reload(c);
		}
		if (atomic_load(&bindings_reload_wanted) && atomic_load(&live)) {
			if (c == NULL && db_conn_open(lis.main_url, cmf_app_db_password(), &c) == DB_ERR_ALLOC)
				c = NULL;
			if (c != NULL)
				bindings_reload(c);
		}
		now = crypto_mono_ns();
		r = db_listen_poll(l, next_beat > now ? (int)((next_beat - now) / 1000000LL) + 1 : 0, on_notify, NULL,
				   &beat);
		now = crypto_mono_ns();
		if (beat) {
			struct timespec wall;

			clock_gettime(CLOCK_REALTIME, &wall);
			cmf_metrics_gauge_set(CMF_G_LISTENER_LAST_HEARTBEAT, (double)wall.tv_sec + wall.tv_nsec / 1e9);
		}
		if (r == DB_OK && now >= next_beat) {
			r = db_listen_heartbeat(l, BEAT_DEADLINE_MS);
			next_beat = now + BEAT_EVERY_MS * 1000000LL;
		}
		if (r != DB_OK) {
			set_live(false);
			db_listen_close(l);
			l = NULL;
			cmf_metrics_add(CMF_M_LISTENER_RECONNECTS, 1);
			cmf_warn("change listener: lost its database session; caching off until it listens again");
			continue;
		}
		if (now - last_resync >= RESYNC_EVERY_NS) {
			/* Resources are read again on demand; tokens are reloaded whole (below). */
			cmf_cache_invalidate_write(NULL, false);
			atomic_store(&tokens_reload_wanted, true);
			atomic_store(&bindings_reload_wanted, true);
			cmf_metrics_add(CMF_M_LISTENER_RESYNCS, 1);
			last_resync = now;
		}
	}
	db_conn_close(c);
	atomic_store(&live, false);
	cmf_cache_invalidate();
	db_listen_close(l);
	return NULL;
}

int
cmf_cache_start(struct cmf_app *app)
{
	const struct cmf_config *cfg = app->cfg;
	int r;

	if (!cfg->cache_enabled) {
		cmf_info("cache.enabled is false: every token check and resolution reads PostgreSQL");
		return 0;
	}
	lis.main_url = cfg->database_url;
	lis.app = app;
	lis.url = cfg->database_listen_url != NULL && cfg->database_listen_url[0] != '\0' ? cfg->database_listen_url
											   : cfg->database_url;
	atomic_store(&lis.stop, false);
	r = pthread_create(&lis.thread, NULL, listener, (void *)(uintptr_t)lis.url);
	if (r != 0) {
		cmf_error("change listener: cannot start its thread: %s", strerror(r));
		return -1;
	}
	lis.started = true;
	return 0;
}

void
cmf_cache_stop(void)
{
	if (!lis.started)
		return;
	atomic_store(&lis.stop, true);
	pthread_join(lis.thread, NULL);
	lis.started = false;
}
