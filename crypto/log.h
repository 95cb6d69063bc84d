/*
 * crypto log: how the lower layers (crypto/, db/, k8s/) log without including anything from cmf/. The
 * program installs its logger as the sink at start; until then lines go to stderr as they are.
 */
#ifndef CRYPTO_LOG_H
#define CRYPTO_LOG_H

#include <stdarg.h>

/* The same levels, in the same order, as cmf/log.h's (cmf installs a sink that takes these values). */
enum crypto_log_level { CRYPTO_LOG_DEBUG = 0, CRYPTO_LOG_INFO = 1, CRYPTO_LOG_WARN = 2, CRYPTO_LOG_ERROR = 3 };

/* A sink: one line (no newline in fmt) at `level`. It filters by level itself. */
typedef void (*crypto_log_sink)(int level, const char *fmt, va_list ap);

/* Install `sink` (NULL: back to plain stderr). Call before any thread starts. */
void crypto_log_set_sink(crypto_log_sink sink);

/* Log one line through the sink. Never pass secret values, tokens, key bytes or SQL parameters. */
void crypto_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define crypto_log_debug(...) crypto_log(CRYPTO_LOG_DEBUG, __VA_ARGS__)
#define crypto_log_info(...) crypto_log(CRYPTO_LOG_INFO, __VA_ARGS__)
#define crypto_log_warn(...) crypto_log(CRYPTO_LOG_WARN, __VA_ARGS__)
#define crypto_log_error(...) crypto_log(CRYPTO_LOG_ERROR, __VA_ARGS__)

/* Log the OpenSSL error queue (and clear it) as ERROR lines prefixed with `func`. */
void crypto_log_openssl(const char *func);

#endif
