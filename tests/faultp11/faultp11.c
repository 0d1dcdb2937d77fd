/*
 * faultp11: a PKCS#11 module that loads a real one (FAULTP11_MODULE, SoftHSM by
 * default), forwards every call to it, and injects faults (a chosen CK_RV, a
 * delay, a hang) into chosen functions, from rules in a control file
 * (FAULTP11_CONTROL) that the test rewrites while the module is in use.
 * FAULTP11_LOG names a file that receives one line per call.
 *
 * The control-file syntax is in README.md. Only C_GetFunctionList is exported.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define FP_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define FP_MAX_FILE (1u << 20)      /* bytes of the control file read */
#define FP_MAX_LINE 512             /* longer lines are ignored */
#define FP_MAX_RULES 1024
#define FP_MAX_COMPLAINTS 32        /* bad lines reported per reading of the file */
#define FP_HANG_POLL_MS 10
#define FP_RACY_NS 2000000000LL     /* a file changed this recently may change unseen */
#define FP_MAX_DELAY_MS 3600000UL

/* What a wrapper passes to the rules to find the slot a call is about. */
enum fp_scope { FP_NONE, FP_SLOT, FP_SESSION };
/* Functions that must still reach the real module when an rv is injected. */
enum { FP_PLAIN = 0, FP_COMPLETE = 1 };

/*
 * Every function of the v2.40 CK_FUNCTION_LIST but C_GetFunctionList (written
 * out by hand below): name, parameters, arguments, how to find its slot, and
 * whether an injected rv must still complete the real call.
 *
 * FP_COMPLETE: a single-part or final cryptographic call ends the active
 * operation when it fails (PKCS#11 v2.40 5.2), and C_Finalize releases the
 * library whatever it returns. Were the real call skipped, the real module
 * would keep the operation active (the next C_DecryptInit on that session
 * would fail with CKR_OPERATION_ACTIVE) or stay initialised across an
 * unload: faults of the injector, not of an HSM. So these are forwarded and
 * the injected rv is returned in place of theirs (outputs are left as the
 * real call wrote them; a caller ignores them on error).
 */
