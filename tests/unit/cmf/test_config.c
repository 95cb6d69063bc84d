/* links: cmf/config.c cmf/http/principal.c cmf/text.c cmf/log.c crypto/util.c crypto/log.c */
/* Tests for cmf/config.c: defaults, the YAML file, CMF_* overrides, and every error form with its file:line:key. */
#include "cmf/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/check_main.h"

static const char *const all_env[] = {
	"CMF_LISTEN",
	"CMF_SERVER_THREADS",
	"CMF_SERVER_MAX_BODY_BYTES",
	"CMF_SERVER_CONNECTION_TIMEOUT_SECONDS",
	"CMF_SERVER_DRAIN_SECONDS",
	"CMF_DATABASE_URL",
	"CMF_DATABASE_PASSWORD_FILE",
	"CMF_DATABASE_STARTUP_TIMEOUT_SECONDS",
	"CMF_ENCRYPTION_ENABLED",
	"CMF_ENCRYPTION_KEY_FILE",
	"CMF_ENCRYPTION_KEY_RELOAD_INTERVAL_SECONDS",
	"CMF_SERVER_MAX_CONNECTIONS",
	"CMF_SERVER_MAX_WATCHERS",
	"CMF_SERVER_MAX_HEADER_BYTES",
	"CMF_SERVER_TLS_CERT_FILE",
	"CMF_SERVER_TLS_KEY_FILE",
	"CMF_SERVER_TLS_CLIENT_CA_FILE",
	"CMF_AUTH_ENABLED",
	"CMF_AUTH_ADMIN_TOKEN_FILE",
	"CMF_AUTH_MTLS_PRINCIPAL",
	"CMF_AUTH_MTLS_PRINCIPAL_MAPPING_RULES",
	"CMF_LOG_LEVEL",
	"CMF_AUDIT_RETENTION_DAYS",
	"CMF_SECRETS_MAX_VERSIONS",
	"CMF_SECRETS_REQUIRE_IF_MATCH",
};

/* Each test runs inside a fresh temporary directory, so messages name "cmf.yaml" as given. */
static char tmpdir[64];
static char oldcwd[4096];
static char err[512];
static struct cmf_config *cfg;

static void
clear_env(void)
{
	for (size_t i = 0; i < sizeof(all_env) / sizeof(all_env[0]); i++)
		unsetenv(all_env[i]);
}

