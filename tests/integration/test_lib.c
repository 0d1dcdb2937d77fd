/*
 * libkeytrans (the shared library, as installed) against a running keytransd
 * serving the vector keys: every public function, checked against the
 * vectors in $KT_VECTORS and independently with OpenSSL.
 * The daemon's socket is $KEYTRANS_SOCKET (run_with_daemon.py sets it).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "keytrans.h"

#define MAX_LINES 128
#define NKEYS 4

static const char *const key_names[NKEYS] = { "rsa1024", "rsa2048", "rsa4096", "wine1024" };
static const unsigned key_bits[NKEYS] = { 1024, 2048, 4096, 1024 };

struct alg {
	uint32_t id;
	const char *name;
	size_t lo, hi;
};

static const struct alg algs[] = {
	{ 0x6602, "CALG_RC2", 5, 16 },   { 0x6801, "CALG_RC4", 5, 16 },
	{ 0x6601, "CALG_DES", 8, 8 },    { 0x6609, "CALG_3DES_112", 16, 16 },
	{ 0x6603, "CALG_3DES", 24, 24 }, { 0x660e, "CALG_AES_128", 16, 16 },
	{ 0x660f, "CALG_AES_192", 24, 24 }, { 0x6610, "CALG_AES_256", 32, 32 },
};
#define NALGS (sizeof(algs) / sizeof(algs[0]))

/* One line of simpleblob.txt. */
struct sb_vec {
	char name[16];
	int padding;
	uint32_t alg;
	uint8_t key[32];
	size_t key_len;
	uint8_t blob[KT_BLOB_MAX];
	size_t blob_len;
};

/* One line of copp.txt. */
struct copp_vec {
	char name[16];
	uint8_t random[16], aes_key[16];
	uint32_t status_seq, command_seq;
	uint8_t sig[256];
};

/* One line of negative.txt. */
struct neg_vec {
	char name[32], cls[16];
	uint8_t blob[KT_BLOB_MAX + 16];
	size_t blob_len;
};

static const char *sock_path;
static const char *vec_dir;
static struct sb_vec sb[MAX_LINES];
static size_t n_sb;
static struct copp_vec cv[8];
static size_t n_cv;
static struct neg_vec neg[32];
static size_t n_neg;
static uint8_t *pub_blob[NKEYS];
static size_t pub_blob_len[NKEYS];
static EVP_PKEY *priv[NKEYS];

/* --- helpers ------------------------------------------------------------ */

static const struct alg *alg_of(uint32_t id)
{
	for (size_t i = 0; i < NALGS; i++)
		if (algs[i].id == id)
			return &algs[i];
	return NULL;
}

static long unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = strlen(s);

	if (strcmp(s, "-") == 0)
		return 0;
	if (n % 2 != 0 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return (long)(n / 2);
}

static char *path_of(const char *rel)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "%s/%s", vec_dir, rel);
	return buf;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (f == NULL) {
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* The lines of a vector file, split into at most max words each; returns the count. */
static size_t vector_lines(const char *file, char ***words, int max, size_t maxlines)
{
	FILE *f = fopen(path_of(file), "r");
	static char line[16384];
	size_t n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL && n < maxlines) {
		char *save = NULL, *w;
		int k = 0;

		if (line[0] == '#' || strspn(line, " \t\r\n") == strlen(line))
			continue;
		for (w = strtok_r(line, " \t\r\n", &save); w != NULL && k < max;
		     w = strtok_r(NULL, " \t\r\n", &save))
			words[n][k++] = strdup(w);
		assert_int_equal(k, max);
		n++;
	}
	fclose(f);
	return n;
}

static char ***word_table(size_t lines, int max)
{
	char ***t = calloc(lines, sizeof(*t));

	for (size_t i = 0; i < lines; i++)
		t[i] = calloc((size_t)max, sizeof(char *));
	return t;
}

static void free_words(char ***t, size_t lines, int max)
{
	for (size_t i = 0; i < lines; i++) {
		for (int k = 0; k < max; k++)
			free(t[i][k]);
		free(t[i]);
	}
	free(t);
}

static void load_vectors(void)
{
	char ***w = word_table(MAX_LINES, 6);

	n_sb = vector_lines("simpleblob.txt", w, 5, MAX_LINES);
	for (size_t i = 0; i < n_sb; i++) {
		long n;

		snprintf(sb[i].name, sizeof(sb[i].name), "%s", w[i][0]);
		sb[i].padding = strcmp(w[i][1], "oaep") == 0 ? KT_PAD_OAEP : KT_PAD_PKCS1;
		sb[i].alg = (uint32_t)strtoul(w[i][2], NULL, 16);
		n = unhex(w[i][3], sb[i].key, sizeof(sb[i].key));
		assert_true(n > 0);
		sb[i].key_len = (size_t)n;
		n = unhex(w[i][4], sb[i].blob, sizeof(sb[i].blob));
		assert_true(n > 0);
		sb[i].blob_len = (size_t)n;
	}
	free_words(w, MAX_LINES, 6);

	w = word_table(8, 6);
	n_cv = vector_lines("copp.txt", w, 6, 8);
	for (size_t i = 0; i < n_cv; i++) {
		snprintf(cv[i].name, sizeof(cv[i].name), "%s", w[i][0]);
		assert_int_equal(unhex(w[i][1], cv[i].random, 16), 16);
		assert_int_equal(unhex(w[i][2], cv[i].aes_key, 16), 16);
		cv[i].status_seq = (uint32_t)strtoul(w[i][3], NULL, 10);
		cv[i].command_seq = (uint32_t)strtoul(w[i][4], NULL, 10);
		assert_int_equal(unhex(w[i][5], cv[i].sig, 256), 256);
	}
	free_words(w, 8, 6);

	w = word_table(32, 3);
	n_neg = vector_lines("negative.txt", w, 3, 32);
	for (size_t i = 0; i < n_neg; i++) {
		long n;

		snprintf(neg[i].name, sizeof(neg[i].name), "%s", w[i][0]);
		snprintf(neg[i].cls, sizeof(neg[i].cls), "%s", w[i][1]);
		n = unhex(w[i][2], neg[i].blob, sizeof(neg[i].blob));
		assert_true(n >= 0);
		neg[i].blob_len = (size_t)n;
	}
	free_words(w, 32, 3);

	for (int k = 0; k < NKEYS; k++) {
		char rel[64];
		FILE *f;

		snprintf(rel, sizeof(rel), "keys/%s.pub.blob", key_names[k]);
		pub_blob[k] = read_file(path_of(rel), &pub_blob_len[k]);
		assert_non_null(pub_blob[k]);
		snprintf(rel, sizeof(rel), "keys/%s.pem", key_names[k]);
		f = fopen(path_of(rel), "r");
		assert_non_null(f);
		priv[k] = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		assert_non_null(priv[k]);
	}
}

