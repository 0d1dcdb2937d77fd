/*
 * libkeytrans driven line by line from stdin, for tests written in Python
 * (test_reconnect.py) that must run the C library in every build, sanitizers
 * included (a sanitized library cannot be loaded into Python with ctypes).
 *
 *   connect PATH | timeout MS | reconnect 0|1 | info | unwrap NAME HEXBLOB | keygen NAME | close
 *
 * Each command prints one line: the status name, then for a successful
 * unwrap the key in hex, and for a failure the library's message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keytrans.h>

static size_t unhex(const char *s, unsigned char *out, size_t cap)
{
	size_t n = 0;
	unsigned v;

	while (n < cap && sscanf(s + 2 * n, "%2x", &v) == 1)
		out[n++] = (unsigned char)v;
	return n;
}

static void report(kt_conn *c, int st)
{
	if (st == KT_OK)
		printf("OK\n");
	else
		printf("%s %s\n", kt_status_name(st), kt_errmsg(c));
}

static void unwrap(kt_conn *c, char *args)
{
	char *name = strtok(args, " "), *hex = strtok(NULL, " \n");
	unsigned char blob[KT_BLOB_MAX];
	struct kt_session_key k;
	int st;

	if (name == NULL || hex == NULL) {
		printf("usage\n");
		return;
	}
	st = kt_unwrap(c, name, blob, unhex(hex, blob, sizeof(blob)), KT_PAD_PKCS1, &k);
	if (st != KT_OK) {
		report(c, st);
		return;
	}
	printf("OK ");
	for (size_t i = 0; i < k.len; i++)
		printf("%02x", k.key[i]);
	printf("\n");
}

int main(void)
{
	static char line[16384];
	kt_conn *c = kt_conn_new();
	struct kt_info info;
	struct kt_new_key newkey;

	if (c == NULL)
		return 1;
	while (fgets(line, sizeof(line), stdin) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "connect ", 8) == 0)
			report(c, kt_connect(c, line + 8));
		else if (strncmp(line, "timeout ", 8) == 0)
			kt_set_timeout(c, atoi(line + 8)), printf("OK\n");
		else if (strncmp(line, "reconnect ", 10) == 0)
			kt_set_reconnect(c, atoi(line + 10)), printf("OK\n");
		else if (strcmp(line, "info") == 0)
			report(c, kt_info(c, &info));
		else if (strncmp(line, "unwrap ", 7) == 0)
			unwrap(c, line + 7);
		else if (strncmp(line, "keygen ", 7) == 0)
			report(c, kt_keygen(c, line + 7, 0, 0, &newkey));
		else if (strcmp(line, "close") == 0)
			kt_close(c), printf("OK\n");
		else
			printf("usage\n");
		fflush(stdout);
	}
	kt_conn_free(c);
	return 0;
}
