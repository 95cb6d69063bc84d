/* links: k8s/secret_file.c crypto/buf.c crypto/util.c crypto/log.c */
/* Unit tests for k8s/secret_file.c: checks on the open file, size cap, permissions, the kubelet layout. */
#include "k8s/k8s.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/check_main.h"

/* Room for any message: a path under /tmp plus a strerror text. */
#define WHY_SIZE 512

/* mkdtemp's template below is 26 characters; 64 keeps every path built from it well under PATH_MAX. */
static char tmpdir[64];

static void
rm_rf(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	char sub[PATH_MAX];

	if (lstat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode) && (d = opendir(path)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
			rm_rf(sub);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cmf-k8s-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
teardown(void)
{
	rm_rf(tmpdir);
}

/* tmpdir + "/" + name, into a static buffer per call site's needs. */
static const char *
p(char buf[PATH_MAX], const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s", tmpdir, name);
	return buf;
}

static void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
	/* chmod, not the open mode, so the umask does not interfere. */
	ck_assert_int_eq(chmod(path, mode), 0);
}

/* Read and expect failure `want`: nothing handed over, and `why` starts with the path. */
static void
expect_fail(const char *path, size_t max, int want, char why[WHY_SIZE])
{
	uint8_t *out = (uint8_t *)1;
	size_t outlen = 1;
	int loose = 7, r;

	r = k8s_secret_read_file(path, max, &out, &outlen, &loose, why, WHY_SIZE);
	ck_assert_msg(r == want, "%s: got %d (%s), want %d", path, r, why, want);
	ck_assert_ptr_null(out);
	ck_assert_uint_eq(outlen, 0);
	ck_assert_int_eq(loose, 0);
	ck_assert_msg(strncmp(why, path, strlen(path)) == 0 && why[strlen(path)] == ':', "%s", why);
}

/* Read and expect exactly `want`. */
static void
expect_read(const char *path, size_t max, const void *want, size_t wantlen, int want_loose)
{
	uint8_t *out;
	size_t outlen;
	int loose = 7;
	char why[WHY_SIZE];

	ck_assert_int_eq(k8s_secret_read_file(path, max, &out, &outlen, &loose, why, sizeof(why)), K8S_OK);
	ck_assert_ptr_nonnull(out);
	ck_assert_str_eq(why, "");
	ck_assert_uint_eq(outlen, wantlen);
	ck_assert(memcmp(out, want, wantlen) == 0);
	ck_assert_int_eq(loose, want_loose);
	free(out);
}

START_TEST(test_regular_file)
{
	static const uint8_t data[] = {'k', 0, 'e', 0xff, '\n', 'y', '\n'};
	char path[PATH_MAX];

	write_file(p(path, "key"), data, sizeof(data), 0600);
	expect_read(path, 1024, data, sizeof(data), 0);
	/* Exactly the cap is fine. */
	expect_read(path, sizeof(data), data, sizeof(data), 0);
	/* An empty file is read as zero bytes (whether that is acceptable is the caller's business). */
	write_file(p(path, "empty"), "", 0, 0600);
	expect_read(path, 0, "", 0, 0);
	expect_read(path, 16, "", 0, 0);
	/* why and loose_perms may be NULL. */
	{
		uint8_t *out;
		size_t outlen;

		ck_assert_int_eq(k8s_secret_read_file(p(path, "key"), 1024, &out, &outlen, NULL, NULL, 0), K8S_OK);
		ck_assert_uint_eq(outlen, sizeof(data));
		free(out);
	}
}
END_TEST

START_TEST(test_not_found)
{
	char path[PATH_MAX], why[WHY_SIZE], want[PATH_MAX + 64];

	expect_fail(p(path, "missing"), 1024, K8S_ERR_NOT_FOUND, why);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	ck_assert_str_eq(why, want);
	/* A path through a regular file (ENOTDIR) is not found either. */
	write_file(p(path, "file"), "x", 1, 0600);
	expect_fail(p(path, "file/key"), 1024, K8S_ERR_NOT_FOUND, why);
	/* A dangling symlink. */
	ck_assert_int_eq(symlink("nowhere", p(path, "dangling")), 0);
	expect_fail(path, 1024, K8S_ERR_NOT_FOUND, why);
}
END_TEST

START_TEST(test_not_regular)
{
	char path[PATH_MAX], why[WHY_SIZE], want[PATH_MAX + 64];

	ck_assert_int_eq(mkdir(p(path, "dir"), 0700), 0);
	expect_fail(path, 1024, K8S_ERR_NOT_REGULAR, why);
	snprintf(want, sizeof(want), "%s: not a regular file", path);
	ck_assert_str_eq(why, want);
	/* A fifo with no writer is refused, without blocking in open. */
	ck_assert_int_eq(mkfifo(p(path, "fifo"), 0600), 0);
	expect_fail(path, 1024, K8S_ERR_NOT_REGULAR, why);
	/* A character device. */
	expect_fail("/dev/null", 1024, K8S_ERR_NOT_REGULAR, why);
	/* A symlink to a directory (kubelet's ..data) is a directory once followed. */
	ck_assert_int_eq(symlink("dir", p(path, "link")), 0);
	expect_fail(path, 1024, K8S_ERR_NOT_REGULAR, why);
}
END_TEST

START_TEST(test_too_large)
{
	char path[PATH_MAX], why[WHY_SIZE], want[PATH_MAX + 64];
	uint8_t data[100];

	memset(data, 'a', sizeof(data));
	write_file(p(path, "big"), data, sizeof(data), 0600);
	expect_fail(path, 99, K8S_ERR_TOO_LARGE, why);
	snprintf(want, sizeof(want), "%s: larger than 99 bytes", path);
	ck_assert_str_eq(why, want);
	expect_fail(path, 0, K8S_ERR_TOO_LARGE, why);
	expect_read(path, 100, data, sizeof(data), 0);
	expect_read(path, SIZE_MAX, data, sizeof(data), 0);
}
END_TEST

START_TEST(test_grows_while_reading)
{
	/*
	 * /proc files are regular files whose fstat size (0) understates what read returns: the same
	 * situation as a file that grows after fstat. Reading continues to EOF, and past the cap is refused.
	 */
	const char *path = "/proc/self/status";
	uint8_t *out;
	size_t outlen;
	char why[WHY_SIZE], want[PATH_MAX + 64];
	struct stat st;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != 0)
		return; /* not Linux procfs: nothing to test here */
	ck_assert_int_eq(k8s_secret_read_file(path, 1u << 20, &out, &outlen, NULL, why, sizeof(why)), K8S_OK);
	/* fstat said 0 bytes, so everything past the first byte came through the growth path. */
	ck_assert_uint_gt(outlen, 100);
	ck_assert(outlen >= 5 && memcmp(out, "Name:", 5) == 0);
	free(out);
	expect_fail(path, 16, K8S_ERR_TOO_LARGE, why);
	snprintf(want, sizeof(want), "%s: larger than 16 bytes", path);
	ck_assert_str_eq(why, want);
	/* /proc/self/maps is several KiB for an ASan binary and usually more than one growth step. */
	ck_assert_int_eq(k8s_secret_read_file("/proc/self/maps", 1u << 24, &out, &outlen, NULL, why, sizeof(why)),
			 K8S_OK);
	ck_assert_uint_gt(outlen, 0);
	free(out);
}
END_TEST

