/*
 * daemon/config: keytransd.conf, good and bad. Each bad file must be refused
 * with a message naming the file and the exact line (or the section) at
 * fault, and leave the config empty.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define HSM "[hsm]\nmodule = m.so\ntoken = t\npin_file = pin\n"   /* 4 lines */
#define MAX_FILES 8

struct fixture {
	char dir[64];
	char files[MAX_FILES][PATH_MAX];
	int nfiles;
	struct config c;
	char err[1024];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kt-config-XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	config_free(&f->c);
	for (int i = 0; i < f->nfiles; i++)
		unlink(f->files[i]);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Writes text to DIR/name and returns the path. */
static const char *write_file(struct fixture *f, const char *name, const char *text)
{
	char tmp[PATH_MAX], *path;
	FILE *fp;

	assert_true(f->nfiles < MAX_FILES);
	snprintf(tmp, sizeof(tmp), "%s/%s", f->dir, name);
	path = f->files[f->nfiles++];
	memcpy(path, tmp, sizeof(tmp));
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
	assert_int_equal(fclose(fp), 0);
	return path;
}

/* Loads text, which must be accepted. */
static const char *load_good(struct fixture *f, const char *text)
{
	const char *path = write_file(f, "good.conf", text);

	f->err[0] = '\0';
	if (config_load(path, &f->c, f->err, sizeof(f->err)) != 0)
		fail_msg("refused: %s", f->err);
	return path;
}

/* Loads text, which must be refused: the config is left empty. */
static const char *load_bad(struct fixture *f, const char *text)
{
	const char *path = write_file(f, "bad.conf", text);

	strcpy(f->err, "(unset)");
	assert_int_equal(config_load(path, &f->c, f->err, sizeof(f->err)), -1);
	assert_null(f->c.keys);
	assert_int_equal(f->c.nkeys, 0);
	unlink(path);
	f->nfiles--;
	return path;
}

/* Refused with exactly "PATH:LINE: msg". */
static void assert_bad_line(struct fixture *f, const char *text, int line, const char *msg)
{
	char want[1024];
	const char *path = load_bad(f, text);

	snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
	assert_string_equal(f->err, want);
}

/* Refused with exactly "PATH: msg" (a whole-file check, naming the section). */
static void assert_bad_file(struct fixture *f, const char *text, const char *msg)
{
	char want[1024];
	const char *path = load_bad(f, text);

	snprintf(want, sizeof(want), "%s: %s", path, msg);
	assert_string_equal(f->err, want);
}

static int default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 16 ? 16 : (int)n;
}

/* ---- good files ---- */

static void test_good_complete(void **state)
{
	struct fixture *f = *state;
	char want[PATH_MAX + 64];

	load_good(f,
		  "; keytransd test configuration\n"
		  "# comments of both kinds\n"
		  "[daemon]\n"
		  "socket = run/kt.sock        ; relative to this file\n"
		  "socket_mode = 0600\n"
		  "workers = 3                 ; HSM threads\n"
		  "\n"
		  "[hsm]\n"
		  "module = /usr/lib/softhsm/libsofthsm2.so\n"
		  "token = keytrans            ; token label\n"
		  "pin_file = secrets/pin\n"
		  "[key exchange1]             ; the name clients use\n"
		  "label = kx1\n"
		  "id = 01\n"
		  "[key exchange2]\n"
		  "id = 0xA0b1C2\n"
		  "[key Only-label_2.x]\n"
		  "label = some label with spaces\n");
	snprintf(want, sizeof(want), "%s/run/kt.sock", f->dir);
	assert_string_equal(f->c.socket, want);
	assert_int_equal(f->c.socket_mode, 0600);
	assert_int_equal(f->c.workers, 3);
	assert_string_equal(f->c.hsms[0].module, "/usr/lib/softhsm/libsofthsm2.so");
	assert_string_equal(f->c.hsms[0].token, "keytrans");
	snprintf(want, sizeof(want), "%s/secrets/pin", f->dir);
	assert_string_equal(f->c.hsms[0].pin_file, want);

	assert_int_equal(f->c.nkeys, 3);
	assert_non_null(f->c.keys);
	assert_string_equal(f->c.keys[0].name, "exchange1");
	assert_string_equal(f->c.keys[0].label, "kx1");
	assert_int_equal(f->c.keys[0].id_len, 1);
	assert_int_equal(f->c.keys[0].id[0], 0x01);
	assert_string_equal(f->c.keys[1].name, "exchange2");
	assert_string_equal(f->c.keys[1].label, "");
	assert_int_equal(f->c.keys[1].id_len, 3);
	assert_int_equal(f->c.keys[1].id[0], 0xa0);
	assert_int_equal(f->c.keys[1].id[1], 0xb1);
	assert_int_equal(f->c.keys[1].id[2], 0xc2);
	assert_string_equal(f->c.keys[2].name, "Only-label_2.x");
	assert_string_equal(f->c.keys[2].label, "some label with spaces");
	assert_int_equal(f->c.keys[2].id_len, 0);

	/* Freeing twice is harmless. */
	config_free(&f->c);
	assert_null(f->c.keys);
	assert_int_equal(f->c.nkeys, 0);
	config_free(&f->c);
}

static void test_good_paths(void **state)
{
	struct fixture *f = *state;
	char want[PATH_MAX + 64], cwd[PATH_MAX];

	load_good(f,
		  "[daemon]\n"
		  "socket = /run/elsewhere/k.sock\n"
		  "[hsm]\n"
		  "module = libsofthsm2.so\n"
		  "token = t\n"
		  "pin_file = /etc/keytrans/pin\n");
	assert_string_equal(f->c.socket, "/run/elsewhere/k.sock");
	snprintf(want, sizeof(want), "%s/libsofthsm2.so", f->dir);
	assert_string_equal(f->c.hsms[0].module, want);
	assert_string_equal(f->c.hsms[0].pin_file, "/etc/keytrans/pin");
	config_free(&f->c);

	/* A config path without a folder: relative to ".". */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	write_file(f, "plain.conf", HSM);
	assert_int_equal(chdir(f->dir), 0);
	assert_int_equal(config_load("plain.conf", &f->c, f->err, sizeof(f->err)), 0);
	assert_int_equal(chdir(cwd), 0);
	assert_string_equal(f->c.hsms[0].module, "./m.so");
	assert_string_equal(f->c.hsms[0].pin_file, "./pin");
}

