#include "pubkey_der.h"

#include <string.h>

#include "buf.h"
#include "der.h"

/* 1.2.840.113549.1.1.1, rsaEncryption (RFC 8017 A.1). */
static const uint8_t rsa_encryption[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };

static int skip(struct buf_reader *r, uint8_t tag)
{
	struct buf_reader c;

	return der_get(r, tag, &c);
}

/* RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }, all of r. */
static int rsa_public_key(struct buf_reader *r, struct rsa_pub_ref *out)
{
	struct buf_reader seq;

	if (der_get(r, DER_SEQUENCE, &seq) != 0 || buf_expect_end(r) != 0 ||
	    der_positive(&seq, &out->n, &out->n_len) != 0 ||
	    der_positive(&seq, &out->e, &out->e_len) != 0)
		return -1;
	return buf_expect_end(&seq);
}

/* AlgorithmIdentifier { rsaEncryption, NULL or absent } (RFC 3279 2.3.1; some omit the NULL). */
static int rsa_algorithm(struct buf_reader *r)
{
	struct buf_reader alg, oid, params;
	const uint8_t *o;

	if (der_get(r, DER_SEQUENCE, &alg) != 0 || der_get(&alg, DER_OID, &oid) != 0 ||
	    buf_left(&oid) != sizeof(rsa_encryption) ||
	    buf_get_ptr(&oid, &o, sizeof(rsa_encryption)) != 0 ||
	    memcmp(o, rsa_encryption, sizeof(rsa_encryption)) != 0)
		return -1;
	if (buf_left(&alg) > 0 && (der_get(&alg, DER_NULL, &params) != 0 || buf_left(&params) != 0))
		return -1;
	return buf_expect_end(&alg);
}

/* The contents of SubjectPublicKeyInfo ::= SEQUENCE { algorithm, BIT STRING { RSAPublicKey } }. */
static int spki_contents(struct buf_reader *seq, struct rsa_pub_ref *out)
{
	struct buf_reader bits;
	uint8_t unused;

	if (rsa_algorithm(seq) != 0 || der_get(seq, DER_BIT_STRING, &bits) != 0 ||
	    buf_expect_end(seq) != 0 || buf_get_u8(&bits, &unused) != 0 || unused != 0)
		return -1;
	return rsa_public_key(&bits, out);
}

static int spki(struct buf_reader *r, struct rsa_pub_ref *out)
{
	struct buf_reader seq;

	if (der_get(r, DER_SEQUENCE, &seq) != 0 || buf_expect_end(r) != 0)
		return -1;
	return spki_contents(&seq, out);
}

/*
 * TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature,
 * issuer, validity, subject, subjectPublicKeyInfo, ... }: each field before the
 * key only framed, those after it (unique ids, extensions) not even that.
 */
static int tbs_key(struct buf_reader *tbs, struct rsa_pub_ref *out)
{
	struct buf_reader key;
	uint8_t tag;

	if (der_peek(tbs, &tag) == 0 && tag == DER_CONTEXT_0 && skip(tbs, DER_CONTEXT_0) != 0)
		return -1;
	if (skip(tbs, DER_INTEGER) != 0 || skip(tbs, DER_SEQUENCE) != 0 ||
	    skip(tbs, DER_SEQUENCE) != 0 || skip(tbs, DER_SEQUENCE) != 0 ||
	    skip(tbs, DER_SEQUENCE) != 0 || der_get(tbs, DER_SEQUENCE, &key) != 0)
		return -1;
	return spki_contents(&key, out);
}

/* Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }. */
static int certificate(struct buf_reader *r, struct rsa_pub_ref *out)
{
	struct buf_reader cert, tbs;

	if (der_get(r, DER_SEQUENCE, &cert) != 0 || buf_expect_end(r) != 0 ||
	    der_get(&cert, DER_SEQUENCE, &tbs) != 0 || skip(&cert, DER_SEQUENCE) != 0 ||
	    skip(&cert, DER_BIT_STRING) != 0 || buf_expect_end(&cert) != 0)
		return -1;
	return tbs_key(&tbs, out);
}

static int parse_as(const uint8_t *p, size_t len, enum pubkey_form form, struct rsa_pub_ref *out)
{
	struct buf_reader r;

	buf_reader_init(&r, p, len);
	switch (form) {
	case PUBKEY_SPKI:
		return spki(&r, out);
	case PUBKEY_RSA:
		return rsa_public_key(&r, out);
	case PUBKEY_CERT:
		return certificate(&r, out);
	case PUBKEY_ANY:
		break;
	}
	return -1;
}

int pubkey_der_parse(const uint8_t *p, size_t len, enum pubkey_form form, struct rsa_pub_ref *out)
{
	static const enum pubkey_form each[] = { PUBKEY_SPKI, PUBKEY_RSA, PUBKEY_CERT };

	if (form != PUBKEY_ANY)
		return parse_as(p, len, form, out) == 0 ? (int)form : -1;
	/* Each fails within its first few elements when the input is another. */
	for (size_t i = 0; i < sizeof(each) / sizeof(each[0]); i++)
		if (parse_as(p, len, each[i], out) == 0)
			return (int)each[i];
	return -1;
}
