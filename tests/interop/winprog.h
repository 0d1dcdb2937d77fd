/*
 * What the interop programs (capi.exe, cng.exe: Windows console programs run
 * under Wine) share: the record of the last failure, files and hex in and
 * out, and the batch mode, in which one Wine process runs a whole file of
 * commands, one a line, and writes one result line for each: "ok RESULT" or
 * "err CODE MESSAGE".
 */
#ifndef KT_INTEROP_WINPROG_H
#define KT_INTEROP_WINPROG_H

#include <stddef.h>

#define BATCH_LINE_MAX 16384    /* a command line (hex of the largest blob fits) */
#define BATCH_OUT_MAX 16384     /* a result */
#define BATCH_ARGS_MAX 8

/* Records a failure: the API's code (0: not the API's) and what failed. Returns -1. */
int prog_fail(unsigned long code, const char *what);
/* A usage or file failure (code 0): what, and the argument at fault or NULL. Returns -1. */
int prog_fail_usage(const char *what, const char *arg);
/* Forgets the last failure (before each command). */
void prog_clear(void);
/* The last failure's code and message. */
unsigned long prog_last_error(const char **msg);

/* The whole file (at most max bytes) into data. 0, or -1 recorded. */
int prog_read_file(const char *path, unsigned char *data, unsigned long max, unsigned long *len);
/* Hex text into data (at most max bytes), with the project's codec. 0, or -1 recorded. */
int prog_parse_hex(const char *s, unsigned char *data, unsigned long max, unsigned long *len);
/* Appends " HEX" (no space when out is empty) to out, which holds cap characters. 0 or -1. */
int prog_append_hex(char *out, size_t cap, const unsigned char *data, unsigned long len);

/* The Wine version, or NULL on Windows. */
const char *prog_wine_version(void);

/* Runs one command; out (BATCH_OUT_MAX) receives the result. 0, or the failure recorded. */
typedef int prog_run_fn(int argc, char **argv, char *out);
/* Every line of in_path through run, results to out_path: 0, 1 (a command failed) or 2 (I/O). */
int batch_run(const char *name, prog_run_fn *run, const char *in_path, const char *out_path);
/*
 * The program's command line (argv[1] on): "batch INFILE OUTFILE", or one
 * command whose result goes to stdout. The exit status: 0, 1 (failed), 2 (usage).
 */
int prog_main(const char *name, prog_run_fn *run, int argc, char **argv);

#endif
