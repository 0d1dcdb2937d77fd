/*
 * capi.exe: Microsoft CryptoAPI (advapi32 with the rsaenh provider) driven from
 * tests/interop/test_capi.py, so that keytrans's blobs are read by CryptoAPI and
 * CryptoAPI's blobs are read by keytrans. A Windows console program (mingw-w64);
 * the test runs it under Wine. Nothing is interactive: blobs are binary files,
 * short values are hex on the command line, results are lowercase hex.
 *
 *   capi probe
 *       the provider's name and the Wine version ("-" on Windows)
 *   capi import-unwrap PRIVBLOBFILE SIMPLEBLOBFILE [oaep]
 *       CryptImportKey(PRIVATEKEYBLOB), CryptImportKey(SIMPLEBLOB, hPubKey = that key,
 *       CRYPT_OAEP if asked), CryptExportKey(PLAINTEXTKEYBLOB): prints the PLAINTEXTKEYBLOB
 *   capi gen-wrap PUBBLOBFILE ALG BITS [oaep]
 *       CryptGenKey(ALG, BITS << 16 | CRYPT_EXPORTABLE; BITS 0: the default length),
 *       CryptImportKey(PUBLICKEYBLOB), CryptExportKey(SIMPLEBLOB under it, CRYPT_OAEP if
 *       asked) and CryptExportKey(PLAINTEXTKEYBLOB): prints "SIMPLEBLOB PLAINTEXTKEYBLOB"
 *   capi copp-encrypt PUBBLOBFILE MHEX
 *       CryptEncrypt(public key, final TRUE, buffer of the modulus size) of M, as a
 *       COPP application does: prints the signature as Windows hands it to the driver
 *   capi copp-decrypt PRIVBLOBFILE SIGHEX
 *       CryptDecrypt(private key, final TRUE) of the signature: prints M
 *   capi pub-export PUBBLOBFILE
 *       CryptImportKey(PUBLICKEYBLOB) then CryptExportKey(PUBLICKEYBLOB): prints the blob
 *   capi plain-import KEYBLOBFILE
 *       CryptImportKey(PLAINTEXTKEYBLOB) then CryptExportKey(PLAINTEXTKEYBLOB): prints it
 *   capi batch INFILE OUTFILE
 *       runs each line of INFILE as one of the commands above (one Wine start for many
 *       operations) and writes a line each to OUTFILE: "ok RESULT" or
 *       "err XXXXXXXX MESSAGE" (XXXXXXXX: GetLastError() in hex)
 *
 * ALG is a name (RC2, RC4, DES, 3DES_112, 3DES, AES_128, AES_192, AES_256, with or
 * without CALG_) or a number (0x6602). A failing command prints "capi: MESSAGE: error
 * 0xXXXXXXXX" on stderr and exits 1 (2 for a usage error); batch exits 1 if a line failed.
 */
#include <windows.h>
#include <wincrypt.h>

#include <fcntl.h>
#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "winprog.h"
#include "hex.h"

#define MAX_FILE 16384   /* a 4096-bit PRIVATEKEYBLOB is 2324 bytes */
#define MAX_RSA 1024     /* bytes of modulus: up to 8192 bits */
#define MAX_OUT 8192     /* characters of one result */

static HCRYPTPROV prov;

/* Records a failed CryptoAPI call with GetLastError(); returns -1. */
static int fail(const char *what)
{
	return prog_fail(GetLastError(), what);
}

static int parse_padding(int argc, char **argv, int at, DWORD *flags)
{
	*flags = 0;
	if (argc == at)
		return 0;
	if (argc == at + 1 && strcmp(argv[at], "oaep") == 0) {
		*flags = CRYPT_OAEP;
		return 0;
	}
	if (argc == at + 1 && strcmp(argv[at], "pkcs1") == 0)
		return 0;
	return prog_fail_usage("expected \"oaep\", \"pkcs1\" or nothing", argv[at < argc ? at : 0]);
}

static int parse_alg(const char *s, ALG_ID *alg)
{
	static const struct {
		const char *name;
		ALG_ID alg;
	} names[] = {
		{"RC2", CALG_RC2}, {"RC4", CALG_RC4}, {"DES", CALG_DES},
		{"3DES_112", CALG_3DES_112}, {"3DES", CALG_3DES}, {"AES_128", CALG_AES_128},
		{"AES_192", CALG_AES_192}, {"AES_256", CALG_AES_256},
	};
	const char *bare = strncmp(s, "CALG_", 5) == 0 ? s + 5 : s;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcmp(bare, names[i].name) == 0) {
			*alg = names[i].alg;
			return 0;
		}
	}
	char *end;
	unsigned long v = strtoul(s, &end, 0);
	if (*s == 0 || *end != 0 || v == 0 || v > 0xffff)
		return prog_fail_usage("unknown ALG", s);
	*alg = (ALG_ID)v;
	return 0;
}