START_TEST(test_permissions)
{
	static const struct {
		mode_t mode;
		int loose;
	} cases[] = {
		{0400, 0}, {0600, 0}, {0440, 0}, {0640, 0}, {0660, 0},
		{0604, 1}, {0644, 1}, {0444, 1}, {0602, 1}, {0601, 1},
		/* Root reads a mode-000 file anyway (tests run as root), so it is readable here. */
		{0000, 0},
	};
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_file(p(path, "key"), "secret", 6, cases[i].mode);
		if (access(path, R_OK) != 0)
			continue; /* not root: a mode without read permission cannot be read */
		expect_read(path, 64, "secret", 6, cases[i].loose);
		ck_assert_int_eq(unlink(path), 0);
	}
}
END_TEST

START_TEST(test_kubelet_layout)
{
	/*
	 * The kubelet's atomic writer: <dir>/..<timestamp>/<key> holds the data, <dir>/..data is a symlink to
	 * the current timestamp directory, <dir>/<key> -> ..data/<key>. An update writes a new timestamp
	 * directory and renames a new symlink over ..data.
	 */
	char path[PATH_MAX], tmp[PATH_MAX], why[WHY_SIZE];

	ck_assert_int_eq(mkdir(p(path, "..2026_11_26_05_40_00.123456789"), 0755), 0);
	write_file(p(path, "..2026_11_26_05_40_00.123456789/encryption-key"), "old-key-bytes", 13, 0440);
	ck_assert_int_eq(symlink("..2026_11_26_05_40_00.123456789", p(path, "..data")), 0);
	ck_assert_int_eq(symlink("..data/encryption-key", p(path, "encryption-key")), 0);
	expect_read(p(path, "encryption-key"), 64, "old-key-bytes", 13, 0);

	/* Update: a new timestamp directory with a new value, ..data swapped by rename. */
	ck_assert_int_eq(mkdir(p(path, "..2026_11_26_06_00_00.000000001"), 0755), 0);
	write_file(p(path, "..2026_11_26_06_00_00.000000001/encryption-key"), "new-key-bytes!", 14, 0444);
	ck_assert_int_eq(symlink("..2026_11_26_06_00_00.000000001", p(path, "..data_tmp")), 0);
	ck_assert_int_eq(rename(p(tmp, "..data_tmp"), p(path, "..data")), 0);
	expect_read(p(path, "encryption-key"), 64, "new-key-bytes!", 14, 1);

	/* Update to a secret that no longer has the property: the link dangles, NOT_FOUND. */
	ck_assert_int_eq(mkdir(p(path, "..2026_11_26_07_00_00.000000002"), 0755), 0);
	write_file(p(path, "..2026_11_26_07_00_00.000000002/other"), "x", 1, 0440);
	ck_assert_int_eq(symlink("..2026_11_26_07_00_00.000000002", p(path, "..data_tmp")), 0);
	ck_assert_int_eq(rename(p(tmp, "..data_tmp"), p(path, "..data")), 0);
	expect_fail(p(path, "encryption-key"), 64, K8S_ERR_NOT_FOUND, why);
	ck_assert_ptr_nonnull(strstr(why, strerror(ENOENT)));
}
END_TEST

