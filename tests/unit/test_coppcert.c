/*
 * client/lib/coppcert.c and base64.c: the driver's key from a COPP XML
 * certificate chain (tests/data/copp/, made by make_copp_xml.py from the
 * vector keys), each refusal with its exact message, and an XML prolog that
 * must never be acted on (external entities, entity expansion).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"
#include "keytrans.h"
#include "vectors.h"

#define NOT_COPP "not a COPP certificate collection: "

static uint8_t *fixture(const char *name, size_t *len)
{
	char rel[128];

	snprintf(rel, sizeof(rel), "../data/copp/%s", name);
	return vectors_file(rel, len);
}

/* Runs kt_copp_cert_key on p; checks the status and, unless NULL, the message's start. */
static void expect(const uint8_t *p, size_t len, int st, const char *msg_start,
		   uint8_t blob[KT_COPP_KEY_BLOB_LEN])
{
	uint8_t local[KT_COPP_KEY_BLOB_LEN];
	char err[300] = "";
	int got = kt_copp_cert_key(p, len, blob != NULL ? blob : local, err, sizeof(err));

	if (got != st || (msg_start != NULL && strncmp(err, msg_start, strlen(msg_start)) != 0))
		fail_msg("status %d (want %d), message \"%s\" (want \"%s...\")", got, st, err,
			 msg_start != NULL ? msg_start : "");
}

static void expect_file(const char *name, int st, const char *msg_start)
{
	size_t len;
	uint8_t *p = fixture(name, &len);

	expect(p, len, st, msg_start, NULL);
	free(p);
}

static void expect_text(const char *xml, int st, const char *msg_start)
{
	expect((const uint8_t *)xml, strlen(xml), st, msg_start, NULL);
}

/* The leaf's key comes out as the very PUBLICKEYBLOB OpenSSL wrote for the key. */
static void test_leaf_key_is_the_vector_blob(void **state)
{
	const char *const names[] = { "leaf2048.xml", "leaf2048_ns.xml" };
	size_t want_len;
	uint8_t *want = vectors_file("keys/rsa2048.pub.blob", &want_len);

	(void)state;
	assert_int_equal(want_len, KT_COPP_KEY_BLOB_LEN);
	for (size_t i = 0; i < 2; i++) {
		uint8_t blob[KT_COPP_KEY_BLOB_LEN];
		size_t len;
		uint8_t *p = fixture(names[i], &len);

		assert_true(kt_is_xml(p, len));
		expect(p, len, KT_OK, NULL, blob);
		assert_memory_equal(blob, want, KT_COPP_KEY_BLOB_LEN);
		free(p);
	}
	free(want);
}

static void test_refusals_of_the_leaf(void **state)
{
	(void)state;
	expect_file("leaf1024.xml", KT_KEY_SIZE, "leaf certificate's key is 1024-bit; COPP needs 2048");
	expect_file("leaf4096.xml", KT_KEY_SIZE, "leaf certificate's key is 4096-bit; COPP needs 2048");
	expect_file("no_encryptkey.xml", KT_BAD_PUBLIC_KEY, "leaf certificate lacks KeyUsage EncryptKey");
	expect_file("malformed.xml", KT_BAD_PUBLIC_KEY, NOT_COPP "XML error at line ");
}

/* Neither the external entities (file, http) nor the nested ones are ever expanded. */
static void test_dtd_refused(void **state)
{
	(void)state;
	expect_file("xxe.xml", KT_BAD_PUBLIC_KEY, NOT_COPP "a DOCTYPE (DTD) is not allowed");
	expect_file("billion_laughs.xml", KT_BAD_PUBLIC_KEY, NOT_COPP "a DOCTYPE (DTD) is not allowed");
	expect_text("<!DOCTYPE CertificateCollection SYSTEM \"http://127.0.0.1:9/x.dtd\">"
		    "<CertificateCollection/>", KT_BAD_PUBLIC_KEY,
		    NOT_COPP "a DOCTYPE (DTD) is not allowed");
	/* Without a DTD an entity reference is simply undefined. */
	expect_text("<CertificateCollection>&leak;</CertificateCollection>", KT_BAD_PUBLIC_KEY,
		    NOT_COPP "XML error at line 1: ");
}

/* A minimal leaf with the given RSAKeyValue and KeyUsage contents. */
static void leaf_xml(char *out, size_t cap, const char *rsa, const char *usage)
{
	snprintf(out, cap,
		 "<CertificateCollection><Certificate><Data><PublicKey><KeyValue><RSAKeyValue>%s"
		 "</RSAKeyValue></KeyValue></PublicKey><KeyUsage>%s</KeyUsage></Data></Certificate>"
		 "</CertificateCollection>", rsa, usage);
}