#define FP_S CK_SESSION_HANDLE session
#define FP_FUNCTIONS(X)                                                                          \
	X(C_Initialize, (CK_VOID_PTR init_args), (init_args), FP_NONE, 0, FP_PLAIN)              \
	X(C_Finalize, (CK_VOID_PTR reserved), (reserved), FP_NONE, 0, FP_COMPLETE)               \
	X(C_GetInfo, (CK_INFO_PTR info), (info), FP_NONE, 0, FP_PLAIN)                           \
	X(C_GetSlotList, (CK_BBOOL token_present, CK_SLOT_ID_PTR slot_list, CK_ULONG_PTR count), \
	  (token_present, slot_list, count), FP_NONE, 0, FP_PLAIN)                               \
	X(C_GetSlotInfo, (CK_SLOT_ID slot_id, CK_SLOT_INFO_PTR info), (slot_id, info), FP_SLOT,  \
	  slot_id, FP_PLAIN)                                                                     \
	X(C_GetTokenInfo, (CK_SLOT_ID slot_id, CK_TOKEN_INFO_PTR info), (slot_id, info),         \
	  FP_SLOT, slot_id, FP_PLAIN)                                                            \
	X(C_GetMechanismList,                                                                    \
	  (CK_SLOT_ID slot_id, CK_MECHANISM_TYPE_PTR mechanism_list, CK_ULONG_PTR count),        \
	  (slot_id, mechanism_list, count), FP_SLOT, slot_id, FP_PLAIN)                          \
	X(C_GetMechanismInfo,                                                                    \
	  (CK_SLOT_ID slot_id, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info),              \
	  (slot_id, type, info), FP_SLOT, slot_id, FP_PLAIN)                                     \
	X(C_InitToken,                                                                           \
	  (CK_SLOT_ID slot_id, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len, CK_UTF8CHAR_PTR label),    \
	  (slot_id, pin, pin_len, label), FP_SLOT, slot_id, FP_PLAIN)                            \
	X(C_InitPIN, (FP_S, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len), (session, pin, pin_len),        \
	  FP_SESSION, session, FP_PLAIN)                                                         \
	X(C_SetPIN,                                                                              \
	  (FP_S, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len, CK_UTF8CHAR_PTR new_pin,                \
	   CK_ULONG new_len),                                                                    \
	  (session, old_pin, old_len, new_pin, new_len), FP_SESSION, session, FP_PLAIN)          \
	X(C_OpenSession,                                                                         \
	  (CK_SLOT_ID slot_id, CK_FLAGS flags, CK_VOID_PTR application, CK_NOTIFY notify,        \
	   CK_SESSION_HANDLE_PTR session),                                                       \
	  (slot_id, flags, application, notify, session), FP_SLOT, slot_id, FP_PLAIN)            \
	X(C_CloseSession, (FP_S), (session), FP_SESSION, session, FP_PLAIN)                         \
	X(C_CloseAllSessions, (CK_SLOT_ID slot_id), (slot_id), FP_SLOT, slot_id, FP_PLAIN)       \
	X(C_GetSessionInfo, (FP_S, CK_SESSION_INFO_PTR info), (session, info), FP_SESSION,          \
	  session, FP_PLAIN)                                                                     \
	X(C_GetOperationState, (FP_S, CK_BYTE_PTR state, CK_ULONG_PTR state_len),                   \
	  (session, state, state_len), FP_SESSION, session, FP_PLAIN)                            \
	X(C_SetOperationState,                                                                   \
	  (FP_S, CK_BYTE_PTR state, CK_ULONG state_len, CK_OBJECT_HANDLE encryption_key,            \
	   CK_OBJECT_HANDLE authentication_key),                                                 \
	  (session, state, state_len, encryption_key, authentication_key), FP_SESSION, session,  \
	  FP_PLAIN)                                                                              \
	X(C_Login, (FP_S, CK_USER_TYPE user_type, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len),           \
	  (session, user_type, pin, pin_len), FP_SESSION, session, FP_PLAIN)                     \
	X(C_Logout, (FP_S), (session), FP_SESSION, session, FP_PLAIN)                               \
	X(C_CreateObject,                                                                        \
	  (FP_S, CK_ATTRIBUTE_PTR templ, CK_ULONG count, CK_OBJECT_HANDLE_PTR object),              \
	  (session, templ, count, object), FP_SESSION, session, FP_PLAIN)                        \
	X(C_CopyObject,                                                                          \
	  (FP_S, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR templ, CK_ULONG count,                   \
	   CK_OBJECT_HANDLE_PTR new_object),                                                     \
	  (session, object, templ, count, new_object), FP_SESSION, session, FP_PLAIN)            \
	X(C_DestroyObject, (FP_S, CK_OBJECT_HANDLE object), (session, object), FP_SESSION,          \
	  session, FP_PLAIN)                                                                     \
	X(C_GetObjectSize, (FP_S, CK_OBJECT_HANDLE object, CK_ULONG_PTR size),                      \
	  (session, object, size), FP_SESSION, session, FP_PLAIN)                                \
	X(C_GetAttributeValue,                                                                   \
	  (FP_S, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR templ, CK_ULONG count),                  \
	  (session, object, templ, count), FP_SESSION, session, FP_PLAIN)                        \
	X(C_SetAttributeValue,                                                                   \
	  (FP_S, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_PTR templ, CK_ULONG count),                  \
	  (session, object, templ, count), FP_SESSION, session, FP_PLAIN)                        \
	X(C_FindObjectsInit, (FP_S, CK_ATTRIBUTE_PTR templ, CK_ULONG count),                        \
	  (session, templ, count), FP_SESSION, session, FP_PLAIN)                                \
	X(C_FindObjects,                                                                         \
	  (FP_S, CK_OBJECT_HANDLE_PTR object, CK_ULONG max_object_count,                            \
	   CK_ULONG_PTR object_count),                                                           \
	  (session, object, max_object_count, object_count), FP_SESSION, session, FP_PLAIN)      \
	X(C_FindObjectsFinal, (FP_S), (session), FP_SESSION, session, FP_PLAIN)                     \
	X(C_EncryptInit, (FP_S, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key),                  \
	  (session, mechanism, key), FP_SESSION, session, FP_PLAIN)                              \
	X(C_Encrypt,                                                                             \
	  (FP_S, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR encrypted_data,                   \
	   CK_ULONG_PTR encrypted_data_len),                                                     \
	  (session, data, data_len, encrypted_data, encrypted_data_len), FP_SESSION, session,    \
	  FP_COMPLETE)                                                                           \
	X(C_EncryptUpdate,                                                                       \
	  (FP_S, CK_BYTE_PTR part, CK_ULONG part_len, CK_BYTE_PTR encrypted_part,                   \
	   CK_ULONG_PTR encrypted_part_len),                                                     \
	  (session, part, part_len, encrypted_part, encrypted_part_len), FP_SESSION, session,    \
	  FP_PLAIN)                                                                              \
	X(C_EncryptFinal, (FP_S, CK_BYTE_PTR last_part, CK_ULONG_PTR last_part_len),                \
	  (session, last_part, last_part_len), FP_SESSION, session, FP_COMPLETE)                 \
	X(C_DecryptInit, (FP_S, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key),                  \
	  (session, mechanism, key), FP_SESSION, session, FP_PLAIN)                              \
	X(C_Decrypt,                                                                             \
	  (FP_S, CK_BYTE_PTR encrypted_data, CK_ULONG encrypted_data_len, CK_BYTE_PTR data,         \
	   CK_ULONG_PTR data_len),                                                               \
	  (session, encrypted_data, encrypted_data_len, data, data_len), FP_SESSION, session,    \
	  FP_COMPLETE)                                                                           \
	X(C_DecryptUpdate,                                                                       \
	  (FP_S, CK_BYTE_PTR encrypted_part, CK_ULONG encrypted_part_len, CK_BYTE_PTR part,         \
	   CK_ULONG_PTR part_len),                                                               \
	  (session, encrypted_part, encrypted_part_len, part, part_len), FP_SESSION, session,    \
	  FP_PLAIN)                                                                              \
	X(C_DecryptFinal, (FP_S, CK_BYTE_PTR last_part, CK_ULONG_PTR last_part_len),                \
	  (session, last_part, last_part_len), FP_SESSION, session, FP_COMPLETE)                 \
	X(C_DigestInit, (FP_S, CK_MECHANISM_PTR mechanism), (session, mechanism), FP_SESSION,       \
	  session, FP_PLAIN)                                                                     \
	X(C_Digest,                                                                              \
	  (FP_S, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR digest, CK_ULONG_PTR digest_len), \
	  (session, data, data_len, digest, digest_len), FP_SESSION, session, FP_COMPLETE)       \
	X(C_DigestUpdate, (FP_S, CK_BYTE_PTR part, CK_ULONG part_len), (session, part, part_len),   \
	  FP_SESSION, session, FP_PLAIN)                                                         \
	X(C_DigestKey, (FP_S, CK_OBJECT_HANDLE key), (session, key), FP_SESSION, session,           \
	  FP_PLAIN)                                                                              \
	X(C_DigestFinal, (FP_S, CK_BYTE_PTR digest, CK_ULONG_PTR digest_len),                       \
	  (session, digest, digest_len), FP_SESSION, session, FP_COMPLETE)                       \
	X(C_SignInit, (FP_S, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key),                     \
	  (session, mechanism, key), FP_SESSION, session, FP_PLAIN)                              \
	X(C_Sign,                                                                                \
	  (FP_S, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR signature,                        \
	   CK_ULONG_PTR signature_len),                                                          \
	  (session, data, data_len, signature, signature_len), FP_SESSION, session, FP_COMPLETE) \
	X(C_SignUpdate, (FP_S, CK_BYTE_PTR part, CK_ULONG part_len), (session, part, part_len),     \
	  FP_SESSION, session, FP_PLAIN)                                                         \
	X(C_SignFinal, (FP_S, CK_BYTE_PTR signature, CK_ULONG_PTR signature_len),                   \
	  (session, signature, signature_len), FP_SESSION, session, FP_COMPLETE)                 \
	X(C_SignRecoverInit, (FP_S, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key),              \
	  (session, mechanism, key), FP_SESSION, session, FP_PLAIN)                              \
	X(C_SignRecover,                                                                         \
	  (FP_S, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR signature,                        \
	   CK_ULONG_PTR signature_len),                                                          \
	  (session, data, data_len, signature, signature_len), FP_SESSION, session, FP_COMPLETE) \
	X(C_VerifyInit, (FP_S, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key),                   \
	  (session, mechanism, key), FP_SESSION, session, FP_PLAIN)                              \
	X(C_Verify,                                                                              \
	  (FP_S, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR signature,                        \
	   CK_ULONG signature_len),                                                              \
	  (session, data, data_len, signature, signature_len), FP_SESSION, session, FP_COMPLETE) \
	X(C_VerifyUpdate, (FP_S, CK_BYTE_PTR part, CK_ULONG part_len), (session, part, part_len),   \
	  FP_SESSION, session, FP_PLAIN)                                                         \
	X(C_VerifyFinal, (FP_S, CK_BYTE_PTR signature, CK_ULONG signature_len),                     \
	  (session, signature, signature_len), FP_SESSION, session, FP_COMPLETE)                 \
	X(C_VerifyRecoverInit, (FP_S, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key),            \
	  (session, mechanism, key), FP_SESSION, session, FP_PLAIN)                              \
	X(C_VerifyRecover,                                                                       \
	  (FP_S, CK_BYTE_PTR signature, CK_ULONG signature_len, CK_BYTE_PTR data,                   \
	   CK_ULONG_PTR data_len),                                                               \
	  (session, signature, signature_len, data, data_len), FP_SESSION, session, FP_COMPLETE) \
	X(C_DigestEncryptUpdate,                                                                 \
	  (FP_S, CK_BYTE_PTR part, CK_ULONG part_len, CK_BYTE_PTR encrypted_part,                   \
	   CK_ULONG_PTR encrypted_part_len),                                                     \
	  (session, part, part_len, encrypted_part, encrypted_part_len), FP_SESSION, session,    \
	  FP_PLAIN)                                                                              \
	X(C_DecryptDigestUpdate,                                                                 \
	  (FP_S, CK_BYTE_PTR encrypted_part, CK_ULONG encrypted_part_len, CK_BYTE_PTR part,         \
	   CK_ULONG_PTR part_len),                                                               \
	  (session, encrypted_part, encrypted_part_len, part, part_len), FP_SESSION, session,    \
	  FP_PLAIN)                                                                              \
	X(C_SignEncryptUpdate,                                                                   \
	  (FP_S, CK_BYTE_PTR part, CK_ULONG part_len, CK_BYTE_PTR encrypted_part,                   \
	   CK_ULONG_PTR encrypted_part_len),                                                     \
	  (session, part, part_len, encrypted_part, encrypted_part_len), FP_SESSION, session,    \
	  FP_PLAIN)                                                                              \
	X(C_DecryptVerifyUpdate,                                                                 \
	  (FP_S, CK_BYTE_PTR encrypted_part, CK_ULONG encrypted_part_len, CK_BYTE_PTR part,         \
	   CK_ULONG_PTR part_len),                                                               \
	  (session, encrypted_part, encrypted_part_len, part, part_len), FP_SESSION, session,    \
	  FP_PLAIN)                                                                              \
	X(C_GenerateKey,                                                                         \
	  (FP_S, CK_MECHANISM_PTR mechanism, CK_ATTRIBUTE_PTR templ, CK_ULONG count,                \
	   CK_OBJECT_HANDLE_PTR key),                                                            \
	  (session, mechanism, templ, count, key), FP_SESSION, session, FP_PLAIN)                \
	X(C_GenerateKeyPair,                                                                     \
	  (FP_S, CK_MECHANISM_PTR mechanism, CK_ATTRIBUTE_PTR public_key_template,                  \
	   CK_ULONG public_key_attribute_count, CK_ATTRIBUTE_PTR private_key_template,           \
	   CK_ULONG private_key_attribute_count, CK_OBJECT_HANDLE_PTR public_key,                \
	   CK_OBJECT_HANDLE_PTR private_key),                                                    \
	  (session, mechanism, public_key_template, public_key_attribute_count,                  \
	   private_key_template, private_key_attribute_count, public_key, private_key),          \
	  FP_SESSION, session, FP_PLAIN)                                                         \
	X(C_WrapKey,                                                                             \
	  (FP_S, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key,   \
	   CK_BYTE_PTR wrapped_key, CK_ULONG_PTR wrapped_key_len),                               \
	  (session, mechanism, wrapping_key, key, wrapped_key, wrapped_key_len), FP_SESSION,     \
	  session, FP_PLAIN)                                                                     \
	X(C_UnwrapKey,                                                                           \
	  (FP_S, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE unwrapping_key,                       \
	   CK_BYTE_PTR wrapped_key, CK_ULONG wrapped_key_len, CK_ATTRIBUTE_PTR templ,            \
	   CK_ULONG attribute_count, CK_OBJECT_HANDLE_PTR key),                                  \
	  (session, mechanism, unwrapping_key, wrapped_key, wrapped_key_len, templ,              \
	   attribute_count, key),                                                                \
	  FP_SESSION, session, FP_PLAIN)                                                         \
	X(C_DeriveKey,                                                                           \
	  (FP_S, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE base_key, CK_ATTRIBUTE_PTR templ,     \
	   CK_ULONG attribute_count, CK_OBJECT_HANDLE_PTR key),                                  \
	  (session, mechanism, base_key, templ, attribute_count, key), FP_SESSION, session,      \
	  FP_PLAIN)                                                                              \
	X(C_SeedRandom, (FP_S, CK_BYTE_PTR seed, CK_ULONG seed_len), (session, seed, seed_len),     \
	  FP_SESSION, session, FP_PLAIN)                                                         \
	X(C_GenerateRandom, (FP_S, CK_BYTE_PTR random_data, CK_ULONG random_len),                   \
	  (session, random_data, random_len), FP_SESSION, session, FP_PLAIN)                     \
	X(C_GetFunctionStatus, (FP_S), (session), FP_SESSION, session, FP_PLAIN)                    \
	X(C_CancelFunction, (FP_S), (session), FP_SESSION, session, FP_PLAIN)                       \
	X(C_WaitForSlotEvent, (CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved),       \
	  (flags, slot, reserved), FP_NONE, 0, FP_PLAIN)