/* CryptImportKey of a blob held in a file. */
static int import_file(const char *path, HCRYPTKEY wrapping, DWORD flags, HCRYPTKEY *key,
		       const char *what)
{
	BYTE data[MAX_FILE];
	DWORD len;
	if (prog_read_file(path, data, MAX_FILE, &len))
		return -1;
	if (!CryptImportKey(prov, data, len, wrapping, flags, key))
		return fail(what);
	return 0;
}

/* CryptExportKey (asking for the size first, as applications do), appended as hex. */
static int export_hex(HCRYPTKEY key, HCRYPTKEY wrapping, DWORD type, DWORD flags, char *out,
		      const char *what)
{
	BYTE data[MAX_FILE];
	DWORD len = 0;
	if (!CryptExportKey(key, wrapping, type, flags, NULL, &len))
		return fail(what);
	if (len > sizeof data)
		return prog_fail_usage("exported blob too large", what);
	if (!CryptExportKey(key, wrapping, type, flags, data, &len))
		return fail(what);
	return prog_append_hex(out, MAX_OUT, data, len);
}

static void destroy(HCRYPTKEY *key)
{
	if (*key)
		CryptDestroyKey(*key);
	*key = 0;
}

static int cmd_probe(int argc, char **argv, char *out)
{
	(void)argv;
	if (argc != 1)
		return prog_fail_usage("usage: probe", NULL);
	char name[256];
	DWORD len = sizeof name;
	if (!CryptGetProvParam(prov, PP_NAME, (BYTE *)name, &len, 0))
		return fail("CryptGetProvParam(PP_NAME)");
	const char *wine = prog_wine_version();
	snprintf(out, MAX_OUT, "%s|wine %s", name, wine ? wine : "-");
	return 0;
}

static int cmd_import_unwrap(int argc, char **argv, char *out)
{
	HCRYPTKEY priv = 0, key = 0;
	DWORD pad, flags;
	int rc = -1;
	if (argc < 3)
		return prog_fail_usage("usage: import-unwrap PRIVBLOBFILE SIMPLEBLOBFILE [oaep]", NULL);
	if (parse_padding(argc, argv, 3, &pad))
		return -1;
	/*
	 * CRYPT_EXPORTABLE so that the key can be exported as PLAINTEXTKEYBLOB. But Wine's
	 * rsaenh removes OAEP padding only when dwFlags is exactly CRYPT_OAEP (unpad_data():
	 * "if (dwFlags == CRYPT_OAEP)"), so CRYPT_EXPORTABLE | CRYPT_OAEP is unpadded as
	 * PKCS#1 v1.5 and refused with NTE_BAD_DATA. CryptImportKey documents them as flags
	 * to combine, and that is what is asked for on Windows. Under Wine, ask for
	 * CRYPT_OAEP alone: Wine exports PLAINTEXTKEYBLOBs of keys that are not exportable
	 * too (crypt_export_plaintext_key() checks no permission).
	 */
	flags = CRYPT_EXPORTABLE;
	if (pad)
		flags = prog_wine_version() ? CRYPT_OAEP : CRYPT_OAEP | CRYPT_EXPORTABLE;
	if (import_file(argv[1], 0, 0, &priv, "CryptImportKey(PRIVATEKEYBLOB)") ||
	    import_file(argv[2], priv, flags, &key, "CryptImportKey(SIMPLEBLOB)") ||
	    export_hex(key, 0, PLAINTEXTKEYBLOB, 0, out, "CryptExportKey(PLAINTEXTKEYBLOB)"))
		goto done;
	rc = 0;
done:
	destroy(&key);
	destroy(&priv);
	return rc;
}

static int cmd_gen_wrap(int argc, char **argv, char *out)
{
	HCRYPTKEY pub = 0, key = 0;
	ALG_ID alg = 0;
	DWORD pad;
	char *end;
	int rc = -1;
	if (argc < 4)
		return prog_fail_usage("usage: gen-wrap PUBBLOBFILE ALG BITS [oaep]", NULL);
	unsigned long bits = strtoul(argv[3], &end, 0);
	if (*argv[3] == 0 || *end != 0 || bits > 0xffff)
		return prog_fail_usage("bad BITS", argv[3]);
	if (parse_alg(argv[2], &alg) || parse_padding(argc, argv, 4, &pad))
		return -1;
	if (!CryptGenKey(prov, alg, (DWORD)bits << 16 | CRYPT_EXPORTABLE, &key)) {
		fail("CryptGenKey");
		goto done;
	}
	if (import_file(argv[1], 0, 0, &pub, "CryptImportKey(PUBLICKEYBLOB)") ||
	    export_hex(key, pub, SIMPLEBLOB, pad, out, "CryptExportKey(SIMPLEBLOB)") ||
	    export_hex(key, 0, PLAINTEXTKEYBLOB, 0, out, "CryptExportKey(PLAINTEXTKEYBLOB)"))
		goto done;
	rc = 0;
done:
	destroy(&key);
	destroy(&pub);
	return rc;
}

