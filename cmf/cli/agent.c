/* cmf agent: fetches a job's resolved client configuration and keeps it current in a file (cmf/cli/agent.h). */
#include "cmf/cli/agent.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmf/log.h"
#include "crypto/buf.h"
#include "crypto/crypto.h"
#include "k8s/k8s.h"

extern char **environ;

/* A token file holds one bearer token (cmf's are 43 characters); 4 KiB leaves room for a JWT. */
#define TOKEN_FILE_MAX 4096
/* A resolution is a few KiB of properties; 4 MiB stops a runaway body without refusing a real one. */
#define BODY_MAX (4u * 1024 * 1024)
/* cmf's ETags are 34 characters (a quoted hash); 256 holds any a proxy might put in their place. */
#define ETAG_MAX 256
/* The server's error message as logged: its messages are one sentence, well under this. */
#define MSG_MAX 512
/* A watch is held up to timeoutSeconds; the transfer may take this much longer before it is given up. */
#define WATCH_SLACK_SECONDS 15
/* A plain GET (no watch) that takes longer than this is treated as cmf being unavailable. */
#define FETCH_TIMEOUT_SECONDS 30
/* Connecting to cmf (TCP and TLS handshake). */
#define CONNECT_TIMEOUT_SECONDS 10
/* The longest name the API accepts (DNS-1123 subdomain). */
#define NAME_MAX_LEN 253

enum opt_kind { OPT_STR, OPT_LONG, OPT_MODE, OPT_FLAG };

struct agent_opts {
	const char *url, *token_file, *environment, *catalog, *database, *format, *out;
	const char *ca_file, *cert_file, *key_file, *on_change;
	long mode, once, timeout_seconds, poll_interval_ms, retries, backoff_ms, backoff_max_ms;
};

/*
 * Every setting, declared once: its option, its environment variable (used when the option is not
 * given), its type, default and bounds. Parsing, checks and the usage text all come from this table.
 */
static const struct opt_spec {
	const char *flag, *env;
	enum opt_kind kind;
	size_t off;
	const char *def;
	long min, max; /* OPT_LONG and OPT_MODE */
	const char *help;
} opt_specs[] = {
#define S(field) offsetof(struct agent_opts, field)
	{ "--url", "CMF_AGENT_URL", OPT_STR, S(url), NULL, 0, 0, "cmf's base URL, e.g. https://cmf.cmf:8080" },
	{ "--token-file", "CMF_AGENT_TOKEN_FILE", OPT_STR, S(token_file), NULL, 0, 0,
	  "file holding the bearer token (re-read when it changes)" },
	{ "--environment", "CMF_AGENT_ENVIRONMENT", OPT_STR, S(environment), NULL, 0, 0, "environment name" },
	{ "--catalog", "CMF_AGENT_CATALOG", OPT_STR, S(catalog), NULL, 0, 0, "Kafka catalog name" },
	{ "--database", "CMF_AGENT_DATABASE", OPT_STR, S(database), NULL, 0, 0, "Kafka database name" },
	{ "--format", "CMF_AGENT_FORMAT", OPT_STR, S(format), "properties", 0, 0,
	  "properties, json, flink-sql or connect" },
	{ "--out", "CMF_AGENT_OUT", OPT_STR, S(out), NULL, 0, 0, "file to write (replaced atomically)" },
	{ "--mode", "CMF_AGENT_MODE", OPT_MODE, S(mode), "0440", 0, 0777, "the file's mode, octal" },
	{ "--ca-file", "CMF_AGENT_CA_FILE", OPT_STR, S(ca_file), NULL, 0, 0, "CA bundle that verifies cmf's certificate" },
	{ "--cert-file", "CMF_AGENT_CERT_FILE", OPT_STR, S(cert_file), NULL, 0, 0, "client certificate (mutual TLS)" },
	{ "--key-file", "CMF_AGENT_KEY_FILE", OPT_STR, S(key_file), NULL, 0, 0, "client certificate's key" },
	{ "--on-change", "CMF_AGENT_ON_CHANGE", OPT_STR, S(on_change), NULL, 0, 0,
	  "run with /bin/sh -c after each rewrite of an existing file" },
	{ "--once", "CMF_AGENT_ONCE", OPT_FLAG, S(once), "false", 0, 1, "fetch, write and exit (init container)" },
	/* 300: the server's cap on a watch's timeoutSeconds. */
	{ "--timeout-seconds", "CMF_AGENT_TIMEOUT_SECONDS", OPT_LONG, S(timeout_seconds), "30", 1, 300,
	  "how long cmf holds a watch before answering 304" },
	/* A server without watch support is polled this often; 10 ms is the floor against a busy loop. */
	{ "--poll-interval-ms", "CMF_AGENT_POLL_INTERVAL_MS", OPT_LONG, S(poll_interval_ms), "5000", 10, 3600000,
	  "poll period when cmf does not hold watch requests" },
	/* --once: 5 tries with 1 s doubling give up after about 15 s; an init container is then restarted. */
	{ "--retries", "CMF_AGENT_RETRIES", OPT_LONG, S(retries), "5", 1, 100,
	  "--once: tries while cmf is unreachable or answers 5xx" },
	{ "--backoff-ms", "CMF_AGENT_BACKOFF_MS", OPT_LONG, S(backoff_ms), "1000", 1, 3600000,
	  "first wait after an error, doubled at each further error" },
	{ "--backoff-max-ms", "CMF_AGENT_BACKOFF_MAX_MS", OPT_LONG, S(backoff_max_ms), "30000", 1, 3600000,
	  "longest wait between tries" },
#undef S
};

