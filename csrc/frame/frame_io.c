/* frame_io.c - frames to and from descriptors: writev/sendmsg out, readv/recvmsg in, resumable, never concatenated. */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE /* preadv, pwritev, MSG_NOSIGNAL */
#include "me_frame_io.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Append the part of piece [base, base + len) that lies past `skip` bytes of
   the frame, `at` being where the piece starts in the frame. */
static int add_piece(struct iovec *iov, int n, const void *base, size_t len, size_t at, size_t skip)
{
    if (len == 0 || at + len <= skip)
        return n;
    size_t cut = skip > at ? skip - at : 0;
    iov[n].iov_base = (void *)((const uint8_t *)base + cut);
    iov[n].iov_len = len - cut;
    return n + 1;
}

int me_frame_iov(struct iovec iov[ME_FRAME_IOV_MAX], const void *hdr, const void *ext, size_t ext_len,
                 const void *payload, size_t payload_len, size_t skip)
{
    int n = add_piece(iov, 0, hdr, ME_FRAME_HEADER_SIZE, 0, skip);
    n = add_piece(iov, n, ext, ext_len, ME_FRAME_HEADER_SIZE, skip);
    return add_piece(iov, n, payload, payload_len, ME_FRAME_HEADER_SIZE + ext_len, skip);
}

void me_frame_writer_init(struct me_frame_writer *w, const void *hdr, const void *ext, size_t ext_len,
                          const void *payload, size_t payload_len, int64_t offset, unsigned flags)
{
    w->hdr = hdr;
    w->ext = ext;
    w->payload = payload;
    w->ext_len = ext_len;
    w->payload_len = payload_len;
    w->done = 0;
    w->total = ME_FRAME_HEADER_SIZE + ext_len + payload_len;
    w->offset = offset;
    w->flags = flags;
}

int me_frame_writer_iov(const struct me_frame_writer *w, struct iovec iov[ME_FRAME_IOV_MAX])
{
    return me_frame_iov(iov, w->hdr, w->ext, w->ext_len, w->payload, w->payload_len, w->done);
}

int me_frame_writer_advance(struct me_frame_writer *w, size_t n)
{
    if (n > w->total - w->done)
        return -EINVAL;
    w->done += n;
    return 0;
}

/* One vectored write of iov[0..cnt): the count, or -errno. */
static ssize_t put(int fd, struct iovec *iov, int cnt, int64_t offset, unsigned flags)
{
    ssize_t n;
    if (flags & ME_FRAME_IO_SOCKET) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    } else if (offset >= 0) {
        n = pwritev(fd, iov, cnt, (off_t)offset);
    } else {
        n = writev(fd, iov, cnt);
    }
    return n < 0 ? -errno : n;
}

int me_frame_writev(int fd, struct me_frame_writer *w)
{
    struct iovec iov[ME_FRAME_IOV_MAX];
    while (w->done < w->total) {
        int cnt = me_frame_writer_iov(w, iov);
        int64_t at = w->offset < 0 ? -1 : w->offset + (int64_t)w->done;
        ssize_t n = put(fd, iov, cnt, at, w->flags);
        if (n < 0)
            return (int)n; /* EAGAIN, EINTR: w->done is where to resume */
        if (n == 0)
            return -EIO; /* a regular write of a non-empty buffer moves at least one byte */
        w->done += (size_t)n;
    }
    return 0;
}

void me_frame_reader_init(struct me_frame_reader *r, const struct me_frame_limits *lim, int64_t offset,
                          unsigned flags)
{
    memset(r, 0, sizeof *r);
    r->lim.max_payload = lim ? lim->max_payload : ME_FRAME_DEFAULT_MAX_PAYLOAD;
    r->lim.max_ext = lim ? lim->max_ext : ME_FRAME_DEFAULT_MAX_EXT;
    r->offset = offset;
    r->flags = flags;
    r->phase = ME_FRAME_RD_HEADER;
}

/* Bytes of the inline payload the body holds (0 for block and file frames). */
static size_t body_payload_len(const struct me_frame_reader *r)
{
    return r->f.kind == ME_FRAME_INLINE ? r->f.payload_len : 0;
}

int me_frame_reader_iov(const struct me_frame_reader *r, struct iovec iov[2])
{
    if (r->phase == ME_FRAME_RD_HEADER) {
        iov[0].iov_base = (void *)(r->hdr + r->got);
        iov[0].iov_len = ME_FRAME_HEADER_SIZE - r->got;
        return 1;
    }
    if (r->phase != ME_FRAME_RD_BODY)
        return 0;
    /* The body's iovecs are the frame's, less the header: me_frame_iov with
       the header's 32 bytes always skipped. */
    struct iovec all[ME_FRAME_IOV_MAX];
    int n = me_frame_iov(all, r->hdr, r->ext, r->f.ext_len, r->payload, body_payload_len(r), r->got);
    memcpy(iov, all, (size_t)n * sizeof *iov);
    return n;
}

