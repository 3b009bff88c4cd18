/* frame_stress.c - the wire format under the sanitizers: encode/decode, every malformed class, frames between threads. */
/* SPDX-License-Identifier: Apache-2.0 */
// sources: ext:mcp_edge.native._frame
// libs: -lpthread
/*
 * Run under -fsanitize=thread and -fsanitize=address,undefined (make
 * test-sanitize, tools/sanitize/run.sh). Parts:
 *
 *  1. encode/decode round trips of random frames (every kind, flag and TLV),
 *     each decoded from a heap copy of exactly its size, so a read past the
 *     end is an ASan report; every truncation and every bit flip of some of
 *     them is refused with a reason, never accepted with other contents;
 *  2. the iovec plan: me_frame_iov hands back the caller's own pointers
 *     (nothing is joined), less the bytes already written;
 *  3. a writer thread and a reader thread over a non-blocking socketpair and a
 *     non-blocking pipe (both shrunk), poll() on EAGAIN: random payloads up to
 *     256 KiB read straight into an exactly-sized heap block, in order, intact;
 *  4. a regular file written with pwritev and read back with preadv at offsets;
 *  5. malformed headers over a stream: refused on the bytes that show them,
 *     and nothing after those bytes read;
 *  6. me_json_check_value over random JSON-ish text (long string runs for the
 *     wide loop, escapes, UTF-8, brackets) and random damage to it, each in an
 *     exactly-sized heap copy: no read past the end, and an accepted text has
 *     no raw line break and closes what it opens.
 *
 * The seed is argv[1] or the time; it is printed. Exit status 0 on success;
 * an assertion aborts otherwise.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../csrc/cpu/me_cpu.h"
#include "../../csrc/crc32c/me_crc32c.h"
#include "../../csrc/frame/me_frame.h"
#include "../../csrc/frame/me_frame_io.h"

#define STREAM_FRAMES 400
#define MAX_PAYLOAD (256u << 10)

#define CHECK(cond)                                                                                                   \
    do {                                                                                                              \
        if (!(cond)) {                                                                                                \
            fprintf(stderr, "frame_stress: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                   \
            abort();                                                                                                  \
        }                                                                                                             \
    } while (0)

static uint64_t next(uint64_t *s) /* xorshift64* */
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

static void fill(uint8_t *p, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(id * 131 + i * 7 + (i >> 9));
}

static int filled(const uint8_t *p, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(id * 131 + i * 7 + (i >> 9)))
            return 0;
    return 1;
}

/* A random frame's pieces: header fields, TLVs, inline payload. */
struct sample {
    struct me_frame f;
    uint8_t ext[64];
    uint8_t *payload;
    uint8_t hdr[ME_FRAME_HEADER_SIZE];
};

