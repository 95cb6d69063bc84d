/* cmf readiness: whether PostgreSQL answers, known without waiting for it (a probe never blocks). */
#ifndef CMF_READY_H
#define CMF_READY_H

#include <stdbool.h>

#include "cmf/app.h"

/*
 * Start the background check: once a second, unless a request has just shown PostgreSQL answering,
 * `SELECT 1` on a session of its own, bounded by database.requestTimeoutSeconds. Returns 0, or -1
 * (logged) if the thread cannot start.
 */
int cmf_ready_start(struct cmf_app *app);

/* Stop and join the check (no-op if not started). */
void cmf_ready_stop(void);

/*
 * Whether PostgreSQL is taken to answer: the latest evidence from any call of this process (db_health)
 * says it answered, within the last database.requestTimeoutSeconds + 2 s (3 s before cmf_ready_start).
 * Never waits.
 */
bool cmf_ready_database(void);

#endif
