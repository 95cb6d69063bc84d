/* cmf: the command-line entry point — serve, init, check, keygen, agent, version — and the start-up checks. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmf/app.h"
#include "cmf/cache.h"
#include "cmf/cli/agent.h"
#include "cmf/http/audit.h"
#include "cmf/http/auth.h"
#include "cmf/config.h"
#include "cmf/http/daemon.h"
#include "cmf/log.h"
#include "cmf/ready.h"
#include "cmf/api/routes.h"
#include "crypto/crypto.h"
#include "db/db.h"
#include "k8s/k8s.h"

#ifndef CMF_VERSION
#define CMF_VERSION "0.1.0"
#endif

/* Exit statuses (sysexits.h values, documented in README.md). */
enum {
	EXIT_OK = 0,
	EXIT_USAGE = 64,       /* EX_USAGE: bad command line */
	EXIT_UNAVAILABLE = 69, /* EX_UNAVAILABLE: PostgreSQL unreachable within the start-up timeout */
	EXIT_SOFTWARE = 70,    /* EX_SOFTWARE: internal error */
	EXIT_CANTCREAT = 73,   /* EX_CANTCREAT: keygen output cannot be created */
	EXIT_CONFIG = 78,      /* EX_CONFIG: configuration, key, or database mode/key lock refused */
	EXIT_STOPPED = 143,    /* 128 + SIGTERM: stopped by a signal before serving (start-up wait) */
};

/* A database password file holds one password. */
#define PASSWORD_FILE_MAX 4096

/* Everything a plaintext secret or key touched via jansson is wiped when jansson frees it. */
static void
wiping_free(void *p)
{
	if (p != NULL)
		crypto_freezero(p, malloc_usable_size(p));
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: cmf serve [--config FILE]    run the API server\n"
		   "       cmf init [--config FILE]     apply migrations and record the encryption mode, then exit\n"
		   "       cmf check [--config FILE]    validate configuration, key and database; change nothing\n"
		   "       cmf rotate dek [--config FILE]   create a new data-key term; running servers load it\n"
		   "       cmf rotate master-key --new-key FILE [--config FILE]   wrap the keyring by a new master key\n"
		   "       cmf rotate finish [--config FILE]   destroy the keyring's wrapping by the previous master key\n"
		   "       cmf rewrap [--retire] [--config FILE]   move every stored secret to the newest data key\n"
		   "       cmf retire-deks [--config FILE]  destroy the data keys no stored secret uses any more\n"
		   "       cmf keygen --bits 128|256 --out FILE   write a new random AES key (raw bytes, mode 0600)\n"
		   "       cmf routes                   print the API's routes and who may call them\n"
		   "       cmf agent --url URL --token-file FILE --environment ENV --catalog CAT --database DB --out FILE\n"
		   "                [--once] [...]      keep a job's client configuration in a file (cmf agent --help)\n"
		   "       cmf version\n"
		   "Settings come from the YAML file and CMF_* environment variables (see README.md).\n");
}

static int
cmd_version(void)
{
	printf("cmf %s (OpenSSL %s, libpq %d, libmicrohttpd %s, jansson %s)\n", CMF_VERSION,
	       OpenSSL_version(OPENSSL_VERSION_STRING), PQlibVersion(), MHD_get_version(), JANSSON_VERSION);
	return EXIT_OK;
}

static int
cmd_keygen(int argc, char **argv)
{
	const char *out = NULL;
	struct crypto_key *key = NULL;
	char kid[CRYPTO_KEY_ID_SIZE];
	int bits = 0, fd = -1, rc = EXIT_SOFTWARE;
	size_t done = 0;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--bits") == 0 && i + 1 < argc)
			bits = atoi(argv[++i]);
		else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			out = argv[++i];
		else {
			fprintf(stderr, "cmf keygen: unexpected argument '%s'\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if ((bits != 128 && bits != 256) || out == NULL) {
		fprintf(stderr, "cmf keygen: --bits 128|256 and --out FILE are required\n");
		return EXIT_USAGE;
	}
	if (crypto_key_generate((size_t)bits / 8, &key) != CRYPTO_OK) {
		fprintf(stderr, "cmf keygen: cannot generate random bytes\n");
		return EXIT_SOFTWARE;
	}
	/* O_EXCL: never overwrite a key file; losing a key loses every secret sealed under it. */
	fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "cmf keygen: cannot create %s: %s%s\n", out, strerror(errno),
			errno == EEXIST ? " (refusing to overwrite an existing key)" : "");
		rc = EXIT_CANTCREAT;
		goto out;
	}
	while (done < crypto_key_len(key)) {
		ssize_t w = write(fd, crypto_key_bytes(key) + done, crypto_key_len(key) - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "cmf keygen: cannot write %s: %s\n", out, strerror(errno));
			unlink(out);
			rc = EXIT_CANTCREAT;
			goto out;
		}
		done += (size_t)w;
	}
	if (fsync(fd) != 0 || crypto_key_id(key, kid) != CRYPTO_OK) {
		fprintf(stderr, "cmf keygen: cannot sync %s: %s\n", out, strerror(errno));
		unlink(out);
		rc = EXIT_CANTCREAT;
		goto out;
	}
	printf("wrote a %d-bit AES-GCM key to %s (key id %s); back it up: secrets cannot be recovered without it\n",
	       bits, out, kid);
	rc = EXIT_OK;
