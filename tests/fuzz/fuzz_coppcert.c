/*
 * fuzz_coppcert: kt_copp_cert_key, libkeytrans' reading of a COPP driver's
 * XML certificate chain (libxml2, then base64) into a PUBLICKEYBLOB for
 * copp-sign.
 *
 * Invariants: the answer is one of the documented statuses with a message;
 * an accepted chain gives a PUBLICKEYBLOB of a 2048-bit key (top bit set)
 * that the daemon's own key-file reader takes as 2048 bits, or refuses only
 * for what it checks beyond the chain reader (even modulus or exponent); the
 * same input gives the same answer twice.
 */
#include <string.h>

#include "fuzz.h"
#include "keyfile.h"
#include "keytrans.h"

static void check_blob(const uint8_t blob[KT_COPP_KEY_BLOB_LEN])
{
	static const uint8_t head[16] = { 0x06, 0x02, 0, 0, 0x00, 0xa4, 0, 0, 'R', 'S', 'A', '1',
					  0x00, 0x08, 0, 0 };
	EVP_PKEY *pub = NULL;
	char why[256];
	int st;

	FUZZ_CHECK(memcmp(blob, head, sizeof(head)) == 0);
	FUZZ_CHECK((blob[KT_COPP_KEY_BLOB_LEN - 1] & 0x80) != 0);
	st = keyfile_parse(blob, KT_COPP_KEY_BLOB_LEN, &pub, why, sizeof(why));
	FUZZ_CHECK(st == KT_OK || st == KT_BAD_PUBLIC_KEY);
	if (st == KT_OK)
		FUZZ_CHECK(EVP_PKEY_get_bits(pub) == 2048);
	EVP_PKEY_free(pub);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *in = fuzz_dup(data, size), blob[KT_COPP_KEY_BLOB_LEN], again[KT_COPP_KEY_BLOB_LEN];
	char why[300] = "", why2[300] = "";
	int st = kt_copp_cert_key(in, size, blob, why, sizeof(why));

	FUZZ_CHECK(st == KT_OK || st == KT_BAD_PUBLIC_KEY || st == KT_KEY_SIZE || st == KT_ERR_NOMEM);
	FUZZ_CHECK(kt_copp_cert_key(in, size, again, why2, sizeof(why2)) == st);
	if (st == KT_OK) {
		check_blob(blob);
		FUZZ_CHECK(memcmp(blob, again, sizeof(blob)) == 0);
	} else {
		FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why) && strcmp(why, why2) == 0);
		FUZZ_CHECK(st != KT_KEY_SIZE || strncmp(why, "leaf certificate's key is ", 26) == 0);
	}
	free(in);
	return 0;
}
