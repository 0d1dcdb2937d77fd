/*
 * fuzz_publickeyblob: publickeyblob_decode, then publickeyblob_encode of the
 * key it made.
 *
 * Invariants: an accepted blob has the header the format requires, at least
 * 20 + bitlen/8 bytes and an odd modulus; the key's numbers are the blob's; re-encoding
 * reproduces the blob's canonical prefix (its first 20 + bitlen/8 bytes,
 * with aiKeyAlg CALG_RSA_KEYX, which is what the daemon exports) whenever the
 * modulus fills bitlen, and decoding the re-encoding gives the same key.
 * A refused blob leaves no key behind and says why.
 */
#include <string.h>

#include "alg.h"
#include "fuzz.h"
#include "keytrans_status.h"
#include "publickeyblob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t n[RSA_MAX_BYTES], out[PUBLICKEYBLOB_MAX], *blob = fuzz_dup(data, size);
	EVP_PKEY *pub = NULL, *again = NULL;
	size_t k, mod_len, len, top;
	uint32_t bitlen, exp;
	char why[256] = "";
	uint64_t e;
	int st;

	st = publickeyblob_decode(blob, size, &pub, why, sizeof(why));
	if (st != KT_OK) {
		FUZZ_CHECK(st == KT_BAD_PUBLIC_KEY && pub == NULL);
		FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));
		goto done;
	}
	FUZZ_CHECK(pub != NULL);
	/* What was accepted. */
	FUZZ_CHECK(size >= PUBLICKEYBLOB_HDR);
	FUZZ_CHECK(data[0] == PUBLICKEYBLOB_TYPE && data[1] == 0x02 && data[2] == 0 && data[3] == 0);
	FUZZ_CHECK(fuzz_le32(data + 4) == CALG_RSA_KEYX || fuzz_le32(data + 4) == CALG_RSA_SIGN);
	FUZZ_CHECK(memcmp(data + 8, "RSA1", 4) == 0);
	bitlen = fuzz_le32(data + 12);
	exp = fuzz_le32(data + 16);
	FUZZ_CHECK(bitlen > 0 && bitlen % 8 == 0 && bitlen <= RSA_MAX_BITS);
	FUZZ_CHECK((exp & 1) == 1 && exp != 1);
	mod_len = bitlen / 8;
	FUZZ_CHECK(size >= PUBLICKEYBLOB_HDR + mod_len);
	/* The key's numbers are the blob's (little-endian modulus, leading zeros dropped). */
	top = mod_len;
	while (top > 0 && data[PUBLICKEYBLOB_HDR + top - 1] == 0)
		top--;
	FUZZ_CHECK(top > 0 && (data[PUBLICKEYBLOB_HDR] & 1) == 1);   /* an RSA modulus is odd */
	FUZZ_CHECK(rsa_pub_numbers(pub, n, &k, &e) == 0);
	FUZZ_CHECK(k == top && e == exp);
	for (size_t i = 0; i < k; i++)
		FUZZ_CHECK(n[i] == data[PUBLICKEYBLOB_HDR + k - 1 - i]);
	/* Re-encoding: the canonical prefix when the modulus fills bitlen. */
	len = publickeyblob_encode(pub, out, sizeof(out));
	FUZZ_CHECK(len == PUBLICKEYBLOB_HDR + k);
	FUZZ_CHECK(fuzz_le32(out + 4) == CALG_RSA_KEYX && fuzz_le32(out + 12) == k * 8);
	FUZZ_CHECK(memcmp(out + PUBLICKEYBLOB_HDR, data + PUBLICKEYBLOB_HDR, k) == 0);
	if (k == mod_len) {
		FUZZ_CHECK(memcmp(out, data, 4) == 0 && memcmp(out + 8, data + 8, len - 8) == 0);
	}
	/* And back. */
	FUZZ_CHECK(publickeyblob_decode(out, len, &again, why, sizeof(why)) == KT_OK);
	FUZZ_CHECK(EVP_PKEY_eq(pub, again) == 1);
	/* A buffer one byte short is refused, not overrun. */
	FUZZ_CHECK(publickeyblob_encode(pub, out, len - 1) == 0);
done:
	EVP_PKEY_free(again);
	EVP_PKEY_free(pub);
	free(blob);
	return 0;
}