static void test_defaults(void **state)
{
	struct fixture *f = *state;

	load_good(f, HSM);
	assert_string_equal(f->c.socket, "/run/keytransd/keytransd.sock");
	assert_int_equal(f->c.socket_mode, 0660);
	assert_int_equal(f->c.workers, default_workers());
	assert_true(f->c.workers >= 1 && f->c.workers <= 16);
	assert_int_equal(f->c.nkeys, 0);
	assert_null(f->c.keys);
	config_free(&f->c);

	/* An empty [daemon] section changes nothing either. */
	load_good(f, "[daemon]\n" HSM);
	assert_string_equal(f->c.socket, "/run/keytransd/keytransd.sock");
	assert_int_equal(f->c.socket_mode, 0660);
	assert_int_equal(f->c.workers, default_workers());
}

static void test_good_values(void **state)
{
	struct fixture *f = *state;
	char text[1024], id[200];

	load_good(f, "[daemon]\nsocket_mode = 660\nworkers = 1\n" HSM);
	assert_int_equal(f->c.socket_mode, 0660);
	assert_int_equal(f->c.workers, 1);
	config_free(&f->c);
	load_good(f, "[daemon]\nsocket_mode = 0\nworkers = 16\n" HSM);
	assert_int_equal(f->c.socket_mode, 0);
	assert_int_equal(f->c.workers, 16);
	config_free(&f->c);
	load_good(f, "[daemon]\nsocket_mode = 0777\n" HSM);
	assert_int_equal(f->c.socket_mode, 0777);
	config_free(&f->c);

	/* Token of exactly 32 characters; id of exactly 64 bytes. */
	for (int i = 0; i < 64; i++)
		snprintf(id + 2 * i, 3, "%02x", i);
	snprintf(text, sizeof(text),
		 "[hsm]\nmodule = m\ntoken = abcdefghijklmnopqrstuvwxyz012345\npin_file = p\n"
		 "[key k]\nid = %s\n", id);
	load_good(f, text);
	assert_string_equal(f->c.hsms[0].token, "abcdefghijklmnopqrstuvwxyz012345");
	assert_int_equal(f->c.keys[0].id_len, 64);
	assert_int_equal(f->c.keys[0].id[63], 63);
	config_free(&f->c);

	/* A key name of the full 64 characters is kept whole. */
	load_good(f, HSM "[key 0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF]\n"
		  "label = x\n");
	assert_int_equal(f->c.nkeys, 1);
	assert_string_equal(f->c.keys[0].name,
			    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF");
}

/* Layout that INI files commonly have: indentation, CRLF, a BOM, repeated sections. */
static void test_good_layout(void **state)
{
	struct fixture *f = *state;

	load_good(f,
		  "[hsm]\n"
		  "    module = m.so\n"
		  "    token = t\n"
		  "\tpin_file = pin\n"
		  "  [key a]\n"
		  "    label = kx\n");
	assert_string_equal(f->c.hsms[0].token, "t");
	assert_int_equal(f->c.nkeys, 1);
	assert_string_equal(f->c.keys[0].label, "kx");
	config_free(&f->c);

	load_good(f, "[hsm]\r\nmodule = m.so\r\ntoken = t\r\npin_file = pin\r\n[key a]\r\nid = 0a\r\n");
	assert_string_equal(f->c.hsms[0].token, "t");
	assert_int_equal(f->c.keys[0].id[0], 0x0a);
	config_free(&f->c);

	load_good(f, "\xef\xbb\xbf[key a]\nlabel = l\n" HSM);
	assert_int_equal(f->c.nkeys, 1);
	assert_string_equal(f->c.keys[0].name, "a");
	config_free(&f->c);

	/* A section may come back as long as no setting repeats. */
	load_good(f, "[daemon]\nworkers = 2\n" HSM "[daemon]\nsocket_mode = 0600\n");
	assert_int_equal(f->c.workers, 2);
	assert_int_equal(f->c.socket_mode, 0600);
	config_free(&f->c);

	/* The longest line allowed: 199 characters. */
	{
		char text[512];

		snprintf(text, sizeof(text), HSM "[key a]\nlabel = %0191d\nid = 01\n", 7);
		load_good(f, text);
		assert_int_equal(strlen(f->c.keys[0].label), 191);
		assert_int_equal(f->c.keys[0].id_len, 1);
	}
}

/* ---- bad files: line numbers ---- */

static void test_bad_unknown_keys(void **state)
{
	struct fixture *f = *state;

	assert_bad_line(f, "[daemon]\nworkers = 2\nsockets = x\n" HSM, 3,
			"unknown key \"sockets\" in [daemon]");
	assert_bad_line(f, HSM "slot = 0\n", 5, "unknown key \"slot\" in [hsm]");
	assert_bad_line(f, HSM "[key kx]\nlabel = a\n\n; comment\nlabels = b\n", 9,
			"unknown key \"labels\" in [key kx]");
	/* Keys are case-sensitive. */
	assert_bad_line(f, HSM "Token = t\n", 5, "unknown key \"Token\" in [hsm]");
}

static void test_bad_sections(void **state)
{
	struct fixture *f = *state;

	assert_bad_line(f, HSM "\n[keys]\nlabel = x\n", 6, "unknown section [keys]");
	assert_bad_line(f, HSM "[Daemon]\nworkers = 1\n", 5, "unknown section [Daemon]");
	assert_bad_line(f, HSM "[key]\nlabel = x\n", 5, "unknown section [key]");
	/* Even with nothing in it. */
	assert_bad_line(f, "[bogus]\n" HSM, 1, "unknown section [bogus]");
	assert_bad_line(f, HSM "[bogus]\n", 5, "unknown section [bogus]");
	/* Before any section. */
	assert_bad_line(f, "; top\nworkers = 2\n" HSM, 2, "\"workers\" is outside any section");
}

static void test_bad_syntax(void **state)
{
	struct fixture *f = *state;
	const char *syntax = "syntax error (expected name = value or [section])";

	assert_bad_line(f, HSM "[key a]\nlabel = x\nthis is not a setting\n", 7, syntax);
	assert_bad_line(f, "[hsm\n" HSM, 1, syntax);
	/* A syntax error before a bad setting: the first one is reported, with its own text. */
	assert_bad_line(f, "[hsm]\nmodule = m\ngarbage\nbogus = 1\ntoken = t\npin_file = p\n", 3, syntax);
	/* And the other way round. */
	assert_bad_line(f, "[hsm]\nmodule = m\nbogus = 1\ngarbage\ntoken = t\npin_file = p\n", 3,
			"unknown key \"bogus\" in [hsm]");
}

static void test_bad_long_lines(void **state)
{
	struct fixture *f = *state;
	char text[1024];

	/* 200 characters: too long for the parser; refused on that line. */
	snprintf(text, sizeof(text), HSM "[key a]\nlabel = %0192d\nid = 01\n", 7);
	assert_bad_line(f, text, 6, "line is longer than 199 characters");
	/* A long value that inih would otherwise cut into two lines. */
	snprintf(text, sizeof(text), "[daemon]\nsocket = /%0300d\nworkers = 2\n" HSM, 1);
	assert_bad_line(f, text, 2, "line is longer than 199 characters");
	/* Lines after a long (legal) one keep their numbers. */
	snprintf(text, sizeof(text), HSM "[key a]\nlabel = %0191d\nid = 01\nbad = 1\n", 7);
	assert_bad_line(f, text, 8, "unknown key \"bad\" in [key a]");
}

static void test_bad_duplicates(void **state)
{
	struct fixture *f = *state;

	assert_bad_line(f, "[daemon]\nworkers = 2\nworkers = 2\n" HSM, 3,
			"workers given twice in this section");
	assert_bad_line(f, "[daemon]\nsocket = a\nsocket_mode = 0600\nsocket = b\n" HSM, 4,
			"socket given twice in this section");
	assert_bad_line(f, "[daemon]\nsocket_mode = 0600\nsocket_mode = 0600\n" HSM, 3,
			"socket_mode given twice in this section");
	assert_bad_line(f, HSM "module = n.so\n", 5, "module given twice in this section");
	assert_bad_line(f, HSM "token = u\n", 5, "token given twice in this section");
	assert_bad_line(f, HSM "pin_file = p2\n", 5, "pin_file given twice in this section");
	assert_bad_line(f, HSM "[key a]\nlabel = x\nid = 01\nlabel = x\n", 8,
			"label given twice in this section");
	assert_bad_line(f, HSM "[key a]\nid = 01\nid = 02\n", 7, "id given twice in this section");
	/* [hsm] and [hsm NAME] define HSMs: one may not be defined twice. */
	assert_bad_line(f, HSM "[daemon]\nworkers = 2\n[hsm]\nmodule = other.so\n", 7,
			"[hsm] is defined twice");
	assert_bad_line(f, HSM "[hsm b]\nmodule = b.so\ntoken = b\n[hsm b]\n", 8,
			"[hsm b] is defined twice");
}

/* Several HSMs: [hsm] and [hsm NAME] sections, each complete. */
static void test_several_hsms(void **state)
{
	struct fixture *f = *state;

	load_good(f, "[hsm a]\nmodule = /m/a.so\ntoken = ta\npin_file = pa\n"
		     "[hsm b]\nmodule = /m/b.so\ntoken = tb\n[daemon]\nhsm_call_timeout = 3\n"
		     "hsm_retry_max = 20\n[key k]\nlabel = k\n");
	assert_int_equal(f->c.nhsms, 2);
	assert_string_equal(f->c.hsms[0].name, "a");
	assert_string_equal(f->c.hsms[0].module, "/m/a.so");
	assert_string_equal(f->c.hsms[1].name, "b");
	assert_string_equal(f->c.hsms[1].token, "tb");
	assert_string_equal(f->c.hsms[1].pin_file, "");
	assert_int_equal(f->c.limits.hsm_call_timeout, 3);
	assert_int_equal(f->c.limits.hsm_retry_max, 20);
	config_free(&f->c);
	load_good(f, HSM);
	assert_int_equal(f->c.nhsms, 1);
	assert_string_equal(f->c.hsms[0].name, "hsm");
	assert_int_equal(f->c.limits.hsm_call_timeout, 10);
	assert_int_equal(f->c.limits.hsm_retry_max, 4);
	config_free(&f->c);
	assert_bad_file(f, HSM "[hsm b]\ntoken = tb\n", "[hsm b] module is missing");
	assert_bad_file(f, "[hsm b]\nmodule = b.so\n", "[hsm b] token is missing");
	assert_bad_line(f, "[hsm b!]\nmodule = b.so\n", 1,
			"HSM name \"b!\" must be 1 to 64 of A-Z a-z 0-9 _ . -");
	assert_bad_line(f, "[hsm b]\nmodule = b.so\nlabel = x\n", 3, "unknown key \"label\" in [hsm b]");
	/* One module, two sections: by path, or by file through another spelling. */
	assert_bad_file(f, "[hsm a]\nmodule = /m/a.so\ntoken = ta\n[hsm b]\nmodule = /m/a.so\ntoken = tb\n",
			"[hsm b] uses the module of [hsm a]: one section per PKCS#11 module "
			"(a module's tokens cannot be recovered one at a time)");
	assert_bad_file(f, "[hsm]\nmodule = /dev/null\ntoken = ta\n[hsm b]\nmodule = /dev/../dev/null\ntoken = tb\n",
			"[hsm b] uses the module of [hsm]: one section per PKCS#11 module "
			"(a module's tokens cannot be recovered one at a time)");
	assert_bad_line(f, "[hsm h0]\n[hsm h1]\n[hsm h2]\n[hsm h3]\n[hsm h4]\n[hsm h5]\n[hsm h6]\n"
			"[hsm h7]\n[hsm h8]\n[hsm h9]\n[hsm h10]\n[hsm h11]\n[hsm h12]\n[hsm h13]\n"
			"[hsm h14]\n[hsm h15]\n[hsm h16]\n", 17, "at most 16 HSM sections");
}

static void test_bad_key_sections(void **state)
{
	struct fixture *f = *state;

	/* Defined twice: reported on the second header. */
	assert_bad_line(f, HSM "[key a]\nlabel = x\n[key b]\nlabel = y\n[key a]\nid = 02\n", 9,
			"key \"a\" is defined twice");
	assert_bad_line(f, HSM "[key a]\nlabel = x\n[key a]\nid = 02\n", 7,
			"key \"a\" is defined twice");
	assert_bad_line(f, HSM "[key a]\nlabel = x\n[key a]\n", 7, "key \"a\" is defined twice");

	/* Bad names. */
	assert_bad_line(f, HSM "[key a b]\nlabel = x\n", 5,
			"key name \"a b\" must be 1 to 64 of A-Z a-z 0-9 _ . -");
	assert_bad_line(f, HSM "[key ]\nlabel = x\n", 5,
			"key name \"\" must be 1 to 64 of A-Z a-z 0-9 _ . -");
	assert_bad_line(f, HSM "[key a/b]\nlabel = x\n", 5,
			"key name \"a/b\" must be 1 to 64 of A-Z a-z 0-9 _ . -");
	assert_bad_line(f, HSM "[key \xc3\xa9]\nlabel = x\n", 5,
			"key name \"\xc3\xa9\" must be 1 to 64 of A-Z a-z 0-9 _ . -");
	assert_bad_line(f, HSM "[key 0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEFG]\n"
			"label = x\n", 5,
			"key name \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEFG\" "
			"must be 1 to 64 of A-Z a-z 0-9 _ . -");

	/* Neither label nor id: named by section, with or without other keys around. */
	assert_bad_file(f, HSM "[key lonely]\n", "[key lonely] needs a label or an id");
	assert_bad_file(f, HSM "[key a]\nlabel = x\n[key lonely]\n; nothing here\n[key b]\nid = 01\n",
			"[key lonely] needs a label or an id");
}

static void test_bad_values(void **state)
{
	struct fixture *f = *state;
	char text[1024], id[200];

	assert_bad_line(f, "[daemon]\nsocket_mode = 0999\n" HSM, 2,
			"socket_mode must be octal permissions such as 0660, not \"0999\"");
	assert_bad_line(f, "[daemon]\nsocket_mode = abc\n" HSM, 2,
			"socket_mode must be octal permissions such as 0660, not \"abc\"");
	assert_bad_line(f, "[daemon]\nsocket_mode = 01000\n" HSM, 2,
			"socket_mode must be octal permissions such as 0660, not \"01000\"");
	assert_bad_line(f, "[daemon]\nsocket_mode =\n" HSM, 2,
			"socket_mode must be octal permissions such as 0660, not \"\"");
	assert_bad_line(f, "[daemon]\nsocket_mode = -1\n" HSM, 2,
			"socket_mode must be octal permissions such as 0660, not \"-1\"");
	assert_bad_line(f, "[daemon]\nsocket_mode = 0x1ff\n" HSM, 2,
			"socket_mode must be octal permissions such as 0660, not \"0x1ff\"");

	assert_bad_line(f, "[daemon]\nworkers = 0\n" HSM, 2,
			"workers must be a number from 1 to 16, not \"0\"");
	assert_bad_line(f, "[daemon]\nworkers = 17\n" HSM, 2,
			"workers must be a number from 1 to 16, not \"17\"");
	assert_bad_line(f, "[daemon]\nworkers = x\n" HSM, 2,
			"workers must be a number from 1 to 16, not \"x\"");
	assert_bad_line(f, "[daemon]\nworkers = 2x\n" HSM, 2,
			"workers must be a number from 1 to 16, not \"2x\"");
	assert_bad_line(f, "[daemon]\nworkers =\n" HSM, 2,
			"workers must be a number from 1 to 16, not \"\"");
	assert_bad_line(f, "[daemon]\nworkers = 99999999999999999999\n" HSM, 2,
			"workers must be a number from 1 to 16, not \"99999999999999999999\"");

	assert_bad_line(f, "[daemon]\nsocket =\n" HSM, 2, "socket must not be empty");
	assert_bad_line(f, "[hsm]\nmodule = ; nothing\ntoken = t\npin_file = p\n", 2,
			"module must not be empty");
	assert_bad_line(f, "[hsm]\nmodule = m\ntoken = t\npin_file =\n", 4, "pin_file must not be empty");

	assert_bad_line(f, HSM "[key a]\nid = 123\n", 6, "id must be 1 to 64 bytes of hex, not \"123\"");
	assert_bad_line(f, HSM "[key a]\nid = 0g\n", 6, "id must be 1 to 64 bytes of hex, not \"0g\"");
	assert_bad_line(f, HSM "[key a]\nid = 01 02\n", 6,
			"id must be 1 to 64 bytes of hex, not \"01 02\"");
	assert_bad_line(f, HSM "[key a]\nid =\n", 6, "id must be 1 to 64 bytes of hex, not \"\"");
	assert_bad_line(f, HSM "[key a]\nid = 0x\n", 6, "id must be 1 to 64 bytes of hex, not \"0x\"");
	for (int i = 0; i < 65; i++)
		snprintf(id + 2 * i, 3, "%02x", i);
	snprintf(text, sizeof(text), HSM "[key a]\nid = %s\n", id);
	{
		char want[300];

		snprintf(want, sizeof(want), "id must be 1 to 64 bytes of hex, not \"%s\"", id);
		assert_bad_line(f, text, 6, want);
	}

	assert_bad_line(f, HSM "[key a]\nlabel =\n", 6, "label must be 1 to 256 characters");
	assert_bad_line(f, HSM "[key a]\nlabel = ; only a comment\n", 6,
			"label must be 1 to 256 characters");

	assert_bad_line(f, "[hsm]\nmodule = m\ntoken = abcdefghijklmnopqrstuvwxyz0123456\n", 3,
			"token must be a label of 1 to 32 characters, not "
			"\"abcdefghijklmnopqrstuvwxyz0123456\"");
	assert_bad_line(f, "[hsm]\nmodule = m\ntoken =\npin_file = p\n", 3,
			"token must be a label of 1 to 32 characters, not \"\"");
}

static void test_bad_missing(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX + 32], want[PATH_MAX + 128];

	assert_bad_file(f, "[hsm]\ntoken = t\npin_file = p\n", "[hsm] module is missing");
	assert_bad_file(f, "[hsm]\nmodule = m\npin_file = p\n", "[hsm] token is missing");
	assert_bad_file(f, "[daemon]\nworkers = 2\n", "[hsm] module is missing");
	assert_bad_file(f, "", "[hsm] module is missing");
	assert_bad_file(f, "; only a comment\n\n", "[hsm] module is missing");

	/* No such file. */
	snprintf(path, sizeof(path), "%s/absent.conf", f->dir);
	assert_int_equal(config_load(path, &f->c, f->err, sizeof(f->err)), -1);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	assert_string_equal(f->err, want);
	assert_null(f->c.keys);
	assert_int_equal(f->c.nkeys, 0);
	/* A folder is not a config file. */
	assert_int_equal(config_load(f->dir, &f->c, f->err, sizeof(f->err)), -1);
	snprintf(want, sizeof(want), "%s: cannot read: Is a directory", f->dir);
	assert_string_equal(f->err, want);
}

