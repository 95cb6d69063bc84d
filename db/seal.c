/* db seal: sealing a secret's data under the current DEK with its nonce budget, and opening it — the one place
 * for both, for every store. */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/internal.h"

/* Counts a block of encryptions reserved under a DEK term; returns the term's total. */
static const struct db_statement st_dek_count = {
	"dek_count",
	"UPDATE cmf_deks SET encryptions = encryptions + $2::bigint WHERE term = $1::integer "
	"RETURNING encryptions, (SELECT max(term) FROM cmf_deks)",
	2,
};

/*
 * The nonce budget. Counting every encryption in the DEK's row would make every write in every
 * process contend for that one row (and, under SERIALIZABLE, retry). Instead each process reserves
 * DB_ENCRYPTION_BLOCK encryptions at a time in a short transaction of its own and counts them off
 * here; a reservation a process never uses (it exits) is simply lost, which errs on the safe side.
 */
#define DB_ENCRYPTION_BLOCK 1024 /* 2^31 / 1024 = 2 million reservations before the DEK must rotate */

static pthread_mutex_t budget_mutex = PTHREAD_MUTEX_INITIALIZER;
/* One refill at a time per process: threads that ran dry together share the block one of them reserves. */
static pthread_mutex_t refill_mutex = PTHREAD_MUTEX_INITIALIZER;
/*
 * Reservations under two terms at most: across a rotation, requests still holding the old keyring and
 * requests holding the new one write side by side for a moment; with one slot each would throw the
 * other's block away on every refill, and writes would run out of attempts (resource.c).
 */
static struct {
	uint32_t term;
	uint64_t left;
} budget[2];
/* encryption.dek.rotateAfterEncryptions (0: never), set once at start. */
static _Atomic uint64_t rotate_after;

void
db_seal_rotate_after_set(uint64_t encryptions)
{
	rotate_after = encryptions;
}

/* Take one encryption under `term` from this process's reservation; DB_ERR_NEED_BUDGET if none left. */
static int
budget_take(uint32_t term)
{
	int r = DB_ERR_NEED_BUDGET;

	pthread_mutex_lock(&budget_mutex);
	for (size_t i = 0; i < 2; i++) {
		if (budget[i].term == term && budget[i].left > 0) {
			budget[i].left--;
			r = DB_OK;
			break;
		}
	}
	pthread_mutex_unlock(&budget_mutex);
	return r;
}

/* Whether encryptions under `term` are left (budget_mutex held). */
static bool
budget_has_locked(uint32_t term)
{
	for (size_t i = 0; i < 2; i++)
		if (budget[i].term == term && budget[i].left > 0)
			return true;
	return false;
}

/* Add `n` encryptions under `term`, taking the slot of the lower term when it has none (budget_mutex held). */
static void
budget_add_locked(uint32_t term, uint64_t n)
{
	size_t i = budget[0].term == term ? 0 : budget[1].term == term ? 1 : budget[0].term <= budget[1].term ? 0 : 1;

	if (budget[i].term != term) {
		budget[i].term = term;
		budget[i].left = 0;
	}
	budget[i].left += n;
}

struct reserve_tx {
	uint32_t term;
	uint64_t total; /* reserved under the term after this block */
	uint32_t newest; /* the highest term the database holds */
};

static int
reserve_body(struct db_conn *c, void *cls)
{
	struct reserve_tx *t = cls;
	char term_s[16], block_s[16];
	struct db_param p[] = { { term_s, 0, 0 }, { block_s, 0, 0 } };
	PGresult *res = NULL;
	int r;

	snprintf(term_s, sizeof(term_s), "%" PRIu32, t->term);
	snprintf(block_s, sizeof(block_s), "%d", DB_ENCRYPTION_BLOCK);
	r = db_exec_stmt(c, &st_dek_count, p, 2, &res);
	if (r == DB_OK && PQntuples(res) != 1) {
		crypto_log_error("data key term %" PRIu32 " is not in cmf_deks", t->term);
		r = DB_ERR_CORRUPT;
	}
	if (r == DB_OK) {
		t->total = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		t->newest = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
	}
	PQclear(res);
	return r;
}

enum advance { ADVANCE_NONE, ADVANCE_RELOAD, ADVANCE_ROTATE };

