/* db seal: opening a stored secret's data — the one place rows become plaintext, for every store. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/log.h"
#include "db/internal.h"

void
db_secret_ident(char *buf, size_t len, const char *uid, long long version)
{
	snprintf(buf, len, "secret/%s/%lld", uid, version);
}

int
db_secret_data_open(const struct db_sealer *sl, const char *name, const char *uid, long long version, bool sealed,
		    const char *data_escaped, json_t **data)
{
	char ident[96];
	unsigned char *raw = NULL;
	uint8_t *pt = NULL;
	size_t rawlen = 0, ptlen = 0;
	json_error_t jerr;
	int r = DB_OK, cr;

	*data = NULL;
	/* The row's form must match the database's mode: a plaintext row in an encrypted database was
	 * not written by cmf, and is refused rather than served. */
	if (sealed != sl->enabled) {
		crypto_log_error("%s: secret %s is stored %s but the database has encryption %s", __func__, name,
			  sealed ? "encrypted" : "in plaintext", sl->enabled ? "enabled" : "disabled");
		return DB_ERR_CORRUPT;
	}
	if (sealed && sl->keyring == NULL)
		return DB_ERR_KEY_UNAVAILABLE;
	raw = PQunescapeBytea((const unsigned char *)data_escaped, &rawlen);
	if (raw == NULL)
		return DB_ERR_ALLOC;
	if (sealed) {
		db_secret_ident(ident, sizeof(ident), uid, version);
		cr = crypto_keyring_open(sl->keyring, (const uint8_t *)ident, strlen(ident), raw, rawlen, &pt, &ptlen);
		if (cr != CRYPTO_OK) {
			crypto_log_error("%s: secret %s (uid %s, version %lld) does not decrypt: %s", __func__, name, uid, version,
				  crypto_strerror(cr));
			r = cr == CRYPTO_ERR_ALLOC ? DB_ERR_ALLOC : DB_ERR_CORRUPT;
			goto out;
		}
		*data = json_loadb((const char *)pt, ptlen, 0, &jerr);
	} else {
		*data = json_loadb((const char *)raw, rawlen, 0, &jerr);
	}
	if (!json_is_object(*data)) {
		crypto_log_error("%s: secret %s: stored data is not a JSON object", __func__, name);
		json_decref(*data);
		*data = NULL;
		r = DB_ERR_CORRUPT;
	}
out:
	if (pt != NULL) {
		OPENSSL_cleanse(pt, ptlen);
		free(pt);
	}
	OPENSSL_cleanse(raw, rawlen);
	PQfreemem(raw);
	return r;
}
