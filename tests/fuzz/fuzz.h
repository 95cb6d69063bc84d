/* What the libFuzzer harnesses share: the entry point's prototype and CHECK, an assertion NDEBUG cannot remove. */
#ifndef CMF_TESTS_FUZZ_H
#define CMF_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts (a crash libFuzzer and the corpus replay both report) unless `cond` holds. */
#define CHECK(cond)                                                                                    \
	do {                                                                                           \
		if (!(cond))                                                                           \
			abort();                                                                       \
	} while (0)

#endif