static int group_setup(void **state)
{
	(void)state;
	sock_path = getenv("KEYTRANS_SOCKET");
	vec_dir = getenv("KT_VECTORS");
	if (sock_path == NULL || vec_dir == NULL) {
		fprintf(stderr, "KEYTRANS_SOCKET and KT_VECTORS must be set\n");
		return -1;
	}
	load_vectors();
	if (n_sb != 61 || n_cv != 3 || n_neg != 18) {
		fprintf(stderr, "vectors: %zu simpleblob, %zu copp, %zu negative lines\n", n_sb, n_cv,
			n_neg);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (int k = 0; k < NKEYS; k++) {
		free(pub_blob[k]);
		EVP_PKEY_free(priv[k]);
	}
	return 0;
}

static kt_conn *connected(void)
{
	kt_conn *c = kt_conn_new();

	assert_non_null(c);
	assert_int_equal(kt_connect(c, sock_path), KT_OK);
	return c;
}

/* RSA decryption with OpenSSL of a SIMPLEBLOB's (or COPP signature's) reversed bytes. */
static int ossl_decrypt(int k, const uint8_t *rev, size_t len, int padding, uint8_t *out,
			size_t *out_len)
{
	uint8_t ct[512];
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(priv[k], NULL);
	int ok;

	if (ctx == NULL || len > sizeof(ct))
		return 0;
	for (size_t i = 0; i < len; i++)
		ct[i] = rev[len - 1 - i];
	*out_len = 512;
	ok = EVP_PKEY_decrypt_init(ctx) == 1 &&
	     EVP_PKEY_CTX_set_rsa_padding(ctx, padding == KT_PAD_OAEP ? RSA_PKCS1_OAEP_PADDING
								  : RSA_PKCS1_PADDING) == 1 &&
	     EVP_PKEY_decrypt(ctx, out, out_len, ct, len) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/* A SIMPLEBLOB for key k holding alg/key: header, length, OpenSSL decrypts it. */
static int simpleblob_ok(int k, const uint8_t *blob, size_t len, uint32_t alg,
			 const uint8_t *key, size_t key_len, int padding)
{
	const uint8_t hdr[12] = { 1, 2, 0, 0, (uint8_t)alg, (uint8_t)(alg >> 8), 0, 0,
				  0x00, 0xa4, 0, 0 };
	uint8_t pt[512];
	size_t pt_len;

	if (len != 12 + key_bits[k] / 8 || memcmp(blob, hdr, 12) != 0)
		return 0;
	if (!ossl_decrypt(k, blob + 12, len - 12, padding, pt, &pt_len))
		return 0;
	return pt_len == key_len && memcmp(pt, key, key_len) == 0;
}

/* An OPM parameter array under rsa2048: OAEP with SHA-512 as is (big-endian), with OpenSSL. */
static int opm_sig_ok(const uint8_t sig[256], const uint8_t rnd[16], const uint8_t aes[16],
		      uint32_t sseq, uint32_t cseq)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(priv[1], NULL);
	uint8_t m[40], pt[512];
	size_t pt_len = sizeof(pt);
	int ok;

	memcpy(m, rnd, 16);
	memcpy(m + 16, aes, 16);
	for (int i = 0; i < 4; i++) {
		m[32 + i] = (uint8_t)(sseq >> (8 * i));
		m[36 + i] = (uint8_t)(cseq >> (8 * i));
	}
	ok = ctx != NULL && EVP_PKEY_decrypt_init(ctx) == 1 &&
	     EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
	     EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha512()) == 1 &&
	     EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha512()) == 1 &&
	     EVP_PKEY_decrypt(ctx, pt, &pt_len, sig, 256) == 1 && pt_len == 40 &&
	     memcmp(pt, m, 40) == 0;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/* AES-CMAC by OpenSSL, to hold session-mac's answers against. */
static void ossl_cmac(const uint8_t key[16], const uint8_t *p, size_t n, uint8_t tag[16])
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
	char cipher[] = "AES-128-CBC";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0),
		OSSL_PARAM_construct_end(),
	};
	size_t len = 0;

	assert_non_null(ctx);
	assert_int_equal(EVP_MAC_init(ctx, key, 16, params), 1);
	assert_int_equal(EVP_MAC_update(ctx, p, n), 1);
	assert_int_equal(EVP_MAC_final(ctx, tag, &len, 16), 1);
	assert_int_equal(len, 16);
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
}

/* A COPP signature under rsa2048 opens, with OpenSSL, to the given values. */
static int copp_sig_ok(const uint8_t sig[256], const uint8_t rnd[16], const uint8_t aes[16],
		       uint32_t sseq, uint32_t cseq)
{
	uint8_t s[40], pt[512];
	size_t pt_len;

	memcpy(s, rnd, 16);
	memcpy(s + 16, aes, 16);
	for (int i = 0; i < 4; i++) {
		s[32 + i] = (uint8_t)(sseq >> (8 * i));
		s[36 + i] = (uint8_t)(cseq >> (8 * i));
	}
	if (!ossl_decrypt(1, sig, 256, KT_PAD_PKCS1, pt, &pt_len) || pt_len != 40)
		return 0;
	for (int i = 0; i < 40; i++)
		if (pt[i] != s[39 - i])
			return 0;
	return 1;
}

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rand() & 0xff);
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000.0 + t.tv_nsec / 1e6;
}

/* --- the tests ---------------------------------------------------------- */

static void test_version_and_status_names(void **state)
{
	(void)state;
	assert_string_equal(kt_version(), "0.1.0");
	assert_string_equal(kt_status_name(KT_OK), "OK");
	assert_string_equal(kt_status_name(KT_UNWRAP_FAILED), "UNWRAP_FAILED");
	assert_string_equal(kt_status_name(KT_SHUTTING_DOWN), "SHUTTING_DOWN");
	assert_string_equal(kt_status_name(KT_ERR_CONNECT), "ERR_CONNECT");
	assert_string_equal(kt_status_name(KT_ERR_TIMEOUT), "ERR_TIMEOUT");
	assert_string_equal(kt_status_name(999), "UNKNOWN");
	assert_string_equal(kt_status_name(-99), "UNKNOWN");
	assert_string_equal(kt_status_text(KT_OK), "success");
	assert_string_equal(kt_status_text(KT_UNKNOWN_KEY), "no key of that name");
	assert_string_equal(kt_status_text(KT_ERR_ARG), "invalid argument");
	assert_non_null(kt_status_text(999));
	/* Every listed code has its own name. */
	for (int s = -6; s <= 22; s++)
		for (int t = s + 1; t <= 22; t++)
			assert_string_not_equal(kt_status_name(s), kt_status_name(t));
	assert_non_null(kt_errmsg(NULL));
}

static void test_connect_close_free(void **state)
{
	kt_conn *c = kt_conn_new();
	struct kt_info in;
	char *old = strdup(sock_path);

	(void)state;
	assert_non_null(c);
	/* Not connected yet. */
	assert_int_equal(kt_info(c, &in), KT_ERR_IO);
	assert_true(strlen(kt_errmsg(c)) > 0);
	/* NULL path: $KEYTRANS_SOCKET. */
	assert_int_equal(kt_connect(c, NULL), KT_OK);
	assert_int_equal(kt_info(c, &in), KT_OK);
	assert_int_equal(in.key_count, 4);
	/* Closed: calls fail locally; connecting again works. */
	kt_close(c);
	assert_int_equal(kt_info(c, &in), KT_ERR_IO);
	kt_close(c);
	assert_int_equal(kt_connect(c, sock_path), KT_OK);
	assert_int_equal(kt_info(c, &in), KT_OK);
	/* Reconnecting while connected. */
	assert_int_equal(kt_connect(c, sock_path), KT_OK);
	assert_int_equal(kt_info(c, &in), KT_OK);
	/* A bad path, given or from $KEYTRANS_SOCKET. */
	assert_int_equal(kt_connect(c, "/nonexistent/keytrans-test.sock"), KT_ERR_CONNECT);
	assert_non_null(strstr(kt_errmsg(c), "/nonexistent/keytrans-test.sock"));
	assert_int_equal(kt_info(c, &in), KT_ERR_IO);
	setenv("KEYTRANS_SOCKET", "/nonexistent/from-env.sock", 1);
	assert_int_equal(kt_connect(c, NULL), KT_ERR_CONNECT);
	assert_non_null(strstr(kt_errmsg(c), "/nonexistent/from-env.sock"));
	setenv("KEYTRANS_SOCKET", old, 1);
	{
		char longpath[300];

		memset(longpath, 'x', sizeof(longpath) - 1);
		longpath[0] = '/';
		longpath[sizeof(longpath) - 1] = '\0';
		assert_int_equal(kt_connect(c, longpath), KT_ERR_CONNECT);
	}
	assert_int_equal(kt_connect(c, ""), KT_OK);  /* "" is "not given": the environment */
	assert_int_equal(kt_info(c, &in), KT_OK);
	kt_conn_free(c);
	kt_conn_free(NULL);
	kt_close(NULL);
	free(old);
}