/* Keys collected before the error are released; the config is empty and reusable. */
/* Issue 14: sealed sessions' limits and the allow_opm_open rule. */
static void test_session_settings(void **state)
{
	struct fixture *f = *state;

	/* Defaults, values, each given once, with every other setting. */
	load_good(f, HSM);
	assert_int_equal(f->c.limits.max_sessions, 4096);
	assert_int_equal(f->c.limits.max_sessions_per_uid, 64);
	assert_int_equal(f->c.limits.session_idle_timeout, 300);
	config_free(&f->c);
	load_good(f, "[daemon]\nmax_connections = 5\nrecipient_cache = 0\nstats_outcomes = uid:7\n"
		     "max_sessions = 0\nmax_sessions_per_uid = 3\nsession_idle_timeout = 2\n" HSM
		     "[key a]\nlabel = a\nallow_opm_open = uid:4242\n");
	assert_int_equal(f->c.limits.max_connections, 5);
	assert_int_equal(f->c.limits.max_sessions, 0);
	assert_int_equal(f->c.limits.max_sessions_per_uid, 3);
	assert_int_equal(f->c.limits.session_idle_timeout, 2);
	assert_true(f->c.stats_outcomes.set);
	assert_int_equal(f->c.keys[0].allow[ACL_OPM_OPEN].e[0].id, 4242);
	assert_false(f->c.keys[0].allow[ACL_COPP_OPEN].set);
	config_free(&f->c);
	assert_bad_line(f, "[daemon]\nsession_idle_timeout = 0\n", 2,
			"session_idle_timeout must be a number from 1 to 86400, not \"0\"");
	assert_bad_line(f, "[daemon]\nmax_sessions = 1\nmax_sessions = 2\n", 3,
			"max_sessions given twice in this section");
	assert_bad_line(f, HSM "[key a]\nlabel = a\nallow_opm_open = *\nallow_opm_open = *\n", 8,
			"allow_opm_open given twice in this section");
}

