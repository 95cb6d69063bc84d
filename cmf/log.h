/* cmf logging: one line per event on stderr, UTC timestamp, level; used by every module. */
#ifndef CMF_LOG_H
#define CMF_LOG_H

enum cmf_log_level { CMF_LOG_DEBUG = 0, CMF_LOG_INFO = 1, CMF_LOG_WARN = 2, CMF_LOG_ERROR = 3 };

/* Messages below `level` are dropped. Default CMF_LOG_INFO. */
void cmf_log_set_level(enum cmf_log_level level);

/*
 * Write one line: "2026-11-26T05:40:00.123Z WARN message". Newlines in the message are replaced, so a
 * line is always one event. Never pass secret values, tokens, key bytes or SQL parameters here.
 * Thread-safe (one write(2) per line).
 */
void cmf_log(enum cmf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cmf_debug(...) cmf_log(CMF_LOG_DEBUG, __VA_ARGS__)
#define cmf_info(...) cmf_log(CMF_LOG_INFO, __VA_ARGS__)
#define cmf_warn(...) cmf_log(CMF_LOG_WARN, __VA_ARGS__)
#define cmf_error(...) cmf_log(CMF_LOG_ERROR, __VA_ARGS__)

/* Route the lower layers' lines (crypto/log.h) through this logger: called once at start. */
void cmf_log_install(void);

#endif
