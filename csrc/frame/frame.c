/* frame.c - the 32-byte wire format: header encode/decode, TLV extensions, CRC32C through the dispatched kernel. */
/* SPDX-License-Identifier: Apache-2.0 */
#include "me_frame.h"

#include <errno.h>
#include <string.h>

#include "../crc32c/me_crc32c.h"

/* Header byte offsets (docs/wire-format.md has the table). */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 2,
    OFF_TYPE = 3,
    OFF_KIND = 4,
    OFF_FLAGS = 5,
    OFF_EXT_LEN = 6,
    OFF_ID = 8,
    OFF_PAYLOAD_LEN = 16,
    OFF_CRC = 20,
    OFF_LOCATOR = 24, /* u64: segment/fd index in bits 0-15, offset in bits 16-63 */
};

/* Byte-wise little-endian loads and stores: no alignment is assumed of a
   caller's buffer, and the compiler turns these into single moves on LE. */
static inline uint16_t ld16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t ld64(const uint8_t *p)
{
    return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

static inline void st16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void st32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void st64(uint8_t *p, uint64_t v)
{
    st32(p, (uint32_t)v);
    st32(p + 4, (uint32_t)(v >> 32));
}

static const int reason_errno[ME_FRAME_REASON_COUNT] = {
    [ME_FRAME_OK] = 0,
    [ME_FRAME_TRUNCATED] = EAGAIN,
    [ME_FRAME_OVERLONG] = EMSGSIZE,
    [ME_FRAME_BAD_MAGIC] = ENOMSG,
    [ME_FRAME_BAD_VERSION] = EPROTONOSUPPORT,
    [ME_FRAME_BAD_FIELD] = EINVAL,
    [ME_FRAME_BAD_CRC] = EBADMSG,
    [ME_FRAME_BAD_TLV] = EPROTO,
};

static const char *const reason_names[ME_FRAME_REASON_COUNT] = {
    "ok", "truncated", "overlong", "bad magic", "bad version", "bad field", "bad CRC", "bad TLV",
};

const char *me_frame_reason_name(int reason)
{
    return reason >= 0 && reason < ME_FRAME_REASON_COUNT ? reason_names[reason] : NULL;
}

static int refuse(struct me_frame *f, int reason)
{
    f->reason = (uint8_t)reason;
    return -reason_errno[reason];
}

/* Whether the CRC covers the payload bytes, and whether those are in the frame. */
static inline int crc_covers_payload(const struct me_frame *f)
{
    return f->kind == ME_FRAME_INLINE || (f->flags & ME_FRAME_F_PAYLOAD_CRC);
}

/* CRC32C of the header with its CRC field zeroed, then the extensions: the
   part of every frame's CRC that lies in the frame. */
static uint32_t crc_head(const uint8_t *hdr, const void *ext, size_t ext_len)
{
    uint8_t copy[ME_FRAME_HEADER_SIZE];
    memcpy(copy, hdr, sizeof copy);
    memset(copy + OFF_CRC, 0, 4);
    uint32_t crc = me_crc32c(0, copy, sizeof copy);
    return ext_len ? me_crc32c(crc, ext, ext_len) : crc;
}

int me_frame_encode_header(void *out, struct me_frame *f, const void *ext, const void *payload)
{
    if (f->kind >= ME_FRAME_KIND_COUNT || (f->flags & ~ME_FRAME_F_ALL) || f->offset > ME_FRAME_MAX_OFFSET)
        return -EINVAL;
    if (f->kind == ME_FRAME_INLINE && (f->segment || f->offset || (f->flags & ME_FRAME_F_PAYLOAD_CRC)))
        return -EINVAL;
    if ((f->ext_len && ext == NULL) || (crc_covers_payload(f) && f->payload_len && payload == NULL))
        return -EINVAL;
    uint8_t *h = out;
    st16(h + OFF_MAGIC, ME_FRAME_MAGIC);
    h[OFF_VERSION] = ME_FRAME_VERSION;
    h[OFF_TYPE] = f->type;
    h[OFF_KIND] = f->kind;
    h[OFF_FLAGS] = f->flags;
    st16(h + OFF_EXT_LEN, f->ext_len);
    st64(h + OFF_ID, f->id);
    st32(h + OFF_PAYLOAD_LEN, f->payload_len);
    st32(h + OFF_CRC, 0);
    st64(h + OFF_LOCATOR, (uint64_t)f->segment | f->offset << 16);
    uint32_t crc = crc_head(h, ext, f->ext_len);
    if (crc_covers_payload(f) && f->payload_len)
        crc = me_crc32c(crc, payload, f->payload_len);
    st32(h + OFF_CRC, crc);
    f->version = ME_FRAME_VERSION;
    f->crc = crc;
    return ME_FRAME_HEADER_SIZE;
}

int me_frame_tlv_put(void *out, size_t cap, size_t *used, uint16_t type, const void *value, size_t len)
{
    if (len > UINT16_MAX)
        return -EMSGSIZE;
    if (*used > cap || cap - *used < ME_FRAME_TLV_HEADER + len)
        return -ENOBUFS;
    uint8_t *p = (uint8_t *)out + *used;
    st16(p, type);
    st16(p + 2, (uint16_t)len);
    if (len)
        memcpy(p + ME_FRAME_TLV_HEADER, value, len);
    *used += ME_FRAME_TLV_HEADER + len;
    return 0;
}

int me_frame_parse_header(const void *buf, size_t len, const struct me_frame_limits *lim, struct me_frame *f)
{
    const uint8_t *h = buf;
    uint32_t max_payload = lim ? lim->max_payload : ME_FRAME_DEFAULT_MAX_PAYLOAD;
    uint32_t max_ext = lim ? lim->max_ext : ME_FRAME_DEFAULT_MAX_EXT;
    memset(f, 0, sizeof *f);
    /* A short buffer is checked as far as it goes, so a stream reader learns
       of a wrong magic or version from the first bytes it reads. */
    if ((len >= 1 && h[0] != (ME_FRAME_MAGIC & 0xff)) || (len >= 2 && ld16(h) != ME_FRAME_MAGIC))
        return refuse(f, ME_FRAME_BAD_MAGIC);
    if (len > OFF_VERSION && h[OFF_VERSION] != ME_FRAME_VERSION)
        return refuse(f, ME_FRAME_BAD_VERSION);
    if (len < ME_FRAME_HEADER_SIZE) {
        f->needed = ME_FRAME_HEADER_SIZE;
        return refuse(f, ME_FRAME_TRUNCATED);
    }
    f->version = h[OFF_VERSION];
    f->type = h[OFF_TYPE];
    f->kind = h[OFF_KIND];
    f->flags = h[OFF_FLAGS];
    f->ext_len = ld16(h + OFF_EXT_LEN);
    f->id = ld64(h + OFF_ID);
    f->payload_len = ld32(h + OFF_PAYLOAD_LEN);
    f->crc = ld32(h + OFF_CRC);
    uint64_t locator = ld64(h + OFF_LOCATOR);
    f->segment = (uint16_t)locator;
    f->offset = locator >> 16;
    if (f->kind >= ME_FRAME_KIND_COUNT || (f->flags & ~ME_FRAME_F_ALL))
        return refuse(f, ME_FRAME_BAD_FIELD);
    if (f->kind == ME_FRAME_INLINE && (locator || (f->flags & ME_FRAME_F_PAYLOAD_CRC)))
        return refuse(f, ME_FRAME_BAD_FIELD);
    /* Limits before the length check: a receiver must not wait for, or
       allocate, what it would refuse anyway. */
    if (f->ext_len > max_ext || (f->kind == ME_FRAME_INLINE && f->payload_len > max_payload))
        return refuse(f, ME_FRAME_OVERLONG);
    uint64_t size = ME_FRAME_HEADER_SIZE + (uint64_t)f->ext_len;
    if (f->kind == ME_FRAME_INLINE)
        size += f->payload_len;
    if (size > INT32_MAX) /* the return value carries it */
        return refuse(f, ME_FRAME_OVERLONG);
    f->size = (uint32_t)size;
    return (int)size;
}

/* One u8-length string at p[*at..len) of 1..max bytes; its start in *s. */
static int principal_str(const uint8_t *p, size_t len, size_t *at, size_t max, const uint8_t **s)
{
    if (*at >= len)
        return -1;
    size_t n = p[*at];
    if (n == 0 || n > max || n > len - *at - 1)
        return -1;
    *s = p + *at + 1;
    *at += 1 + n;
    return 0;
}

/* The roles or scopes: a u8 count, then that many strings, none twice. A
   count is at most 32, so the pairwise check is a few hundred short compares. */
static int principal_labels(const uint8_t *p, size_t len, size_t *at)
{
    const uint8_t *seen[ME_FRAME_PRINCIPAL_LABELS_MAX];
    if (*at >= len)
        return -1;
    size_t count = p[(*at)++];
    if (count > ME_FRAME_PRINCIPAL_LABELS_MAX)
        return -1;
    for (size_t i = 0; i < count; i++) {
        if (principal_str(p, len, at, ME_FRAME_PRINCIPAL_LABEL_MAX, &seen[i]) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (seen[j][-1] == seen[i][-1] && memcmp(seen[j], seen[i], seen[i][-1]) == 0)
                return -1;
    }
    return 0;
}

int me_frame_principal_check(const void *value, size_t len)
{
    const uint8_t *p = value;
    const uint8_t *id;
    if (len < ME_FRAME_PRINCIPAL_FIXED || len > ME_FRAME_PRINCIPAL_MAX)
        return -EPROTO;
    if (p[0] >= ME_FRAME_PRINCIPAL_KINDS || (p[1] & ~ME_FRAME_PRINCIPAL_FLAGS))
        return -EPROTO;
    for (int i = 0; i < 3; i++) /* pid, uid, gid: zero unless flagged present */
        if (!(p[1] & (1u << i)) && ld32(p + 2 + 4 * i) != 0)
            return -EPROTO;
    size_t at = ME_FRAME_PRINCIPAL_FIXED;
    if (principal_str(p, len, &at, ME_FRAME_PRINCIPAL_ID_MAX, &id) < 0)
        return -EPROTO;
    if (principal_labels(p, len, &at) < 0 || principal_labels(p, len, &at) < 0)
        return -EPROTO;
    return at == len ? 0 : -EPROTO;
}

/* Decode the TLV area ext[0..len). */
static int parse_tlvs(struct me_frame *f, const uint8_t *ext, size_t len)
{
    size_t at = 0;
    while (at < len) {
        if (len - at < ME_FRAME_TLV_HEADER)
            return refuse(f, ME_FRAME_BAD_TLV);
        uint16_t type = ld16(ext + at);
        uint16_t vlen = ld16(ext + at + 2);
        const uint8_t *v = ext + at + ME_FRAME_TLV_HEADER;
        if (vlen > len - at - ME_FRAME_TLV_HEADER)
            return refuse(f, ME_FRAME_BAD_TLV);
        switch (type & ~ME_FRAME_TLV_OPTIONAL) {
        case ME_FRAME_TLV_DEADLINE:
            if (vlen != 8 || (f->present & ME_FRAME_HAS_DEADLINE))
                return refuse(f, ME_FRAME_BAD_TLV);
            f->deadline_ns = ld64(v);
            f->present |= ME_FRAME_HAS_DEADLINE;
            break;
        case ME_FRAME_TLV_TRACE:
            if (vlen != ME_FRAME_TRACE_SIZE || (f->present & ME_FRAME_HAS_TRACE))
                return refuse(f, ME_FRAME_BAD_TLV);
            memcpy(f->trace, v, ME_FRAME_TRACE_SIZE);
            f->present |= ME_FRAME_HAS_TRACE;
            break;
        case ME_FRAME_TLV_PRIORITY:
            if (vlen != 1 || (f->present & ME_FRAME_HAS_PRIORITY))
                return refuse(f, ME_FRAME_BAD_TLV);
            f->priority = v[0];
            f->present |= ME_FRAME_HAS_PRIORITY;
            break;
        case ME_FRAME_TLV_PRINCIPAL: /* variable length, within its bounds; kept in place */
            if ((f->present & ME_FRAME_HAS_PRINCIPAL) || me_frame_principal_check(v, vlen) < 0)
                return refuse(f, ME_FRAME_BAD_TLV);
            f->principal_off = (uint16_t)(at + ME_FRAME_TLV_HEADER);
            f->principal_len = vlen;
            f->present |= ME_FRAME_HAS_PRINCIPAL;
            break;
        default:
            if (!(type & ME_FRAME_TLV_OPTIONAL))
                return refuse(f, ME_FRAME_BAD_TLV);
        }
        at += ME_FRAME_TLV_HEADER + (size_t)vlen;
    }
    return 0;
}

int me_frame_check(struct me_frame *f, const void *hdr, const void *ext, const void *payload)
{
    f->crc_partial = crc_head(hdr, ext, f->ext_len);
    if (f->kind == ME_FRAME_INLINE) {
        uint32_t crc = f->payload_len ? me_crc32c(f->crc_partial, payload, f->payload_len) : f->crc_partial;
        if (crc != f->crc)
            return refuse(f, ME_FRAME_BAD_CRC);
        f->crc_checked = 1;
    } else if (!(f->flags & ME_FRAME_F_PAYLOAD_CRC)) {
        if (f->crc_partial != f->crc)
            return refuse(f, ME_FRAME_BAD_CRC);
        f->crc_checked = 1;
    }
    int rc = parse_tlvs(f, ext, f->ext_len);
    if (rc < 0)
        return rc;
    f->reason = ME_FRAME_OK;
    return 0;
}

int me_frame_decode(const void *buf, size_t len, const struct me_frame_limits *lim, struct me_frame *f)
{
    int size = me_frame_parse_header(buf, len, lim, f);
    if (size < 0)
        return size;
    if ((size_t)size > len) {
        f->needed = (uint32_t)size;
        return refuse(f, ME_FRAME_TRUNCATED);
    }
    const uint8_t *h = buf;
    int rc = me_frame_check(f, h, h + ME_FRAME_HEADER_SIZE, h + ME_FRAME_HEADER_SIZE + f->ext_len);
    return rc < 0 ? rc : size;
}

int me_frame_verify_payload(struct me_frame *f, const void *payload, size_t len)
{
    if (f->crc_checked || f->kind == ME_FRAME_INLINE || !(f->flags & ME_FRAME_F_PAYLOAD_CRC))
        return -EINVAL;
    if (len != f->payload_len)
        return -EMSGSIZE;
    if (me_crc32c(f->crc_partial, payload, len) != f->crc)
        return refuse(f, ME_FRAME_BAD_CRC);
    f->crc_checked = 1;
    return 0;
}
