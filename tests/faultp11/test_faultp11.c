/*
 * The fault-injecting PKCS#11 module: forwarding, each action, rereading the
 * control file, malformed files, concurrency, the call log.
 *
 * argv[1]: libfaultp11.so. KT_VECTORS: the test vectors (keys/rsa2048.pem).
 * The test makes its own SoftHSM token in a temporary folder (FAULTP11_KEEP=1
 * keeps it) and points faultp11 at SoftHSM (FAULTP11_TEST_SOFTHSM overrides
 * /usr/lib/softhsm/libsofthsm2.so).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <p11-kit/pkcs11.h>

extern char **environ;

#define PIN "4321"
#define SO_PIN "87654321"
#define TOKEN "fp-test"
#define KEY_LABEL "rsa2048"
#define K 256 /* bytes of the RSA-2048 modulus */

static struct {
	const char *module;        /* libfaultp11.so */
	const char *softhsm;
	char dir[64];
	char control[128], control_tmp[128], log[128], errfile[128];
	CK_FUNCTION_LIST_PTR p11;  /* faultp11's list */
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE key;
	unsigned char in[K], expect[K];
} T;

/* ---- helpers ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Runs argv with stdout sent to /dev/null; dies unless it exits 0. */
static void run(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0)
		die("cannot run %s", argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("%s %s failed", argv[0], argv[1]);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) != 0)
		die("cannot write %s", path);
}

/* The control file, replaced at once (rename). */
static void control(const char *text)
{
	write_file(T.control_tmp, text, strlen(text));
	if (rename(T.control_tmp, T.control) != 0)
		die("rename: %s", strerror(errno));
}

/* The control file, rewritten in place (truncated, then written). */
static void control_inplace(const char *text)
{
	write_file(T.control, text, strlen(text));
}

static CK_RV get_random(CK_SESSION_HANDLE s)
{
	unsigned char buf[16];

	return T.p11->C_GenerateRandom(s, buf, sizeof(buf));
}

static CK_RV get_info(void)
{
	CK_INFO info;

	return T.p11->C_GetInfo(&info);
}

/* Raw RSA with the private key; *init_rv tells whether C_DecryptInit failed. */
static CK_RV decrypt_with(CK_FUNCTION_LIST_PTR p11, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
			  unsigned char *out, CK_RV *init_rv)
{
	CK_MECHANISM mech = { CKM_RSA_X_509, NULL, 0 };
	CK_ULONG out_len = K;
	CK_RV rv = p11->C_DecryptInit(s, &mech, key);

	if (init_rv != NULL)
		*init_rv = rv;
	if (rv != CKR_OK)
		return rv;
	rv = p11->C_Decrypt(s, T.in, K, out, &out_len);
	if (rv == CKR_OK && out_len != K)
		return CKR_GENERAL_ERROR;
	return rv;
}

static CK_RV decrypt(CK_SESSION_HANDLE s, CK_RV *init_rv)
{
	unsigned char out[K];
	CK_RV rv = decrypt_with(T.p11, s, T.key, out, init_rv);

	if (rv == CKR_OK && memcmp(out, T.expect, K) != 0)
		return CKR_GENERAL_ERROR;
	return rv;
}

static CK_SLOT_ID find_slot(CK_FUNCTION_LIST_PTR p11)
{
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16;
	CK_TOKEN_INFO ti;

	if (p11->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
		die("C_GetSlotList failed");
	for (CK_ULONG i = 0; i < n; i++)
		if (p11->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    memcmp(ti.label, TOKEN, strlen(TOKEN)) == 0 && ti.label[strlen(TOKEN)] == ' ')
			return slots[i];
	die("token %s not found", TOKEN);
	return 0;
}

static CK_RV find_key(CK_FUNCTION_LIST_PTR p11, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *key)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)KEY_LABEL, strlen(KEY_LABEL) },
	};
	CK_ULONG n = 0;
	CK_RV rv = p11->C_FindObjectsInit(s, tmpl, 2);

	if (rv != CKR_OK)
		return rv;
	rv = p11->C_FindObjects(s, key, 1, &n);
	p11->C_FindObjectsFinal(s);
	if (rv == CKR_OK && n != 1)
		rv = CKR_OBJECT_HANDLE_INVALID;
	return rv;
}

static CK_FUNCTION_LIST_PTR load_list(const char *path, void **handle, CK_RV *rv)
{
	CK_C_GetFunctionList get;
	CK_FUNCTION_LIST_PTR list = NULL;

	*handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (*handle == NULL)
		die("dlopen %s: %s", path, dlerror());
	*(void **)&get = dlsym(*handle, "C_GetFunctionList");
	if (get == NULL)
		die("%s has no C_GetFunctionList", path);
	*rv = get(&list);
	return list;
}

