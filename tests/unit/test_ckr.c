/* PKCS#11 return values by name and class (daemon/hsm/ckr.c), and the module quirks (quirks.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <p11-kit/pkcs11.h>

#include "ckr.h"
#include "quirks.h"

static void test_every_code_has_its_name(void **state)
{
	(void)state;
	assert_string_equal(ckr_name(CKR_OK), "CKR_OK");
	assert_string_equal(ckr_name(CKR_GENERAL_ERROR), "CKR_GENERAL_ERROR");
	assert_string_equal(ckr_name(CKR_OPERATION_ACTIVE), "CKR_OPERATION_ACTIVE");
	assert_string_equal(ckr_name(CKR_HOST_MEMORY), "CKR_HOST_MEMORY");
	assert_string_equal(ckr_name(CKR_PIN_TOO_WEAK), "CKR_PIN_TOO_WEAK");
	assert_string_equal(ckr_name(CKR_FUNCTION_REJECTED), "CKR_FUNCTION_REJECTED");
	assert_string_equal(ckr_name(0x201), "CKR_TOKEN_RESOURCE_EXCEEDED");
	assert_string_equal(ckr_name(0x4), "CKR_(unknown)");
	assert_string_equal(ckr_name(CKR_VENDOR_DEFINED + 7), "CKR_VENDOR_DEFINED");
	/* Every code below 0x300 with a name has a distinct one that starts with CKR_. */
	for (unsigned long a = 0; a < 0x300; a++) {
		const char *na = ckr_name(a);

		assert_true(strncmp(na, "CKR_", 4) == 0);
		if (strcmp(na, "CKR_(unknown)") == 0)
			continue;
		for (unsigned long b = 0; b < a; b++)
			assert_string_not_equal(na, ckr_name(b));
	}
}

static void test_describe(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(ckr_describe(CKR_DEVICE_ERROR, buf, sizeof(buf)), "CKR_DEVICE_ERROR (0x30)");
	assert_string_equal(ckr_describe(CKR_VENDOR_DEFINED + 0x12, buf, sizeof(buf)),
			    "CKR_VENDOR_DEFINED+0x12 (0x80000012)");
	assert_string_equal(ckr_describe(0x4, buf, sizeof(buf)), "CKR_(unknown) (0x4)");
}

static void test_classes(void **state)
{
	(void)state;
	assert_true(ckr_is_data_error(CKR_ENCRYPTED_DATA_INVALID));
	assert_true(ckr_is_data_error(CKR_DATA_LEN_RANGE));
	assert_false(ckr_is_data_error(CKR_GENERAL_ERROR));     /* ambiguous: proven by a probe */
	assert_false(ckr_is_data_error(CKR_DEVICE_ERROR));
	assert_true(ckr_is_resource(CKR_DEVICE_MEMORY));
	assert_true(ckr_is_resource(CKR_HOST_MEMORY));
	assert_false(ckr_is_resource(CKR_GENERAL_ERROR));
	assert_true(ckr_is_refusal(CKR_MECHANISM_INVALID));
	assert_true(ckr_is_refusal(CKR_KEY_FUNCTION_NOT_PERMITTED));
	assert_false(ckr_is_refusal(CKR_DEVICE_MEMORY));
	assert_false(ckr_is_refusal(CKR_OPERATION_ACTIVE));
}

/* A module that only answers C_GetInfo, as the test sets it. */
static CK_INFO fake_info;
static CK_RV fake_rv;

static CK_RV fake_get_info(CK_INFO_PTR info)
{
	*info = fake_info;
	return fake_rv;
}

static void set_info(const char *maker, const char *lib, int major, int minor, CK_RV rv)
{
	memset(&fake_info, ' ', sizeof(fake_info));
	memcpy(fake_info.manufacturerID, maker, strlen(maker));
	memcpy(fake_info.libraryDescription, lib, strlen(lib));
	fake_info.libraryVersion.major = (CK_BYTE)major;
	fake_info.libraryVersion.minor = (CK_BYTE)minor;
	fake_rv = rv;
}

static void test_quirks(void **state)
{
	CK_FUNCTION_LIST f;
	struct hsm_quirks q;

	(void)state;
	memset(&f, 0, sizeof(f));
	f.C_GetInfo = fake_get_info;
	set_info("IBM", "Meta PKCS11 LIBRARY", 3, 8, CKR_OK);
	hsm_quirks_detect(&f, &q);
	assert_true(q.serialize);
	assert_non_null(strstr(q.why, "opencryptoki 3.8"));
	set_info("IBM", "Meta PKCS11 LIBRARY", 3, 12, CKR_OK);
	hsm_quirks_detect(&f, &q);
	assert_false(q.serialize);
	set_info("SoftHSM", "Implementation of PKCS11", 2, 6, CKR_OK);
	hsm_quirks_detect(&f, &q);
	assert_false(q.serialize);
	set_info("IBM", "Meta PKCS11 LIBRARY", 3, 8, CKR_GENERAL_ERROR);
	hsm_quirks_detect(&f, &q);
	assert_false(q.serialize);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_code_has_its_name),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_classes),
		cmocka_unit_test(test_quirks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
