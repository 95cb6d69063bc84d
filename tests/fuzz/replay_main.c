/* Replays libFuzzer seed corpora without the libFuzzer runtime: each argument is one input file. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
main(int argc, char **argv)
{
	int n = 0;

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		uint8_t *buf;
		long len;

		if (f == NULL) {
			perror(argv[i]);
			return 1;
		}
		/* Seeds are small by construction; 1 MiB bounds a mistaken file. */
		buf = malloc(1 << 20);
		if (buf == NULL)
			return 1;
		len = (long)fread(buf, 1, 1 << 20, f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, (size_t)len);
		free(buf);
		n++;
	}
	printf("%s: replayed %d inputs\n", argv[0], n);
	return n > 0 ? 0 : 1;
}
