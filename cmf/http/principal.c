/* cmf principal rules: Kafka's ssl.principal.mapping.rules, parsed once at start and applied per request. */
#include <ctype.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmf/http/principal.h"

/* Groups a pattern may capture: a DN has a handful of attributes; 32 leaves room and bounds the stack. */
#define RULE_GROUPS_MAX 32
/* How much of a bad rule an error message quotes. */
#define RULE_ECHO_MAX 120

struct rule {
	bool is_default;
	bool lower, upper;
	regex_t re;
	char *replacement; /* raw, as written: "\x" and "$N" are read when applied */
};

struct cmf_principal_rules {
	size_t n;
	struct rule rules[CMF_PRINCIPAL_RULES_MAX];
};

void
cmf_principal_rules_free(struct cmf_principal_rules *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++) {
		if (!r->rules[i].is_default)
			regfree(&r->rules[i].re);
		free(r->rules[i].replacement);
	}
	free(r);
}

size_t
cmf_principal_rules_count(const struct cmf_principal_rules *r)
{
	return r != NULL ? r->n : 0;
}

/* One '/'-terminated segment from `p` (a backslash escapes the next character, both kept); NULL if unterminated. */
static const char *
segment_end(const char *p)
{
	for (; *p != '\0'; p++) {
		if (*p == '\\') {
			if (p[1] == '\0')
				return NULL;
			p++;
		} else if (*p == '/') {
			return p;
		}
	}
	return NULL;
}

/*
 * A lazy ("*?") or possessive ("*+") quantifier outside a bracket expression: Java has them, POSIX does not
 * (glibc reads "*?" as a greedy "*" made optional, which maps some DNs to another name than Kafka does).
 */
static const char *
quantifier_unsupported(const char *pat)
{
	bool quantified = false; /* the previous token was a quantifier */

	for (const char *p = pat; *p != '\0'; p++) {
		if (*p == '\\') {
			if (p[1] != '\0')
				p++;
			quantified = false;
		} else if (*p == '[') {
			/* A bracket expression: "]" first (after an optional "^") is literal; "[:class:]" nests. */
			p++;
			if (*p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p != '\0' && *p != ']') {
				if (p[0] == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
					const char *close = strstr(p + 2, (char[]){ p[1], ']', '\0' });

					p = close != NULL ? close + 1 : p + 1;
				}
				p++;
			}
			if (*p == '\0')
				return NULL; /* unbalanced: regcomp says so */
			quantified = false;
		} else if ((*p == '?' || *p == '+') && quantified) {
			return *p == '?' ? "a lazy quantifier" : "a possessive quantifier";
		} else {
			quantified = *p == '*' || *p == '+' || *p == '?' || *p == '}';
		}
	}
	return NULL;
}

/* The replacement's "$" and "\" uses Java accepts: "$" then a digit, "\" then a character. */
static int
replacement_check(const char *s, char *why, size_t whylen)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' && s[1] != '\0') {
			s++;
		} else if (*s == '$' && !isdigit((unsigned char)s[1])) {
			snprintf(why, whylen, "a '$' in the replacement must be followed by a group number ($1); write \\$ for a dollar sign");
			return -1;
		}
	}
	return 0;
}

/* Quote entry `start` (up to `end`, else the next comma after `from`) into `buf`. */
static void
echo_rule(const char *start, const char *from, const char *end, char *buf, size_t len)
{
	size_t n;

	if (end == NULL)
		end = strchr(from, ',');
	n = end != NULL ? (size_t)(end - start) : strlen(start);

	while (n > 0 && isspace((unsigned char)start[n - 1]))
		n--;
	if (n > RULE_ECHO_MAX)
		snprintf(buf, len, "%.*s...", RULE_ECHO_MAX, start);
	else
		snprintf(buf, len, "%.*s", (int)n, start);
}

/*
 * One RULE entry at `p` (after "RULE:") into `rl`; *next past it. 0, or -1 with `why` (without the rule) and
 * *next past the rule when its two segments were found (NULL otherwise), so the message quotes it whole.
 */
