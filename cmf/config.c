/* cmf configuration: one settings table drives defaults, the YAML file (libyaml events) and CMF_* environment overrides. */
#include "cmf/config.h"
#include "cmf/http/principal.h"
#include "cmf/text.h"
#include "crypto/crypto.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/*
 * A configuration file is a few hundred bytes; 1 MiB is far beyond any real one and bounds what a
 * mistaken path (a log, a device) can make us read.
 */
#define CFG_FILE_MAX (1024 * 1024)

/* Found values echoed in messages are cut here: enough to spot a typo, short enough for one line. */
#define CFG_ECHO_MAX 40

/* Unknown keys echoed in messages are cut here: a key name, not a paragraph. */
#define CFG_KEY_ECHO_MAX 64

enum cfg_type { CFG_STRING, CFG_INT, CFG_LONG, CFG_BOOL };

struct cfg_setting {
	const char *path;     /* dotted YAML path */
	const char *env;      /* environment variable overriding it */
	enum cfg_type type;
	long min, max;        /* CFG_INT, CFG_LONG: inclusive range */
	const char *def_str;  /* CFG_STRING: default */
	long def_num;         /* CFG_INT, CFG_LONG, CFG_BOOL: default */
	size_t offset;        /* of the field in struct cmf_config */
};

#define CFG_OFF(field) offsetof(struct cmf_config, field)

