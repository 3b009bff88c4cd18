# Declarations of csrc/frame/me_frame_io.h.
from libc.stdint cimport int64_t, uint8_t
from posix.uio cimport iovec

from mcp_edge.native.includes.me_frame cimport me_frame, me_frame_limits


cdef extern from "frame/me_frame_io.h" nogil:
    enum:
        ME_FRAME_IOV_MAX
        ME_FRAME_IO_SOCKET
        ME_FRAME_RD_HEADER
        ME_FRAME_RD_DEST
        ME_FRAME_RD_BODY
        ME_FRAME_RD_DONE
        ME_FRAME_RD_EOF
        ME_FRAME_RD_FAILED

    struct me_frame_writer:
        const void *hdr
        const void *ext
        const void *payload
        size_t ext_len
        size_t payload_len
        size_t done
        size_t total
        int64_t offset
        unsigned flags

    struct me_frame_reader:
        me_frame f
        me_frame_limits lim
        uint8_t hdr[32]
        void *ext
        void *payload
        size_t got
        int64_t offset
        unsigned flags
        uint8_t phase

    int me_frame_iov(iovec *iov, const void *hdr, const void *ext, size_t ext_len, const void *payload,
                     size_t payload_len, size_t skip)
    void me_frame_writer_init(me_frame_writer *w, const void *hdr, const void *ext, size_t ext_len,
                              const void *payload, size_t payload_len, int64_t offset, unsigned flags)
    int me_frame_writer_advance(me_frame_writer *w, size_t n)
    int me_frame_writer_iov(const me_frame_writer *w, iovec *iov)
    int me_frame_writev(int fd, me_frame_writer *w)
    void me_frame_reader_init(me_frame_reader *r, const me_frame_limits *lim, int64_t offset, unsigned flags)
    int me_frame_reader_iov(const me_frame_reader *r, iovec *iov)
    int me_frame_reader_advance(me_frame_reader *r, size_t n)
    int me_frame_reader_dest(me_frame_reader *r, void *ext, size_t ext_cap, void *payload, size_t payload_cap)
    int me_frame_read(int fd, me_frame_reader *r)
    int me_frame_readv(int fd, me_frame_reader *r, void *ext, size_t ext_cap, void *payload, size_t payload_cap)