/*
 * After a reservation under `term` brought its count to `total`, with `newest` the highest term stored:
 * load a newer term that exists, or ask for one once `total` reached `after` (0: never). A newer term
 * always wins, so processes that cross the threshold after the rotation only reload.
 */
static enum advance
advance_wanted(uint32_t term, uint32_t newest, uint64_t total, uint64_t after)
{
	if (newest > term)
		return ADVANCE_RELOAD;
	if (after > 0 && total >= after)
		return ADVANCE_ROTATE;
	return ADVANCE_NONE;
}

int
db_seal_reserve(struct db_conn *c, const struct db_sealer *sl)
{
	uint32_t term = crypto_keyring_current_term(sl->keyring);
	struct reserve_tx t = { term, 0, 0 };
	uint64_t after = rotate_after;
	int r;

	pthread_mutex_lock(&refill_mutex);
	pthread_mutex_lock(&budget_mutex);
	r = budget_has_locked(term);
	pthread_mutex_unlock(&budget_mutex);
	if (r) {
		pthread_mutex_unlock(&refill_mutex);
		return DB_OK; /* another thread refilled while this one waited */
	}
	r = db_tx_run(c, DB_TX_LOCKED, reserve_body, &t);
	if (r != DB_OK)
		goto out;
	if (t.total > CRYPTO_DEK_MAX_ENCRYPTIONS) {
		crypto_log_error("data key term %" PRIu32 " reached its limit of %" PRIu64
			  " encryptions: rotate the data key before writing more secrets",
			  term, CRYPTO_DEK_MAX_ENCRYPTIONS);
		r = DB_ERR_NONCE_BUDGET;
		goto out;
	}
	if (t.total >= CRYPTO_DEK_MAX_ENCRYPTIONS / 2)
		crypto_log_warn("data key term %" PRIu32 " has used %" PRIu64 " of %" PRIu64 " encryptions: plan a rotation",
			 term, t.total, CRYPTO_DEK_MAX_ENCRYPTIONS);
	pthread_mutex_lock(&budget_mutex);
	budget_add_locked(term, DB_ENCRYPTION_BLOCK);
	pthread_mutex_unlock(&budget_mutex);
	/*
	 * The keyring falls behind: a newer term exists (another process rotated), or this term reached the
	 * threshold. This block is still used under `term` (writes go on); the owner moves the keyring on,
	 * and requests that take it afterwards seal under the new term. Under refill_mutex, so this
	 * process's other writers wait for the new term instead of reserving more of the old one.
	 */
	if (sl->hooks != NULL && sl->hooks->reserved != NULL)
		sl->hooks->reserved(sl->hooks_cls, term, t.total);
	if (sl->hooks != NULL && sl->hooks->advance != NULL && advance_wanted(term, t.newest, t.total, after) != ADVANCE_NONE)
		sl->hooks->advance(sl->hooks_cls, c, term, advance_wanted(term, t.newest, t.total, after) == ADVANCE_ROTATE);
out:
	pthread_mutex_unlock(&refill_mutex);
	return r;
}

/*
 * The ciphertext versions (crypto formats) of this database, from its encryption state (db_init): the one
 * new ciphertexts are written in, and the lowest one opened. Once every row is re-sealed (db_reseal) the
 * lowest is raised, so an older ciphertext put back later (a restore of one row, an UPDATE) is refused.
 */
static _Atomic int seal_format = CRYPTO_FORMAT_V2, min_format = CRYPTO_FORMAT_V1;

void
db_seal_formats_set(int seal, int min)
{
	seal_format = seal;
	min_format = min;
}

/*
 * The identity a secret's ciphertext binds after its header: format 1 "secret/<uid>/<version>", format 2
 * "secret/<name>/<uid>/<version>", so a ciphertext moved to another secret, even with its uid and
 * version, does not open. Unambiguous without escaping: the uid has a fixed length and no '/'.
 */
static void
secret_ident(char *buf, size_t len, int format, const char *name, const char *uid, long long version)
{
	if (format == CRYPTO_FORMAT_V1)
		snprintf(buf, len, "secret/%s/%lld", uid, version);
	else
		snprintf(buf, len, "secret/%s/%s/%lld", name, uid, version);
}