static void
setup(void)
{
	clear_env();
	/* Authentication is on by default and needs its token file; tests of other settings assume one. */
	setenv("CMF_AUTH_ADMIN_TOKEN_FILE", "/etc/cmf/admin-token", 1);
	ck_assert_ptr_nonnull(getcwd(oldcwd, sizeof(oldcwd)));
	strcpy(tmpdir, "/tmp/cmf-test-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	ck_assert_int_eq(chdir(tmpdir), 0);
	cfg = NULL;
	err[0] = '\0';
}

static void
teardown(void)
{
	cmf_config_free(cfg);
	cfg = NULL;
	unlink("cmf.yaml");
	rmdir("adir");
	ck_assert_int_eq(chdir(oldcwd), 0);
	ck_assert_int_eq(rmdir(tmpdir), 0);
	clear_env();
}

static void
write_yaml(const char *text)
{
	FILE *f = fopen("cmf.yaml", "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

/* Writes `text` to cmf.yaml and loads it. */
static int
load_yaml(const char *text)
{
	cmf_config_free(cfg);
	cfg = NULL;
	write_yaml(text);
	return cmf_config_load("cmf.yaml", &cfg, err, sizeof(err));
}

/* Loads `text`, expects failure with exactly `want`. */
static void
expect_error(const char *text, const char *want)
{
	int rc = load_yaml(text);

	ck_assert_msg(rc == -1, "expected failure for:\n%s", text);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(err, want);
}

static void
set_required_env(void)
{
	setenv("CMF_DATABASE_URL", "postgres://cmf@db/cmf", 1);
	setenv("CMF_ENCRYPTION_KEY_FILE", "/etc/cmf/key", 1);
}

/* The settings full_yaml sets, as a test expects them after a successful load. */
static const struct want_config {
	const char *listen, *database_url, *database_password_file, *encryption_key_file, *log_level;
	int threads, connection_timeout_seconds, drain_seconds, database_startup_timeout_seconds;
	long max_body_bytes;
	bool encryption_enabled;
} want_defaults = {
	/* no file, only the required settings from the environment */
	.listen = "127.0.0.1:8080", .threads = 8, .max_body_bytes = 1048576, .connection_timeout_seconds = 30,
	.drain_seconds = 10, .database_url = "postgres://cmf@db/cmf", .database_password_file = "",
	.database_startup_timeout_seconds = 30, .encryption_enabled = true, .encryption_key_file = "/etc/cmf/key",
	.log_level = "info",
}, want_full = {
	/* full_yaml */
	.listen = "[::1]:9443", .threads = 16, .max_body_bytes = 2048, .connection_timeout_seconds = 60,
	.drain_seconds = 0, .database_url = "postgres://cmf:s3cr3t@db:5432/cmf?sslmode=require",
	.database_password_file = "/run/secrets/pg", .database_startup_timeout_seconds = 120,
	.encryption_enabled = true, .encryption_key_file = "/etc/cmf/master.key", .log_level = "debug",
}, want_env = {
	/* full_yaml overridden by every CMF_* variable; an empty password file set counts as set */
	.listen = "0.0.0.0:8081", .threads = 4, .max_body_bytes = 16777216, .connection_timeout_seconds = 3600,
	.drain_seconds = 600, .database_url = "host=pg dbname=cmf", .database_password_file = "",
	.database_startup_timeout_seconds = 0, .encryption_enabled = false, .encryption_key_file = "/other/key",
	.log_level = "error",
};

/* The loaded configuration holds exactly `w` in those settings. */
static void
expect_config(const struct want_config *w)
{
	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(cfg->listen, w->listen);
	ck_assert_int_eq(cfg->threads, w->threads);
	ck_assert_int_eq(cfg->max_body_bytes, w->max_body_bytes);
	ck_assert_int_eq(cfg->connection_timeout_seconds, w->connection_timeout_seconds);
	ck_assert_int_eq(cfg->drain_seconds, w->drain_seconds);
	ck_assert_str_eq(cfg->database_url, w->database_url);
	ck_assert_str_eq(cfg->database_password_file, w->database_password_file);
	ck_assert_int_eq(cfg->database_startup_timeout_seconds, w->database_startup_timeout_seconds);
	ck_assert_int_eq(cfg->encryption_enabled, w->encryption_enabled);
	ck_assert_str_eq(cfg->encryption_key_file, w->encryption_key_file);
	ck_assert_str_eq(cfg->log_level, w->log_level);
}

START_TEST(test_defaults_without_file)
{
	set_required_env();
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), 0);
	expect_config(&want_defaults);
}
END_TEST

static const char full_yaml[] = "# cmf configuration\n"
				"server:\n"
				"  listen: \"[::1]:9443\"\n"
				"  threads: 16\n"
				"  maxBodyBytes: 2048\n"
				"  connectionTimeoutSeconds: 60\n"
				"  drainSeconds: 0\n"
				"database:\n"
				"  url: postgres://cmf:s3cr3t@db:5432/cmf?sslmode=require\n"
				"  passwordFile: /run/secrets/pg\n"
				"  startupTimeoutSeconds: 120\n"
				"encryption:\n"
				"  enabled: True\n"
				"  key:\n"
				"    file: '/etc/cmf/master.key'\n"
				"log:\n"
				"  level: debug\n";

START_TEST(test_full_file)
{
	ck_assert_int_eq(load_yaml(full_yaml), 0);
	ck_assert_str_eq(err, "");
	expect_config(&want_full);
}
END_TEST

START_TEST(test_env_overrides_file)
{
	setenv("CMF_LISTEN", "0.0.0.0:8081", 1);
	setenv("CMF_SERVER_THREADS", "4", 1);
	setenv("CMF_SERVER_MAX_BODY_BYTES", "16777216", 1);
	setenv("CMF_SERVER_CONNECTION_TIMEOUT_SECONDS", "3600", 1);
	setenv("CMF_SERVER_DRAIN_SECONDS", "600", 1);
	setenv("CMF_DATABASE_URL", "host=pg dbname=cmf", 1);
	setenv("CMF_DATABASE_PASSWORD_FILE", "", 1);
	setenv("CMF_DATABASE_STARTUP_TIMEOUT_SECONDS", "0", 1);
	setenv("CMF_ENCRYPTION_ENABLED", "false", 1);
	setenv("CMF_ENCRYPTION_KEY_FILE", "/other/key", 1);
	setenv("CMF_LOG_LEVEL", "error", 1);
	ck_assert_int_eq(load_yaml(full_yaml), 0);
	expect_config(&want_env);
}
END_TEST

START_TEST(test_env_type_errors)
{
	set_required_env();
	setenv("CMF_ENCRYPTION_ENABLED", "yes", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_null(cfg);
	ck_assert_str_eq(err, "environment CMF_ENCRYPTION_ENABLED: expected true or false, found 'yes'");
	unsetenv("CMF_ENCRYPTION_ENABLED");

	setenv("CMF_SERVER_THREADS", "", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "environment CMF_SERVER_THREADS: expected an integer from 1 to 256, found ''");
	setenv("CMF_SERVER_THREADS", "-1", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "environment CMF_SERVER_THREADS: expected an integer from 1 to 256, found '-1'");
	setenv("CMF_SERVER_THREADS", " 8", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "environment CMF_SERVER_THREADS: expected an integer from 1 to 256, found ' 8'");
	setenv("CMF_SERVER_THREADS", "99999999999999999999999999999999999999999999999999", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "environment CMF_SERVER_THREADS: expected an integer from 1 to 256, found "
			      "'9999999999999999999999999999999999999999...'");
	setenv("CMF_SERVER_THREADS", "0256", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(cfg->threads, 256);
}
END_TEST

START_TEST(test_env_error_wins_over_valid_file)
{
	setenv("CMF_SERVER_DRAIN_SECONDS", "601", 1);
	ck_assert_int_eq(load_yaml(full_yaml), -1);
	ck_assert_str_eq(err, "environment CMF_SERVER_DRAIN_SECONDS: expected an integer from 0 to 600, found '601'");
}
END_TEST

START_TEST(test_unknown_keys)
{
	expect_error("bogus: 1\n", "cmf.yaml:1: unknown key 'bogus'");
	expect_error("database:\n  url: x\nencryption:\n  enabled: true\n  key:\n"
		     "    file: /k\n    path: /k\n",
		     "cmf.yaml:7: unknown key 'encryption.key.path'");
	/* a typo in a section name */
	expect_error("database:\n  url: x\nencryptoin:\n  enabled: false\n", "cmf.yaml:3: unknown key 'encryptoin'");
	/* a setting name used as a section and the reverse */
	expect_error("listen: 1.2.3.4:80\n", "cmf.yaml:1: unknown key 'listen'");
	expect_error("server:\n  server:\n    listen: x\n", "cmf.yaml:2: unknown key 'server.server'");
	/* a dotted key is not a path */
	expect_error("server.listen: 1.2.3.4:80\n", "cmf.yaml:1: unknown key 'server.listen'");
	/* the value of an unknown key is never echoed */
	expect_error("database:\n  uri: postgres://u:s3cr3t@h/db\n", "cmf.yaml:2: unknown key 'database.uri'");
}
END_TEST

START_TEST(test_integer_errors)
{
	expect_error("server:\n  listen: 127.0.0.1:80\n  threads: many\n",
		     "cmf.yaml:3: server.threads: expected an integer from 1 to 256, found 'many'");
	expect_error("server:\n  threads: 257\n",
		     "cmf.yaml:2: server.threads: expected an integer from 1 to 256, found '257'");
	expect_error("server:\n  threads: 0\n", "cmf.yaml:2: server.threads: expected an integer from 1 to 256, found '0'");
	expect_error("server:\n  maxBodyBytes: 1023\n",
		     "cmf.yaml:2: server.maxBodyBytes: expected an integer from 1024 to 16777216, found '1023'");
	expect_error("server:\n  threads: \"8\"\n",
		     "cmf.yaml:2: server.threads: expected an integer from 1 to 256, found quoted string '8'");
	expect_error("server:\n  threads: 8.0\n",
		     "cmf.yaml:2: server.threads: expected an integer from 1 to 256, found '8.0'");
	expect_error("server:\n  threads: 0x10\n",
		     "cmf.yaml:2: server.threads: expected an integer from 1 to 256, found '0x10'");
	expect_error("server:\n  threads:\n",
		     "cmf.yaml:2: server.threads: expected an integer from 1 to 256, found ''");
	expect_error("server:\n  drainSeconds: -1\n",
		     "cmf.yaml:2: server.drainSeconds: expected an integer from 0 to 600, found '-1'");
}
END_TEST

START_TEST(test_boolean_errors)
{
	expect_error("encryption:\n  enabled: yes\n",
		     "cmf.yaml:2: encryption.enabled: expected true or false, found 'yes'");
	expect_error("encryption:\n  enabled: on\n",
		     "cmf.yaml:2: encryption.enabled: expected true or false, found 'on'");
	expect_error("encryption:\n  enabled: 1\n",
		     "cmf.yaml:2: encryption.enabled: expected true or false, found '1'");
	expect_error("encryption:\n  enabled: 'false'\n",
		     "cmf.yaml:2: encryption.enabled: expected true or false, found quoted string 'false'");
	setenv("CMF_DATABASE_URL", "postgres://x", 1);
	ck_assert_int_eq(load_yaml("encryption:\n  enabled: FALSE\n"), 0);
	ck_assert(!cfg->encryption_enabled);
}
END_TEST

START_TEST(test_shape_errors)
{
	/* a mapping or sequence where a scalar is expected */
	expect_error("server:\n  threads:\n    min: 1\n",
		     "cmf.yaml:2: server.threads: expected an integer from 1 to 256, found a mapping");
	expect_error("log:\n  level: [debug]\n", "cmf.yaml:2: log.level: expected a string, found a sequence");
	/* a scalar where a mapping is expected */
	expect_error("encryption: true\n", "cmf.yaml:1: encryption: expected a mapping, found a scalar");
	expect_error("encryption:\n  key: /etc/key\n", "cmf.yaml:2: encryption.key: expected a mapping, found a scalar");
	expect_error("server:\n  - listen\n", "cmf.yaml:2: server: expected a mapping, found a sequence");
	/* the top level */
	expect_error("- server\n", "cmf.yaml:1: the top level must be a mapping of settings");
	expect_error("just text\n", "cmf.yaml:1: the top level must be a mapping of settings");
	/* duplicates, of settings and of sections */
	expect_error("server:\n  threads: 2\n  threads: 3\n", "cmf.yaml:3: duplicate key 'server.threads'");
	expect_error("server:\n  threads: 2\nlog:\n  level: info\nserver:\n  drainSeconds: 1\n",
		     "cmf.yaml:5: duplicate key 'server'");
	/* anchors, tags, several documents */
	expect_error("server:\n  threads: &t 2\n", "cmf.yaml:2: YAML anchors and aliases are not supported");
	expect_error("server:\n  threads: !!int 2\n", "cmf.yaml:2: YAML tags are not supported");
	expect_error("server:\n  threads: 2\n---\nserver:\n  threads: 3\n", "cmf.yaml:3: more than one YAML document");
	expect_error("server:\n  ? [a, b]\n  : 1\n", "cmf.yaml:2: keys must be scalars");
}
END_TEST

START_TEST(test_yaml_syntax_error)
{
	expect_error("server:\n  threads: 2\n  listen: a: b\n",
		     "cmf.yaml:3:12: YAML syntax error: mapping values are not allowed in this context");
	expect_error("server:\n  threads: 2\n bad\n",
		     "cmf.yaml:3:2: YAML syntax error: did not find expected key (while parsing a block mapping at line 1)");
}
END_TEST

START_TEST(test_strings_never_echoed)
{
	const char *cases[] = {
		"database:\n  url:\n    - postgres://u:s3cr3t@h/db\n",
		"database:\n  url: {postgres://u:s3cr3t@h/db: 1}\n",
		"database:\n  url: postgres://u:s3cr3t@h/db\n  url: postgres://u:s3cr3t@h/db\n",
		"database:\n  url: postgres://u:s3cr3t@h/db\n  bad: [\n",
		"database:\n  url: \"postgres://u:s3cr3t@h/db\n",
		"database:\n  url: postgres://u:s3cr3t@h/db\n\tpasswordFile: x\n",
		"database:\n  url: postgres://u:s3cr3t@h/db\nserver:\n  listen: nope\n",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(load_yaml(cases[i]), -1);
		ck_assert_msg(err[0] != '\0', "case %zu: empty message", i);
		ck_assert_msg(strstr(err, "s3cr3t") == NULL, "case %zu echoes the password: %s", i, err);
	}
	/* null for a string */
	expect_error("database:\n  url: ~\n", "cmf.yaml:2: database.url: expected a string, found null");
	expect_error("database:\n  url:\n", "cmf.yaml:2: database.url: expected a string, found null");
	/* a quoted empty string is a string (then refused by validation) */
	expect_error("database:\n  url: ''\n",
		     "database.url is required: set it in the configuration file or CMF_DATABASE_URL");
}
END_TEST

START_TEST(test_required_settings)
{
	expect_error("log:\n  level: info\n",
		     "database.url is required: set it in the configuration file or CMF_DATABASE_URL");
	setenv("CMF_DATABASE_URL", "", 1);
	expect_error("database:\n  url: postgres://x\n",
		     "database.url is required: set it in the configuration file or CMF_DATABASE_URL");
	unsetenv("CMF_DATABASE_URL");
	expect_error("database:\n  url: postgres://x\nencryption:\n  enabled: true\n",
		     "encryption.key.file is required when encryption.enabled is true: set it in the "
		     "configuration file or CMF_ENCRYPTION_KEY_FILE");
	/* disabled without a key file is fine */
	ck_assert_int_eq(load_yaml("database:\n  url: postgres://x\nencryption:\n  enabled: false\n"), 0);
	ck_assert(!cfg->encryption_enabled);
	ck_assert_str_eq(cfg->encryption_key_file, "");
	/* the key file from the environment satisfies the file's enabled: true */
	setenv("CMF_ENCRYPTION_KEY_FILE", "/k", 1);
	ck_assert_int_eq(load_yaml("database:\n  url: postgres://x\nencryption:\n  enabled: true\n"), 0);
	ck_assert_str_eq(cfg->encryption_key_file, "/k");
}
END_TEST

START_TEST(test_listen)
{
	static const char *const good[] = {
		"127.0.0.1:8080", "0.0.0.0:1", "localhost:65535", "cmf.svc.cluster.local:443",
		"[::]:8080", "[::1]:80", "[fe80::1%eth0]:8080", "[::ffff:10.0.0.1]:9000",
	};
	static const char *const bad[] = {
		"8080", ":8080", "host:", "host:0", "host:65536", "host:123456", "host:80x", "::1:8080",
		"[::1]8080", "[]:80", "[::1]:", "[zz::1]:80", "a b:80", "", "[1.2.3.4]:80",
	};

	set_required_env();
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		setenv("CMF_LISTEN", good[i], 1);
		cmf_config_free(cfg);
		cfg = NULL;
		ck_assert_msg(cmf_config_load(NULL, &cfg, err, sizeof(err)) == 0, "%s: %s", good[i], err);
		ck_assert_str_eq(cfg->listen, good[i]);
	}
	cmf_config_free(cfg);
	cfg = NULL;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[256];

		setenv("CMF_LISTEN", bad[i], 1);
		ck_assert_msg(cmf_config_load(NULL, &cfg, err, sizeof(err)) == -1, "accepted %s", bad[i]);
		snprintf(want, sizeof(want),
			 "environment CMF_LISTEN: expected host:port or [v6]:port with a port from 1 to 65535, "
			 "found '%s'",
			 bad[i]);
		ck_assert_str_eq(err, want);
	}
	unsetenv("CMF_LISTEN");
	expect_error("server:\n  listen: localhost\n",
		     "cmf.yaml:2: server.listen: expected host:port or [v6]:port with a port from 1 to 65535, "
		     "found 'localhost'");
}
END_TEST

START_TEST(test_log_level)
{
	set_required_env();
	expect_error("log:\n  level: verbose\n",
		     "cmf.yaml:2: log.level: expected one of debug, info, warn, error, found 'verbose'");
	expect_error("log:\n  level: INFO\n", "cmf.yaml:2: log.level: expected one of debug, info, warn, error, found 'INFO'");
	setenv("CMF_LOG_LEVEL", "trace", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "environment CMF_LOG_LEVEL: expected one of debug, info, warn, error, found 'trace'");
	setenv("CMF_LOG_LEVEL", "warn", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg->log_level, "warn");
}
END_TEST

START_TEST(test_file_errors)
{
	char want[256];

	ck_assert_int_eq(cmf_config_load("missing.yaml", &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_null(cfg);
	snprintf(want, sizeof(want), "missing.yaml: cannot open: %s", strerror(ENOENT));
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(mkdir("adir", 0700), 0);
	ck_assert_int_eq(cmf_config_load("adir", &cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "adir: not a regular file");
}
END_TEST

START_TEST(test_empty_files)
{
	static const char *const empty[] = {
		"", "# only a comment\n\n# another\n", "---\n", "---\n...\n", "~\n",
		"server:\n  # every setting commented out\n", "server: {}\nlog:\n",
	};

	set_required_env();
	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		ck_assert_msg(load_yaml(empty[i]) == 0, "case %zu: %s", i, err);
		ck_assert_int_eq(cfg->threads, 8);
		ck_assert_str_eq(cfg->log_level, "info");
	}
}
END_TEST

START_TEST(test_flow_style_and_quoting)
{
	ck_assert_int_eq(load_yaml("{database: {url: \"host=db password='x y'\"}, encryption: {enabled: false},"
				   " server: {threads: 3}}\n"),
			 0);
	ck_assert_str_eq(cfg->database_url, "host=db password='x y'");
	ck_assert_int_eq(cfg->threads, 3);
}
END_TEST

START_TEST(test_free_null)
{
	cmf_config_free(NULL);
}
END_TEST

START_TEST(test_auth_and_tls)
{
	setenv("CMF_DATABASE_URL", "host=db", 1);
	setenv("CMF_ENCRYPTION_ENABLED", "false", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), 0);
	ck_assert(cfg->auth_enabled);
	ck_assert_str_eq(cfg->auth_admin_token_file, "/etc/cmf/admin-token");
	ck_assert_int_eq(cfg->max_connections, 1000);
	ck_assert_int_eq(cfg->max_header_bytes, 32768);
	ck_assert_str_eq(cfg->tls_cert_file, "");
	cmf_config_free(cfg);
	cfg = NULL;

	unsetenv("CMF_AUTH_ADMIN_TOKEN_FILE");
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "auth.adminTokenFile is required when auth.enabled is true"));
	setenv("CMF_AUTH_ENABLED", "false", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), 0);
	ck_assert(!cfg->auth_enabled);
	cmf_config_free(cfg);
	cfg = NULL;

	setenv("CMF_SERVER_TLS_CERT_FILE", "/tls/tls.crt", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "server.tls.certFile and server.tls.keyFile must be set together");
	setenv("CMF_SERVER_TLS_KEY_FILE", "/tls/tls.key", 1);
	setenv("CMF_SERVER_TLS_CLIENT_CA_FILE", "/tls/ca.crt", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), 0);
	ck_assert_str_eq(cfg->tls_client_ca_file, "/tls/ca.crt");
	cmf_config_free(cfg);
	cfg = NULL;
	unsetenv("CMF_SERVER_TLS_CERT_FILE");
	unsetenv("CMF_SERVER_TLS_KEY_FILE");
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "server.tls.clientCaFile needs TLS"));

	setenv("CMF_SERVER_MAX_CONNECTIONS", "0", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "CMF_SERVER_MAX_CONNECTIONS"));
}
END_TEST

