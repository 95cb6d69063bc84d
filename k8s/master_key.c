/* k8s master key: read the master key from its mounted secret file and parse it, for start-up and watch alike. */
#include "k8s/k8s.h"

#include <stdio.h>

#include "crypto/crypto.h"

int
k8s_master_key_poll(struct k8s_watch *w, struct crypto_key **key, int *loose_perms, char *why, size_t whylen)
{
	struct crypto_key *k = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = K8S_ERR_INTERNAL;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (loose_perms != NULL)
		*loose_perms = 0;
	if (key == NULL || w == NULL) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "invalid argument");
		return K8S_ERR_INTERNAL;
	}
	*key = NULL;
	if ((r = k8s_watch_poll(w, &buf, &len, loose_perms, why, whylen)) != K8S_WATCH_CHANGED)
		goto out;
	/* Any parse failure is the content's, as both callers have always reported it. */
	if (crypto_key_parse(buf, len, &k, why, whylen) != CRYPTO_OK) {
		r = K8S_ERR_KEY_INVALID;
		goto out;
	}
	*key = k;
	k = NULL;
	r = K8S_WATCH_CHANGED;
out:
	crypto_freezero(buf, len);
	crypto_key_free(k);
	return r;
}