START_TEST(test_symlink_loop_and_args)
{
	char path[PATH_MAX], why[WHY_SIZE];
	uint8_t *out = (uint8_t *)1;
	size_t outlen = 1;
	char small[8];

	ck_assert_int_eq(symlink("loop", p(path, "loop")), 0);
	expect_fail(path, 64, K8S_ERR_IO, why);
	ck_assert_ptr_nonnull(strstr(why, strerror(ELOOP)));
	ck_assert_int_eq(k8s_secret_read_file(NULL, 64, &out, &outlen, NULL, why, sizeof(why)), K8S_ERR_INTERNAL);
	ck_assert_int_eq(k8s_secret_read_file(path, 64, NULL, &outlen, NULL, why, sizeof(why)), K8S_ERR_INTERNAL);
	/* A short `why` is truncated, NUL-terminated. */
	ck_assert_int_eq(k8s_secret_read_file(p(path, "missing"), 64, &out, &outlen, NULL, small, sizeof(small)),
			 K8S_ERR_NOT_FOUND);
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
	ck_assert_ptr_null(out);
	for (int e = 0; e >= -8; e--)
		ck_assert_ptr_nonnull(k8s_strerror(e));
	ck_assert_str_eq(k8s_strerror(-100), "unknown k8s error");
}
END_TEST

