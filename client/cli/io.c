/* Input and output files, and the hex and number arguments. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hex.h"

void io_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

int io_is_std(const char *path)
{
	return path == NULL || strcmp(path, "-") == 0;
}

static int read_all(int fd, uint8_t *buf, size_t cap, size_t *len)
{
	*len = 0;
	while (*len < cap) {
		ssize_t r = read(fd, buf + *len, cap - *len);

		if (r == 0)
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		*len += (size_t)r;
	}
	return 0;
}

/* 0, or the errno of the failure. */
static int read_input(int fd, uint8_t **buf, size_t *len)
{
	*buf = malloc(CLI_INPUT_MAX + 1);
	if (*buf == NULL)
		return ENOMEM;
	if (read_all(fd, *buf, CLI_INPUT_MAX + 1, len) != 0)
		return errno;
	return 0;
}

int io_read(const struct cli *cli, const char *path, uint8_t **buf, size_t *len)
{
	const char *name = io_is_std(path) ? "stdin" : path;
	int fd = io_is_std(path) ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	int err;

	*buf = NULL;
	*len = 0;
	if (fd < 0)
		return cli_usage(cli, "cannot open %s: %s", name, strerror(errno));
	if (fd == STDIN_FILENO && isatty(fd))
		return cli_usage(cli, "refusing to read binary input from a terminal; use -i FILE");
	err = read_input(fd, buf, len);
	if (fd != STDIN_FILENO)
		close(fd);
	if (err == 0 && *len <= CLI_INPUT_MAX)
		return EXIT_DONE;
	if (*buf != NULL)
		io_wipe(*buf, CLI_INPUT_MAX + 1);
	free(*buf);
	*buf = NULL;
	if (err != 0)
		return cli_usage(cli, "cannot read %s: %s", name, strerror(err));
	return cli_usage(cli, "%s is larger than %d KiB", name, CLI_INPUT_MAX / 1024);
}

static int open_file(struct out_file *o, const char *path, mode_t mode)
{
	o->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (o->fd >= 0) {
		o->created = 1;
		return 0;
	}
	if (errno != EEXIST)
		return -1;
	/* Not truncated yet: a failed request leaves an existing file alone. */
	o->fd = open(path, O_WRONLY | O_CLOEXEC);
	return o->fd >= 0 ? 0 : -1;
}

int io_out_open(const struct cli *cli, struct out_file *o, const char *path, int binary, int secret)
{
	*o = (struct out_file){ .name = io_is_std(path) ? "stdout" : path, .fd = -1 };
	if (cli->json && path == NULL)
		return EXIT_DONE;       /* the result goes into the JSON only */
	if (io_is_std(path)) {
		if (cli->json)
			return cli_usage(cli, "with --json, stdout carries the JSON; give -o a file");
		if (binary && isatty(STDOUT_FILENO))
			return cli_usage(cli, "refusing to write binary output to a terminal; use -o FILE or --json");
		o->is_stdout = 1;
		o->fd = STDOUT_FILENO;
		return EXIT_DONE;
	}
	if (open_file(o, path, secret ? 0600 : 0644) != 0)
		return cli_usage(cli, "cannot open %s for writing: %s", path, strerror(errno));
	return EXIT_DONE;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = write(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int io_out_write(const struct cli *cli, struct out_file *o, const void *p, size_t n)
{
	if (o->fd < 0)
		return EXIT_DONE;
	if (o->is_stdout && fflush(stdout) != 0)
		return cli_output_failed(cli, "cannot write stdout: %s", strerror(errno));
	if (!o->is_stdout && ftruncate(o->fd, 0) != 0)
		return cli_output_failed(cli, "cannot truncate %s: %s", o->name, strerror(errno));
	if (write_all(o->fd, p, n) != 0)
		return cli_output_failed(cli, "cannot write %s: %s", o->name, strerror(errno));
	o->created = 0;
	return EXIT_DONE;
}

void io_out_close(struct out_file *o)
{
	if (o->fd < 0 || o->is_stdout)
		return;
	close(o->fd);
	if (o->created)
		unlink(o->name);
	o->fd = -1;
}

FILE *io_summary(const struct out_file *o)
{
	return o->is_stdout ? stderr : stdout;
}

int io_hex_exact(const struct cli *cli, const char *opt, const char *text, uint8_t *out, size_t n)
{
	if (hex_decode(text, out, n) != (long)n) {
		io_wipe(out, n);
		return cli_usage(cli, "%s needs exactly %zu bytes of hex (%zu digits)", opt, n, 2 * n);
	}
	return EXIT_DONE;
}

int io_hex_max(const struct cli *cli, const char *opt, const char *text, uint8_t *out, size_t cap,
	       size_t *len)
{
	long n = hex_decode(text, out, cap);

	if (n <= 0) {
		io_wipe(out, cap);
		return cli_usage(cli, "%s needs 1 to %zu bytes of hex", opt, cap);
	}
	*len = (size_t)n;
	return EXIT_DONE;
}

/* Decimal, or hex after "0x". */
int io_u32(const struct cli *cli, const char *opt, const char *text, uint32_t *v)
{
	int base = 10;
	unsigned long long x;
	char *end;

	if (text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
		base = 16;
		text += 2;
	}
	if (!(base == 16 ? isxdigit((unsigned char)text[0]) : isdigit((unsigned char)text[0])))
		return cli_usage(cli, "%s needs a number (decimal or 0x hex)", opt);
	errno = 0;
	x = strtoull(text, &end, base);
	if (*end != '\0' || errno != 0 || x > UINT32_MAX)
		return cli_usage(cli, "%s needs a number from 0 to 4294967295", opt);
	*v = (uint32_t)x;
	return EXIT_DONE;
}

void io_print_hex(FILE *f, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		fputc(digits[p[i] >> 4], f);
		fputc(digits[p[i] & 15], f);
	}
}
