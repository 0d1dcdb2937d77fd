/*
 * fuzz_response: libkeytrans's decoding of the daemon's answers
 * (client/lib/response.c, receive.c, transport.c's frame cutting), driven
 * without a socket through the library's internal interface (internal.h).
 *
 * Byte 0: op = byte & 15, variant = byte >> 4.
 *   op 1..8, 11..14  the rest is one response frame to a request of that
 *            operation, decoded as kt_info / kt_keys / kt_pubkey / kt_stats or as
 *            the item of kt_unwrap, kt_wrap, kt_copp_sign, kt_copp_open,
 *            kt_opm_sign, kt_opm_open, kt_session_mac, kt_session_verify would;
 *            variant chooses the request's arguments (PUBKEY format or
 *            PUBKEY_BLOB item, a given or generated key, COPP/OPM flags, an
 *            expected random, a sealed open, a verification's kind);
 *   op 0     the rest is what arrives on the socket (any number of frames),
 *            processed by conn_drain with one item of each kind pending
 *            (request ids 1..9), a synchronous INFO call (id 10) and an item
 *            whose caller gave up (id 11, abandoned: its answer is dropped).
 *
 * Invariants: an OK answer fills the outputs within their bounds and with
 * the values the request fixed; an error status is returned as such with a
 * terminated message; a stats answer is accepted only when it hangs
 * together (each operation's buckets add up to its statuses' count); the
 * pending table and the receive buffer stay consistent; nothing leaks.
 * Codes 9, 10 and 15 are left alone.
 */
#include <string.h>

#include "fuzz.h"
#include "internal.h"