/* audit.retentionDays: 0 (keep every event) unless set; 0..36500 from the file or the environment. */
START_TEST(test_audit_retention)
{
	set_required_env();
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(cfg->audit_retention_days, 0);
	ck_assert_int_eq(load_yaml("audit:\n  retentionDays: 90\n"), 0);
	ck_assert_int_eq(cfg->audit_retention_days, 90);
	ck_assert_int_eq(load_yaml("audit:\n  retentionDays: 36500\n"), 0);
	ck_assert_int_eq(cfg->audit_retention_days, 36500);
	expect_error("audit:\n  retentionDays: 36501\n",
		     "cmf.yaml:2: audit.retentionDays: expected an integer from 0 to 36500, found '36501'");
	expect_error("audit:\n  retentionDays: -1\n",
		     "cmf.yaml:2: audit.retentionDays: expected an integer from 0 to 36500, found '-1'");
	expect_error("audit:\n  retentionDays: 7d\n",
		     "cmf.yaml:2: audit.retentionDays: expected an integer from 0 to 36500, found '7d'");
	setenv("CMF_AUDIT_RETENTION_DAYS", "7", 1);
	ck_assert_int_eq(load_yaml("audit:\n  retentionDays: 90\n"), 0);
	ck_assert_int_eq(cfg->audit_retention_days, 7);
	setenv("CMF_AUDIT_RETENTION_DAYS", "forever", 1);
	cmf_config_free(cfg);
	cfg = NULL;
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "environment CMF_AUDIT_RETENTION_DAYS: expected an integer from 0 to 36500, found 'forever'");
}
END_TEST