/* base64 of a 2048-bit modulus (0xc1 then 255 bytes of 0x01). */
static void modulus_b64(char *out)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint8_t n[258] = { 0xc1 };
	size_t o = 0;

	memset(n + 1, 0x01, 255);
	for (size_t i = 0; i < 256; i += 3) {
		uint32_t v = (uint32_t)n[i] << 16 | (uint32_t)n[i + 1] << 8 | n[i + 2];

		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = i + 1 < 256 ? alphabet[v >> 6 & 63] : '=';
		out[o++] = i + 2 < 256 ? alphabet[v & 63] : '=';
	}
	out[o] = '\0';
}

static void test_structure_refusals(void **state)
{
	char n64[400], rsa[1000], xml[1800];

	(void)state;
	modulus_b64(n64);
	snprintf(rsa, sizeof(rsa), "<Modulus>%s</Modulus><Exponent>AQAB</Exponent>", n64);
	leaf_xml(xml, sizeof(xml), rsa, "<EncryptKey>1</EncryptKey>");
	expect_text(xml, KT_OK, NULL);
	leaf_xml(xml, sizeof(xml), rsa, "<EncryptKey> 1\n</EncryptKey>");
	expect_text(xml, KT_OK, NULL);
	leaf_xml(xml, sizeof(xml), rsa, "<EncryptKey>0</EncryptKey>");
	expect_text(xml, KT_BAD_PUBLIC_KEY, "leaf certificate lacks KeyUsage EncryptKey");
	leaf_xml(xml, sizeof(xml), rsa, "<EncryptKey/>");
	expect_text(xml, KT_BAD_PUBLIC_KEY, "leaf certificate lacks KeyUsage EncryptKey");
	leaf_xml(xml, sizeof(xml), rsa, "<EncryptKey>1</EncryptKey><EncryptKey>1</EncryptKey>");
	expect_text(xml, KT_BAD_PUBLIC_KEY,
		    NOT_COPP "the leaf certificate has more than one Data/KeyUsage/EncryptKey");

	leaf_xml(xml, sizeof(xml), "<Exponent>AQAB</Exponent>", "<EncryptKey>1</EncryptKey>");
	expect_text(xml, KT_BAD_PUBLIC_KEY,
		    NOT_COPP "the leaf certificate has no Data/PublicKey/KeyValue/RSAKeyValue/Modulus");
	snprintf(rsa, sizeof(rsa), "<Modulus>%s</Modulus><Modulus>%s</Modulus><Exponent>AQAB</Exponent>",
		 n64, n64);
	leaf_xml(xml, sizeof(xml), rsa, "<EncryptKey>1</EncryptKey>");
	expect_text(xml, KT_BAD_PUBLIC_KEY, NOT_COPP "the leaf certificate has more than one Data/");
	snprintf(rsa, sizeof(rsa), "<Modulus>%s!</Modulus><Exponent>AQAB</Exponent>", n64);
	leaf_xml(xml, sizeof(xml), rsa, "<EncryptKey>1</EncryptKey>");
	expect_text(xml, KT_BAD_PUBLIC_KEY, NOT_COPP "the leaf's Modulus is not base64");
	snprintf(rsa, sizeof(rsa), "<Modulus><b>%s</b></Modulus><Exponent>AQAB</Exponent>", n64);
	leaf_xml(xml, sizeof(xml), rsa, "<EncryptKey>1</EncryptKey>");
	expect_text(xml, KT_BAD_PUBLIC_KEY, NOT_COPP "the leaf's Modulus is not base64");
	snprintf(rsa, sizeof(rsa), "<Modulus>%s</Modulus><Exponent>AAAAAA==</Exponent>", n64);
	leaf_xml(xml, sizeof(xml), rsa, "<EncryptKey>1</EncryptKey>");
	expect_text(xml, KT_BAD_PUBLIC_KEY, NOT_COPP "the leaf's Exponent is zero");
	snprintf(rsa, sizeof(rsa), "<Modulus>%s</Modulus><Exponent>AQAAAAE=</Exponent>", n64);
	leaf_xml(xml, sizeof(xml), rsa, "<EncryptKey>1</EncryptKey>");
	expect_text(xml, KT_BAD_PUBLIC_KEY, "leaf certificate's public exponent is longer than 32 bits");
	snprintf(rsa, sizeof(rsa), "<Modulus>AQAB</Modulus><Exponent>AQAB</Exponent>");
	leaf_xml(xml, sizeof(xml), rsa, "<EncryptKey>1</EncryptKey>");
	expect_text(xml, KT_KEY_SIZE, "leaf certificate's key is 17-bit; COPP needs 2048");
}