/* Poll `w` and expect `want`; on CHANGED the content must be `data`. */
static void
expect_poll(struct k8s_watch *w, int want, const char *data)
{
	uint8_t *out = (uint8_t *)1;
	size_t outlen = 1;
	char why[WHY_SIZE];
	int r = k8s_watch_poll(w, &out, &outlen, NULL, why, sizeof(why));

	ck_assert_msg(r == want, "poll: got %d (%s), want %d", r, why, want);
	if (r == K8S_WATCH_CHANGED) {
		ck_assert_uint_eq(outlen, strlen(data));
		ck_assert(memcmp(out, data, outlen) == 0);
		free(out);
	} else {
		ck_assert_ptr_null(out);
	}
}

/* Swap ..data to a new timestamp directory holding `key` = `data` (or no key when data is NULL). */
static void
kubelet_swap(int n, const char *data)
{
	char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX], ts[64], rel[80];

	snprintf(ts, sizeof(ts), "..2026_11_26_08_00_00.%09d", n);
	ck_assert_int_eq(mkdir(p(dir, ts), 0755), 0);
	if (data != NULL) {
		snprintf(rel, sizeof(rel), "%s/key", ts);
		write_file(p(path, rel), data, strlen(data), 0440);
	}
	ck_assert_int_eq(symlink(ts, p(tmp, "..data_tmp")), 0);
	ck_assert_int_eq(rename(tmp, p(path, "..data")), 0);
}

START_TEST(test_watch)
{
	char path[PATH_MAX];
	struct k8s_watch *w = NULL;

	kubelet_swap(1, "key-one");
	ck_assert_int_eq(symlink("..data/key", p(path, "key")), 0);
	ck_assert_int_eq(k8s_watch_new(path, 64, &w), K8S_OK);
	expect_poll(w, K8S_WATCH_CHANGED, "key-one"); /* the first poll always reads */
	expect_poll(w, K8S_WATCH_UNCHANGED, NULL);
	expect_poll(w, K8S_WATCH_UNCHANGED, NULL);
	kubelet_swap(2, "key-one"); /* same bytes, new file: reported, the caller compares */
	expect_poll(w, K8S_WATCH_CHANGED, "key-one");
	kubelet_swap(3, "key-two");
	expect_poll(w, K8S_WATCH_CHANGED, "key-two");
	expect_poll(w, K8S_WATCH_UNCHANGED, NULL);
	kubelet_swap(4, NULL); /* the property is gone: the link dangles */
	expect_poll(w, K8S_ERR_NOT_FOUND, NULL);
	expect_poll(w, K8S_ERR_NOT_FOUND, NULL);
	kubelet_swap(5, "key-two"); /* back: news again even though identical to the last good read */
	expect_poll(w, K8S_WATCH_CHANGED, "key-two");
	expect_poll(w, K8S_WATCH_UNCHANGED, NULL);
	k8s_watch_forget(w);
	expect_poll(w, K8S_WATCH_CHANGED, "key-two");
	/* a permission change is a change (the new mode may make it unreadable for the cmf user) */
	ck_assert_int_eq(chmod(path, 0400), 0);
	expect_poll(w, K8S_WATCH_CHANGED, "key-two");
	k8s_watch_free(w);
}
END_TEST

/* Checked fixtures run in each test's process, so every test gets a fresh directory. */
static const struct cmf_check_opts k8s_secret_file_opts = { .setup = setup, .teardown = teardown };

CMF_CHECK_SUITE_WITH("k8s_secret_file", &k8s_secret_file_opts, test_regular_file, test_not_found,
	test_not_regular, test_too_large, test_grows_while_reading, test_permissions, test_kubelet_layout,
	test_symlink_loop_and_args, test_watch)
