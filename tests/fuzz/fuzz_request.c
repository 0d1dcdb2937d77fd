/*
 * fuzz_request: every request decoder of the daemon, as the event loop runs
 * it (server.c dispatch): a job around the fuzz input as the frame body,
 * ops_check (field parsing, key lookup, access rules, the operation's
 * check), then, for what the loop answers itself, the reply frame.
 *
 * Byte 0 picks the operation code (bits 0-4: a code of the table, or another
 * number, mapped onto the table) and the peer (bits 5-6: root, the daemon's
 * own uid, uid 1000 in group 100, a stranger uid 1001). The rest is the body.
 * The key table is rsa1024, rsa2048 and rsa4096 from the vectors, public
 * halves only (check functions never use the private key), with these rules:
 *   rsa1024  allow_unwrap = uid:1000, allow_pubkey = *
 *   rsa2048  allow_unwrap = gid:100, allow_wrap = uid:1000 uid:1001,
 *            allow_copp_open = uid:1000, allow_opm_open = uid:1000, allow_pubkey = *
 *   rsa4096  none (root and the daemon only); rsa_mechanism = pkcs
 *   [daemon] allow_public_ops = uid:1000
 *
 * Sealed sessions: a table of 4 (2 per uid), empty (handles are random:
 * session-* requests exercise their checks and the UNKNOWN_SESSION path).
 *
 * Invariants: an accepted request names (when it names one) a key of the
 * table that the peer may use that way; UNKNOWN_KEY only goes to a peer that
 * may see every key; every reply the loop writes is a well-formed frame
 * echoing the id and operation, with a MESSAGE when it is an error; no
 * field is read past its length (the unused tail of the job's inline frame
 * buffer is poisoned for ASan).
 *
 * The audit log of refusals goes to stderr: scripts/fuzz runs this target
 * with -close_fd_mask=2 (libFuzzer and sanitizer reports keep their output).
 */
#include <string.h>

#include <sanitizer/asan_interface.h>

#include "acl.h"
#include "daemon.h"
#include "fuzz.h"
#include "gen.h"
#include "job.h"
#include "keytab.h"
#include "ops.h"
#include "peer.h"
#include "wire.h"

#define DAEMON_UID 990

static struct daemon d;
static struct gen fgen;         /* the keys and rules in force */
static struct key_conf confs[FUZZ_NKEYS];
static struct hsm_conf hsm;
static struct peer peers[4];
static const struct op_def *table[32];
static size_t nops;
static const struct op_def *ops[WIRE_OP_MAX];

static void rule(struct acl *a, const char *text)
{
	char err[256];

	if (acl_parse(text, a, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_request: rule \"%s\": %s\n", text, err);
		abort();
	}
}

static void setup(void)
{
	const struct fuzz_key *fk = fuzz_keys();
	static const char *const rules[FUZZ_NKEYS][ACL_OPS] = {
		[0] = { [ACL_UNWRAP] = "uid:1000", [ACL_PUBKEY] = "*" },
		[1] = { [ACL_UNWRAP] = "gid:100", [ACL_WRAP] = "uid:1000 uid:1001",
			[ACL_COPP_OPEN] = "uid:1000", [ACL_OPM_OPEN] = "uid:1000", [ACL_PUBKEY] = "*" },
	};

	d.uid = DAEMON_UID;
	d.log.dest = LOG_TO_STDERR;
	jobpool_init(&d.jobs, 0);       /* no recycling: each input starts afresh */
	FUZZ_CHECK(sessions_init(&d.sessions, 4, 2, 300) == 0);
	rule(&fgen.conf.allow_public_ops, "uid:1000");
	fgen.keys.keys = calloc(FUZZ_NKEYS, sizeof(*fgen.keys.keys));
	FUZZ_CHECK(fgen.keys.keys != NULL);
	for (size_t i = 0; i < FUZZ_NKEYS; i++) {
		struct key *k = &fgen.keys.keys[i];

		snprintf(confs[i].name, sizeof(confs[i].name), "%s", fk[i].name);
		snprintf(confs[i].label, sizeof(confs[i].label), "%s", fk[i].name);
		confs[i].mechanism = i == 2 ? MECH_PKCS : MECH_RAW;
		for (unsigned op = 0; op < ACL_OPS; op++)
			if (rules[i][op] != NULL)
				rule(&confs[i].allow[op], rules[i][op]);
		snprintf(k->name, sizeof(k->name), "%s", fk[i].name);
		k->index = i;
		k->conf = &confs[i];
		k->pub = fk[i].pub;     /* no HSM: checks and inline answers never use one */
		memcpy(k->n, fk[i].n, fk[i].k);
		k->k = fk[i].k;
		k->e = fk[i].e;
		k->has_ir = confs[i].mechanism == MECH_RAW;    /* ir_key unused by checks */
	}
	fgen.keys.n = FUZZ_NKEYS;
	fgen.conf.keys = confs;
	fgen.conf.nkeys = FUZZ_NKEYS;
	fgen.keyset = 1;
	fgen.refs = 1;
	d.gen = &fgen;
	/* info names the first HSM's token; no HSM is opened (d.hsms stays empty). */
	snprintf(hsm.name, sizeof(hsm.name), "hsm");
	snprintf(hsm.token, sizeof(hsm.token), "fuzz");
	d.conf.hsms = &hsm;
	d.conf.nhsms = 1;

	peers[0] = (struct peer){ .uid = 0, .gid = 0, .pid = 100 };
	peers[1] = (struct peer){ .uid = DAEMON_UID, .gid = DAEMON_UID, .pid = 101 };
	peers[2] = (struct peer){ .uid = 1000, .gid = 1000, .pid = 102, .ngroups = 1, .groups = { 100 } };
	peers[3] = (struct peer){ .uid = 1001, .gid = 1001, .pid = 103 };
	for (size_t i = 0; i < 4; i++)
		snprintf(peers[i].exe, sizeof(peers[i].exe), "/usr/bin/fuzz-peer-%zu", i);

	for (unsigned code = 0; code < WIRE_OP_MAX; code++)
		if (ops_find((uint8_t)code) != NULL)
			ops[nops++] = ops_find((uint8_t)code);
	FUZZ_CHECK(nops > 0);
	for (unsigned b = 0; b < 32; b++)
		table[b] = ops_find((uint8_t)b) != NULL ? ops_find((uint8_t)b) : ops[b % nops];
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setup();
	return 0;
}