static void test_collection_refusals(void **state)
{
	uint8_t blob[KT_COPP_KEY_BLOB_LEN], *big;
	char err[200];

	(void)state;
	expect_text("<Certificate/>", KT_BAD_PUBLIC_KEY,
		    NOT_COPP "the root element is <Certificate>, not <CertificateCollection>");
	expect_text("<CertificateCollection><Other/></CertificateCollection>", KT_BAD_PUBLIC_KEY,
		    NOT_COPP "it holds no Certificate");
	expect_text("<CertificateCollection><Certificate/></CertificateCollection>",
		    KT_BAD_PUBLIC_KEY, NOT_COPP "the leaf certificate has no Data");
	expect_text("<CertificateCollection>", KT_BAD_PUBLIC_KEY, NOT_COPP "XML error at line 1");
	expect_text(" ", KT_BAD_PUBLIC_KEY, NOT_COPP "XML error");
	expect((const uint8_t *)"", 0, KT_BAD_PUBLIC_KEY, NOT_COPP "0 bytes", NULL);
	big = calloc(1, KT_COPP_CERT_MAX + 1);
	assert_non_null(big);
	big[0] = '<';
	expect(big, KT_COPP_CERT_MAX + 1, KT_BAD_PUBLIC_KEY, NOT_COPP "65537 bytes; 1 to 65536", NULL);
	free(big);
	assert_int_equal(kt_copp_cert_key(NULL, 1, blob, err, sizeof(err)), KT_ERR_ARG);
	assert_int_equal(kt_copp_cert_key((const uint8_t *)"<a/>", 4, NULL, NULL, 0), KT_ERR_ARG);
	/* No room for a message is fine. */
	assert_int_equal(kt_copp_cert_key((const uint8_t *)"<a/>", 4, blob, NULL, 0), KT_BAD_PUBLIC_KEY);
}

static void test_is_xml(void **state)
{
	(void)state;
	assert_true(kt_is_xml((const uint8_t *)"<x", 2));
	assert_true(kt_is_xml((const uint8_t *)"\xef\xbb\xbf \r\n\t<x", 8));
	assert_false(kt_is_xml((const uint8_t *)"", 0));
	assert_false(kt_is_xml((const uint8_t *)"  ", 2));
	assert_false(kt_is_xml((const uint8_t *)"\xef\xbb<", 3));
	assert_false(kt_is_xml((const uint8_t *)"-----BEGIN PUBLIC KEY-----", 26));
	assert_false(kt_is_xml((const uint8_t *)"\x06\x02\x00\x00", 4));
	assert_false(kt_is_xml((const uint8_t *)"\x30\x82", 2));
}

static void b64(const char *text, long want, const char *bytes)
{
	uint8_t out[16];
	long n = base64_decode(text, strlen(text), out, sizeof(out));

	if (n != want)
		fail_msg("\"%s\": %ld bytes, want %ld", text, n, want);
	if (want > 0)
		assert_memory_equal(out, bytes, (size_t)want);
}

static void test_base64(void **state)
{
	uint8_t out[2], room[16];

	(void)state;
	b64("", 0, "");
	b64(" \r\n\t", 0, "");
	b64("TWFu", 3, "Man");
	b64("TWE=", 2, "Ma");
	b64("TQ==", 1, "M");
	b64(" T W\nF u\r\nTQ = = ", 4, "ManM");
	b64("+/+/", 3, "\xfb\xff\xbf");
	b64("TWF", -1, NULL);           /* not a whole group */
	b64("TQ=", -1, NULL);
	b64("T===", -1, NULL);          /* padding where a byte's bits must be */
	b64("TQ=a", -1, NULL);
	b64("TQ==TWFu", -1, NULL);      /* data after the padding */
	b64("TW-u", -1, NULL);          /* the URL alphabet is not base64 here */
	assert_int_equal(base64_decode("TWFu\0AAA", 8, room, sizeof(room)), -1);  /* a NUL inside */
	assert_int_equal(base64_decode("TWFu", 4, out, sizeof(out)), -1);   /* no room */
	assert_int_equal(base64_decode("TWE=", 4, out, sizeof(out)), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaf_key_is_the_vector_blob),
		cmocka_unit_test(test_refusals_of_the_leaf),
		cmocka_unit_test(test_dtd_refused),
		cmocka_unit_test(test_structure_refusals),
		cmocka_unit_test(test_collection_refusals),
		cmocka_unit_test(test_is_xml),
		cmocka_unit_test(test_base64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