/* Names are at most 253 bytes (DNS-1123), uids 36, versions 20 digits. */
#define SECRET_NAME_MAX 253
#define SECRET_IDENT_MAX 340

/* Seal `text` (textlen ≤ CRYPTO_MAX_PLAINTEXT) for the secret under the current term, taking one encryption. */
static int
seal_text(const struct db_sealer *sl, const char *name, const char *uid, long long version, const char *text,
	  size_t textlen, uint8_t **out, size_t *outlen)
{
	char ident[SECRET_IDENT_MAX];
	uint8_t *ct = NULL;
	size_t ctlen = 0;
	int format = seal_format, r, cr;

	r = budget_take(crypto_keyring_current_term(sl->keyring));
	if (r != DB_OK)
		return r;
	secret_ident(ident, sizeof(ident), format, name, uid, version);
	cr = crypto_keyring_seal(sl->keyring, (uint8_t)format, (const uint8_t *)ident, strlen(ident),
				 (const uint8_t *)text, textlen, &ct, &ctlen);
	if (cr != CRYPTO_OK) {
		crypto_log_error("%s: sealing failed: %s", __func__, crypto_strerror(cr));
		return cr == CRYPTO_ERR_ALLOC ? DB_ERR_ALLOC : cr == CRYPTO_ERR_NO_KEY ? DB_ERR_KEY_UNAVAILABLE : DB_ERR_INTERNAL;
	}
	*out = ct;
	*outlen = ctlen;
	return DB_OK;
}

int
db_seal_data(const struct db_sealer *sl, const char *name, const char *uid, long long version, json_t *data,
	     uint8_t **out, size_t *outlen)
{
	char *text = NULL;
	size_t textlen;
	int r;

	*out = NULL;
	*outlen = 0;
	if (sl->enabled && sl->keyring == NULL)
		return DB_ERR_KEY_UNAVAILABLE;
	if (strlen(name) > SECRET_NAME_MAX)
		return DB_ERR_INVALID;
	text = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
	if (text == NULL)
		return DB_ERR_ALLOC;
	textlen = strlen(text);
	if (textlen > CRYPTO_MAX_PLAINTEXT) {
		r = DB_ERR_TOO_LARGE;
		goto out;
	}
	if (!sl->enabled) {
		*out = (uint8_t *)text;
		*outlen = textlen;
		return DB_OK;
	}
	r = seal_text(sl, name, uid, version, text, textlen, out, outlen);
out:
	crypto_freezero(text, textlen);
	return r;
}

/* Open a sealed secret's ciphertext (`raw`, as stored) into *pt (caller wipes and frees: crypto_freezero). */
static int
open_sealed(const struct db_sealer *sl, const char *name, const char *uid, long long version, const uint8_t *raw,
	    size_t rawlen, uint8_t **pt, size_t *ptlen)
{
	char ident[SECRET_IDENT_MAX];
	uint8_t format = 0;
	uint32_t term = 0;
	int cr;

	cr = crypto_aead_format(raw, rawlen, &format);
	if (cr == CRYPTO_OK && format < min_format) {
		crypto_log_error("%s: secret %s (uid %s, version %lld) is sealed in ciphertext version %d, below "
				 "version %d, the lowest this database accepts since every secret was re-sealed: "
				 "an older ciphertext was put back (a restore, an UPDATE); refused",
				 __func__, name, uid, version, format, min_format);
		return DB_ERR_CORRUPT;
	}
	if (cr == CRYPTO_OK && strlen(name) > SECRET_NAME_MAX)
		cr = CRYPTO_ERR_INVALID_ARG;
	if (cr == CRYPTO_OK) {
		secret_ident(ident, sizeof(ident), format, name, uid, version);
		cr = crypto_keyring_open(sl->keyring, (const uint8_t *)ident, strlen(ident), raw, rawlen, pt, ptlen);
		/* Sealed by a process that already holds a newer term than this request's keyring. */
		if (cr == CRYPTO_ERR_UNKNOWN_TERM && sl->hooks != NULL && sl->hooks->open_newer != NULL)
			cr = sl->hooks->open_newer(sl->hooks_cls, (const uint8_t *)ident, strlen(ident), raw, rawlen, pt,
						   ptlen);
	}
	/*
	 * Terms are made one after another and only ever deleted by their retirement (db_dek_retire): a term
	 * below the current one that the keyring lacks was retired, and its ciphertext (a row restored from an
	 * old backup) can never be opened.
	 */
	if (cr == CRYPTO_ERR_UNKNOWN_TERM && crypto_aead_term(raw, rawlen, &term) == CRYPTO_OK &&
	    term < crypto_keyring_current_term(sl->keyring)) {
		crypto_log_error("%s: secret %s (uid %s, version %lld) is sealed under data key term %" PRIu32
				 ", which was retired (its key destroyed; the current term is %" PRIu32
				 "): it can never be decrypted; write the secret again",
				 __func__, name, uid, version, term, crypto_keyring_current_term(sl->keyring));
		return DB_ERR_RETIRED;
	}
	if (cr != CRYPTO_OK) {
		crypto_log_error("%s: secret %s (uid %s, version %lld) does not decrypt: %s", __func__, name, uid, version,
				 crypto_strerror(cr));
		return cr == CRYPTO_ERR_ALLOC ? DB_ERR_ALLOC : DB_ERR_CORRUPT;
	}
	return DB_OK;
}