static void test_timeout(void **state)
{
	char dir[] = "/tmp/kt-lib-XXXXXX";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct kt_info in;
	kt_conn *c;
	double t0, ms;
	int fd;

	(void)state;
	/* A socket that accepts connections and never answers. */
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/mute.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	c = kt_conn_new();
	kt_set_timeout(c, 300);
	assert_int_equal(kt_connect(c, sa.sun_path), KT_OK);
	t0 = now_ms();
	assert_int_equal(kt_info(c, &in), KT_ERR_TIMEOUT);
	ms = now_ms() - t0;
	assert_true(ms >= 250 && ms < 5000);
	assert_true(strlen(kt_errmsg(c)) > 0);
	/* The same through the pipelining calls. */
	{
		struct kt_item it = { .op = KT_OP_PUBKEY_BLOB, .in.pubkey.name = "rsa2048" };
		struct kt_item *done = NULL;

		assert_int_equal(kt_connect(c, sa.sun_path), KT_OK);
		assert_int_equal(kt_submit(c, &it), KT_OK);
		assert_int_equal(kt_in_flight(c), 1);
		t0 = now_ms();
		assert_int_equal(kt_complete(c, &done), KT_ERR_TIMEOUT);
		ms = now_ms() - t0;
		assert_true(ms >= 250 && ms < 5000);
		kt_close(c);
		assert_int_equal(kt_in_flight(c), 0);
	}
	kt_conn_free(c);
	close(fd);
	unlink(sa.sun_path);
	rmdir(dir);
	/* A generous timeout on the real daemon does not get in the way. */
	c = connected();
	kt_set_timeout(c, 10000);
	assert_int_equal(kt_info(c, &in), KT_OK);
	kt_set_timeout(c, 0);  /* forever */
	assert_int_equal(kt_info(c, &in), KT_OK);
	kt_conn_free(c);
}

static void test_info(void **state)
{
	struct kt_info in;
	kt_conn *c = connected();

	(void)state;
	memset(&in, 0xa5, sizeof(in));
	assert_int_equal(kt_info(c, &in), KT_OK);
	assert_string_equal(in.version, "0.1.0");
	assert_string_equal(in.token_label, "kt-test");
	assert_int_equal(in.key_count, 4);
	assert_int_equal(in.worker_count, 2);
	assert_true(in.uptime_s < 3600);
	assert_int_equal(kt_info(c, NULL), KT_ERR_ARG);
	kt_conn_free(c);
}

static void test_keys(void **state)
{
	struct kt_key *keys = NULL;
	size_t n = 0;
	kt_conn *c = connected();

	(void)state;
	assert_int_equal(kt_keys(c, &keys, &n), KT_OK);
	assert_int_equal(n, NKEYS);
	assert_non_null(keys);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(keys[i].name, key_names[i]);
		assert_string_equal(keys[i].label, key_names[i]);
		assert_int_equal(keys[i].id_len, 1);
		assert_int_equal(keys[i].id[0], i + 1);
		assert_int_equal(keys[i].bits, key_bits[i]);
		assert_int_equal(keys[i].exponent, 65537);
	}
	kt_free(keys);
	kt_free(NULL);
	assert_int_equal(kt_keys(c, NULL, &n), KT_ERR_ARG);
	kt_conn_free(c);
}

static void test_pubkey(void **state)
{
	kt_conn *c = connected();

	(void)state;
	for (int k = 0; k < NKEYS; k++) {
		char rel[64];
		uint8_t *p = NULL, *pem_file, *der = NULL;
		size_t n = 0, pem_len;
		int der_len;
		EVP_PKEY *pk;
		FILE *f;

		/* PUBLICKEYBLOB: the vector's bytes. */
		assert_int_equal(kt_pubkey(c, key_names[k], KT_FMT_BLOB, &p, &n), KT_OK);
		assert_int_equal(n, pub_blob_len[k]);
		assert_memory_equal(p, pub_blob[k], n);
		kt_free(p);
		/* PEM: the vector file, NUL-terminated. */
		snprintf(rel, sizeof(rel), "keys/%s.pub.pem", key_names[k]);
		pem_file = read_file(path_of(rel), &pem_len);
		assert_non_null(pem_file);
		assert_int_equal(kt_pubkey(c, key_names[k], KT_FMT_PEM, &p, &n), KT_OK);
		assert_int_equal(n, pem_len);
		assert_memory_equal(p, pem_file, n);
		assert_int_equal(p[n], '\0');
		assert_int_equal(strlen((char *)p), n);
		kt_free(p);
		free(pem_file);
		/* DER: what OpenSSL makes of the PEM. */
		f = fopen(path_of(rel), "r");
		assert_non_null(f);
		pk = PEM_read_PUBKEY(f, NULL, NULL, NULL);
		fclose(f);
		assert_non_null(pk);
		der_len = i2d_PUBKEY(pk, &der);
		assert_true(der_len > 0);
		assert_int_equal(kt_pubkey(c, key_names[k], KT_FMT_DER, &p, &n), KT_OK);
		assert_int_equal(n, (size_t)der_len);
		assert_memory_equal(p, der, n);
		kt_free(p);
		OPENSSL_free(der);
		EVP_PKEY_free(pk);
	}
	{
		uint8_t *p = (uint8_t *)"x";
		size_t n = 7;

		assert_int_equal(kt_pubkey(c, "rsa2048", 4, &p, &n), KT_ERR_ARG);
		assert_null(p);
		assert_int_equal(n, 0);
		assert_int_equal(kt_pubkey(c, "no-such-key", KT_FMT_PEM, &p, &n), KT_UNKNOWN_KEY);
		assert_non_null(strstr(kt_errmsg(c), "no-such-key"));
		assert_null(p);
		assert_int_equal(kt_pubkey(c, "", KT_FMT_BLOB, &p, &n), KT_ERR_ARG);
	}
	{
		/* CNG: BCRYPT_RSAPUBLIC_BLOB, the vector's bytes. */
		size_t len;
		uint8_t *p = NULL, *want = read_file(path_of("keys/rsa2048.cng.pub.blob"), &len);
		size_t n = 0;

		assert_non_null(want);
		assert_int_equal(kt_pubkey(c, "rsa2048", KT_FMT_CNG, &p, &n), KT_OK);
		assert_int_equal(n, len);
		assert_memory_equal(p, want, n);
		kt_free(p);
		free(want);
	}
	kt_conn_free(c);
}

static void test_unwrap_vectors(void **state)
{
	kt_conn *c = connected();
	char decrypt_msg[1200] = "";

	(void)state;
	for (size_t i = 0; i < n_sb; i++) {
		struct kt_session_key k;

		memset(&k, 0xee, sizeof(k));
		assert_int_equal(kt_unwrap(c, sb[i].name, sb[i].blob, sb[i].blob_len, sb[i].padding,
					   &k), KT_OK);
		assert_int_equal(k.alg_id, sb[i].alg);
		assert_int_equal(k.len, sb[i].key_len);
		assert_memory_equal(k.key, sb[i].key, k.len);
	}
	/* The negative vectors: precise format errors, one identical decrypt error. */
	for (size_t i = 0; i < n_neg; i++) {
		static const struct {
			const char *name;
			int status;
		} want[] = {
			{ "bad_btype", KT_BLOB_TYPE }, { "bad_version", KT_BLOB_VERSION },
			{ "bad_reserved", KT_BLOB_RESERVED }, { "wrap_alg_sign", KT_BLOB_WRAP_ALG },
			{ "unknown_key_alg", KT_BLOB_ALG }, { "truncated", KT_BLOB_LENGTH },
			{ "trailing_byte", KT_BLOB_LENGTH }, { "header_only", KT_BLOB_LENGTH },
			{ "ciphertext_ge_modulus", KT_BLOB_RANGE },
			{ "empty", KT_BLOB_LENGTH },
		};
		struct kt_session_key k, k2;
		int st = kt_unwrap(c, "rsa2048", neg[i].blob, neg[i].blob_len, KT_PAD_PKCS1 | KT_STRICT,
				   &k);

		if (strcmp(neg[i].cls, "decrypt") == 0) {
			assert_int_equal(st, KT_UNWRAP_FAILED);
			/* Without KT_STRICT: implicit rejection, the same made-up key each time. */
			assert_int_equal(kt_unwrap(c, "rsa2048", neg[i].blob, neg[i].blob_len,
						   KT_PAD_PKCS1, &k), KT_OK);
			assert_int_equal(kt_unwrap(c, "rsa2048", neg[i].blob, neg[i].blob_len,
						   KT_PAD_PKCS1, &k2), KT_OK);
			assert_int_equal(k.len, k2.len);
			assert_memory_equal(k.key, k2.key, k.len);
			if (decrypt_msg[0] == '\0')
				snprintf(decrypt_msg, sizeof(decrypt_msg), "%s", kt_errmsg(c));
			assert_string_equal(kt_errmsg(c), decrypt_msg);
			assert_int_equal(kt_unwrap(c, "rsa2048", neg[i].blob, neg[i].blob_len,
						   KT_PAD_OAEP, &k), KT_UNWRAP_FAILED);
			assert_string_equal(kt_errmsg(c), decrypt_msg);
			continue;
		}
		assert_string_equal(neg[i].cls, "format");
		for (size_t w = 0;; w++) {
			assert_true(w < sizeof(want) / sizeof(want[0]));
			if (strcmp(want[w].name, neg[i].name) == 0) {
				if (st != want[w].status)
					fail_msg("%s: %s, expected %s", neg[i].name, kt_status_name(st),
						 kt_status_name(want[w].status));
				break;
			}
		}
		assert_true(strlen(kt_errmsg(c)) > 0);
	}
	assert_true(decrypt_msg[0] != '\0');
	/* A good blob with the wrong padding: the same error. */
	for (size_t i = 0; i < n_sb; i++) {
		struct kt_session_key k;

		if (strcmp(sb[i].name, "rsa2048") != 0)
			continue;
		assert_int_equal(kt_unwrap(c, "rsa2048", sb[i].blob, sb[i].blob_len,
					   (!sb[i].padding) | KT_STRICT, &k), KT_UNWRAP_FAILED);
		assert_string_equal(kt_errmsg(c), decrypt_msg);
	}
	kt_conn_free(c);
}

