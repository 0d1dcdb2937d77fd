/*
 * The baselines keytransd is measured against (docs/performance.md):
 *
 *   p11-direct decrypt --module SO --token LABEL --pin-file F --key LABEL
 *                      [--mechanism pkcs|x509] [--threads N] [--seconds S] [--json]
 *       N threads, each with its own PKCS#11 session, calling C_DecryptInit +
 *       C_Decrypt on the same key for S seconds: the HSM's own ceiling, with
 *       nothing between the caller and the module.
 *
 *   p11-direct wrap --pubkey PEM [--threads N] [--seconds S] [--json]
 *       N threads wrapping a 16-byte session key into a SIMPLEBLOB with
 *       OpenSSL in process (what the daemon's wrap does, minus the daemon).
 *
 * Output: ops/s and per-operation latency percentiles, as keytrans bench.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>

#include "alg.h"
#include "simpleblob.h"

struct opts {
	const char *mode, *module, *token, *pin_file, *key, *pubkey, *mechanism;
	int threads;
	double seconds;
	int json;
};

struct run {
	const struct opts *o;
	CK_FUNCTION_LIST *p11;
	CK_SLOT_ID slot;
	EVP_PKEY *pub;
	uint8_t c[RSA_MAX_BYTES];       /* a ciphertext that decrypts under either mechanism */
	size_t k;
	double end;
};

struct thread {
	pthread_t tid;
	struct run *r;
	uint64_t ops, errors;
	uint32_t *lat;
	size_t n, cap;
	char error[200];
	CK_SESSION_HANDLE s;            /* closed by main once every thread is done */
	int open;
	double cpu_s;                   /* this thread's CPU in its operation loop only */
};

/* The calling thread's CPU time: the HSM's cost per operation, without start-up and login. */
static double thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void record(struct thread *t, double started)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 65536;
		uint32_t *p = realloc(t->lat, cap * sizeof(*p));

		if (p == NULL)
			return;
		t->lat = p;
		t->cap = cap;
	}
	t->lat[t->n++] = (uint32_t)((now_s() - started) * 1e6);
}

static void fail(struct thread *t, const char *what, CK_RV rv)
{
	t->errors++;
	if (t->error[0] == '\0')
		snprintf(t->error, sizeof(t->error), "%.150s: CKR 0x%lx", what, (unsigned long)rv);
}

/* The private key object labelled o->key, found in session s. */
static CK_OBJECT_HANDLE find_key(CK_FUNCTION_LIST *p11, CK_SESSION_HANDLE s, const char *label)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_ULONG n = 0;

	if (p11->C_FindObjectsInit(s, tmpl, 2) == CKR_OK) {
		p11->C_FindObjects(s, &h, 1, &n);
		p11->C_FindObjectsFinal(s);
	}
	return n == 1 ? h : CK_INVALID_HANDLE;
}

/*
 * Threads open their sessions and look their key up one at a time: set-up is not
 * what is measured, and some modules do not survive concurrent C_FindObjects
 * (tpm2-pkcs11 1.9 sometimes finds nothing).
 */
static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;

