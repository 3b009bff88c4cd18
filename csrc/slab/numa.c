/* numa.c - NUMA topology from a sysfs node directory (or a fixture copy), node order per cpu, node-bound mappings. */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "me_slab_numa.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../compat/me_numa.h"

#define FILE_MAX 65536

/* Whole small file into buf (NUL-terminated): length, or -errno. */
static int slurp(const char *dir, const char *name, char *buf, size_t cap)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == cap - 1) {
            close(fd);
            return -EINVAL; /* larger than any such file has reason to be */
        }
    }
    close(fd);
    buf[n] = '\0';
    return (int)n;
}

static int parse_uint(const char **p, uint32_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (uint64_t)(*s++ - '0');
        if (v > UINT32_MAX)
            return -EINVAL;
    }
    *p = s;
    *out = (uint32_t)v;
    return 0;
}

int me_numa_parse_list(const char *s, uint8_t *bits, uint32_t nbits)
{
    memset(bits, 0, (nbits + 7) / 8);
    int set = 0;
    const char *p = s;
    if (*p == '\n' && p[1] == '\0')
        return 0;
    if (*p == '\0')
        return 0;
    for (;;) {
        uint32_t lo, hi;
        if (parse_uint(&p, &lo) < 0)
            return -EINVAL;
        hi = lo;
        if (*p == '-') {
            p++;
            if (parse_uint(&p, &hi) < 0 || hi < lo)
                return -EINVAL;
        }
        if (hi >= nbits)
            return -EINVAL;
        for (uint32_t i = lo; i <= hi; i++) {
            if (!(bits[i / 8] & (1u << (i % 8))))
                set++;
            bits[i / 8] |= (uint8_t)(1u << (i % 8));
        }
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\n')
            p++;
        return *p == '\0' ? set : -EINVAL;
    }
}

static int bit(const uint8_t *bits, uint32_t i)
{
    return bits[i / 8] >> (i % 8) & 1;
}

/* Node ids from `online`, or from the nodeN folders when there is no such file. */
static int node_ids(const char *dir, uint8_t *ids, char *buf)
{
    int n = slurp(dir, "online", buf, FILE_MAX);
    if (n >= 0)
        return me_numa_parse_list(buf, ids, ME_NUMA_MAX_NODES);
    if (n != -ENOENT)
        return n;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    memset(ids, 0, ME_NUMA_MAX_NODES / 8);
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *p = e->d_name;
        uint32_t id;
        if (strncmp(p, "node", 4) || (p += 4, parse_uint(&p, &id) < 0) || *p)
            continue;
        if (id >= ME_NUMA_MAX_NODES) {
            closedir(d);
            return -EINVAL;
        }
        ids[id / 8] |= (uint8_t)(1u << (id % 8));
        count++;
    }
    closedir(d);
    return count;
}

/* Whether node folder `name` has memory, from its meminfo (MemTotal > 0); 1 when it does not say. */
static int meminfo_has_memory(const char *dir, const char *name, char *buf)
{
    char file[64];
    snprintf(file, sizeof file, "%s/meminfo", name);
    if (slurp(dir, file, buf, FILE_MAX) < 0)
        return 1;
    const char *p = strstr(buf, "MemTotal:");
    if (!p)
        return 1;
    p += strlen("MemTotal:");
    while (*p == ' ')
        p++;
    uint32_t kb;
    return parse_uint(&p, &kb) < 0 || kb > 0;
}

