/*
 * Status codes: the one list shared by the daemon, the wire protocol and the
 * client library (installed with keytrans.h). Codes >= 0 travel in the status
 * field of a response frame; codes < 0 are produced locally by libkeytrans.
 * docs/protocol.md describes each one; keep the two in step.
 */
#ifndef KEYTRANS_STATUS_H
#define KEYTRANS_STATUS_H

/* X(NAME, code, description) */
#define KT_STATUS_LIST(X) \
	X(OK,               0,  "success") \
	X(BAD_FRAME,        1,  "malformed frame header") \
	X(FRAME_TOO_LARGE,  2,  "frame larger than the protocol maximum") \
	X(BAD_VERSION,      3,  "unsupported protocol version") \
	X(UNKNOWN_OP,       4,  "unknown operation") \
	X(BAD_REQUEST,      5,  "missing, duplicate, unknown or malformed field") \
	X(UNKNOWN_KEY,      6,  "no key of that name") \
	X(BLOB_TYPE,        7,  "blob has the wrong bType") \
	X(BLOB_VERSION,     8,  "blob has the wrong bVersion") \
	X(BLOB_RESERVED,    9,  "blob reserved field is not zero") \
	X(BLOB_WRAP_ALG,    10, "SIMPLEBLOB wrapping algorithm is not CALG_RSA_KEYX") \
	X(BLOB_ALG,         11, "unknown or unsupported session key ALG_ID") \
	X(BLOB_LENGTH,      12, "blob length does not match the key") \
	X(BLOB_RANGE,       13, "ciphertext is not below the modulus") \
	X(UNWRAP_FAILED,    14, "decryption failed") \
	X(KEY_LENGTH,       15, "session key length not allowed for the ALG_ID") \
	X(BAD_PUBLIC_KEY,   16, "public key could not be parsed or is not RSA") \
	X(KEY_SIZE,         17, "RSA key size not usable for this operation") \
	X(RANDOM_MISMATCH,  18, "COPP random number differs from the expected one") \
	X(HSM_ERROR,        19, "the HSM failed the operation") \
	X(BUSY,             20, "daemon overloaded, try again") \
	X(INTERNAL,         21, "internal error in the daemon") \
	X(SHUTTING_DOWN,    22, "daemon is shutting down") \
	X(DENIED,           23, "not allowed for this peer") \
	X(TIMEOUT,          24, "request not served in time") \
	X(HSM_UNAVAILABLE,  25, "no HSM in service; try again later") \
	X(NOT_SUPPORTED,    26, "the HSM does not support this operation") \
	X(OMAC_MISMATCH,    27, "the OMAC does not match the data") \
	X(UNKNOWN_SESSION,  28, "no such session (closed, expired, or not this user's)") \
	X(BAD_SEQUENCE,     29, "sequence number replayed or skipped") \
	X(SESSION_LIMIT,    30, "too many open sessions")

/* X(NAME, code, description): errors raised by libkeytrans itself. */
#define KT_LOCAL_STATUS_LIST(X) \
	X(ERR_CONNECT,      -1, "daemon unreachable") \
	X(ERR_IO,           -2, "connection to the daemon failed") \
	X(ERR_PROTOCOL,     -3, "malformed response from the daemon") \
	X(ERR_ARG,          -4, "invalid argument") \
	X(ERR_NOMEM,        -5, "out of memory") \
	X(ERR_TIMEOUT,      -6, "no response in time")

enum kt_status {
#define KT_STATUS_ENUM(name, code, desc) KT_##name = (code),
	KT_STATUS_LIST(KT_STATUS_ENUM)
	KT_LOCAL_STATUS_LIST(KT_STATUS_ENUM)
#undef KT_STATUS_ENUM
};

#endif