out:
	if (fd >= 0)
		close(fd);
	crypto_key_free(key);
	return rc;
}

/*
 * Read and parse the master key through the key watch's loader (a new watch's first poll reads the
 * file); every refusal names the file and the rule broken.
 */
static int
load_key_file(const char *path, const char *setting, bool optional, struct crypto_key **key)
{
	struct k8s_watch *w = NULL;
	char why[512];
	int loose = 0, r;

	*key = NULL;
	why[0] = '\0';
	if ((r = k8s_watch_new(path, CMF_KEY_FILE_MAX, &w)) != K8S_OK)
		snprintf(why, sizeof(why), "%s", k8s_strerror(r));
	else
		r = k8s_master_key_poll(w, key, &loose, why, sizeof(why));
	k8s_watch_free(w);
	/* The previous key of a rotation is mounted only during it: absent is its normal state. */
	if (optional && r == K8S_ERR_NOT_FOUND)
		return 0;
	if (r != K8S_WATCH_CHANGED && r != K8S_ERR_KEY_INVALID) {
		cmf_error("cannot read the encryption key (%s): %s", setting, why);
		return -1;
	}
	if (loose)
		cmf_warn("encryption key file %s is readable by other users: restrict it to mode 0400 or 0440", path);
	if (r == K8S_ERR_KEY_INVALID) {
		cmf_error("invalid encryption key in %s (%s): %s", path, setting, why);
		return -1;
	}
	return 0;
}

static int
load_master_key(const struct cmf_config *cfg, struct crypto_key **key)
{
	return load_key_file(cfg->encryption_key_file, "encryption.key.file", false, key);
}

static char *
load_password(const struct cmf_config *cfg, int *failed)
{
	char why[512];
	uint8_t *buf = NULL;
	size_t len = 0;
	int loose = 0;

	*failed = 0;
	if (cfg->database_password_file == NULL || cfg->database_password_file[0] == '\0')
		return NULL;
	if (k8s_secret_read_file(cfg->database_password_file, PASSWORD_FILE_MAX, &buf, &len, &loose, why,
				 sizeof(why)) != K8S_OK) {
		cmf_error("cannot read the database password (database.passwordFile): %s", why);
		*failed = 1;
		return NULL;
	}
	/* The file's trailing newline (echo, editors) is not part of the password. */
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (memchr(buf, '\0', len) != NULL) {
		cmf_error("database.passwordFile %s contains a NUL byte", cfg->database_password_file);
		crypto_freezero(buf, len);
		*failed = 1;
		return NULL;
	}
	{
		char *pw = malloc(len + 1);

		if (pw != NULL) {
			memcpy(pw, buf, len);
			pw[len] = '\0';
		} else {
			*failed = 1;
		}
		crypto_freezero(buf, len);
		return pw;
	}
}

/*
 * Move every stored secret to the database's ciphertext version before serving (db_reseal): after an
 * upgrade that raised it, the first start re-seals; later starts find nothing to do. Retried while
 * PostgreSQL is unreachable or busy, up to database.startupTimeoutSeconds (what was re-sealed stays so).
 */