int me_numa_read(const char *dir, struct me_numa_topology *t)
{
    char *buf = malloc(FILE_MAX);
    if (!buf)
        return -ENOMEM;
    uint8_t ids[ME_NUMA_MAX_NODES / 8], mem[ME_NUMA_MAX_NODES / 8], cpus[ME_NUMA_MAX_CPUS / 8];
    int rc = node_ids(dir, ids, buf);
    if (rc == 0)
        rc = -ENOENT;
    if (rc < 0)
        goto out;
    memset(t, 0, sizeof *t);
    for (uint32_t i = 0; i < ME_NUMA_MAX_CPUS; i++)
        t->cpu_node[i] = -1;
    for (uint32_t id = 0; id < ME_NUMA_MAX_NODES; id++)
        if (bit(ids, id))
            t->node_id[t->nnodes++] = (int32_t)id;
    int have_mem_file = slurp(dir, "has_memory", buf, FILE_MAX);
    if (have_mem_file >= 0 && (rc = me_numa_parse_list(buf, mem, ME_NUMA_MAX_NODES)) < 0)
        goto out;
    if (have_mem_file < 0 && have_mem_file != -ENOENT) {
        rc = have_mem_file;
        goto out;
    }
    for (uint32_t i = 0; i < t->nnodes; i++) {
        char name[32], file[64];
        snprintf(name, sizeof name, "node%d", t->node_id[i]);
        t->has_memory[i] = (uint8_t)(have_mem_file >= 0 ? bit(mem, (uint32_t)t->node_id[i])
                                                          : meminfo_has_memory(dir, name, buf));
        snprintf(file, sizeof file, "%s/cpulist", name);
        if ((rc = slurp(dir, file, buf, FILE_MAX)) < 0)
            goto out;
        if ((rc = me_numa_parse_list(buf, cpus, ME_NUMA_MAX_CPUS)) < 0)
            goto out;
        for (uint32_t c = 0; c < ME_NUMA_MAX_CPUS; c++) {
            if (!bit(cpus, c))
                continue;
            if (t->cpu_node[c] >= 0) {
                rc = -EINVAL; /* a cpu on two nodes */
                goto out;
            }
            t->cpu_node[c] = (int16_t)i;
            if (c + 1 > t->ncpus)
                t->ncpus = c + 1;
        }
        /* distance: one number per online node, in node order. */
        snprintf(file, sizeof file, "%s/distance", name);
        if ((rc = slurp(dir, file, buf, FILE_MAX)) < 0)
            goto out;
        const char *p = buf;
        for (uint32_t j = 0; j < t->nnodes; j++) {
            uint32_t d;
            while (*p == ' ')
                p++;
            if (parse_uint(&p, &d) < 0 || d > 255 || d == 0) {
                rc = -EINVAL;
                goto out;
            }
            t->distance[i][j] = (uint8_t)d;
        }
        while (*p == ' ' || *p == '\n')
            p++;
        if (*p) {
            rc = -EINVAL; /* more distances than nodes */
            goto out;
        }
    }
    rc = 0;
out:
    free(buf);
    return rc;
}

void me_numa_single(struct me_numa_topology *t)
{
    memset(t, 0, sizeof *t);
    t->nnodes = 1;
    t->ncpus = 0;
    t->node_id[0] = 0;
    t->has_memory[0] = 1;
    t->distance[0][0] = 10;
    for (uint32_t i = 0; i < ME_NUMA_MAX_CPUS; i++)
        t->cpu_node[i] = -1;
}

uint32_t me_numa_order(const struct me_numa_topology *t, int cpu, uint32_t *out, uint32_t max)
{
    int from = (cpu >= 0 && cpu < ME_NUMA_MAX_CPUS) ? t->cpu_node[cpu] : -1;
    uint32_t n = 0;
    if (from >= 0 && t->has_memory[from] && n < max)
        out[n++] = (uint32_t)from;
    /* Selection by (distance, position): nnodes is small. */
    uint8_t used[ME_NUMA_MAX_NODES] = {0};
    if (n)
        used[from] = 1;
    while (n < max) {
        int best = -1;
        for (uint32_t j = 0; j < t->nnodes; j++) {
            if (used[j] || !t->has_memory[j])
                continue;
            if (best < 0 || (from >= 0 && t->distance[from][j] < t->distance[from][best]))
                best = (int)j;
        }
        if (best < 0)
            break;
        used[best] = 1;
        out[n++] = (uint32_t)best;
    }
    return n;
}

int me_numa_map(void **out, size_t len, int node)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    if (node >= 0) {
        int rc = me_numa_bind(p, len, node);
        if (rc < 0) {
            munmap(p, len);
            return rc;
        }
    }
    *out = p;
    return 0;
}

int me_numa_unmap(void *p, size_t len)
{
    return munmap(p, len) ? -errno : 0;
}
