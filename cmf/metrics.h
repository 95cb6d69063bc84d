/*
 * cmf metrics: the process's counters, gauges and histograms, updated from any thread without a lock
 * (C11 atomics, relaxed: a request costs a pointer and a string comparison to find its route and three
 * atomic adds, about 50 ns) and rendered as the Prometheus text exposition format 0.0.4 for GET /metrics.
 *
 * Label values come only from fixed vocabularies: route patterns of the route table (or "unmatched"),
 * the HTTP methods below (or "other"), status codes, and the key id (a public fingerprint). Nothing a
 * client sends becomes a label value, so a client cannot create series, and no secret, token or key
 * material is ever a label. Every table is of fixed size: memory does not grow with traffic.
 *
 * The state is process-wide and starts at zero; nothing needs to be initialized or freed.
 */
#ifndef CMF_METRICS_H
#define CMF_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Distinct route patterns kept, "unmatched" included: cmf's route table has at most 64 routes
 * (cmf/api/routes.c), so twice that never fills. A pattern beyond it is counted as "unmatched".
 */
#define CMF_METRICS_ROUTES_MAX 128

/* A route pattern longer than this is cut: the longest of cmf's is about 50 characters. */
#define CMF_METRICS_ROUTE_LEN 160

/*
 * One request answered. `route` is the pattern of the route that served it, as cmf_router_pattern
 * writes it ("/cmf/api/v1/secrets" and so on, a captured segment written "*"), or NULL when no route
 * served the request (labelled "unmatched"). Never pass the request's own path: a label's values must
 * come from the route table. `route` is borrowed for the call only (copied the first time it is seen),
 * so a buffer on the caller's stack will do; passing the same string for a route every time (the
 * dispatcher's pattern of the route) is what makes the lookup cheap. `method` is GET, POST, PUT,
 * DELETE, HEAD, PATCH or OPTIONS, anything else (NULL too) is labelled "other"; `status` the HTTP
 * status sent (outside 100..599 labelled "other"); `seconds` the time taken (negative or NaN counts
 * as 0). Counts cmf_http_requests_total{route,method,status} and cmf_http_request_duration_seconds{route}.
 */
void cmf_metrics_request(const char *route, const char *method, unsigned status, double seconds);

/* The plain counters (series cmf_<name>_total; see cmf/metrics.c for names and help). */
enum cmf_metric {
	CMF_M_TOKEN_CACHE_HITS,
	CMF_M_TOKEN_CACHE_MISSES,
	CMF_M_TOKEN_CACHE_INVALIDATIONS,
	CMF_M_SNAPSHOT_CACHE_HITS,
	CMF_M_SNAPSHOT_CACHE_MISSES,
	CMF_M_SNAPSHOT_CACHE_INVALIDATIONS,
	CMF_M_ROW_CACHE_HITS,
	CMF_M_ROW_CACHE_MISSES,
	CMF_M_ROW_CACHE_INVALIDATIONS,
	CMF_M_AUDIT_EVENTS,
	CMF_M_AUDIT_MERGED_EVENTS,
	CMF_M_AUDIT_QUEUE_FULL,
	CMF_M_AUDIT_COMMIT_FAILURES,
	CMF_M_PG_ERRORS,
	CMF_M_LISTENER_RECONNECTS,
	CMF_M_LISTENER_RESYNCS,
	CMF_M_LISTENER_NOTIFICATIONS,
	CMF_M__COUNT
};

/* Add `n` to counter `m` (an unknown `m` is ignored). */
void cmf_metrics_add(enum cmf_metric m, uint64_t n);

/*
 * One committed audit batch: `rows` rows written (cmf_audit_batch_rows histogram) and the COMMIT's
 * latency in seconds (cmf_audit_commit_duration_seconds histogram).
 */
void cmf_metrics_audit_batch(size_t rows, double commit_seconds);

/* The gauges (see cmf/metrics.c for names and help). */
enum cmf_gauge {
	CMF_G_AUDIT_QUEUE_DEPTH,
	CMF_G_LISTENER_UP,             /* 0 or 1 */
	CMF_G_LISTENER_LAST_HEARTBEAT, /* unix time in seconds of the last heartbeat answered; 0: never */
	CMF_G_CACHE_ENABLED,           /* 0 or 1 */
	CMF_G_TOKEN_CACHE_ENTRIES,
	CMF_G_SNAPSHOT_CACHE_ENTRIES,
	CMF_G_ROW_CACHE_ENTRIES,
	CMF_G_OPEN_CONNECTIONS,
	CMF_G_SUSPENDED_CONNECTIONS,
	CMF_G_WATCHES_HELD, /* watch requests held (cmf/http/watch.c) */
	CMF_G__COUNT
};

/* Set gauge `g` to `v`, or add `delta` to it (an unknown `g` is ignored). */
void cmf_metrics_gauge_set(enum cmf_gauge g, double v);
void cmf_metrics_gauge_add(enum cmf_gauge g, double delta);

/* Data-key terms whose reservations are shown: a term rotates at 1e9 encryptions by default, so 8 covers years. */
#define CMF_METRICS_DEK_TERMS 8

/*
 * Encryptions reserved under DEK `term` in the database (every process's), as this process read it at
 * its latest reservation under that term: cmf_dek_reserved_encryptions{term}. The newest
 * CMF_METRICS_DEK_TERMS terms are kept; a term appears once this process reserved under it. Rare (one
 * call per 1,024 encryptions): takes a lock, unlike the counters.
 */
void cmf_metrics_dek_reserved(uint32_t term, uint64_t encryptions);

/*
 * The exposition text (format 0.0.4): a new malloc'd string the caller frees, or NULL when memory is
 * exhausted. It holds no secret (free() is enough). The encryption key as the caller sees it now:
 * `key_loaded` whether the keyring is loaded (false while revoked or unavailable); `key_id` the master
 * key's id (a public fingerprint, the label of cmf_key_info), "" or NULL when encryption is disabled;
 * `dek_term` the current DEK term (0: none known, the series is left out); `dek_encryptions` the
 * encryptions under that term, -1 when unknown (the series is left out). Also read here: the process's
 * resident memory (/proc/self/statm) and start time (/proc/self/stat), and the heartbeat's age
 * (now minus CMF_G_LISTENER_LAST_HEARTBEAT; left out before the first heartbeat).
 */
char *cmf_metrics_render(bool key_loaded, const char *key_id, unsigned dek_term, long long dek_encryptions);

#endif
