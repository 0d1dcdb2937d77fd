/* Test helpers: read the known-answer vector files and keys in $KT_VECTORS. */
#ifndef KT_TEST_VECTORS_H
#define KT_TEST_VECTORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/evp.h>

#define VLINE_FIELDS 8

struct vline {
	int n;                      /* fields on the line */
	char *f[VLINE_FIELDS];
	char buf[16384];
};

/* Opens $KT_VECTORS/name (fails the test if it cannot). */
FILE *vectors_open(const char *name);
/* Next non-empty line split on white space; 0 at the end. */
int vectors_next(FILE *fp, struct vline *l);
/* Whole file $KT_VECTORS/rel, malloc'd. */
uint8_t *vectors_file(const char *rel, size_t *len);
/* keys/NAME.pem (private) or keys/NAME.pub.pem (public). */
EVP_PKEY *vectors_private_key(const char *name);
EVP_PKEY *vectors_public_key(const char *name);
/* Hex field ("-" is empty) into out; returns the length, fails the test on bad hex. */
size_t vectors_unhex(const char *hex, uint8_t *out, size_t cap);
/* Raw RSA private operation in software (what the HSM does with CKM_RSA_X_509). */
void vectors_rsa_raw(EVP_PKEY *priv, const uint8_t *c, size_t k, uint8_t *em);
/*
 * OpenSSL's own RSAES-OAEP decryption with md for the hash and for MGF1 and
 * an empty label: an implementation independent of daemon/formats/oaep.c.
 * The message length, or -1 when OpenSSL refuses the ciphertext.
 */
long vectors_oaep_decrypt(EVP_PKEY *priv, const EVP_MD *md, const uint8_t *c, size_t k,
			  uint8_t *out, size_t cap);

#endif
