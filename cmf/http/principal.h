/*
 * cmf principal rules: a client certificate's subject DN mapped to a short principal name by rules in the
 * syntax and with the semantics of Kafka's ssl.principal.mapping.rules (SslPrincipalMapper):
 *
 *   RULE:^CN=([^,]*),OU=ServiceUsers.*$/$1/L, DEFAULT
 *
 * Entries are separated by commas (whitespace around them and empty entries ignored); a RULE's pattern and
 * replacement end at an unescaped '/', so a pattern may hold commas; a backslash escapes the character after
 * it. Rules are tried in order and the first whose pattern matches the whole DN gives the name: its
 * replacement with $1..$9 (and $0, the whole DN) replaced by the groups (a $N beyond the pattern's groups
 * stays literal, as Kafka keeps it; "\x" is a literal x), then lower-cased (/L) or upper-cased (/U, ASCII).
 * DEFAULT gives the DN unchanged. A DN no rule maps has no principal.
 *
 * Where this differs from Kafka: patterns are POSIX extended regular expressions (regcomp), not Java's.
 * The two agree where a pattern can match a DN only one way; they differ for lazy and possessive
 * quantifiers ("(.*?)", "*+"), which POSIX does not have: glibc would read "(.*?)" as a greedy "(.*)" and
 * map "CN=ops,O=acme" by "^CN=(.*?),.*$" to "ops,O=acme" where Kafka gives "ops", so such rules are refused
 * with a hint ("([^,]*)" says the same thing in POSIX). Java's named groups (${name}) are refused too.
 */
#ifndef CMF_HTTP_PRINCIPAL_H
#define CMF_HTTP_PRINCIPAL_H

#include <stddef.h>

struct cmf_principal_rules; /* opaque */

/* At most this many rules: a mapping list longer than this is a configuration mistake, not a need. */
#define CMF_PRINCIPAL_RULES_MAX 64

/*
 * Parse and compile `text` into *out (free with cmf_principal_rules_free). An empty list (no rule) is
 * valid and maps nothing. Returns 0, or -1 with *out NULL and `why` (size whylen) naming the bad rule
 * ("rule 2 `RULE:^CN=(.*?)$/$1/`: ...").
 */
int cmf_principal_rules_parse(const char *text, struct cmf_principal_rules **out, char *why, size_t whylen);

/* How many rules `r` holds (DEFAULT counts as one). */
size_t cmf_principal_rules_count(const struct cmf_principal_rules *r);

enum {
	CMF_PRINCIPAL_MAPPED = 0,
	CMF_PRINCIPAL_UNMAPPED = 1, /* no rule matches the DN (or a rule gave an empty name) */
	CMF_PRINCIPAL_TOO_LONG = -1, /* the name does not fit `outlen` */
	CMF_PRINCIPAL_ERROR = -2,    /* regexec failed (out of memory) */
};

/*
 * Map `dn` (NUL-terminated; borrowed) through `r` into `out` (size outlen > 0, always NUL-terminated).
 * Returns a CMF_PRINCIPAL_* code; `out` is "" unless CMF_PRINCIPAL_MAPPED. Thread-safe (regexec on a
 * compiled pattern is).
 */
int cmf_principal_rules_map(const struct cmf_principal_rules *r, const char *dn, char *out, size_t outlen);

/* Free `r` (NULL is a no-op). */
void cmf_principal_rules_free(struct cmf_principal_rules *r);

#endif