static int
reseal(struct cmf_app *app, struct db_conn *conn)
{
	struct cmf_sealer_hold hold;
	struct db_reseal_result res;
	struct timespec start, now, one = { 1, 0 };
	int r;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		cmf_app_sealer_acquire(app, &hold);
		r = db_reseal(conn, &hold.sealer, &res);
		cmf_app_sealer_release(app, &hold);
		if (r != DB_ERR_UNAVAILABLE && r != DB_ERR_OUTCOME_UNKNOWN && r != DB_ERR_BUSY)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= app->cfg->database_startup_timeout_seconds)
			break;
		nanosleep(&one, NULL);
	}
	if (r != DB_OK) {
		cmf_error("cannot re-seal the stored secrets to the database's ciphertext version: %s (what was "
			  "re-sealed stays so; the next start goes on)",
			  db_strerror(r));
		return r == DB_ERR_UNAVAILABLE || r == DB_ERR_OUTCOME_UNKNOWN || r == DB_ERR_BUSY ? EXIT_UNAVAILABLE
												    : EXIT_SOFTWARE;
	}
	if (res.resealed > 0)
		cmf_info("re-sealed %lld ciphertext(s) (secrets and their kept versions) to ciphertext version %d, which "
			 "binds each secret's name",
			 res.resealed, CRYPTO_FORMAT_V2);
	if (res.unreadable > 0)
		cmf_warn("%lld ciphertext(s) (secrets or their kept versions) below ciphertext version %d cannot be "
			 "opened (corrupt, a data key missing, or put back after the re-seal) and were left as they are; "
			 "reading one answers an integrity error%s",
			 res.unreadable, CRYPTO_FORMAT_V2,
			 res.older_refused ? ""
				    : ". Until they are repaired or deleted, older ciphertext versions are still accepted");
	return EXIT_OK;
}

/* `cmf check`: the data-key terms as stored (db_encryption_status), one line each. */
static void
print_status(struct db_conn *conn)
{
	json_t *st = NULL, *d;
	size_t i;

	if (db_encryption_status(conn, &st) != DB_OK) {
		printf("check: the encryption status cannot be read\n");
		return;
	}
	printf("encryption: enabled, key id %s, ciphertext version %lld, current data key term %lld\n",
	       json_string_value(json_object_get(st, "keyId")),
	       (long long)json_integer_value(json_object_get(st, "sealVersion")),
	       (long long)json_integer_value(json_object_get(st, "currentTerm")));
	json_array_foreach (json_object_get(st, "deks"), i, d)
		printf("  data key term %lld: created %s, %lld encryptions reserved, %lld secret(s), %lld version(s)\n",
		       (long long)json_integer_value(json_object_get(d, "term")),
		       json_string_value(json_object_get(d, "createdAt")),
		       (long long)json_integer_value(json_object_get(d, "encryptions")),
		       (long long)json_integer_value(json_object_get(d, "secrets")),
		       (long long)json_integer_value(json_object_get(d, "versions")));
	printf("  lowest data key term held (minimum decryption term): %lld\n",
	       (long long)json_integer_value(json_object_get(st, "minDecryptionTerm")));
	if (json_is_string(json_object_get(st, "previousKeyId")))
		printf("  previous master key still wrapping the data keys: key id %s\n",
		       json_string_value(json_object_get(st, "previousKeyId")));
	{
		json_t *w = json_object_get(st, "rewrap");

		if (json_is_object(w))
			printf("  last rewrap: %s, to term %lld, %lld of %lld ciphertexts, %lld that do not open, started %s by %s\n",
			       json_string_value(json_object_get(w, "state")),
			       (long long)json_integer_value(json_object_get(w, "targetTerm")),
			       (long long)json_integer_value(json_object_get(w, "done")),
			       (long long)json_integer_value(json_object_get(w, "total")),
			       (long long)json_integer_value(json_object_get(w, "unreadable")),
			       json_string_value(json_object_get(w, "startedAt")),
			       json_string_value(json_object_get(w, "startedBy")));
	}
	if (json_integer_value(json_object_get(st, "versionsUnderUnknownTerms")) > 0)
		printf("  %lld version(s) sealed under a term this database does not hold\n",
		       (long long)json_integer_value(json_object_get(st, "versionsUnderUnknownTerms")));
	json_decref(st);
}

/* `cmf rotate dek`: one new term (the master key is checked against the database's first). */
static int
rotate_dek(struct db_conn *conn, const struct crypto_key *master)
{
	char why[512];
	uint32_t term = 0;
	bool created = false;
	int r;
	struct db_audit a = { .principal = "cmf rotate", .outcome = "success", .route = "" };

	if (master == NULL) {
		cmf_error("encryption is disabled: there is no data key to rotate");
		return EXIT_CONFIG;
	}
	r = db_dek_rotate(conn, master, NULL, 0, &a, &term, &created, why, sizeof(why));
	if (r != DB_OK) {
		cmf_error("%s", why);
		return r == DB_ERR_UNAVAILABLE || r == DB_ERR_OUTCOME_UNKNOWN || r == DB_ERR_BUSY ? EXIT_UNAVAILABLE
		       : r == DB_ERR_KEY_MISMATCH || r == DB_ERR_MODE_MISMATCH || r == DB_ERR_NOT_INITIALIZED
			       ? EXIT_CONFIG
			       : EXIT_SOFTWARE;
	}
	printf("rotate: data key term %u created; new secrets are sealed under it (running servers load it on "
	       "the change notification); older terms stay for reading\n",
	       term);
	return EXIT_OK;
}