static void test_wrap_then_unwrap(void **state)
{
	kt_conn *c = connected();
	int n = 0;

	(void)state;
	for (int k = 0; k < 3; k++) {
		for (size_t a = 0; a < NALGS; a++) {
			for (int pad = KT_PAD_PKCS1; pad <= KT_PAD_OAEP; pad++) {
				struct kt_wrap_args wa = { .alg_id = algs[a].id, .padding = pad };
				struct kt_wrapped w;
				struct kt_session_key u;
				uint8_t key[32];
				size_t len = ++n % 2 ? algs[a].hi : algs[a].lo;

				/* The recipient: by name, or its PUBLICKEYBLOB. */
				if (n % 4 < 2) {
					wa.to_key = key_names[k];
				} else {
					wa.to_pub = pub_blob[k];
					wa.to_pub_len = pub_blob_len[k];
				}
				/* A given key. */
				fill_random(key, len);
				wa.key = key;
				wa.key_len = len;
				memset(&w, 0, sizeof(w));
				assert_int_equal(kt_wrap(c, &wa, &w), KT_OK);
				assert_int_equal(w.generated, 0);
				assert_int_equal(w.key.alg_id, algs[a].id);
				assert_int_equal(w.key.len, len);
				assert_memory_equal(w.key.key, key, len);
				assert_true(simpleblob_ok(k, w.blob, w.blob_len, algs[a].id, key, len, pad));
				assert_int_equal(kt_unwrap(c, key_names[k], w.blob, w.blob_len, pad, &u),
						 KT_OK);
				assert_int_equal(u.alg_id, algs[a].id);
				assert_int_equal(u.len, len);
				assert_memory_equal(u.key, key, len);
				/* A generated key: the longest. */
				wa.key = NULL;
				wa.key_len = 0;
				memset(&w, 0, sizeof(w));
				assert_int_equal(kt_wrap(c, &wa, &w), KT_OK);
				assert_int_equal(w.generated, 1);
				assert_int_equal(w.key.alg_id, algs[a].id);
				assert_int_equal(w.key.len, algs[a].hi);
				assert_true(simpleblob_ok(k, w.blob, w.blob_len, algs[a].id, w.key.key,
							  w.key.len, pad));
				assert_int_equal(kt_unwrap(c, key_names[k], w.blob, w.blob_len, pad, &u),
						 KT_OK);
				assert_int_equal(u.len, w.key.len);
				assert_memory_equal(u.key, w.key.key, u.len);
			}
		}
	}
	/* gen_bits for RC2/RC4; PEM, DER SPKI and certificates as to_pub. */
	{
		static const char *const files[] = { "keys/rsa2048.pub.pem", "../data/rsa2048.pub.der",
						     "../data/rsa2048.crt.pem", "../data/rsa2048.crt.der" };
		static const unsigned bits[] = { 40, 56, 128 };

		for (size_t f = 0; f < 4; f++) {
			size_t len;
			uint8_t *pub = read_file(path_of(files[f]), &len);

			assert_non_null(pub);
			for (size_t b = 0; b < 3; b++) {
				struct kt_wrap_args wa = { .alg_id = f % 2 ? 0x6801 : 0x6602,
							   .gen_bits = bits[b], .to_pub = pub,
							   .to_pub_len = len, .padding = (int)b % 2 };
				struct kt_wrapped w;

				assert_int_equal(kt_wrap(c, &wa, &w), KT_OK);
				assert_int_equal(w.generated, 1);
				assert_int_equal(w.key.len, bits[b] / 8);
				assert_true(simpleblob_ok(1, w.blob, w.blob_len, wa.alg_id, w.key.key,
							  w.key.len, wa.padding));
			}
			free(pub);
		}
	}
	/* Refusals by the daemon. */
	{
		uint8_t key[32] = { 0 };
		struct kt_wrap_args wa = { .alg_id = 0x660e, .key = key, .key_len = 15,
					   .to_key = "rsa2048" };
		struct kt_wrapped w;

		assert_int_equal(kt_wrap(c, &wa, &w), KT_KEY_LENGTH);
		wa.alg_id = 0x1234;
		wa.key_len = 16;
		assert_int_equal(kt_wrap(c, &wa, &w), KT_BLOB_ALG);
		wa.alg_id = 0x6801;
		wa.key = NULL;
		wa.key_len = 0;
		wa.gen_bits = 36;
		assert_int_equal(kt_wrap(c, &wa, &w), KT_KEY_LENGTH);
		wa.to_key = NULL;
		wa.gen_bits = 0;
		wa.to_pub = (const uint8_t *)"not a key";
		wa.to_pub_len = 9;
		assert_int_equal(kt_wrap(c, &wa, &w), KT_BAD_PUBLIC_KEY);
	}
	kt_conn_free(c);
}

/* A driver's XML certificate chain as to_pub (tests/data/copp, leaf = rsa2048's key). */
static void copp_sign_xml_file(kt_conn *c, const char *file, int want, const char *msg)
{
	char path[4096];
	struct kt_copp_sign_args a = { 0 };
	struct kt_copp s, o;
	uint8_t *xml;

	snprintf(path, sizeof(path), "%s/%s", getenv("KT_COPP_DATA"), file);
	xml = read_file(path, &a.to_pub_len);
	assert_non_null(xml);
	a.to_pub = xml;
	fill_random(a.random, 16);
	assert_int_equal(kt_copp_sign(c, &a, &s), want);
	if (want == KT_OK)
		assert_int_equal(kt_copp_open(c, "rsa2048", s.signature, a.random, &o), KT_OK);
	else
		assert_non_null(strstr(kt_errmsg(c), msg));
	free(xml);
}

static void copp_sign_to_xml(kt_conn *c)
{
	copp_sign_xml_file(c, "leaf2048.xml", KT_OK, NULL);
	copp_sign_xml_file(c, "leaf2048_ns.xml", KT_OK, NULL);
	copp_sign_xml_file(c, "leaf1024.xml", KT_KEY_SIZE, "leaf certificate's key is 1024-bit");
	copp_sign_xml_file(c, "no_encryptkey.xml", KT_BAD_PUBLIC_KEY, "lacks KeyUsage EncryptKey");
	copp_sign_xml_file(c, "xxe.xml", KT_BAD_PUBLIC_KEY, "not a COPP certificate collection");
}