#define NOPTS (sizeof(opt_specs) / sizeof(opt_specs[0]))

static const char *const formats[] = { "properties", "json", "flink-sql", "connect" };

/* Outcomes of one request. */
enum fetch_outcome {
	FETCH_OK,           /* 200: body and etag filled */
	FETCH_NOT_MODIFIED, /* 304 */
	FETCH_HTTP_ERROR,   /* another status: status and msg filled */
	FETCH_UNREACHABLE,  /* no answer (connection, TLS, timeout): msg filled */
	FETCH_STOPPED,      /* SIGTERM or SIGINT */
	FETCH_TOKEN,        /* the token file cannot be read or holds no usable token: msg filled */
	FETCH_INTERNAL,     /* out of memory, libcurl refused an option */
};

struct agent {
	const struct agent_opts *o;
	CURL *curl;
	struct k8s_watch *token_watch;
	char *token; /* wiped when replaced or freed */
	size_t token_len;
	unsigned token_gen; /* incremented each time a new token is read from the file */
	int token_loose_warned;
	char *url;       /* the resolution route with ?format=... */
	char *watch_url; /* the same with &watch=true&timeoutSeconds=N */
	char etag[ETAG_MAX];      /* of the file's current content; "" when unknown */
	char resp_etag[ETAG_MAX]; /* of the last response */
	struct crypto_buf *body;
	int body_too_large;
	sigset_t stop_set;
	int stop;
	char curl_err[CURL_ERROR_SIZE];
};

/* --- memory: everything libcurl holds (the Authorization header, received bodies) is wiped when freed --- */

static void
wipe_free(void *p)
{
	if (p != NULL)
		crypto_freezero(p, malloc_usable_size(p));
}

static void *
wipe_realloc(void *p, size_t n)
{
	void *q;
	size_t old;

	if (p == NULL)
		return malloc(n);
	/* Never realloc in place: the old block could be left in freed memory unwiped. */
	if ((q = malloc(n == 0 ? 1 : n)) == NULL)
		return NULL;
	old = malloc_usable_size(p);
	memcpy(q, p, old < n ? old : n);
	wipe_free(p);
	return q;
}

static char *
wipe_strdup(const char *s)
{
	return strdup(s);
}

/* --- settings --- */

static void *
opt_field(struct agent_opts *o, const struct opt_spec *s)
{
	return (char *)o + s->off;
}

/* Store `v` (from `what`: an option or a variable) into the setting; -1 with one line on stderr. */
static int
opt_set(struct agent_opts *o, const struct opt_spec *s, const char *v, const char *what)
{
	char *end = NULL;
	long n;

	if (s->kind == OPT_STR) {
		if (v[0] == '\0') {
			fprintf(stderr, "cmf agent: %s must not be empty\n", what);
			return -1;
		}
		*(const char **)opt_field(o, s) = v;
		return 0;
	}
	if (s->kind == OPT_FLAG) {
		if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
			fprintf(stderr, "cmf agent: %s must be true or false\n", what);
			return -1;
		}
		*(long *)opt_field(o, s) = strcmp(v, "true") == 0;
		return 0;
	}
	errno = 0;
	n = strtol(v, &end, s->kind == OPT_MODE ? 8 : 10);
	if (errno != 0 || end == v || *end != '\0' || n < s->min || n > s->max) {
		if (s->kind == OPT_MODE)
			fprintf(stderr, "cmf agent: %s must be an octal file mode (0 to 0777), not '%s'\n", what, v);
		else
			fprintf(stderr, "cmf agent: %s must be an integer from %ld to %ld, not '%s'\n", what, s->min,
				s->max, v);
		return -1;
	}
	*(long *)opt_field(o, s) = n;
	return 0;
}