static void make_sample(struct sample *s, uint64_t *rng, uint64_t id, uint32_t max_payload)
{
    memset(&s->f, 0, sizeof s->f);
    size_t used = 0;
    uint64_t r = next(rng);
    if (r & 1) {
        uint64_t deadline = next(rng);
        CHECK(me_frame_tlv_put(s->ext, sizeof s->ext, &used, ME_FRAME_TLV_DEADLINE, &deadline, 8) == 0);
    }
    if (r & 2) {
        uint8_t trace[ME_FRAME_TRACE_SIZE];
        fill(trace, sizeof trace, id);
        CHECK(me_frame_tlv_put(s->ext, sizeof s->ext, &used, ME_FRAME_TLV_TRACE, trace, sizeof trace) == 0);
    }
    if (r & 4) {
        uint8_t prio = (uint8_t)id;
        CHECK(me_frame_tlv_put(s->ext, sizeof s->ext, &used, ME_FRAME_TLV_PRIORITY | ME_FRAME_TLV_OPTIONAL, &prio,
                               1) == 0);
    }
    if (r & 8)
        CHECK(me_frame_tlv_put(s->ext, sizeof s->ext, &used, 0x8123, "xyz", 3) == 0);
    CHECK(me_frame_tlv_put(s->ext, 2, &used, 1, "x", 1) == -ENOBUFS);
    s->f.ext_len = (uint16_t)used;
    s->f.type = (uint8_t)(r >> 8);
    s->f.id = id;
    s->f.kind = (uint8_t)((r >> 16) % 4 == 3 ? ME_FRAME_BLOCK : (r >> 16) % 4 == 2 ? ME_FRAME_FILE : ME_FRAME_INLINE);
    s->f.flags = (r >> 20) & 1 ? ME_FRAME_F_END : 0;
    uint32_t len = (uint32_t)(next(rng) % (max_payload + 1));
    if ((r >> 24) % 4 == 0)
        len %= 64; /* plenty of small ones */
    s->f.payload_len = len;
    s->payload = NULL;
    if (s->f.kind == ME_FRAME_INLINE) {
        s->payload = malloc(len ? len : 1);
        CHECK(s->payload != NULL);
        fill(s->payload, len, id);
    } else {
        s->f.segment = (uint16_t)(r >> 32);
        s->f.offset = next(rng) & ME_FRAME_MAX_OFFSET;
    }
    CHECK(me_frame_encode_header(s->hdr, &s->f, s->ext, s->payload) == ME_FRAME_HEADER_SIZE);
}

static size_t inline_len(const struct me_frame *f)
{
    return f->kind == ME_FRAME_INLINE ? f->payload_len : 0;
}

/* The whole frame in a heap block of exactly its size. */
static uint8_t *flatten(const struct sample *s, size_t *size)
{
    size_t n = ME_FRAME_HEADER_SIZE + s->f.ext_len + inline_len(&s->f);
    uint8_t *buf = malloc(n);
    CHECK(buf != NULL);
    memcpy(buf, s->hdr, ME_FRAME_HEADER_SIZE);
    memcpy(buf + ME_FRAME_HEADER_SIZE, s->ext, s->f.ext_len);
    if (inline_len(&s->f))
        memcpy(buf + ME_FRAME_HEADER_SIZE + s->f.ext_len, s->payload, inline_len(&s->f));
    *size = n;
    return buf;
}

/* Decode from an exactly-sized heap copy of buf[0..n). */
static int decode_exact(const uint8_t *buf, size_t n, struct me_frame *out)
{
    uint8_t *copy = malloc(n ? n : 1);
    CHECK(copy != NULL);
    memcpy(copy, buf, n);
    int rc = me_frame_decode(copy, n, NULL, out);
    free(copy);
    return rc;
}

static void part_codec(uint64_t *rng)
{
    for (uint64_t id = 0; id < 2000; id++) {
        struct sample s;
        make_sample(&s, rng, id, 4096);
        size_t n;
        uint8_t *buf = flatten(&s, &n);
        struct me_frame got;
        CHECK(decode_exact(buf, n, &got) == (int)n);
        CHECK(got.id == id && got.kind == s.f.kind && got.payload_len == s.f.payload_len && got.type == s.f.type);
        CHECK(got.ext_len == s.f.ext_len && got.segment == s.f.segment && got.offset == s.f.offset);
        CHECK(got.crc_checked && got.reason == ME_FRAME_OK);
        /* Every truncation: refused as truncated (or, below 3 bytes, nothing else to say), never read past. */
        for (size_t cut = 0; cut < n; cut += 1 + cut / 8) {
            CHECK(decode_exact(buf, cut, &got) == -EAGAIN && got.reason == ME_FRAME_TRUNCATED);
        }
        /* Every bit flip of the first frames: refused with a reason (CRC32C catches any one-bit error the
           other checks let through), never accepted as checked. The one flip a decoder cannot judge alone
           is the one that sets PAYLOAD_CRC on a block or file frame: its CRC then covers bytes it does not
           have, so it passes the frame unchecked (crc_checked 0) and verify_payload refuses it. */
        if (id < 40) {
            uint8_t *block = calloc(1, s.f.payload_len + 1);
            CHECK(block != NULL);
            for (size_t bit = 0; bit < n * 8; bit += 1 + (n > 512) * 13) {
                buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                int rc = decode_exact(buf, n, &got);
                if (rc >= 0) {
                    CHECK(bit == 8 * 5 && s.f.kind != ME_FRAME_INLINE && !got.crc_checked);
                    CHECK(me_frame_verify_payload(&got, block, got.payload_len) == -EBADMSG);
                } else {
                    CHECK(got.reason != ME_FRAME_OK && me_frame_reason_name(got.reason) != NULL);
                }
                buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            }
            free(block);
        }
        free(buf);
        free(s.payload);
    }
}