/* Exit status for a failed maintenance command's DB_ERR_* code. */
static int
maintain_exit(int r)
{
	return r == DB_ERR_UNAVAILABLE || r == DB_ERR_OUTCOME_UNKNOWN || r == DB_ERR_BUSY ? EXIT_UNAVAILABLE
	       : r == DB_ERR_KEY_MISMATCH || r == DB_ERR_MODE_MISMATCH || r == DB_ERR_NOT_INITIALIZED ||
			 r == DB_ERR_KEY_UNAVAILABLE || r == DB_ERR_CONFLICT
		       ? EXIT_CONFIG
		       : EXIT_SOFTWARE;
}

struct rewrap_show {
	bool tty;
	struct timespec start;
};

/* Progress: one line rewritten in place on a terminal (rows, rate, ETA), a plain line per batch otherwise. */
static void
rewrap_progress(void *cls, const struct db_rewrap_progress *p)
{
	struct rewrap_show *sh = cls;
	struct timespec now;
	double elapsed, rate;

	clock_gettime(CLOCK_MONOTONIC, &now);
	elapsed = (double)(now.tv_sec - sh->start.tv_sec) + (double)(now.tv_nsec - sh->start.tv_nsec) / 1e9;
	rate = elapsed > 0 ? (double)p->done / elapsed : 0;
	fprintf(stderr, "%srewrap: %lld/%lld ciphertexts (%.1f%%), %.0f rows/s, ETA %.0f s%s%s", sh->tty ? "\r" : "",
		p->done, p->total, p->total > 0 ? 100.0 * (double)p->done / (double)p->total : 100.0, rate,
		rate > 0 && p->total > p->done ? (double)(p->total - p->done) / rate : 0.0,
		p->unreadable > 0 ? ", some do not open" : "", sh->tty ? "   " : "\n");
	fflush(stderr);
}

/*
 * `cmf rewrap [--retire]` and `cmf retire-deks`: on an initialized database whose migrations are applied
 * (they never initialize or migrate one themselves), with the configured key checked against it.
 */
static int
maintain(struct cmf_app *app, struct db_conn *conn, const struct crypto_key *master, int started,
	 const struct db_init_result *res, bool rewrap, bool retire)
{
	struct db_audit a = { .principal = rewrap ? "cmf rewrap" : "cmf retire-deks", .outcome = "success", .route = "" };
	char why[512];
	int r;

	if (started < 0) {
		cmf_error("the database has not been initialized: run `cmf init` first");
		return EXIT_CONFIG;
	}
	if (master == NULL) {
		cmf_error("encryption is disabled: there are no data keys to %s", rewrap ? "rewrap under" : "retire");
		return EXIT_CONFIG;
	}
	if (res->migrations_pending > 0) {
		cmf_error("the database has %d migration(s) to apply: run `cmf init` (or start the server) first",
			  res->migrations_pending);
		return EXIT_CONFIG;
	}
	if (cmf_app_master_set(app, master) != 0)
		return EXIT_SOFTWARE;
	if (rewrap) {
		struct cmf_sealer_hold hold;
		struct db_rewrap_progress p;
		struct rewrap_show sh = { isatty(STDERR_FILENO) == 1, { 0, 0 } };

		clock_gettime(CLOCK_MONOTONIC, &sh.start);
		cmf_app_sealer_acquire(app, &hold);
		r = db_rewrap(conn, &hold.sealer, "cmf rewrap", &a, rewrap_progress, NULL, &sh, &p, why, sizeof(why));
		cmf_app_sealer_release(app, &hold);
		if (sh.tty)
			fputc('\n', stderr);
		if (r != DB_OK) {
			cmf_error("%s", why);
			return maintain_exit(r);
		}
		printf("rewrap: %lld ciphertext(s) moved to data key term %u%s\n", p.done, p.target,
		       p.unreadable > 0 ? "" : "; every stored secret is under it");
		if (p.unreadable > 0)
			printf("rewrap: %lld ciphertext(s) do not open and stayed where they are (see the log); the terms "
			       "they use cannot be retired until they are repaired or deleted\n",
			       p.unreadable);
	}
	if (retire) {
		int retired = 0;
		uint32_t min = 0;

		r = db_dek_retire(conn, &a, &retired, &min, why, sizeof(why));
		if (r != DB_OK) {
			cmf_error("%s", why);
			return maintain_exit(r);
		}
		printf("retire-deks: %d data key term(s) destroyed; the lowest term held is %u: a ciphertext under a "
		       "lower one (an old backup) is refused, never decrypted\n",
		       retired, min);
	}
	return EXIT_OK;
}