static void *decrypt_thread(void *arg)
{
	struct thread *t = arg;
	struct run *r = t->r;
	CK_MECHANISM mech = { strcmp(r->o->mechanism, "x509") == 0 ? CKM_RSA_X_509 : CKM_RSA_PKCS,
			      NULL, 0 };
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE key;
	uint8_t out[RSA_MAX_BYTES];
	CK_RV rv;

	pthread_mutex_lock(&setup_lock);
	rv = r->p11->C_OpenSession(r->slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (rv != CKR_OK) {
		pthread_mutex_unlock(&setup_lock);
		fail(t, "C_OpenSession", rv);
		return NULL;
	}
	/*
	 * Not closed here: a thread that ends first would close its session while the
	 * others still decrypt, which some modules do not survive (tpm2-pkcs11 1.9);
	 * that is not what is measured.
	 */
	t->s = s;
	t->open = 1;
	key = find_key(r->p11, s, r->o->key);
	pthread_mutex_unlock(&setup_lock);
	if (key == CK_INVALID_HANDLE) {
		fail(t, "no such key", 0);
		return NULL;
	}
	t->cpu_s = -thread_cpu_s();
	while (now_s() < r->end) {
		CK_ULONG out_len = sizeof(out);
		double started = now_s();

		rv = r->p11->C_DecryptInit(s, &mech, key);
		if (rv == CKR_OK)
			rv = r->p11->C_Decrypt(s, r->c, (CK_ULONG)r->k, out, &out_len);
		if (rv != CKR_OK) {
			fail(t, "C_Decrypt", rv);
			continue;
		}
		record(t, started);
		t->ops++;
	}
	t->cpu_s += thread_cpu_s();
	return NULL;
}

static void *wrap_thread(void *arg)
{
	struct thread *t = arg;
	struct run *r = t->r;
	const struct alg_info *aes = alg_by_id(0x660e);
	/* The best an application could do in process: one context, reused. */
	EVP_PKEY_CTX *enc = rsa_pub_encrypt_ctx(r->pub, RSA_PAD_PKCS1);
	uint8_t key[16], blob[SIMPLEBLOB_MAX];
	char why[160];
	size_t len;

	RAND_bytes(key, sizeof(key));
	while (now_s() < r->end) {
		double started = now_s();

		if (simpleblob_wrap_with(enc, r->k, aes, key, sizeof(key), RSA_PAD_PKCS1, blob, &len, why,
					 sizeof(why)) != 0) {
			fail(t, why, 0);
			continue;
		}
		record(t, started);
		t->ops++;
	}
	EVP_PKEY_CTX_free(enc);
	return NULL;
}

static CK_FUNCTION_LIST *load_module(const char *path)
{
	/* Several threads call the module: it must do its own locking (as libp11 asks too). */
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_RV (*get)(CK_FUNCTION_LIST **);
	CK_FUNCTION_LIST *p11 = NULL;
	void *so = dlopen(path, RTLD_NOW);

	if (so == NULL)
		return NULL;
	*(void **)&get = dlsym(so, "C_GetFunctionList");
	if (get == NULL || get(&p11) != CKR_OK || p11->C_Initialize(&args) != CKR_OK)
		return NULL;
	return p11;
}

/* The slot holding the token labelled label (CK_TOKEN_INFO pads labels with spaces). */
static int find_slot(CK_FUNCTION_LIST *p11, const char *label, CK_SLOT_ID *slot)
{
	CK_SLOT_ID ids[64];
	CK_ULONG n = 64;

	if (p11->C_GetSlotList(CK_TRUE, ids, &n) != CKR_OK)
		return -1;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		size_t len = strlen(label);

		if (p11->C_GetTokenInfo(ids[i], &ti) != CKR_OK || len > sizeof(ti.label))
			continue;
		if (memcmp(ti.label, label, len) == 0 &&
		    (len == sizeof(ti.label) || ti.label[len] == ' ')) {
			*slot = ids[i];
			return 0;
		}
	}
	return -1;
}

