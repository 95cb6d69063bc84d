/* crypto log: the sink the program installs for the lower layers, and the OpenSSL error queue. */
#include "crypto/log.h"

#include <openssl/err.h>
#include <stdio.h>

static crypto_log_sink log_sink;

void
crypto_log_set_sink(crypto_log_sink sink)
{
	log_sink = sink;
}

void
crypto_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (log_sink != NULL) {
		log_sink(level, fmt, ap);
	} else {
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}

void
crypto_log_openssl(const char *func)
{
	char buf[256];
	unsigned long e;
	int any = 0;

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		crypto_log_error("%s: OpenSSL: %s", func, buf);
		any = 1;
	}
	if (!any)
		crypto_log_error("%s: OpenSSL failed without an error on its queue", func);
}
