# Declarations of csrc/slab/me_slab.h.
from libc.stdint cimport int64_t, uint32_t, uint64_t


cdef extern from "slab/me_slab.h" nogil:
    int ME_SLAB_MAX_CLASSES
    int ME_SLAB_MIN_SIZE
    int ME_SLAB_MAX_SIZE
    int ME_SLAB_MAX_COUNT
    int ME_SLAB_ALIGN
    int ME_SLAB_MAG_MAX
    int ME_SLAB_FREE
    int ME_SLAB_ALLOCATED
    int ME_SLAB_CACHED

    struct me_slab_config:
        uint32_t nclasses
        uint32_t size[16]
        uint32_t count[16]

    struct me_slab_class_stats:
        uint64_t in_use
        uint64_t free
        uint64_t high_water
        uint64_t failures
        uint64_t size
        uint64_t count

    size_t me_slab_arena_bytes(const me_slab_config *cfg)
    int me_slab_arena_init(void *base, size_t len, const me_slab_config *cfg)
    int me_slab_arena_check(const void *base, size_t len)
    void me_slab_arena_config(const void *arena, me_slab_config *cfg)
    size_t me_slab_arena_size(const void *arena)
    int me_slab_class_of(const void *arena, uint32_t n)
    uint32_t me_slab_class_size(const void *arena, uint32_t cls)
    int64_t me_slab_alloc(void *arena, uint32_t n, uint32_t owner)
    int64_t me_slab_alloc_class(void *arena, uint32_t cls, uint32_t owner)
    int me_slab_free(void *arena, uint64_t off)
    int64_t me_slab_alloc_cached(void *arena, uint32_t cls, uint32_t owner)
    int me_slab_free_cached(void *arena, uint64_t off)
    void me_slab_cache_flush(void *arena)
    void me_slab_arena_detach(void *arena)
    int me_slab_locate(const void *arena, uint64_t off, uint32_t *cls, uint32_t *index)
    int64_t me_slab_block_state(const void *arena, uint64_t off)
    int me_slab_set_owner(void *arena, uint64_t off, uint32_t owner)
    uint32_t me_slab_reclaim_owner(void *arena, uint32_t owner)
    uint32_t me_slab_reclaim_pid(void *arena, uint32_t pid)
    int me_slab_wait(void *arena, uint32_t cls, int64_t timeout_ns)
    void me_slab_stats(const void *arena, uint32_t cls, me_slab_class_stats *out)
    int64_t me_slab_bench_pairs(void *arena, uint32_t cls, uint64_t iters, int cached)
    int64_t me_slab_bench_malloc(void *(*alloc)(size_t), void (*release)(void *), size_t n, uint64_t iters)
