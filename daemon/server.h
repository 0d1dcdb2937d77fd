/*
 * The Unix socket side, on the event-loop thread: listening (or the socket
 * systemd passes), connections and who is on them, framing, handing jobs to
 * the pools, writing replies, limits, timeouts, back-pressure and the
 * graceful drain on SIGTERM. Never calls into the HSM.
 */
#ifndef KT_SERVER_H
#define KT_SERVER_H

#include <stddef.h>

struct daemon;
struct pool;
struct server;

#define CONN_OUT_HIGH (256 * 1024)      /* unread replies before we stop reading */
#define CONN_OUT_LOW (64 * 1024)
#define CONN_IN_HIGH (2 * 65536)        /* input buffered ahead of parsing */
#define POOL_MAX_DEPTH 4096             /* queued jobs per pool before BUSY */
#define DRAIN_TIMEOUT_S 10

/*
 * Takes the socket systemd passed (socket activation), or creates the
 * configured one (replacing a stale one), and starts accepting.
 */
int server_start(struct daemon *d, struct server **out, char *err, size_t errlen);
/* Requests being worked on by the HSM pool (the main loop spins while a few are). */
unsigned server_hsm_in_flight(const struct server *s);
/* Jobs handed to pool p and not yet answered (queued, running, or done and not yet delivered). */
unsigned server_in_flight(const struct server *s, const struct pool *p);
/* Connections open now. */
size_t server_connections(const struct server *s);
/* The listening socket's descriptor (handed over across a restart). */
int server_listen_fd(const struct server *s);
/* 1 when the listening socket came from systemd. */
int server_activated(const struct server *s);
/* Stops accepting and exits the loop once in-flight requests are answered. */
void server_drain(struct server *s);
/* After the loop has ended and the pools have stopped: frees everything, removes the socket. */
void server_free(struct server *s);
/* Replies still queued from workers after the pools stopped. */
void server_flush_replies(struct server *s);

#endif
