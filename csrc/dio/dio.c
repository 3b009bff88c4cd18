/* dio.c - aligned allocations, hugepage-backed regions and the O_DIRECT alignment of a file. */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "me_dio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/stat.h>

int me_dio_alloc(void **out, size_t size, size_t align)
{
    if (size == 0 || align < sizeof(void *) || (align & (align - 1)))
        return -EINVAL;
    void *p = NULL;
    int rc = posix_memalign(&p, align, size);
    if (rc)
        return -rc;
    memset(p, 0, size);
    *out = p;
    return 0;
}

void me_dio_free(void *p)
{
    free(p);
}

size_t me_hugepage_size(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Hugepagesize: %zu kB", &kib) == 1)
            break;
    fclose(f);
    return kib * 1024;
}

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

int me_region_map(void **out, size_t size, int want, int *got, size_t *mapped)
{
    if (size == 0)
        return -EINVAL;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t huge = me_hugepage_size();
    int prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS;
    void *p;
    if ((want == ME_PAGES_AUTO || want == ME_PAGES_HUGETLB) && huge) {
        size_t len = round_up(size, huge);
        p = mmap(NULL, len, prot, flags | MAP_HUGETLB | MAP_POPULATE, -1, 0);
        if (p != MAP_FAILED) {
            *out = p, *got = ME_PAGES_HUGETLB, *mapped = len;
            return 0;
        }
        if (want == ME_PAGES_HUGETLB)
            return -errno;
    } else if (want == ME_PAGES_HUGETLB) {
        return -ENOTSUP;
    }
    size_t align = (want != ME_PAGES_4K && huge) ? huge : page;
    size_t len = round_up(size, page);
    /* Over-map so the region can start on a hugepage boundary, then trim. */
    size_t span = len + (align > page ? align : 0);
    p = mmap(NULL, span, prot, flags, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    uintptr_t start = round_up((uintptr_t)p, align);
    if (start > (uintptr_t)p)
        munmap(p, start - (uintptr_t)p);
    size_t tail = (uintptr_t)p + span - (start + len);
    if (tail)
        munmap((void *)(start + len), tail);
    p = (void *)start;
    int kind = ME_PAGES_4K;
#ifdef MADV_HUGEPAGE
    if (want != ME_PAGES_4K && huge && len >= huge && madvise(p, len, MADV_HUGEPAGE) == 0)
        kind = ME_PAGES_THP;
#endif
    if (want == ME_PAGES_THP && kind != ME_PAGES_THP) {
        munmap(p, len);
        return -ENOTSUP;
    }
    *out = p, *got = kind, *mapped = len;
    return 0;
}

int me_region_unmap(void *p, size_t mapped)
{
    return munmap(p, mapped) ? -errno : 0;
}

int me_dio_alignment(int fd, uint32_t *mem_align, uint32_t *offset_align)
{
#if defined(SYS_statx) && defined(STATX_DIOALIGN)
    struct statx stx;
    memset(&stx, 0, sizeof stx);
    if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) != 0)
        return errno == ENOSYS ? -EOPNOTSUPP : -errno;
    if (!(stx.stx_mask & STATX_DIOALIGN) || stx.stx_dio_mem_align == 0)
        return -EOPNOTSUPP;
    *mem_align = stx.stx_dio_mem_align;
    *offset_align = stx.stx_dio_offset_align;
    return 0;
#else
    (void)fd, (void)mem_align, (void)offset_align;
    return -EOPNOTSUPP;
#endif
}
