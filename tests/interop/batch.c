#include "batch.h"

#include <stdio.h>
#include <string.h>

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

static int run_lines(const struct batch_prog *p, FILE *in, FILE *res)
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
			p->usage("too many arguments", argv[0]);
		if (!too_many && p->run(argc, argv, out) == 0) {
			fprintf(res, "ok %s\n", out);
		} else {
			failed = 1;
			code = p->last_error(&msg);
			fprintf(res, "err %08lx %s\n", code, msg);
		}
		fflush(res);
	}
	return failed;
}

int batch_run(const struct batch_prog *p, const char *in_path, const char *out_path)
{
	FILE *in = fopen(in_path, "rb"), *res;
	int failed, bad;

	if (!in) {
		fprintf(stderr, "%s: cannot open %s\n", p->name, in_path);
		return 2;
	}
	res = fopen(out_path, "wb");
	if (!res) {
		fprintf(stderr, "%s: cannot create %s\n", p->name, out_path);
		fclose(in);
		return 2;
	}
	failed = run_lines(p, in, res);
	bad = ferror(in) || ferror(res);
	fclose(in);
	if (fclose(res) || bad) {
		fprintf(stderr, "%s: batch I/O error\n", p->name);
		return 2;
	}
	return failed;
}
