# Declarations of csrc/frame/me_frame.h.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "frame/me_frame.h" nogil:
    enum:
        ME_FRAME_HEADER_SIZE
        ME_FRAME_MAGIC
        ME_FRAME_VERSION
        ME_FRAME_INLINE
        ME_FRAME_BLOCK
        ME_FRAME_FILE
        ME_FRAME_KIND_COUNT
        ME_FRAME_F_PAYLOAD_CRC
        ME_FRAME_F_END
        ME_FRAME_TLV_OPTIONAL
        ME_FRAME_TLV_DEADLINE
        ME_FRAME_TLV_TRACE
        ME_FRAME_TLV_PRIORITY
        ME_FRAME_TLV_PRINCIPAL
        ME_FRAME_PRINCIPAL_FIXED
        ME_FRAME_PRINCIPAL_KINDS
        ME_FRAME_PRINCIPAL_ID_MAX
        ME_FRAME_PRINCIPAL_LABELS_MAX
        ME_FRAME_PRINCIPAL_LABEL_MAX
        ME_FRAME_PRINCIPAL_MAX
        ME_FRAME_TLV_HEADER
        ME_FRAME_TRACE_SIZE
        ME_FRAME_DEFAULT_MAX_PAYLOAD
        ME_FRAME_DEFAULT_MAX_EXT
        ME_FRAME_OK
        ME_FRAME_TRUNCATED
        ME_FRAME_OVERLONG
        ME_FRAME_BAD_MAGIC
        ME_FRAME_BAD_VERSION
        ME_FRAME_BAD_FIELD
        ME_FRAME_BAD_CRC
        ME_FRAME_BAD_TLV
        ME_FRAME_REASON_COUNT
        ME_FRAME_HAS_DEADLINE
        ME_FRAME_HAS_TRACE
        ME_FRAME_HAS_PRIORITY
        ME_FRAME_HAS_PRINCIPAL

    uint64_t ME_FRAME_MAX_OFFSET

    struct me_frame_limits:
        uint32_t max_payload
        uint32_t max_ext

    struct me_frame:
        uint8_t version
        uint8_t type
        uint8_t kind
        uint8_t flags
        uint16_t ext_len
        uint64_t id
        uint32_t payload_len
        uint32_t crc
        uint16_t segment
        uint64_t offset
        uint32_t size
        uint32_t needed
        uint8_t reason
        uint8_t crc_checked
        uint8_t present
        uint8_t priority
        uint64_t deadline_ns
        uint8_t trace[25]
        uint32_t crc_partial
        uint16_t principal_off
        uint16_t principal_len

    int me_frame_encode_header(void *out, me_frame *f, const void *ext, const void *payload)
    int me_frame_tlv_put(void *out, size_t cap, size_t *used, uint16_t type, const void *value, size_t len)
    int me_frame_parse_header(const void *buf, size_t len, const me_frame_limits *lim, me_frame *f)
    int me_frame_check(me_frame *f, const void *hdr, const void *ext, const void *payload)
    int me_frame_decode(const void *buf, size_t len, const me_frame_limits *lim, me_frame *f)
    int me_frame_verify_payload(me_frame *f, const void *payload, size_t len)
    int me_frame_principal_check(const void *value, size_t len)
    const char *me_frame_reason_name(int reason)
    int me_json_check_value(const uint8_t *buf, size_t len, size_t *where)
    const char *me_json_check_message(int rc)