/*
 * `cmf rotate master-key --new-key FILE` (the configured key is the database's; the keyring is wrapped by the
 * new one as well) and `cmf rotate finish` (the configured key is the new one; the previous wrapping goes).
 */
static int
rotate_master(struct db_conn *conn, const struct crypto_key *master, const char *new_key_path)
{
	struct db_audit a = { .principal = "cmf rotate", .outcome = "success", .route = "" };
	struct crypto_key *nk = NULL;
	char why[512], kid[CRYPTO_KEY_ID_SIZE];
	bool done = false;
	int r;

	if (master == NULL) {
		cmf_error("encryption is disabled: there is no master key to rotate");
		return EXIT_CONFIG;
	}
	if (new_key_path == NULL) {
		r = db_master_finish(conn, master, &a, &done, why, sizeof(why));
		if (r != DB_OK) {
			cmf_error("%s", why);
			return maintain_exit(r);
		}
		printf(done ? "rotate: finished: the keyring is no longer wrapped by the previous master key, which now "
			      "opens nothing\n"
			    : "rotate: no master-key rotation is under way: nothing to finish\n");
		return EXIT_OK;
	}
	if (load_key_file(new_key_path, "--new-key", false, &nk) != 0)
		return EXIT_CONFIG;
	crypto_key_id(nk, kid);
	r = crypto_key_equal(nk, master) ? DB_ERR_INVALID : db_master_rotate(conn, master, nk, &a, &done, why, sizeof(why));
	crypto_key_free(nk);
	if (r == DB_ERR_INVALID) {
		cmf_error("the new key is the configured key: nothing to rotate");
		return EXIT_CONFIG;
	}
	if (r != DB_OK) {
		cmf_error("%s", why);
		return maintain_exit(r);
	}
	printf("rotate: the keyring is wrapped by the new master key (key id %s) and still by the previous one: mount "
	       "the new key as encryption.key.file on every replica (the old one as encryption.key.previousFile until "
	       "all have it), move encryption.key.id if pinned, then run `cmf rotate finish`\n",
	       kid);
	return EXIT_OK;
}

/* Connect and initialize (or check), retrying while PostgreSQL is unreachable up to the timeout. */
static int
start_database(struct cmf_app *app, const struct crypto_key *master, const struct crypto_key *previous, int check_only,
	       struct db_conn **conn, struct db_init_result *res)
{
	const struct cmf_config *cfg = app->cfg;
	struct timespec start, now;
	struct db_conn *c = cmf_app_conn(app);
	char why[1024];
	int r, warned = 0;
	bool rotated = false;

	*conn = NULL;
	if (c == NULL)
		return EXIT_SOFTWARE;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct crypto_keyring *kr = NULL;

		r = db_init(c, app->encryption_enabled, master, check_only, &kr, res, why, sizeof(why));
		if (r == DB_OK || (check_only && r == DB_ERR_NOT_INITIALIZED)) {
			cmf_app_keyring_set(app, kr);
			*conn = c;
			return r == DB_OK ? EXIT_OK : -1;
		}
		crypto_keyring_free(kr);
		/*
		 * A new key with the previous one beside it (a master-key rotation, at start): wrap the keyring by
		 * the new key too, then initialize again. Not for `cmf check`, which changes nothing.
		 */
		if (r == DB_ERR_KEY_MISMATCH && previous != NULL && !check_only && !rotated) {
			struct db_audit a = { .principal = "cmf", .outcome = "success", .route = "" };
			char why2[512];
			bool done = false;

			r = db_master_rotate(c, previous, master, &a, &done, why2, sizeof(why2));
			if (r == DB_OK) {
				rotated = true;
				if (done)
					cmf_info("master key rotated to key id %s: the keyring is wrapped by it, and still by the "
						 "previous key until the rotation finishes",
						 app->key_id);
				continue;
			}
			if (r != DB_ERR_UNAVAILABLE && r != DB_ERR_BUSY && r != DB_ERR_OUTCOME_UNKNOWN) {
				cmf_error("%s; and the previous key file cannot rotate it: %s", why, why2);
				return EXIT_CONFIG;
			}
			r = DB_ERR_UNAVAILABLE; /* wait and try again, as for any unreachable start */
		}
		if (r != DB_ERR_UNAVAILABLE) {
			cmf_error("%s", why);
			return r == DB_ERR_MODE_MISMATCH || r == DB_ERR_KEY_MISMATCH || r == DB_ERR_SCHEMA_NEWER ||
					       r == DB_ERR_CORRUPT || r == DB_ERR_RETIRED || r == DB_ERR_INCONSISTENT
				       ? EXIT_CONFIG
				       : EXIT_SOFTWARE;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= cfg->database_startup_timeout_seconds) {
			cmf_error("PostgreSQL is unreachable (database.url); gave up after %d s "
				  "(database.startupTimeoutSeconds)",
				  cfg->database_startup_timeout_seconds);
			return EXIT_UNAVAILABLE;
		}
		if (!warned++)
			cmf_warn("PostgreSQL is unreachable; retrying for up to %d s", cfg->database_startup_timeout_seconds);
		/* Wait a second between tries, but leave at once on SIGTERM/SIGINT (blocked, so queued here). */
		{
			struct timespec one = { 1, 0 };
			sigset_t set;
			int sig;

			sigemptyset(&set);
			sigaddset(&set, SIGTERM);
			sigaddset(&set, SIGINT);
			sig = sigtimedwait(&set, NULL, &one);
			if (sig > 0) {
				cmf_info("received %s while waiting for PostgreSQL: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
				return EXIT_STOPPED;
			}
		}
	}
}

