/* One Check suite per test binary: CMF_CHECK_SUITE("name", test_a, test_b, ...) at the end of a test file. */
#ifndef CMF_CHECK_MAIN_H
#define CMF_CHECK_MAIN_H

#include <check.h>
#include <stddef.h>
#include <stdlib.h>

/* How a suite's tests run; a zero field keeps Check's default. */
struct cmf_check_opts {
	void (*setup)(void);    /* checked fixture: runs in each test's own process before it, or NULL */
	void (*teardown)(void); /* and after it, or NULL */
	double timeout;         /* seconds per test; 0 keeps Check's (CK_DEFAULT_TIMEOUT, else 4) */
};

/*
 * Runs `tests` (START_TEST names, each a `const TTest *`) as one test case named like the suite, and
 * returns main()'s exit status: EXIT_SUCCESS when none failed. `opts` may be NULL.
 */
static inline int
cmf_check_run(const char *name, const struct cmf_check_opts *opts, const TTest *const *tests, size_t ntests)
{
	Suite *s = suite_create(name);
	TCase *tc = tcase_create(name);
	SRunner *sr;
	int failed;

	if (opts != NULL && (opts->setup != NULL || opts->teardown != NULL))
		tcase_add_checked_fixture(tc, opts->setup, opts->teardown);
	if (opts != NULL && opts->timeout > 0)
		tcase_set_timeout(tc, opts->timeout);
	for (size_t i = 0; i < ntests; i++)
		tcase_add_test(tc, tests[i]);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* main() running the listed tests as suite `name` (a string) with Check's defaults. */
#define CMF_CHECK_SUITE(name, ...) CMF_CHECK_SUITE_WITH(name, NULL, __VA_ARGS__)

/* The same with `opts` (a `const struct cmf_check_opts *`): a checked fixture, a timeout. */
#define CMF_CHECK_SUITE_WITH(name, opts, ...)                                                      \
	int main(void)                                                                            \
	{                                                                                         \
		const TTest *const tests[] = { __VA_ARGS__ };                                     \
		return cmf_check_run((name), (opts), tests, sizeof(tests) / sizeof(tests[0]));    \
	}

#endif