static int
rule_parse(const char *p, struct rule *rl, const char **next, char *why, size_t whylen)
{
	const char *pend = segment_end(p), *rend, *bad;
	char *pattern = NULL;
	int r = -1, rc;

	*next = NULL;
	if (pend == NULL) {
		snprintf(why, whylen, "expected RULE:pattern/replacement/ (with an optional L or U after it)");
		goto out;
	}
	rend = segment_end(pend + 1);
	if (rend == NULL) {
		snprintf(why, whylen, "the replacement must end with '/' (RULE:pattern/replacement/ or .../L, .../U)");
		goto out;
	}
	if ((pattern = strndup(p, (size_t)(pend - p))) == NULL ||
	    (rl->replacement = strndup(pend + 1, (size_t)(rend - pend - 1))) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	p = rend + 1;
	rl->lower = *p == 'L';
	rl->upper = *p == 'U';
	if (rl->lower || rl->upper)
		p++;
	*next = p;
	if ((bad = quantifier_unsupported(pattern)) != NULL) {
		snprintf(why, whylen,
			 "the pattern has %s, which POSIX regular expressions do not have (\"(.*?),\" is \"([^,]*),\" here)", bad);
		goto out;
	}
	if (replacement_check(rl->replacement, why, whylen) != 0)
		goto out;
	rc = regcomp(&rl->re, pattern, REG_EXTENDED);
	if (rc != 0) {
		char msg[128];

		regerror(rc, &rl->re, msg, sizeof(msg));
		snprintf(why, whylen, "the pattern is not a POSIX extended regular expression: %s", msg);
		goto out;
	}
	if (rl->re.re_nsub >= RULE_GROUPS_MAX) {
		regfree(&rl->re);
		snprintf(why, whylen, "the pattern has more than %d groups", RULE_GROUPS_MAX - 1);
		goto out;
	}
	r = 0;
out:
	free(pattern);
	if (r != 0) {
		free(rl->replacement);
		rl->replacement = NULL;
	}
	return r;
}

int
cmf_principal_rules_parse(const char *text, struct cmf_principal_rules **out, char *why, size_t whylen)
{
	struct cmf_principal_rules *rs = calloc(1, sizeof(*rs));
	const char *p = text, *start;
	char reason[256], echo[RULE_ECHO_MAX + 4];
	int r = -1;

	*out = NULL;
	if (rs == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (;;) {
		struct rule *rl;

		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		if (*p == ',') { /* an empty entry, as Kafka ignores it */
			p++;
			continue;
		}
		start = p;
		if (rs->n == CMF_PRINCIPAL_RULES_MAX) {
			snprintf(why, whylen, "more than %d rules", CMF_PRINCIPAL_RULES_MAX);
			goto out;
		}
		rl = &rs->rules[rs->n];
		if (strncmp(p, "DEFAULT", 7) == 0) {
			rl->is_default = true;
			p += 7;
		} else if (strncmp(p, "RULE:", 5) == 0) {
			if (rule_parse(p + 5, rl, &p, reason, sizeof(reason)) != 0) {
				echo_rule(start, start, p, echo, sizeof(echo));
				snprintf(why, whylen, "rule %zu `%s`: %s", rs->n + 1, echo, reason);
				goto out;
			}
		} else {
			echo_rule(start, start, NULL, echo, sizeof(echo));
			snprintf(why, whylen, "rule %zu `%s`: expected RULE:pattern/replacement/[LU] or DEFAULT", rs->n + 1,
				 echo);
			goto out;
		}
		rs->n++;
		while (isspace((unsigned char)*p))
			p++;
		if (*p != ',' && *p != '\0') {
			echo_rule(start, p, NULL, echo, sizeof(echo));
			snprintf(why, whylen, "rule %zu `%s`: unexpected text after the rule (rules are separated by commas)",
				 rs->n, echo);
			goto out;
		}
	}
	*out = rs;
	rs = NULL;
	r = 0;
out:
	cmf_principal_rules_free(rs);
	return r;
}

/* Append `n` bytes of `s` to out[*len] (room `cap`, one kept for the NUL); false when they do not fit. */
static bool
put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
	if (n >= cap - *len)
		return false;
	memcpy(out + *len, s, n);
	*len += n;
	return true;
}

/* `rl`'s replacement with the groups of `m` (over `dn`; re_nsub of them) into out; false if it does not fit. */
static bool
expand(const struct rule *rl, const char *dn, const regmatch_t *m, char *out, size_t cap, size_t *len)
{
	size_t ngroups = rl->re.re_nsub;

	for (const char *s = rl->replacement; *s != '\0'; s++) {
		if (*s == '\\' && s[1] != '\0') {
			if (!put(out, cap, len, ++s, 1))
				return false;
		} else if (*s == '$' && isdigit((unsigned char)s[1]) && (size_t)(s[1] - '0') <= ngroups) {
			/* As Java reads "$12": more digits while the number stays a group of the pattern. */
			size_t g = (size_t)(*++s - '0');

			while (isdigit((unsigned char)s[1]) && g * 10 + (size_t)(s[1] - '0') <= ngroups)
				g = g * 10 + (size_t)(*++s - '0');
			if (m[g].rm_so >= 0 && !put(out, cap, len, dn + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so)))
				return false;
		} else if (!put(out, cap, len, s, 1)) {
			/* Anything else is literal, a "$N" beyond the groups too (as Kafka keeps it). */
			return false;
		}
	}
	return true;
}

int
cmf_principal_rules_map(const struct cmf_principal_rules *r, const char *dn, char *out, size_t outlen)
{
	size_t dnlen = strlen(dn);

	out[0] = '\0';
	for (size_t i = 0; r != NULL && i < r->n; i++) {
		const struct rule *rl = &r->rules[i];
		regmatch_t m[RULE_GROUPS_MAX];
		size_t len = 0;
		int rc;

		if (rl->is_default) {
			if (!put(out, outlen, &len, dn, dnlen))
				return CMF_PRINCIPAL_TOO_LONG;
			out[len] = '\0';
			return len > 0 ? CMF_PRINCIPAL_MAPPED : CMF_PRINCIPAL_UNMAPPED;
		}
		rc = regexec(&rl->re, dn, rl->re.re_nsub + 1, m, 0);
		if (rc == REG_NOMATCH)
			continue;
		if (rc != 0)
			return CMF_PRINCIPAL_ERROR;
		/* Kafka's Matcher.matches(): the whole DN. The leftmost-longest match is it, when there is one. */
		if (m[0].rm_so != 0 || (size_t)m[0].rm_eo != dnlen)
			continue;
		if (!expand(rl, dn, m, out, outlen, &len)) {
			out[0] = '\0';
			return CMF_PRINCIPAL_TOO_LONG;
		}
		out[len] = '\0';
		for (size_t j = 0; j < len; j++)
			out[j] = rl->lower ? (char)tolower((unsigned char)out[j])
				 : rl->upper ? (char)toupper((unsigned char)out[j])
					     : out[j];
		return len > 0 ? CMF_PRINCIPAL_MAPPED : CMF_PRINCIPAL_UNMAPPED;
	}
	return CMF_PRINCIPAL_UNMAPPED;
}
