/* links: cmf/log.c cmf/text.c k8s/secret_file.c crypto/buf.c crypto/util.c crypto/log.c */
/* Tests for cmf/cli/agent.c: settings from options and CMF_AGENT_*, the atomic file update, the token file, ETags. */
#include "cmf/cli/agent.c"

#include <dirent.h>
#include <limits.h>

#include "tests/unit/check_main.h"

/* mkdtemp's template below is 28 characters; 64 keeps every path built from it well under PATH_MAX. */
static char tmpdir[64];

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cmf-agent-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
teardown(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char p[PATH_MAX];

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
		chmod(p, 0700);
		unlink(p);
		rmdir(p);
	}
	if (d != NULL)
		closedir(d);
	chmod(tmpdir, 0700);
	rmdir(tmpdir);
}

static const char *
path(char *buf, const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s", tmpdir, name);
	return buf;
}

static int
entries(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	int n = 0;

	while (d != NULL && (e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	if (d != NULL)
		closedir(d);
	return n;
}

static void
put_file(const char *p, const char *content, mode_t mode)
{
	FILE *f = fopen(p, "w");

	ck_assert_ptr_nonnull(f);
	fputs(content, f);
	fclose(f);
	ck_assert_int_eq(chmod(p, mode), 0);
}

static char *
slurp(const char *p)
{
	static char buf[4096];
	FILE *f = fopen(p, "r");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

#define REQUIRED "--url", "http://cmf:8080", "--token-file", "/t", "--environment", "prod", "--catalog", "main", \
		 "--database", "orders", "--out", "/o"

static int
parse(struct agent_opts *o, int argc, char **argv)
{
	return opts_parse(argc, argv, o);
}

START_TEST(test_defaults_environment_and_options)
{
	struct agent_opts o;
	char *argv[] = { REQUIRED };
	char *argv2[] = { REQUIRED, "--format", "json", "--mode", "0400", "--once", "--timeout-seconds", "300" };

	unsetenv("CMF_AGENT_FORMAT");
	ck_assert_int_eq(parse(&o, (int)(sizeof(argv) / sizeof(argv[0])), argv), 0);
	ck_assert_str_eq(o.format, "properties");
	ck_assert_int_eq(o.mode, 0440);
	ck_assert_int_eq(o.once, 0);
	ck_assert_int_eq(o.timeout_seconds, 30);
	ck_assert_int_eq(o.poll_interval_ms, 5000);
	ck_assert_int_eq(o.retries, 5);
	ck_assert_int_eq(o.backoff_ms, 1000);
	ck_assert_int_eq(o.backoff_max_ms, 30000);
	ck_assert_ptr_null(o.ca_file);
	/* a variable fills what the options leave; an option wins over a variable */
	setenv("CMF_AGENT_FORMAT", "flink-sql", 1);
	setenv("CMF_AGENT_ONCE", "true", 1);
	ck_assert_int_eq(parse(&o, (int)(sizeof(argv) / sizeof(argv[0])), argv), 0);
	ck_assert_str_eq(o.format, "flink-sql");
	ck_assert_int_eq(o.once, 1);
	ck_assert_int_eq(parse(&o, (int)(sizeof(argv2) / sizeof(argv2[0])), argv2), 0);
	ck_assert_str_eq(o.format, "json");
	ck_assert_int_eq(o.mode, 0400);
	ck_assert_int_eq(o.timeout_seconds, 300);
	unsetenv("CMF_AGENT_FORMAT");
	unsetenv("CMF_AGENT_ONCE");
	/* everything required may come from the environment */
	setenv("CMF_AGENT_URL", "https://cmf", 1);
	setenv("CMF_AGENT_TOKEN_FILE", "/t", 1);
	setenv("CMF_AGENT_ENVIRONMENT", "e", 1);
	setenv("CMF_AGENT_CATALOG", "c", 1);
	setenv("CMF_AGENT_DATABASE", "d", 1);
	setenv("CMF_AGENT_OUT", "/o", 1);
	ck_assert_int_eq(parse(&o, 0, NULL), 0);
	ck_assert_str_eq(o.url, "https://cmf");
	setenv("CMF_AGENT_ONCE", "yes", 1);
	ck_assert_int_eq(parse(&o, 0, NULL), -1);
	unsetenv("CMF_AGENT_ONCE");
	unsetenv("CMF_AGENT_URL");
	ck_assert_int_eq(parse(&o, 0, NULL), -1); /* --url missing */
	unsetenv("CMF_AGENT_TOKEN_FILE");
	unsetenv("CMF_AGENT_ENVIRONMENT");
	unsetenv("CMF_AGENT_CATALOG");
	unsetenv("CMF_AGENT_DATABASE");
	unsetenv("CMF_AGENT_OUT");
}
END_TEST

START_TEST(test_refused_settings)
{
	struct agent_opts o;
	struct {
		const char *flag, *value;
	} bad[] = {
		{ "--mode", "0888" },        { "--mode", "1777" },         { "--mode", "rw" },
		{ "--format", "yaml" },      { "--timeout-seconds", "0" }, { "--timeout-seconds", "301" },
		{ "--retries", "0" },        { "--poll-interval-ms", "5" }, { "--environment", "Prod" },
		{ "--catalog", "a/b" },      { "--database", "" },         { "--url", "ftp://cmf" },
		{ "--cert-file", "/c" },     { "--out", "/dir/" },         { "--backoff-max-ms", "10" },
		{ "--bogus", "x" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = { REQUIRED, (char *)bad[i].flag, (char *)bad[i].value };

		ck_assert_msg(parse(&o, (int)(sizeof(argv) / sizeof(argv[0])), argv) == -1, "%s %s accepted",
			      bad[i].flag, bad[i].value);
	}
	{
		char *argv[] = { REQUIRED, "--mode" }; /* a value missing */

		ck_assert_int_eq(parse(&o, (int)(sizeof(argv) / sizeof(argv[0])), argv), -1);
	}
	{
		char *argv[] = { REQUIRED, "--cert-file", "/c", "--key-file", "/k", "--mode", "600" };

		ck_assert_int_eq(parse(&o, (int)(sizeof(argv) / sizeof(argv[0])), argv), 0);
		ck_assert_int_eq(o.mode, 0600);
	}
}
END_TEST

START_TEST(test_file_update_is_atomic_and_only_when_changed)
{
	struct agent_opts o = { .mode = 0440 };
	char out[PATH_MAX], why[256];
	struct stat st;
	ino_t ino;
	int written, replaced;

	o.out = path(out, "client.properties");
	ck_assert_int_eq(file_update(&o, (const uint8_t *)"a=1\n", 4, &written, &replaced, why, sizeof(why)), 0);
	ck_assert_int_eq(written, 1);
	ck_assert_int_eq(replaced, 0); /* created, not replaced: no --on-change */
	ck_assert_str_eq(slurp(out), "a=1\n");
	ck_assert_int_eq(stat(out, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0440);
	ino = st.st_ino;
	ck_assert_int_eq(entries(), 1); /* no temporary file left */
	/* the same bytes: nothing written */
	ck_assert_int_eq(file_update(&o, (const uint8_t *)"a=1\n", 4, &written, &replaced, why, sizeof(why)), 0);
	ck_assert_int_eq(written, 0);
	ck_assert_int_eq(replaced, 0);
	ck_assert_int_eq(stat(out, &st), 0);
	ck_assert_int_eq(st.st_ino, ino);
	/* other bytes: a new file renamed over the old one (a reader holding the old one keeps it whole) */
	ck_assert_int_eq(file_update(&o, (const uint8_t *)"a=22\n", 5, &written, &replaced, why, sizeof(why)), 0);
	ck_assert_int_eq(written, 1);
	ck_assert_int_eq(replaced, 1);
	ck_assert_str_eq(slurp(out), "a=22\n");
	ck_assert_int_eq(stat(out, &st), 0);
	ck_assert_int_ne(st.st_ino, ino);
	ck_assert_int_eq(entries(), 1);
	/* a directory that refuses the temporary file: an error naming it, the old file untouched */
	if (geteuid() != 0) {
		ck_assert_int_eq(chmod(tmpdir, 0500), 0);
		ck_assert_int_eq(file_update(&o, (const uint8_t *)"a=3\n", 4, &written, &replaced, why, sizeof(why)), -1);
		ck_assert_ptr_nonnull(strstr(why, "cannot create a temporary file in"));
		ck_assert_int_eq(chmod(tmpdir, 0700), 0);
		ck_assert_str_eq(slurp(out), "a=22\n");
	}
	/* a missing directory */
	o.out = path(out, "nodir/client.properties");
	ck_assert_int_eq(file_update(&o, (const uint8_t *)"a=3\n", 4, &written, &replaced, why, sizeof(why)), -1);
	ck_assert_int_eq(written, 0);
	/* a relative path without a directory part uses the working directory */
	ck_assert_int_eq(chdir(tmpdir), 0);
	o.out = "rel.properties";
	o.mode = 0400;
	ck_assert_int_eq(file_update(&o, (const uint8_t *)"r\n", 2, &written, &replaced, why, sizeof(why)), 0);
	ck_assert_str_eq(slurp(path(out, "rel.properties")), "r\n");
	ck_assert_int_eq(stat(out, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0400);
}
END_TEST

START_TEST(test_token_file)
{
	struct agent_opts o;
	struct agent a;
	char tf[PATH_MAX], why[512];

	memset(&a, 0, sizeof(a));
	memset(&o, 0, sizeof(o));
	o.token_file = path(tf, "token");
	a.o = &o;
	ck_assert_int_eq(k8s_watch_new(tf, TOKEN_FILE_MAX, &a.token_watch), K8S_OK);
	ck_assert_int_eq(token_refresh(&a, why, sizeof(why)), -1); /* missing */
	ck_assert_ptr_nonnull(strstr(why, "cannot read the token file"));
	put_file(tf, "tok-1\r\n", 0400);
	ck_assert_int_eq(token_refresh(&a, why, sizeof(why)), 0);
	ck_assert_str_eq(a.token, "tok-1"); /* the trailing newline is not part of it */
	ck_assert_int_eq(token_refresh(&a, why, sizeof(why)), 0);
	ck_assert_str_eq(a.token, "tok-1");
	/* a rotation (a new file) is followed */
	ck_assert_int_eq(unlink(tf), 0);
	put_file(tf, "tok-2", 0400);
	ck_assert_int_eq(token_refresh(&a, why, sizeof(why)), 0);
	ck_assert_str_eq(a.token, "tok-2");
	/* what cannot go into an Authorization header is refused, the content not repeated */
	ck_assert_int_eq(unlink(tf), 0);
	put_file(tf, "tok 3\r\nX-Injected: 1", 0400);
	ck_assert_int_eq(token_refresh(&a, why, sizeof(why)), -1);
	ck_assert_ptr_null(strstr(why, "tok 3"));
	ck_assert_ptr_null(strstr(why, "Injected"));
	ck_assert_int_eq(token_refresh(&a, why, sizeof(why)), -1); /* and stays refused */
	ck_assert_int_eq(unlink(tf), 0);
	put_file(tf, "\n", 0400);
	ck_assert_int_eq(token_refresh(&a, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "is empty"));
	crypto_freezero(a.token, a.token_len + 1);
	k8s_watch_free(a.token_watch);
}
END_TEST

static void
header(struct agent *a, const char *line)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "%s", line); /* libcurl's buffer is not NUL-terminated: nor is this one's use */
	ck_assert_uint_eq(on_header(buf, 1, strlen(line), a), strlen(line));
}

START_TEST(test_etag_header)
{
	struct agent a;
	char big[400];

	memset(&a, 0, sizeof(a));
	header(&a, "HTTP/1.1 200 OK\r\n");
	header(&a, "etag:   \"0123456789abcdef0123456789abcd\" \r\n");
	ck_assert_str_eq(a.resp_etag, "\"0123456789abcdef0123456789abcd\"");
	header(&a, "Content-Type: text/plain\r\n");
	ck_assert_str_eq(a.resp_etag, "\"0123456789abcdef0123456789abcd\"");
	header(&a, "HTTP/1.1 304 Not Modified\r\n"); /* a new response: its own headers */
	ck_assert_str_eq(a.resp_etag, "");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "ETag: ", 6);
	header(&a, big); /* too long for cmf: not kept */
	ck_assert_str_eq(a.resp_etag, "");
}
END_TEST

START_TEST(test_names)
{
	char long_name[NAME_MAX_LEN + 2];

	ck_assert(name_ok("prod"));
	ck_assert(name_ok("a.b-c9"));
	ck_assert(!name_ok(""));
	ck_assert(!name_ok("Prod"));
	ck_assert(!name_ok("a/b"));
	ck_assert(!name_ok("a%2fb"));
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	ck_assert(!name_ok(long_name));
	long_name[NAME_MAX_LEN] = '\0';
	ck_assert(name_ok(long_name));
}
END_TEST

/* Checked fixtures run in each test's process, so every test gets a fresh directory. */
static const struct cmf_check_opts agent_opts = { .setup = setup, .teardown = teardown };

CMF_CHECK_SUITE_WITH("cmf_agent", &agent_opts, test_defaults_environment_and_options, test_refused_settings,
	test_file_update_is_atomic_and_only_when_changed, test_token_file, test_etag_header, test_names)