/* The reply the loop would write: a frame that echoes the request. */
static void check_reply(const struct job *j)
{
	struct wire_fields m;
	struct buf_reader r;
	struct wire_hdr h;
	char why[256];

	FUZZ_CHECK(j->reply.err == 0 && j->reply.len >= WIRE_HDR_LEN);
	buf_reader_init(&r, j->reply.p, j->reply.len);
	FUZZ_CHECK(wire_get_hdr(&r, &h) == 0);
	FUZZ_CHECK(h.len == j->reply.len - 4 && wire_check_len(h.len) == KT_OK);
	FUZZ_CHECK(h.version == WIRE_VERSION && h.op == j->opcode && h.id == j->id);
	FUZZ_CHECK(h.status == (uint16_t)j->status);
	FUZZ_CHECK(wire_parse_fields(j->reply.p + WIRE_HDR_LEN, j->reply.len - WIRE_HDR_LEN, &m, why,
				     sizeof(why)) == 0);
	if (j->status != KT_OK)
		FUZZ_CHECK(wire_has(&m, WIRE_T_MESSAGE));
}

static enum acl_op acl_of(uint8_t opcode)
{
	switch (opcode) {
	case WIRE_OP_UNWRAP:
		return ACL_UNWRAP;
	case WIRE_OP_COPP_OPEN:
		return ACL_COPP_OPEN;
	case WIRE_OP_OPM_OPEN:
		return ACL_OPM_OPEN;
	case WIRE_OP_PUBKEY:
		return ACL_PUBKEY;
	default:
		return ACL_WRAP;
	}
}

static void check_outcome(const struct job *j, const struct peer *p)
{
	char name[CONFIG_NAME_MAX + 1];

	FUZZ_CHECK(j->msg[sizeof(j->msg) - 1] == '\0' || memchr(j->msg, 0, sizeof(j->msg)) != NULL);
	if (j->status == KT_UNKNOWN_KEY)
		for (size_t i = 0; i < fgen.keys.n; i++)
			FUZZ_CHECK(key_visible(&d, &fgen.keys.keys[i], p));
	if (j->status != KT_OK || j->key == NULL)
		return;
	/* The key the request named, in the table, and usable by this peer that way. */
	FUZZ_CHECK(j->key >= fgen.keys.keys && j->key < fgen.keys.keys + fgen.keys.n);
	FUZZ_CHECK(wire_get_str(&j->req, WIRE_T_NAME, name, sizeof(name)) == 0);
	FUZZ_CHECK(strcmp(name, j->key->name) == 0);
	FUZZ_CHECK(acl_allows(&j->key->conf->allow[acl_of(j->opcode)], p, d.uid));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct op_def *op;
	const struct peer *p;
	struct job *j;
	size_t len;
	int inline_buf;

	if (size == 0)
		return 0;
	op = table[data[0] & 0x1f];
	p = &peers[(data[0] >> 5) & 3];
	len = size - 1;
	if (len > WIRE_FRAME_MAX - WIRE_HDR_LEN)
		return 0;       /* the server refuses such frames before making a job */
	j = job_new(&d.jobs, len);
	FUZZ_CHECK(j != NULL && j->frame_len == len);
	memcpy(j->frame, data + 1, len);
	inline_buf = j->frame == j->frame_inline;
	if (inline_buf)
		ASAN_POISON_MEMORY_REGION(j->frame_inline + len, sizeof(j->frame_inline) - len);
	j->peer = p;
	j->op = op;
	j->id = 0x0a0b0c0d;
	j->opcode = op->code;
	j->gen = &fgen;         /* the server holds a reference; nothing frees fgen here */

	ops_check(j, &d);
	check_outcome(j, p);
	/* What the loop answers itself (info and stats need the HSMs and the server: not here). */
	if (j->status != KT_OK || (op->place == OP_INLINE && op->code != WIRE_OP_INFO &&
					 op->code != WIRE_OP_STATS)) {
		ops_run_inline(j, &d);
		check_reply(j);
	}

	if (inline_buf)
		ASAN_UNPOISON_MEMORY_REGION(j->frame_inline, sizeof(j->frame_inline));
	job_release(j);
	return 0;
}