/* A name as the API accepts it (DNS-1123 characters); the server checks the rest. */
static int
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.'))
			return 0;
	return 1;
}

static void
agent_usage(FILE *f)
{
	fprintf(f, "usage: cmf agent --url URL --token-file FILE --environment ENV --catalog CAT --database DB --out FILE"
		   " [options]\n");
	for (size_t i = 0; i < NOPTS; i++)
		fprintf(f, "  %-18s %-5s %s%s%s%s [%s]\n", opt_specs[i].flag,
			opt_specs[i].kind == OPT_FLAG ? "" : opt_specs[i].kind == OPT_STR ? "VALUE" : "N",
			opt_specs[i].help, opt_specs[i].def != NULL ? " (default " : "",
			opt_specs[i].def != NULL ? opt_specs[i].def : "", opt_specs[i].def != NULL ? ")" : "",
			opt_specs[i].env);
	fprintf(f, "Each option may also be given by the environment variable in brackets; the option wins.\n"
		   "Exit status: 0 written (--once) or stopped by SIGTERM; 64 usage; 65 404/409/422; 66 token file "
		   "unreadable; 69 cmf unreachable or 5xx after --retries; 73 --out not writable; 77 401/403.\n");
}

/* Defaults, then CMF_AGENT_* variables, then the command line; 0, or -1 after one line on stderr. */
static int
opts_parse(int argc, char **argv, struct agent_opts *o)
{
	char what[128];

	memset(o, 0, sizeof(*o));
	for (size_t i = 0; i < NOPTS; i++) {
		const char *e = getenv(opt_specs[i].env);

		if (opt_specs[i].def != NULL && opt_set(o, &opt_specs[i], opt_specs[i].def, opt_specs[i].flag) != 0)
			return -1;
		snprintf(what, sizeof(what), "%s", opt_specs[i].env);
		if (e != NULL && e[0] != '\0' && opt_set(o, &opt_specs[i], e, what) != 0)
			return -1;
	}
	for (int i = 0; i < argc; i++) {
		size_t k;

		for (k = 0; k < NOPTS && strcmp(argv[i], opt_specs[k].flag) != 0; k++)
			;
		if (k == NOPTS) {
			if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
				agent_usage(stdout);
				exit(CMF_AGENT_EXIT_OK);
			}
			fprintf(stderr, "cmf agent: unexpected argument '%s' (cmf agent --help lists the options)\n", argv[i]);
			return -1;
		}
		if (opt_specs[k].kind == OPT_FLAG) {
			*(long *)opt_field(o, &opt_specs[k]) = 1;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "cmf agent: %s needs a value\n", argv[i]);
			return -1;
		}
		if (opt_set(o, &opt_specs[k], argv[++i], opt_specs[k].flag) != 0)
			return -1;
	}
	{
		const struct {
			const char *v, *flag;
		} required[] = { { o->url, "--url" },         { o->token_file, "--token-file" },
				 { o->environment, "--environment" }, { o->catalog, "--catalog" },
				 { o->database, "--database" },   { o->out, "--out" } };

		for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
			if (required[i].v == NULL) {
				fprintf(stderr, "cmf agent: %s is required (cmf agent --help lists the options)\n",
					required[i].flag);
				return -1;
			}
	}
	if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0) {
		fprintf(stderr, "cmf agent: --url must start with http:// or https://\n");
		return -1;
	}
	if (!name_ok(o->environment) || !name_ok(o->catalog) || !name_ok(o->database)) {
		fprintf(stderr, "cmf agent: --environment, --catalog and --database must be names of lowercase letters, "
				"digits, '-' and '.' (at most 253 characters)\n");
		return -1;
	}
	{
		size_t i;

		for (i = 0; i < sizeof(formats) / sizeof(formats[0]) && strcmp(o->format, formats[i]) != 0; i++)
			;
		if (i == sizeof(formats) / sizeof(formats[0])) {
			fprintf(stderr, "cmf agent: --format must be properties, json, flink-sql or connect\n");
			return -1;
		}
	}
	if ((o->cert_file == NULL) != (o->key_file == NULL)) {
		fprintf(stderr, "cmf agent: --cert-file and --key-file go together\n");
		return -1;
	}
	if (o->backoff_max_ms < o->backoff_ms) {
		fprintf(stderr, "cmf agent: --backoff-max-ms must not be below --backoff-ms\n");
		return -1;
	}
	if (o->out[strlen(o->out) - 1] == '/') {
		fprintf(stderr, "cmf agent: --out must name a file, not a directory\n");
		return -1;
	}
	return 0;
}

/* --- signals and time --- */