static const uint8_t want_random[16] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};
static const uint8_t handle[16] = { 0x00, 0x00, 0x00, 0x07, 0xaa };
static const uint8_t some_data[40] = { 0x01 };
static const uint8_t given_aes[16] = {
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

#define ALG_AES_128 0x660eu
#define ALG_RC4 0x6801u

static void term(const char *s, size_t cap)
{
	FUZZ_CHECK(memchr(s, 0, cap) != NULL);
}

/* The request an item stands for, from the variant. */
static void make_item(struct kt_item *it, uint8_t op, unsigned v)
{
	memset(it, 0, sizeof(*it));
	switch (op) {
	case WIRE_OP_PUBKEY:
		it->op = KT_OP_PUBKEY_BLOB;
		it->in.pubkey.name = "rsa2048";
		break;
	case WIRE_OP_UNWRAP:
		it->op = KT_OP_UNWRAP;
		it->in.unwrap.name = "rsa2048";
		break;
	case WIRE_OP_WRAP:
		it->op = KT_OP_WRAP;
		it->in.wrap.to_key = "rsa2048";
		it->in.wrap.alg_id = v & 2 ? ALG_RC4 : ALG_AES_128;
		it->in.wrap.gen_bits = (v & 6) == 6 ? 40 : 0;
		if (v & 1) {    /* a given key, kept at submission (batch.c) */
			it->in.wrap.key = given_aes;
			it->in.wrap.key_len = sizeof(given_aes);
			it->out.wrap.key.alg_id = it->in.wrap.alg_id;
			it->out.wrap.key.len = sizeof(given_aes);
			memcpy(it->out.wrap.key.key, given_aes, sizeof(given_aes));
		}
		break;
	case WIRE_OP_COPP_SIGN:
	case WIRE_OP_OPM_SIGN:
		it->op = op == WIRE_OP_COPP_SIGN ? KT_OP_COPP_SIGN : KT_OP_OPM_SIGN;
		it->in.copp_sign.to_key = "rsa2048";
		memcpy(it->in.copp_sign.random, want_random, 16);
		it->in.copp_sign.flags = v & 7;
		memcpy(it->in.copp_sign.aes_key, given_aes, 16);
		it->in.copp_sign.status_seq = 1;
		it->in.copp_sign.command_seq = 2;
		break;
	case WIRE_OP_COPP_OPEN:
	case WIRE_OP_OPM_OPEN:
		it->op = op == WIRE_OP_COPP_OPEN ? KT_OP_COPP_OPEN : KT_OP_OPM_OPEN;
		it->in.copp_open.name = "rsa2048";
		it->in.copp_open.expect_random = v & 1 ? want_random : NULL;
		it->in.copp_open.flags = v & 2 ? KT_SEAL : 0;
		break;
	case WIRE_OP_SESSION_MAC:
	case WIRE_OP_SESSION_VERIFY:
		it->op = op == WIRE_OP_SESSION_MAC ? KT_OP_SESSION_MAC : KT_OP_SESSION_VERIFY;
		it->in.session.session = handle;
		it->in.session.data = some_data;
		it->in.session.len = sizeof(some_data);
		it->in.session.omac = v & 4 ? NULL : given_aes;
		it->in.session.kind = (int)(v % 3);
		break;
	}
}

static void check_item_ok(const struct kt_item *it)
{
	const struct alg_info *a;

	switch (it->op) {
	case KT_OP_UNWRAP:
		a = alg_by_id(it->out.unwrap.alg_id);
		FUZZ_CHECK(a != NULL && alg_len_ok(a, it->out.unwrap.len));
		break;
	case KT_OP_WRAP: {
		const struct kt_wrapped *w = &it->out.wrap;

		FUZZ_CHECK(w->blob_len > 12 && w->blob_len <= KT_BLOB_MAX);
		FUZZ_CHECK(w->blob[0] == 0x01 && w->blob[1] == 0x02);
		FUZZ_CHECK(w->generated == (it->in.wrap.key == NULL));
		FUZZ_CHECK(w->key.alg_id == it->in.wrap.alg_id || !w->generated);
		FUZZ_CHECK(alg_len_ok(alg_by_id(it->in.wrap.alg_id), w->key.len));
		if (w->generated && it->in.wrap.gen_bits != 0)
			FUZZ_CHECK(w->key.len * 8 == it->in.wrap.gen_bits);
		break;
	}
	case KT_OP_COPP_SIGN:
	case KT_OP_OPM_SIGN: {
		const struct kt_copp_sign_args *a = &it->in.copp_sign;

		FUZZ_CHECK(memcmp(it->out.copp.random, a->random, 16) == 0);
		if (a->flags & KT_COPP_AES_KEY)
			FUZZ_CHECK(memcmp(it->out.copp.aes_key, a->aes_key, 16) == 0);
		if (a->flags & KT_COPP_STATUS_SEQ)
			FUZZ_CHECK(it->out.copp.status_seq == a->status_seq);
		if (a->flags & KT_COPP_COMMAND_SEQ)
			FUZZ_CHECK(it->out.copp.command_seq == a->command_seq);
		break;
	}
	case KT_OP_COPP_OPEN:
	case KT_OP_OPM_OPEN:
		if (it->in.copp_open.expect_random != NULL)
			FUZZ_CHECK(memcmp(it->in.copp_open.flags & KT_SEAL ? it->out.sealed.random
									   : it->out.copp.random,
					  want_random, 16) == 0);
		break;
	case KT_OP_SESSION_MAC:
		FUZZ_CHECK(it->out.blob.len == KT_OMAC_LEN);
		break;
	case KT_OP_SESSION_VERIFY:
		break;
	case KT_OP_PUBKEY_BLOB:
		FUZZ_CHECK(it->out.blob.len > 20 && it->out.blob.len <= KT_BLOB_MAX);
		FUZZ_CHECK(it->out.blob.b[0] == 0x06);
		break;
	}
}

static size_t count_entries(const struct frame *f)
{
	struct wire_field g;
	size_t off = 0, n = 0;

	while (wire_next_field(f->body, f->body_len, &off, WIRE_T_KEY_ENTRY, &g) == 1)
		n++;
	return n;
}

static void check_stats(const struct frame *f, const struct wire_fields *m)
{
	static struct kt_stats s;       /* 15 KiB: off the fuzzer's stack */
	char why[KT_ERRMSG_MAX];
	int st;

	memset(&s, 0xa5, sizeof(s));
	why[0] = '\0';
	st = resp_stats(m, f->body, f->body_len, &s, why, sizeof(why));
	term(why, sizeof(why));
	if (st != KT_OK) {
		FUZZ_CHECK(st == KT_ERR_PROTOCOL && why[0] != '\0');
		return;
	}
	FUZZ_CHECK(s.nbounds >= 1 && s.nbounds <= KT_STATS_BOUNDS_MAX);
	FUZZ_CHECK(s.nops <= KT_STATS_OPS_MAX && s.npools <= KT_STATS_POOLS_MAX &&
		   s.nhsms <= KT_HSMS_MAX);
	for (size_t i = 1; i < s.nbounds; i++)
		FUZZ_CHECK(s.bounds_us[i] > s.bounds_us[i - 1]);
	for (size_t i = 0; i < s.nops; i++) {
		const struct kt_op_stats *o = &s.ops[i];
		uint64_t sum = o->other_status, b = 0;

		term(o->name, sizeof(o->name));
		for (size_t k = 0; k < KT_STATS_STATUSES; k++)
			sum += o->by_status[k];
		for (size_t k = 0; k <= s.nbounds; k++)
			b += o->buckets[k];
		FUZZ_CHECK(sum == o->count && b == o->count);
		for (size_t k = 0; k < i; k++)
			FUZZ_CHECK(s.ops[k].op != o->op);
	}
	for (size_t i = 0; i < s.npools; i++)
		term(s.pools[i].name, sizeof(s.pools[i].name));
}

/* What a synchronous call or an item does with its frame once it has it. */
static void decode(const struct frame *f, uint8_t op, unsigned v)
{
	char why[KT_ERRMSG_MAX];
	struct wire_fields m;
	struct kt_item it;
	int st;

	why[0] = '\0';
	st = resp_parse(f, op, &m, why, sizeof(why));
	term(why, sizeof(why));
	if (f->h.op != op)
		FUZZ_CHECK(st == KT_ERR_PROTOCOL);
	else if (f->h.status != KT_OK)
		FUZZ_CHECK(st == f->h.status && why[0] != '\0');
	else
		FUZZ_CHECK(st == KT_OK || st == KT_ERR_PROTOCOL);
	if (st != KT_OK)
		return;
	switch (op) {
	case WIRE_OP_INFO: {
		struct kt_info info;

		if (resp_info(&m, &info, why, sizeof(why)) == KT_OK) {
			term(info.version, sizeof(info.version));
			term(info.token_label, sizeof(info.token_label));
		}
		break;
	}
	case WIRE_OP_STATS:
		check_stats(f, &m);
		break;
	case WIRE_OP_KEYS: {
		struct kt_key *keys = NULL;
		size_t n = 99;

		if (resp_keys(f, &keys, &n, why, sizeof(why)) == KT_OK) {
			FUZZ_CHECK(n == count_entries(f) && (n == 0) == (keys == NULL));
			for (size_t i = 0; i < n; i++) {
				term(keys[i].name, sizeof(keys[i].name));
				term(keys[i].label, sizeof(keys[i].label));
				FUZZ_CHECK(keys[i].id_len <= sizeof(keys[i].id));
			}
		} else {
			FUZZ_CHECK(keys == NULL && n == 0);
		}
		free(keys);
		break;
	}
	case WIRE_OP_PUBKEY:
		if ((v & 4) == 0) {
			const uint8_t *p = NULL;
			size_t n = 0;

			if (resp_pubkey(&m, (int)(v % 3), &p, &n, why, sizeof(why)) == KT_OK)
				FUZZ_CHECK(fuzz_inside(p, n, f->body, f->body_len));
			break;
		}
		/* fall through: a PUBKEY_BLOB item */
	case WIRE_OP_UNWRAP:
	case WIRE_OP_WRAP:
	case WIRE_OP_COPP_SIGN:
	case WIRE_OP_COPP_OPEN:
	case WIRE_OP_OPM_SIGN:
	case WIRE_OP_OPM_OPEN:
	case WIRE_OP_SESSION_MAC:
	case WIRE_OP_SESSION_VERIFY:
		make_item(&it, op, v);
		st = resp_item(&m, &it, why, sizeof(why));
		term(why, sizeof(why));
		if (st == KT_OK)
			check_item_ok(&it);
		else
			FUZZ_CHECK(st == KT_ERR_PROTOCOL);
		break;
	}
}

static void one_frame(uint8_t op, unsigned v, const uint8_t *p, size_t len)
{
	struct buf_reader r;
	struct frame f;
	uint8_t *body;

	buf_reader_init(&r, p, len);
	if (wire_get_hdr(&r, &f.h) != 0)
		return;
	body = fuzz_dup(p + WIRE_HDR_LEN, len - WIRE_HDR_LEN);
	f.body = body;
	f.body_len = len - WIRE_HDR_LEN;
	decode(&f, op, v);
	free(body);
}

/* The receive path of a pipelining connection, on bytes instead of a socket. */
static void stream(const uint8_t *p, size_t len)
{
	static const uint8_t ops[] = { WIRE_OP_UNWRAP, WIRE_OP_WRAP, WIRE_OP_COPP_SIGN,
				       WIRE_OP_COPP_OPEN, WIRE_OP_PUBKEY, WIRE_OP_OPM_SIGN,
				       WIRE_OP_OPM_OPEN, WIRE_OP_SESSION_MAC, WIRE_OP_SESSION_VERIFY };
	struct kt_item items[sizeof(ops)], gone;
	kt_conn *c = kt_conn_new();
	uint32_t sync_id, gone_id;

	FUZZ_CHECK(c != NULL);
	if (len > WIRE_FRAME_MAX)
		len = WIRE_FRAME_MAX;
	memcpy(c->rx, p, len);
	c->rx_len = len;
	c->fd = -1;
	for (size_t i = 0; i < sizeof(ops); i++) {
		make_item(&items[i], ops[i], 1);
		FUZZ_CHECK(item_wire_op(items[i].op) == ops[i]);
		FUZZ_CHECK(pending_add(c, ops[i], &items[i]) == i + 1);
		items[i].status = KT_ERR_IO;
	}
	sync_id = pending_add(c, WIRE_OP_INFO, NULL);
	make_item(&gone, WIRE_OP_UNWRAP, 0);
	gone_id = pending_add(c, WIRE_OP_UNWRAP, &gone);
	pending_abandon(c, pending_find(c, gone_id), KT_ERR_TIMEOUT);
	FUZZ_CHECK(gone.status == KT_ERR_TIMEOUT && c->items == sizeof(ops));
	for (int round = 0; round < 64; round++) {
		int st = conn_drain(c);
		struct pending *e;

		FUZZ_CHECK(c->rx_off <= c->rx_len && c->rx_len <= WIRE_FRAME_MAX);
		FUZZ_CHECK(c->items <= c->npend && c->npend <= sizeof(ops) + 2);
		if (st != KT_OK || c->held == 0)
			break;
		/* The synchronous call's frame, lent in place (conn_call, then kt_info). */
		e = pending_find(c, sync_id);
		FUZZ_CHECK(e != NULL && e->state == PEND_DONE && e->item == NULL);
		FUZZ_CHECK(c->held >= WIRE_HDR_LEN && c->rx_off + c->held <= c->rx_len);
		one_frame(WIRE_OP_INFO, 0, c->rx + c->rx_off, c->held);
		conn_call_end(c, sync_id);
		FUZZ_CHECK(c->held == 0 && pending_find(c, sync_id) == NULL);
	}
	/* Collect what was answered, as kt_complete does. */
	for (;;) {
		struct want w = { .lo = (uintptr_t)items, .hi = (uintptr_t)(items + sizeof(ops)) };
		struct pending *e = pending_find_done(c, &w);

		if (e == NULL)
			break;
		if (e->item->status == KT_OK)
			check_item_ok(e->item);
		conn_collect(c, e);
		term(c->err, sizeof(c->err));
	}
	kt_conn_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t op;

	if (size == 0)
		return 0;
	op = data[0] & 15;
	if ((op > WIRE_OP_STATS && op < WIRE_OP_OPM_SIGN) || op > WIRE_OP_SESSION_VERIFY)
		return 0;
	if (op == 0)
		stream(data + 1, size - 1);
	else
		one_frame(op, data[0] >> 4, data + 1, size - 1);
	return 0;
}