/* Issue 3's settings: access rules, mechanism, limits. */
static void test_security_settings(void **state)
{
	struct fixture *f = *state;
	const struct key_conf *k;

	load_good(f, "[daemon]\nallow_public_ops = uid:5 group:nogroup\nmax_connections = 10\n"
		     "max_connections_per_uid = 3\nmax_inflight = 4\nrequest_timeout = 2\n"
		     "idle_timeout = 9\njob_memory = 2048\njob_memory_per_uid = 512\n" HSM
		     "[key a]\nlabel = a\nallow_unwrap = uid:4242 user:nobody\nallow_wrap = *\n"
		     "allow_copp_open = gid:4343\nallow_pubkey =\nrsa_mechanism = pkcs\n"
		     "[key b]\nid = 02\n");
	assert_true(f->c.allow_public_ops.set);
	assert_int_equal(f->c.allow_public_ops.n, 2);
	assert_int_equal(f->c.limits.max_connections, 10);
	assert_int_equal(f->c.limits.max_connections_per_uid, 3);
	assert_int_equal(f->c.limits.max_inflight, 4);
	assert_int_equal(f->c.limits.request_timeout, 2);
	assert_int_equal(f->c.limits.idle_timeout, 9);
	assert_int_equal(f->c.limits.job_memory, 2048);
	assert_int_equal(f->c.limits.job_memory_per_uid, 512);
	k = &f->c.keys[0];
	assert_int_equal(k->mechanism, MECH_PKCS);
	assert_true(k->allow[ACL_UNWRAP].set);
	assert_int_equal(k->allow[ACL_UNWRAP].n, 2);
	assert_int_equal(k->allow[ACL_UNWRAP].e[1].id, 65534);
	assert_int_equal(k->allow[ACL_WRAP].e[0].kind, ACL_ANYONE);
	assert_int_equal(k->allow[ACL_COPP_OPEN].e[0].kind, ACL_GID);
	assert_true(k->allow[ACL_PUBKEY].set);          /* empty: nobody else */
	assert_int_equal(k->allow[ACL_PUBKEY].n, 0);
	assert_int_equal(f->c.keys[1].mechanism, MECH_RAW);
	assert_false(f->c.keys[1].allow[ACL_UNWRAP].set);
	config_free(&f->c);

	/* Defaults of the limits. */
	load_good(f, HSM);
	assert_false(f->c.allow_public_ops.set);
	assert_int_equal(f->c.limits.max_connections, 1024);
	assert_int_equal(f->c.limits.max_connections_per_uid, 256);
	assert_int_equal(f->c.limits.max_inflight, 64);
	assert_int_equal(f->c.limits.request_timeout, 30);
	assert_int_equal(f->c.limits.idle_timeout, 300);
	assert_int_equal(f->c.limits.job_memory, 4096);
	assert_int_equal(f->c.limits.job_memory_per_uid, 1024);
	assert_int_equal(f->c.limits.recipient_cache, 1024);
	config_free(&f->c);
	/* The recipient cache: 0 turns it off. */
	load_good(f, "[daemon]\nrecipient_cache = 0\n" HSM);
	assert_int_equal(f->c.limits.recipient_cache, 0);
	config_free(&f->c);
	load_good(f, "[daemon]\nrecipient_cache = 65536\n" HSM);
	assert_int_equal(f->c.limits.recipient_cache, 65536);
	config_free(&f->c);
	assert_bad_line(f, "[daemon]\nrecipient_cache = 65537\n", 2,
			"recipient_cache must be a number from 0 to 65536, not \"65537\"");
	assert_bad_line(f, "[daemon]\nrecipient_cache = -1\n", 2,
			"recipient_cache must be a number from 0 to 65536, not \"-1\"");
	/* stats_outcomes: a rule of its own, given with every limit (no "seen" bit shared). */
	load_good(f, "[daemon]\nhsm_retry_max = 5\nrecipient_cache = 0\nstats_outcomes = uid:7\n"
		     HSM);
	assert_true(f->c.stats_outcomes.set);
	assert_int_equal(f->c.stats_outcomes.n, 1);
	assert_int_equal(f->c.stats_outcomes.e[0].id, 7);
	assert_false(f->c.admin.set);
	config_free(&f->c);
	load_good(f, HSM);
	assert_false(f->c.stats_outcomes.set);
	config_free(&f->c);
	assert_bad_line(f, "[daemon]\nstats_outcomes = uid:7\nstats_outcomes = *\n", 3,
			"stats_outcomes given twice in this section");

	assert_bad_line(f, HSM "[key a]\nlabel = a\nallow_unwrap = uid:x\n", 7,
			"allow_unwrap: \"uid:x\" is not user:NAME, uid:N, group:NAME, gid:N or *");
	assert_bad_line(f, HSM "[key a]\nlabel = a\nallow_pubkey = user:no-such-user-kt\n", 7,
			"allow_pubkey: unknown user \"no-such-user-kt\"");
	assert_bad_line(f, HSM "[key a]\nlabel = a\nallow_wrap = *\nallow_wrap = *\n", 8,
			"allow_wrap given twice in this section");
	assert_bad_line(f, HSM "[key a]\nlabel = a\nrsa_mechanism = pkcs11\n", 7,
			"rsa_mechanism must be raw or pkcs, not \"pkcs11\"");
	assert_bad_line(f, "[daemon]\nallow_public_ops = group:no-such-group-kt\n", 2,
			"allow_public_ops: unknown group \"no-such-group-kt\"");
	assert_bad_line(f, "[daemon]\nmax_inflight = 0\n", 2,
			"max_inflight must be a number from 1 to 4096, not \"0\"");
	assert_bad_line(f, "[daemon]\nrequest_timeout = 1h\n", 2,
			"request_timeout must be a number from 1 to 3600, not \"1h\"");
	assert_bad_line(f, "[daemon]\njob_memory = 3000\n", 2,
			"job_memory must be a power of two (KiB), not 3000");
	assert_bad_line(f, "[daemon]\nidle_timeout = 5\nidle_timeout = 6\n", 3,
			"idle_timeout given twice in this section");
	assert_bad_file(f, "[daemon]\njob_memory = 256\njob_memory_per_uid = 512\n" HSM,
			"[daemon] job_memory_per_uid is larger than job_memory");
}

