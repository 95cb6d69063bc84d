/* cmf logging: timestamped single-line records written with one write(2) so threads never interleave. */
#include "cmf/log.h"
#include "cmf/text.h"
#include "crypto/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int log_level = CMF_LOG_INFO;

void
cmf_log_set_level(enum cmf_log_level level)
{
	log_level = level;
}

static const char *
level_name(enum cmf_log_level level)
{
	switch (level) {
	case CMF_LOG_DEBUG:
		return "DEBUG";
	case CMF_LOG_INFO:
		return "INFO";
	case CMF_LOG_WARN:
		return "WARN";
	case CMF_LOG_ERROR:
		return "ERROR";
	}
	return "?";
}

__attribute__((format(printf, 2, 0))) static void
log_v(enum cmf_log_level level, const char *fmt, va_list ap)
{
	/* 4 KiB: longer lines are truncated; a log line is a summary, never a payload. */
	char line[4096], text[4096];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	r = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
		     level_name(level));
	if (r < 0 || vsnprintf(text, sizeof(text), fmt, ap) < 0)
		return;
	n = (size_t)r;
	/* Request paths and names are quoted in log lines: no control byte reaches the reader's terminal. */
	n += cmf_text_log_escape(text, line + n, sizeof(line) - n - 1);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* Nowhere left to report a failed log write. */
	}
}

void
cmf_log(enum cmf_log_level level, const char *fmt, ...)
{
	va_list ap;

	if ((int)level < log_level)
		return;
	va_start(ap, fmt);
	log_v(level, fmt, ap);
	va_end(ap);
}

/* The lower layers' sink: the same lines, filtered by the same level. */
__attribute__((format(printf, 2, 0))) static void
lower_sink(int level, const char *fmt, va_list ap)
{
	if (level < log_level)
		return;
	log_v((enum cmf_log_level)level, fmt, ap);
}

void
cmf_log_install(void)
{
	crypto_log_set_sink(lower_sink);
}