/* server.maxWatchers: 500 unless set; 0 (hold none) to 100000, from the file or the environment. */
START_TEST(test_max_watchers)
{
	set_required_env();
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(cfg->max_watchers, 500);
	ck_assert_int_eq(load_yaml("server:\n  maxWatchers: 0\n"), 0);
	ck_assert_int_eq(cfg->max_watchers, 0);
	ck_assert_int_eq(load_yaml("server:\n  maxWatchers: 100000\n"), 0);
	ck_assert_int_eq(cfg->max_watchers, 100000);
	expect_error("server:\n  maxWatchers: 100001\n",
		     "cmf.yaml:2: server.maxWatchers: expected an integer from 0 to 100000, found '100001'");
	expect_error("server:\n  maxWatchers: -1\n",
		     "cmf.yaml:2: server.maxWatchers: expected an integer from 0 to 100000, found '-1'");
	setenv("CMF_SERVER_MAX_WATCHERS", "2000", 1);
	ck_assert_int_eq(load_yaml("server:\n  maxWatchers: 10\n"), 0);
	ck_assert_int_eq(cfg->max_watchers, 2000);
}
END_TEST

/* secrets.maxVersions (1..1000, default 10) and secrets.requireIfMatch (default false). */
START_TEST(test_secret_versions)
{
	set_required_env();
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), 0);
	ck_assert_int_eq(cfg->secrets_max_versions, 10);
	ck_assert(!cfg->secrets_require_if_match);
	ck_assert_int_eq(load_yaml("secrets:\n  maxVersions: 1\n  requireIfMatch: true\n"), 0);
	ck_assert_int_eq(cfg->secrets_max_versions, 1);
	ck_assert(cfg->secrets_require_if_match);
	expect_error("secrets:\n  maxVersions: 0\n",
		     "cmf.yaml:2: secrets.maxVersions: expected an integer from 1 to 1000, found '0'");
	expect_error("secrets:\n  maxVersions: 1001\n",
		     "cmf.yaml:2: secrets.maxVersions: expected an integer from 1 to 1000, found '1001'");
	setenv("CMF_SECRETS_MAX_VERSIONS", "25", 1);
	setenv("CMF_SECRETS_REQUIRE_IF_MATCH", "false", 1);
	ck_assert_int_eq(load_yaml("secrets:\n  maxVersions: 3\n  requireIfMatch: true\n"), 0);
	ck_assert_int_eq(cfg->secrets_max_versions, 25);
	ck_assert(!cfg->secrets_require_if_match);
}
END_TEST