static int fail(struct me_frame_reader *r, int rc)
{
    r->phase = ME_FRAME_RD_FAILED;
    return rc;
}

int me_frame_reader_advance(struct me_frame_reader *r, size_t n)
{
    if (r->phase != ME_FRAME_RD_HEADER && r->phase != ME_FRAME_RD_BODY)
        return -EINVAL;
    size_t want = r->phase == ME_FRAME_RD_HEADER ? ME_FRAME_HEADER_SIZE : r->f.size;
    if (n > want - r->got)
        return -EINVAL;
    if (n == 0) { /* the end of the stream */
        if (r->got == 0) {
            r->phase = ME_FRAME_RD_EOF;
            return 0;
        }
        r->f.needed = r->phase == ME_FRAME_RD_HEADER ? ME_FRAME_HEADER_SIZE : r->f.size;
        r->f.reason = ME_FRAME_TRUNCATED;
        return fail(r, -ENODATA);
    }
    r->got += n;
    if (r->phase == ME_FRAME_RD_HEADER) {
        /* Checked on every partial read: a wrong magic or version is refused
           on the bytes that show it, without waiting for the rest. */
        int rc = me_frame_parse_header(r->hdr, r->got, &r->lim, &r->f);
        if (rc >= 0)
            r->phase = ME_FRAME_RD_DEST;
        else if (r->f.reason != ME_FRAME_TRUNCATED)
            return fail(r, rc);
        return 0;
    }
    if (r->got < r->f.size)
        return 0;
    int rc = me_frame_check(&r->f, r->hdr, r->ext, r->payload);
    if (rc < 0)
        return fail(r, rc);
    r->phase = ME_FRAME_RD_DONE;
    return 0;
}

int me_frame_reader_dest(struct me_frame_reader *r, void *ext, size_t ext_cap, void *payload, size_t payload_cap)
{
    if (r->phase != ME_FRAME_RD_DEST)
        return -EINVAL;
    size_t plen = body_payload_len(r);
    if (r->f.ext_len > ext_cap || plen > payload_cap) {
        r->f.reason = ME_FRAME_OVERLONG;
        return fail(r, -EMSGSIZE);
    }
    if ((r->f.ext_len && ext == NULL) || (plen && payload == NULL))
        return -EINVAL;
    r->ext = ext;
    r->payload = payload;
    r->phase = ME_FRAME_RD_BODY;
    if (r->got == r->f.size) { /* nothing follows the header */
        int rc = me_frame_check(&r->f, r->hdr, r->ext, r->payload);
        if (rc < 0)
            return fail(r, rc);
        r->phase = ME_FRAME_RD_DONE;
    }
    return 0;
}

/* One vectored read into iov[0..cnt): the count (0 at the end), or -errno. */
static ssize_t get(int fd, struct iovec *iov, int cnt, int64_t offset, unsigned flags)
{
    ssize_t n;
    if (flags & ME_FRAME_IO_SOCKET) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        n = recvmsg(fd, &msg, 0);
    } else if (offset >= 0) {
        n = preadv(fd, iov, cnt, (off_t)offset);
    } else {
        n = readv(fd, iov, cnt);
    }
    return n < 0 ? -errno : n;
}

int me_frame_read(int fd, struct me_frame_reader *r)
{
    struct iovec iov[2];
    for (;;) {
        int cnt = me_frame_reader_iov(r, iov);
        if (cnt == 0)
            return r->phase == ME_FRAME_RD_FAILED ? -EINVAL : 0;
        int64_t at = r->offset < 0 ? -1 : r->offset + (int64_t)r->got;
        ssize_t n = get(fd, iov, cnt, at, r->flags);
        if (n < 0)
            return (int)n;
        int rc = me_frame_reader_advance(r, (size_t)n);
        if (rc < 0)
            return rc;
    }
}

int me_frame_readv(int fd, struct me_frame_reader *r, void *ext, size_t ext_cap, void *payload, size_t payload_cap)
{
    for (;;) {
        int rc = me_frame_read(fd, r);
        if (rc < 0 || r->phase != ME_FRAME_RD_DEST)
            return rc;
        rc = me_frame_reader_dest(r, ext, ext_cap, payload, payload_cap);
        if (rc < 0)
            return rc;
    }
}
