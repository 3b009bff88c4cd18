/* me_frame.h - the 32-byte wire format: header encode/decode, TLV extensions, CRC32C (docs/wire-format.md). */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_FRAME_H
#define MCP_EDGE_ME_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* A frame on the wire: the 32-byte header, ext_len bytes of TLV extensions,
   then (inline kind only) payload_len bytes of payload. All little-endian. */
#define ME_FRAME_HEADER_SIZE 32
#define ME_FRAME_MAGIC 0xC54Du /* bytes 'M', 0xC5 */
#define ME_FRAME_VERSION 1

/* Where the payload is (header byte 4). */
enum me_frame_kind {
    ME_FRAME_INLINE = 0, /* follows the extensions in the frame */
    ME_FRAME_BLOCK = 1,  /* a shared-memory block: (segment, offset, payload_len) */
    ME_FRAME_FILE = 2,   /* a file: (fd index, offset, payload_len) */
};
#define ME_FRAME_KIND_COUNT 3

/* Flags (header byte 5); any other bit set is malformed. */
#define ME_FRAME_F_PAYLOAD_CRC 0x01u /* block/file kinds: the CRC also covers the payload bytes */
#define ME_FRAME_F_END 0x02u         /* the last frame of its request/stream id */
#define ME_FRAME_F_ALL (ME_FRAME_F_PAYLOAD_CRC | ME_FRAME_F_END)

/* TLV extensions: u16 type, u16 length, value. Type bit 15 set: a receiver
   that does not know the type skips it; clear: it rejects the frame. */
#define ME_FRAME_TLV_OPTIONAL 0x8000u
#define ME_FRAME_TLV_DEADLINE 0x0001u /* u64: absolute CLOCK_MONOTONIC ns */
#define ME_FRAME_TLV_TRACE 0x0002u    /* 25 bytes: W3C trace-id(16), parent-id(8), trace-flags(1) */
#define ME_FRAME_TLV_PRIORITY 0x0003u /* u8: higher is more urgent */
#define ME_FRAME_TLV_PRINCIPAL 0x0004u /* who asks: kind, pid/uid/gid, id, roles, scopes (see below) */
#define ME_FRAME_TLV_HEADER 4
#define ME_FRAME_TRACE_SIZE 25

/* The principal TLV's value (docs/wire-format.md): u8 kind, u8 flags (bit 0
   pid, 1 uid, 2 gid present), u32 pid, u32 uid, u32 gid (0 when absent), then
   a u8-length id (1-255 bytes), then a u8 count of roles (<= 32) each a
   u8-length string (1-64 bytes), then the scopes the same way. The bounds keep
   a whole principal TLV within the default extension limit. mcp_edge's
   Python Principal (runtime/principal.py) uses the same numbers. */
#define ME_FRAME_PRINCIPAL_FIXED 14
#define ME_FRAME_PRINCIPAL_KINDS 7 /* process, unix-peer, anonymous, embedded, token, api-key, certificate */
#define ME_FRAME_PRINCIPAL_FLAGS 0x07u
#define ME_FRAME_PRINCIPAL_ID_MAX 255
#define ME_FRAME_PRINCIPAL_LABELS_MAX 32
#define ME_FRAME_PRINCIPAL_LABEL_MAX 64
#define ME_FRAME_PRINCIPAL_MAX 4092u /* value bytes: the TLV with its header is at most 4096 */

/* Offsets (u48) above this do not fit the header. */
#define ME_FRAME_MAX_OFFSET ((UINT64_C(1) << 48) - 1)

/* Default decode limits. */
#define ME_FRAME_DEFAULT_MAX_PAYLOAD (16u << 20)
#define ME_FRAME_DEFAULT_MAX_EXT 4096u

/* Why a frame was refused; each comes with its own errno from the decoders. */
enum me_frame_reason {
    ME_FRAME_OK = 0,
    ME_FRAME_TRUNCATED = 1,   /* -EAGAIN: the bytes end before the frame does (`needed` says where it ends) */
    ME_FRAME_OVERLONG = 2,    /* -EMSGSIZE: a length beyond the limits or the caller's buffer */
    ME_FRAME_BAD_MAGIC = 3,   /* -ENOMSG */
    ME_FRAME_BAD_VERSION = 4, /* -EPROTONOSUPPORT */
    ME_FRAME_BAD_FIELD = 5,   /* -EINVAL: unknown kind, reserved flag, a locator on an inline frame */
    ME_FRAME_BAD_CRC = 6,     /* -EBADMSG */
    ME_FRAME_BAD_TLV = 7,     /* -EPROTO: a TLV past the area, a bad length, a duplicate, an unknown required type */
};
#define ME_FRAME_REASON_COUNT 8

/* Limits a receiver sets; NULL means the defaults above. */
struct me_frame_limits {
    uint32_t max_payload; /* inline payload bytes */
    uint32_t max_ext;     /* extension bytes (the field is 16 bits wide) */
};

/* Extensions decoded from the TLV area. */
#define ME_FRAME_HAS_DEADLINE 0x1u
#define ME_FRAME_HAS_TRACE 0x2u
#define ME_FRAME_HAS_PRIORITY 0x4u
#define ME_FRAME_HAS_PRINCIPAL 0x8u