static void
warn_disabled(void)
{
	cmf_warn("################################################################################");
	cmf_warn("# ENCRYPTION DISABLED: secrets are stored in PLAINTEXT in the database.         #");
	cmf_warn("# Development only. A database initialized this way cannot enable it later.   #");
	cmf_warn("################################################################################");
}

static int
cmd_run(const char *cmd, int argc, char **argv)
{
	const char *config_path = NULL;
	struct cmf_config *cfg = NULL;
	struct crypto_key *master = NULL, *previous = NULL;
	char previous_id[CRYPTO_KEY_ID_SIZE] = "";
	struct cmf_app app;
	struct db_conn *conn = NULL;
	struct db_init_result res;
	char err[1024];
	char *password = NULL;
	/* The maintenance commands never initialize a database: they need one that is. */
	int check_only = strcmp(cmd, "check") == 0 || strcmp(cmd, "rotate") == 0 || strcmp(cmd, "rewrap") == 0 ||
			 strcmp(cmd, "retire-deks") == 0;
	bool retire = strcmp(cmd, "retire-deks") == 0;
	const char *target = "", *new_key_path = NULL;
	int rc = EXIT_SOFTWARE, failed = 0;
	sigset_t set;

	memset(&app, 0, sizeof(app));
	if (strcmp(cmd, "rotate") == 0) {
		if (argc < 1 || (strcmp(argv[0], "dek") != 0 && strcmp(argv[0], "master-key") != 0 &&
				 strcmp(argv[0], "finish") != 0)) {
			fprintf(stderr, "cmf rotate: the target must be 'dek', 'master-key' or 'finish'\n");
			usage(stderr);
			return EXIT_USAGE;
		}
		target = argv[0];
		argc--;
		argv++;
	}
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			config_path = argv[++i];
		} else if (strcmp(argv[i], "--new-key") == 0 && i + 1 < argc && strcmp(target, "master-key") == 0) {
			new_key_path = argv[++i];
		} else if (strcmp(argv[i], "--retire") == 0 && strcmp(cmd, "rewrap") == 0) {
			retire = true;
		} else {
			fprintf(stderr, "cmf %s: unexpected argument '%s'\n", cmd, argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (strcmp(target, "master-key") == 0 && new_key_path == NULL) {
		fprintf(stderr, "cmf rotate master-key: --new-key FILE is required (the configured key is the current one)\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (cmf_config_load(config_path, &cfg, err, sizeof(err)) != 0) {
		cmf_error("configuration refused: %s", err);
		return EXIT_CONFIG;
	}
	if (strcmp(cfg->log_level, "debug") == 0)
		cmf_log_set_level(CMF_LOG_DEBUG);
	else if (strcmp(cfg->log_level, "warn") == 0)
		cmf_log_set_level(CMF_LOG_WARN);
	else if (strcmp(cfg->log_level, "error") == 0)
		cmf_log_set_level(CMF_LOG_ERROR);
	cmf_app_init(&app, cfg);

	/* Block the stop signals before any thread exists, so only cmf_http_serve's sigwait sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	db_set_request_timeout(cfg->database_request_timeout_seconds);
	if (cfg->encryption_enabled) {
		if (load_master_key(cfg, &master) != 0) {
			rc = EXIT_CONFIG;
			goto out;
		}
		crypto_key_id(master, app.key_id);
		cmf_info("encryption enabled: AES-%zu-GCM master key loaded from %s, key id %s",
			 crypto_key_len(master) * 8, cfg->encryption_key_file, app.key_id);
		if (cfg->encryption_key_previous_file[0] != '\0' &&
		    load_key_file(cfg->encryption_key_previous_file, "encryption.key.previousFile", true, &previous) != 0) {
			rc = EXIT_CONFIG;
			goto out;
		}
		if (previous != NULL) {
			crypto_key_id(previous, previous_id);
			cmf_info("previous master key loaded from %s, key id %s (a master-key rotation)",
				 cfg->encryption_key_previous_file, previous_id);
		}
		/*
		 * The pin is checked before the database is touched: a wrong key cannot even initialize it. During
		 * a rotation the new key is accepted while the previous file holds the pinned key (the pin moves
		 * to the new key in the same upgrade).
		 */
		if (cfg->encryption_key_id[0] != '\0' && strcmp(cfg->encryption_key_id, app.key_id) != 0 &&
		    strcmp(cfg->encryption_key_id, previous_id) != 0) {
			cmf_error("the encryption key in %s has key id %s, but encryption.key.id pins key id %s: mount the "
				  "pinned key (a new key and its pin change together)",
				  cfg->encryption_key_file, app.key_id, cfg->encryption_key_id);
			rc = EXIT_CONFIG;
			goto out;
		}
	} else {
		warn_disabled();
		if (cfg->encryption_key_file != NULL && cfg->encryption_key_file[0] != '\0')
			cmf_warn("encryption.key.file is set (%s) but encryption.enabled is false: the key is NOT used",
				 cfg->encryption_key_file);
		if (cfg->encryption_key_id[0] != '\0')
			cmf_warn("encryption.key.id is set (%s) but encryption.enabled is false: no key is pinned",
				 cfg->encryption_key_id);
	}
	if (cmf_auth_init(cfg, err, sizeof(err)) != 0) {
		cmf_error("%s", err);
		rc = EXIT_CONFIG;
		goto out;
	}
	if (!cfg->auth_enabled) {
		cmf_warn("AUTHENTICATION DISABLED (auth.enabled=false): anyone who reaches this port can manage "
			 "secrets. Development only; decrypted secrets are never served in this mode.");
	}
	password = load_password(cfg, &failed);
	if (failed) {
		rc = EXIT_CONFIG;
		goto out;
	}
	cmf_app_set_db_password(password);

	db_seal_rotate_after_set((uint64_t)cfg->encryption_dek_rotate_after);
	rc = start_database(&app, master, previous, check_only, &conn, &res);
	if (rc > 0)
		goto out;
	if (strcmp(cmd, "rotate") == 0) {
		rc = rc < 0			       ? (cmf_error("the database has not been initialized: run `cmf init` first"), EXIT_CONFIG)
		     : strcmp(target, "dek") == 0 ? rotate_dek(conn, master)
						   : rotate_master(conn, master, new_key_path);
		goto out;
	}
	if (strcmp(cmd, "rewrap") == 0 || strcmp(cmd, "retire-deks") == 0) {
		rc = maintain(&app, conn, master, rc, &res, strcmp(cmd, "rewrap") == 0, retire);
		goto out;
	}
	if (check_only) {
		if (rc < 0)
			printf("check: configuration and key are valid; the database is not initialized yet: `cmf init` "
			       "would record encryption.enabled=%s%s%s and apply %d migration(s)\n",
			       cfg->encryption_enabled ? "true" : "false", cfg->encryption_enabled ? " with key id " : "",
			       cfg->encryption_enabled ? app.key_id : "", res.migrations_pending);
		else
			printf("check: OK: configuration valid, database initialized with encryption.enabled=%s%s%s, "
			       "schema version %d, %d migration(s) pending, %zu data key(s)\n",
			       cfg->encryption_enabled ? "true" : "false", cfg->encryption_enabled ? ", key id " : "",
			       cfg->encryption_enabled ? app.key_id : "", res.schema_version, res.migrations_pending,
			       res.dek_count);
		if (rc == 0 && cfg->encryption_enabled)
			print_status(conn);
		rc = EXIT_OK;
		goto out;
	}
	if (res.initialized_now)
		cmf_info("initialized the database: encryption.enabled=%s%s%s (this mode is now locked)",
			 cfg->encryption_enabled ? "true" : "false", cfg->encryption_enabled ? ", key id " : "",
			 cfg->encryption_enabled ? app.key_id : "");
	if (res.migrations_applied > 0)
		cmf_info("applied %d migration(s); schema version %d", res.migrations_applied, res.schema_version);
	cmf_info("database ready: schema version %d, %zu data key(s), current term %u", res.schema_version,
		 res.dek_count, res.dek_term);
	/*
	 * The server keeps a copy of the master key (secure heap, app.master) while the keyring is loaded:
	 * it wraps new data-key terms and unwraps the keyring when another process rotated. This one goes.
	 */
	if (master != NULL && (cmf_app_master_set(&app, master) != 0 ||
			       (previous != NULL && cmf_app_previous_set(&app, previous) != 0))) {
		rc = EXIT_SOFTWARE;
		goto out;
	}
	crypto_key_free(master);
	master = NULL;
	if (cfg->encryption_enabled && (rc = reseal(&app, conn)) != EXIT_OK)
		goto out;
	if (strcmp(cmd, "init") == 0) {
		rc = EXIT_OK;
		goto out;
	}
	if ((cfg->encryption_enabled || cfg->auth_enabled) && cmf_keywatch_start(&app) != 0) {
		rc = EXIT_SOFTWARE;
		goto out;
	}
	if (cmf_audit_start(&app) != 0 || cmf_cache_start(&app) != 0 || cmf_ready_start(&app) != 0) {
		rc = EXIT_SOFTWARE;
		cmf_keywatch_stop();
		cmf_audit_stop(0);
		cmf_cache_stop();
		goto out;
	}
	/* The HTTP server stops the audit writer itself: suspended replies wait on it (cmf/http/daemon.c). */
	rc = cmf_http_serve(&app) == 0 ? EXIT_OK : EXIT_CONFIG;
	cmf_api_encryption_stop();
	cmf_audit_stop(0);
	cmf_cache_stop();
	cmf_ready_stop();
	cmf_keywatch_stop();
out:
	crypto_key_free(master);
	crypto_key_free(previous);
	if (app.cfg != NULL)
		cmf_app_cleanup(&app);
	if (password != NULL)
		crypto_freezero(password, strlen(password));
	cmf_config_free(cfg);
	(void)conn;
	return rc;
}

/* OpenSSL's secure heap for key material: room for a thousand keys (a master key, the DEK terms). */
#define CMF_SECURE_HEAP_BYTES 65536

/*
 * Keep key material out of core dumps and out of reach of other processes of the same user: no core
 * files, not dumpable (no ptrace attach, /proc/PID/mem for root only), and every key (crypto/key.c) in
 * OpenSSL's secure heap: its own mapping, excluded from core dumps (MADV_DONTDUMP), between guard pages
 * and locked in RAM where RLIMIT_MEMLOCK allows. Each step that fails is logged and the start goes on:
 * the wiping of keys on free does not depend on them.
 */
static void
harden_process(void)
{
	struct rlimit no_core = { 0, 0 };
	int r;

	if (setrlimit(RLIMIT_CORE, &no_core) != 0)
		cmf_warn("cannot disable core dumps (RLIMIT_CORE): %s", strerror(errno));
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		cmf_warn("cannot mark the process not dumpable: %s", strerror(errno));
	r = CRYPTO_secure_malloc_init(CMF_SECURE_HEAP_BYTES, 16);
	if (r == 0)
		cmf_warn("OpenSSL's secure heap is unavailable: key material stays in ordinary memory (wiped when "
			 "freed, but not locked in RAM nor excluded from dumps)");
	else if (r == 2)
		cmf_debug("the secure heap for key material could not be locked in RAM (RLIMIT_MEMLOCK); it is "
			  "still excluded from core dumps");
}

int
main(int argc, char **argv)
{
	json_set_alloc_funcs(malloc, wiping_free);
	cmf_log_install();
	harden_process();
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0)
		return cmd_version();
	if (strcmp(argv[1], "routes") == 0) {
		cmf_api_routes_print(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argc - 2, argv + 2);
	if (strcmp(argv[1], "agent") == 0)
		return cmf_agent_main(argc - 2, argv + 2);
	if (strcmp(argv[1], "serve") == 0 || strcmp(argv[1], "init") == 0 || strcmp(argv[1], "check") == 0 ||
	    strcmp(argv[1], "rotate") == 0 || strcmp(argv[1], "rewrap") == 0 || strcmp(argv[1], "retire-deks") == 0)
		return cmd_run(argv[1], argc - 2, argv + 2);
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	fprintf(stderr, "cmf: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