static void test_bad_after_keys(void **state)
{
	struct fixture *f = *state;

	assert_bad_line(f, HSM "[key a]\nlabel = x\n[key b]\nlabel = y\n[key c]\nlabel = z\nnope = 1\n", 11,
			"unknown key \"nope\" in [key c]");
	assert_bad_file(f, "[key a]\nlabel = x\n[key b]\nid = 01\n", "[hsm] module is missing");
	config_free(&f->c);
	config_free(&f->c);
	load_good(f, HSM "[key a]\nlabel = x\n");
	assert_int_equal(f->c.nkeys, 1);
}

/* ---- PKCS#11 URIs (RFC 7512): [hsm] token and [key] uri ---- */

static void test_uri_good(void **state)
{
	struct fixture *f = *state;
	char want[PATH_MAX + 64];
	const uint8_t id12[] = { 0x01, 0x02 };

	load_good(f, "[hsm]\nmodule = m.so\n"
		     "token = pkcs11:token=kt%20a;manufacturer=SoftHSM%20project;serial=abc;"
		     "model=SoftHSM%20v2?pin-source=file:pin\n"
		     "[key k]\nuri = pkcs11:object=kx1;id=%01%02;type=private\n"
		     "[key l]\nuri = PKCS11:token=kt%20a;id=%ff\n"
		     "[key m]\nuri = pkcs11:object=a%3Bb%20c\n");
	assert_string_equal(f->c.hsms[0].token, "kt a");
	assert_string_equal(f->c.hsms[0].token_attrs.manufacturer, "SoftHSM project");
	assert_string_equal(f->c.hsms[0].token_attrs.serial, "abc");
	assert_string_equal(f->c.hsms[0].token_attrs.model, "SoftHSM v2");
	snprintf(want, sizeof(want), "%s/pin", f->dir);
	assert_string_equal(f->c.hsms[0].pin_file, want);
	assert_int_equal(f->c.nkeys, 3);
	assert_string_equal(f->c.keys[0].label, "kx1");
	assert_int_equal(f->c.keys[0].id_len, 2);
	assert_memory_equal(f->c.keys[0].id, id12, 2);
	assert_string_equal(f->c.keys[0].token, "");
	assert_int_equal(f->c.keys[0].uri_line, 5);
	assert_string_equal(f->c.keys[1].label, "");
	assert_int_equal(f->c.keys[1].id_len, 1);
	assert_int_equal(f->c.keys[1].id[0], 0xff);
	assert_string_equal(f->c.keys[1].token, "kt a");
	assert_string_equal(f->c.keys[2].label, "a;b c");
	assert_int_equal(f->c.keys[2].id_len, 0);
	config_free(&f->c);

	/* The module and an absolute PIN file from the URI; a plain label stays a label. */
	load_good(f, "[hsm]\ntoken = pkcs11:token=t?module-path=/usr/lib/x.so&pin-source=file:///etc/kt/pin\n"
		     "[hsm b]\nmodule = /m/b.so\ntoken = t\npin_file = pb\n"
		     "[hsm c]\nmodule = /m/c.so\ntoken = pkcs11:token=t;serial=9?pin-source=%2Fsecret%2Fpin\n"
		     "[key k]\nuri = pkcs11:token=t;serial=9;object=k\n");
	assert_string_equal(f->c.hsms[0].module, "/usr/lib/x.so");
	assert_string_equal(f->c.hsms[0].pin_file, "/etc/kt/pin");
	assert_string_equal(f->c.hsms[0].token_attrs.serial, "");
	assert_string_equal(f->c.hsms[1].token, "t");
	assert_string_equal(f->c.hsms[2].pin_file, "/secret/pin");
	assert_string_equal(f->c.keys[0].token_attrs.serial, "9");
}