/* A frame's header fields and decoded extensions. For encoding, fill the
   header fields; for decoding, everything is written. */
struct me_frame {
    uint8_t version;
    uint8_t type;
    uint8_t kind;
    uint8_t flags;
    uint16_t ext_len;
    uint64_t id;
    uint32_t payload_len;
    uint32_t crc;
    uint16_t segment; /* block: segment number; file: fd index; inline: 0 */
    uint64_t offset;  /* u48; inline: 0 */
    /* filled by decoding: */
    uint32_t size;         /* bytes of the frame in its buffer: header + extensions (+ inline payload) */
    uint32_t needed;       /* ME_FRAME_TRUNCATED: bytes the frame needs in all */
    uint8_t reason;        /* enum me_frame_reason */
    uint8_t crc_checked;   /* 0 when the CRC covers an out-of-line payload: see me_frame_verify_payload */
    uint8_t present;       /* ME_FRAME_HAS_* */
    uint8_t priority;
    uint64_t deadline_ns;
    uint8_t trace[ME_FRAME_TRACE_SIZE];
    uint32_t crc_partial;  /* CRC32C of the header (CRC zeroed) and extensions */
    uint16_t principal_off; /* ME_FRAME_HAS_PRINCIPAL: where its value starts in the extension area */
    uint16_t principal_len; /* and its length (the value itself stays in the caller's buffer) */
};

/* Write the 32-byte header of `f` to out[0..32): its CRC32C runs over the header
   (CRC field zeroed), ext[0..f->ext_len) and payload[0..f->payload_len), where
   `payload` is the inline payload, or for F_PAYLOAD_CRC the out-of-line block's
   bytes, and is NULL otherwise. f->crc is set. 32, or -EINVAL (kind, flags,
   offset or locator out of range, payload missing). */
int me_frame_encode_header(void *out, struct me_frame *f, const void *ext, const void *payload);

/* Append one TLV to out[*used..cap): 0, -ENOBUFS (no room), -EMSGSIZE (value
   over 65535 bytes). */
int me_frame_tlv_put(void *out, size_t cap, size_t *used, uint16_t type, const void *value, size_t len);

/* Check the header in buf[0..len) (len may be short: magic and version are
   checked on what is there) and fill the header fields of `f`. The frame's
   size in all (header + extensions + inline payload), or -errno with f->reason
   (-EAGAIN with f->needed for a short buffer). Reads at most 32 bytes. */
int me_frame_parse_header(const void *buf, size_t len, const struct me_frame_limits *lim, struct me_frame *f);

/* Second half of decoding, for a header parsed by me_frame_parse_header and
   its extensions and inline payload wherever they were read to: check the CRC
   (unless it covers an out-of-line payload) and decode the TLVs. 0 or -errno
   with f->reason. `hdr` is the 32 header bytes. */
int me_frame_check(struct me_frame *f, const void *hdr, const void *ext, const void *payload);

/* The whole of a frame in buf[0..len): its size (trailing bytes are the next
   frame's), or -errno with f->reason. Never reads past buf + len. */
int me_frame_decode(const void *buf, size_t len, const struct me_frame_limits *lim, struct me_frame *f);

/* For a decoded frame whose CRC covers its out-of-line payload (crc_checked 0):
   check it against the payload's bytes. 0, -EBADMSG (f->reason BAD_CRC),
   -EMSGSIZE (len differs from payload_len), -EINVAL (nothing to check). */
int me_frame_verify_payload(struct me_frame *f, const void *payload, size_t len);

/* Whether value[0..len) is a well-formed principal TLV value (the layout
   above: kind known, no reserved flag, absent ids zero, every length within
   its bound, no duplicate role or scope, nothing left over). 0 or -EPROTO.
   The decoder calls it on every principal TLV; encoders check with it. */
int me_frame_principal_check(const void *value, size_t len);

/* "truncated", "overlong", ... ; NULL out of range. */
const char *me_frame_reason_name(int reason);

/* JSON a worker wrote, to be embedded as a value in the runtime's response
   (jsoncheck.c): 0 when buf[0..len) is one object or array with no raw line
   break, closed strings with JSON escapes and UTF-8, matched brackets, and
   nothing but spaces or tabs after it; else one of these, with *where the
   offset of the first byte found wrong. */
#define ME_JSON_NOT_CONTAINER   1
#define ME_JSON_UNCLOSED_STRING 2
#define ME_JSON_BAD_ESCAPE      3
#define ME_JSON_LINE_BREAK      4
#define ME_JSON_CONTROL         5
#define ME_JSON_BAD_UTF8        6
#define ME_JSON_TOO_DEEP        7
#define ME_JSON_UNBALANCED      8
#define ME_JSON_TRAILING        9
#define ME_JSON_BAD_BYTE        10
int me_json_check_value(const uint8_t *buf, size_t len, size_t *where);

/* What a me_json_check_value result means, in words. */
const char *me_json_check_message(int rc);

#endif /* MCP_EDGE_ME_FRAME_H */
