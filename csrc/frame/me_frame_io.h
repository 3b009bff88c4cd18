/* me_frame_io.h - frames to and from descriptors: vectored, resumable writes and reads (docs/wire-format.md, "I/O"). */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_FRAME_IO_H
#define MCP_EDGE_ME_FRAME_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "me_frame.h"

/* A frame goes out as at most three iovecs: header, extensions, inline payload. */
#define ME_FRAME_IOV_MAX 3

/* Flags of a writer or reader. */
#define ME_FRAME_IO_SOCKET 0x1u /* the fd is a socket: sendmsg(MSG_NOSIGNAL) (a closed peer is -EPIPE,
                                   never SIGPIPE) and recvmsg */

/* The iovecs of a frame's header (32 bytes), extensions and inline payload,
   less their first `skip` bytes, empty pieces left out: the count (0-3). */
int me_frame_iov(struct iovec iov[ME_FRAME_IOV_MAX], const void *hdr, const void *ext, size_t ext_len,
                 const void *payload, size_t payload_len, size_t skip);

/* One frame on its way out and how far it got. The pieces stay the caller's:
   they must not move or change until the frame is written. */
struct me_frame_writer {
    const void *hdr;
    const void *ext;
    const void *payload; /* the inline payload; NULL (length 0) for block and file frames */
    size_t ext_len;
    size_t payload_len;
    size_t done;    /* bytes written so far */
    size_t total;   /* bytes of the frame: 32 + ext_len + payload_len */
    int64_t offset; /* < 0: write at the fd's position; else pwritev at offset + done */
    unsigned flags; /* ME_FRAME_IO_* */
};

void me_frame_writer_init(struct me_frame_writer *w, const void *hdr, const void *ext, size_t ext_len,
                          const void *payload, size_t payload_len, int64_t offset, unsigned flags);

/* Record `n` more bytes written by the caller's own means (an io_uring
   WRITEV of me_frame_writer_iov's iovecs): 0, or -EINVAL past the end. */
int me_frame_writer_advance(struct me_frame_writer *w, size_t n);

/* The iovecs of what is left to write; the count (0 when done). */
int me_frame_writer_iov(const struct me_frame_writer *w, struct iovec iov[ME_FRAME_IOV_MAX]);

/* Write what is left with writev (pwritev at an offset, sendmsg on a socket),
   resuming short writes, until the frame is out: 0. -EAGAIN: the fd is
   non-blocking and full; -EINTR: a signal came first (w->done says how far;
   call again, when writable). -EIO when the fd takes no byte; else -errno. */
int me_frame_writev(int fd, struct me_frame_writer *w);

/* Where a reader is. */
enum me_frame_read_phase {
    ME_FRAME_RD_HEADER = 0, /* reading the 32 header bytes */
    ME_FRAME_RD_DEST = 1,   /* header read and checked: me_frame_reader_dest says where the rest goes */
    ME_FRAME_RD_BODY = 2,   /* reading the extensions and the inline payload into their destinations */
    ME_FRAME_RD_DONE = 3,   /* the frame is read and checked: r->f holds it */
    ME_FRAME_RD_EOF = 4,    /* the stream ended before the first byte of a frame */
    ME_FRAME_RD_FAILED = 5, /* refused (r->f.reason) or the stream ended inside the frame */
};

/* One frame on its way in. The header is read on its own (32 bytes, checked
   on every partial read, so a wrong magic is refused on its first byte), and
   only then the extensions and the inline payload, in one vectored read,
   straight into the caller's buffers: never a byte past the frame's end. */
struct me_frame_reader {
    struct me_frame f; /* the header's fields once read; the decoded frame when done */
    struct me_frame_limits lim;
    uint8_t hdr[ME_FRAME_HEADER_SIZE];
    void *ext;
    void *payload;
    size_t got;     /* bytes of the frame read so far, header included */
    int64_t offset; /* < 0: read at the fd's position; else preadv at offset + got */
    unsigned flags; /* ME_FRAME_IO_* */
    uint8_t phase;  /* enum me_frame_read_phase */
};

/* lim: NULL for the defaults of me_frame.h. */
void me_frame_reader_init(struct me_frame_reader *r, const struct me_frame_limits *lim, int64_t offset,
                          unsigned flags);

/* The iovecs the next read fills (the rest of the header, or of the body);
   the count, 0 in any phase but HEADER and BODY. */
int me_frame_reader_iov(const struct me_frame_reader *r, struct iovec iov[2]);

/* Record `n` bytes read into me_frame_reader_iov's iovecs; n == 0 is the end
   of the stream. Checks the header as it arrives and the frame once read.
   0 (r->phase says what next), or -errno with r->f.reason: a refused header
   or frame (me_frame_decode's errnos), or -ENODATA (reason TRUNCATED, f.needed
   set) when the stream ended inside the frame. Phase FAILED after an error. */
int me_frame_reader_advance(struct me_frame_reader *r, size_t n);

/* In phase DEST: the buffers the extensions and the inline payload go to.
   0 (phase BODY, or DONE for a frame with neither), -EMSGSIZE (reason
   OVERLONG, phase FAILED) when one is too small, -EINVAL in another phase. */
int me_frame_reader_dest(struct me_frame_reader *r, void *ext, size_t ext_cap, void *payload, size_t payload_cap);

/* Read from fd with readv (preadv at an offset, recvmsg on a socket) until the
   reader needs its destinations (phase DEST: 0) or the frame is done or the
   stream over (DONE or EOF: 0). -EAGAIN / -EINTR: resume later; other errors
   as me_frame_reader_advance, or read's -errno (phase unchanged). */
int me_frame_read(int fd, struct me_frame_reader *r);

/* All of it, for a caller with fixed buffers: read a header, give it `ext`
   and `payload`, read the body. 0 (phase DONE or EOF), -EAGAIN / -EINTR
   (call again with the same buffers), or -errno as above. */
int me_frame_readv(int fd, struct me_frame_reader *r, void *ext, size_t ext_cap, void *payload, size_t payload_cap);

#endif /* MCP_EDGE_ME_FRAME_IO_H */
