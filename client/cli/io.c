/* Input and output files, and the hex and number arguments. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
	/* A file that is not there is a runtime failure, not a misuse of the command line. */
	if (fd < 0)
		return cli_input_failed(cli, "cannot read %s: %s", name, strerror(errno));
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
		return cli_input_failed(cli, "cannot read %s: %s", name, strerror(err));
	return cli_input_failed(cli, "cannot read %s: it is larger than %d KiB", name,
				CLI_INPUT_MAX / 1024);
}

/*
 * A secret replaces only what is surely the caller's: nothing, or a regular
 * file of the caller's that nobody else may open. Anything else there (a
 * file another user made in a sticky folder such as /tmp, a symbolic link,
 * a device) was not the caller's to fill, so it is refused, not replaced.
 * 0: may go ahead; 1: refused, the reason in why; -1: lstat failed (errno).
 */
static int secret_target_refused(const char *path, char *why, size_t n)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (S_ISLNK(st.st_mode))
		snprintf(why, n, "it is a symbolic link");
	else if (!S_ISREG(st.st_mode))
		snprintf(why, n, "it is not a regular file");
	else if (st.st_uid != geteuid())
		snprintf(why, n, "it belongs to uid %u, not to the caller", (unsigned)st.st_uid);
	else if ((st.st_mode & 077) != 0)
		snprintf(why, n, "group or others may open it (mode %04o)",
			 (unsigned)(st.st_mode & 07777));
	else
		return 0;
	return 1;
}

/* ".keytrans-XXXXXX" in the folder of path: rename() needs the same file system. */
static char *tmp_template(const char *path)
{
	static const char name[] = ".keytrans-XXXXXX";
	const char *slash = strrchr(path, '/');
	size_t dir = slash == NULL ? 0 : (size_t)(slash - path) + 1;
	char *t = malloc(dir + sizeof(name));

	if (t != NULL) {
		memcpy(t, path, dir);
		memcpy(t + dir, name, sizeof(name));
	}
	return t;
}

/*
 * A secret goes into a new file of its own (O_EXCL, mode 0600, a random
 * name), renamed over the target once written: no other user's file or
 * open descriptor ever sees it, whatever was or comes to be at the target.
 */
static int open_secret(const struct cli *cli, struct out_file *o, const char *path)
{
	char why[128];
	int r = secret_target_refused(path, why, sizeof(why));

	if (r > 0)
		return cli_output_failed(cli, "refusing to write a secret to %s: %s", path, why);
	if (r == 0) {
		o->tmp = tmp_template(path);
		if (o->tmp == NULL)
			errno = ENOMEM;
		else
			o->fd = mkostemp(o->tmp, O_CLOEXEC);
	}
	if (o->fd >= 0)
		return EXIT_DONE;
	r = errno;
	free(o->tmp);
	o->tmp = NULL;
	return cli_output_failed(cli, "cannot open %s for writing: %s", path, strerror(r));
}

/* O_NOFOLLOW fails with ELOOP on a link: said plainly, as a refusal. */
static int refuse_link(const struct cli *cli, const char *path)
{
	struct stat st;
	int err = errno;

	if (err == ELOOP && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
		return cli_output_failed(cli, "refusing to write to %s: it is a symbolic link", path);
	return cli_output_failed(cli, "cannot open %s for writing: %s", path, strerror(err));
}

/*
 * Public results keep the ordinary way (an existing file is overwritten in
 * place), but never through a symbolic link: in a sticky folder another
 * user's link could point anywhere the caller may write.
 */
static int open_public(const struct cli *cli, struct out_file *o, const char *path)
{
	o->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (o->fd >= 0) {
		o->created = 1;
		return EXIT_DONE;
	}
	/* Not truncated yet: a failed request leaves an existing file alone. */
	if (errno == EEXIST)
		o->fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	return o->fd >= 0 ? EXIT_DONE : refuse_link(cli, path);
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
	return secret ? open_secret(cli, o, path) : open_public(cli, o, path);
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

/* The rename reaches the disk; failing that only costs durability, so it is not reported. */
static void sync_folder(const char *tmp)
{
	const char *slash = strrchr(tmp, '/');
	char *dir = slash == NULL ? strdup(".") : strndup(tmp, (size_t)(slash - tmp) + 1);
	int fd = dir == NULL ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(dir);
}

/*
 * The secret is in its own file: on the disk, then under the target's name.
 * The target is checked again, as something may have been put there since
 * the open; rename() then replaces that name without writing into anything.
 */
static int commit_secret(const struct cli *cli, struct out_file *o)
{
	char why[128];
	int r;

	if (fsync(o->fd) != 0)
		return cli_output_failed(cli, "cannot write %s: %s", o->name, strerror(errno));
	r = secret_target_refused(o->name, why, sizeof(why));
	if (r > 0)
		return cli_output_failed(cli, "refusing to write a secret to %s: %s", o->name, why);
	if (r < 0 || rename(o->tmp, o->name) != 0)
		return cli_output_failed(cli, "cannot replace %s: %s", o->name, strerror(errno));
	sync_folder(o->tmp);
	free(o->tmp);
	o->tmp = NULL;
	return EXIT_DONE;
}

int io_out_write(const struct cli *cli, struct out_file *o, const void *p, size_t n)
{
	if (o->fd < 0)
		return EXIT_DONE;
	if (o->is_stdout && fflush(stdout) != 0)
		return cli_output_failed(cli, "cannot write stdout: %s", strerror(errno));
	if (o->tmp == NULL && !o->is_stdout && ftruncate(o->fd, 0) != 0)
		return cli_output_failed(cli, "cannot truncate %s: %s", o->name, strerror(errno));
	if (write_all(o->fd, p, n) != 0)
		return cli_output_failed(cli, "cannot write %s: %s", o->name, strerror(errno));
	if (o->tmp != NULL)
		return commit_secret(cli, o);
	o->created = 0;
	return EXIT_DONE;
}

void io_out_close(struct out_file *o)
{
	if (o->fd < 0 || o->is_stdout)
		return;
	close(o->fd);
	if (o->tmp != NULL)
		unlink(o->tmp);         /* never renamed: the target was left as it was */
	else if (o->created)
		unlink(o->name);
	free(o->tmp);
	o->tmp = NULL;
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
