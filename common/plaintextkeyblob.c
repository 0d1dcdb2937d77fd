#include "plaintextkeyblob.h"

#include "buf.h"

#define PLAINTEXTKEYBLOB_TYPE 0x08
#define CUR_BLOB_VERSION 0x02

size_t ptkb_encode(uint32_t alg_id, const uint8_t *key, size_t key_len, uint8_t *out, size_t cap)
{
	struct buf_writer w;

	if (!alg_len_ok(alg_by_id(alg_id), key_len))
		return 0;
	buf_writer_init(&w, out, cap);
	buf_put_u8(&w, PLAINTEXTKEYBLOB_TYPE);
	buf_put_u8(&w, CUR_BLOB_VERSION);
	buf_put_u16le(&w, 0);
	buf_put_u32le(&w, alg_id);
	buf_put_u32le(&w, (uint32_t)key_len);
	buf_put_bytes(&w, key, key_len);
	return w.err ? 0 : w.len;
}

enum ptkb_error ptkb_decode(const uint8_t *blob, size_t len, uint32_t *alg_id,
			    uint8_t key[ALG_KEY_MAX], size_t *key_len)
{
	struct buf_reader r;
	uint8_t type, version;
	uint16_t reserved;
	uint32_t alg, n;
	const struct alg_info *a;

	buf_reader_init(&r, blob, len);
	if (buf_get_u8(&r, &type) || buf_get_u8(&r, &version) || buf_get_u16le(&r, &reserved) ||
	    buf_get_u32le(&r, &alg) || buf_get_u32le(&r, &n))
		return PTKB_LENGTH;
	if (type != PLAINTEXTKEYBLOB_TYPE)
		return PTKB_TYPE;
	if (version != CUR_BLOB_VERSION)
		return PTKB_VERSION;
	if (reserved != 0)
		return PTKB_RESERVED;
	a = alg_by_id(alg);
	if (a == NULL)
		return PTKB_ALG;
	if (n != buf_left(&r))
		return PTKB_LENGTH;
	if (!alg_len_ok(a, n))
		return PTKB_KEY_LENGTH;
	buf_get_bytes(&r, key, n);
	*alg_id = alg;
	*key_len = n;
	return PTKB_OK;
}

const char *ptkb_strerror(enum ptkb_error e)
{
	switch (e) {
	case PTKB_OK:
		return "valid";
	case PTKB_LENGTH:
		return "PLAINTEXTKEYBLOB length does not match its key length field";
	case PTKB_TYPE:
		return "not a PLAINTEXTKEYBLOB (bType is not 0x08)";
	case PTKB_VERSION:
		return "PLAINTEXTKEYBLOB bVersion is not 2";
	case PTKB_RESERVED:
		return "PLAINTEXTKEYBLOB reserved field is not zero";
	case PTKB_ALG:
		return "PLAINTEXTKEYBLOB aiKeyAlg is not a supported session-key algorithm";
	case PTKB_KEY_LENGTH:
		return "PLAINTEXTKEYBLOB key length is not allowed for its algorithm";
	}
	return "invalid PLAINTEXTKEYBLOB";
}
