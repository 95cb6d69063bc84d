/* k8s: reading secrets that Kubernetes mounts as files (the kubelet's atomic-writer layout). */
#ifndef CMF_K8S_H
#define CMF_K8S_H

#include <stddef.h>
#include <stdint.h>

struct crypto_key; /* crypto/crypto.h */

enum {
	K8S_OK = 0,
	K8S_ERR_INTERNAL = -1,
	K8S_ERR_ALLOC = -2,
	K8S_ERR_NOT_FOUND = -3,   /* no such file (or a dangling ..data symlink) */
	K8S_ERR_ACCESS = -4,      /* permission denied */
	K8S_ERR_NOT_REGULAR = -5, /* a directory, device, fifo... */
	K8S_ERR_TOO_LARGE = -6,   /* larger than the cap given */
	K8S_ERR_IO = -7,          /* read error */
	K8S_ERR_KEY_INVALID = -8, /* read, but the content is not a master key (k8s_master_key_poll) */
};

const char *k8s_strerror(int err);

/*
 * Read a mounted secret file whole. The path is opened (following symlinks, as the kubelet's
 * `<dir>/<property> -> ..data/<property>` layout needs), then checked with fstat on the open descriptor:
 * it must be a regular file of at most `max` bytes. When the file grants any permission to "other",
 * *loose_perms is set to 1 (the caller warns); otherwise 0. (Group read is what the chart's
 * fsGroup + defaultMode 0440 gives, so it is not flagged.)
 * On success *out is a malloc'd buffer of *outlen bytes (followed by a NUL byte, not counted) that the
 * caller must free with crypto_freezero(*out, *outlen); on failure *out is NULL, *outlen 0, and
 * errno-derived detail goes to `why` (size whylen, may be NULL), e.g.
 * "/etc/cmf/key/encryption-key: No such file or directory". Read buffers are wiped.
 */
int k8s_secret_read_file(const char *path, size_t max, uint8_t **out, size_t *outlen, int *loose_perms,
			 char *why, size_t whylen);

/*
 * Watching a mounted secret file. The kubelet updates a Secret volume by writing a new timestamped
 * directory and renaming the `..data` symlink onto it, so every update gives the path a new inode;
 * an in-place edit (outside Kubernetes) changes its times. A watch remembers the identity (device,
 * inode, size, mode, mtime, ctime — from fstat on the descriptor it read) of the last good read.
 */
struct k8s_watch;

enum { K8S_WATCH_UNCHANGED = 1, K8S_WATCH_CHANGED = 2 }; /* positive: distinct from K8S_OK */

/* A watch of `path` (copied) for files of at most `max` bytes. Nothing is read yet. */
int k8s_watch_new(const char *path, size_t max, struct k8s_watch **out);

/*
 * Poll once. The same identity as the last good read → K8S_WATCH_UNCHANGED, nothing read, *out NULL.
 * Otherwise the file is read whole under k8s_secret_read_file's rules → K8S_WATCH_CHANGED with *out
 * (caller frees with crypto_freezero) — the first poll always reports CHANGED. A failure returns the
 * negative K8S_ERR_* code with `why`, and the watch forgets the identity: the next good read is CHANGED.
 */
int k8s_watch_poll(struct k8s_watch *w, uint8_t **out, size_t *outlen, int *loose_perms, char *why, size_t whylen);

/* Forget the last identity, so the next poll reads and reports CHANGED (to retry acting on it). */
void k8s_watch_forget(struct k8s_watch *w);

void k8s_watch_free(struct k8s_watch *w);

/*
 * The master key from its mounted file: poll `w` (a watch of the key file) and parse what was read
 * under crypto_key_parse's rules. The start-up and the key watch both load the key through this; the
 * start-up polls a new watch once (a first poll always reads).
 *  - K8S_WATCH_CHANGED: *key is a new key (free with crypto_key_free);
 *  - K8S_WATCH_UNCHANGED: the file is as at the last read; nothing read, *key NULL;
 *  - K8S_ERR_KEY_INVALID: the file was read but crypto_key_parse refused it; `why` holds its sentence
 *    (never key bytes; empty if parsing failed for lack of memory). The watch keeps the file's
 *    identity: the same file is not parsed again;
 *  - another negative K8S_ERR_*: the file cannot be read; `why` as k8s_watch_poll gives it.
 * *loose_perms (may be NULL) is set as k8s_watch_poll sets it, also when the content is not a key.
 * `why` (size whylen) may be NULL. The bytes read are wiped in every case.
 */
int k8s_master_key_poll(struct k8s_watch *w, struct crypto_key **key, int *loose_perms, char *why, size_t whylen);

#endif
