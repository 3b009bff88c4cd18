/* segment.c - shared-memory segments: layout, memfd/POSIX shm creation, mapping, attach-time checks. */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm_internal.h"

static uint64_t align_up(uint64_t n, uint64_t to)
{
    return (n + to - 1) / to * to;
}

/* Offsets of a layout's parts; the total, or 0 if the layout is invalid. */
static uint64_t place(const struct me_shm_layout *lay, uint64_t *data_off, uint64_t *data_bytes, uint64_t *done_off,
                      uint64_t *done_bytes, uint64_t *arena_off, uint64_t *arena_bytes)
{
    if (lay->producers == 0 || lay->producers > ME_SHM_MAX_PRODUCERS || lay->segment_id > ME_SHM_MAX_PRODUCERS)
        return 0;
    if (lay->flags & ~(uint32_t)ME_SHM_F_PAYLOAD_CRC)
        return 0;
    uint64_t at = ME_SHM_HEADER_BYTES;
    *data_off = *data_bytes = *done_off = *done_bytes = *arena_off = *arena_bytes = 0;
    if (lay->data_kind != ME_RING_NONE) {
        size_t n = me_ring_bytes(lay->data_kind, lay->data_entries, ME_RING_DATA_ENTRY);
        if (n == 0)
            return 0;
        *data_off = at;
        *data_bytes = n;
        at += n;
    } else if (lay->data_entries) {
        return 0;
    }
    if (lay->completion_entries) {
        size_t n = me_ring_bytes(ME_RING_SPSC, lay->completion_entries, ME_RING_DONE_ENTRY);
        if (n == 0)
            return 0;
        *done_off = at;
        *done_bytes = n;
        at += n;
    }
    if (lay->slab.nclasses) {
        size_t n = me_slab_arena_bytes(&lay->slab);
        if (n == 0)
            return 0;
        at = align_up(at, SHM_PAGE);
        *arena_off = at;
        *arena_bytes = n;
        at += n;
    }
    at = align_up(at, SHM_PAGE);
    return at > ME_SHM_MAX_BYTES ? 0 : at;
}

size_t me_shm_segment_bytes(const struct me_shm_layout *lay)
{
    uint64_t a, b, c, d, e, f;
    return (size_t)place(lay, &a, &b, &c, &d, &e, &f);
}

uint32_t me_shm_completion_entries(const struct me_slab_config *cfg)
{
    uint64_t blocks = 0;
    for (uint32_t i = 0; i < cfg->nclasses && i < ME_SLAB_MAX_CLASSES; i++)
        blocks += cfg->count[i];
    uint64_t n = ME_RING_MIN_ENTRIES;
    while (n < blocks)
        n <<= 1;
    return n > ME_RING_MAX_ENTRIES ? 0 : (uint32_t)n;
}

int me_shm_segment_init(void *base, size_t len, const struct me_shm_layout *lay)
{
    uint64_t data_off, data_bytes, done_off, done_bytes, arena_off, arena_bytes;
    uint64_t total = place(lay, &data_off, &data_bytes, &done_off, &done_bytes, &arena_off, &arena_bytes);
    if (total == 0 || ((uintptr_t)base % SHM_PAGE))
        return -EINVAL;
    if (total > len)
        return -ENOSPC;
    struct shm_header *h = base;
    memset(h, 0, ME_SHM_HEADER_BYTES);
    h->version = ME_SHM_VERSION;
    h->header_bytes = ME_SHM_HEADER_BYTES;
    h->total = total;
    h->flags = lay->flags;
    h->creator_pid = (uint32_t)getpid();
    h->segment_id = lay->segment_id;
    h->producers = lay->producers;
    h->data_kind = lay->data_kind;
    h->data_entries = lay->data_entries;
    h->completion_entries = lay->completion_entries;
    h->data_off = data_off;
    h->data_bytes = data_bytes;
    h->done_off = done_off;
    h->done_bytes = done_bytes;
    h->arena_off = arena_off;
    h->arena_bytes = arena_bytes;
    int rc;
    if (data_bytes &&
        (rc = me_ring_init((uint8_t *)base + data_off, data_bytes, lay->data_kind, lay->data_entries,
                           ME_RING_DATA_ENTRY)) < 0)
        return rc;
    if (done_bytes &&
        (rc = me_ring_init((uint8_t *)base + done_off, done_bytes, ME_RING_SPSC, lay->completion_entries,
                           ME_RING_DONE_ENTRY)) < 0)
        return rc;
    if (arena_bytes && (rc = me_slab_arena_init((uint8_t *)base + arena_off, arena_bytes, &lay->slab)) < 0)
        return rc;
    /* The magic last: a segment is not one until everything else is written
       (a peer sees it only after the descriptor went through a system call). */
    memcpy(h->magic, ME_SHM_MAGIC, ME_SHM_MAGIC_LEN);
    return 0;
}