static void test_copp(void **state)
{
	kt_conn *c = connected();

	(void)state;
	for (unsigned flags = 0; flags < 8; flags++) {
		for (int via_pub = 0; via_pub < 2; via_pub++) {
			struct kt_copp_sign_args a = { .flags = flags };
			struct kt_copp s, o;

			if (via_pub) {
				a.to_pub = pub_blob[1];
				a.to_pub_len = pub_blob_len[1];
			} else {
				a.to_key = "rsa2048";
			}
			fill_random(a.random, 16);
			fill_random(a.aes_key, 16);
			a.status_seq = 0xfffffff0u + flags;
			a.command_seq = flags * 1000u;
			assert_int_equal(kt_copp_sign(c, &a, &s), KT_OK);
			assert_memory_equal(s.random, a.random, 16);
			if (flags & KT_COPP_AES_KEY)
				assert_memory_equal(s.aes_key, a.aes_key, 16);
			if (flags & KT_COPP_STATUS_SEQ)
				assert_int_equal(s.status_seq, a.status_seq);
			if (flags & KT_COPP_COMMAND_SEQ)
				assert_int_equal(s.command_seq, a.command_seq);
			assert_true(copp_sig_ok(s.signature, s.random, s.aes_key, s.status_seq,
						s.command_seq));
			/* Open it: without and with the expected random. */
			assert_int_equal(kt_copp_open(c, "rsa2048", s.signature, NULL, &o), KT_OK);
			assert_memory_equal(o.random, a.random, 16);
			assert_memory_equal(o.aes_key, s.aes_key, 16);
			assert_int_equal(o.status_seq, s.status_seq);
			assert_int_equal(o.command_seq, s.command_seq);
			assert_int_equal(kt_copp_open(c, "rsa2048", s.signature, a.random, &o), KT_OK);
			assert_memory_equal(o.aes_key, s.aes_key, 16);
			a.random[7] ^= 1;
			assert_int_equal(kt_copp_open(c, "rsa2048", s.signature, a.random, &o),
					 KT_RANDOM_MISMATCH);
			assert_true(strlen(kt_errmsg(c)) > 0);
		}
	}
	for (size_t i = 0; i < n_cv; i++) {
		struct kt_copp o;
		uint8_t wrong[16] = { 0 };

		assert_int_equal(kt_copp_open(c, cv[i].name, cv[i].sig, NULL, &o), KT_OK);
		assert_memory_equal(o.random, cv[i].random, 16);
		assert_memory_equal(o.aes_key, cv[i].aes_key, 16);
		assert_int_equal(o.status_seq, cv[i].status_seq);
		assert_int_equal(o.command_seq, cv[i].command_seq);
		assert_int_equal(kt_copp_open(c, cv[i].name, cv[i].sig, cv[i].random, &o), KT_OK);
		assert_int_equal(kt_copp_open(c, cv[i].name, cv[i].sig, wrong, &o),
				 KT_RANDOM_MISMATCH);
	}
	/* COPP is for RSA-2048 keys only. */
	{
		struct kt_copp_sign_args a = { .to_key = "rsa1024" };
		struct kt_copp o;

		assert_int_equal(kt_copp_sign(c, &a, &o), KT_KEY_SIZE);
		a.to_key = NULL;
		a.to_pub = pub_blob[2];
		a.to_pub_len = pub_blob_len[2];
		assert_int_equal(kt_copp_sign(c, &a, &o), KT_KEY_SIZE);
		assert_int_equal(kt_copp_open(c, "rsa1024", cv[0].sig, NULL, &o), KT_KEY_SIZE);
		assert_int_equal(kt_copp_open(c, "rsa4096", cv[0].sig, NULL, &o), KT_KEY_SIZE);
		a.flags = 8;
		a.to_pub = NULL;
		a.to_pub_len = 0;
		a.to_key = "rsa2048";
		assert_int_equal(kt_copp_sign(c, &a, &o), KT_ERR_ARG);
		assert_int_equal(kt_copp_open(c, "rsa2048", NULL, NULL, &o), KT_ERR_ARG);
	}
	copp_sign_to_xml(c);
	kt_conn_free(c);
}

/* OPM status request (OPM_GET_INFO_PARAMETERS after its OMAC): random, GUID, sequence number. */
static size_t opm_status(uint8_t *d, uint32_t seq)
{
	memset(d, 0x5a, 40);
	for (int i = 0; i < 4; i++)
		d[32 + i] = (uint8_t)(seq >> (8 * i));
	return 40;
}

static void test_opm(void **state)
{
	struct kt_copp_sign_args a = { .to_key = "rsa2048" };
	struct kt_copp s, o;
	kt_conn *c = connected();
	uint8_t wrong[16] = { 0 };

	(void)state;
	fill_random(a.random, 16);
	assert_int_equal(kt_opm_sign(c, &a, &s), KT_OK);
	assert_true(opm_sig_ok(s.signature, a.random, s.aes_key, s.status_seq, s.command_seq));
	assert_int_equal(kt_opm_open(c, "rsa2048", s.signature, a.random, KT_STRICT, &o), KT_OK);
	assert_memory_equal(o.aes_key, s.aes_key, 16);
	assert_int_equal(o.status_seq, s.status_seq);
	assert_int_equal(o.command_seq, s.command_seq);
	wrong[0] = (uint8_t)(a.random[0] ^ 1);
	assert_int_equal(kt_opm_open(c, "rsa2048", s.signature, wrong, 0, &o), KT_RANDOM_MISMATCH);
	assert_int_equal(kt_opm_open(c, "rsa1024", s.signature, NULL, 0, &o), KT_KEY_SIZE);
	assert_int_equal(kt_opm_open(c, "rsa2048", s.signature, NULL, KT_SEAL, &o), KT_ERR_ARG);
	a.to_key = "rsa1024";
	assert_int_equal(kt_opm_sign(c, &a, &s), KT_KEY_SIZE);
	/* Everything given, to rsa2048's public key as a CNG blob and as DER. */
	for (int f = 0; f < 2; f++) {
		size_t len;
		uint8_t *pub = read_file(path_of(f ? "../data/rsa2048.pub.der"
						   : "keys/rsa2048.cng.pub.blob"), &len);
		struct kt_copp_sign_args g = { .to_pub = pub, .to_pub_len = len,
					       .flags = KT_COPP_AES_KEY | KT_COPP_STATUS_SEQ |
							KT_COPP_COMMAND_SEQ,
					       .status_seq = 0x01020304, .command_seq = UINT32_MAX };

		assert_non_null(pub);
		fill_random(g.random, 16);
		fill_random(g.aes_key, 16);
		assert_int_equal(kt_opm_sign(c, &g, &s), KT_OK);
		assert_true(opm_sig_ok(s.signature, g.random, g.aes_key, 0x01020304, UINT32_MAX));
		assert_int_equal(kt_opm_open(c, "rsa2048", s.signature, g.random, 0, &o), KT_OK);
		assert_memory_equal(o.aes_key, g.aes_key, 16);
		free(pub);
	}
	kt_conn_free(c);
}

