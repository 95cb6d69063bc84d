/* cmf application state: one database connection per worker thread, and the shared keyring lock. */
#include <pthread.h>
#include <stdlib.h>

#include "cmf/app.h"
#include "cmf/log.h"

static pthread_key_t conn_key;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;
static const char *db_password;

static void
conn_destroy(void *p)
{
	db_conn_close(p);
}

static void
conn_key_init(void)
{
	if (pthread_key_create(&conn_key, conn_destroy) != 0)
		abort(); /* only fails when the process is out of keys: nothing sensible to do */
}

void
cmf_app_set_db_password(const char *password)
{
	db_password = password;
}

struct db_conn *
cmf_app_conn(struct cmf_app *app)
{
	struct db_conn *c;

	pthread_once(&conn_once, conn_key_init);
	c = pthread_getspecific(conn_key);
	if (c != NULL)
		return c;
	/* A failed first connect still yields a handle; the transaction runner reconnects later. */
	if (db_conn_open(app->cfg->database_url, db_password, &c) == DB_ERR_ALLOC)
		return NULL;
	pthread_setspecific(conn_key, c);
	return c;
}

void
cmf_app_sealer_acquire(struct cmf_app *app, struct db_sealer *sealer)
{
	pthread_rwlock_rdlock(&app->key_lock);
	sealer->enabled = app->encryption_enabled;
	sealer->keyring = app->keyring;
}

void
cmf_app_sealer_release(struct cmf_app *app)
{
	pthread_rwlock_unlock(&app->key_lock);
}
