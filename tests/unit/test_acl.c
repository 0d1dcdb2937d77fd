/* Access rules: parsing and deciding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "acl.h"
#include "peer.h"

#define SELF 999

static struct peer peer(uid_t uid, gid_t gid, int ngroups, const gid_t *groups)
{
	struct peer p = { .uid = uid, .gid = gid, .pid = 1, .ngroups = ngroups };

	for (int i = 0; i < ngroups; i++)
		p.groups[i] = groups[i];
	return p;
}

static int allows(const char *rule, struct peer p)
{
	struct acl a;
	char err[160];

	if (rule == NULL)
		memset(&a, 0, sizeof(a));     /* no rule given: the default */
	else if (acl_parse(rule, &a, err, sizeof(err)) != 0)
		fail_msg("rule \"%s\" refused: %s", rule, err);
	return acl_allows(&a, &p, SELF);
}

static void test_default_is_root_and_self(void **state)
{
	(void)state;
	assert_true(allows(NULL, peer(0, 0, 0, NULL)));
	assert_true(allows(NULL, peer(SELF, 5, 0, NULL)));
	assert_false(allows(NULL, peer(1000, 1000, 0, NULL)));
	/* An empty rule is "nobody else", not "anybody". */
	assert_false(allows("", peer(1000, 1000, 0, NULL)));
	assert_true(allows("", peer(0, 0, 0, NULL)));
}

static void test_words(void **state)
{
	gid_t sup[] = { 20, 4343 };

	(void)state;
	assert_true(allows("*", peer(1234, 1234, 0, NULL)));
	assert_true(allows("uid:4242", peer(4242, 1, 0, NULL)));
	assert_false(allows("uid:4242", peer(4243, 1, 0, NULL)));
	assert_true(allows("gid:4343", peer(7, 4343, 0, NULL)));           /* primary group */
	assert_true(allows("gid:4343", peer(7, 7, 2, sup)));               /* supplementary */
	assert_false(allows("gid:4344", peer(7, 7, 2, sup)));
	assert_true(allows("uid:1 uid:2, gid:4343", peer(7, 7, 2, sup)));  /* spaces and commas */
	assert_true(allows("user:root", peer(0, 0, 0, NULL)));
	assert_true(allows("user:nobody", peer(65534, 1, 0, NULL)));
	assert_true(allows("group:nogroup", peer(5, 65534, 0, NULL)));
	assert_false(allows("user:nobody", peer(65533, 65534, 0, NULL)));
}

static void test_refused_rules(void **state)
{
	static const struct { const char *rule, *why; } bad[] = {
		{ "uid:", "is not" }, { "uid:x", "is not" }, { "uid:-1", "is not" },
		{ "gid:12a", "is not" }, { "users:root", "is not" }, { "root", "is not" },
		{ "user:no-such-user-kt", "unknown user" }, { "group:no-such-group-kt", "unknown group" },
		{ "uid:4294967295", "is not" },
	};
	struct acl a;
	char err[160];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(acl_parse(bad[i].rule, &a, err, sizeof(err)), -1);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("rule \"%s\": \"%s\" lacks \"%s\"", bad[i].rule, err, bad[i].why);
	}
	{
		char many[1024] = "";

		for (int i = 0; i <= ACL_MAX; i++)
			snprintf(many + strlen(many), sizeof(many) - strlen(many), "uid:%d ", i + 1);
		assert_int_equal(acl_parse(many, &a, err, sizeof(err)), -1);
	}
}

static void test_setting_names(void **state)
{
	(void)state;
	assert_string_equal(acl_op_setting(ACL_UNWRAP), "allow_unwrap");
	assert_string_equal(acl_op_setting(ACL_WRAP), "allow_wrap");
	assert_string_equal(acl_op_setting(ACL_COPP_OPEN), "allow_copp_open");
	assert_string_equal(acl_op_setting(ACL_PUBKEY), "allow_pubkey");
	assert_string_equal(acl_op_setting(ACL_OPM_OPEN), "allow_opm_open");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_is_root_and_self),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_refused_rules),
		cmocka_unit_test(test_setting_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
