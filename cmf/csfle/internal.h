/* cmf csfle internals, shared by the files of cmf/csfle only: messages, quoting, string sets, spec objects, KMS. */
#ifndef CMF_CSFLE_INTERNAL_H
#define CMF_CSFLE_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

/* One message: the reply caps a message at 1 KiB; quoted names are cut well below that. */
#define CSFLE_MSG_MAX 512
/* Quoted names, ids and tags are cut to this many bytes so a message stays readable. */
#define CSFLE_QUOTE_MAX 80
/* A buffer for csfle_quote: the excerpt, "..." when it was cut, and the NUL. */
#define CSFLE_QUOTE_BUF (CSFLE_QUOTE_MAX + 4)

/*
 * Append one message (printf format, cut to CSFLE_MSG_MAX bytes and made valid UTF-8) to `arr`, a
 * borrowed JSON array; NULL `arr` drops the message.
 */
void csfle_msg_add(json_t *arr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A bounded, printable excerpt of `s` written into `dst` (size `len`, CSFLE_QUOTE_BUF): returns `dst`. */
const char *csfle_quote(const char *s, char *dst, size_t len);

/* 1 when `s` is one of `set` (NULL-terminated), compared case-sensitively. */
int csfle_str_in(const char *s, const char *const *set);

/* 1 when the JSON array `arr` (borrowed) holds the string `s`. */
int csfle_array_has_string(json_t *arr, const char *s);

/* Append a new string `s` to the JSON array `arr` (borrowed; NULL: nothing) unless it is there already. */
void csfle_array_add_unique(json_t *arr, const char *s);

/* `s` starts with `prefix`: the rest of `s`, else NULL. */
const char *csfle_skip(const char *s, const char *prefix);

/* The strings `keys` (NULL-terminated) as "a, b, c" in `dst` (size `len`; a longer list is cut): returns `dst`. */
const char *csfle_keys_text(const char *const *keys, char *dst, size_t len);

/*
 * A problem for each key of the object `obj` (borrowed) outside `allowed` (NULL-terminated), naming
 * `path` and the allowed keys: "<path>: unknown field '<key>' (known: a, b, c)".
 */
void csfle_unknown_keys(json_t *obj, const char *path, const char *const *allowed, json_t *problems);

/*
 * `obj` (borrowed, may be NULL) must be an object with keys among `allowed`: 1 when it is an object
 * (unknown keys are then problems, see csfle_unknown_keys), else 0 after the problem
 * "<path> must be an object {a, b, c}". Absence is the caller's to judge before.
 */
int csfle_check_object(json_t *obj, const char *path, const char *const *allowed, json_t *problems);

/*
 * An object member `key` of `obj` (path `path`) that must be a non-empty string: its value (borrowed
 * from `obj`), or NULL after a problem. Absent: NULL, and a problem only when `required`.
 */
const char *csfle_get_string(json_t *obj, const char *key, const char *path, int required, json_t *problems);

/*
 * Check spec.kms (borrowed, may be NULL: a problem): its keys, the type (a common misspelling gets a
 * hint) and the key id in the form its type expects. `*type_out` is the type when it is a KMS type,
 * `*key_out` the key id when that is valid too; each NULL otherwise.
 */
void csfle_check_kms(json_t *kms, json_t *problems, const char **type_out, const char **key_out);

#endif