static void part_iov(void)
{
    uint8_t hdr[ME_FRAME_HEADER_SIZE] = {0}, ext[10] = {0}, payload[100] = {0};
    struct iovec iov[ME_FRAME_IOV_MAX];
    CHECK(me_frame_iov(iov, hdr, ext, sizeof ext, payload, sizeof payload, 0) == 3);
    CHECK(iov[0].iov_base == hdr && iov[0].iov_len == 32 && iov[1].iov_base == ext && iov[1].iov_len == 10);
    CHECK(iov[2].iov_base == payload && iov[2].iov_len == 100);
    CHECK(me_frame_iov(iov, hdr, ext, sizeof ext, payload, sizeof payload, 35) == 2);
    CHECK(iov[0].iov_base == ext + 3 && iov[0].iov_len == 7 && iov[1].iov_base == payload);
    CHECK(me_frame_iov(iov, hdr, NULL, 0, payload, sizeof payload, 0) == 2 && iov[1].iov_base == payload);
    CHECK(me_frame_iov(iov, hdr, ext, sizeof ext, payload, sizeof payload, 141) == 1 && iov[0].iov_len == 1);
    CHECK(me_frame_iov(iov, hdr, ext, sizeof ext, payload, sizeof payload, 142) == 0);
    struct me_frame_writer w;
    me_frame_writer_init(&w, hdr, ext, sizeof ext, payload, sizeof payload, -1, 0);
    CHECK(w.total == 142 && me_frame_writer_advance(&w, 143) == -EINVAL && me_frame_writer_advance(&w, 45) == 0);
    CHECK(me_frame_writer_iov(&w, iov) == 1 && iov[0].iov_base == payload + 3 && iov[0].iov_len == 97);
}

static void wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    int rc;
    do
        rc = poll(&p, 1, -1);
    while (rc < 0 && errno == EINTR);
    CHECK(rc == 1);
}

struct stream_args {
    int fd;
    unsigned flags;
    uint64_t seed;
};

static void *stream_writer(void *arg)
{
    struct stream_args *a = arg;
    uint64_t rng = a->seed;
    for (uint64_t id = 0; id < STREAM_FRAMES; id++) {
        struct sample s;
        make_sample(&s, &rng, id, MAX_PAYLOAD);
        struct me_frame_writer w;
        me_frame_writer_init(&w, s.hdr, s.ext, s.f.ext_len, s.payload, inline_len(&s.f), -1, a->flags);
        int rc;
        while ((rc = me_frame_writev(a->fd, &w)) == -EAGAIN || rc == -EINTR)
            wait_fd(a->fd, POLLOUT);
        CHECK(rc == 0 && w.done == w.total);
        free(s.payload);
    }
    return NULL;
}

