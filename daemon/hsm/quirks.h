/*
 * What keytransd does differently for particular PKCS#11 modules, found from
 * the module's own C_GetInfo. Every module-specific behaviour that is not a
 * mere difference of return codes (those are classified in ckr.c and
 * backend.c without naming modules) is decided here.
 */
#ifndef KT_QUIRKS_H
#define KT_QUIRKS_H

#include <stddef.h>

#include <p11-kit/pkcs11.h>

struct hsm_quirks {
	int serialize;          /* one PKCS#11 call at a time into this module */
	char why[160];          /* for the log: which module, and why */
};

/* The quirks of the module behind f (initialised); none when C_GetInfo fails. */
void hsm_quirks_detect(CK_FUNCTION_LIST_PTR f, struct hsm_quirks *q);

#endif