/* The raw RSA result through SoftHSM itself, for comparison. */
static void reference_result(void)
{
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE key;
	CK_RV rv;
	void *h;
	CK_FUNCTION_LIST_PTR p11 = load_list(T.softhsm, &h, &rv);

	if (rv != CKR_OK || p11 == NULL || p11->C_Initialize(&args) != CKR_OK)
		die("cannot initialise %s", T.softhsm);
	if (p11->C_OpenSession(find_slot(p11), CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
			       &s) != CKR_OK ||
	    p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)PIN, strlen(PIN)) != CKR_OK ||
	    find_key(p11, s, &key) != CKR_OK || decrypt_with(p11, s, key, T.expect, NULL) != CKR_OK)
		die("reference decryption through SoftHSM failed");
	p11->C_Finalize(NULL);
	dlclose(h);
}

static void make_token(void)
{
	const char *vectors = getenv("KT_VECTORS");
	char conf[128], pem[512], text[256];

	if (vectors == NULL)
		die("KT_VECTORS is not set");
	snprintf(T.dir, sizeof(T.dir), "/tmp/faultp11-XXXXXX");
	if (mkdtemp(T.dir) == NULL)
		die("mkdtemp: %s", strerror(errno));
	snprintf(text, sizeof(text), "%s/tokens", T.dir);
	mkdir(text, 0700);
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", T.dir);
	snprintf(text, sizeof(text),
		 "directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
		 T.dir);
	write_file(conf, text, strlen(text));
	setenv("SOFTHSM2_CONF", conf, 1);
	snprintf(pem, sizeof(pem), "%s/keys/rsa2048.pem", vectors);
	run((char *[]){ "softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--so-pin",
			SO_PIN, "--pin", PIN, NULL });
	run((char *[]){ "softhsm2-util", "--import", pem, "--token", TOKEN, "--label", KEY_LABEL,
			"--id", "02", "--pin", PIN, NULL });
}

/* ---- tests ---- */

static void test_function_list(void **state)
{
	CK_FUNCTION_LIST_PTR again = NULL;
	void (**fn)(void);
	size_t n = (sizeof(CK_FUNCTION_LIST) - offsetof(CK_FUNCTION_LIST, C_Initialize)) /
		   sizeof(void (*)(void));

	(void)state;
	assert_int_equal(n, 68);
	fn = (void (**)(void))((char *)T.p11 + offsetof(CK_FUNCTION_LIST, C_Initialize));
	for (size_t i = 0; i < n; i++)
		assert_non_null(fn[i]);
	assert_int_equal(T.p11->version.major, 2);
	assert_int_equal(T.p11->C_GetFunctionList(&again), CKR_OK);
	assert_ptr_equal(again, T.p11);
	assert_int_equal(T.p11->C_GetFunctionList(NULL), CKR_ARGUMENTS_BAD);
}

static void test_forwarding(void **state)
{
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_INFO info;
	CK_TOKEN_INFO ti;
	CK_SESSION_INFO si;

	(void)state;
	assert_int_equal(T.p11->C_Initialize(&args), CKR_OK);
	assert_int_equal(T.p11->C_GetInfo(&info), CKR_OK);
	assert_memory_equal(info.manufacturerID, "SoftHSM", 7);
	T.slot = find_slot(T.p11);
	assert_int_equal(T.p11->C_GetTokenInfo(T.slot, &ti), CKR_OK);
	assert_true(ti.flags & CKF_TOKEN_INITIALIZED);
	assert_int_equal(T.p11->C_OpenSession(T.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
					      NULL, &T.session),
			 CKR_OK);
	assert_int_equal(T.p11->C_Login(T.session, CKU_USER, (CK_UTF8CHAR_PTR)PIN, strlen(PIN)),
			 CKR_OK);
	assert_int_equal(T.p11->C_GetSessionInfo(T.session, &si), CKR_OK);
	assert_int_equal(si.state, CKS_RW_USER_FUNCTIONS);
	assert_int_equal(find_key(T.p11, T.session, &T.key), CKR_OK);
	assert_int_equal(decrypt(T.session, NULL), CKR_OK);  /* equal to SoftHSM's own answer */
	assert_int_equal(get_random(T.session), CKR_OK);
}