/* Every setting, once: adding a setting is one row here (and one field in struct cmf_config). */
static const struct cfg_setting cfg_settings[] = {
	{ "server.listen", "CMF_LISTEN", CFG_STRING, 0, 0, "127.0.0.1:8080", 0, CFG_OFF(listen) },
	/* One PostgreSQL connection per worker: 256 is beyond what one PostgreSQL serves well. */
	{ "server.threads", "CMF_SERVER_THREADS", CFG_INT, 1, 256, NULL, 8, CFG_OFF(threads) },
	/*
	 * 1 KiB holds the smallest resource; 16 MiB is the most cmf seals in one value (CRYPTO_MAX_PLAINTEXT),
	 * so a larger body could only fail later (default 1 MiB: a Kubernetes Secret's cap).
	 */
	{ "server.maxBodyBytes", "CMF_SERVER_MAX_BODY_BYTES", CFG_LONG, 1024, 16777216L, NULL, 1048576L,
	  CFG_OFF(max_body_bytes) },
	/* An hour bounds how long an idle or slow client can hold a connection. */
	{ "server.connectionTimeoutSeconds", "CMF_SERVER_CONNECTION_TIMEOUT_SECONDS", CFG_INT, 1, 3600, NULL,
	  30, CFG_OFF(connection_timeout_seconds) },
	/* 0 stops at once; 10 minutes is past any Kubernetes terminationGracePeriod in use. */
	{ "server.drainSeconds", "CMF_SERVER_DRAIN_SECONDS", CFG_INT, 0, 600, NULL, 10,
	  CFG_OFF(drain_seconds) },
	{ "database.url", "CMF_DATABASE_URL", CFG_STRING, 0, 0, "", 0, CFG_OFF(database_url) },
	{ "database.passwordFile", "CMF_DATABASE_PASSWORD_FILE", CFG_STRING, 0, 0, "", 0,
	  CFG_OFF(database_password_file) },
	/* 0 tries once; an hour covers a database that starts slowly beside us. */
	{ "database.startupTimeoutSeconds", "CMF_DATABASE_STARTUP_TIMEOUT_SECONDS", CFG_INT, 0, 3600, NULL,
	  30, CFG_OFF(database_startup_timeout_seconds) },
	{ "encryption.enabled", "CMF_ENCRYPTION_ENABLED", CFG_BOOL, 0, 1, NULL, 1, CFG_OFF(encryption_enabled) },
	{ "encryption.key.file", "CMF_ENCRYPTION_KEY_FILE", CFG_STRING, 0, 0, "", 0,
	  CFG_OFF(encryption_key_file) },
	/* The previous master key during a rotation (a second property of the same Secret); may be absent. */
	{ "encryption.key.previousFile", "CMF_ENCRYPTION_KEY_PREVIOUS_FILE", CFG_STRING, 0, 0, "", 0,
	  CFG_OFF(encryption_key_previous_file) },
	/* 1..100000: caps file descriptors and per-connection memory under a connection flood. */
	{ "server.maxConnections", "CMF_SERVER_MAX_CONNECTIONS", CFG_INT, 1, 100000, NULL, 1000,
	  CFG_OFF(max_connections) },
	/*
	 * Connections from one client address: slow clients (libmicrohttpd 0.9.75 has no whole-request
	 * deadline) cannot take every slot; 0 means no per-client cap (e.g. behind a proxy that shares one
	 * address — then the proxy must enforce request deadlines).
	 */
	{ "server.maxConnectionsPerClient", "CMF_SERVER_MAX_CONNECTIONS_PER_CLIENT", CFG_INT, 0, 100000, NULL, 100,
	  CFG_OFF(max_connections_per_client) },
	/*
	 * Watch requests held at once (each a suspended connection, counted in server.maxConnections too). 500,
	 * half the default connection cap: a fleet of watching sidecars can never take every connection from
	 * admins and plain calls. 0 holds none (every watch gets 503): a cap, never "unlimited", because an
	 * unlimited count would let watchers fill server.maxConnections.
	 */
	{ "server.maxWatchers", "CMF_SERVER_MAX_WATCHERS", CFG_INT, 0, 100000, NULL, 500, CFG_OFF(max_watchers) },
	/* Request line + headers must fit: 4 KiB..1 MiB; 32 KiB is libmicrohttpd's own default. */
	{ "server.maxHeaderBytes", "CMF_SERVER_MAX_HEADER_BYTES", CFG_LONG, 4096, 1048576L, NULL, 32768L,
	  CFG_OFF(max_header_bytes) },
	{ "server.tls.certFile", "CMF_SERVER_TLS_CERT_FILE", CFG_STRING, 0, 0, "", 0, CFG_OFF(tls_cert_file) },
	{ "server.tls.keyFile", "CMF_SERVER_TLS_KEY_FILE", CFG_STRING, 0, 0, "", 0, CFG_OFF(tls_key_file) },
	{ "server.tls.clientCaFile", "CMF_SERVER_TLS_CLIENT_CA_FILE", CFG_STRING, 0, 0, "", 0,
	  CFG_OFF(tls_client_ca_file) },
	{ "auth.enabled", "CMF_AUTH_ENABLED", CFG_BOOL, 0, 1, NULL, 1, CFG_OFF(auth_enabled) },
	{ "auth.adminTokenFile", "CMF_AUTH_ADMIN_TOKEN_FILE", CFG_STRING, 0, 0, "", 0,
	  CFG_OFF(auth_admin_token_file) },
	/* Off: a client certificate stays a second factor that grants nothing without a token. */
	{ "auth.mtls.principal", "CMF_AUTH_MTLS_PRINCIPAL", CFG_BOOL, 0, 1, NULL, 0, CFG_OFF(auth_mtls_principal) },
	{ "auth.mtls.principalMappingRules", "CMF_AUTH_MTLS_PRINCIPAL_MAPPING_RULES", CFG_STRING, 0, 0, "DEFAULT", 0,
	  CFG_OFF(auth_mtls_principal_mapping_rules) },
	/* Off: a JWT is an unknown cmf token (401). */
	{ "auth.oauth.enabled", "CMF_AUTH_OAUTH_ENABLED", CFG_BOOL, 0, 1, NULL, 0, CFG_OFF(auth_oauth_enabled) },
	{ "auth.oauth.jwksFile", "CMF_AUTH_OAUTH_JWKS_FILE", CFG_STRING, 0, 0, "", 0, CFG_OFF(auth_oauth_jwks_file) },
	{ "auth.oauth.issuer", "CMF_AUTH_OAUTH_ISSUER", CFG_STRING, 0, 0, "", 0, CFG_OFF(auth_oauth_issuer) },
	{ "auth.oauth.audience", "CMF_AUTH_OAUTH_AUDIENCE", CFG_STRING, 0, 0, "", 0, CFG_OFF(auth_oauth_audience) },
	{ "auth.oauth.principalClaim", "CMF_AUTH_OAUTH_PRINCIPAL_CLAIM", CFG_STRING, 0, 0, "sub", 0,
	  CFG_OFF(auth_oauth_principal_claim) },
	/* Clocks of provider and cmf drift; 5 minutes is the most any provider's guidance allows (Kerberos' default). */
	{ "auth.oauth.clockSkewSeconds", "CMF_AUTH_OAUTH_CLOCK_SKEW_SECONDS", CFG_INT, 0, 300, NULL, 60,
	  CFG_OFF(auth_oauth_clock_skew_seconds) },
	/* 1..60 s: how often the mounted key is re-checked; revocation is noticed within one interval. */
	{ "encryption.key.reloadIntervalSeconds", "CMF_ENCRYPTION_KEY_RELOAD_INTERVAL_SECONDS", CFG_INT, 1, 60, NULL, 2,
	  CFG_OFF(encryption_key_reload_interval_seconds) },
	/*
	 * Encryptions reserved under one data key before a new term is made. The floor, 16 reservation blocks
	 * of 1,024, keeps one reservation from crossing it twice, so rotations cannot cascade; the ceiling,
	 * 1.5e9, leaves a quarter of the hard stop (CRYPTO_DEK_MAX_ENCRYPTIONS, 2^31) for replicas that have
	 * not yet loaded the new term.
	 */
	{ "encryption.dek.rotateAfterEncryptions", "CMF_ENCRYPTION_DEK_ROTATE_AFTER_ENCRYPTIONS", CFG_LONG, 16384,
	  1500000000L, NULL, 1000000000L, CFG_OFF(encryption_dek_rotate_after) },
	{ "log.level", "CMF_LOG_LEVEL", CFG_STRING, 0, 0, "info", 0, CFG_OFF(log_level) },
	/* LISTEN needs a session of its own: through a transaction-pooling proxy, point this past it. */
	{ "database.listenUrl", "CMF_DATABASE_LISTEN_URL", CFG_STRING, 0, 0, "", 0, CFG_OFF(database_listen_url) },
	/*
	 * Events waiting for the audit writer. 1,024 covers a burst of one batch; a million (~1 KiB each) is
	 * the most memory the trail may hold while PostgreSQL is away before requests get 503.
	 */
	{ "audit.queueCapacity", "CMF_AUDIT_QUEUE_CAPACITY", CFG_INT, 1024, 1048576, NULL, 65536,
	  CFG_OFF(audit_queue_capacity) },
	/*
	 * Days an audit event is kept before a background job deletes it. 0 keeps every event (the default:
	 * an upgrade never deletes evidence); 36,500 (a century) is beyond any retention policy in use.
	 */
	{ "audit.retentionDays", "CMF_AUDIT_RETENTION_DAYS", CFG_INT, 0, 36500, NULL, 0,
	  CFG_OFF(audit_retention_days) },
	{ "cache.enabled", "CMF_CACHE_ENABLED", CFG_BOOL, 0, 1, NULL, 1, CFG_OFF(cache_enabled) },
	{ "metrics.enabled", "CMF_METRICS_ENABLED", CFG_BOOL, 0, 1, NULL, 1, CFG_OFF(metrics_enabled) },
	/* The key id `cmf keygen` and `cmf check` print: a key with another id is refused before any write. */
	/* 1 s .. 10 min: past it a call to PostgreSQL gives up (503) instead of holding its thread. */
	{ "database.requestTimeoutSeconds", "CMF_DATABASE_REQUEST_TIMEOUT_SECONDS", CFG_INT, 1, 600, NULL, 5,
	  CFG_OFF(database_request_timeout_seconds) },
	/* Empty: off. A second listener for /healthz and /readyz only, a thread per connection (plain HTTP). */
	{ "server.probeListen", "CMF_SERVER_PROBE_LISTEN", CFG_STRING, 0, 0, "", 0, CFG_OFF(probe_listen) },
	{ "encryption.key.id", "CMF_ENCRYPTION_KEY_ID", CFG_STRING, 0, 0, "", 0, CFG_OFF(encryption_key_id) },
	/*
	 * Versions of a secret kept, the current one included (Vault KV v2's max_versions, default 10); older
	 * ones are destroyed (data removed, metadata kept). 1 keeps no history; 1,000 bounds the table.
	 */
	{ "secrets.maxVersions", "CMF_SECRETS_MAX_VERSIONS", CFG_INT, 1, 1000, NULL, 10, CFG_OFF(secrets_max_versions) },
	/* Check-and-set made mandatory: a secret's PUT, DELETE or rollback without If-Match is 428. */
	{ "secrets.requireIfMatch", "CMF_SECRETS_REQUIRE_IF_MATCH", CFG_BOOL, 0, 1, NULL, 0,
	  CFG_OFF(secrets_require_if_match) },
};