static void *stream_reader(void *arg)
{
    struct stream_args *a = arg;
    uint64_t rng = a->seed; /* the writer's sequence, replayed to know what must arrive */
    for (uint64_t id = 0; id <= STREAM_FRAMES; id++) {
        struct me_frame_reader r;
        me_frame_reader_init(&r, NULL, -1, a->flags);
        uint8_t *dest = NULL, ext[64];
        int rc;
        for (;;) {
            rc = me_frame_read(a->fd, &r);
            if (rc == -EAGAIN || rc == -EINTR) {
                wait_fd(a->fd, POLLIN);
                continue;
            }
            CHECK(rc == 0);
            if (r.phase != ME_FRAME_RD_DEST)
                break;
            size_t plen = inline_len(&r.f);
            dest = malloc(plen ? plen : 1); /* exactly the payload: a byte too many read is an ASan report */
            CHECK(dest != NULL);
            CHECK(me_frame_reader_dest(&r, ext, r.f.ext_len, dest, plen) == 0);
        }
        if (id == STREAM_FRAMES) { /* the writer closed its end */
            CHECK(r.phase == ME_FRAME_RD_EOF && dest == NULL);
            break;
        }
        struct sample s;
        make_sample(&s, &rng, id, MAX_PAYLOAD);
        CHECK(r.phase == ME_FRAME_RD_DONE && r.f.id == id && r.f.kind == s.f.kind);
        CHECK(r.f.payload_len == s.f.payload_len && r.f.ext_len == s.f.ext_len);
        CHECK(memcmp(ext, s.ext, s.f.ext_len) == 0 && filled(dest, inline_len(&s.f), id));
        free(dest);
        free(s.payload);
    }
    return NULL;
}

static void run_stream(int rfd, int wfd, unsigned flags, uint64_t seed, int close_w)
{
    CHECK(fcntl(rfd, F_SETFL, O_NONBLOCK) == 0 && fcntl(wfd, F_SETFL, O_NONBLOCK) == 0);
    struct stream_args wa = {wfd, flags, seed}, ra = {rfd, flags, seed};
    pthread_t wt, rt;
    CHECK(pthread_create(&wt, NULL, stream_writer, &wa) == 0);
    CHECK(pthread_create(&rt, NULL, stream_reader, &ra) == 0);
    CHECK(pthread_join(wt, NULL) == 0);
    if (close_w)
        CHECK(close(wfd) == 0);
    else
        CHECK(shutdown(wfd, SHUT_WR) == 0);
    CHECK(pthread_join(rt, NULL) == 0);
}

static void part_streams(uint64_t seed)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    int small = 4096;
    CHECK(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    run_stream(sv[0], sv[1], ME_FRAME_IO_SOCKET, seed, 0);
    CHECK(close(sv[0]) == 0 && close(sv[1]) == 0);
    int p[2];
    CHECK(pipe(p) == 0);
    CHECK(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 4096);
    run_stream(p[0], p[1], 0, seed ^ 0x5555, 1);
    CHECK(close(p[0]) == 0);
}

static void part_file(uint64_t *rng)
{
    char path[] = "build/sanitize/frame_stress.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) { /* run from elsewhere than the repository root */
        strcpy(path, "frame_stress.XXXXXX");
        fd = mkstemp(path);
    }
    CHECK(fd >= 0 && unlink(path) == 0);
    int64_t offsets[64], at = 4096;
    struct sample samples[64];
    for (int i = 0; i < 64; i++) {
        make_sample(&samples[i], rng, (uint64_t)i, 70000);
        struct me_frame_writer w;
        me_frame_writer_init(&w, samples[i].hdr, samples[i].ext, samples[i].f.ext_len, samples[i].payload,
                             inline_len(&samples[i].f), at, 0);
        CHECK(me_frame_writev(fd, &w) == 0);
        offsets[i] = at;
        at += (int64_t)w.total;
    }
    CHECK(lseek(fd, 0, SEEK_CUR) == 0); /* pwritev: the position did not move */
    for (int i = 63; i >= 0; i--) {
        struct me_frame_reader r;
        me_frame_reader_init(&r, NULL, offsets[i], 0);
        uint8_t ext[64];
        size_t plen = inline_len(&samples[i].f);
        uint8_t *dest = malloc(plen ? plen : 1);
        CHECK(dest != NULL);
        CHECK(me_frame_readv(fd, &r, ext, sizeof ext, dest, plen) == 0 && r.phase == ME_FRAME_RD_DONE);
        CHECK(r.f.id == (uint64_t)i && filled(dest, plen, (uint64_t)i));
        free(dest);
        free(samples[i].payload);
    }
    struct me_frame_reader r;
    me_frame_reader_init(&r, NULL, at, 0);
    CHECK(me_frame_readv(fd, &r, NULL, 0, NULL, 0) == 0 && r.phase == ME_FRAME_RD_EOF);
    CHECK(close(fd) == 0);
}

