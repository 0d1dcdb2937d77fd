/*
 * fuzz_keyfile: keyfile_parse, the recipient-key detection behind wrap and
 * copp-sign --to: PUBLICKEYBLOB, PEM or DER SubjectPublicKeyInfo, PKCS#1
 * RSAPublicKey, PEM or DER X.509 certificate.
 *
 * Invariants: an accepted input gives an RSA key of RSA_MIN_BITS to
 * RSA_MAX_BITS with an odd modulus; each form the daemon itself exports of that key (DER and PEM
 * SubjectPublicKeyInfo, PUBLICKEYBLOB) parses back to the same key; a refused
 * input leaves no key and says why, with one of the two documented statuses.
 *
 * Cross-check: keyfile_parse reads the common forms itself (keyfile_numbers:
 * pubkey_der.c, pem.c) and leaves the rest to OpenSSL's decoders. Against the
 * decoders alone (keyfile_parse_openssl) it must give the same status, the
 * same sentence and the same key, with one exception: of a certificate the
 * quick reading frames only what precedes the key, so it may take one whose
 * later parts (extensions, names, signature) the decoders refuse.
 */
#include <string.h>

#include "fuzz.h"
#include "keyfile.h"
#include "keytrans_status.h"
#include "publickeyblob.h"

#define SPKI_MAX 8192

static void check_back(EVP_PKEY *pub, const uint8_t *enc, size_t len)
{
	uint8_t *copy = fuzz_dup(enc, len);
	EVP_PKEY *again = NULL;
	char why[256];

	FUZZ_CHECK(len > 0);
	FUZZ_CHECK(keyfile_parse(copy, len, &again, why, sizeof(why)) == KT_OK);
	FUZZ_CHECK(EVP_PKEY_eq(pub, again) == 1);
	EVP_PKEY_free(again);
	free(copy);
}

static void cross_check(const uint8_t *in, size_t size, int st, EVP_PKEY *pub, const char *why)
{
	struct keyfile_numbers num;
	EVP_PKEY *ref = NULL;
	char why_ref[256] = "";
	int st_ref = keyfile_parse_openssl(in, size, &ref, why_ref, sizeof(why_ref));
	int quick = keyfile_numbers(in, size, &num) == 0;

	if (quick && num.form == PUBKEY_CERT && st_ref != KT_OK) {
		/* A certificate the decoders refuse for what the quick reading does not look at. */
	} else if (st_ref == KT_OK) {
		FUZZ_CHECK(st == KT_OK && EVP_PKEY_eq(pub, ref) == 1);
	} else {
		FUZZ_CHECK(st == st_ref && strcmp(why, why_ref) == 0);
	}
	EVP_PKEY_free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *in = fuzz_dup(data, size), n[RSA_MAX_BYTES], *enc;
	EVP_PKEY *pub = NULL;
	char why[256] = "";
	uint64_t e;
	size_t k, len;
	int st;

	st = keyfile_parse(in, size, &pub, why, sizeof(why));
	cross_check(in, size, st, pub, why);
	if (st != KT_OK) {
		FUZZ_CHECK((st == KT_BAD_PUBLIC_KEY || st == KT_KEY_SIZE) && pub == NULL);
		FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
		free(in);
		return 0;
	}
	FUZZ_CHECK(pub != NULL && EVP_PKEY_is_a(pub, "RSA"));
	FUZZ_CHECK(rsa_pub_numbers(pub, n, &k, &e) == 0);
	FUZZ_CHECK(k * 8 >= RSA_MIN_BITS && k <= RSA_MAX_BYTES && (n[k - 1] & 1) == 1);
	enc = malloc(SPKI_MAX);
	FUZZ_CHECK(enc != NULL);
	check_back(pub, enc, rsa_pub_spki(pub, 0, enc, SPKI_MAX));
	check_back(pub, enc, rsa_pub_spki(pub, 1, enc, SPKI_MAX));
	/* A PUBLICKEYBLOB holds an odd 32-bit exponent other than 1. */
	len = publickeyblob_encode(pub, enc, SPKI_MAX);
	FUZZ_CHECK((len != 0) == (e <= UINT32_MAX));
	if (len != 0 && (e & 1) == 1 && e != 1)
		check_back(pub, enc, len);
	free(enc);
	EVP_PKEY_free(pub);
	free(in);
	return 0;
}
