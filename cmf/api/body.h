/* cmf request bodies: JSON or YAML text into a jansson tree, with size and depth limits. */
#ifndef CMF_BODY_H
#define CMF_BODY_H

#include <jansson.h>
#include <stddef.h>

/* Nesting deeper than this is refused: no CMF resource is deeper than 8, and recursion is bounded. */
#define CMF_BODY_MAX_DEPTH 32

enum cmf_body_format { CMF_BODY_JSON = 0, CMF_BODY_YAML = 1 };

/*
 * The body format named by a Content-Type header value: "application/yaml", "application/x-yaml",
 * "text/yaml" (parameters such as "; charset=utf-8" ignored, case-insensitive) → YAML;
 * "application/json", a missing header (NULL) or empty → JSON. Any other type → -1.
 */
int cmf_body_format_of(const char *content_type);

/*
 * Parse `buf` (`len` bytes, not NUL-terminated, may contain anything) as `format`.
 * JSON: jansson with JSON_REJECT_DUPLICATES; the top level must be an object.
 * YAML: exactly one document whose top level is a mapping; converted to the same jansson tree:
 *   mappings → objects (keys must be scalars; duplicate keys refused), sequences → arrays,
 *   scalars: quoted scalars (single/double/literal/folded) → strings; plain scalars resolved per the
 *   YAML 1.2 core schema: null|Null|NULL|~|empty → null, true/false (and True/TRUE/False/FALSE) →
 *   booleans, [-+]?[0-9]+ → integer (out of range → string is NOT done: it is an error), decimal
 *   floats → real, anything else → string. Aliases and anchors are refused (billion-laughs safety),
 *   tags other than the standard ones refused.
 * Depth above CMF_BODY_MAX_DEPTH is refused for both formats.
 * On success returns 0 and *out is a new reference (caller json_decref's it).
 * On failure returns -1, *out is NULL, and `err` (size errlen) holds a message for the client that
 * names the position, e.g. "malformed JSON at line 1, column 12: unexpected token" or
 * "malformed YAML at line 3, column 5: found character that cannot start any token" or
 * "the request body must be a JSON object". The message NEVER quotes body bytes: a malformed body
 * may hold secret values, and jansson's text ("... near '<token>'") and libyaml's context can echo
 * them, so messages are built from the error code / problem kind and the position only
 * (json_error_code(), yaml problem string without the token).
 */
int cmf_body_parse(const char *buf, size_t len, enum cmf_body_format format, json_t **out, char *err,
		   size_t errlen);

#endif