/* Function indices: every wrapped function, then C_GetFunctionList. */
enum {
#define FP_ENUM(name, params, args, kind, scope, flags) FP_##name,
	FP_FUNCTIONS(FP_ENUM)
#undef FP_ENUM
	FP_C_GetFunctionList,
	FP_NFUNCS
};
#define FP_ANY (-1)

/* A CK_FUNCTION_LIST is its version then one pointer per function: all 68 are here. */
_Static_assert(FP_NFUNCS == 68, "PKCS#11 v2.40 has 68 functions");
_Static_assert(sizeof(CK_FUNCTION_LIST) ==
		       offsetof(CK_FUNCTION_LIST, C_Initialize) + FP_NFUNCS * sizeof(void (*)(void)),
	       "a function of CK_FUNCTION_LIST is not wrapped");

static const char *const fp_names[FP_NFUNCS] = {
#define FP_NAME(name, params, args, kind, scope, flags) [FP_##name] = #name,
	FP_FUNCTIONS(FP_NAME)
#undef FP_NAME
	[FP_C_GetFunctionList] = "C_GetFunctionList",
};

/* ---- CK_RV names ---- */

#define FP_CKRS(X)                                                                               \
	X(CKR_OK) X(CKR_CANCEL) X(CKR_HOST_MEMORY) X(CKR_SLOT_ID_INVALID) X(CKR_GENERAL_ERROR)   \
	X(CKR_FUNCTION_FAILED) X(CKR_ARGUMENTS_BAD) X(CKR_NO_EVENT)                              \
	X(CKR_NEED_TO_CREATE_THREADS) X(CKR_CANT_LOCK) X(CKR_ATTRIBUTE_READ_ONLY)                \
	X(CKR_ATTRIBUTE_SENSITIVE) X(CKR_ATTRIBUTE_TYPE_INVALID) X(CKR_ATTRIBUTE_VALUE_INVALID)  \
	X(CKR_ACTION_PROHIBITED) X(CKR_DATA_INVALID) X(CKR_DATA_LEN_RANGE) X(CKR_DEVICE_ERROR)   \
	X(CKR_DEVICE_MEMORY) X(CKR_DEVICE_REMOVED) X(CKR_ENCRYPTED_DATA_INVALID)                 \
	X(CKR_ENCRYPTED_DATA_LEN_RANGE) X(CKR_FUNCTION_CANCELED) X(CKR_FUNCTION_NOT_PARALLEL)    \
	X(CKR_FUNCTION_NOT_SUPPORTED) X(CKR_KEY_HANDLE_INVALID) X(CKR_KEY_SIZE_RANGE)            \
	X(CKR_KEY_TYPE_INCONSISTENT) X(CKR_KEY_NOT_NEEDED) X(CKR_KEY_CHANGED) X(CKR_KEY_NEEDED)  \
	X(CKR_KEY_INDIGESTIBLE) X(CKR_KEY_FUNCTION_NOT_PERMITTED) X(CKR_KEY_NOT_WRAPPABLE)       \
	X(CKR_KEY_UNEXTRACTABLE) X(CKR_MECHANISM_INVALID) X(CKR_MECHANISM_PARAM_INVALID)         \
	X(CKR_OBJECT_HANDLE_INVALID) X(CKR_OPERATION_ACTIVE) X(CKR_OPERATION_NOT_INITIALIZED)    \
	X(CKR_PIN_INCORRECT) X(CKR_PIN_INVALID) X(CKR_PIN_LEN_RANGE) X(CKR_PIN_EXPIRED)          \
	X(CKR_PIN_LOCKED) X(CKR_SESSION_CLOSED) X(CKR_SESSION_COUNT)                             \
	X(CKR_SESSION_HANDLE_INVALID) X(CKR_SESSION_PARALLEL_NOT_SUPPORTED)                      \
	X(CKR_SESSION_READ_ONLY) X(CKR_SESSION_EXISTS) X(CKR_SESSION_READ_ONLY_EXISTS)           \
	X(CKR_SESSION_READ_WRITE_SO_EXISTS) X(CKR_SIGNATURE_INVALID) X(CKR_SIGNATURE_LEN_RANGE)  \
	X(CKR_TEMPLATE_INCOMPLETE) X(CKR_TEMPLATE_INCONSISTENT) X(CKR_TOKEN_NOT_PRESENT)         \
	X(CKR_TOKEN_NOT_RECOGNIZED) X(CKR_TOKEN_WRITE_PROTECTED)                                 \
	X(CKR_UNWRAPPING_KEY_HANDLE_INVALID) X(CKR_UNWRAPPING_KEY_SIZE_RANGE)                    \
	X(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT) X(CKR_USER_ALREADY_LOGGED_IN)                    \
	X(CKR_USER_NOT_LOGGED_IN) X(CKR_USER_PIN_NOT_INITIALIZED) X(CKR_USER_TYPE_INVALID)       \
	X(CKR_USER_ANOTHER_ALREADY_LOGGED_IN) X(CKR_USER_TOO_MANY_TYPES)                         \
	X(CKR_WRAPPED_KEY_INVALID) X(CKR_WRAPPED_KEY_LEN_RANGE)                                  \
	X(CKR_WRAPPING_KEY_HANDLE_INVALID) X(CKR_WRAPPING_KEY_SIZE_RANGE)                        \
	X(CKR_WRAPPING_KEY_TYPE_INCONSISTENT) X(CKR_RANDOM_SEED_NOT_SUPPORTED)                   \
	X(CKR_RANDOM_NO_RNG) X(CKR_DOMAIN_PARAMS_INVALID) X(CKR_CURVE_NOT_SUPPORTED)             \
	X(CKR_BUFFER_TOO_SMALL) X(CKR_SAVED_STATE_INVALID) X(CKR_INFORMATION_SENSITIVE)          \
	X(CKR_STATE_UNSAVEABLE) X(CKR_CRYPTOKI_NOT_INITIALIZED)                                  \
	X(CKR_CRYPTOKI_ALREADY_INITIALIZED) X(CKR_MUTEX_BAD) X(CKR_MUTEX_NOT_LOCKED)             \
	X(CKR_NEW_PIN_MODE) X(CKR_NEXT_OTP) X(CKR_EXCEEDED_MAX_ITERATIONS)                       \
	X(CKR_FIPS_SELF_TEST_FAILED) X(CKR_LIBRARY_LOAD_FAILED) X(CKR_PIN_TOO_WEAK)              \
	X(CKR_PUBLIC_KEY_INVALID) X(CKR_FUNCTION_REJECTED) X(CKR_VENDOR_DEFINED)

