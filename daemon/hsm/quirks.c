#include "quirks.h"

#include <stdio.h>
#include <string.h>

/* A blank-padded CK_INFO field as a C string. */
static void unpad(const CK_UTF8CHAR *field, size_t len, char *out, size_t outlen)
{
	size_t n = len < outlen - 1 ? len : outlen - 1;

	memcpy(out, field, n);
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

/*
 * opencryptoki up to 3.8 (Debian 12 ships 3.8.1) swaps a token object's
 * attribute template without a lock while another thread decrypts with it:
 * two concurrent C_Decrypt calls crash the process in template_attribute_find
 * (seen with two workers on the soft token). Object locking came later.
 */
static int opencryptoki_unlocked(const CK_INFO *info, const char *maker, const char *lib)
{
	return strcmp(maker, "IBM") == 0 && strncmp(lib, "Meta PKCS11", 11) == 0 &&
	       (info->libraryVersion.major < 3 ||
		(info->libraryVersion.major == 3 && info->libraryVersion.minor <= 8));
}

void hsm_quirks_detect(CK_FUNCTION_LIST_PTR f, struct hsm_quirks *q)
{
	CK_INFO info;
	char maker[33], lib[33];

	memset(q, 0, sizeof(*q));
	if (f->C_GetInfo(&info) != CKR_OK)
		return;
	unpad(info.manufacturerID, sizeof(info.manufacturerID), maker, sizeof(maker));
	unpad(info.libraryDescription, sizeof(info.libraryDescription), lib, sizeof(lib));
	if (opencryptoki_unlocked(&info, maker, lib)) {
		q->serialize = 1;
		snprintf(q->why, sizeof(q->why), "opencryptoki %u.%u is not safe under concurrent "
			 "calls: PKCS#11 calls into it are serialised",
			 info.libraryVersion.major, info.libraryVersion.minor);
	}
}