/* Bytes that some check refuses, read from a stream: the reader stops on them, and what comes after is
   still in the stream (sent after the refusal: a reader may take up to the header's 32 bytes at once). */
static void refuse_case(const uint8_t *bytes, size_t n, int reason, size_t taken)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
    CHECK(write(sv[1], bytes, n) == (ssize_t)n);
    struct me_frame_reader r;
    me_frame_reader_init(&r, NULL, -1, ME_FRAME_IO_SOCKET);
    uint8_t big[64];
    int rc = me_frame_readv(sv[0], &r, big, sizeof big, big, sizeof big);
    CHECK(rc < 0 && r.phase == ME_FRAME_RD_FAILED && r.f.reason == reason && r.got == taken);
    CHECK(me_frame_readv(sv[0], &r, big, sizeof big, big, sizeof big) == -EINVAL); /* stays failed */
    CHECK(write(sv[1], "AFTER", 5) == 5);
    uint8_t rest[128];
    ssize_t left = read(sv[0], rest, sizeof rest);
    CHECK(left == (ssize_t)(n - taken + 5) && memcmp(rest + n - taken, "AFTER", 5) == 0);
    CHECK(close(sv[0]) == 0 && close(sv[1]) == 0);
}

static void part_refusals(void)
{
    struct me_frame f = {.type = 1, .id = 2, .payload_len = 4};
    uint8_t good[ME_FRAME_HEADER_SIZE + 4];
    memcpy(good + ME_FRAME_HEADER_SIZE, "data", 4);
    CHECK(me_frame_encode_header(good, &f, NULL, good + ME_FRAME_HEADER_SIZE) == ME_FRAME_HEADER_SIZE);
    uint8_t h[ME_FRAME_HEADER_SIZE];
    refuse_case((const uint8_t *)"Z", 1, ME_FRAME_BAD_MAGIC, 1);
    refuse_case((const uint8_t *)"M\x01", 2, ME_FRAME_BAD_MAGIC, 2);
    memcpy(h, good, sizeof h);
    h[2] = 9;
    refuse_case(h, 3, ME_FRAME_BAD_VERSION, 3);
    memcpy(h, good, sizeof h);
    h[4] = 7; /* kind */
    refuse_case(h, sizeof h, ME_FRAME_BAD_FIELD, 32);
    memcpy(h, good, sizeof h);
    h[5] = 0x40; /* reserved flag */
    refuse_case(h, sizeof h, ME_FRAME_BAD_FIELD, 32);
    memcpy(h, good, sizeof h);
    h[19] = 0x7f; /* payload length beyond the limit */
    refuse_case(h, sizeof h, ME_FRAME_OVERLONG, 32);
    memcpy(h, good, sizeof h);
    h[7] = 0x40; /* extensions beyond the limit */
    refuse_case(h, sizeof h, ME_FRAME_OVERLONG, 32);
    uint8_t bad_crc[sizeof good];
    memcpy(bad_crc, good, sizeof good);
    bad_crc[sizeof good - 1] ^= 1;
    refuse_case(bad_crc, sizeof bad_crc, ME_FRAME_BAD_CRC, sizeof bad_crc); /* read to its end, not further */
    /* A destination too small: refused after the header, the body unread. */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(write(sv[1], good, sizeof good) == (ssize_t)sizeof good);
    struct me_frame_reader r;
    me_frame_reader_init(&r, NULL, -1, ME_FRAME_IO_SOCKET);
    uint8_t three[3];
    CHECK(me_frame_readv(sv[0], &r, NULL, 0, three, sizeof three) == -EMSGSIZE && r.f.reason == ME_FRAME_OVERLONG);
    CHECK(read(sv[0], three, 3) == 3 && memcmp(three, "dat", 3) == 0);
    /* The stream ends inside a frame: truncated with what it needs. */
    CHECK(write(sv[1], good, 20) == 20 && shutdown(sv[1], SHUT_WR) == 0);
    uint8_t one[1];
    CHECK(read(sv[0], one, 1) == 1); /* the 'a' left of the refused frame */
    me_frame_reader_init(&r, NULL, -1, ME_FRAME_IO_SOCKET);
    uint8_t four[4];
    CHECK(me_frame_readv(sv[0], &r, NULL, 0, four, 4) == -ENODATA);
    CHECK(r.f.reason == ME_FRAME_TRUNCATED && r.f.needed == ME_FRAME_HEADER_SIZE && r.got == 20);
    CHECK(close(sv[0]) == 0 && close(sv[1]) == 0);
}