static long long
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* SIGTERM/SIGINT are blocked: a pending one means stop (checked between steps and by libcurl's callback). */
static int
stop_requested(struct agent *a)
{
	sigset_t pending;

	if (a->stop)
		return 1;
	if (sigpending(&pending) == 0 && (sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1))
		a->stop = 1;
	return a->stop;
}

/* Wait `ms`, or less when a stop signal arrives; 1 when stopping. */
static int
agent_sleep(struct agent *a, long long ms)
{
	long long end = now_ms() + ms;

	while (!a->stop) {
		long long left = end - now_ms();
		struct timespec ts;

		if (left <= 0)
			break;
		ts.tv_sec = (time_t)(left / 1000);
		ts.tv_nsec = (long)(left % 1000) * 1000000;
		if (sigtimedwait(&a->stop_set, NULL, &ts) > 0)
			a->stop = 1;
	}
	return a->stop;
}

/* --- the token --- */

/*
 * Re-read the token file when it changed (a rotated Secret: the kubelet swaps the file). The token is
 * the file's content without trailing whitespace; it must be printable ASCII without spaces, as an
 * Authorization header needs. 0, or -1 with `why`.
 */
static int
token_refresh(struct agent *a, char *why, size_t whylen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int loose = 0, r, ret = -1;
	char detail[400]; /* leaves room in a MSG_MAX message */

	r = k8s_watch_poll(a->token_watch, &buf, &len, &loose, detail, sizeof(detail));
	if (r == K8S_WATCH_UNCHANGED && a->token != NULL)
		return 0;
	if (r < 0) {
		snprintf(why, whylen, "cannot read the token file: %s", detail);
		goto out;
	}
	if (r == K8S_WATCH_UNCHANGED) {
		/* Unchanged but never accepted: the file was refused before; the same bytes are refused again. */
		snprintf(why, whylen, "the token file %s holds no usable token", a->o->token_file);
		goto out;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	for (size_t i = 0; i < len; i++)
		if (buf[i] <= 0x20 || buf[i] >= 0x7f) {
			snprintf(why, whylen, "the token file %s holds a space or a control or non-ASCII character",
				 a->o->token_file);
			k8s_watch_forget(a->token_watch);
			goto out;
		}
	if (len == 0) {
		snprintf(why, whylen, "the token file %s is empty", a->o->token_file);
		k8s_watch_forget(a->token_watch);
		goto out;
	}
	if (loose && !a->token_loose_warned++)
		cmf_warn("cmf agent: the token file %s is readable by other users: restrict it to mode 0400 or 0440",
			 a->o->token_file);
	if (a->token != NULL)
		crypto_freezero(a->token, a->token_len + 1);
	buf[len] = '\0';
	a->token = (char *)buf;
	a->token_len = len;
	a->token_gen++;
	buf = NULL;
	if (r == K8S_WATCH_CHANGED && a->curl != NULL)
		cmf_debug("cmf agent: token read from %s", a->o->token_file);
	ret = 0;
out:
	if (buf != NULL)
		crypto_freezero(buf, len);
	return ret;
}

/* --- HTTP --- */

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct agent *a = arg;

	if (crypto_buf_put(a->body, data, size * n) != CRYPTO_OK) {
		a->body_too_large = 1;
		return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR */
	}
	return size * n;
}

static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct agent *a = arg;
	size_t len = size * n;

	/* A new status line (after a 100 Continue) starts a new set of headers. */
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
		a->resp_etag[0] = '\0';
	if (len > 5 && strncasecmp(data, "etag:", 5) == 0) {
		const char *v = data + 5, *e = data + len;

		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - v) < sizeof(a->resp_etag)) {
			memcpy(a->resp_etag, v, (size_t)(e - v));
			a->resp_etag[e - v] = '\0';
		}
	}
	return len;
}

static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	/* Called about once a second during a held watch, so SIGTERM ends it promptly. */
	return stop_requested(arg);
}

/* The message of a CMF error body ({"errors":[{"message":...}]}); the server never puts secrets there. */
static void
error_message(const struct agent *a, char *msg, size_t msglen)
{
	json_t *j = json_loadb((const char *)crypto_buf_ptr(a->body), crypto_buf_len(a->body), 0, NULL);
	const char *m = json_string_value(json_object_get(json_array_get(json_object_get(j, "errors"), 0), "message"));

	snprintf(msg, msglen, "%s", m != NULL ? m : "(no error message)");
	json_decref(j);
}

