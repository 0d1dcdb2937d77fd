/*
 * cng.exe: Microsoft CNG (bcrypt.dll) driven from tests/interop/test_cng.py, so
 * that keytrans's CNG RSA key blobs are read by CNG and CNG's are read by
 * keytrans. A Windows console program (mingw-w64, like capi.exe); the test
 * runs it under Wine. Blobs are binary files, short values hex on the command
 * line, results lowercase hex. A blob file's type comes from its magic: "RSA1"
 * BCRYPT_RSAPUBLIC_BLOB, "RSA2" BCRYPT_RSAPRIVATE_BLOB, "RSA3"
 * BCRYPT_RSAFULLPRIVATE_BLOB.
 *
 *   cng probe
 *       the Wine version ("-" on Windows), once BCryptOpenAlgorithmProvider(RSA) worked
 *   cng gen BITS
 *       BCryptGenerateKeyPair + BCryptFinalizeKeyPair, then BCryptExportKey of
 *       BCRYPT_RSAPUBLIC_BLOB, BCRYPT_RSAPRIVATE_BLOB and BCRYPT_RSAFULLPRIVATE_BLOB:
 *       prints "PUB PRIV FULL"
 *   cng export BLOBFILE
 *       BCryptImportKeyPair of the blob, then BCryptExportKey of the public blob and,
 *       for a private key, the private and full private blobs: prints "PUB [PRIV FULL]"
 *   cng encrypt BLOBFILE MHEX
 *       BCryptEncrypt(BCRYPT_PAD_PKCS1) of M under the blob's key: prints the
 *       ciphertext (big-endian, as CNG has it)
 *   cng decrypt BLOBFILE CHEX
 *       BCryptDecrypt(BCRYPT_PAD_PKCS1) of C with the blob's private key: prints M
 *   cng batch INFILE OUTFILE
 *       each line of INFILE as one of the commands above (one Wine start for many),
 *       a line each to OUTFILE: "ok RESULT" or "err XXXXXXXX MESSAGE" (the NTSTATUS)
 *
 * A failing command prints "cng: MESSAGE: status 0xXXXXXXXX" on stderr and exits 1
 * (2 for a usage error); batch exits 1 if a line failed.
 */
#include <windows.h>
#include <bcrypt.h>

#include <fcntl.h>
#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "winprog.h"
#include "hex.h"

#define MAX_FILE 16384   /* a 4096-bit full private blob is 2331 bytes */
#define MAX_RSA 1024     /* bytes of modulus: up to 8192 bits */
#define MAX_OUT 16384    /* characters of one result */

static BCRYPT_ALG_HANDLE alg;

/* Records a failed CNG call; returns -1. */
static int fail(const char *what, NTSTATUS st)
{
	return prog_fail((unsigned long)st, what);
}

/* The blob type its magic names, or NULL. */
static LPCWSTR blob_type(const BYTE *data, ULONG len)
{
	if (len < 4)
		return NULL;
	if (memcmp(data, "RSA1", 4) == 0)
		return BCRYPT_RSAPUBLIC_BLOB;
	if (memcmp(data, "RSA2", 4) == 0)
		return BCRYPT_RSAPRIVATE_BLOB;
	if (memcmp(data, "RSA3", 4) == 0)
		return BCRYPT_RSAFULLPRIVATE_BLOB;
	return NULL;
}

/* BCryptImportKeyPair of a blob held in a file; *priv: whether it is a private key. */
static int import_file(const char *path, BCRYPT_KEY_HANDLE *key, int *priv)
{
	BYTE data[MAX_FILE];
	ULONG len;
	NTSTATUS st;
	if (prog_read_file(path, data, MAX_FILE, &len))
		return -1;
	LPCWSTR type = blob_type(data, len);
	if (!type)
		return prog_fail_usage("no RSA1/RSA2/RSA3 magic", path);
	if (priv)
		*priv = memcmp(data, "RSA1", 4) != 0;
	st = BCryptImportKeyPair(alg, NULL, type, key, data, len, 0);
	SecureZeroMemory(data, sizeof data);
	if (!BCRYPT_SUCCESS(st))
		return fail("BCryptImportKeyPair", st);
	return 0;
}

/* BCryptExportKey (asking for the size first, as applications do), appended as hex. */
static int export_hex(BCRYPT_KEY_HANDLE key, LPCWSTR type, char *out, const char *what)
{
	BYTE data[MAX_FILE];
	ULONG len = 0;
	NTSTATUS st = BCryptExportKey(key, NULL, type, NULL, 0, &len, 0);
	if (!BCRYPT_SUCCESS(st))
		return fail(what, st);
	if (len > sizeof data)
		return prog_fail_usage("exported blob too large", what);
	st = BCryptExportKey(key, NULL, type, data, len, &len, 0);
	if (!BCRYPT_SUCCESS(st))
		return fail(what, st);
	return prog_append_hex(out, MAX_OUT, data, len);
}

static int export_all(BCRYPT_KEY_HANDLE key, int priv, char *out)
{
	if (export_hex(key, BCRYPT_RSAPUBLIC_BLOB, out, "BCryptExportKey(BCRYPT_RSAPUBLIC_BLOB)"))
		return -1;
	if (!priv)
		return 0;
	if (export_hex(key, BCRYPT_RSAPRIVATE_BLOB, out, "BCryptExportKey(BCRYPT_RSAPRIVATE_BLOB)"))
		return -1;
	return export_hex(key, BCRYPT_RSAFULLPRIVATE_BLOB, out,
			  "BCryptExportKey(BCRYPT_RSAFULLPRIVATE_BLOB)");
}

