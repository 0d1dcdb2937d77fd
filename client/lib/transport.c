/*
 * Socket I/O: whole-frame sends and buffered receives, each bounded by the
 * call's deadline through poll(). The socket stays blocking for connect();
 * reads and writes use MSG_DONTWAIT so poll() alone decides the waiting.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

static int not_connected(kt_conn *c)
{
	return conn_err(c, KT_ERR_IO, "not connected to the daemon");
}

static int timed_out(kt_conn *c)
{
	return conn_err(c, KT_ERR_TIMEOUT, "no answer from the daemon within %d ms", c->timeout_ms);
}

/* KT_OK with *revents, KT_ERR_TIMEOUT, or a fatal error. */
static int poll_fd(kt_conn *c, short events, const struct deadline *dl, short *revents)
{
	struct pollfd pfd = { .fd = c->fd, .events = events };

	for (;;) {
		int r = poll(&pfd, 1, deadline_left(dl));

		if (r > 0) {
			*revents = pfd.revents;
			return KT_OK;
		}
		if (r == 0)
			return KT_ERR_TIMEOUT;
		if (errno != EINTR)
			return conn_fatal_errno(c, "poll", errno);
	}
}

static void release_held(kt_conn *c)
{
	if (c->held > 0) {
		conn_drop_frame(c, c->held);
		c->held = 0;
	}
}

/* Moves the unprocessed bytes to the front so a whole frame fits behind them. */
static void compact(kt_conn *c)
{
	size_t avail = c->rx_len - c->rx_off;

	if (c->rx_off == 0)
		return;
	memmove(c->rx, c->rx + c->rx_off, avail);
	wipe(c->rx + avail, c->rx_len - avail);
	c->rx_off = 0;
	c->rx_len = avail;
}

/* Reads whatever is available; KT_OK also when nothing was. */
static int read_some(kt_conn *c)
{
	ssize_t r;

	compact(c);
	if (c->rx_len == WIRE_FRAME_MAX)
		return KT_OK;   /* whole frames wait to be processed first */
	do
		r = recv(c->fd, c->rx + c->rx_len, WIRE_FRAME_MAX - c->rx_len, MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r > 0) {
		c->rx_len += (size_t)r;
		return KT_OK;
	}
	if (r == 0)
		return conn_fatal(c, KT_ERR_IO, "the daemon closed the connection");
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return KT_OK;
	return conn_fatal_errno(c, "receive", errno);
}

/*
 * After a failed send: what the daemon wrote before it closed may say why
 * (a BUSY answer to a connection over its limits). Processing it fails the
 * connection with that status; KT_OK when there was no such answer.
 */
static int salvage(kt_conn *c)
{
	for (;;) {
		ssize_t r;

		compact(c);
		if (c->rx_len == WIRE_FRAME_MAX)
			break;
		r = recv(c->fd, c->rx + c->rx_len, WIRE_FRAME_MAX - c->rx_len, MSG_DONTWAIT);
		if (r <= 0)
			break;
		c->rx_len += (size_t)r;
	}
	return conn_drain(c);
}

/* One send(); *sent advances. EAGAIN is not an error: poll again. */
static int write_some(kt_conn *c, const uint8_t *p, size_t n, size_t *sent)
{
	ssize_t r = send(c->fd, p + *sent, n - *sent, MSG_NOSIGNAL | MSG_DONTWAIT);
	int err = errno, st;

	if (r >= 0) {
		*sent += (size_t)r;
		return KT_OK;
	}
	if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK)
		return KT_OK;
	st = salvage(c);
	return st != KT_OK ? st : conn_fatal_errno(c, "send", err);
}

static int read_and_drain(kt_conn *c)
{
	int st = conn_drain(c);

	if (st == KT_OK)
		st = read_some(c);
	if (st == KT_OK)
		st = conn_drain(c);
	return st;
}

/*
 * Reads responses while sending, so a daemon that stops reading until we
 * take its answers cannot deadlock a deep pipeline.
 */
int conn_send(kt_conn *c, const uint8_t *p, size_t n, const struct deadline *dl)
{
	size_t sent = 0;

	if (c->fd < 0)
		return not_connected(c);
	while (sent < n) {
		short ev = 0;
		int st = poll_fd(c, POLLOUT | POLLIN, dl, &ev);

		if (st == KT_ERR_TIMEOUT && sent > 0)
			return conn_fatal(c, st, "timed out in the middle of sending a request");
		if (st == KT_ERR_TIMEOUT)
			return timed_out(c);
		if (st == KT_OK && (ev & (POLLIN | POLLHUP | POLLERR)) && !(ev & POLLOUT))
			st = read_and_drain(c);
		if (st == KT_OK && (ev & POLLOUT))
			st = write_some(c, p, n, &sent);
		if (st != KT_OK)
			return st;
	}
	return KT_OK;
}

int conn_recv(kt_conn *c, const struct deadline *dl)
{
	short ev = 0;
	int st;

	if (c->fd < 0)
		return not_connected(c);
	release_held(c);
	st = poll_fd(c, POLLIN, dl, &ev);
	if (st == KT_ERR_TIMEOUT)
		return timed_out(c);
	if (st != KT_OK)
		return st;
	return read_some(c);
}

int conn_peek_frame(kt_conn *c, const uint8_t **p, size_t *n)
{
	struct buf_reader r;
	uint32_t len;
	int st;

	release_held(c);
	buf_reader_init(&r, c->rx + c->rx_off, c->rx_len - c->rx_off);
	if (buf_get_u32be(&r, &len) != 0)
		return 0;
	st = wire_check_len(len);
	if (st == KT_FRAME_TOO_LARGE)
		return conn_fatal(c, KT_ERR_PROTOCOL, "response frame of %lu bytes exceeds the %d-byte limit",
				  (unsigned long)len + 4, WIRE_FRAME_MAX);
	if (st != KT_OK)
		return conn_fatal(c, KT_ERR_PROTOCOL, "response frame length %lu is too small",
				  (unsigned long)len);
	if (buf_left(&r) < len)
		return 0;
	*p = c->rx + c->rx_off;
	*n = (size_t)len + 4;
	return 1;
}

void conn_drop_frame(kt_conn *c, size_t n)
{
	wipe(c->rx + c->rx_off, n);
	c->rx_off += n;
	if (c->rx_off == c->rx_len)
		c->rx_off = c->rx_len = 0;
}
