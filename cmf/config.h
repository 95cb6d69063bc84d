/* cmf configuration: a YAML file (libyaml) plus CMF_* environment overrides, validated in one place. */
#ifndef CMF_CONFIG_H
#define CMF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Every setting, with its YAML path, environment variable and default:
 *
 *   server.listen                  CMF_LISTEN                     "127.0.0.1:8080"  (host:port, [v6]:port)
 *   server.threads                 CMF_SERVER_THREADS             8       (1..256)
 *   server.maxBodyBytes            CMF_SERVER_MAX_BODY_BYTES      1048576 (1024..16777216)
 *   server.connectionTimeoutSeconds CMF_SERVER_CONNECTION_TIMEOUT_SECONDS 30 (1..3600)
 *   server.drainSeconds            CMF_SERVER_DRAIN_SECONDS       10      (0..600)
 *   database.url                   CMF_DATABASE_URL               required (libpq URI or conninfo)
 *   database.passwordFile          CMF_DATABASE_PASSWORD_FILE     ""      (optional; file holding the password)
 *   database.startupTimeoutSeconds CMF_DATABASE_STARTUP_TIMEOUT_SECONDS 30 (0..3600)
 *   encryption.enabled             CMF_ENCRYPTION_ENABLED         true
 *   encryption.key.file            CMF_ENCRYPTION_KEY_FILE        ""  (required when encryption.enabled)
 *   encryption.key.reloadIntervalSeconds CMF_ENCRYPTION_KEY_RELOAD_INTERVAL_SECONDS 2 (1..60)
 *   encryption.dek.rotateAfterEncryptions CMF_ENCRYPTION_DEK_ROTATE_AFTER_ENCRYPTIONS 1000000000
 *                                  (16384..1500000000; a new data-key term once the current one reserved this many)
 *   server.maxConnections          CMF_SERVER_MAX_CONNECTIONS     1000    (1..100000)
 *   server.maxConnectionsPerClient CMF_SERVER_MAX_CONNECTIONS_PER_CLIENT 100 (0..100000; 0: no cap)
 *   server.maxWatchers             CMF_SERVER_MAX_WATCHERS        500     (0..100000; held watch requests; 0: none)
 *   server.maxHeaderBytes          CMF_SERVER_MAX_HEADER_BYTES    32768   (4096..1048576; request line + headers)
 *   server.tls.certFile            CMF_SERVER_TLS_CERT_FILE       ""  (PEM; with keyFile, serve HTTPS)
 *   server.tls.keyFile             CMF_SERVER_TLS_KEY_FILE        ""  (PEM private key)
 *   server.tls.clientCaFile        CMF_SERVER_TLS_CLIENT_CA_FILE  ""  (PEM CA: require client certificates)
 *   auth.enabled                   CMF_AUTH_ENABLED               true
 *   auth.adminTokenFile            CMF_AUTH_ADMIN_TOKEN_FILE      ""  (required when auth.enabled)
 *   auth.mtls.principal            CMF_AUTH_MTLS_PRINCIPAL        false (a verified client certificate without a token is a principal; needs clientCaFile)
 *   auth.mtls.principalMappingRules CMF_AUTH_MTLS_PRINCIPAL_MAPPING_RULES "DEFAULT" (Kafka's ssl.principal.mapping.rules; cmf/http/principal.h)
 *   auth.oauth.enabled             CMF_AUTH_OAUTH_ENABLED         false (bearer JWTs from an OIDC provider; cmf/http/oidc.h)
 *   auth.oauth.jwksFile            CMF_AUTH_OAUTH_JWKS_FILE       "" (the provider's JWKS, a mounted file; re-read on change)
 *   auth.oauth.issuer              CMF_AUTH_OAUTH_ISSUER          "" (a token's iss must be exactly this)
 *   auth.oauth.audience            CMF_AUTH_OAUTH_AUDIENCE        "" (a token's aud must contain this)
 *   auth.oauth.principalClaim      CMF_AUTH_OAUTH_PRINCIPAL_CLAIM "sub" (the principal is oidc:<iss>#<claim>)
 *   auth.oauth.clockSkewSeconds    CMF_AUTH_OAUTH_CLOCK_SKEW_SECONDS 60 (0..300, on exp, nbf and iat)
 *   log.level                      CMF_LOG_LEVEL                  "info" (debug|info|warn|error)
 *   database.listenUrl             CMF_DATABASE_LISTEN_URL        ""  (LISTEN connection; "" = database.url)
 *   audit.queueCapacity            CMF_AUDIT_QUEUE_CAPACITY       65536 (1024..1048576 queued events)
 *   audit.retentionDays            CMF_AUDIT_RETENTION_DAYS       0     (0..36500; 0: keep every event)
 *   cache.enabled                  CMF_CACHE_ENABLED              true  (tokens and resolutions in memory)
 *   metrics.enabled                CMF_METRICS_ENABLED            true  (GET /metrics)
 *   encryption.key.id              CMF_ENCRYPTION_KEY_ID          ""  (pin: 16 hex digits; another key is refused)
 *   database.requestTimeoutSeconds CMF_DATABASE_REQUEST_TIMEOUT_SECONDS 5 (1..600; a call's deadline)
 *   server.probeListen             CMF_SERVER_PROBE_LISTEN        ""  (host:port: /healthz and /readyz only)
 *   secrets.maxVersions            CMF_SECRETS_MAX_VERSIONS       10    (1..1000; versions kept, the current one included)
 *   secrets.requireIfMatch         CMF_SECRETS_REQUIRE_IF_MATCH   false (PUT, DELETE and rollback of a secret need If-Match)
 *
 * Unknown keys are refused. Types are strict: integers are YAML plain scalars of digits within the
 * range, booleans are exactly true/false (YAML plain scalars, or the env strings "true"/"false"),
 * strings are scalars. A mapping where a scalar is expected (or the reverse) is a type error.
 */
struct cmf_config {
	char *listen;
	int threads;
	long max_body_bytes;
	int connection_timeout_seconds;
	int drain_seconds;
	char *database_url;
	char *database_password_file;
	int database_startup_timeout_seconds;
	bool encryption_enabled;
	char *encryption_key_file;
	char *encryption_key_previous_file; /* "" when not configured; the file itself may be absent */
	int encryption_key_reload_interval_seconds;
	long encryption_dek_rotate_after;
	char *log_level;
	int max_connections;
	int max_connections_per_client;
	int max_watchers;
	long max_header_bytes;
	char *tls_cert_file;
	char *tls_key_file;
	char *tls_client_ca_file;
	bool auth_enabled;
	char *auth_admin_token_file;
	bool auth_mtls_principal;
	char *auth_mtls_principal_mapping_rules;
	bool auth_oauth_enabled;
	char *auth_oauth_jwks_file;
	char *auth_oauth_issuer;
	char *auth_oauth_audience;
	char *auth_oauth_principal_claim;
	int auth_oauth_clock_skew_seconds;
	char *database_listen_url;
	int audit_queue_capacity;
	int audit_retention_days;
	bool cache_enabled;
	bool metrics_enabled;
	char *encryption_key_id;
	int database_request_timeout_seconds;
	char *probe_listen;
	int secrets_max_versions;
	bool secrets_require_if_match;
};

/*
 * Load configuration: defaults, then the YAML file at `path` (NULL: no file), then the environment
 * (`envp`-style lookup through getenv). Then validate cross-field rules (database.url present,
 * encryption.key.file present when encryption.enabled).
 * On failure returns -1, *out is NULL, and `err` (size errlen) holds one message naming the problem:
 *   "cmf.yaml:7: unknown key 'encryption.key.path'"
 *   "cmf.yaml:3: server.threads: expected an integer from 1 to 256, found 'many'"
 *   "environment CMF_ENCRYPTION_ENABLED: expected true or false, found 'yes'"
 *   "database.url is required: set it in the configuration file or CMF_DATABASE_URL"
 *   "cmf.yaml: cannot open: No such file or directory"
 *   "cmf.yaml:4:3: YAML syntax error: mapping values are not allowed in this context"
 * Errors report the file name as given, the 1-based line, and the dotted key.
 * On success returns 0 and *out owns a new config (free with cmf_config_free).
 * Reads the environment with getenv: call it before starting threads.
 */
int cmf_config_load(const char *path, struct cmf_config **out, char *err, size_t errlen);

/* Frees every string (database_url may hold a password, so it is wiped); NULL is a no-op. */
void cmf_config_free(struct cmf_config *cfg);

#endif