static void destroy(BCRYPT_KEY_HANDLE *key)
{
	if (*key)
		BCryptDestroyKey(*key);
	*key = NULL;
}

static int cmd_probe(int argc, char **argv, char *out)
{
	(void)argv;
	if (argc != 1)
		return prog_fail_usage("usage: probe", NULL);
	const char *wine = prog_wine_version();
	snprintf(out, MAX_OUT, "wine %s", wine ? wine : "-");
	return 0;
}

static int cmd_gen(int argc, char **argv, char *out)
{
	BCRYPT_KEY_HANDLE key = NULL;
	NTSTATUS st;
	char *end;
	int rc = -1;
	if (argc != 2)
		return prog_fail_usage("usage: gen BITS", NULL);
	unsigned long bits = strtoul(argv[1], &end, 0);
	if (*argv[1] == 0 || *end != 0 || bits < 512 || bits > 8 * MAX_RSA)
		return prog_fail_usage("bad BITS", argv[1]);
	st = BCryptGenerateKeyPair(alg, &key, (ULONG)bits, 0);
	if (!BCRYPT_SUCCESS(st)) {
		fail("BCryptGenerateKeyPair", st);
		goto done;
	}
	st = BCryptFinalizeKeyPair(key, 0);
	if (!BCRYPT_SUCCESS(st)) {
		fail("BCryptFinalizeKeyPair", st);
		goto done;
	}
	rc = export_all(key, 1, out);
done:
	destroy(&key);
	return rc;
}

static int cmd_export(int argc, char **argv, char *out)
{
	BCRYPT_KEY_HANDLE key = NULL;
	int priv, rc;
	if (argc != 2)
		return prog_fail_usage("usage: export BLOBFILE", NULL);
	rc = import_file(argv[1], &key, &priv);
	if (rc == 0)
		rc = export_all(key, priv, out);
	destroy(&key);
	return rc;
}

typedef NTSTATUS WINAPI crypt_fn(BCRYPT_KEY_HANDLE, PUCHAR, ULONG, VOID *, PUCHAR, ULONG,
				  PUCHAR, ULONG, ULONG *, ULONG);

/* BCryptEncrypt or BCryptDecrypt (one signature) with PKCS#1 v1.5 on HEX, under the blob file's key. */
static int crypt_hex(int argc, char **argv, char *out, int decrypt)
{
	crypt_fn *fn = decrypt ? BCryptDecrypt : BCryptEncrypt;
	const char *what = decrypt ? "BCryptDecrypt(BCRYPT_PAD_PKCS1)" : "BCryptEncrypt(BCRYPT_PAD_PKCS1)";
	BCRYPT_KEY_HANDLE key = NULL;
	BYTE in[MAX_RSA], res[MAX_RSA];
	ULONG inlen, reslen = 0;
	NTSTATUS st;
	int priv = 0, rc = -1;
	if (argc != 3)
		return prog_fail_usage(decrypt ? "usage: decrypt BLOBFILE CHEX" : "usage: encrypt BLOBFILE MHEX",
				       NULL);
	if (prog_parse_hex(argv[2], in, sizeof in, &inlen) || import_file(argv[1], &key, &priv))
		goto done;
	if (decrypt && !priv) {
		prog_fail_usage("decrypt needs a private key blob", argv[1]);
		goto done;
	}
	st = fn(key, in, inlen, NULL, NULL, 0, res, sizeof res, &reslen, BCRYPT_PAD_PKCS1);
	if (!BCRYPT_SUCCESS(st)) {
		fail(what, st);
		goto done;
	}
	rc = prog_append_hex(out, MAX_OUT, res, reslen);
done:
	destroy(&key);
	return rc;
}

static int cmd_encrypt(int argc, char **argv, char *out)
{
	return crypt_hex(argc, argv, out, 0);
}

static int cmd_decrypt(int argc, char **argv, char *out)
{
	return crypt_hex(argc, argv, out, 1);
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv, char *out);
} commands[] = {
	{"probe", cmd_probe},
	{"gen", cmd_gen},
	{"export", cmd_export},
	{"encrypt", cmd_encrypt},
	{"decrypt", cmd_decrypt},
};

/* Runs one command; out receives the result. Returns 0, -1 (failed) or -2 (usage). */
static int run(int argc, char **argv, char *out)
{
	out[0] = 0;
	prog_clear();
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[0], commands[i].name) == 0)
			return commands[i].run(argc, argv, out) ? -1 : 0;
	prog_fail_usage("unknown command", argv[0]);
	return -2;
}

int main(int argc, char **argv)
{
	_setmode(_fileno(stdout), _O_BINARY);   /* "\n", not "\r\n" */
	if (argc < 2) {
		fprintf(stderr, "usage: cng probe | gen | export | encrypt | decrypt ... | "
				"batch INFILE OUTFILE\n");
		return 2;
	}
	NTSTATUS st = BCryptOpenAlgorithmProvider(&alg, BCRYPT_RSA_ALGORITHM, NULL, 0);
	if (!BCRYPT_SUCCESS(st)) {
		fprintf(stderr, "cng: BCryptOpenAlgorithmProvider(RSA): status 0x%08lx\n",
			(unsigned long)st);
		return 1;
	}
	int rc = prog_main("cng", run, argc, argv);
	BCryptCloseAlgorithmProvider(alg, 0);
	return rc;
}