static int login(struct run *r)
{
	CK_SESSION_HANDLE s;
	char pin[256];
	FILE *f = fopen(r->o->pin_file, "r");
	CK_RV rv;

	if (f == NULL || fgets(pin, sizeof(pin), f) == NULL) {
		if (f != NULL)
			fclose(f);
		return -1;
	}
	fclose(f);
	pin[strcspn(pin, "\r\n")] = '\0';
	/* A login holds for every session of the application. */
	rv = r->p11->C_OpenSession(r->slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (rv == CKR_OK)
		rv = r->p11->C_Login(s, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
	return rv == CKR_OK ? 0 : -1;
}

/* A ciphertext of a valid PKCS#1 v1.5 block, so that both mechanisms succeed. */
static int make_ciphertext(struct run *r, const char *pubkey)
{
	FILE *f = fopen(pubkey, "r");
	uint8_t msg[16];

	if (f == NULL)
		return -1;
	r->pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (r->pub == NULL)
		return -1;
	r->k = (size_t)EVP_PKEY_get_size(r->pub);
	RAND_bytes(msg, sizeof(msg));
	return rsa_pub_encrypt(r->pub, RSA_PAD_PKCS1, msg, sizeof(msg), r->c, r->k);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void report(const struct opts *o, struct thread *ts, double seconds)
{
	uint64_t ops = 0, errors = 0;
	size_t n = 0;
	uint32_t *all;
	const char *err = "";
	double cpu = 0;

	for (int i = 0; i < o->threads; i++) {
		cpu += ts[i].cpu_s;
		ops += ts[i].ops;
		errors += ts[i].errors;
		n += ts[i].n;
		if (*err == '\0')
			err = ts[i].error;
	}
	all = malloc((n ? n : 1) * sizeof(*all));
	n = 0;
	for (int i = 0; all != NULL && i < o->threads; i++) {
		memcpy(all + n, ts[i].lat, ts[i].n * sizeof(*all));
		n += ts[i].n;
	}
	if (all != NULL)
		qsort(all, n, sizeof(*all), cmp_u32);
#define PCT(p) (n ? all[(n * (p) + 99) / 100 - 1] : 0)
	if (o->json) {
		printf("{\"op\": \"%s%s%s\", \"threads\": %d, \"requests\": %llu, \"errors\": %llu, "
		       "\"ops_per_s\": %.1f, \"p50_us\": %u, \"p90_us\": %u, \"p99_us\": %u, "
		       "\"max_us\": %u, \"loop_cpu_us\": %.1f, \"first_error\": \"", o->mode,
		       strcmp(o->mode, "decrypt") == 0 ? "-" : "",
		       strcmp(o->mode, "decrypt") == 0 ? o->mechanism : "", o->threads,
		       (unsigned long long)ops, (unsigned long long)errors, (double)ops / seconds,
		       PCT(50), PCT(90), PCT(99), n ? all[n - 1] : 0, ops ? cpu * 1e6 / (double)ops : 0.0);
		for (const char *c = err; *c; c++)      /* a JSON string: no quotes, no controls */
			putchar(*c == '"' || *c == '\\' || (unsigned char)*c < 0x20 ? '?' : *c);
		printf("\"}\n");
	} else
		printf("%s: %d threads, %.0f ops/s, p50 %u us, p99 %u us, errors %llu%s%s\n", o->mode,
		       o->threads, (double)ops / seconds, PCT(50), PCT(99), (unsigned long long)errors,
		       *err ? ", first: " : "", err);
#undef PCT
	free(all);
}

static int parse(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->threads = 1;
	o->seconds = 5;
	o->mechanism = "pkcs";
	if (argc < 2)
		return -1;
	o->mode = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--json") == 0) {
			o->json = 1;
			continue;
		}
		if (v == NULL)
			return -1;
		i++;
		if (strcmp(a, "--module") == 0) o->module = v;
		else if (strcmp(a, "--token") == 0) o->token = v;
		else if (strcmp(a, "--pin-file") == 0) o->pin_file = v;
		else if (strcmp(a, "--key") == 0) o->key = v;
		else if (strcmp(a, "--pubkey") == 0) o->pubkey = v;
		else if (strcmp(a, "--mechanism") == 0) o->mechanism = v;
		else if (strcmp(a, "--threads") == 0) o->threads = atoi(v);
		else if (strcmp(a, "--seconds") == 0) o->seconds = atof(v);
		else return -1;
	}
	if (o->threads < 1 || o->threads > 64 || o->seconds <= 0 || o->pubkey == NULL)
		return -1;
	if (strcmp(o->mode, "wrap") == 0)
		return 0;
	return strcmp(o->mode, "decrypt") == 0 && o->module && o->token && o->pin_file && o->key &&
	       (strcmp(o->mechanism, "pkcs") == 0 || strcmp(o->mechanism, "x509") == 0) ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct run r = { .o = &o };
	struct thread *ts;
	int decrypt;
	double start;

	if (parse(argc, argv, &o) != 0) {
		fprintf(stderr, "usage: p11-direct decrypt --module SO --token LABEL --pin-file F --key LABEL "
				"--pubkey PEM [--mechanism pkcs|x509] [--threads N] [--seconds S] [--json]\n"
				"       p11-direct wrap --pubkey PEM [--threads N] [--seconds S] [--json]\n");
		return 2;
	}
	decrypt = strcmp(o.mode, "decrypt") == 0;
	if (make_ciphertext(&r, o.pubkey) != 0) {
		fprintf(stderr, "p11-direct: cannot use the public key %s\n", o.pubkey);
		return 1;
	}
	if (decrypt && ((r.p11 = load_module(o.module)) == NULL || find_slot(r.p11, o.token, &r.slot) != 0 ||
			login(&r) != 0)) {
		fprintf(stderr, "p11-direct: cannot load %s, find token %s or log in\n", o.module, o.token);
		return 1;
	}
	ts = calloc((size_t)o.threads, sizeof(*ts));
	start = now_s();
	r.end = start + o.seconds;
	for (int i = 0; i < o.threads; i++) {
		ts[i].r = &r;
		pthread_create(&ts[i].tid, NULL, decrypt ? decrypt_thread : wrap_thread, &ts[i]);
	}
	for (int i = 0; i < o.threads; i++)
		pthread_join(ts[i].tid, NULL);
	report(&o, ts, now_s() - start);
	for (int i = 0; i < o.threads; i++)
		if (ts[i].open)
			r.p11->C_CloseSession(ts[i].s);
	for (int i = 0; i < o.threads; i++)
		free(ts[i].lat);
	free(ts);
	if (decrypt)
		r.p11->C_Finalize(NULL);
	EVP_PKEY_free(r.pub);
	return 0;
}
