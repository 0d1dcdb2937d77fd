#include "winprog.h"

#include <stdio.h>
#include <string.h>

#include <windows.h>

#include "hex.h"

static char errmsg[512];
static unsigned long errcode;

int prog_fail(unsigned long code, const char *what)
{
	errcode = code;
	snprintf(errmsg, sizeof errmsg, "%s", what);
	return -1;
}

int prog_fail_usage(const char *what, const char *arg)
{
	errcode = 0;
	snprintf(errmsg, sizeof errmsg, "%s%s%s", what, arg ? ": " : "", arg ? arg : "");
	return -1;
}

void prog_clear(void)
{
	errmsg[0] = 0;
	errcode = 0;
}

unsigned long prog_last_error(const char **msg)
{
	*msg = errmsg;
	return errcode;
}

int prog_read_file(const char *path, unsigned char *data, unsigned long max, unsigned long *len)
{
	FILE *f = fopen(path, "rb");
	size_t n;
	int extra;

	if (!f)
		return prog_fail_usage("cannot open", path);
	n = fread(data, 1, max, f);
	extra = fgetc(f);
	fclose(f);
	if (extra != EOF)
		return prog_fail_usage("file too large", path);
	*len = (unsigned long)n;
	return 0;
}

int prog_parse_hex(const char *s, unsigned char *data, unsigned long max, unsigned long *len)
{
	long n = hex_decode(s, data, max);

	if (n < 0)
		return prog_fail_usage("bad hex", s);
	*len = (unsigned long)n;
	return 0;
}

int prog_append_hex(char *out, size_t cap, const unsigned char *data, unsigned long len)
{
	size_t o = strlen(out);

	if (o + 1 + 2 * (size_t)len + 1 > cap)
		return prog_fail_usage("result too long", NULL);
	if (o)
		out[o++] = ' ';
	hex_encode(data, len, out + o);
	return 0;
}

/* Splits line into argv (at most BATCH_ARGS_MAX words); *too_many when there were more. */
static int split(char *line, char *argv[BATCH_ARGS_MAX + 1], int *too_many)
{
	int argc = 0;

	*too_many = 0;
	for (char *tok = strtok(line, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
		if (argc == BATCH_ARGS_MAX)
			*too_many = 1;
		else
			argv[argc++] = tok;
	}
	argv[argc] = NULL;
	return argc;
}

static int run_lines(prog_run_fn *run, FILE *in, FILE *res)
{
	static char line[BATCH_LINE_MAX], out[BATCH_OUT_MAX];
	int failed = 0;

	while (fgets(line, sizeof line, in)) {
		char *argv[BATCH_ARGS_MAX + 1];
		int too_many, argc = split(line, argv, &too_many);
		const char *msg;
		unsigned long code;

		if (argc == 0 || argv[0][0] == '#')
			continue;
		if (too_many)
			prog_fail_usage("too many arguments", argv[0]);
		if (!too_many && run(argc, argv, out) == 0) {
			fprintf(res, "ok %s\n", out);
		} else {
			failed = 1;
			code = prog_last_error(&msg);
			fprintf(res, "err %08lx %s\n", code, msg);
		}
		fflush(res);
	}
	return failed;
}

int batch_run(const char *name, prog_run_fn *run, const char *in_path, const char *out_path)
{
	FILE *in = fopen(in_path, "rb"), *res;
	int failed, bad;

	if (!in) {
		fprintf(stderr, "%s: cannot open %s\n", name, in_path);
		return 2;
	}
	res = fopen(out_path, "wb");
	if (!res) {
		fprintf(stderr, "%s: cannot create %s\n", name, out_path);
		fclose(in);
		return 2;
	}
	failed = run_lines(run, in, res);
	bad = ferror(in) || ferror(res);
	fclose(in);
	if (fclose(res) || bad) {
		fprintf(stderr, "%s: batch I/O error\n", name);
		return 2;
	}
	return failed;
}

int prog_main(const char *name, prog_run_fn *run, int argc, char **argv)
{
	static char out[BATCH_OUT_MAX];
	unsigned long code;
	const char *msg;
	int rc;

	if (strcmp(argv[1], "batch") == 0) {
		if (argc == 4)
			return batch_run(name, run, argv[2], argv[3]);
		fprintf(stderr, "usage: %s batch INFILE OUTFILE\n", name);
		return 2;
	}
	out[0] = 0;
	rc = run(argc - 1, argv + 1, out);
	if (rc == 0) {
		printf("%s\n", out);
		return 0;
	}
	code = prog_last_error(&msg);
	fprintf(stderr, "%s: %s: %s: code 0x%08lx\n", name, argv[1], msg, code);
	return rc == -2 ? 2 : 1;
}

const char *prog_wine_version(void)
{
	HMODULE ntdll = GetModuleHandleA("ntdll.dll");
	FARPROC get = ntdll ? GetProcAddress(ntdll, "wine_get_version") : NULL;
	const char *(*get_version)(void);

	if (get == NULL)
		return NULL;
	memcpy(&get_version, &get, sizeof(get_version));        /* a FARPROC is not a function of this type */
	return get_version();
}
