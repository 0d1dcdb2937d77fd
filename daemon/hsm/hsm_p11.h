/*
 * Between hsm.c and hsm_admin.c only: the function list of the module
 * instance libp11 loaded (not a second C_GetFunctionList: see hsm.c), for
 * what libp11 does not offer (creating keys). libp11 owns the login;
 * PKCS#11 logs in per application and slot, so a session opened on the
 * token's slot with these functions is logged in too.
 */
#ifndef KT_HSM_P11_H
#define KT_HSM_P11_H

#include <p11-kit/pkcs11.h>

struct hsm;

/* The function list (valid until hsm_close) and the token's slot id. */
CK_FUNCTION_LIST_PTR hsm_functions(const struct hsm *h, CK_SLOT_ID *slot);

#endif