static void test_sessions(void **state)
{
	struct kt_copp_sign_args a = { .to_key = "rsa2048",
				       .flags = KT_COPP_STATUS_SEQ | KT_COPP_COMMAND_SEQ,
				       .status_seq = UINT32_MAX, .command_seq = 7 };
	struct kt_session_stats before, after;
	struct kt_recipient_stats rec = { 0 }, rec2 = { 0 };
	struct kt_session_seq next;
	struct kt_stats *st = malloc(sizeof(*st));
	struct kt_sealed sl, sl2;
	struct kt_copp s;
	kt_conn *c = connected();
	uint8_t data[40], tag[16], want[16], big[KT_SESSION_DATA_MAX + 1] = { 0 };

	(void)state;
	assert_non_null(st);
	assert_int_equal(kt_stats_sessions(c, st, NULL, &before), KT_OK);
	fill_random(a.random, 16);
	assert_int_equal(kt_opm_sign(c, &a, &s), KT_OK);
	assert_int_equal(kt_opm_open_sealed(c, "rsa2048", s.signature, a.random, &sl), KT_OK);
	assert_memory_equal(sl.random, a.random, 16);
	assert_int_equal(sl.status_seq, UINT32_MAX);
	assert_int_equal(sl.command_seq, 7);
	/* session-mac: AES-CMAC under the key opm-sign chose. */
	for (size_t n = 0; n <= 40; n += 8) {
		fill_random(data, sizeof(data));
		assert_int_equal(kt_session_mac(c, sl.session, data, n, tag), KT_OK);
		ossl_cmac(s.aes_key, data, n, want);
		assert_memory_equal(tag, want, 16);
	}
	assert_int_equal(kt_session_mac(c, sl.session, big, sizeof(big), tag), KT_ERR_ARG);
	/* session-verify: the status number wraps from 2^32-1 to 0; a replay is refused. */
	opm_status(data, UINT32_MAX);
	ossl_cmac(s.aes_key, data, 40, want);
	assert_int_equal(kt_session_verify(c, sl.session, data, 40, want, KT_KIND_STATUS, &next),
			 KT_OK);
	assert_int_equal(next.next_status_seq, 0);
	assert_int_equal(next.next_command_seq, 7);
	assert_int_equal(kt_session_verify(c, sl.session, data, 40, want, KT_KIND_STATUS, &next),
			 KT_BAD_SEQUENCE);
	want[3] ^= 0x10;
	assert_int_equal(kt_session_verify(c, sl.session, data, 40, want, KT_KIND_NONE, NULL),
			 KT_OMAC_MISMATCH);
	assert_int_equal(kt_session_verify(c, sl.session, data, 40, want, 9, NULL), KT_ERR_ARG);
	/* Pipelined: a MAC and a verify as items. */
	{
		struct kt_item it[2] = { { .op = KT_OP_SESSION_MAC }, { .op = KT_OP_SESSION_VERIFY } };

		opm_status(data, 0);
		ossl_cmac(s.aes_key, data, 40, want);
		for (int i = 0; i < 2; i++) {
			it[i].in.session.session = sl.session;
			it[i].in.session.data = data;
			it[i].in.session.len = 40;
		}
		it[1].in.session.omac = want;
		it[1].in.session.kind = KT_KIND_STATUS;
		assert_int_equal(kt_batch(c, it, 2, 2), KT_OK);
		assert_int_equal(it[0].status, KT_OK);
		assert_int_equal(it[0].out.blob.len, 16);
		assert_memory_equal(it[0].out.blob.b, want, 16);
		assert_int_equal(it[1].status, KT_OK);
		assert_int_equal(it[1].out.seq.next_status_seq, 1);
	}
	/* A sealed COPP session: a status request without an OMAC. */
	{
		struct kt_copp_sign_args ca = { .to_key = "rsa2048", .flags = KT_COPP_STATUS_SEQ,
						.status_seq = 3 };

		fill_random(ca.random, 16);
		assert_int_equal(kt_copp_sign(c, &ca, &s), KT_OK);
		assert_int_equal(kt_copp_open_sealed(c, "rsa2048", s.signature, ca.random, KT_STRICT,
						     &sl2), KT_OK);
		opm_status(data, 3);
		assert_int_equal(kt_session_verify(c, sl2.session, data, 40, NULL, KT_KIND_STATUS,
						   &next), KT_OK);
		assert_int_equal(next.next_status_seq, 4);
		assert_int_equal(kt_session_close(c, sl2.session), KT_OK);
	}
	assert_int_equal(kt_stats_sessions(c, st, &rec, &after), KT_OK);
	/* The recipient counters come in the same answer, as kt_stats_recipients reads them. */
	assert_int_equal(rec.present, 1);
	assert_int_equal(kt_stats_recipients(c, st, &rec2), KT_OK);
	assert_true(rec2.hits >= rec.hits && rec2.misses >= rec.misses);
	assert_int_equal(after.open, before.open + 1);
	assert_int_equal(after.opened, before.opened + 2);
	assert_int_equal(kt_session_close(c, sl.session), KT_OK);
	assert_int_equal(kt_session_close(c, sl.session), KT_UNKNOWN_SESSION);
	assert_int_equal(kt_session_mac(c, sl.session, data, 4, tag), KT_UNKNOWN_SESSION);
	assert_int_equal(kt_session_close(c, NULL), KT_ERR_ARG);
	assert_int_equal(kt_stats_sessions(c, st, NULL, NULL), KT_ERR_ARG);
	free(st);
	kt_conn_free(c);
}

