/* cmf HTTP daemon: libmicrohttpd, TLS, request bodies, the access log and draining, on top of the dispatcher. */
#ifndef CMF_HTTP_DAEMON_H
#define CMF_HTTP_DAEMON_H

#include "cmf/app.h"

/*
 * Run the server until SIGTERM or SIGINT: listen on cfg->listen with a pool of cfg->threads
 * worker threads, then on the signal stop accepting, wait up to cfg->drain_seconds for in-flight
 * requests to finish, and return 0. Returns -1 (logged) when the daemon cannot start (address in
 * use, bad address). The caller must have blocked SIGTERM/SIGINT/SIGPIPE in all threads.
 */
int cmf_http_serve(struct cmf_app *app);

#endif
