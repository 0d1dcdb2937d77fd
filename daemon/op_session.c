/*
 * session-mac, session-verify, session-close: the uses of a sealed session
 * (sessions.h). AES-CMAC of at most 4 KiB is cheaper than a trip to a
 * worker, so they are answered on the loop thread.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "daemon.h"
#include "job.h"
#include "ops.h"
#include "peer.h"
#include "sessions.h"
#include "wire.h"

static void check_common(struct job *j, int data)
{
	uint8_t kind = 0;

	if (req_bytes(j, WIRE_T_SESSION, SESSION_HANDLE_LEN, 1) != 0)
		return;
	if (data && !wire_has(&j->req, WIRE_T_DATA)) {
		job_fail(j, KT_BAD_REQUEST, "%s needs DATA", wire_op_name(j->opcode));
		return;
	}
	if (wire_get_u8(&j->req, WIRE_T_KIND, &kind) == 0 && kind > SESSION_KIND_COMMAND)
		job_fail(j, KT_BAD_REQUEST, "KIND must be 0 (none), 1 (status) or 2 (command), not %u",
			 kind);
}

static void mac_check(struct job *j, struct daemon *d)
{
	(void)d;
	check_common(j, 1);
}

static void verify_check(struct job *j, struct daemon *d)
{
	(void)d;
	check_common(j, 1);
	if (j->status == KT_OK)
		req_bytes(j, WIRE_T_OMAC, 16, 0);
}

static void close_check(struct job *j, struct daemon *d)
{
	(void)d;
	check_common(j, 0);
}

static void mac_run(struct job *j, struct daemon *d, struct worker *w)
{
	const struct wire_field *data = &j->req.f[WIRE_T_DATA];
	uint8_t tag[16];

	(void)w;
	j->status = sessions_mac(&d->sessions, j->peer->uid, j->req.f[WIRE_T_SESSION].p, data->p,
				 data->len, tag, j->msg, sizeof(j->msg));
	if (j->status == KT_OK)
		wire_put_bytes(&j->reply, WIRE_T_OMAC, tag, sizeof(tag));
	OPENSSL_cleanse(tag, sizeof(tag));
}

static void verify_run(struct job *j, struct daemon *d, struct worker *w)
{
	const struct wire_field *omac = &j->req.f[WIRE_T_OMAC];
	struct session_check c = {
		j->req.f[WIRE_T_DATA].p, j->req.f[WIRE_T_DATA].len, omac->present ? omac->p : NULL,
		SESSION_KIND_NONE,
	};
	uint32_t next_status = 0, next_command = 0;
	uint8_t kind = 0;

	(void)w;
	wire_get_u8(&j->req, WIRE_T_KIND, &kind);
	c.kind = (enum session_kind)kind;
	j->status = sessions_verify(&d->sessions, j->peer->uid, j->req.f[WIRE_T_SESSION].p, &c,
				    &next_status, &next_command, j->msg, sizeof(j->msg));
	if (j->status != KT_OK)
		return;
	wire_put_u32(&j->reply, WIRE_T_STATUS_SEQ, next_status);
	wire_put_u32(&j->reply, WIRE_T_COMMAND_SEQ, next_command);
}

static void close_run(struct job *j, struct daemon *d, struct worker *w)
{
	(void)w;
	j->status = sessions_close(&d->sessions, j->peer->uid, j->req.f[WIRE_T_SESSION].p, j->msg,
				   sizeof(j->msg));
}

const struct op_def op_session_mac = { WIRE_OP_SESSION_MAC, OP_INLINE, mac_check, mac_run };
const struct op_def op_session_verify = { WIRE_OP_SESSION_VERIFY, OP_INLINE, verify_check,
					  verify_run };
const struct op_def op_session_close = { WIRE_OP_SESSION_CLOSE, OP_INLINE, close_check, close_run };
