/* links: cmf/config.c cmf/http/principal.c cmf/text.c crypto/util.c crypto/log.c */
/* libFuzzer harness for the YAML configuration: success xor a message, and an accepted configuration is within every range. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/config.c"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Messages name a file, a line and a key; 512 bytes holds any of them. */
	char err[512];
	struct cmf_config *cfg = (struct cmf_config *)&err;
	int rc;

	/* Only the file is fuzzed: no CMF_* variable may decide the outcome. */
	for (size_t i = 0; i < CFG_NSETTINGS; i++)
		unsetenv(cfg_settings[i].env);
	rc = cfg_load_buffer("fuzz.yaml", (const char *)data, size, &cfg, err, sizeof(err));
	if (rc != 0) {
		assert(rc == -1 && cfg == NULL && err[0] != '\0');
		return 0;
	}
	assert(cfg != NULL && err[0] == '\0');
	for (size_t i = 0; i < CFG_NSETTINGS; i++) {
		const struct cfg_setting *s = &cfg_settings[i];
		const void *field = (const char *)cfg + s->offset;

		switch (s->type) {
		case CFG_STRING:
			assert(*(char *const *)field != NULL);
			break;
		case CFG_INT:
			assert(*(const int *)field >= s->min && *(const int *)field <= s->max);
			break;
		case CFG_LONG:
			assert(*(const long *)field >= s->min && *(const long *)field <= s->max);
			break;
		case CFG_BOOL:
			break;
		}
	}
	assert(cfg->database_url[0] != '\0');
	assert(!cfg->encryption_enabled || cfg->encryption_key_file[0] != '\0');
	assert(cfg_listen_ok(cfg->listen));
	cmf_config_free(cfg);
	return 0;
}
