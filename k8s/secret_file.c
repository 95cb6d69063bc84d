/* k8s secret files: read a kubelet-mounted secret whole, checked on the open descriptor, never logged. */
#include "k8s/k8s.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/buf.h"
#include "crypto/crypto.h"

/*
 * Read chunk size while the file turns out longer than fstat said (it grew after the fstat); 4 KiB is a
 * page, and secret files are small, so this path is rare and short.
 */
#define K8S_GROW_STEP 4096

const char *
k8s_strerror(int err)
{
	switch (err) {
	case K8S_OK:
		return "success";
	case K8S_ERR_INTERNAL:
		return "internal error";
	case K8S_ERR_ALLOC:
		return "out of memory";
	case K8S_ERR_NOT_FOUND:
		return "secret file not found";
	case K8S_ERR_ACCESS:
		return "permission denied on secret file";
	case K8S_ERR_NOT_REGULAR:
		return "secret path is not a regular file";
	case K8S_ERR_TOO_LARGE:
		return "secret file is too large";
	case K8S_ERR_IO:
		return "error reading secret file";
	case K8S_ERR_KEY_INVALID:
		return "secret file does not hold a valid key";
	}
	return "unknown k8s error";
}

static int
k8s_errno_code(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return K8S_ERR_NOT_FOUND;
	case EACCES:
	case EPERM:
		return K8S_ERR_ACCESS;
	case ENOMEM:
		return K8S_ERR_ALLOC;
	case ENXIO:
		/* O_NONBLOCK open of a fifo without a writer, a socket, or a device without its driver. */
		return K8S_ERR_NOT_REGULAR;
	default:
		return K8S_ERR_IO;
	}
}

/* What identifies one version of a mounted file: a kubelet swap gives a new inode, an edit a new time. */
struct file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	mode_t mode;
	struct timespec mtime, ctime;
};

static void
file_id_of(const struct stat *st, struct file_id *id)
{
	memset(id, 0, sizeof(*id));
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mode = st->st_mode;
	id->mtime = st->st_mtim;
	id->ctime = st->st_ctim;
}

