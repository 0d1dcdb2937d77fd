/*
 * PKCS#11 return values: their names for messages (every code of PKCS#11
 * 2.40 and the 3.0 additions), and what each means for the daemon. Modules
 * answer the same fault with different codes (SoftHSM reports a bad PKCS#1
 * padding as CKR_GENERAL_ERROR, tpm2-pkcs11 a lost TPM context as
 * CKR_OPERATION_ACTIVE or CKR_GENERAL_ERROR), so the classes below are
 * deliberately coarse; backend.c decides with the mechanism in hand.
 */
#ifndef KT_CKR_H
#define KT_CKR_H

#include <stddef.h>

/* "CKR_DEVICE_ERROR"; "CKR_VENDOR_DEFINED" for vendor codes; "CKR_(unknown)" otherwise. */
const char *ckr_name(unsigned long ckr);
/* "CKR_DEVICE_ERROR (0x30)" into buf; returns buf. */
const char *ckr_describe(unsigned long ckr, char *buf, size_t len);
/* 1 for the codes that can mean bad input to a decryption (bad padding, wrong length). */
int ckr_is_data_error(unsigned long ckr);
/* 1 for codes saying the HSM or host ran out of a resource (memory, sessions, object slots). */
int ckr_is_resource(unsigned long ckr);
/* 1 for codes saying the mechanism or the key's use is refused by the token's policy. */
int ckr_is_refusal(unsigned long ckr);

#endif
