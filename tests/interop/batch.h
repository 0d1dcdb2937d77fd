/*
 * The batch mode of the interop programs (capi.exe, cng.exe): one Wine
 * process runs a whole file of commands, one a line, and writes one result
 * line for each: "ok RESULT" or "err CODE MESSAGE".
 */
#ifndef KT_INTEROP_BATCH_H
#define KT_INTEROP_BATCH_H

#define BATCH_LINE_MAX 16384    /* a command line (hex of the largest blob fits) */
#define BATCH_OUT_MAX 16384     /* a result */
#define BATCH_ARGS_MAX 8

struct batch_prog {
	const char *name;       /* for messages */
	/* Runs one command; out (BATCH_OUT_MAX) receives the result. 0, or the failure recorded. */
	int (*run)(int argc, char **argv, char *out);
	/* Records a usage failure (what, and the argument at fault or NULL). */
	int (*usage)(const char *what, const char *arg);
	/* The last failure's code (0: not the API's) and message. */
	unsigned long (*last_error)(const char **msg);
};

/* Every line of in_path through p->run, results to out_path: 0, 1 (a command failed) or 2 (I/O). */
int batch_run(const struct batch_prog *p, const char *in_path, const char *out_path);

#endif