/* The modulus length in bytes of an RSA key (KP_KEYLEN is in bits). */
static int rsa_bytes(HCRYPTKEY key, DWORD *bytes)
{
	DWORD bits = 0, len = sizeof bits;
	if (!CryptGetKeyParam(key, KP_KEYLEN, (BYTE *)&bits, &len, 0))
		return fail("CryptGetKeyParam(KP_KEYLEN)");
	if (bits == 0 || bits % 8 || bits / 8 > MAX_RSA)
		return prog_fail_usage("unexpected RSA key length", NULL);
	*bytes = bits / 8;
	return 0;
}

static int cmd_copp_encrypt(int argc, char **argv, char *out)
{
	HCRYPTKEY pub = 0;
	BYTE data[MAX_RSA];
	DWORD len, k = 0;
	int rc = -1;
	if (argc != 3)
		return prog_fail_usage("usage: copp-encrypt PUBBLOBFILE MHEX", NULL);
	if (prog_parse_hex(argv[2], data, sizeof data, &len) ||
	    import_file(argv[1], 0, 0, &pub, "CryptImportKey(PUBLICKEYBLOB)") || rsa_bytes(pub, &k))
		goto done;
	/* As the COPP documentation has it: CryptEncrypt(key, 0, TRUE, 0, buf, &len=40, 256). */
	if (!CryptEncrypt(pub, 0, TRUE, 0, data, &len, k)) {
		fail("CryptEncrypt");
		goto done;
	}
	if (prog_append_hex(out, MAX_OUT, data, len))
		goto done;
	rc = 0;
done:
	destroy(&pub);
	return rc;
}

static int cmd_copp_decrypt(int argc, char **argv, char *out)
{
	HCRYPTKEY priv = 0;
	BYTE data[MAX_RSA];
	DWORD len;
	int rc = -1;
	if (argc != 3)
		return prog_fail_usage("usage: copp-decrypt PRIVBLOBFILE SIGHEX", NULL);
	if (prog_parse_hex(argv[2], data, sizeof data, &len) ||
	    import_file(argv[1], 0, 0, &priv, "CryptImportKey(PRIVATEKEYBLOB)"))
		goto done;
	if (!CryptDecrypt(priv, 0, TRUE, 0, data, &len)) {
		fail("CryptDecrypt");
		goto done;
	}
	if (prog_append_hex(out, MAX_OUT, data, len))
		goto done;
	rc = 0;
done:
	destroy(&priv);
	return rc;
}

static int cmd_pub_export(int argc, char **argv, char *out)
{
	HCRYPTKEY pub = 0;
	int rc;
	if (argc != 2)
		return prog_fail_usage("usage: pub-export PUBBLOBFILE", NULL);
	rc = import_file(argv[1], 0, 0, &pub, "CryptImportKey(PUBLICKEYBLOB)");
	if (rc == 0)
		rc = export_hex(pub, 0, PUBLICKEYBLOB, 0, out, "CryptExportKey(PUBLICKEYBLOB)");
	destroy(&pub);
	return rc;
}

static int cmd_plain_import(int argc, char **argv, char *out)
{
	HCRYPTKEY key = 0;
	int rc;
	if (argc != 2)
		return prog_fail_usage("usage: plain-import KEYBLOBFILE", NULL);
	rc = import_file(argv[1], 0, CRYPT_EXPORTABLE, &key, "CryptImportKey(PLAINTEXTKEYBLOB)");
	if (rc == 0)
		rc = export_hex(key, 0, PLAINTEXTKEYBLOB, 0, out, "CryptExportKey(PLAINTEXTKEYBLOB)");
	destroy(&key);
	return rc;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv, char *out);
} commands[] = {
	{"probe", cmd_probe},
	{"import-unwrap", cmd_import_unwrap},
	{"gen-wrap", cmd_gen_wrap},
	{"copp-encrypt", cmd_copp_encrypt},
	{"copp-decrypt", cmd_copp_decrypt},
	{"pub-export", cmd_pub_export},
	{"plain-import", cmd_plain_import},
};

/* Runs one command; out receives the result. Returns 0, -1 (failed) or -2 (usage). */
static int run(int argc, char **argv, char *out)
{
	out[0] = 0;
	prog_clear();
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(argv[0], commands[i].name) == 0) {
			SetLastError(0);
			return commands[i].run(argc, argv, out) ? -1 : 0;
		}
	}
	prog_fail_usage("unknown command", argv[0]);
	return -2;
}

int main(int argc, char **argv)
{
	_setmode(_fileno(stdout), _O_BINARY);   /* "\n", not "\r\n" */
	if (argc < 2) {
		fprintf(stderr, "usage: capi probe | import-unwrap | gen-wrap | copp-encrypt | "
				"copp-decrypt | pub-export | plain-import ... | batch INFILE OUTFILE\n");
		return 2;
	}
	if (!CryptAcquireContextA(&prov, NULL, MS_ENH_RSA_AES_PROV_A, PROV_RSA_AES,
				  CRYPT_VERIFYCONTEXT)) {
		fprintf(stderr, "capi: CryptAcquireContext(MS_ENH_RSA_AES_PROV, PROV_RSA_AES): "
				"error 0x%08lx\n", (unsigned long)GetLastError());
		return 1;
	}
	int rc = prog_main("capi", run, argc, argv);
	CryptReleaseContext(prov, 0);
	return rc;
}
