/* A main() for one Check suite per test binary: CMF_CHECK_MAIN(suite_fn) at the end of a test file. */
#ifndef CMF_CHECK_MAIN_H
#define CMF_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

#define CMF_CHECK_MAIN(suite_fn)                                                                 \
	int main(void)                                                                           \
	{                                                                                        \
		SRunner *sr = srunner_create(suite_fn());                                        \
		int failed;                                                                      \
		srunner_run_all(sr, CK_NORMAL);                                                  \
		failed = srunner_ntests_failed(sr);                                              \
		srunner_free(sr);                                                                \
		return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                                \
	}

#endif