static void test_uri_bad_token(void **state)
{
	struct fixture *f = *state;

#define H "[hsm]\nmodule = m.so\n"      /* 2 lines */
	assert_bad_line(f, H "token = pkcs11:id=%zz\n", 3,
			"token: not a valid PKCS#11 URI: URI encoding invalid or corrupted");
	assert_bad_line(f, H "token = pkcs11:token\n", 3,
			"token: not a valid PKCS#11 URI: URI syntax is invalid");
	assert_bad_line(f, H "token = pkcs11:token=t;colour=blue\n", 3,
			"token: unknown attribute \"colour\"");
	assert_bad_line(f, H "token = pkcs11:token=t?colour=blue\n", 3,
			"token: unknown attribute \"colour\"");
	assert_bad_line(f, H "token = pkcs11:token=t;object=k\n", 3,
			"token: attribute \"object\" is not supported here");
	assert_bad_line(f, H "token = pkcs11:token=t;slot-id=3\n", 3,
			"token: attribute \"slot-id\" is not supported here");
	assert_bad_line(f, H "token = pkcs11:token=t?module-name=softhsm2\n", 3,
			"token: attribute \"module-name\" is not supported here");
	assert_bad_line(f, H "token = pkcs11:serial=1234\n", 3,
			"token: the URI must give the token's label (token=LABEL)");
	assert_bad_line(f, H "token = pkcs11:token=\n", 3, "token: attribute \"token\" has no value");
	assert_bad_line(f, H "token = pkcs11:token=a;token=b\n", 3,
			"token: attribute \"token\" given twice");
	assert_bad_line(f, H "token = pkcs11:token=0123456789abcdef0123456789abcdefX\n", 3,
			"token: token is longer than 32 bytes");
	assert_bad_line(f, H "token = pkcs11:token=t;serial=0123456789abcdefX\n", 3,
			"token: serial is longer than 16 bytes");
	assert_bad_line(f, H "token = pkcs11:token=t?pin-source=|/bin/askpass\n", 3,
			"token: pin-source must name a file (file:PATH)");
	assert_bad_line(f, H "token = pkcs11:token=t?pin-source=https://pins.example/1\n", 3,
			"token: pin-source must name a file (file:PATH)");
	assert_bad_line(f, H "token = pkcs11:token=t?pin-source=file://host/pin\n", 3,
			"token: pin-source must name a file (file:PATH)");
#undef H
}

