/* links: cmf/api/body.c cmf/text.c */
/* libFuzzer harness for YAML request bodies: the JSON harness's invariants (an accepted body is an object
 * within the depth limit, and its JSON dump parses as JSON to the same tree), fed to the YAML parser. */
#define FUZZ_BODY_FORMAT CMF_BODY_YAML
#include "tests/fuzz/fuzz_body_json.c"