#define CFG_NSETTINGS (sizeof(cfg_settings) / sizeof(cfg_settings[0]))

/* Deepest dotted path (encryption.key.file) has 3 parts; 8 leaves room without a dynamic stack. */
#define CFG_MAX_PARTS 8

/* Longest dotted prefix of a section ("encryption.key."); 128 is well above any path in the table. */
#define CFG_PATH_MAX 128

/* A message's "file:line: key: " prefix; the file name is the caller's and usually short, 1 KiB is ample. */
#define CFG_WHERE_MAX 1024

enum cfg_origin_kind { CFG_FROM_DEFAULT, CFG_FROM_FILE, CFG_FROM_ENV };

struct cfg_origin {
	enum cfg_origin_kind kind;
	size_t line; /* CFG_FROM_FILE: 1-based */
};

struct cfg_loader {
	struct cmf_config *cfg;
	const char *name;                           /* the file name as given, for messages */
	struct cfg_origin origin[CFG_NSETTINGS];    /* where each value came from */
	bool section_seen[CFG_NSETTINGS][CFG_MAX_PARTS]; /* by first setting under it, and its depth */
	char *err;
	size_t errlen;
};

static void cfg_err(struct cfg_loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
cfg_err(struct cfg_loader *ld, const char *fmt, ...)
{
	va_list ap;

	if (ld->err == NULL || ld->errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(ld->err, ld->errlen, fmt, ap);
	va_end(ap);
}

static void
cfg_str_free(char *s)
{
	if (s != NULL)
		crypto_freezero(s, strlen(s));
}

static char **
cfg_str_field(struct cmf_config *cfg, const struct cfg_setting *s)
{
	return (char **)(void *)((char *)cfg + s->offset);
}

/* "cmf.yaml:7: server.threads: " or "environment CMF_SERVER_THREADS: " (no trailing text for defaults). */
static void
cfg_where(const struct cfg_loader *ld, size_t i, char *dst, size_t dstlen)
{
	const struct cfg_origin *o = &ld->origin[i];

	switch (o->kind) {
	case CFG_FROM_FILE:
		snprintf(dst, dstlen, "%s:%zu: %s: ", ld->name, o->line, cfg_settings[i].path);
		break;
	case CFG_FROM_ENV:
		snprintf(dst, dstlen, "environment %s: ", cfg_settings[i].env);
		break;
	case CFG_FROM_DEFAULT:
		snprintf(dst, dstlen, "%s: ", cfg_settings[i].path);
		break;
	}
}

/* The "expected ..." part of a type error for setting `s`. */
static void
cfg_expected(const struct cfg_setting *s, char *dst, size_t dstlen)
{
	switch (s->type) {
	case CFG_INT:
	case CFG_LONG:
		snprintf(dst, dstlen, "expected an integer from %ld to %ld", s->min, s->max);
		break;
	case CFG_BOOL:
		snprintf(dst, dstlen, "expected true or false");
		break;
	case CFG_STRING:
		snprintf(dst, dstlen, "expected a string");
		break;
	}
}

/* Reports a type error at setting `i` (origin already recorded), with the found value echoed or described. */
static void
cfg_type_error(struct cfg_loader *ld, size_t i, const char *found_prefix, const char *found, size_t found_len)
{
	char where[CFG_WHERE_MAX], expected[96], echo[CFG_ECHO_MAX + 4];

	cfg_where(ld, i, where, sizeof(where));
	cfg_expected(&cfg_settings[i], expected, sizeof(expected));
	if (found == NULL) {
		/* A description only ("a mapping", "null"): string values are never echoed. */
		cfg_err(ld, "%s%s, found %s", where, expected, found_prefix);
		return;
	}
	cmf_text_excerpt(found, found_len, CFG_ECHO_MAX, echo, sizeof(echo));
	cfg_err(ld, "%s%s, found %s'%s'", where, expected, found_prefix, echo);
}

/* Decimal digits, a leading '-' only when the range has negatives; saturates, then checks the range. */
static int
cfg_parse_number(const struct cfg_setting *s, const char *text, size_t n, long *out)
{
	bool neg = false;
	long acc = 0;
	size_t i = 0;

	if (i < n && text[i] == '-' && s->min < 0) {
		neg = true;
		i++;
	}
	if (i == n)
		return -1;
	for (; i < n; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -1;
		if (acc > (LONG_MAX - 9) / 10)
			acc = LONG_MAX; /* already far out of any range; keep checking the digits */
		else
			acc = acc * 10 + (text[i] - '0');
	}
	if (neg)
		acc = -acc;
	if (acc < s->min || acc > s->max)
		return -1;
	*out = acc;
	return 0;
}

/* YAML 1.2 core schema booleans; also what the environment accepts. */
static int
cfg_parse_bool(const char *text, size_t n, bool *out)
{
	static const char *const yes[] = { "true", "True", "TRUE" };
	static const char *const no[] = { "false", "False", "FALSE" };

	for (size_t k = 0; k < 3; k++) {
		if (strlen(yes[k]) == n && memcmp(text, yes[k], n) == 0) {
			*out = true;
			return 0;
		}
		if (strlen(no[k]) == n && memcmp(text, no[k], n) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/*
 * Stores `text` (n bytes) into setting `i`, whose origin is already recorded. `quoted`: a quoted
 * YAML scalar, which is always a string (so `threads: "8"` is a type error: YAML says "8" is a
 * string, and accepting it would make `enabled: "false"` a question of taste). `null_text`: a plain
 * YAML scalar resolving to null, refused for strings too.
 */
static int
cfg_store(struct cfg_loader *ld, size_t i, const char *text, size_t n, bool quoted, bool null_text)
{
	const struct cfg_setting *s = &cfg_settings[i];
	void *field = (char *)ld->cfg + s->offset;

	switch (s->type) {
	case CFG_STRING: {
		char **dst = cfg_str_field(ld->cfg, s);
		char *copy;

		if (null_text) {
			cfg_type_error(ld, i, "null", NULL, 0);
			return -1;
		}
		if (memchr(text, '\0', n) != NULL) {
			char where[CFG_WHERE_MAX];

			cfg_where(ld, i, where, sizeof(where));
			cfg_err(ld, "%sNUL characters are not allowed", where);
			return -1;
		}
		copy = malloc(n + 1);
		if (copy == NULL) {
			cfg_err(ld, "out of memory");
			return -1;
		}
		memcpy(copy, text, n);
		copy[n] = '\0';
		cfg_str_free(*dst);
		*dst = copy;
		return 0;
	}
	case CFG_INT:
	case CFG_LONG: {
		long v;

		if (quoted || cfg_parse_number(s, text, n, &v) != 0) {
			cfg_type_error(ld, i, quoted ? "quoted string " : "", text, n);
			return -1;
		}
		if (s->type == CFG_INT)
			*(int *)field = (int)v;
		else
			*(long *)field = v;
		return 0;
	}
	case CFG_BOOL: {
		bool v;

		if (quoted || cfg_parse_bool(text, n, &v) != 0) {
			cfg_type_error(ld, i, quoted ? "quoted string " : "", text, n);
			return -1;
		}
		*(bool *)field = v;
		return 0;
	}
	}
	return -1;
}

static int
cfg_defaults(struct cfg_loader *ld)
{
	for (size_t i = 0; i < CFG_NSETTINGS; i++) {
		const struct cfg_setting *s = &cfg_settings[i];
		void *field = (char *)ld->cfg + s->offset;

		ld->origin[i].kind = CFG_FROM_DEFAULT;
		switch (s->type) {
		case CFG_STRING:
			*cfg_str_field(ld->cfg, s) = strdup(s->def_str);
			if (*cfg_str_field(ld->cfg, s) == NULL) {
				cfg_err(ld, "out of memory");
				return -1;
			}
			break;
		case CFG_INT:
			*(int *)field = (int)s->def_num;
			break;
		case CFG_LONG:
			*(long *)field = s->def_num;
			break;
		case CFG_BOOL:
			*(bool *)field = s->def_num != 0;
			break;
		}
	}
	return 0;
}

static int
cfg_environment(struct cfg_loader *ld)
{
	for (size_t i = 0; i < CFG_NSETTINGS; i++) {
		const char *v = getenv(cfg_settings[i].env);

		/* Set but empty counts as set: an empty string for strings, a type error otherwise. */
		if (v == NULL)
			continue;
		ld->origin[i].kind = CFG_FROM_ENV;
		ld->origin[i].line = 0;
		if (cfg_store(ld, i, v, strlen(v), false, false) != 0)
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* The YAML file */

/* What a key names under `prefix` (e.g. "server."): a setting, a section (a mapping of settings), or nothing. */
enum cfg_key_kind { CFG_KEY_UNKNOWN, CFG_KEY_SETTING, CFG_KEY_SECTION };

static enum cfg_key_kind
cfg_lookup(const char *prefix, const char *key, size_t key_len, size_t *index)
{
	size_t plen = strlen(prefix);
	enum cfg_key_kind found = CFG_KEY_UNKNOWN;

	if (memchr(key, '.', key_len) != NULL || memchr(key, '\0', key_len) != NULL || key_len == 0)
		return CFG_KEY_UNKNOWN;
	for (size_t i = 0; i < CFG_NSETTINGS; i++) {
		const char *p = cfg_settings[i].path;

		if (strncmp(p, prefix, plen) != 0 || strncmp(p + plen, key, key_len) != 0)
			continue;
		if (p[plen + key_len] == '\0') {
			*index = i;
			return CFG_KEY_SETTING;
		}
		if (p[plen + key_len] == '.' && found == CFG_KEY_UNKNOWN) {
			*index = i; /* the first setting under the section identifies it */
			found = CFG_KEY_SECTION;
		}
	}
	return found;
}

static bool
cfg_is_null_text(const char *s, size_t n)
{
	return n == 0 || (n == 1 && s[0] == '~') ||
	       (n == 4 && (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 || memcmp(s, "NULL", 4) == 0));
}

/* One open mapping: its dotted prefix ("" at the top, "server." inside server). */
struct cfg_frame {
	char prefix[CFG_PATH_MAX];
	int parts;              /* components in prefix */
	enum cfg_key_kind pending; /* after a key: what its value must be; UNKNOWN while a key is expected */
	size_t pending_index;
	size_t pending_line;
};

static void
cfg_yaml_error(struct cfg_loader *ld, const yaml_parser_t *parser)
{
	/* libyaml's problem and context are fixed texts; they never quote the file (which may hold a password). */
	const char *problem = parser->problem != NULL ? parser->problem : "unknown error";

	switch (parser->error) {
	case YAML_MEMORY_ERROR:
		cfg_err(ld, "%s: out of memory", ld->name);
		break;
	case YAML_READER_ERROR:
		cfg_err(ld, "%s: byte %zu: YAML syntax error: %s", ld->name, parser->problem_offset, problem);
		break;
	case YAML_NO_ERROR:
	case YAML_SCANNER_ERROR:
	case YAML_PARSER_ERROR:
	case YAML_COMPOSER_ERROR:
	case YAML_WRITER_ERROR:
	case YAML_EMITTER_ERROR:
	default:
		if (parser->context != NULL)
			cfg_err(ld, "%s:%zu:%zu: YAML syntax error: %s (%s at line %zu)", ld->name,
				parser->problem_mark.line + 1, parser->problem_mark.column + 1, problem,
				parser->context, parser->context_mark.line + 1);
		else
			cfg_err(ld, "%s:%zu:%zu: YAML syntax error: %s", ld->name, parser->problem_mark.line + 1,
				parser->problem_mark.column + 1, problem);
		break;
	}
}

/* A key scalar in the mapping `f`: check it and make it pending. */
static int
cfg_yaml_key(struct cfg_loader *ld, struct cfg_frame *f, const yaml_event_t *ev)
{
	const char *key = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	size_t line = ev->start_mark.line + 1, index = 0;
	enum cfg_key_kind kind = cfg_lookup(f->prefix, key, n, &index);

	if (kind == CFG_KEY_UNKNOWN) {
		char echo[CFG_KEY_ECHO_MAX + 4];

		cmf_text_excerpt(key, n, CFG_KEY_ECHO_MAX, echo, sizeof(echo));
		cfg_err(ld, "%s:%zu: unknown key '%s%s'", ld->name, line, f->prefix, echo);
		return -1;
	}
	if (kind == CFG_KEY_SETTING ? ld->origin[index].kind == CFG_FROM_FILE
				    : ld->section_seen[index][f->parts]) {
		cfg_err(ld, "%s:%zu: duplicate key '%s%.*s'", ld->name, line, f->prefix, (int)n, key);
		return -1;
	}
	if (kind == CFG_KEY_SETTING) {
		ld->origin[index].kind = CFG_FROM_FILE;
		ld->origin[index].line = line;
	} else {
		ld->section_seen[index][f->parts] = true;
	}
	f->pending = kind;
	f->pending_index = index;
	f->pending_line = line;
	return 0;
}

/* The dotted name of the pending section of `f` (its key is the next part of the first setting under it). */
static void
cfg_section_name(const struct cfg_frame *f, char *dst, size_t dstlen)
{
	const char *p = cfg_settings[f->pending_index].path;
	size_t plen = strlen(f->prefix);
	size_t n = plen + strcspn(p + plen, ".");

	snprintf(dst, dstlen, "%.*s", (int)n, p);
}

/*
 * Parses the YAML text into ld->cfg: an empty stream, comments only, or a null document is no
 * settings; otherwise exactly one document whose top level is a mapping of known keys.
 */
static int
cfg_parse_yaml(struct cfg_loader *ld, const char *buf, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	bool parser_ok = false, have_event = false, done = false;
	struct cfg_frame stack[CFG_MAX_PARTS];
	int depth = 0, documents = 0;
	int ret = -1;

	if (!yaml_parser_initialize(&parser)) {
		cfg_err(ld, "%s: out of memory", ld->name);
		goto out;
	}
	parser_ok = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

	while (!done) {
		struct cfg_frame *f = depth > 0 ? &stack[depth - 1] : NULL;
		size_t line;
		const yaml_char_t *anchor = NULL, *tag = NULL;

		if (!yaml_parser_parse(&parser, &ev)) {
			cfg_yaml_error(ld, &parser);
			goto out;
		}
		have_event = true;
		line = ev.start_mark.line + 1;
		if (ev.type == YAML_SCALAR_EVENT) {
			anchor = ev.data.scalar.anchor;
			tag = ev.data.scalar.tag;
		} else if (ev.type == YAML_MAPPING_START_EVENT) {
			anchor = ev.data.mapping_start.anchor;
			tag = ev.data.mapping_start.tag;
		} else if (ev.type == YAML_SEQUENCE_START_EVENT) {
			anchor = ev.data.sequence_start.anchor;
			tag = ev.data.sequence_start.tag;
		}
		if (ev.type == YAML_ALIAS_EVENT || anchor != NULL) {
			cfg_err(ld, "%s:%zu: YAML anchors and aliases are not supported", ld->name, line);
			goto out;
		}
		if (tag != NULL) {
			cfg_err(ld, "%s:%zu: YAML tags are not supported", ld->name, line);
			goto out;
		}

		switch (ev.type) {
		case YAML_NO_EVENT:
		case YAML_STREAM_START_EVENT:
		case YAML_DOCUMENT_END_EVENT:
		case YAML_ALIAS_EVENT:
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++documents > 1) {
				cfg_err(ld, "%s:%zu: more than one YAML document", ld->name, line);
				goto out;
			}
			break;
		case YAML_SCALAR_EVENT: {
			const char *text = (const char *)ev.data.scalar.value;
			size_t n = ev.data.scalar.length;
			bool plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
			bool null_text = plain && cfg_is_null_text(text, n);

			if (f == NULL) {
				/* The whole document is a scalar: a null one (`---` alone) is an empty file. */
				if (!null_text) {
					cfg_err(ld, "%s:%zu: the top level must be a mapping of settings", ld->name,
						line);
					goto out;
				}
			} else if (f->pending == CFG_KEY_UNKNOWN) {
				if (cfg_yaml_key(ld, f, &ev) != 0)
					goto out;
			} else if (f->pending == CFG_KEY_SETTING) {
				if (cfg_store(ld, f->pending_index, text, n, !plain, null_text) != 0)
					goto out;
				f->pending = CFG_KEY_UNKNOWN;
			} else {
				/* A section given a scalar. An empty one (all its settings commented out) is fine. */
				if (!null_text) {
					char name[CFG_PATH_MAX];

					cfg_section_name(f, name, sizeof(name));
					cfg_err(ld, "%s:%zu: %s: expected a mapping, found a scalar", ld->name, line,
						name);
					goto out;
				}
				f->pending = CFG_KEY_UNKNOWN;
			}
			/* The scalar may have been a password: wipe libyaml's copy before it is freed. */
			OPENSSL_cleanse(ev.data.scalar.value, n);
			break;
		}
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT: {
			bool mapping = ev.type == YAML_MAPPING_START_EVENT;
			const char *what = mapping ? "a mapping" : "a sequence";

			if (f == NULL) {
				if (!mapping) {
					cfg_err(ld, "%s:%zu: the top level must be a mapping of settings", ld->name,
						line);
					goto out;
				}
			} else if (f->pending == CFG_KEY_UNKNOWN) {
				cfg_err(ld, "%s:%zu: keys must be scalars", ld->name, line);
				goto out;
			} else if (f->pending == CFG_KEY_SETTING) {
				cfg_type_error(ld, f->pending_index, what, NULL, 0);
				goto out;
			} else if (!mapping) {
				char name[CFG_PATH_MAX];

				cfg_section_name(f, name, sizeof(name));
				cfg_err(ld, "%s:%zu: %s: expected a mapping, found a sequence", ld->name, line, name);
				goto out;
			}
			/* A new mapping: the top level, or a known section (so depth stays within the table's). */
			if (depth >= CFG_MAX_PARTS) {
				cfg_err(ld, "%s:%zu: nested too deeply", ld->name, line);
				goto out;
			}
			if (f == NULL) {
				stack[0].prefix[0] = '\0';
				stack[0].parts = 0;
			} else {
				char name[CFG_PATH_MAX - 1]; /* room for the '.' */

				cfg_section_name(f, name, sizeof(name));
				snprintf(stack[depth].prefix, sizeof(stack[depth].prefix), "%s.", name);
				stack[depth].parts = f->parts + 1;
			}
			stack[depth].pending = CFG_KEY_UNKNOWN;
			depth++;
			break;
		}
		case YAML_SEQUENCE_END_EVENT:
			/* Sequences are refused at their start, so none is ever open. */
			break;
		case YAML_MAPPING_END_EVENT:
			depth--;
			if (depth > 0)
				stack[depth - 1].pending = CFG_KEY_UNKNOWN;
			break;
		}
		yaml_event_delete(&ev);
		have_event = false;
	}
	ret = 0;
out:
	if (have_event)
		yaml_event_delete(&ev);
	if (parser_ok)
		yaml_parser_delete(&parser);
	return ret;
}

/* ---------------------------------------------------------------------------------------------- */
/* Validation after merging */

static size_t
cfg_index(const char *path)
{
	for (size_t i = 0; i < CFG_NSETTINGS; i++) {
		if (strcmp(cfg_settings[i].path, path) == 0)
			return i;
	}
	abort(); /* a path missing from the table is a programming error */
}

/* host:port or [v6]:port, port 1..65535. The host is resolved at bind time; here only its shape. */
static bool
cfg_listen_ok(const char *s)
{
	const char *port, *p;
	long v = 0;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		bool colon = false, zone = false;

		if (close == NULL || close == s + 1 || close[1] != ':')
			return false;
		for (p = s + 1; p < close; p++) {
			unsigned char c = (unsigned char)*p;

			if (zone) {
				if (!isalnum(c) && c != '_' && c != '-' && c != '.')
					return false;
			} else if (c == '%') {
				if (p + 1 == close)
					return false;
				zone = true;
			} else if (c == ':') {
				colon = true;
			} else if (!isxdigit(c) && c != '.') {
				return false;
			}
		}
		if (!colon)
			return false;
		port = close + 2;
	} else {
		const char *colon = strrchr(s, ':');

		if (colon == NULL || colon == s)
			return false;
		for (p = s; p < colon; p++) {
			unsigned char c = (unsigned char)*p;

			if (!isalnum(c) && c != '.' && c != '-' && c != '_')
				return false;
		}
		port = colon + 1;
	}
	/* A port has at most 5 digits (65535). */
	if (port[0] == '\0' || strlen(port) > 5)
		return false;
	for (p = port; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	return v >= 1 && v <= 65535;
}

static int
cfg_validate(struct cfg_loader *ld)
{
	static const char *const levels[] = { "debug", "info", "warn", "error" };
	const struct cmf_config *cfg = ld->cfg;
	char where[CFG_WHERE_MAX], echo[CFG_ECHO_MAX + 4];
	bool level_ok = false;

	if (cfg->database_url[0] == '\0') {
		cfg_err(ld, "database.url is required: set it in the configuration file or CMF_DATABASE_URL");
		return -1;
	}
	if (cfg->encryption_enabled && cfg->encryption_key_file[0] == '\0') {
		cfg_err(ld, "encryption.key.file is required when encryption.enabled is true: set it in the "
			    "configuration file or CMF_ENCRYPTION_KEY_FILE");
		return -1;
	}
	if (cfg->auth_enabled && cfg->auth_admin_token_file[0] == '\0') {
		cfg_err(ld, "auth.adminTokenFile is required when auth.enabled is true: set it in the configuration "
			    "file or CMF_AUTH_ADMIN_TOKEN_FILE (or, for development only, set auth.enabled to false)");
		return -1;
	}
	if ((cfg->tls_cert_file[0] == '\0') != (cfg->tls_key_file[0] == '\0')) {
		cfg_err(ld, "server.tls.certFile and server.tls.keyFile must be set together");
		return -1;
	}
	if (cfg->tls_client_ca_file[0] != '\0' && cfg->tls_cert_file[0] == '\0') {
		cfg_err(ld, "server.tls.clientCaFile needs TLS: set server.tls.certFile and server.tls.keyFile too");
		return -1;
	}
	if (cfg->auth_mtls_principal && cfg->tls_client_ca_file[0] == '\0') {
		cfg_err(ld, "auth.mtls.principal needs mutual TLS: set server.tls.clientCaFile (the CA that issues client "
			    "certificates) too");
		return -1;
	}
	if (cfg->auth_mtls_principal && !cfg->auth_enabled) {
		cfg_err(ld, "auth.mtls.principal needs auth.enabled: with authentication off there are no principals");
		return -1;
	}
	if (cfg->auth_oauth_enabled && !cfg->auth_enabled) {
		cfg_err(ld, "auth.oauth.enabled needs auth.enabled: with authentication off there are no principals");
		return -1;
	}
	if (cfg->auth_oauth_enabled) {
		static const struct {
			const char *key, *env;
			size_t offset;
		} need[] = {
			{ "auth.oauth.jwksFile", "CMF_AUTH_OAUTH_JWKS_FILE", CFG_OFF(auth_oauth_jwks_file) },
			{ "auth.oauth.issuer", "CMF_AUTH_OAUTH_ISSUER", CFG_OFF(auth_oauth_issuer) },
			{ "auth.oauth.audience", "CMF_AUTH_OAUTH_AUDIENCE", CFG_OFF(auth_oauth_audience) },
			{ "auth.oauth.principalClaim", "CMF_AUTH_OAUTH_PRINCIPAL_CLAIM", CFG_OFF(auth_oauth_principal_claim) },
		};

		for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
			if (**(char *const *)((const char *)cfg + need[i].offset) == '\0') {
				cfg_err(ld, "%s is required when auth.oauth.enabled is true: set it in the configuration file "
					    "or %s",
					need[i].key, need[i].env);
				return -1;
			}
		}
	}
	/* The rules are checked whether or not they are in use: a mistake shows before the day they are. */
	{
		struct cmf_principal_rules *rules = NULL;
		char why[512];

		if (cmf_principal_rules_parse(cfg->auth_mtls_principal_mapping_rules, &rules, why, sizeof(why)) != 0) {
			cfg_where(ld, cfg_index("auth.mtls.principalMappingRules"), where, sizeof(where));
			cfg_err(ld, "%s%s", where, why);
			return -1;
		}
		if (cfg->auth_mtls_principal && cmf_principal_rules_count(rules) == 0) {
			cmf_principal_rules_free(rules);
			cfg_where(ld, cfg_index("auth.mtls.principalMappingRules"), where, sizeof(where));
			cfg_err(ld, "%sno rule: every client certificate would be refused (DEFAULT takes the subject as it is)",
				where);
			return -1;
		}
		cmf_principal_rules_free(rules);
	}
	/* A key id is public (a fingerprint, not the key): the value found is echoed. */
	if (cfg->encryption_key_id[0] != '\0') {
		size_t n = strlen(cfg->encryption_key_id);
		bool hex = n == CRYPTO_KEY_ID_SIZE - 1;

		for (size_t i = 0; hex && i < n; i++)
			hex = strchr("0123456789abcdef", cfg->encryption_key_id[i]) != NULL;
		if (!hex) {
			cfg_where(ld, cfg_index("encryption.key.id"), where, sizeof(where));
			cmf_text_excerpt(cfg->encryption_key_id, n, CFG_ECHO_MAX, echo, sizeof(echo));
			cfg_err(ld, "%sexpected the key id `cmf keygen` prints (%d lowercase hexadecimal digits), found '%s'",
				where, CRYPTO_KEY_ID_SIZE - 1, echo);
			return -1;
		}
	}
	if (cfg->probe_listen[0] != '\0' && !cfg_listen_ok(cfg->probe_listen)) {
		cfg_where(ld, cfg_index("server.probeListen"), where, sizeof(where));
		cmf_text_excerpt(cfg->probe_listen, strlen(cfg->probe_listen), CFG_ECHO_MAX, echo, sizeof(echo));
		cfg_err(ld, "%sexpected host:port or [v6]:port with a port from 1 to 65535, found '%s'", where, echo);
		return -1;
	}
	/* listen and log.level are not secrets, so their found values are echoed. */
	if (!cfg_listen_ok(cfg->listen)) {
		cfg_where(ld, cfg_index("server.listen"), where, sizeof(where));
		cmf_text_excerpt(cfg->listen, strlen(cfg->listen), CFG_ECHO_MAX, echo, sizeof(echo));
		cfg_err(ld, "%sexpected host:port or [v6]:port with a port from 1 to 65535, found '%s'", where,
			echo);
		return -1;
	}
	for (size_t k = 0; k < sizeof(levels) / sizeof(levels[0]); k++)
		level_ok = level_ok || strcmp(cfg->log_level, levels[k]) == 0;
	if (!level_ok) {
		cfg_where(ld, cfg_index("log.level"), where, sizeof(where));
		cmf_text_excerpt(cfg->log_level, strlen(cfg->log_level), CFG_ECHO_MAX, echo, sizeof(echo));
		cfg_err(ld, "%sexpected one of debug, info, warn, error, found '%s'", where, echo);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------------- */

/*
 * Defaults, then the YAML text `buf` (`len` bytes; `name` is the file name for messages; buf NULL:
 * no file), then the environment, then validation. The fuzz harness calls this directly.
 */
static int
cfg_load_buffer(const char *name, const char *buf, size_t len, struct cmf_config **out, char *err,
		size_t errlen)
{
	struct cfg_loader ld;
	int ret = -1;

	*out = NULL;
	memset(&ld, 0, sizeof(ld));
	ld.name = name;
	ld.err = err;
	ld.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	ld.cfg = calloc(1, sizeof(*ld.cfg));
	if (ld.cfg == NULL) {
		cfg_err(&ld, "out of memory");
		goto out;
	}
	if (cfg_defaults(&ld) != 0)
		goto out;
	if (buf != NULL && cfg_parse_yaml(&ld, buf, len) != 0)
		goto out;
	if (cfg_environment(&ld) != 0)
		goto out;
	if (cfg_validate(&ld) != 0)
		goto out;
	*out = ld.cfg;
	ld.cfg = NULL;
	ret = 0;
out:
	cmf_config_free(ld.cfg);
	return ret;
}

/* Reads the whole file (a regular file of at most CFG_FILE_MAX bytes) into a new buffer. */
static int
cfg_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *data = NULL;
	size_t have = 0;
	int fd, ret = -1;

	*buf = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size > CFG_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes: not a configuration file", path, CFG_FILE_MAX);
		goto out;
	}
	/* One byte more than the cap, to notice a file that grew since fstat. */
	data = malloc(CFG_FILE_MAX + 1);
	if (data == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, data + have, CFG_FILE_MAX + 1 - have);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		have += (size_t)r;
		if (have > CFG_FILE_MAX) {
			snprintf(err, errlen, "%s: larger than %d bytes: not a configuration file", path,
				 CFG_FILE_MAX);
			goto out;
		}
	}
	*buf = data;
	*len = have;
	data = NULL;
	ret = 0;
out:
	crypto_freezero(data, have);
	if (fd >= 0)
		close(fd);
	return ret;
}

int
cmf_config_load(const char *path, struct cmf_config **out, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int ret = -1;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (path != NULL && cfg_read_file(path, &buf, &len, err, errlen) != 0)
		goto out;
	ret = cfg_load_buffer(path, buf, len, out, err, errlen);
out:
	/* The file may hold database.url with a password. */
	crypto_freezero(buf, len);
	return ret;
}

void
cmf_config_free(struct cmf_config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < CFG_NSETTINGS; i++) {
		if (cfg_settings[i].type == CFG_STRING)
			cfg_str_free(*cfg_str_field(cfg, &cfg_settings[i]));
	}
	crypto_freezero(cfg, sizeof(*cfg));
}