static void test_rv(void **state)
{
	CK_RV init_rv;
	CK_TOKEN_INFO ti;
	CK_SLOT_INFO si;
	CK_SESSION_INFO sei;

	(void)state;
	/* count and after; the failed C_Decrypt still ends the operation. */
	control("C_Decrypt rv=CKR_DEVICE_ERROR count=2 after=1\n");
	assert_int_equal(decrypt(T.session, NULL), CKR_OK);
	assert_int_equal(decrypt(T.session, &init_rv), CKR_DEVICE_ERROR);
	assert_int_equal(init_rv, CKR_OK);
	assert_int_equal(decrypt(T.session, &init_rv), CKR_DEVICE_ERROR);
	assert_int_equal(init_rv, CKR_OK);
	assert_int_equal(decrypt(T.session, &init_rv), CKR_OK);
	assert_int_equal(decrypt(T.session, NULL), CKR_OK);

	control("C_DecryptInit rv=CKR_KEY_HANDLE_INVALID count=1\n");
	assert_int_equal(decrypt(T.session, &init_rv), CKR_KEY_HANDLE_INVALID);
	assert_int_equal(init_rv, CKR_KEY_HANDLE_INVALID);
	assert_int_equal(decrypt(T.session, NULL), CKR_OK);

	/* Names, hexadecimal, decimal, vendor codes. */
	control("C_GetTokenInfo rv=0xe0\n"
		"C_GetSlotInfo rv=50\n"
		"C_GetSessionInfo rv=CKR_USER_NOT_LOGGED_IN\n"
		"C_GenerateRandom rv=CKR_CRYPTOKI_NOT_INITIALIZED\n"
		"C_GetInfo rv=0x80000001\n");
	assert_int_equal(T.p11->C_GetTokenInfo(T.slot, &ti), CKR_TOKEN_NOT_PRESENT);
	assert_int_equal(T.p11->C_GetSlotInfo(T.slot, &si), CKR_DEVICE_REMOVED);
	assert_int_equal(T.p11->C_GetSessionInfo(T.session, &sei), CKR_USER_NOT_LOGGED_IN);
	assert_int_equal(get_random(T.session), CKR_CRYPTOKI_NOT_INITIALIZED);
	assert_int_equal(get_info(), 0x80000001UL);
	assert_int_equal(decrypt(T.session, NULL), CKR_OK);  /* not named: untouched */

	/* Each rule counts the calls it matches; the first that fires applies. */
	control("C_GenerateRandom rv=CKR_DEVICE_MEMORY after=1 count=1\n"
		"C_GenerateRandom rv=CKR_DEVICE_ERROR after=3\n");
	assert_int_equal(get_random(T.session), CKR_OK);
	assert_int_equal(get_random(T.session), CKR_DEVICE_MEMORY);
	assert_int_equal(get_random(T.session), CKR_OK);
	assert_int_equal(get_random(T.session), CKR_DEVICE_ERROR);
	assert_int_equal(get_random(T.session), CKR_DEVICE_ERROR);

	/* Every function. */
	control("* rv=CKR_DEVICE_REMOVED\n");
	assert_int_equal(get_info(), CKR_DEVICE_REMOVED);
	assert_int_equal(get_random(T.session), CKR_DEVICE_REMOVED);
	assert_int_equal(decrypt(T.session, &init_rv), CKR_DEVICE_REMOVED);
	assert_int_equal(init_rv, CKR_DEVICE_REMOVED);
	assert_int_equal(T.p11->C_GetTokenInfo(T.slot, &ti), CKR_DEVICE_REMOVED);
	control("");
	assert_int_equal(get_info(), CKR_OK);
	assert_int_equal(decrypt(T.session, NULL), CKR_OK);
}