/* A PIN in the configuration is refused, and never repeated in the message. */
static void test_uri_pin(void **state)
{
	struct fixture *f = *state;

	assert_bad_line(f, "[hsm]\nmodule = m.so\ntoken = pkcs11:token=t?pin-value=1234\n", 3,
			"token: pin-value is refused: a PIN is never written here "
			"(put it in a file, mode 0600, named by pin-source=file:PATH)");
	assert_null(strstr(f->err, "1234"));
	/* pin_file and pin-source name one thing: whichever comes second is refused. */
	assert_bad_line(f, "[hsm]\nmodule = m.so\npin_file = pin\ntoken = pkcs11:token=t?pin-source=file:p2\n",
			4, "token: the URI's pin-source and pin_file both name the PIN file; keep one");
	assert_bad_line(f, "[hsm]\nmodule = m.so\ntoken = pkcs11:token=t?pin-source=file:p2\npin_file = pin\n",
			4, "pin_file: the token URI's pin-source names the PIN file already; keep one");
	assert_bad_line(f, "[hsm]\nmodule = m.so\ntoken = pkcs11:token=t?module-path=/m.so\n", 3,
			"token: the URI's module-path and module both name the module; keep one");
	assert_bad_line(f, "[hsm]\ntoken = pkcs11:token=t?module-path=/m.so\nmodule = m.so\n", 3,
			"module: the token URI's module-path names the module already; keep one");
	assert_bad_line(f, "[hsm]\nmodule = m.so\nmodule = n.so\n", 3, "module given twice in this section");
}