static int
curl_setup(struct agent *a)
{
	const struct agent_opts *o = a->o;
	CURL *c = curl_easy_init();
	int bad = 0;

	if (c == NULL)
		return -1;
	bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_SECONDS) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, a) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HEADERDATA, a) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_XFERINFODATA, a) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, a->curl_err) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "cmf-agent") != CURLE_OK;
	if (o->ca_file != NULL)
		bad |= curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file) != CURLE_OK;
	if (o->cert_file != NULL) {
		bad |= curl_easy_setopt(c, CURLOPT_SSLCERT, o->cert_file) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_SSLKEY, o->key_file) != CURLE_OK;
	}
	if (bad) {
		curl_easy_cleanup(c);
		return -1;
	}
	a->curl = c;
	return 0;
}

/* The resolution route (names escaped by libcurl, though name_ok leaves nothing to escape). */
static int
urls_build(struct agent *a)
{
	const struct agent_opts *o = a->o;
	char *env = curl_easy_escape(a->curl, o->environment, 0);
	char *cat = curl_easy_escape(a->curl, o->catalog, 0);
	char *db = curl_easy_escape(a->curl, o->database, 0);
	size_t base = strlen(o->url), n;
	int ret = -1;

	while (base > 0 && o->url[base - 1] == '/')
		base--;
	if (env == NULL || cat == NULL || db == NULL)
		goto out;
	n = base + strlen(env) + strlen(cat) + strlen(db) + strlen(o->format) + 128;
	if ((a->url = malloc(n)) == NULL || (a->watch_url = malloc(n)) == NULL)
		goto out;
	snprintf(a->url, n, "%.*s/cmf/api/v1/environments/%s/client-configs/%s/%s?format=%s", (int)base, o->url, env,
		 cat, db, o->format);
	snprintf(a->watch_url, n, "%s&watch=true&timeoutSeconds=%ld", a->url, o->timeout_seconds);
	ret = 0;
out:
	curl_free(env);
	curl_free(cat);
	curl_free(db);
	return ret;
}

/*
 * One GET of the resolution: a watch when `watch`, conditional on a->etag when it is set. On FETCH_OK
 * a->body holds the content and a->resp_etag its ETag; `status` is the HTTP status (0 without answer);
 * `msg` the server's error message or libcurl's reason (never a 200's body).
 */
static enum fetch_outcome
fetch(struct agent *a, int watch, long *status, char *msg, size_t msglen)
{
	struct curl_slist *h = NULL, *h2;
	char line[TOKEN_FILE_MAX + 32];
	enum fetch_outcome ret = FETCH_INTERNAL;
	CURLcode cr;

	*status = 0;
	msg[0] = '\0';
	if (stop_requested(a))
		return FETCH_STOPPED;
	if (token_refresh(a, msg, msglen) != 0)
		return FETCH_TOKEN;
	crypto_buf_free(a->body);
	a->body = NULL;
	a->body_too_large = 0;
	a->resp_etag[0] = '\0';
	a->curl_err[0] = '\0';
	if (crypto_buf_new(BODY_MAX, &a->body) != CRYPTO_OK)
		goto out;
	snprintf(line, sizeof(line), "Authorization: Bearer %s", a->token);
	h = curl_slist_append(NULL, line);
	OPENSSL_cleanse(line, sizeof(line));
	if (h == NULL)
		goto out;
	if (a->etag[0] != '\0') {
		snprintf(line, sizeof(line), "If-None-Match: %s", a->etag);
		if ((h2 = curl_slist_append(h, line)) == NULL)
			goto out;
		h = h2;
	}
	if (curl_easy_setopt(a->curl, CURLOPT_URL, watch ? a->watch_url : a->url) != CURLE_OK ||
	    curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, h) != CURLE_OK ||
	    curl_easy_setopt(a->curl, CURLOPT_TIMEOUT,
			     watch ? a->o->timeout_seconds + WATCH_SLACK_SECONDS : (long)FETCH_TIMEOUT_SECONDS) != CURLE_OK)
		goto out;
	cr = curl_easy_perform(a->curl);
	curl_easy_setopt(a->curl, CURLOPT_HTTPHEADER, NULL);
	if (cr == CURLE_ABORTED_BY_CALLBACK || stop_requested(a)) {
		ret = FETCH_STOPPED;
		goto out;
	}
	if (cr == CURLE_WRITE_ERROR && a->body_too_large) {
		curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, status);
		snprintf(msg, msglen, "the response is larger than %u bytes", BODY_MAX);
		ret = FETCH_HTTP_ERROR;
		goto out;
	}
	if (cr != CURLE_OK) {
		snprintf(msg, msglen, "%s", a->curl_err[0] != '\0' ? a->curl_err : curl_easy_strerror(cr));
		ret = FETCH_UNREACHABLE;
		goto out;
	}
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, status);
	if (*status == 200) {
		ret = FETCH_OK;
	} else if (*status == 304) {
		ret = FETCH_NOT_MODIFIED;
	} else {
		error_message(a, msg, msglen);
		ret = FETCH_HTTP_ERROR;
	}