static const struct {
	const char *name;
	CK_RV rv;
} fp_ckrs[] = {
#define FP_CKR(x) { #x, x },
	FP_CKRS(FP_CKR)
#undef FP_CKR
};

static const char *ckr_name(CK_RV rv)
{
	for (size_t i = 0; i < sizeof(fp_ckrs) / sizeof(fp_ckrs[0]); i++)
		if (fp_ckrs[i].rv == rv)
			return fp_ckrs[i].name;
	return NULL;
}

/* ---- state ---- */

struct rule {
	int func;                    /* FP_ANY or a function index */
	bool has_rv, hang, forever, reset, has_slot, has_token;
	CK_RV rv;
	unsigned long delay_ms;
	long long count;             /* calls left to fault; < 0: no limit */
	unsigned long long after;    /* matching calls spared first */
	uint64_t prob;               /* fires when a 32-bit draw is below this; 1 << 32: always */
	CK_SLOT_ID slot;
	char token[33];
	unsigned long long seen;     /* matching calls so far */
	char text[FP_MAX_LINE];      /* the rule as written, comments and edge blanks off */
};

#define FP_PROB_ALWAYS (UINT64_C(1) << 32)
#define FP_KEY_NONE 0                /* never read */
#define FP_KEY_ABSENT 2              /* no file (stat digests are odd) */