static void test_uri_bad_key(void **state)
{
	struct fixture *f = *state;
	char text[1024], id[200];

	assert_bad_line(f, HSM "[key k]\nuri = pkcs11:object=kx1;type=public\n", 6,
			"uri: type must be private (the daemon uses the private key)");
	assert_bad_line(f, HSM "[key k]\nuri = pkcs11:object=kx1;type=cert\n", 6,
			"uri: type must be private (the daemon uses the private key)");
	assert_bad_line(f, HSM "[key k]\nuri = pkcs11:object=kx1;type=bogus\n", 6,
			"uri: type must be private, public, cert, secret-key or data");
	assert_bad_line(f, HSM "[key k]\nuri = pkcs11:type=private\n", 6,
			"uri: the URI must name the key (object=LABEL and/or id=ID)");
	assert_bad_line(f, HSM "[key k]\nuri = kx1\n", 6, "uri: not a PKCS#11 URI (pkcs11:...)");
	assert_bad_line(f, HSM "[key k]\nuri = pkcs11:object=kx1?pin-source=file:pin\n", 6,
			"uri: attribute \"pin-source\" is not supported here");
	assert_bad_line(f, HSM "[key k]\nuri = pkcs11:object=kx1;library-version=1\n", 6,
			"uri: attribute \"library-version\" is not supported here");
	assert_bad_line(f, HSM "[key k]\nuri = pkcs11:object=kx1;oid=1\n", 6,
			"uri: unknown attribute \"oid\"");
	assert_bad_line(f, HSM "[key k]\nuri = pkcs11:object=a%00b\n", 6,
			"uri: object must not hold a NUL byte (%00)");
	assert_bad_line(f, HSM "[key k]\nuri = pkcs11:id=%01;id=%02\n", 6,
			"uri: attribute \"id\" given twice");
	/* Bytes may be written as themselves too (a line holds at most 199 characters). */
	memset(id, 'a', 65);
	id[65] = '\0';
	snprintf(text, sizeof(text), HSM "[key k]\nuri = pkcs11:id=%s\n", id);
	assert_bad_line(f, text, 6, "uri: id is longer than 64 bytes");
	/* Named by uri or by label/id, not both, in either order. */
	assert_bad_line(f, HSM "[key k]\nlabel = kx1\nuri = pkcs11:id=%01\n", 7,
			"uri: give either uri or label/id, not both");
	assert_bad_line(f, HSM "[key k]\nuri = pkcs11:id=%01\nid = 01\n", 7,
			"id: give either uri or label/id, not both");
	assert_bad_line(f, HSM "[key k]\nuri = pkcs11:id=%01\nuri = pkcs11:id=%02\n", 7,
			"uri given twice in this section");
	/* A token in a key URI is each HSM's token, wherever the HSM sections are. */
	assert_bad_line(f, HSM "[key k]\nuri = pkcs11:token=other;object=kx1\n", 6,
			"uri: its token differs from the token of [hsm] (\"t\"); every HSM holds every key");
	assert_bad_line(f, "[key a]\nlabel = x\n[key k]\nuri = pkcs11:token=t;object=kx1\n" HSM
			"[hsm b]\nmodule = b.so\ntoken = pkcs11:token=u\n", 4,
			"uri: its token differs from the token of [hsm b] (\"u\"); every HSM holds every key");
	assert_bad_line(f, "[hsm]\nmodule = m.so\ntoken = pkcs11:token=t;serial=1\n"
			"[key k]\nuri = pkcs11:token=t;serial=2;object=kx1\n", 5,
			"uri: its serial differs from the token of [hsm] (\"t\"); every HSM holds every key");
}

/* A short err buffer is still terminated. */
static void test_short_err(void **state)
{
	struct fixture *f = *state;
	const char *path = write_file(f, "short.conf", "[bogus]\n");
	char err[6];

	memset(err, 'x', sizeof(err));
	assert_int_equal(config_load(path, &f->c, err, sizeof(err)), -1);
	assert_int_equal(strlen(err), 5);
	assert_memory_equal(err, path, 5);
}

/* require_sensitive ([hsm] and [key]) and serialize ([hsm]). */
static void test_module_settings(void **state)
{
	struct fixture *f = *state;

	load_good(f, HSM "[key a]\nlabel = a\n[key b]\nlabel = b\nrequire_sensitive = no\n");
	assert_int_equal(f->c.hsms[0].require_sensitive, 0);
	assert_int_equal(f->c.hsms[0].serialize, SERIALIZE_AUTO);
	assert_int_equal(f->c.keys[0].require_sensitive, -1);     /* [hsm]'s applies */
	assert_int_equal(f->c.keys[1].require_sensitive, 0);
	config_free(&f->c);
	load_good(f, HSM "require_sensitive = yes\nserialize = yes\n[key a]\nlabel = a\n"
		     "require_sensitive = yes\n");
	assert_int_equal(f->c.hsms[0].require_sensitive, 1);
	assert_int_equal(f->c.hsms[0].serialize, SERIALIZE_YES);
	assert_int_equal(f->c.keys[0].require_sensitive, 1);
	config_free(&f->c);
	load_good(f, HSM "serialize = no\n");
	assert_int_equal(f->c.hsms[0].serialize, SERIALIZE_NO);
	config_free(&f->c);
	assert_bad_line(f, HSM "serialize = maybe\n", 5,
			"serialize must be auto, yes or no, not \"maybe\"");
	assert_bad_line(f, HSM "serialize = yes\nserialize = no\n", 6,
			"serialize given twice in this section");
	assert_bad_line(f, HSM "[key a]\nlabel = a\nrequire_sensitive = 1\n", 7,
			"require_sensitive must be yes or no, not \"1\"");
	assert_bad_line(f, HSM "[key a]\nlabel = a\nserialize = yes\n", 7,
			"unknown key \"serialize\" in [key a]");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_good_complete),
		T(test_good_paths),
		T(test_defaults),
		T(test_good_values),
		T(test_good_layout),
		T(test_bad_unknown_keys),
		T(test_bad_sections),
		T(test_bad_syntax),
		T(test_bad_long_lines),
		T(test_bad_duplicates),
		T(test_several_hsms),
		T(test_bad_key_sections),
		T(test_bad_values),
		T(test_bad_missing),
		T(test_security_settings),
		T(test_session_settings),
		T(test_bad_after_keys),
		T(test_short_err),
		T(test_uri_good),
		T(test_uri_bad_token),
		T(test_uri_pin),
		T(test_uri_bad_key),
		T(test_module_settings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