int
db_secret_data_open(const struct db_sealer *sl, const char *name, const char *uid, long long version, bool sealed,
		    const char *data_escaped, json_t **data)
{
	unsigned char *raw = NULL;
	uint8_t *pt = NULL;
	size_t rawlen = 0, ptlen = 0;
	json_error_t jerr;
	int r = DB_OK;

	*data = NULL;
	/* The row's form must match the database's mode: a plaintext row in an encrypted database was
	 * not written by cmf, and is refused rather than served. */
	if (sealed != sl->enabled) {
		crypto_log_error("%s: secret %s is stored %s but the database has encryption %s", __func__, name,
			  sealed ? "encrypted" : "in plaintext", sl->enabled ? "enabled" : "disabled");
		return DB_ERR_CORRUPT;
	}
	if (sealed && sl->keyring == NULL)
		return DB_ERR_KEY_UNAVAILABLE;
	raw = PQunescapeBytea((const unsigned char *)data_escaped, &rawlen);
	if (raw == NULL)
		return DB_ERR_ALLOC;
	if (sealed) {
		r = open_sealed(sl, name, uid, version, raw, rawlen, &pt, &ptlen);
		if (r != DB_OK)
			goto out;
		*data = json_loadb((const char *)pt, ptlen, 0, &jerr);
	} else {
		*data = json_loadb((const char *)raw, rawlen, 0, &jerr);
	}
	if (!json_is_object(*data)) {
		crypto_log_error("%s: secret %s: stored data is not a JSON object", __func__, name);
		json_decref(*data);
		*data = NULL;
		r = DB_ERR_CORRUPT;
	}
out:
	crypto_freezero(pt, ptlen);
	OPENSSL_cleanse(raw, rawlen);
	PQfreemem(raw);
	return r;
}

int
db_seal_reseal(const struct db_sealer *sl, const char *name, const char *uid, long long version,
	       const char *data_escaped, uint8_t **out, size_t *outlen)
{
	unsigned char *raw = NULL;
	uint8_t *pt = NULL;
	size_t rawlen = 0, ptlen = 0;
	int r;

	*out = NULL;
	*outlen = 0;
	if (!sl->enabled || sl->keyring == NULL)
		return sl->enabled ? DB_ERR_KEY_UNAVAILABLE : DB_ERR_INVALID;
	raw = PQunescapeBytea((const unsigned char *)data_escaped, &rawlen);
	if (raw == NULL)
		return DB_ERR_ALLOC;
	/* The plaintext as sealed (cmf's own JSON text, authenticated by the tag): sealed again as it is. */
	r = open_sealed(sl, name, uid, version, raw, rawlen, &pt, &ptlen);
	if (r == DB_OK)
		r = seal_text(sl, name, uid, version, (const char *)pt, ptlen, out, outlen);
	crypto_freezero(pt, ptlen);
	OPENSSL_cleanse(raw, rawlen);
	PQfreemem(raw);
	return r;
}