static const struct cmf_check_opts config_opts = { .setup = setup, .teardown = teardown };

/* auth.mtls.principal: off by default, needs mutual TLS and auth; its rules are checked at load, named. */
START_TEST(test_mtls_principal)
{
	set_required_env();
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), 0);
	ck_assert(!cfg->auth_mtls_principal);
	ck_assert_str_eq(cfg->auth_mtls_principal_mapping_rules, "DEFAULT");
	cmf_config_free(cfg);
	cfg = NULL;
	setenv("CMF_AUTH_ADMIN_TOKEN_FILE", "/t", 1);
	setenv("CMF_AUTH_MTLS_PRINCIPAL", "true", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "auth.mtls.principal needs mutual TLS: set server.tls.clientCaFile"));
	setenv("CMF_SERVER_TLS_CERT_FILE", "/tls/tls.crt", 1);
	setenv("CMF_SERVER_TLS_KEY_FILE", "/tls/tls.key", 1);
	setenv("CMF_SERVER_TLS_CLIENT_CA_FILE", "/tls/ca.crt", 1);
	setenv("CMF_AUTH_MTLS_PRINCIPAL_MAPPING_RULES", "RULE:^CN=([^,]*),O=acme$/$1/L, DEFAULT", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), 0);
	ck_assert(cfg->auth_mtls_principal);
	cmf_config_free(cfg);
	cfg = NULL;
	/* A bad rule is refused even while the setting is off: named, with its number. */
	setenv("CMF_AUTH_MTLS_PRINCIPAL", "false", 1);
	setenv("CMF_AUTH_MTLS_PRINCIPAL_MAPPING_RULES", "DEFAULT, RULE:^CN=(.*?),.*$/$1/", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "environment CMF_AUTH_MTLS_PRINCIPAL_MAPPING_RULES: rule 2 `RULE:^CN=(.*?),.*$/$1/`: the pattern has "
			      "a lazy quantifier, which POSIX regular expressions do not have (\"(.*?),\" is \"([^,]*),\" here)");
	setenv("CMF_AUTH_MTLS_PRINCIPAL", "true", 1);
	setenv("CMF_AUTH_MTLS_PRINCIPAL_MAPPING_RULES", " , ", 1);
	ck_assert_int_eq(cmf_config_load(NULL, &cfg, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "no rule: every client certificate would be refused"));
}
END_TEST

CMF_CHECK_SUITE_WITH("config", &config_opts, test_defaults_without_file, test_full_file,
	test_env_overrides_file, test_env_type_errors, test_env_error_wins_over_valid_file, test_unknown_keys,
	test_integer_errors, test_boolean_errors, test_shape_errors, test_yaml_syntax_error,
	test_strings_never_echoed, test_required_settings, test_listen, test_log_level, test_file_errors,
	test_empty_files, test_flow_style_and_quoting, test_free_null, test_auth_and_tls, test_audit_retention,
	test_secret_versions, test_mtls_principal, test_max_watchers)