out:
	curl_slist_free_all(h);
	if (ret != FETCH_OK) {
		crypto_buf_free(a->body);
		a->body = NULL;
	}
	return ret;
}

/* --- the file --- */

/*
 * Replace --out with `data` unless it already holds exactly these bytes: a temporary file in the same
 * directory (mkstemp), written whole, given --mode, fsync'd, then renamed over --out, so a reader sees
 * the old file or the new one, never a partial or empty one. *replaced is 1 when an existing file was
 * replaced by different bytes, *written 1 when anything was written. 0, or -1 with `why`.
 */
static int
file_update(const struct agent_opts *o, const uint8_t *data, size_t len, int *written, int *replaced, char *why,
	    size_t whylen)
{
	uint8_t *cur = NULL;
	size_t curlen = 0, done = 0;
	char *tmp = NULL, *dir = NULL;
	const char *slash = strrchr(o->out, '/');
	int loose, fd = -1, existed, r, ret = -1;

	*written = 0;
	*replaced = 0;
	r = k8s_secret_read_file(o->out, BODY_MAX, &cur, &curlen, &loose, NULL, 0);
	existed = r != K8S_ERR_NOT_FOUND;
	if (r == K8S_OK && curlen == len && CRYPTO_memcmp(cur, data, len) == 0) {
		ret = 0;
		goto out;
	}
	if ((tmp = malloc(strlen(o->out) + 16)) == NULL || (dir = strdup(slash != NULL ? o->out : ".")) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	if (slash != NULL)
		dir[slash == o->out ? 1 : slash - o->out] = '\0';
	/* A dot file beside --out: the same file system (rename is atomic) and hidden from globbing readers. */
	sprintf(tmp, "%s/.%s.XXXXXX", dir, slash != NULL ? slash + 1 : o->out);
	if ((fd = mkstemp(tmp)) < 0) {
		snprintf(why, whylen, "cannot create a temporary file in %s: %s", dir, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	while (done < len) {
		ssize_t w = write(fd, data + done, len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			snprintf(why, whylen, "cannot write %s: %s", tmp, strerror(errno));
			goto out;
		}
		done += (size_t)w;
	}
	if (fchmod(fd, (mode_t)o->mode) != 0 || fsync(fd) != 0) {
		snprintf(why, whylen, "cannot set the mode of or sync %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		snprintf(why, whylen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, o->out) != 0) {
		snprintf(why, whylen, "cannot rename %s to %s: %s", tmp, o->out, strerror(errno));
		goto out;
	}
	free(tmp);
	tmp = NULL;
	/* The rename itself survives a crash of the node only once the directory is synced (best effort). */
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
		fd = -1;
	}
	*written = 1;
	*replaced = existed;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	free(dir);
	if (cur != NULL)
		crypto_freezero(cur, curlen);
	return ret;
}

/* --on-change: /bin/sh -c CMD with default signal handling, waited for; its exit status is logged. */
static void
run_on_change(const struct agent_opts *o)
{
	posix_spawnattr_t attr;
	sigset_t none, defs;
	char *argv[] = { "sh", "-c", (char *)o->on_change, NULL };
	pid_t pid;
	int st, r;

	sigemptyset(&none);
	sigemptyset(&defs);
	sigaddset(&defs, SIGPIPE);
	sigaddset(&defs, SIGTERM);
	sigaddset(&defs, SIGINT);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &defs);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	r = posix_spawn(&pid, "/bin/sh", NULL, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	if (r != 0) {
		cmf_error("cmf agent: cannot run the --on-change command: %s", strerror(r));
		return;
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			cmf_error("cmf agent: cannot wait for the --on-change command: %s", strerror(errno));
			return;
		}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		cmf_info("cmf agent: the --on-change command exited with status 0");
	else if (WIFEXITED(st))
		cmf_warn("cmf agent: the --on-change command exited with status %d", WEXITSTATUS(st));
	else
		cmf_warn("cmf agent: the --on-change command was killed by signal %d", WTERMSIG(st));
}

/* Write a 200's body to --out (*written: the file changed); 0, or -1 after logging why. */
static int
apply(struct agent *a, int *written)
{
	char why[1024];
	int replaced = 0;

	if (file_update(a->o, crypto_buf_ptr(a->body), crypto_buf_len(a->body), written, &replaced, why,
			sizeof(why)) != 0) {
		cmf_error("cmf agent: cannot write %s: %s", a->o->out, why);
		return -1;
	}
	snprintf(a->etag, sizeof(a->etag), "%s", a->resp_etag);
	if (*written)
		cmf_info("cmf agent: wrote %s (%zu bytes, mode %04lo, ETag %s)", a->o->out, crypto_buf_len(a->body),
			 a->o->mode, a->etag[0] != '\0' ? a->etag : "none");
	crypto_buf_free(a->body);
	a->body = NULL;
	if (replaced && a->o->on_change != NULL)
		run_on_change(a->o);
	return 0;
}

/*
 * One line for a failed request: the status and the server's message, or why there was no answer.
 * `final`: the request is not retried (an error); otherwise cmf's side failing is a warning.
 */
static void
log_failure(struct agent *a, enum fetch_outcome f, long status, const char *msg, const char *tail, int final)
{
	enum cmf_log_level lvl = final || (f == FETCH_HTTP_ERROR && status < 500) ? CMF_LOG_ERROR : CMF_LOG_WARN;

	if (f == FETCH_HTTP_ERROR)
		cmf_log(lvl, "cmf agent: GET %s answered %ld: %s%s", a->url, status, msg, tail);
	else if (f == FETCH_UNREACHABLE)
		cmf_log(lvl, "cmf agent: GET %s: no answer: %s%s", a->url, msg, tail);
	else if (f == FETCH_TOKEN)
		cmf_error("cmf agent: %s%s", msg, tail);
	else
		cmf_error("cmf agent: internal error (out of memory or libcurl set-up)%s", tail);
}

/* Retried by --once: cmf unreachable or failing on its side. The rest cannot succeed by retrying. */
static int
retryable(enum fetch_outcome f, long status)
{
	return f == FETCH_UNREACHABLE || (f == FETCH_HTTP_ERROR && status >= 500);
}

static int
run_once(struct agent *a)
{
	long long backoff = a->o->backoff_ms;
	char msg[MSG_MAX], tail[128];
	long status;
	int written;

	for (long try = 1;; try++) {
		enum fetch_outcome f = fetch(a, 0, &status, msg, sizeof(msg));

		if (f == FETCH_STOPPED)
			return CMF_AGENT_EXIT_STOPPED;
		if (f == FETCH_OK)
			return apply(a, &written) == 0 ? CMF_AGENT_EXIT_OK : CMF_AGENT_EXIT_CANTCREAT;
		if (retryable(f, status) && try < a->o->retries) {
			snprintf(tail, sizeof(tail), " (try %ld of %ld; next in %lld ms)", try, a->o->retries, backoff);
			log_failure(a, f, status, msg, tail, 0);
			if (agent_sleep(a, backoff))
				return CMF_AGENT_EXIT_STOPPED;
			backoff = backoff * 2 > a->o->backoff_max_ms ? a->o->backoff_max_ms : backoff * 2;
			continue;
		}
		if (retryable(f, status))
			snprintf(tail, sizeof(tail), " (gave up after %ld tries)", try);
		else
			tail[0] = '\0';
		log_failure(a, f, status, msg, tail, 1);
		if (f == FETCH_TOKEN)
			return CMF_AGENT_EXIT_NOINPUT;
		if (f == FETCH_INTERNAL)
			return CMF_AGENT_EXIT_SOFTWARE;
		if (retryable(f, status))
			return CMF_AGENT_EXIT_UNAVAILABLE;
		if (status == 401 || status == 403)
			return CMF_AGENT_EXIT_NOPERM;
		return CMF_AGENT_EXIT_DATAERR;
	}
}

/*
 * The sidecar: a watch (If-None-Match: the file's ETag) answered by a change (200: rewrite), by 304
 * when nothing changed (ask again), or by an error (keep the file, back off, ask again). A server that
 * answers a watch at once (one without watch support) is polled every --poll-interval-ms instead; one
 * that refuses the watch parameters (400) is asked plain conditional GETs at that period.
 */
static int
run_sidecar(struct agent *a)
{
	long long backoff = 0, t0;
	char msg[MSG_MAX], tail[128];
	int failing = 0, watch_refused = 0, polling_said = 0, written = 0;
	long status;

	while (!stop_requested(a)) {
		int watch = a->etag[0] != '\0' && !watch_refused;
		enum fetch_outcome f;

		t0 = now_ms();
		f = fetch(a, watch, &status, msg, sizeof(msg));
		if (f == FETCH_STOPPED)
			break;
		if (f == FETCH_OK && apply(a, &written) == 0) {
			if (failing)
				cmf_info("cmf agent: GET %s answered 200 again: %s is current", a->url, a->o->out);
			failing = 0;
			backoff = 0;
			/* A change is watched for again at once; a 200 that changed nothing (something on the way
			 * dropped If-None-Match) is paced like a 304, never a tight loop. */
			if (written || now_ms() - t0 >= a->o->poll_interval_ms)
				continue;
			if (agent_sleep(a, a->o->poll_interval_ms - (now_ms() - t0)))
				break;
			continue;
		}
		if (f == FETCH_NOT_MODIFIED) {
			long long elapsed = now_ms() - t0;

			if (failing)
				cmf_info("cmf agent: GET %s answered 304 again: %s is current", a->url, a->o->out);
			failing = 0;
			backoff = 0;
			if (elapsed < a->o->poll_interval_ms) {
				if (!polling_said++ && !watch_refused)
					cmf_info("cmf agent: cmf answered a watch at once (a server without watch "
						 "requests): polling every %ld ms",
						 a->o->poll_interval_ms);
				if (agent_sleep(a, a->o->poll_interval_ms - elapsed))
					break;
			}
			continue;
		}
		/*
		 * A held watch sent with the token the file held then: revoked after a rotation of the Secret, it
		 * ends with 401 at once. When the file holds a new token by now, ask again with it, at once.
		 */
		if (f == FETCH_HTTP_ERROR && (status == 401 || status == 403)) {
			unsigned gen = a->token_gen;
			char why[MSG_MAX];

			if (token_refresh(a, why, sizeof(why)) == 0 && a->token_gen != gen) {
				cmf_info("cmf agent: cmf answered %ld to a request sent with the previous token; the token file "
					 "changed meanwhile: asking again with the new token",
					 status);
				continue;
			}
		}
		if (f == FETCH_HTTP_ERROR && status == 400 && watch) {
			watch_refused = 1;
			cmf_info("cmf agent: cmf refused the watch request (400: %s): polling with conditional GETs "
				 "every %ld ms",
				 msg, a->o->poll_interval_ms);
			continue;
		}
		if (f == FETCH_OK) /* the write failed (logged): ask again with a plain GET after the backoff */
			a->etag[0] = '\0';
		backoff = backoff == 0 ? a->o->backoff_ms
			  : backoff * 2 > a->o->backoff_max_ms ? a->o->backoff_max_ms
							       : backoff * 2;
		snprintf(tail, sizeof(tail), "; keeping %s as it is, next try in %lld ms", a->o->out, backoff);
		if (f != FETCH_OK)
			log_failure(a, f, status, msg, tail, 0);
		failing = 1;
		if (agent_sleep(a, backoff))
			break;
	}
	cmf_info("cmf agent: stopping on a signal");
	return CMF_AGENT_EXIT_OK;
}

int
cmf_agent_main(int argc, char **argv)
{
	struct agent_opts o;
	struct agent a;
	int rc = CMF_AGENT_EXIT_SOFTWARE, curl_up = 0;

	memset(&a, 0, sizeof(a));
	if (opts_parse(argc, argv, &o) != 0)
		return CMF_AGENT_EXIT_USAGE;
	a.o = &o;
	sigemptyset(&a.stop_set);
	sigaddset(&a.stop_set, SIGTERM);
	sigaddset(&a.stop_set, SIGINT);
	/* Blocked before libcurl may start a resolver thread, so every thread leaves them pending for us. */
	sigprocmask(SIG_BLOCK, &a.stop_set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wipe_free, wipe_realloc, wipe_strdup, calloc) != CURLE_OK) {
		cmf_error("cmf agent: libcurl cannot be initialized");
		goto out;
	}
	curl_up = 1;
	if (k8s_watch_new(o.token_file, TOKEN_FILE_MAX, &a.token_watch) != K8S_OK || curl_setup(&a) != 0 ||
	    urls_build(&a) != 0) {
		cmf_error("cmf agent: cannot set up the HTTP client (out of memory, or libcurl refused an option)");
		goto out;
	}
	if (o.mode & 0007)
		cmf_warn("cmf agent: --mode %04lo lets every user of the pod read %s", o.mode, o.out);
	/* Plain HTTP is for a cmf on the same host or behind a mesh that encrypts: the token goes in clear. */
	if (strncmp(o.url, "http://", 7) == 0)
		cmf_warn("cmf agent: --url is plain http://: the token and the configuration cross the network unencrypted "
			 "unless a service mesh encrypts them; use https:// with --ca-file");
	rc = o.once ? run_once(&a) : run_sidecar(&a);
out:
	if (a.token != NULL)
		crypto_freezero(a.token, a.token_len + 1);
	crypto_buf_free(a.body);
	k8s_watch_free(a.token_watch);
	free(a.url);
	free(a.watch_url);
	if (a.curl != NULL)
		curl_easy_cleanup(a.curl);
	if (curl_up)
		curl_global_cleanup();
	return rc;
}