static void test_errors(void **state)
{
	kt_conn *c = connected();
	uint8_t key[16] = { 1 }, sig[256] = { 0 };
	struct kt_session_key k;
	struct kt_wrapped w;
	struct kt_copp o;
	struct kt_info in;

	(void)state;
	/* An unknown key: the daemon's UNKNOWN_KEY, the message naming the key. */
	assert_int_equal(kt_unwrap(c, "missing-key-1", sb[0].blob, sb[0].blob_len, 0, &k),
			 KT_UNKNOWN_KEY);
	assert_non_null(strstr(kt_errmsg(c), "missing-key-1"));
	assert_string_equal(kt_status_name(KT_UNKNOWN_KEY), "UNKNOWN_KEY");
	assert_int_equal(kt_wrap(c, &(struct kt_wrap_args){ .alg_id = 0x660e, .key = key,
							    .key_len = 16, .to_key = "missing-key-2" },
				 &w), KT_UNKNOWN_KEY);
	assert_non_null(strstr(kt_errmsg(c), "missing-key-2"));
	assert_int_equal(kt_copp_open(c, "missing-key-3", sig, NULL, &o), KT_UNKNOWN_KEY);
	assert_non_null(strstr(kt_errmsg(c), "missing-key-3"));
	assert_int_equal(kt_copp_sign(c, &(struct kt_copp_sign_args){ .to_key = "missing-key-4" },
				      &o), KT_UNKNOWN_KEY);
	assert_non_null(strstr(kt_errmsg(c), "missing-key-4"));

	/* Both or neither recipient: KT_ERR_ARG, nothing sent, connection fine. */
	assert_int_equal(kt_wrap(c, &(struct kt_wrap_args){ .alg_id = 0x660e, .key = key,
							    .key_len = 16 }, &w), KT_ERR_ARG);
	assert_true(strlen(kt_errmsg(c)) > 0);
	assert_int_equal(kt_wrap(c, &(struct kt_wrap_args){ .alg_id = 0x660e, .key = key,
							    .key_len = 16, .to_key = "rsa2048",
							    .to_pub = pub_blob[1],
							    .to_pub_len = pub_blob_len[1] }, &w),
			 KT_ERR_ARG);
	assert_int_equal(kt_copp_sign(c, &(struct kt_copp_sign_args){ 0 }, &o), KT_ERR_ARG);
	assert_int_equal(kt_copp_sign(c, &(struct kt_copp_sign_args){ .to_key = "rsa2048",
								      .to_pub = pub_blob[1],
								      .to_pub_len = pub_blob_len[1] },
				      &o), KT_ERR_ARG);
	/* Other local refusals. */
	assert_int_equal(kt_wrap(c, &(struct kt_wrap_args){ .alg_id = 0x660e, .key = key,
							    .key_len = 16, .gen_bits = 128,
							    .to_key = "rsa2048" }, &w), KT_ERR_ARG);
	assert_int_equal(kt_wrap(c, &(struct kt_wrap_args){ .alg_id = 0x660e, .key = key,
							    .key_len = 16, .to_key = "rsa2048",
							    .padding = 2 }, &w), KT_ERR_ARG);
	assert_int_equal(kt_unwrap(c, NULL, sb[0].blob, sb[0].blob_len, 0, &k), KT_ERR_ARG);
	assert_int_equal(kt_unwrap(c, "rsa2048", sb[0].blob, sb[0].blob_len, 5, &k), KT_ERR_ARG);
	assert_int_equal(kt_unwrap(c, "rsa2048", NULL, 1, 0, &k), KT_ERR_ARG);
	assert_int_equal(kt_unwrap(c, "rsa2048", NULL, 0, 0, &k), KT_BLOB_LENGTH);
	{
		char longname[80];

		memset(longname, 'k', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		assert_int_equal(kt_unwrap(c, longname, sb[0].blob, sb[0].blob_len, 0, &k),
				 KT_ERR_ARG);
	}
	assert_int_equal(kt_info(c, &in), KT_OK);
	assert_int_equal(in.key_count, 4);

	/* An unreachable daemon. */
	{
		kt_conn *d = kt_conn_new();

		assert_int_equal(kt_connect(d, "/nonexistent/dir/kt.sock"), KT_ERR_CONNECT);
		assert_non_null(strstr(kt_errmsg(d), "/nonexistent/dir/kt.sock"));
		assert_string_equal(kt_status_name(KT_ERR_CONNECT), "ERR_CONNECT");
		assert_int_equal(kt_unwrap(d, "rsa2048", sb[0].blob, sb[0].blob_len, 0, &k),
				 KT_ERR_IO);
		kt_conn_free(d);
	}
	kt_conn_free(c);
}

/* Expected values for one of the mixed items (kept beside it, via item->user). */
struct expect {
	int status;
	size_t vec;             /* simpleblob / copp line */
	int key;                /* key index */
	uint8_t key_bytes[32];  /* given wrap key */
	size_t key_len;
	uint8_t random[16], aes[16];
	uint32_t sseq, cseq;
};

/* Fills item i of a mixed batch and what it must give. */
static void mixed_item(size_t i, struct kt_item *it, struct expect *e)
{
	memset(it, 0, sizeof(*it));
	memset(e, 0, sizeof(*e));
	it->user = e;
	e->status = KT_OK;
	switch (i % 12) {
	case 0: case 1: case 2: case 3:         /* unwrap a vector (not rsa4096: speed) */
		e->vec = (i * 7) % n_sb;
		while (strcmp(sb[e->vec].name, "rsa4096") == 0)
			e->vec = (e->vec + 1) % n_sb;
		it->op = KT_OP_UNWRAP;
		it->in.unwrap.name = sb[e->vec].name;
		it->in.unwrap.blob = sb[e->vec].blob;
		it->in.unwrap.blob_len = sb[e->vec].blob_len;
		it->in.unwrap.padding = sb[e->vec].padding;
		break;
	case 4: case 5:                         /* wrap a given key */
		e->key = i % 2;
		e->vec = (i / 12) % NALGS;
		e->key_len = algs[e->vec].hi;
		fill_random(e->key_bytes, e->key_len);
		it->op = KT_OP_WRAP;
		it->in.wrap.alg_id = algs[e->vec].id;
		it->in.wrap.key = e->key_bytes;
		it->in.wrap.key_len = e->key_len;
		it->in.wrap.padding = (int)(i / 12) % 2;
		if (i % 24 < 12)
			it->in.wrap.to_key = key_names[e->key];
		else {
			it->in.wrap.to_pub = pub_blob[e->key];
			it->in.wrap.to_pub_len = pub_blob_len[e->key];
		}
		break;
	case 6:                                 /* copp-sign, everything given */
		it->op = KT_OP_COPP_SIGN;
		it->in.copp_sign.to_key = "rsa2048";
		fill_random(e->random, 16);
		fill_random(e->aes, 16);
		e->sseq = (uint32_t)i;
		e->cseq = (uint32_t)(i * 3);
		memcpy(it->in.copp_sign.random, e->random, 16);
		memcpy(it->in.copp_sign.aes_key, e->aes, 16);
		it->in.copp_sign.flags = KT_COPP_AES_KEY | KT_COPP_STATUS_SEQ | KT_COPP_COMMAND_SEQ;
		it->in.copp_sign.status_seq = e->sseq;
		it->in.copp_sign.command_seq = e->cseq;
		break;
	case 7: case 8:                         /* copp-open a vector; a wrong random sometimes */
		e->vec = i % n_cv;
		it->op = KT_OP_COPP_OPEN;
		it->in.copp_open.name = cv[e->vec].name;
		it->in.copp_open.sig = cv[e->vec].sig;
		if (i % 12 == 8) {
			if (i % 5 == 0) {
				fill_random(e->random, 16);
				e->status = KT_RANDOM_MISMATCH;
				it->in.copp_open.expect_random = e->random;
			} else {
				it->in.copp_open.expect_random = cv[e->vec].random;
			}
		}
		break;
	case 9:                                 /* pubkey */
		e->key = (int)(i / 12) % NKEYS;
		it->op = KT_OP_PUBKEY_BLOB;
		it->in.pubkey.name = key_names[e->key];
		break;
	case 10:                                /* failures of several kinds */
		switch ((i / 12) % 4) {
		case 0:
			it->op = KT_OP_UNWRAP;
			it->in.unwrap.name = "nosuch";
			it->in.unwrap.blob = sb[0].blob;
			it->in.unwrap.blob_len = sb[0].blob_len;
			e->status = KT_UNKNOWN_KEY;
			break;
		case 1:
			e->vec = (i / 48) % n_neg;
			while (strcmp(neg[e->vec].cls, "decrypt") != 0)
				e->vec = (e->vec + 1) % n_neg;
			it->op = KT_OP_UNWRAP;
			it->in.unwrap.name = "rsa2048";
			it->in.unwrap.blob = neg[e->vec].blob;
			it->in.unwrap.blob_len = neg[e->vec].blob_len;
			it->in.unwrap.padding = KT_PAD_PKCS1 | KT_STRICT;
			e->status = KT_UNWRAP_FAILED;
			break;
		case 2:                         /* both recipients: refused locally */
			it->op = KT_OP_WRAP;
			it->in.wrap.alg_id = 0x660e;
			it->in.wrap.to_key = "rsa2048";
			it->in.wrap.to_pub = pub_blob[1];
			it->in.wrap.to_pub_len = pub_blob_len[1];
			e->status = KT_ERR_ARG;
			break;
		default:
			it->op = KT_OP_COPP_SIGN;
			it->in.copp_sign.to_key = "rsa1024";
			e->status = KT_KEY_SIZE;
			break;
		}
		break;
	default:                                /* wrap a generated key */
		e->key = 1;
		e->vec = (i / 12) % NALGS;
		it->op = KT_OP_WRAP;
		it->in.wrap.alg_id = algs[e->vec].id;
		it->in.wrap.to_key = "rsa2048";
		it->in.wrap.padding = (int)(i / 12) % 2;
		break;
	}
}

/* Checks a finished mixed item; returns an error text or NULL. */
static const char *mixed_check(const struct kt_item *it)
{
	const struct expect *e = it->user;

	if (it->status != e->status)
		return kt_status_name(it->status);
	if (e->status != KT_OK)
		return NULL;
	switch (it->op) {
	case KT_OP_UNWRAP:
		if (it->out.unwrap.alg_id != sb[e->vec].alg || it->out.unwrap.len != sb[e->vec].key_len ||
		    memcmp(it->out.unwrap.key, sb[e->vec].key, sb[e->vec].key_len) != 0)
			return "unwrap result";
		return NULL;
	case KT_OP_WRAP: {
		const struct kt_wrapped *w = &it->out.wrap;
		const struct alg *a = alg_of(it->in.wrap.alg_id);

		if (it->in.wrap.key != NULL) {
			if (w->generated || w->key.len != e->key_len ||
			    memcmp(w->key.key, e->key_bytes, e->key_len) != 0)
				return "wrap: given key not echoed";
			if (!simpleblob_ok(e->key, w->blob, w->blob_len, a->id, e->key_bytes, e->key_len,
					   it->in.wrap.padding))
				return "wrap: blob does not decrypt to the key";
			return NULL;
		}
		if (!w->generated || w->key.len != a->hi || w->key.alg_id != a->id)
			return "wrap: generated key";
		if (!simpleblob_ok(1, w->blob, w->blob_len, a->id, w->key.key, w->key.len,
				   it->in.wrap.padding))
			return "wrap: blob does not decrypt to the generated key";
		return NULL;
	}
	case KT_OP_COPP_SIGN: {
		const struct kt_copp *s = &it->out.copp;

		if (memcmp(s->random, e->random, 16) != 0 || memcmp(s->aes_key, e->aes, 16) != 0 ||
		    s->status_seq != e->sseq || s->command_seq != e->cseq)
			return "copp-sign values";
		if (!copp_sig_ok(s->signature, e->random, e->aes, e->sseq, e->cseq))
			return "copp-sign signature";
		return NULL;
	}
	case KT_OP_COPP_OPEN: {
		const struct kt_copp *o = &it->out.copp;
		const struct copp_vec *v = &cv[e->vec];

		if (memcmp(o->random, v->random, 16) != 0 || memcmp(o->aes_key, v->aes_key, 16) != 0 ||
		    o->status_seq != v->status_seq || o->command_seq != v->command_seq)
			return "copp-open values";
		return NULL;
	}
	case KT_OP_PUBKEY_BLOB:
		if (it->out.blob.len != pub_blob_len[e->key] ||
		    memcmp(it->out.blob.b, pub_blob[e->key], pub_blob_len[e->key]) != 0)
			return "pubkey blob";
		return NULL;
	}
	return "unknown op";
}

static void test_submit_complete(void **state)
{
	enum { N = 60 };
	struct kt_item *items = calloc(N, sizeof(*items));
	struct expect *ex = calloc(N, sizeof(*ex));
	int seen[N] = { 0 }, order[N], out_of_order = 0;
	kt_conn *c = connected();
	struct kt_item *done, bad = { .op = 99 };

	(void)state;
	assert_int_equal(kt_in_flight(c), 0);
	assert_int_equal(kt_complete(c, &done), KT_ERR_ARG);    /* nothing in flight */
	assert_null(done);
	/* Slow rsa4096 unwraps first, then quick ones: answers come back out of order. */
	for (size_t i = 0; i < N; i++) {
		size_t v = 0;

		if (i < 6) {
			/* The i-th rsa4096 line. */
			for (size_t seen4096 = 0;; v++)
				if (strcmp(sb[v].name, "rsa4096") == 0 && seen4096++ == i)
					break;
			memset(&items[i], 0, sizeof(items[i]));
			memset(&ex[i], 0, sizeof(ex[i]));
			items[i].op = KT_OP_UNWRAP;
			items[i].in.unwrap.name = sb[v].name;
			items[i].in.unwrap.blob = sb[v].blob;
			items[i].in.unwrap.blob_len = sb[v].blob_len;
			items[i].in.unwrap.padding = sb[v].padding;
			items[i].user = &ex[i];
			ex[i].vec = v;
		} else {
			mixed_item(i, &items[i], &ex[i]);
			if (ex[i].status == KT_ERR_ARG)
				mixed_item(i + 1, &items[i], &ex[i]);
		}
		assert_int_equal(kt_submit(c, &items[i]), KT_OK);
		assert_int_equal(kt_in_flight(c), i + 1);
	}
	/* A bad item is refused without entering the flight. */
	assert_int_equal(kt_submit(c, &bad), KT_ERR_ARG);
	assert_int_equal(bad.status, KT_ERR_ARG);
	assert_int_equal(kt_in_flight(c), N);
	for (size_t n = 0; n < N; n++) {
		const char *why;
		int idx;

		done = NULL;
		assert_int_equal(kt_complete(c, &done), KT_OK);
		assert_non_null(done);
		idx = (int)(done - items);
		assert_true(idx >= 0 && idx < N);
		assert_int_equal(seen[idx], 0);
		seen[idx] = 1;
		order[n] = idx;
		if (n > 0 && order[n] < order[n - 1])
			out_of_order = 1;
		assert_int_equal(kt_in_flight(c), N - n - 1);
		why = mixed_check(done);
		if (why != NULL)
			fail_msg("item %d (op %d): %s", idx, done->op, why);
	}
	assert_true(out_of_order);
	assert_int_equal(kt_complete(c, &done), KT_ERR_ARG);
	/* Items in flight when the connection closes are forgotten. */
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(kt_submit(c, &items[10 + i]), KT_OK);
	assert_int_equal(kt_in_flight(c), 5);
	kt_close(c);
	assert_int_equal(kt_in_flight(c), 0);
	assert_int_equal(kt_submit(c, &items[10]), KT_ERR_IO);
	kt_conn_free(c);
	free(items);
	free(ex);
}

static void test_batch(void **state)
{
	enum { N = 500 };
	static const unsigned depths[] = { 1, 8, 64, 0 };
	struct kt_item *items = calloc(N, sizeof(*items));
	struct expect *ex = calloc(N, sizeof(*ex));
	kt_conn *c = connected();

	(void)state;
	for (size_t d = 0; d < sizeof(depths) / sizeof(depths[0]); d++) {
		int counts[5] = { 0 }, failures = 0;

		for (size_t i = 0; i < N; i++)
			mixed_item(i + d, &items[i], &ex[i]);
		assert_int_equal(kt_batch(c, items, N, depths[d]), KT_OK);
		assert_int_equal(kt_in_flight(c), 0);
		for (size_t i = 0; i < N; i++) {
			const char *why = mixed_check(&items[i]);

			if (why != NULL)
				fail_msg("depth %u item %zu (op %d): %s", depths[d], i, items[i].op, why);
			counts[items[i].op]++;
			failures += items[i].status != KT_OK;
		}
		for (int op = 0; op < 5; op++)
			assert_true(counts[op] >= 40);
		assert_true(failures >= 40);
	}
	assert_int_equal(kt_batch(c, items, 0, 8), KT_OK);
	assert_int_equal(kt_batch(c, NULL, 3, 8), KT_ERR_ARG);
	/* On a closed connection every item gets the error. */
	kt_close(c);
	for (size_t i = 0; i < 10; i++)
		mixed_item(i, &items[i], &ex[i]);
	assert_int_equal(kt_batch(c, items, 10, 4), KT_ERR_IO);
	for (size_t i = 0; i < 10; i++)
		assert_int_equal(items[i].status, KT_ERR_IO);
	kt_conn_free(c);
	free(items);
	free(ex);
}

/* Eight threads, one connection each, all operations at once. */
struct worker {
	int id;
	int failures;
	char first[200];
};

static void worker_fail(struct worker *w, const char *what, int st)
{
	if (w->failures++ == 0)
		snprintf(w->first, sizeof(w->first), "%s: %s", what, kt_status_name(st));
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	kt_conn *c = kt_conn_new();
	int st;

	if (c == NULL || (st = kt_connect(c, sock_path)) != KT_OK) {
		worker_fail(w, "connect", c == NULL ? KT_ERR_NOMEM : st);
		kt_conn_free(c);
		return NULL;
	}
	for (int round = 0; round < 25; round++) {
		const struct sb_vec *v = &sb[(size_t)(w->id * 25 + round) % n_sb];
		struct kt_session_key k;
		struct kt_wrapped wr;
		struct kt_copp s, o;
		struct kt_copp_sign_args ca = { .to_key = "rsa2048" };
		struct kt_wrap_args wa = { .alg_id = algs[round % NALGS].id,
					   .to_key = key_names[round % 2],
					   .padding = round % 2 };
		struct kt_info in;
		uint8_t *p;
		size_t n;

		st = kt_unwrap(c, v->name, v->blob, v->blob_len, v->padding, &k);
		if (st != KT_OK || k.len != v->key_len || memcmp(k.key, v->key, k.len) != 0)
			worker_fail(w, "unwrap", st);
		st = kt_wrap(c, &wa, &wr);
		if (st == KT_OK)
			st = kt_unwrap(c, wa.to_key, wr.blob, wr.blob_len, wa.padding, &k);
		if (st != KT_OK || k.len != wr.key.len || memcmp(k.key, wr.key.key, k.len) != 0)
			worker_fail(w, "wrap+unwrap", st);
		for (int i = 0; i < 16; i++)
			ca.random[i] = (uint8_t)(w->id * 31 + round + i);
		st = kt_copp_sign(c, &ca, &s);
		if (st == KT_OK)
			st = kt_copp_open(c, "rsa2048", s.signature, ca.random, &o);
		if (st != KT_OK || memcmp(o.aes_key, s.aes_key, 16) != 0 ||
		    o.status_seq != s.status_seq || o.command_seq != s.command_seq)
			worker_fail(w, "copp", st);
		st = kt_pubkey(c, key_names[round % NKEYS], KT_FMT_BLOB, &p, &n);
		if (st != KT_OK || n != pub_blob_len[round % NKEYS] ||
		    memcmp(p, pub_blob[round % NKEYS], n) != 0)
			worker_fail(w, "pubkey", st);
		kt_free(p);
		st = kt_unwrap(c, "nosuch", v->blob, v->blob_len, 0, &k);
		if (st != KT_UNKNOWN_KEY || strstr(kt_errmsg(c), "nosuch") == NULL)
			worker_fail(w, "unknown key", st);
		st = kt_info(c, &in);
		if (st != KT_OK || in.key_count != 4)
			worker_fail(w, "info", st);
	}
	kt_conn_free(c);
	return NULL;
}

static void test_threads(void **state)
{
	enum { NT = 8 };
	pthread_t t[NT];
	struct worker w[NT];

	(void)state;
	for (int i = 0; i < NT; i++) {
		w[i] = (struct worker){ .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < NT; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < NT; i++)
		if (w[i].failures != 0)
			fail_msg("thread %d: %d failures, first %s", i, w[i].failures, w[i].first);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_and_status_names),
		cmocka_unit_test(test_connect_close_free),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_info),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_pubkey),
		cmocka_unit_test(test_unwrap_vectors),
		cmocka_unit_test(test_wrap_then_unwrap),
		cmocka_unit_test(test_copp),
		cmocka_unit_test(test_opm),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_submit_complete),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_threads),
	};

	srand(12345);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
