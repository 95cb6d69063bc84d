// links: cmf/http/principal.c
/*
 * Tests for cmf/http/principal.c: Kafka's ssl.principal.mapping.rules parsed and applied as Kafka's own
 * tests (SslPrincipalMapperTest) expect — valid and invalid rules, the rule splitting with its escapes
 * and empty entries, the documented mappings — with the patterns POSIX has no way to say refused
 * (lazy quantifiers, written "([^,]*)" instead), and the edges of the mapping: whole-DN matches only,
 * $N beyond the groups, names that do not fit.
 */
#include <string.h>

#include "tests/unit/check_main.h"
#include "cmf/http/principal.h"

static struct cmf_principal_rules *
parse_ok(const char *text)
{
	struct cmf_principal_rules *r = NULL;
	char why[512] = "";

	ck_assert_msg(cmf_principal_rules_parse(text, &r, why, sizeof(why)) == 0, "%s: %s", text, why);
	ck_assert_ptr_nonnull(r);
	return r;
}

static void
parse_bad(const char *text, const char *why_has)
{
	struct cmf_principal_rules *r = (void *)1;
	char why[512] = "";

	ck_assert_msg(cmf_principal_rules_parse(text, &r, why, sizeof(why)) == -1, "accepted: %s", text);
	ck_assert_ptr_null(r);
	ck_assert_msg(strstr(why, why_has) != NULL, "%s: why '%s' lacks '%s'", text, why, why_has);
}

static void
maps(const struct cmf_principal_rules *r, const char *dn, const char *want)
{
	char out[256];
	int rc = cmf_principal_rules_map(r, dn, out, sizeof(out));

	ck_assert_msg(rc == CMF_PRINCIPAL_MAPPED, "%s: %d", dn, rc);
	ck_assert_str_eq(out, want);
}

static void
unmapped(const struct cmf_principal_rules *r, const char *dn)
{
	char out[256] = "x";

	ck_assert_int_eq(cmf_principal_rules_map(r, dn, out, sizeof(out)), CMF_PRINCIPAL_UNMAPPED);
	ck_assert_str_eq(out, "");
}