static pthread_mutex_t fp_load_lock = PTHREAD_MUTEX_INITIALIZER;
static void *fp_handle;
static CK_FUNCTION_LIST_PTR fp_real;
static char *fp_control;             /* NULL: no rules at all, no stat */
static int fp_log_fd = -1;

static pthread_mutex_t fp_lock = PTHREAD_MUTEX_INITIALIZER; /* the rule table */
/*
 * Real calls hold it shared; a reset holds it alone, so that it closes sessions
 * between calls, as an HSM restart would (SoftHSM frees a session another thread
 * is using when it is closed under it). Writers first: a reset is not starved.
 */
static pthread_rwlock_t fp_calls = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static struct rule *fp_rules;
static size_t fp_nrules_locked;
static uint64_t fp_hash;             /* of the content last parsed */
static uint64_t fp_rng;
static _Atomic uint64_t fp_key;      /* digest of the control file's stat when last read */
static atomic_bool fp_racy;          /* it changed too recently for its stat to be trusted */
static atomic_size_t fp_nrules;      /* rules in force, for the lock-free test */

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + UINT64_C(0x9e3779b97f4a7c15) + (h << 6) + (h >> 2);
	h ^= h >> 30;
	h *= UINT64_C(0xbf58476d1ce4e5b9);
	h ^= h >> 27;
	h *= UINT64_C(0x94d049bb133111eb);
	return h ^ (h >> 31);
}

static uint64_t stat_key(const struct stat *sb)
{
	uint64_t h = 0;

	h = mix(h, (uint64_t)sb->st_dev);
	h = mix(h, (uint64_t)sb->st_ino);
	h = mix(h, (uint64_t)sb->st_size);
	h = mix(h, (uint64_t)sb->st_mtim.tv_sec);
	h = mix(h, (uint64_t)sb->st_mtim.tv_nsec);
	h = mix(h, (uint64_t)sb->st_ctim.tv_sec);
	h = mix(h, (uint64_t)sb->st_ctim.tv_nsec);
	return h | 1;
}

static uint64_t rng32(void)
{
	/* xorshift64*, under fp_lock */
	fp_rng ^= fp_rng >> 12;
	fp_rng ^= fp_rng << 25;
	fp_rng ^= fp_rng >> 27;
	return (fp_rng * UINT64_C(2685821657736338717)) >> 32;
}

static int64_t now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(unsigned long ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- parsing the control file ---- */

static int func_index(const char *name)
{
	if (strcmp(name, "*") == 0)
		return FP_ANY;
	for (int i = 0; i < FP_NFUNCS; i++)
		if (strcmp(fp_names[i], name) == 0)
			return i;
	return -2;
}

/* Decimal, or hexadecimal after 0x; no sign, nothing after. */
static bool parse_ulong(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;
	unsigned base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return false;
		if (v > (max - d) / base)
			return false;
		v = v * base + d;
	}
	*out = v;
	return true;
}

static bool parse_rv(const char *s, CK_RV *out)
{
	unsigned long long v;

	for (size_t i = 0; i < sizeof(fp_ckrs) / sizeof(fp_ckrs[0]); i++)
		if (strcmp(fp_ckrs[i].name, s) == 0) {
			*out = fp_ckrs[i].rv;
			return true;
		}
	if (!parse_ulong(s, (CK_RV)-1, &v))
		return false;
	*out = (CK_RV)v;
	return true;
}

/* 0 to 1, at most 9 decimals: "0", "1", "0.25", ".5", "1.0". */
static bool parse_prob(const char *s, uint64_t *out)
{
	uint64_t nano = 0, scale = 100000000;
	bool digits = false;

	if (*s == '0' || *s == '1') {
		nano = (uint64_t)(*s - '0') * 1000000000;
		s++;
		digits = true;
	}
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++) {
			if (scale == 0)
				return false;
			nano += (uint64_t)(*s - '0') * scale;
			scale /= 10;
			digits = true;
		}
	}
	if (*s != '\0' || !digits || nano > 1000000000)
		return false;
	*out = nano * FP_PROB_ALWAYS / 1000000000;
	return true;
}