/* Part 6: the JSON value check. */
static size_t json_text(uint64_t *rng, uint8_t *out, size_t cap)
{
    static const char *const pieces[] = {"{", "}", "[", "]", ",", ":", "\"", "\\n", "\\u00e9", "\\\"", "1.5e3",
                                         "true", "null", " ", "\t", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                         "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"};
    size_t n = 0;
    out[n++] = '{';
    size_t count = next(rng) % 64;
    for (size_t k = 0; k < count; k++) {
        const char *piece = pieces[next(rng) % (sizeof pieces / sizeof pieces[0])];
        size_t len = strlen(piece);
        if (n + len + 1 >= cap)
            break;
        memcpy(out + n, piece, len);
        n += len;
    }
    out[n++] = '}';
    return n;
}

static void part_json(uint64_t *rng)
{
    uint8_t text[4096];
    unsigned accepted = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = json_text(rng, text, sizeof text);
        if (round & 1) { /* damage: a few random bytes anywhere */
            for (int k = 0; k < 3; k++)
                text[next(rng) % n] = (uint8_t)next(rng);
        }
        uint8_t *copy = malloc(n ? n : 1);
        assert(copy != NULL);
        memcpy(copy, text, n);
        size_t where = 0;
        int rc = me_json_check_value(copy, n, &where);
        assert(where <= n);
        assert(me_json_check_message(rc) != NULL);
        if (rc == 0) {
            accepted++;
            assert(memchr(copy, '\n', n) == NULL && memchr(copy, '\r', n) == NULL);
            int depth = 0, in_string = 0;
            for (size_t i = 0; i < n; i++) { /* brackets outside strings close what they open */
                if (in_string) {
                    if (copy[i] == '\\')
                        i++;
                    else if (copy[i] == '"')
                        in_string = 0;
                } else if (copy[i] == '"') {
                    in_string = 1;
                } else if (copy[i] == '{' || copy[i] == '[') {
                    depth++;
                } else if (copy[i] == '}' || copy[i] == ']') {
                    assert(--depth >= 0);
                }
            }
            assert(depth == 0 && !in_string);
        }
        free(copy);
    }
    assert(accepted > 0);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : (uint64_t)time(NULL);
    if (seed == 0)
        seed = 1;
    printf("frame_stress: seed %llu\n", (unsigned long long)seed);
    fflush(stdout);
    /* The best CRC32C kernel, set once before any thread starts (as the extension does at import). */
    for (int level = ME_LEVEL_COUNT - 1; level >= 0; level--)
        if (me_crc32c_set_level(level) == 0)
            break;
    uint64_t rng = seed;
    part_codec(&rng);
    part_iov();
    part_streams(seed);
    part_file(&rng);
    part_refusals();
    part_json(&rng);
    printf("frame_stress: ok\n");
    return 0;
}