int me_shm_segment_check(const void *base, size_t len, struct me_shm_info *out)
{
    memset(out, 0, sizeof *out);
    if (len < ME_SHM_MAGIC_LEN + 4)
        return -EMSGSIZE;
    const struct shm_header *h = base;
    if (memcmp(h->magic, ME_SHM_MAGIC, ME_SHM_MAGIC_LEN) != 0)
        return -ENOMSG;
    out->version = h->version;
    if (h->version != ME_SHM_VERSION)
        return -EPROTONOSUPPORT;
    if (len < ME_SHM_HEADER_BYTES)
        return -EMSGSIZE;
    /* Copy the fields once and check the copy: nothing is read twice. */
    struct shm_header c;
    memcpy(&c, h, sizeof c);
    out->total = c.total;
    out->creator_pid = c.creator_pid;
    if (c.header_bytes != ME_SHM_HEADER_BYTES)
        return -EINVAL;
    if (c.total > len)
        return -EMSGSIZE;
    struct me_shm_layout lay = {
        .data_kind = c.data_kind,
        .data_entries = c.data_entries,
        .completion_entries = c.completion_entries,
        .flags = c.flags,
        .segment_id = c.segment_id,
        .producers = c.producers,
    };
    /* The arena's classes come from the arena's own header, checked by me_slab. */
    if (c.arena_bytes) {
        if (c.arena_off % SHM_PAGE || c.arena_off < ME_SHM_HEADER_BYTES || c.arena_off > c.total ||
            c.arena_bytes > c.total - c.arena_off)
            return -EINVAL;
        const void *arena = (const uint8_t *)base + c.arena_off;
        if (me_slab_arena_check(arena, (size_t)c.arena_bytes) < 0 || me_slab_arena_size(arena) != c.arena_bytes)
            return -EINVAL;
        me_slab_arena_config(arena, &lay.slab);
    }
    uint64_t data_off, data_bytes, done_off, done_bytes, arena_off, arena_bytes;
    uint64_t total = place(&lay, &data_off, &data_bytes, &done_off, &done_bytes, &arena_off, &arena_bytes);
    if (total == 0)
        return -EINVAL;
    /* Where this version puts each part, and nowhere else. */
    if (total != c.total || data_off != c.data_off || data_bytes != c.data_bytes || done_off != c.done_off ||
        done_bytes != c.done_bytes || arena_off != c.arena_off || arena_bytes != c.arena_bytes)
        return -EINVAL;
    struct me_ring view;
    if (data_bytes && (me_ring_attach(&view, (uint8_t *)base + data_off, data_bytes, lay.data_kind,
                                      ME_RING_DATA_ENTRY) < 0 || view.entries != lay.data_entries))
        return -EINVAL;
    if (done_bytes && (me_ring_attach(&view, (uint8_t *)base + done_off, done_bytes, ME_RING_SPSC,
                                      ME_RING_DONE_ENTRY) < 0 || view.entries != lay.completion_entries))
        return -EINVAL;
    out->layout = lay;
    out->data_off = data_off;
    out->data_bytes = data_bytes;
    out->done_off = done_off;
    out->done_bytes = done_bytes;
    out->arena_off = arena_off;
    out->arena_bytes = arena_bytes;
    return 0;
}

int me_shm_create(const char *name, int named, size_t len)
{
    int fd;
    if (named) {
        if (!name || name[0] != '/')
            return -EINVAL;
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    } else {
        fd = memfd_create(name ? name : "mcp-edge-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    }
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)len) < 0) {
        int e = errno;
        close(fd);
        if (named)
            shm_unlink(name);
        return -e;
    }
    /* A peer that maps the memfd must not lose pages under it: no shrinking. */
    if (!named)
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    return fd;
}

int me_shm_open(const char *name)
{
    if (!name || name[0] != '/')
        return -EINVAL;
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

int me_shm_unlink(const char *name)
{
    return shm_unlink(name) < 0 ? -errno : 0;
}

int64_t me_shm_fd_size(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    return (int64_t)st.st_size;
}

int me_shm_map(int fd, size_t len, int prefault, void **out)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | (prefault ? MAP_POPULATE : 0), fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    *out = p;
    return 0;
}

int me_shm_unmap(void *base, size_t len)
{
    return munmap(base, len) < 0 ? -errno : 0;
}

int me_shm_peer_get(const void *base, uint32_t i, uint32_t *pid)
{
    if (i > ME_SHM_MAX_PRODUCERS)
        return -EINVAL;
    struct shm_header *h = (struct shm_header *)base;
    uint32_t state = atomic_load_explicit(&h->peers[i].state, memory_order_acquire);
    if (pid)
        *pid = atomic_load_explicit(&h->peers[i].pid, memory_order_relaxed);
    return (int)state;
}

int me_shm_peer_set(void *base, uint32_t i, uint32_t pid, uint32_t state)
{
    if (i > ME_SHM_MAX_PRODUCERS || state > ME_PEER_STALE)
        return -EINVAL;
    struct shm_header *h = base;
    atomic_store_explicit(&h->peers[i].pid, pid, memory_order_relaxed);
    atomic_store_explicit(&h->peers[i].state, state, memory_order_release);
    return 0;
}