/* One line into r; NULL, or why it is refused. */
static const char *parse_rule(char *line, struct rule *r)
{
	char *save = NULL, *tok;
	bool have_delay = false, have_count = false, have_after = false, have_prob = false;
	unsigned long long v;

	memset(r, 0, sizeof(*r));
	r->count = -1;
	r->prob = FP_PROB_ALWAYS;
	tok = strtok_r(line, " \t\r\v\f", &save);
	r->func = func_index(tok);
	if (r->func == -2)
		return "unknown function";
	while ((tok = strtok_r(NULL, " \t\r\v\f", &save)) != NULL) {
		char *eq = strchr(tok, '=');
		const char *val = eq != NULL ? eq + 1 : NULL;
		size_t klen = eq != NULL ? (size_t)(eq - tok) : strlen(tok);

#define KEY(k) (klen == sizeof(k) - 1 && memcmp(tok, k, klen) == 0)
		if (KEY("reset")) {
			if (r->reset || val != NULL)
				return "reset takes no value, once";
			r->reset = true;
			continue;
		}
		if (KEY("hang")) {
			if (r->hang)
				return "repeated hang";
			r->hang = true;
			if (val != NULL) {
				if (strcmp(val, "forever") != 0)
					return "hang takes no value but forever";
				r->forever = true;
			}
			continue;
		}
		if (val == NULL || *val == '\0')
			return "expected NAME=VALUE";
		if (KEY("rv")) {
			if (r->has_rv)
				return "repeated rv";
			if (!parse_rv(val, &r->rv))
				return "bad rv (a CKR_ name, 0xHEX or decimal)";
			r->has_rv = true;
		} else if (KEY("delay")) {
			if (have_delay)
				return "repeated delay";
			if (!parse_ulong(val, FP_MAX_DELAY_MS, &v))
				return "bad delay (milliseconds, at most 3600000)";
			r->delay_ms = (unsigned long)v;
			have_delay = true;
		} else if (KEY("count")) {
			if (have_count)
				return "repeated count";
			if (!parse_ulong(val, LLONG_MAX, &v) || v == 0)
				return "bad count (1 or more)";
			r->count = (long long)v;
			have_count = true;
		} else if (KEY("after")) {
			if (have_after)
				return "repeated after";
			if (!parse_ulong(val, ULLONG_MAX, &v))
				return "bad after";
			r->after = v;
			have_after = true;
		} else if (KEY("prob")) {
			if (have_prob)
				return "repeated prob";
			if (!parse_prob(val, &r->prob))
				return "bad prob (0 to 1)";
			have_prob = true;
		} else if (KEY("slot")) {
			if (r->has_slot)
				return "repeated slot";
			if (!parse_ulong(val, (CK_SLOT_ID)-1, &v))
				return "bad slot";
			r->slot = (CK_SLOT_ID)v;
			r->has_slot = true;
		} else if (KEY("token")) {
			if (r->has_token)
				return "repeated token";
			if (strlen(val) > 32)
				return "token label longer than 32 bytes";
			strcpy(r->token, val);
			r->has_token = true;
		} else {
			return "unknown word";
		}
#undef KEY
	}
	if (r->hang && (r->has_rv || have_delay || r->reset))
		return "hang goes with neither rv, delay nor reset";
	if (!r->hang && !r->has_rv && !have_delay && !r->reset)
		return "no action (rv=, delay=, reset or hang)";
	return NULL;
}

static void complain(const char *path, unsigned line, const char *why, const char *text, int *n)
{
	if (*n < FP_MAX_COMPLAINTS)
		fprintf(stderr, "faultp11: %s:%u: line ignored (%s): %.80s\n", path, line, why, text);
	else if (*n == FP_MAX_COMPLAINTS)
		fprintf(stderr, "faultp11: %s: more lines ignored\n", path);
	(*n)++;
}

/* Replaces the rule table with the rules of buf (len bytes; buf[len] is writable). */
static void parse_locked(char *buf, size_t len)
{
	struct rule *rules = NULL, r;
	size_t n = 0, cap = 0;
	unsigned lineno = 0;
	int complaints = 0;
	char *p = buf, *end = buf + len;

	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *eol = nl != NULL ? nl : end;
		char *hash, *s, *e;
		const char *why;

		lineno++;
		*eol = '\0';
		s = p;
		p = eol + 1;
		if (memchr(s, '\0', (size_t)(eol - s)) != NULL) {
			complain(fp_control, lineno, "NUL byte", "", &complaints);
			continue;
		}
		if ((hash = strchr(s, '#')) != NULL)
			*hash = '\0';
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\v' || *s == '\f')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\v' ||
				 e[-1] == '\f'))
			*--e = '\0';
		if (*s == '\0')
			continue;
		if ((size_t)(e - s) >= FP_MAX_LINE) {
			complain(fp_control, lineno, "too long", s, &complaints);
			continue;
		}
		{
			char copy[FP_MAX_LINE];

			memcpy(copy, s, (size_t)(e - s) + 1);
			why = parse_rule(copy, &r);
		}
		if (why != NULL) {
			complain(fp_control, lineno, why, s, &complaints);
			continue;
		}
		if (n == FP_MAX_RULES) {
			complain(fp_control, lineno, "too many rules", s, &complaints);
			continue;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct rule *nr = realloc(rules, ncap * sizeof(*nr));

			if (nr == NULL) {
				complain(fp_control, lineno, "out of memory", s, &complaints);
				continue;
			}
			rules = nr;
			cap = ncap;
		}
		memcpy(r.text, s, (size_t)(e - s) + 1);
		rules[n++] = r;
	}
	free(fp_rules);
	fp_rules = rules;
	fp_nrules_locked = n;
	atomic_store(&fp_nrules, n);
}

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

static void clear_locked(uint64_t key)
{
	free(fp_rules);
	fp_rules = NULL;
	fp_nrules_locked = 0;
	fp_hash = 0;
	atomic_store(&fp_nrules, 0);
	atomic_store(&fp_racy, false);
	atomic_store(&fp_key, key);
}

