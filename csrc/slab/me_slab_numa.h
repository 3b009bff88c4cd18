/* me_slab_numa.h - NUMA topology read from a sysfs node directory, and the node order of a slab pool. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_SLAB_NUMA_H
#define MCP_EDGE_ME_SLAB_NUMA_H

#include <stddef.h>
#include <stdint.h>

#define ME_NUMA_MAX_NODES 64
#define ME_NUMA_MAX_CPUS 4096
#define ME_NUMA_DEFAULT_DIR "/sys/devices/system/node"

/* Nodes are kept by position (0..nnodes-1, ascending node id); node_id maps a
   position to the kernel's node number, which may have gaps. */
struct me_numa_topology {
    uint32_t nnodes;
    uint32_t ncpus;                                      /* highest cpu listed + 1 */
    int32_t node_id[ME_NUMA_MAX_NODES];
    uint8_t has_memory[ME_NUMA_MAX_NODES];
    uint8_t distance[ME_NUMA_MAX_NODES][ME_NUMA_MAX_NODES]; /* by position; 10 = local */
    int16_t cpu_node[ME_NUMA_MAX_CPUS];                  /* position of each cpu's node, -1: none (offline) */
};

/* Parse a kernel list ("0-3,8-11", "0", "" and a trailing newline) into a
   bitmap of nbits bits. How many bits are set, or -EINVAL (malformed, a
   reversed range, a number >= nbits). */
int me_numa_parse_list(const char *s, uint8_t *bits, uint32_t nbits);

/* Read the topology under dir (a /sys/devices/system/node, or a copy of one):
   `online` (or the nodeN folders), `has_memory` (or each node's meminfo),
   nodeN/cpulist, nodeN/distance. 0, -ENOENT (no such folder or no node),
   -EINVAL (a malformed file: the topology is not guessed). */
int me_numa_read(const char *dir, struct me_numa_topology *t);

/* One node for a machine without NUMA, or when the caller turned NUMA off:
   every cpu on node 0, with memory. */
void me_numa_single(struct me_numa_topology *t);

/* The node positions an allocation from cpu tries, in order: the cpu's own
   node when it has memory, then every node with memory by distance from the
   cpu's node (ties by node id). A cpu the topology does not list (offline, out
   of range) gets the nodes with memory by node id. How many written (<= max). */
uint32_t me_numa_order(const struct me_numa_topology *t, int cpu, uint32_t *out, uint32_t max);

/* Map len bytes of private anonymous memory for an arena, bound to node id
   node with mbind when node >= 0 (pages not touched yet: the arena init
   faults them in on that node). 0 or -errno (-ENOSYS: built without libnuma). */
int me_numa_map(void **out, size_t len, int node);
int me_numa_unmap(void *p, size_t len);

#endif /* MCP_EDGE_ME_SLAB_NUMA_H */
