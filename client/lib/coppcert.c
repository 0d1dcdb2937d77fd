/*
 * The driver's RSA key from its COPP XML certificate chain (docs/formats.md):
 * CertificateCollection, leaf first; the leaf's
 * Data/PublicKey/KeyValue/RSAKeyValue/{Modulus,Exponent} are base64,
 * big-endian. The result is a PUBLICKEYBLOB, a format the daemon already
 * reads, so that the daemon never parses XML.
 *
 * The text is untrusted: libxml2 reads it with no network, no entity
 * substitution and no DTD at all (the parser stops at a DOCTYPE before its
 * internal subset, so neither external entities nor entity expansion can
 * happen), within KT_COPP_CERT_MAX bytes.
 */
#include "keytrans.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/globals.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "base64.h"
#include "buf.h"
#include "internal.h"

#define COPP_BITS 2048
#define MOD_CAP 2048            /* decoded modulus bytes accepted, to report its size */
#define EXP_CAP 8
#define PATH_MAX_TEXT 128

static int failf(char *err, size_t errlen, int st, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int failf(char *err, size_t errlen, int st, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return st;
}

#define NOT_COPP(err, errlen, fmt, ...) \
	failf(err, errlen, KT_BAD_PUBLIC_KEY, "not a COPP certificate collection: " fmt, __VA_ARGS__)

int kt_is_xml(const uint8_t *p, size_t len)
{
	static const uint8_t bom[3] = { 0xef, 0xbb, 0xbf };
	struct buf_reader r;
	const uint8_t *head;
	uint8_t ch;

	buf_reader_init(&r, p, len);
	if (buf_get_ptr(&r, &head, sizeof(bom)) != 0 || memcmp(head, bom, sizeof(bom)) != 0)
		buf_reader_init(&r, p, len);
	while (buf_get_u8(&r, &ch) == 0)
		if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n')
			return ch == '<';
	return 0;
}

/* --- parsing ---------------------------------------------------------- */

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

/* libxml2 before 2.11 wants its one-time setup done once, not raced. */
static void xml_init(void)
{
	xmlInitParser();
}

/* SAX internalSubset: a DOCTYPE was read; stop before anything in it is. */
static void refuse_dtd(void *ctx, const xmlChar *name, const xmlChar *ext_id, const xmlChar *sys_id)
{
	xmlParserCtxtPtr p = ctx;

	(void)name;
	(void)ext_id;
	(void)sys_id;
	*(int *)p->_private = 1;
	xmlStopParser(p);
}

/* Errors are reported through the context's last error, never to stderr. */
static void quiet(void *ctx, xmlErrorPtr e)
{
	(void)ctx;
	(void)e;
}

/*
 * Some errors (a bad input encoding) reach only libxml2's per-thread generic
 * handlers, which print to stderr: they are silenced for the parse, and the
 * caller's own handlers put back after it.
 */
struct handlers {
	xmlGenericErrorFunc generic;
	void *generic_ctx;
	xmlStructuredErrorFunc structured;
	void *structured_ctx;
};

static void no_generic(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

static void silence(struct handlers *saved)
{
	saved->generic = xmlGenericError;
	saved->generic_ctx = xmlGenericErrorContext;
	saved->structured = xmlStructuredError;
	saved->structured_ctx = xmlStructuredErrorContext;
	xmlSetGenericErrorFunc(NULL, no_generic);
	xmlSetStructuredErrorFunc(NULL, quiet);
}

static void restore(const struct handlers *saved)
{
	xmlSetGenericErrorFunc(saved->generic_ctx, saved->generic);
	xmlSetStructuredErrorFunc(saved->structured_ctx, saved->structured);
}

static int parse_failed(xmlParserCtxtPtr p, int dtd, char *err, size_t errlen)
{
	const xmlError *e = xmlCtxtGetLastError(p);
	char msg[160] = "not well-formed";

	if (dtd)
		return NOT_COPP(err, errlen, "%s", "a DOCTYPE (DTD) is not allowed");
	if (e != NULL && e->message != NULL) {
		snprintf(msg, sizeof(msg), "%s", e->message);
		msg[strcspn(msg, "\n")] = '\0';
	}
	return NOT_COPP(err, errlen, "XML error at line %d: %s", e != NULL ? e->line : 0, msg);
}

static int parse(const uint8_t *xml, size_t len, xmlDocPtr *doc, char *err, size_t errlen)
{
	const int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;
	struct handlers saved;
	xmlParserCtxtPtr p;
	int dtd = 0, st = KT_OK;

	pthread_once(&xml_once, xml_init);
	p = xmlNewParserCtxt();
	if (p == NULL)
		return failf(err, errlen, KT_ERR_NOMEM, "out of memory");
	p->sax->internalSubset = refuse_dtd;
	p->sax->serror = quiet;
	p->_private = &dtd;
	silence(&saved);
	*doc = xmlCtxtReadMemory(p, (const char *)xml, (int)len, NULL, NULL, opts);
	restore(&saved);
	if (*doc == NULL || dtd || !p->wellFormed) {
		st = parse_failed(p, dtd, err, errlen);
		xmlFreeDoc(*doc);
		*doc = NULL;
	}
	xmlFreeParserCtxt(p);
	return st;
}

/* --- the tree ---------------------------------------------------------- */

static int named(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, (const xmlChar *)name);
}

/* The one child element called name (namespaces aside): 1, 0 for none, -1 for several. */
static int only_child(const xmlNode *parent, const char *name, xmlNode **out)
{
	int n = 0;

	for (xmlNode *c = parent->children; c != NULL; c = c->next) {
		if (named(c, name) && n++ == 0)
			*out = c;
	}
	return n > 1 ? -1 : n;
}

/* Follows path one element per step: 1, 0 or -1 as only_child; where names the path so far. */
static int walk(xmlNode *node, const char *const *path, size_t n, xmlNode **out,
		char where[PATH_MAX_TEXT])
{
	int r = 1;

	where[0] = '\0';
	for (size_t i = 0; i < n && r == 1; i++) {
		size_t used = strlen(where);

		snprintf(where + used, PATH_MAX_TEXT - used, "%s%s", i ? "/" : "", path[i]);
		r = only_child(node, path[i], &node);
	}
	*out = node;
	return r;
}

/* The element's text (xmlFree it); NULL when it holds elements too. */
static xmlChar *text_of(const xmlNode *n)
{
	for (const xmlNode *c = n->children; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE)
			return NULL;
	return xmlNodeGetContent(n);
}

/* The leaf: the collection's first Certificate. */
static int find_leaf(xmlDocPtr doc, xmlNode **leaf, char *err, size_t errlen)
{
	xmlNode *root = xmlDocGetRootElement(doc);

	if (root == NULL || !named(root, "CertificateCollection"))
		return NOT_COPP(err, errlen, "the root element is <%.40s>, not <CertificateCollection>",
				root != NULL ? (const char *)root->name : "");
	for (xmlNode *c = root->children; c != NULL; c = c->next) {
		if (named(c, "Certificate")) {
			*leaf = c;
			return KT_OK;
		}
	}
	return NOT_COPP(err, errlen, "%s", "it holds no Certificate");
}

/* --- the key ------------------------------------------------------------ */

/* A big-endian number from base64, leading zero bytes dropped. */
static int number(const xmlNode *el, const char *what, uint8_t *out, size_t cap, size_t *len,
		  char *err, size_t errlen)
{
	xmlChar *text = text_of(el);
	long n = -1;
	size_t zeros = 0;

	if (text != NULL)
		n = base64_decode((const char *)text, strlen((const char *)text), out, cap);
	xmlFree(text);
	if (n < 0)
		return NOT_COPP(err, errlen, "the leaf's %s is not base64 of at most %zu bytes", what, cap);
	while (zeros < (size_t)n && out[zeros] == 0)
		zeros++;
	*len = (size_t)n - zeros;
	if (*len == 0)
		return NOT_COPP(err, errlen, "the leaf's %s is zero", what);
	memmove(out, out + zeros, *len);
	return KT_OK;
}

static size_t bit_length(const uint8_t *n, size_t len)
{
	size_t bits = (len - 1) * 8;

	for (uint8_t top = n[0]; top != 0; top >>= 1)
		bits++;
	return bits;
}

/* One of leaf/Data/PublicKey/KeyValue/RSAKeyValue's fields, exactly one of each step. */
static int rsa_field(xmlNode *leaf, const char *field, xmlNode **out, char *err, size_t errlen)
{
	const char *const path[] = { "Data", "PublicKey", "KeyValue", "RSAKeyValue", field };
	char where[PATH_MAX_TEXT];
	int r = walk(leaf, path, sizeof(path) / sizeof(path[0]), out, where);

	if (r == 1)
		return KT_OK;
	return NOT_COPP(err, errlen, "the leaf certificate has %s %s", r == 0 ? "no" : "more than one",
			where);
}

/* "1", white space around it allowed: how the chain marks a feature as present. */
static int is_one(const xmlNode *el)
{
	xmlChar *text = text_of(el);
	struct buf_reader r;
	uint8_t ch;
	int ones = 0, other = 0;

	if (text == NULL)
		return 0;
	buf_reader_init(&r, text, strlen((const char *)text));
	while (buf_get_u8(&r, &ch) == 0) {
		if (ch == '1')
			ones++;
		else if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n')
			other++;
	}
	xmlFree(text);
	return ones == 1 && other == 0;
}

static int encrypt_key_usage(xmlNode *leaf, char *err, size_t errlen)
{
	const char *const path[] = { "Data", "KeyUsage", "EncryptKey" };
	char where[PATH_MAX_TEXT];
	xmlNode *usage;
	int r = walk(leaf, path, sizeof(path) / sizeof(path[0]), &usage, where);

	if (r < 0)
		return NOT_COPP(err, errlen, "the leaf certificate has more than one %s", where);
	if (r == 0 || !is_one(usage))
		return failf(err, errlen, KT_BAD_PUBLIC_KEY, "leaf certificate lacks KeyUsage EncryptKey");
	return KT_OK;
}

/* PUBLICKEYBLOB (docs/formats.md) for CALG_RSA_KEYX: header, RSAPUBKEY, modulus little-endian. */
static void put_blob(uint8_t blob[KT_COPP_KEY_BLOB_LEN], const uint8_t n[COPP_BITS / 8],
		     const uint8_t *e, size_t elen)
{
	struct buf_writer w;
	uint32_t exp = 0;

	for (size_t i = 0; i < elen; i++)
		exp = exp << 8 | e[i];
	buf_writer_init(&w, blob, KT_COPP_KEY_BLOB_LEN);
	buf_put_u8(&w, 0x06);           /* PUBLICKEYBLOB */
	buf_put_u8(&w, 0x02);           /* CUR_BLOB_VERSION */
	buf_put_u16le(&w, 0);
	buf_put_u32le(&w, 0x0000a400);  /* CALG_RSA_KEYX */
	buf_put_bytes(&w, "RSA1", 4);
	buf_put_u32le(&w, COPP_BITS);
	buf_put_u32le(&w, exp);
	buf_put_bytes_reversed(&w, n, COPP_BITS / 8);
}

static int leaf_key(xmlNode *leaf, uint8_t blob[KT_COPP_KEY_BLOB_LEN], char *err, size_t errlen)
{
	uint8_t n[MOD_CAP], e[EXP_CAP];
	xmlNode *mod, *exp;
	size_t nlen, elen, bits;
	int st = rsa_field(leaf, "Modulus", &mod, err, errlen);

	if (st == KT_OK)
		st = rsa_field(leaf, "Exponent", &exp, err, errlen);
	if (st == KT_OK)
		st = number(mod, "Modulus", n, sizeof(n), &nlen, err, errlen);
	if (st == KT_OK)
		st = number(exp, "Exponent", e, sizeof(e), &elen, err, errlen);
	if (st != KT_OK)
		return st;
	bits = bit_length(n, nlen);
	if (bits != COPP_BITS)
		return failf(err, errlen, KT_KEY_SIZE, "leaf certificate's key is %zu-bit; COPP needs %d",
			     bits, COPP_BITS);
	/* A PUBLICKEYBLOB's pubexp is 32 bits; the daemon checks the rest (odd, not 1). */
	if (elen > 4)
		return failf(err, errlen, KT_BAD_PUBLIC_KEY,
			     "leaf certificate's public exponent is longer than 32 bits");
	st = encrypt_key_usage(leaf, err, errlen);
	if (st == KT_OK)
		put_blob(blob, n, e, elen);
	return st;
}

int kt_copp_cert_key(const uint8_t *xml, size_t len, uint8_t blob[KT_COPP_KEY_BLOB_LEN], char *err,
		     size_t errlen)
{
	xmlDocPtr doc = NULL;
	xmlNode *leaf = NULL;
	int st;

	if (xml == NULL || blob == NULL)
		return failf(err, errlen, KT_ERR_ARG, "no certificate or no output given");
	if (len == 0 || len > KT_COPP_CERT_MAX)
		return NOT_COPP(err, errlen, "%zu bytes; 1 to %d are accepted", len, KT_COPP_CERT_MAX);
	st = parse(xml, len, &doc, err, errlen);
	if (st == KT_OK)
		st = find_leaf(doc, &leaf, err, errlen);
	if (st == KT_OK)
		st = leaf_key(leaf, blob, err, errlen);
	xmlFreeDoc(doc);
	return st;
}

int conn_copp_cert_key(kt_conn *c, const uint8_t *xml, size_t len,
		       uint8_t blob[KT_COPP_KEY_BLOB_LEN])
{
	uint8_t *copy;
	int st;

	if (c->xml != NULL && c->xml_len == len && memcmp(c->xml, xml, len) == 0) {
		memcpy(blob, c->xml_key, KT_COPP_KEY_BLOB_LEN);
		return KT_OK;
	}
	st = kt_copp_cert_key(xml, len, blob, c->err, sizeof(c->err));
	if (st != KT_OK)
		return st;
	/* No copy (out of memory) only means no cache. */
	if ((copy = malloc(len)) != NULL) {
		memcpy(copy, xml, len);
		free(c->xml);
		c->xml = copy;
		c->xml_len = len;
		memcpy(c->xml_key, blob, KT_COPP_KEY_BLOB_LEN);
	}
	return KT_OK;
}