static int
file_id_equal(const struct file_id *a, const struct file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mode == b->mode &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/*
 * Read `path` whole. The identity comes from fstat on the open descriptor, so it describes exactly the
 * bytes read even while the kubelet swaps ..data. When `skip_if` matches it, nothing is read and
 * K8S_WATCH_UNCHANGED is returned.
 */
static int
secret_read(const char *path, size_t max, const struct file_id *skip_if, struct file_id *id, uint8_t **out,
	    size_t *outlen, int *loose_perms, char *why, size_t whylen)
{
	struct stat st;
	struct crypto_buf *buf = NULL;
	uint8_t *dp;
	size_t len, want, limit;
	int fd = -1, e, cr, r = K8S_ERR_INTERNAL;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (loose_perms != NULL)
		*loose_perms = 0;
	if (out == NULL || outlen == NULL || path == NULL) {
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "invalid argument");
		return K8S_ERR_INTERNAL;
	}
	*out = NULL;
	*outlen = 0;

	/*
	 * Follows symlinks (the kubelet's <dir>/<key> -> ..data/<key> layout). O_NONBLOCK so a fifo does not
	 * block the open; it has no effect on the regular file we expect. O_NOCTTY for a stray tty path.
	 */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		e = errno;
		r = k8s_errno_code(e);
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "%s: %s", path, strerror(e));
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		e = errno;
		r = k8s_errno_code(e);
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "%s: %s", path, strerror(e));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = K8S_ERR_NOT_REGULAR;
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size < 0 || (uintmax_t)st.st_size > (uintmax_t)max) {
		r = K8S_ERR_TOO_LARGE;
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "%s: larger than %zu bytes", path, max);
		goto out;
	}
	if (loose_perms != NULL)
		*loose_perms = (st.st_mode & S_IRWXO) != 0;
	if (id != NULL)
		file_id_of(&st, id);
	if (skip_if != NULL && id != NULL && file_id_equal(skip_if, id)) {
		r = K8S_WATCH_UNCHANGED;
		goto out;
	}

	/* One byte past the cap is read at most: enough to tell that the file grew beyond it. */
	limit = max < SIZE_MAX ? max + 1 : SIZE_MAX;
	/* The buffer wipes what it leaves behind as it grows, and holds the read bytes in one place only. */
	if (crypto_buf_new(limit, &buf) != CRYPTO_OK) {
		r = K8S_ERR_ALLOC;
		goto out;
	}
	for (;;) {
		ssize_t n;

		/*
		 * Up to the size fstat gave plus one byte, so reaching EOF needs no second block in the usual
		 * case; past that (the file grew), K8S_GROW_STEP at a time, never past the limit.
		 */
		len = crypto_buf_len(buf);
		want = len <= (size_t)st.st_size ? (size_t)st.st_size + 1 - len : K8S_GROW_STEP;
		if (want > limit - len)
			want = limit - len;
		if (want == 0) {
			r = K8S_ERR_TOO_LARGE;
			if (why != NULL && whylen > 0)
				snprintf(why, whylen, "%s: larger than %zu bytes", path, max);
			goto out;
		}
		if ((cr = crypto_buf_reserve(buf, want, &dp)) != CRYPTO_OK) {
			r = cr == CRYPTO_ERR_ALLOC ? K8S_ERR_ALLOC : K8S_ERR_INTERNAL;
			goto out;
		}
		n = read(fd, dp, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			e = errno;
			r = K8S_ERR_IO;
			if (why != NULL && whylen > 0)
				snprintf(why, whylen, "%s: %s", path, strerror(e));
			goto out;
		}
		if (n == 0)
			break;
		if (crypto_buf_commit(buf, (size_t)n) != CRYPTO_OK)
			goto out;
	}
	if (crypto_buf_len(buf) > max) {
		r = K8S_ERR_TOO_LARGE;
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "%s: larger than %zu bytes", path, max);
		goto out;
	}
	if (crypto_buf_take(buf, out, outlen) != CRYPTO_OK) {
		r = K8S_ERR_ALLOC;
		goto out;
	}
	r = K8S_OK;
out:
	crypto_buf_free(buf);
	if (fd >= 0)
		close(fd);
	if (r < 0 && loose_perms != NULL)
		*loose_perms = 0;
	return r;
}

int
k8s_secret_read_file(const char *path, size_t max, uint8_t **out, size_t *outlen, int *loose_perms,
		     char *why, size_t whylen)
{
	return secret_read(path, max, NULL, NULL, out, outlen, loose_perms, why, whylen);
}

struct k8s_watch {
	char *path;
	size_t max;
	int have_id; /* the last poll read the file: `id` describes what was read */
	struct file_id id;
};

int
k8s_watch_new(const char *path, size_t max, struct k8s_watch **out)
{
	struct k8s_watch *w;

	*out = NULL;
	if (path == NULL)
		return K8S_ERR_INTERNAL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return K8S_ERR_ALLOC;
	if ((w->path = strdup(path)) == NULL) {
		free(w);
		return K8S_ERR_ALLOC;
	}
	w->max = max;
	*out = w;
	return K8S_OK;
}

int
k8s_watch_poll(struct k8s_watch *w, uint8_t **out, size_t *outlen, int *loose_perms, char *why, size_t whylen)
{
	struct file_id id;
	int r;

	r = secret_read(w->path, w->max, w->have_id ? &w->id : NULL, &id, out, outlen, loose_perms, why, whylen);
	if (r == K8S_OK) {
		w->id = id;
		w->have_id = 1;
		return K8S_WATCH_CHANGED;
	}
	if (r < 0)
		w->have_id = 0; /* whatever comes back next is news */
	return r;
}

void
k8s_watch_forget(struct k8s_watch *w)
{
	w->have_id = 0;
}

void
k8s_watch_free(struct k8s_watch *w)
{
	if (w == NULL)
		return;
	free(w->path);
	free(w);
}