static void test_login_and_sessions(void **state)
{
	CK_SESSION_HANDLE s2, s3;

	(void)state;
	assert_int_equal(T.p11->C_OpenSession(T.slot, CKF_SERIAL_SESSION, NULL, NULL, &s2), CKR_OK);
	control("C_Login rv=CKR_PIN_INCORRECT\n");
	assert_int_equal(T.p11->C_Login(s2, CKU_USER, (CK_UTF8CHAR_PTR)PIN, strlen(PIN)),
			 CKR_PIN_INCORRECT);
	control("C_OpenSession rv=CKR_SESSION_COUNT\n");
	assert_int_equal(T.p11->C_OpenSession(T.slot, CKF_SERIAL_SESSION, NULL, NULL, &s3),
			 CKR_SESSION_COUNT);
	control("C_CloseSession rv=CKR_SESSION_HANDLE_INVALID count=1\n");
	assert_int_equal(T.p11->C_CloseSession(s2), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(T.p11->C_CloseSession(s2), CKR_OK);  /* it was not closed */
	control("");
	assert_int_equal(T.p11->C_CloseSession(s2), CKR_SESSION_HANDLE_INVALID);
}

static void test_prob(void **state)
{
	int failed = 0;

	(void)state;
	control("C_GenerateRandom rv=CKR_DEVICE_ERROR prob=0.25\n");
	for (int i = 0; i < 1000; i++) {
		CK_RV rv = get_random(T.session);

		assert_true(rv == CKR_OK || rv == CKR_DEVICE_ERROR);
		failed += rv != CKR_OK;
	}
	assert_in_range(failed, 150, 350);
	control("C_GenerateRandom rv=CKR_DEVICE_ERROR prob=0\n");
	for (int i = 0; i < 100; i++)
		assert_int_equal(get_random(T.session), CKR_OK);
	control("C_GenerateRandom rv=CKR_DEVICE_ERROR prob=1.0 count=50\n");
	for (int i = 0; i < 50; i++)
		assert_int_equal(get_random(T.session), CKR_DEVICE_ERROR);
	assert_int_equal(get_random(T.session), CKR_OK);
	control("");
}

static void test_delay(void **state)
{
	int64_t t0, t;

	(void)state;
	control("C_GenerateRandom delay=200\n");
	t0 = now_ms();
	assert_int_equal(get_random(T.session), CKR_OK);
	t = now_ms() - t0;
	assert_in_range(t, 200, 2000);
	/* Other functions are not delayed: a delay far longer than any scheduling hiccup. */
	control("C_GenerateRandom delay=20000\n");
	t0 = now_ms();
	assert_int_equal(get_info(), CKR_OK);
	assert_in_range(now_ms() - t0, 0, 10000);

	control("C_Decrypt delay=150 rv=CKR_DEVICE_ERROR\n");
	t0 = now_ms();
	assert_int_equal(decrypt(T.session, NULL), CKR_DEVICE_ERROR);
	assert_in_range(now_ms() - t0, 150, 2000);
	control("");
	assert_int_equal(decrypt(T.session, NULL), CKR_OK);
}

struct caller {
	pthread_t thread;
	atomic_bool done;
	CK_RV rv;
	int64_t ended;
};

static void *call_random(void *arg)
{
	struct caller *c = arg;

	c->rv = get_random(T.session);
	c->ended = now_ms();
	atomic_store(&c->done, true);
	return NULL;
}

static bool wait_done(struct caller *c, long ms)
{
	int64_t end = now_ms() + ms;

	while (!atomic_load(&c->done) && now_ms() < end)
		sleep_ms(5);
	return atomic_load(&c->done);
}

static void test_hang(void **state)
{
	struct caller c = { .done = false };
	int64_t released;

	(void)state;
	control("C_GenerateRandom hang\n");
	assert_int_equal(pthread_create(&c.thread, NULL, call_random, &c), 0);
	assert_false(wait_done(&c, 300));
	/* Other functions go on; a rewrite that keeps the rule keeps the call hanging. */
	assert_int_equal(get_info(), CKR_OK);
	control("C_GetInfo rv=CKR_DEVICE_ERROR\nC_GenerateRandom hang\n");
	assert_int_equal(get_info(), CKR_DEVICE_ERROR);
	assert_false(wait_done(&c, 200));
	/* Removing the rule releases the call, which then reaches SoftHSM. */
	control("");
	released = now_ms();
	assert_true(wait_done(&c, 10000));
	assert_in_range(c.ended - released, 0, 10000);
	assert_int_equal(c.rv, CKR_OK);
	pthread_join(c.thread, NULL);

	/* count=1: only the first call hangs; deleting the file releases it. */
	control("C_GenerateRandom hang count=1\n");
	memset(&c, 0, sizeof(c));
	assert_int_equal(pthread_create(&c.thread, NULL, call_random, &c), 0);
	assert_false(wait_done(&c, 200));
	unlink(T.control);
	assert_true(wait_done(&c, 10000));
	assert_int_equal(c.rv, CKR_OK);
	pthread_join(c.thread, NULL);
}

static void test_reread(void **state)
{
	(void)state;
	/* In place, same size, at once: seen although inode, size and maybe mtime agree. */
	control_inplace("C_GenerateRandom rv=0x30\n");
	assert_int_equal(get_random(T.session), CKR_DEVICE_ERROR);
	control_inplace("C_GenerateRandom rv=0x32\n");
	assert_int_equal(get_random(T.session), CKR_DEVICE_REMOVED);
	control_inplace("C_GenerateRandom rv=0x31\n");
	assert_int_equal(get_random(T.session), CKR_DEVICE_MEMORY);
	/* Replaced. */
	control("C_GenerateRandom rv=CKR_TOKEN_NOT_PRESENT count=1\n");
	assert_int_equal(get_random(T.session), CKR_TOKEN_NOT_PRESENT);
	assert_int_equal(get_random(T.session), CKR_OK);
	/* Rewriting a file re-arms its counters. */
	control("C_GenerateRandom rv=CKR_TOKEN_NOT_PRESENT count=1\n");
	assert_int_equal(get_random(T.session), CKR_TOKEN_NOT_PRESENT);
	assert_int_equal(get_random(T.session), CKR_OK);
	/* Absent, empty, comments only: no faults. */
	control("C_GenerateRandom rv=CKR_DEVICE_ERROR\n");
	assert_int_equal(get_random(T.session), CKR_DEVICE_ERROR);
	unlink(T.control);
	assert_int_equal(get_random(T.session), CKR_OK);
	control("C_GenerateRandom rv=CKR_DEVICE_ERROR\n");
	assert_int_equal(get_random(T.session), CKR_DEVICE_ERROR);
	control("");
	assert_int_equal(get_random(T.session), CKR_OK);
	control("# C_GenerateRandom rv=CKR_DEVICE_ERROR\n\n   \n");
	assert_int_equal(get_random(T.session), CKR_OK);
	/* A directory in its place. */
	unlink(T.control);
	mkdir(T.control, 0700);
	assert_int_equal(get_random(T.session), CKR_OK);
	rmdir(T.control);
}

static int count_lines(const char *path, const char *needle)
{
	char line[512];
	int n = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* Runs calls with stderr sent to T.errfile. */
static int saved_stderr = -1;

static void stderr_to_file(void)
{
	int fd = open(T.errfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	fflush(stderr);
	saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
}

static void stderr_back(void)
{
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
}

static void test_malformed(void **state)
{
	char text[4096], *p = text;
	static const char *const bad[] = {
		"C_Bogus rv=CKR_DEVICE_ERROR",
		"c_generaterandom rv=CKR_DEVICE_ERROR",
		"C_GenerateRandom",
		"C_GenerateRandom rv=CKR_NO_SUCH_THING",
		"C_GenerateRandom rv=0xZZ",
		"C_GenerateRandom rv=-1",
		"C_GenerateRandom rv=0x10000000000000000",
		"C_GenerateRandom rv=",
		"C_GenerateRandom rv",
		"C_GenerateRandom delay=abc",
		"C_GenerateRandom delay=3600001",
		"C_GenerateRandom delay=99999999999999999999999",
		"C_GenerateRandom rv=0x30 count=0",
		"C_GenerateRandom rv=0x30 count=x",
		"C_GenerateRandom rv=0x30 after=-2",
		"C_GenerateRandom rv=0x30 prob=1.5",
		"C_GenerateRandom rv=0x30 prob=0.5.5",
		"C_GenerateRandom rv=0x30 prob=.",
		"C_GenerateRandom rv=0x30 rv=0x31",
		"C_GenerateRandom rv=0x30 count=1 count=2",
		"C_GenerateRandom hang rv=0x30",
		"C_GenerateRandom hang delay=5",
		"C_GenerateRandom hang reset",
		"C_GenerateRandom reset=1",
		"C_GenerateRandom hang=sometimes",
		"C_GenerateRandom rv=0x30 colour=blue",
		"C_GenerateRandom rv=0x30 =",
		"C_GenerateRandom rv=0x30 token=abcdefghijabcdefghijabcdefghijabc",
		"C_GenerateRandom rv=0x30 slot=x",
		"rv=0x30",
		"\x01\x02\xff\xfe rv=0x30",
	};
	int nbad = (int)(sizeof(bad) / sizeof(bad[0]));

	(void)state;
	p += sprintf(p, "# a comment\n\n   \t\n");
	for (int i = 0; i < nbad; i++)
		p += sprintf(p, "%s\r\n", bad[i]);
	p += sprintf(p, "C_GetInfo rv=CKR_DEVICE_MEMORY   # a good rule\n");
	memset(p, 'A', 600);  /* a line too long */
	p += 600;
	nbad++;
	p += sprintf(p, "\nC_GenerateRandom rv=0x30 count=5");  /* good, with no newline */

	stderr_to_file();
	control(text);
	for (int i = 0; i < 10; i++)
		assert_int_equal(get_info(), CKR_DEVICE_MEMORY);
	for (int i = 0; i < 5; i++)
		assert_int_equal(get_random(T.session), CKR_DEVICE_ERROR);
	assert_int_equal(get_random(T.session), CKR_OK);
	stderr_back();
	/* Each bad line reported once, however many calls read the rules. */
	assert_int_equal(count_lines(T.errfile, "line ignored"), nbad);

	/* NUL bytes: that line is ignored, the next ones are read. */
	{
		static const char nul[] = "C_GetInfo rv=0x30\0 junk\nC_GenerateRandom rv=0x32\n";

		stderr_to_file();
		write_file(T.control_tmp, nul, sizeof(nul) - 1);
		rename(T.control_tmp, T.control);
		assert_int_equal(get_info(), CKR_OK);
		assert_int_equal(get_random(T.session), CKR_DEVICE_REMOVED);
		stderr_back();
	}

	/* Random files made of rule words and bytes: no crash, no hang. */
	{
		static const char *const words[] = {
			"C_GetInfo", "C_GenerateRandom", "*", "rv=", "rv=CKR_DEVICE_ERROR", "0x",
			"count=", "after=", "prob=", "slot=", "token=", "=", "#", "\n", " ", "\t",
			"1", "0.5", "99999999999999999999", "CKR_", "C_", "\r", "count=1",
		};
		uint64_t x = 88172645463325252ULL;
		char buf[2048];

		stderr_to_file();
		for (int round = 0; round < 300; round++) {
			size_t len = 0, want;

			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			want = (size_t)(x % sizeof(buf));
			while (len < want) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				if (x % 4 == 0) {
					buf[len++] = (char)(x >> 24);
				} else {
					const char *w = words[(x >> 8) % (sizeof(words) / sizeof(words[0]))];
					size_t wl = strlen(w);

					if (len + wl > want)
						break;
					memcpy(buf + len, w, wl);
					len += wl;
				}
			}
			if (round % 2)
				write_file(T.control, buf, len);
			else {
				write_file(T.control_tmp, buf, len);
				rename(T.control_tmp, T.control);
			}
			get_info();
			get_random(T.session);
		}
		stderr_back();
	}
	control("");
	assert_int_equal(get_info(), CKR_OK);
	assert_int_equal(get_random(T.session), CKR_OK);
}

static void test_filters(void **state)
{
	char text[256];
	CK_TOKEN_INFO ti;

	(void)state;
	control("C_GenerateRandom rv=CKR_DEVICE_ERROR token=another-token\n");
	assert_int_equal(get_random(T.session), CKR_OK);
	control("C_GenerateRandom rv=CKR_DEVICE_ERROR token=" TOKEN "\n");
	assert_int_equal(get_random(T.session), CKR_DEVICE_ERROR);
	snprintf(text, sizeof(text), "C_GenerateRandom rv=CKR_DEVICE_ERROR slot=%lu\n",
		 (unsigned long)T.slot + 1000);
	control(text);
	assert_int_equal(get_random(T.session), CKR_OK);
	snprintf(text, sizeof(text), "* rv=CKR_DEVICE_ERROR slot=%lu\n", (unsigned long)T.slot);
	control(text);
	assert_int_equal(get_random(T.session), CKR_DEVICE_ERROR);
	assert_int_equal(T.p11->C_GetTokenInfo(T.slot, &ti), CKR_DEVICE_ERROR);
	assert_int_equal(get_info(), CKR_OK);  /* no slot: a slot rule does not apply */
	control("");
}

static void test_log(void **state)
{
	char buf[4096];
	FILE *f;
	size_t n;

	(void)state;
	control("");
	assert_int_equal(truncate(T.log, 0), 0);
	assert_int_equal(get_info(), CKR_OK);
	control("C_GenerateRandom rv=CKR_DEVICE_ERROR\nC_Decrypt rv=0x80000042\n");
	assert_int_equal(get_random(T.session), CKR_DEVICE_ERROR);
	assert_int_equal(decrypt(T.session, NULL), 0x80000042);
	control("C_GetInfo delay=10\n");
	assert_int_equal(get_info(), CKR_OK);
	control("");
	f = fopen(T.log, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	assert_string_equal(buf, "C_GetInfo CKR_OK forwarded\n"
				 "C_GenerateRandom CKR_DEVICE_ERROR injected\n"
				 "C_DecryptInit CKR_OK forwarded\n"
				 "C_Decrypt 0x80000042 injected\n"
				 "C_GetInfo CKR_OK delayed\n");
}

/* Several threads calling while the rules change under them. */
static atomic_bool stress_stop;

struct worker {
	pthread_t thread;
	CK_SESSION_HANDLE session;
	long calls, faults;
	const char *error;
};

static bool expected_rv(CK_RV rv)
{
	return rv == CKR_OK || rv == CKR_DEVICE_ERROR || rv == CKR_SESSION_HANDLE_INVALID ||
	       rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
	       rv == CKR_USER_NOT_LOGGED_IN;
}

static void *stress_worker(void *arg)
{
	struct worker *w = arg;
	CK_SESSION_HANDLE s = w->session;
	CK_SESSION_INFO si;
	CK_RV rv, init_rv;

	for (long i = 0; !atomic_load(&stress_stop); i++) {
		switch (i % 3) {
		case 0:
			rv = decrypt(s, &init_rv);
			if (init_rv == CKR_OPERATION_ACTIVE)
				w->error = "an injected error left an operation active";
			if (rv == CKR_GENERAL_ERROR)
				w->error = "a wrong decryption";
			break;
		case 1:
			rv = get_random(s);
			break;
		default:
			rv = T.p11->C_GetSessionInfo(s, &si);
			break;
		}
		if (!expected_rv(rv) && w->error == NULL)
			w->error = "an unexpected CK_RV";
		w->calls++;
		w->faults += rv != CKR_OK;
	}
	/* The rules are gone: everything works again. */
	if (decrypt(s, NULL) != CKR_OK || get_random(s) != CKR_OK)
		w->error = "no recovery once the rules were removed";
	if (T.p11->C_CloseSession(s) != CKR_OK)
		w->error = "C_CloseSession failed";
	return NULL;
}

static void test_stress(void **state)
{
	static const char *const sets[] = {
		"",
		"C_Decrypt rv=CKR_DEVICE_ERROR count=3\n",
		"C_DecryptInit rv=CKR_SESSION_HANDLE_INVALID prob=0.3\n",
		"* rv=CKR_DEVICE_REMOVED prob=0.2\nC_GenerateRandom delay=1\n",
		"C_GenerateRandom hang\n",
		"C_Decrypt delay=2 rv=CKR_TOKEN_NOT_PRESENT after=2\n",
		"garbage\nC_Bogus hang\n",
		"C_GetSessionInfo rv=CKR_USER_NOT_LOGGED_IN token=" TOKEN "\n",
		"C_Decrypt hang\nC_GetSessionInfo delay=1 prob=0.5\n",
	};
	enum { NWORKERS = 8 };
	struct worker w[NWORKERS];
	long calls = 0, faults = 0;
	int64_t end;

	(void)state;
	memset(w, 0, sizeof(w));
	atomic_store(&stress_stop, false);
	stderr_to_file();
	for (int i = 0; i < NWORKERS; i++) {
		assert_int_equal(T.p11->C_OpenSession(T.slot, CKF_SERIAL_SESSION, NULL, NULL,
						      &w[i].session),
				 CKR_OK);
		assert_int_equal(pthread_create(&w[i].thread, NULL, stress_worker, &w[i]), 0);
	}
	end = now_ms() + 1500;
	for (int i = 0; now_ms() < end; i++) {
		const char *set = sets[i % (int)(sizeof(sets) / sizeof(sets[0]))];

		if (i % 2)
			control(set);
		else
			control_inplace(set);
		sleep_ms(3 + i % 5);
	}
	control("");
	sleep_ms(50);
	atomic_store(&stress_stop, true);
	for (int i = 0; i < NWORKERS; i++) {
		pthread_join(w[i].thread, NULL);
		calls += w[i].calls;
		faults += w[i].faults;
	}
	stderr_back();
	for (int i = 0; i < NWORKERS; i++)
		if (w[i].error != NULL)
			fail_msg("worker %d: %s", i, w[i].error);
	print_message("stress: %ld calls, %ld faults injected\n", calls, faults);
	assert_true(calls > 100);
	assert_true(faults > 0 && faults < calls);
}

static void test_get_function_list_rule(void **state)
{
	CK_FUNCTION_LIST_PTR list = NULL;

	(void)state;
	control("C_GetFunctionList rv=CKR_HOST_MEMORY\n");
	assert_int_equal(T.p11->C_GetFunctionList(&list), CKR_HOST_MEMORY);
	assert_null(list);
	control("");
	assert_int_equal(T.p11->C_GetFunctionList(&list), CKR_OK);
	assert_ptr_equal(list, T.p11);
}

/* reset: the real sessions are closed (an HSM that restarted), the call then forwarded. */
static void test_reset(void **state)
{
	CK_SESSION_HANDLE s2;
	CK_SESSION_INFO si;
	CK_TOKEN_INFO ti;

	(void)state;
	assert_int_equal(T.p11->C_OpenSession(T.slot, CKF_SERIAL_SESSION, NULL, NULL, &s2), CKR_OK);
	control("C_GenerateRandom reset count=1\n");
	assert_int_equal(get_random(s2), CKR_SESSION_HANDLE_INVALID);  /* from SoftHSM */
	control("");
	assert_int_equal(T.p11->C_GetSessionInfo(T.session, &si), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(decrypt(T.session, NULL), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(T.p11->C_GetTokenInfo(T.slot, &ti), CKR_OK);  /* the token is there */
	/* With an rv, and on a slot call: the sessions of that slot go. */
	assert_int_equal(T.p11->C_OpenSession(T.slot, CKF_SERIAL_SESSION, NULL, NULL, &s2), CKR_OK);
	control("C_GetTokenInfo rv=CKR_DEVICE_ERROR reset count=1\n");
	assert_int_equal(T.p11->C_GetTokenInfo(T.slot, &ti), CKR_DEVICE_ERROR);
	assert_int_equal(T.p11->C_GetTokenInfo(T.slot, &ti), CKR_OK);
	assert_int_equal(get_random(s2), CKR_SESSION_HANDLE_INVALID);
	control("");
	/* Log in again for what follows. */
	assert_int_equal(T.p11->C_OpenSession(T.slot, CKF_SERIAL_SESSION, NULL, NULL, &T.session),
			 CKR_OK);
	assert_int_equal(T.p11->C_GetSessionInfo(T.session, &si), CKR_OK);
	assert_int_equal(si.state, CKS_RO_PUBLIC_SESSION);  /* logged out by the reset */
	/* SoftHSM hides the private key from a session that is not logged in. */
	assert_int_equal(decrypt(T.session, NULL), CKR_OBJECT_HANDLE_INVALID);
	assert_int_equal(T.p11->C_Login(T.session, CKU_USER, (CK_UTF8CHAR_PTR)PIN, strlen(PIN)),
			 CKR_OK);
	/* ... and gives it a new handle once logged in again: the old one stays invalid. */
	assert_int_equal(decrypt(T.session, NULL), CKR_OBJECT_HANDLE_INVALID);
	assert_int_equal(find_key(T.p11, T.session, &T.key), CKR_OK);
	assert_int_equal(decrypt(T.session, NULL), CKR_OK);
}

static void test_finalize(void **state)
{
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };

	(void)state;
	/* An injected C_Finalize error still finalises the real module. */
	control("C_Finalize rv=CKR_DEVICE_ERROR\n");
	assert_int_equal(T.p11->C_Finalize(NULL), CKR_DEVICE_ERROR);
	control("");
	assert_int_equal(get_info(), CKR_CRYPTOKI_NOT_INITIALIZED);
	control("C_Initialize rv=CKR_DEVICE_ERROR\n");
	assert_int_equal(T.p11->C_Initialize(&args), CKR_DEVICE_ERROR);
	assert_int_equal(get_info(), CKR_CRYPTOKI_NOT_INITIALIZED);  /* not initialised */
	control("");
	assert_int_equal(T.p11->C_Initialize(&args), CKR_OK);
	assert_int_equal(T.p11->C_OpenSession(T.slot, CKF_SERIAL_SESSION, NULL, NULL, &T.session),
			 CKR_OK);
	assert_int_equal(T.p11->C_Login(T.session, CKU_USER, (CK_UTF8CHAR_PTR)PIN, strlen(PIN)),
			 CKR_OK);
	assert_int_equal(find_key(T.p11, T.session, &T.key), CKR_OK);
	assert_int_equal(decrypt(T.session, NULL), CKR_OK);
	assert_int_equal(T.p11->C_Finalize(NULL), CKR_OK);
}

/* A module that cannot be loaded: C_GetFunctionList fails, nothing crashes. */
static void test_bad_module(void **state)
{
	char copy[160], buf[65536];
	void *h;
	CK_RV rv;
	ssize_t n;
	int in, out;

	(void)state;
	/* A copy is a separate instance, which reads the environment afresh. */
	snprintf(copy, sizeof(copy), "%s/libfaultp11-copy.so", T.dir);
	in = open(T.module, O_RDONLY | O_CLOEXEC);
	out = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
	assert_true(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
	setenv("FAULTP11_MODULE", "/nonexistent/libnothing.so", 1);
	stderr_to_file();
	assert_null(load_list(copy, &h, &rv));
	stderr_back();
	setenv("FAULTP11_MODULE", T.softhsm, 1);
	assert_int_equal(rv, CKR_GENERAL_ERROR);
	assert_int_equal(count_lines(T.errfile, "cannot load"), 1);
	dlclose(h);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_function_list),
		cmocka_unit_test(test_forwarding),
		cmocka_unit_test(test_rv),
		cmocka_unit_test(test_login_and_sessions),
		cmocka_unit_test(test_prob),
		cmocka_unit_test(test_delay),
		cmocka_unit_test(test_hang),
		cmocka_unit_test(test_reread),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_stress),
		cmocka_unit_test(test_get_function_list_rule),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_finalize),
		cmocka_unit_test(test_bad_module),
	};
	void *h;
	CK_RV rv;
	int failed;

	if (argc != 2)
		die("usage: %s libfaultp11.so", argv[0]);
	T.module = argv[1];
	T.softhsm = getenv("FAULTP11_TEST_SOFTHSM");
	if (T.softhsm == NULL)
		T.softhsm = "/usr/lib/softhsm/libsofthsm2.so";
	for (int i = 0; i < K; i++)
		T.in[i] = i == 0 ? 0 : (unsigned char)(i * 7 + 1);
	make_token();
	reference_result();

	snprintf(T.control, sizeof(T.control), "%s/control", T.dir);
	snprintf(T.control_tmp, sizeof(T.control_tmp), "%s/control.tmp", T.dir);
	snprintf(T.log, sizeof(T.log), "%s/calls.log", T.dir);
	snprintf(T.errfile, sizeof(T.errfile), "%s/stderr", T.dir);
	setenv("FAULTP11_MODULE", T.softhsm, 1);
	setenv("FAULTP11_CONTROL", T.control, 1);
	setenv("FAULTP11_LOG", T.log, 1);
	setenv("FAULTP11_SEED", "12345", 1);
	T.p11 = load_list(T.module, &h, &rv);
	if (rv != CKR_OK || T.p11 == NULL)
		die("C_GetFunctionList of %s: 0x%lx", T.module, (unsigned long)rv);

	failed = cmocka_run_group_tests(tests, NULL, NULL);

	dlclose(h);
	if (getenv("FAULTP11_KEEP") != NULL)
		printf("kept %s\n", T.dir);
	else
		run((char *[]){ "rm", "-rf", T.dir, NULL });
	return failed != 0;
}
