# Declarations of csrc/slab/me_slab_numa.h.
from libc.stdint cimport int16_t, int32_t, uint8_t, uint32_t


cdef extern from "slab/me_slab_numa.h" nogil:
    int ME_NUMA_MAX_NODES
    int ME_NUMA_MAX_CPUS
    const char *ME_NUMA_DEFAULT_DIR

    struct me_numa_topology:
        uint32_t nnodes
        uint32_t ncpus
        int32_t node_id[64]
        uint8_t has_memory[64]
        uint8_t distance[64][64]
        int16_t cpu_node[4096]

    int me_numa_parse_list(const char *s, uint8_t *bits, uint32_t nbits)
    int me_numa_read(const char *dir, me_numa_topology *t)
    void me_numa_single(me_numa_topology *t)
    uint32_t me_numa_order(const me_numa_topology *t, int cpu, uint32_t *out, uint32_t max)
    int me_numa_map(void **out, size_t len, int node)
    int me_numa_unmap(void *p, size_t len)