/* Kafka's testValidRules, with its lazy groups written as POSIX says them. */
START_TEST(valid_rules)
{
	static const char *const ok[] = {
		"DEFAULT",
		"RULE:^CN=([^,]*),OU=ServiceUsers.*$/$1/",
		"RULE:^CN=([^,]*),OU=ServiceUsers.*$/$1/L, DEFAULT",
		"RULE:^CN=([^,]*),OU=([^,]*),O=([^,]*),L=([^,]*),ST=([^,]*),C=([^,]*)$/$1@$2/",
		"RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
		"RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
		"RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
		"RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		cmf_principal_rules_free(parse_ok(ok[i]));
}
END_TEST

/* Kafka's testInvalidRules: each is refused, naming the rule. */
START_TEST(invalid_rules)
{
	parse_bad("default", "rule 1 `default`");
	parse_bad("DEFAUL", "expected RULE:");
	parse_bad("DEFAULT/L", "unexpected text");
	parse_bad("DEFAULT/U", "unexpected text");
	parse_bad("RULE:CN=([^,]*),OU=ServiceUsers.*/$1", "must end with '/'");
	parse_bad("rule:^CN=([^,]*),OU=ServiceUsers.*$/$1/", "expected RULE:");
	parse_bad("RULE:^CN=([^,]*),OU=ServiceUsers.*$/$1/L/U", "unexpected text");
	parse_bad("RULE:^CN=([^,]*),OU=ServiceUsers.*$/L", "must end with '/'");
	parse_bad("RULE:^CN=([^,]*),OU=ServiceUsers.*$/U", "must end with '/'");
	parse_bad("RULE:^CN=([^,]*),OU=ServiceUsers.*$/LU", "must end with '/'");
	/* The second rule is the bad one, and is named so. */
	parse_bad("DEFAULT, RULE:^CN=(/$1/", "rule 2 `RULE:^CN=(/$1/`: the pattern is not a POSIX");
	parse_bad("RULE:^CN=x$/${name}/", "followed by a group number");
}
END_TEST

/* Java's lazy and possessive quantifiers have no POSIX meaning: refused with the POSIX way to say it. */
START_TEST(lazy_quantifiers_refused)
{
	parse_bad("RULE:^CN=(.*?),.*$/$1/", "a lazy quantifier");
	parse_bad("RULE:^CN=(.*?),.*$/$1/", "rule 1 `RULE:^CN=(.*?),.*$/$1/`: the pattern has a lazy quantifier");
	parse_bad("RULE:^CN=(.*?),.*$/$1/", "([^,]*)");
	parse_bad("RULE:^CN=(.+?)$/$1/", "a lazy quantifier");
	parse_bad("RULE:^CN=(a{1,2}?)$/$1/", "a lazy quantifier");
	parse_bad("RULE:^CN=(.*+)$/$1/", "a possessive quantifier");
	/* Escaped, or inside a bracket expression, "?" and "+" are characters. */
	cmf_principal_rules_free(parse_ok("RULE:^CN=(a*\\?)$/$1/"));
	cmf_principal_rules_free(parse_ok("RULE:^CN=([*?]+)$/$1/"));
	cmf_principal_rules_free(parse_ok("RULE:^CN=([]*?]+)$/$1/"));
	cmf_principal_rules_free(parse_ok("RULE:^CN=([[:alpha:]]*)?$/$1/"));
}
END_TEST

/* Kafka's testSslPrincipalMapper: the documented rules, each DN mapped by the first rule that matches it. */
START_TEST(kafka_mappings)
{
	struct cmf_principal_rules *r = parse_ok("RULE:^CN=([^,]*),OU=ServiceUsers.*$/$1/L, "
						 "RULE:^CN=([^,]*),OU=([^,]*),O=([^,]*),L=([^,]*),ST=([^,]*),C=([^,]*)$/$1@$2/L, "
						 "RULE:^cn=([^,]*),ou=([^,]*),dc=([^,]*),dc=([^,]*)$/$1@$2/U, "
						 "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U, "
						 "DEFAULT");

	ck_assert_uint_eq(cmf_principal_rules_count(r), 5);
	maps(r, "CN=Duke,OU=ServiceUsers,O=Org,C=US", "duke");
	maps(r, "CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US", "duke@sme");
	maps(r, "cn=duke,ou=sme,dc=mycp,dc=com", "DUKE@SME");
	maps(r, "cN=duke,OU=JavaSoft,O=Sun Microsystems", "DUKE");
	maps(r, "OU=JavaSoft,O=Sun Microsystems,C=US", "OU=JavaSoft,O=Sun Microsystems,C=US");
	cmf_principal_rules_free(r);

	/*
	 * The vendor documentation's rule on its DN: the greedy "^.*" reaches the last "cn=" in Java (it backs
	 * off from the end) and in POSIX (leftmost-longest) alike, so the name is "accounts", not "alice".
	 */
	r = parse_ok("RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT");
	maps(r, "cn=alice,cn=groups,cn=accounts,dc=hadoopsecurity,dc=local", "accounts");
	cmf_principal_rules_free(r);
}
END_TEST

/* Kafka's testCommaWithWhitespace: an escaped comma in the CN is part of the name. */
START_TEST(comma_with_whitespace)
{
	struct cmf_principal_rules *r = parse_ok("RULE:^CN=((\\\\, *|\\w)+)(,.*|$)/$1/,DEFAULT");

	maps(r, "CN=Tkac\\, Adam,OU=ITZ,DC=geodis,DC=cz", "Tkac\\, Adam");
	cmf_principal_rules_free(r);
}
END_TEST

/* Kafka's testRulesSplitting: whitespace and empty entries ignored, commas inside patterns kept, escapes. */
START_TEST(rules_splitting)
{
	struct cmf_principal_rules *r;

	r = parse_ok("");
	ck_assert_uint_eq(cmf_principal_rules_count(r), 0);
	unmapped(r, "CN=ops");
	cmf_principal_rules_free(r);
	r = parse_ok(",   , , ,      , , ,   ");
	ck_assert_uint_eq(cmf_principal_rules_count(r), 0);
	cmf_principal_rules_free(r);
	r = parse_ok("  RULE:^CN=([a-z]+)$/$1/U   ,RULE:([A-Z]+)/$1/,   DEFAULT  ");
	ck_assert_uint_eq(cmf_principal_rules_count(r), 3);
	maps(r, "CN=ops", "OPS");
	maps(r, "OPS", "OPS");
	maps(r, "CN=Ops", "CN=Ops");
	cmf_principal_rules_free(r);
	r = parse_ok(",,RULE:^x$/y/,,,DEFAULT,,");
	ck_assert_uint_eq(cmf_principal_rules_count(r), 2);
	cmf_principal_rules_free(r);
	/* A comma inside a pattern or a replacement belongs to it; an escaped '/' too. */
	r = parse_ok("RULE:^CN=([^,]*),O=(.*)$/$2,$1/, RULE:^a\\/b$/a\\/b/");
	ck_assert_uint_eq(cmf_principal_rules_count(r), 2);
	maps(r, "CN=ops,O=acme", "acme,ops");
	maps(r, "a/b", "a/b");
	cmf_principal_rules_free(r);
}
END_TEST

START_TEST(mapping_edges)
{
	struct cmf_principal_rules *r;
	char small[4];

	/* Matches only the whole DN (Matcher.matches()): a match inside it is no match. */
	r = parse_ok("RULE:CN=([a-z]+)/$1/");
	unmapped(r, "CN=ops,O=acme");
	maps(r, "CN=ops", "ops");
	cmf_principal_rules_free(r);
	/* $0 is the DN; $N beyond the groups is literal; "$12" with one group is $1 then "2"; "\$" a dollar. */
	r = parse_ok("RULE:^CN=([a-z]+)$/[$0|$1|$5|$12|\\$1]/");
	maps(r, "CN=ops", "[CN=ops|ops|$5|ops2|$1]");
	/* A name that does not fit is refused, never cut. */
	ck_assert_int_eq(cmf_principal_rules_map(r, "CN=ops", small, sizeof(small)), CMF_PRINCIPAL_TOO_LONG);
	ck_assert_str_eq(small, "");
	cmf_principal_rules_free(r);
	/* An empty name maps to no principal. */
	r = parse_ok("RULE:^CN=([a-z]*)$/$1/");
	unmapped(r, "CN=");
	cmf_principal_rules_free(r);
	/* Unmatched optional groups give nothing. */
	r = parse_ok("RULE:^CN=([a-z]+)(-(dev))?$/$1$3/U");
	maps(r, "CN=ops", "OPS");
	maps(r, "CN=ops-dev", "OPSDEV");
	cmf_principal_rules_free(r);
	/* No DEFAULT: a DN no rule maps is unmapped. */
	r = parse_ok("RULE:^CN=ops$/ops/");
	unmapped(r, "CN=other");
	cmf_principal_rules_free(r);
	cmf_principal_rules_free(NULL);
}
END_TEST

CMF_CHECK_SUITE("principal_rules", valid_rules, invalid_rules, lazy_quantifiers_refused, kafka_mappings,
		comma_with_whitespace, rules_splitting, mapping_edges)
