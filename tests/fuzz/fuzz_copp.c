/*
 * fuzz_copp: the COPP inputs of copp-open. The first 256 bytes of the input
 * (zero-filled when shorter) are taken as a signature from the request
 * (copp_ciphertext against rsa2048's modulus) and as the raw RSA result the
 * HSM returns for one (pkcs1_unpad with (40, 40), copp_parse); the first 40
 * bytes also as a message for the copp_message / copp_parse round trip.
 *
 * Invariants: the ciphertext is the reversed signature and is accepted
 * exactly when below the modulus; the decoder agrees with a plain PKCS#1
 * v1.5 decoder and returns 40 bytes either way; the fields copp_parse reads
 * are those of formats.md (S = M reversed: random | AES key | status seq |
 * command seq, little-endian), and copp_message inverts copp_parse.
 */
#include <string.h>

#include "copp.h"
#include "fuzz.h"
#include "keytrans_status.h"
#include "pkcs1.h"

/* Plain PKCS#1 v1.5 type 2 decoding for exactly 40 bytes. */
static int ref_pkcs1_40(const uint8_t *em, uint8_t *m)
{
	size_t i = 2;

	if (em[0] != 0x00 || em[1] != 0x02)
		return 0;
	while (i < COPP_SIG_LEN && em[i] != 0x00)
		i++;
	if (i == COPP_SIG_LEN || i < 10 || COPP_SIG_LEN - i - 1 != COPP_MSG_LEN)
		return 0;
	memcpy(m, em + i + 1, COPP_MSG_LEN);
	return 1;
}

/* copp_parse against formats.md, and copp_message as its inverse. */
static void check_message(const uint8_t m[COPP_MSG_LEN])
{
	uint8_t s[COPP_MSG_LEN], back[COPP_MSG_LEN];
	struct copp_params p, q;

	for (size_t i = 0; i < COPP_MSG_LEN; i++)
		s[i] = m[COPP_MSG_LEN - 1 - i];
	copp_parse(m, &p);
	FUZZ_CHECK(memcmp(p.random, s, COPP_RANDOM_LEN) == 0);
	FUZZ_CHECK(memcmp(p.aes_key, s + COPP_RANDOM_LEN, COPP_AES_LEN) == 0);
	FUZZ_CHECK(p.status_seq == fuzz_le32(s + 32) && p.command_seq == fuzz_le32(s + 36));
	copp_message(&p, back);
	FUZZ_CHECK(memcmp(back, m, COPP_MSG_LEN) == 0);
	copp_parse(back, &q);
	FUZZ_CHECK(memcmp(&p, &q, sizeof(p)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_key *rsa2048 = &fuzz_keys()[1];
	uint8_t *sig = calloc(1, COPP_SIG_LEN), c[COPP_SIG_LEN], ref[COPP_MSG_LEN];
	struct unpadded out;
	char why[256] = "";
	int st, good;

	FUZZ_CHECK(sig != NULL && rsa2048->k == COPP_SIG_LEN);
	memcpy(sig, data, size < COPP_SIG_LEN ? size : COPP_SIG_LEN);

	/* The signature as the request carries it. */
	st = copp_ciphertext(sig, rsa2048->n, c, why, sizeof(why));
	for (size_t i = 0; i < COPP_SIG_LEN; i++)
		FUZZ_CHECK(c[i] == sig[COPP_SIG_LEN - 1 - i]);
	FUZZ_CHECK(st == (memcmp(c, rsa2048->n, COPP_SIG_LEN) < 0 ? KT_OK : KT_BLOB_RANGE));
	if (st != KT_OK)
		FUZZ_CHECK(why[0] != '\0' && strlen(why) < sizeof(why));

	/* The same bytes as the HSM's raw result. */
	FUZZ_CHECK(pkcs1_unpad(sig, COPP_SIG_LEN, COPP_MSG_LEN, COPP_MSG_LEN, &out) == 0);
	good = ref_pkcs1_40(sig, ref);
	FUZZ_CHECK(out.good == 0u || out.good == ~0u);
	FUZZ_CHECK(!!out.good == good && out.len == COPP_MSG_LEN);
	if (good) {
		FUZZ_CHECK(memcmp(out.msg, ref, COPP_MSG_LEN) == 0);
		check_message(out.msg);
	}
	/* The first 40 bytes as a message. */
	check_message(sig);
	free(sig);
	return 0;
}