/* Re-reads the control file if it changed (or may have changed unseen). */
static void reload_locked(void)
{
	struct stat sb;
	char *buf;
	size_t len = 0;
	uint64_t key, hash;
	int fd = open(fp_control, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		if (atomic_load(&fp_key) != FP_KEY_ABSENT)
			clear_locked(FP_KEY_ABSENT);
		return;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		clear_locked(FP_KEY_ABSENT);
		return;
	}
	key = stat_key(&sb);
	buf = malloc(FP_MAX_FILE + 1);
	if (buf == NULL) {
		close(fd);
		return; /* try again on the next call */
	}
	while (len < FP_MAX_FILE) {
		ssize_t got = read(fd, buf + len, FP_MAX_FILE - len);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	hash = fnv1a(buf, len);
	if (key != atomic_load(&fp_key) || hash != fp_hash) {
		if (len == FP_MAX_FILE)
			fprintf(stderr, "faultp11: %s: only the first %u bytes are read\n", fp_control,
				FP_MAX_FILE);
		parse_locked(buf, len);
		fp_hash = hash;
	}
	free(buf);
	/* Timestamps come from a coarse clock: a rewrite within the same tick, of the same
	   size and inode, would go unseen by stat alone; compare contents until then. */
	atomic_store(&fp_racy, now_ns(CLOCK_REALTIME) -
		     ((int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec) < FP_RACY_NS);
	atomic_store(&fp_key, key);
}

/* Brings the rule table up to date; false when there is no rule (the fast path). */
static bool sync_rules(void)
{
	struct stat sb;
	uint64_t key;

	if (fp_control == NULL)
		return false;
	key = stat(fp_control, &sb) == 0 ? stat_key(&sb) : FP_KEY_ABSENT;
	if (key == atomic_load(&fp_key) && !atomic_load(&fp_racy))
		return atomic_load(&fp_nrules) != 0;
	pthread_mutex_lock(&fp_lock);
	reload_locked();
	pthread_mutex_unlock(&fp_lock);
	return atomic_load(&fp_nrules) != 0;
}

/* ---- deciding ---- */

enum fp_what { FP_FORWARD, FP_INJECT, FP_HANG };

struct fp_decision {
	enum fp_what what;
	CK_RV rv;
	unsigned long delay_ms;
	bool forever;
	bool reset;
	bool delayed, released;
	char text[FP_MAX_LINE];      /* the hang rule */
};

static bool func_matches(const struct rule *r, int func)
{
	return r->func == func || r->func == FP_ANY;
}

/*
 * The lookups below call the real module too, so they hold fp_calls shared like
 * any forwarded call: SoftHSM crashes when C_GetSessionInfo runs while another
 * thread's reset closes that session (seen in the soak test).
 */
static bool slot_of(enum fp_scope kind, CK_ULONG scope, CK_SLOT_ID *slot)
{
	CK_SESSION_INFO si;
	CK_RV rv = CKR_FUNCTION_NOT_SUPPORTED;

	if (kind == FP_SLOT) {
		*slot = scope;
		return true;
	}
	if (kind != FP_SESSION || fp_real->C_GetSessionInfo == NULL)
		return false;
	pthread_rwlock_rdlock(&fp_calls);
	rv = fp_real->C_GetSessionInfo(scope, &si);
	pthread_rwlock_unlock(&fp_calls);
	if (rv != CKR_OK)
		return false;
	*slot = si.slotID;
	return true;
}

static bool token_of(CK_SLOT_ID slot, char label[33])
{
	CK_TOKEN_INFO ti;
	size_t n = sizeof(ti.label);
	CK_RV rv;

	if (fp_real->C_GetTokenInfo == NULL)
		return false;
	pthread_rwlock_rdlock(&fp_calls);
	rv = fp_real->C_GetTokenInfo(slot, &ti);
	pthread_rwlock_unlock(&fp_calls);
	if (rv != CKR_OK)
		return false;
	while (n > 0 && (ti.label[n - 1] == ' ' || ti.label[n - 1] == '\0'))
		n--;
	memcpy(label, ti.label, n);
	label[n] = '\0';
	return true;
}

static void decide(int func, enum fp_scope kind, CK_ULONG scope, struct fp_decision *d)
{
	bool need_slot = false, need_token = false, any = false;
	bool have_slot = false, have_token = false;
	CK_SLOT_ID slot = 0;
	char label[33] = "";
	struct rule *chosen = NULL;

	memset(d, 0, offsetof(struct fp_decision, text));
	d->text[0] = '\0';
	if (!sync_rules())
		return;
	pthread_mutex_lock(&fp_lock);
	for (size_t i = 0; i < fp_nrules_locked; i++) {
		const struct rule *r = &fp_rules[i];

		if (!func_matches(r, func))
			continue;
		any = true;
		need_slot |= r->has_slot || r->has_token;
		need_token |= r->has_token;
	}
	pthread_mutex_unlock(&fp_lock);
	if (!any)
		return;
	/* The real module answers these without our lock held. */
	if (need_slot && fp_real != NULL && slot_of(kind, scope, &slot)) {
		have_slot = true;
		if (need_token)
			have_token = token_of(slot, label);
	}
	pthread_mutex_lock(&fp_lock);
	for (size_t i = 0; i < fp_nrules_locked; i++) {
		struct rule *r = &fp_rules[i];

		if (!func_matches(r, func) || r->count == 0)
			continue;
		if (r->has_slot && !(have_slot && slot == r->slot))
			continue;
		if (r->has_token && !(have_token && strcmp(label, r->token) == 0))
			continue;
		/* Every rule that matches counts the call, whichever rule applies. */
		if (r->seen < ULLONG_MAX)
			r->seen++;
		if (r->seen <= r->after || chosen != NULL)
			continue;
		if (r->prob < FP_PROB_ALWAYS && rng32() >= r->prob)
			continue;
		chosen = r;
		if (r->count > 0)
			r->count--;
	}
	if (chosen != NULL) {
		d->delay_ms = chosen->delay_ms;
		d->reset = chosen->reset;
		if (chosen->hang) {
			d->what = FP_HANG;
			d->forever = chosen->forever;
			memcpy(d->text, chosen->text, sizeof(d->text));
		} else if (chosen->has_rv) {
			d->what = FP_INJECT;
			d->rv = chosen->rv;
		}
	}
	pthread_mutex_unlock(&fp_lock);
}

/* True while the control file still holds the rule a call hangs on. */
static bool hang_rule_present(const char *text)
{
	bool present = false;

	sync_rules();
	pthread_mutex_lock(&fp_lock);
	for (size_t i = 0; i < fp_nrules_locked && !present; i++)
		present = fp_rules[i].hang && strcmp(fp_rules[i].text, text) == 0;
	pthread_mutex_unlock(&fp_lock);
	return present;
}

/*
 * An HSM that restarted: every session of the call's slot (of all slots when the
 * call names none) is closed in the real module, which logs the user out.
 */
static void reset_sessions(enum fp_scope kind, CK_ULONG scope)
{
	CK_SLOT_ID slot, slots[64];
	CK_ULONG n = sizeof(slots) / sizeof(slots[0]);

	if (fp_real->C_CloseAllSessions == NULL)
		return;
	if (slot_of(kind, scope, &slot)) {
		pthread_rwlock_wrlock(&fp_calls);
		fp_real->C_CloseAllSessions(slot);
		pthread_rwlock_unlock(&fp_calls);
		return;
	}
	if (fp_real->C_GetSlotList == NULL)
		return;
	pthread_rwlock_wrlock(&fp_calls);
	if (fp_real->C_GetSlotList(CK_FALSE, slots, &n) != CKR_OK)
		n = 0;
	for (CK_ULONG i = 0; i < n; i++)
		fp_real->C_CloseAllSessions(slots[i]);
	pthread_rwlock_unlock(&fp_calls);
}

/* Decides, then sleeps, resets or hangs as told; afterwards d says whether to inject an rv. */
static void before(int func, enum fp_scope kind, CK_ULONG scope, struct fp_decision *d)
{
	decide(func, kind, scope, d);
	if (d->delay_ms > 0) {
		sleep_ms(d->delay_ms);
		d->delayed = true;
	}
	if (d->reset)
		reset_sessions(kind, scope);
	if (d->what == FP_HANG) {
		if (d->forever)
			for (;;)
				sleep_ms(1000);
		while (hang_rule_present(d->text))
			sleep_ms(FP_HANG_POLL_MS);
		d->what = FP_FORWARD;
		d->released = true;
	}
}

static CK_RV after(int func, const struct fp_decision *d, CK_RV rv)
{
	char line[160], num[24];
	const char *name, *how;
	int n;

	if (fp_log_fd < 0)
		return rv;
	name = ckr_name(rv);
	if (name == NULL) {
		snprintf(num, sizeof(num), "0x%lx", (unsigned long)rv);
		name = num;
	}
	how = d->what == FP_INJECT ? "injected" : d->reset ? "reset" : d->released ? "released" :
	      d->delayed ? "delayed" : "forwarded";
	n = snprintf(line, sizeof(line), "%s %s %s\n", fp_names[func], name, how);
	if (n > 0 && (size_t)n < sizeof(line)) {
		ssize_t w;

		do
			w = write(fp_log_fd, line, (size_t)n);
		while (w < 0 && errno == EINTR);
	}
	return rv;
}

/*
 * A copy of this module may name its own real module: the first line of the
 * file "<this module's path>.module". Two copies over two copies of SoftHSM
 * are two independent HSMs in one process (tests of several [hsm] sections).
 */
static int own_target(char *out, size_t len)
{
	char path[PATH_MAX];
	Dl_info info;
	FILE *f;
	int ok = 0;

	if (dladdr((void *)own_target, &info) == 0 || info.dli_fname == NULL ||
	    snprintf(path, sizeof(path), "%s.module", info.dli_fname) >= (int)sizeof(path))
		return 0;
	f = fopen(path, "re");
	if (f == NULL)
		return 0;
	if (fgets(out, (int)len, f) != NULL) {
		out[strcspn(out, "\r\n")] = '\0';
		ok = out[0] != '\0';
	}
	fclose(f);
	return ok;
}

/* ---- the wrappers and the function list ---- */

#define FP_WRAPPER(name, params, args, kind, scope, flags)                                     \
	static CK_RV fp_##name params                                                          \
	{                                                                                      \
		struct fp_decision d;                                                          \
		CK_RV rv;                                                                      \
                                                                                               \
		before(FP_##name, kind, (CK_ULONG)(scope), &d);                                \
		if (d.what == FP_INJECT &&                                                     \
		    ((flags) != FP_COMPLETE || d.rv == CKR_BUFFER_TOO_SMALL))                  \
			return after(FP_##name, &d, d.rv);                                    \
		pthread_rwlock_rdlock(&fp_calls);                                              \
		rv = fp_real->name != NULL ? fp_real->name args : CKR_FUNCTION_NOT_SUPPORTED; \
		pthread_rwlock_unlock(&fp_calls);                                              \
		return after(FP_##name, &d, d.what == FP_INJECT ? d.rv : rv);                  \
	}
FP_FUNCTIONS(FP_WRAPPER)
#undef FP_WRAPPER

static CK_FUNCTION_LIST fp_list = {
	.version = { CRYPTOKI_VERSION_MAJOR, CRYPTOKI_VERSION_MINOR },
#define FP_ENTRY(name, params, args, kind, scope, flags) .name = fp_##name,
	FP_FUNCTIONS(FP_ENTRY)
#undef FP_ENTRY
	.C_GetFunctionList = C_GetFunctionList,
};

static CK_RV load_real(void)
{
	CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR);
	CK_FUNCTION_LIST_PTR list = NULL;
	const char *module, *control, *log, *seed;
	char target[PATH_MAX];
	void *handle;
	CK_RV rv;

	pthread_mutex_lock(&fp_load_lock);
	if (fp_real != NULL) {
		pthread_mutex_unlock(&fp_load_lock);
		return CKR_OK;
	}
	module = own_target(target, sizeof(target)) ? target : getenv("FAULTP11_MODULE");
	if (module == NULL || *module == '\0')
		module = FP_DEFAULT_MODULE;
	handle = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (handle == NULL) {
		fprintf(stderr, "faultp11: cannot load %s: %s\n", module, dlerror());
		pthread_mutex_unlock(&fp_load_lock);
		return CKR_GENERAL_ERROR;
	}
	*(void **)&get = dlsym(handle, "C_GetFunctionList");
	if (get == NULL || (rv = get(&list)) != CKR_OK || list == NULL) {
		fprintf(stderr, "faultp11: %s: no function list\n", module);
		dlclose(handle);
		pthread_mutex_unlock(&fp_load_lock);
		return CKR_GENERAL_ERROR;
	}
	control = getenv("FAULTP11_CONTROL");
	fp_control = control != NULL && *control != '\0' ? strdup(control) : NULL;
	log = getenv("FAULTP11_LOG");
	if (log != NULL && *log != '\0') {
		fp_log_fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
		if (fp_log_fd < 0)
			fprintf(stderr, "faultp11: cannot open the call log %s\n", log);
	}
	seed = getenv("FAULTP11_SEED");
	pthread_mutex_lock(&fp_lock);
	fp_rng = seed != NULL && *seed != '\0' ? strtoull(seed, NULL, 0)
					       : (uint64_t)now_ns(CLOCK_MONOTONIC) ^ (uint64_t)getpid();
	fp_rng = mix(fp_rng, 1);
	if (fp_rng == 0)
		fp_rng = 1;
	pthread_mutex_unlock(&fp_lock);
	fp_list.version = list->version;
	fp_handle = handle;
	fp_real = list;
	pthread_mutex_unlock(&fp_load_lock);
	return CKR_OK;
}

__attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	struct fp_decision d;
	CK_RV rv = load_real();

	if (rv != CKR_OK)
		return rv;
	before(FP_C_GetFunctionList, FP_NONE, 0, &d);
	if (d.what == FP_INJECT)
		return after(FP_C_GetFunctionList, &d, d.rv);
	if (list == NULL)
		return after(FP_C_GetFunctionList, &d, CKR_ARGUMENTS_BAD);
	*list = &fp_list;
	return after(FP_C_GetFunctionList, &d, CKR_OK);
}

__attribute__((destructor)) static void fp_unload(void)
{
	if (fp_handle != NULL)
		dlclose(fp_handle);
	fp_handle = NULL;
	fp_real = NULL;
	if (fp_log_fd >= 0)
		close(fp_log_fd);
	fp_log_fd = -1;
	free(fp_control);
	fp_control = NULL;
	free(fp_rules);
	fp_rules = NULL;
	fp_nrules_locked = 0;
}
