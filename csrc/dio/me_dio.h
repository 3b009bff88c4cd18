/* me_dio.h - aligned buffers and page-backed regions for O_DIRECT I/O. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_DIO_H
#define MCP_EDGE_ME_DIO_H

#include <stddef.h>
#include <stdint.h>

/* Page kinds a region can be backed by. */
#define ME_PAGES_AUTO    (-1)
#define ME_PAGES_4K      0
#define ME_PAGES_THP     1 /* transparent hugepages, asked for with madvise */
#define ME_PAGES_HUGETLB 2 /* reserved hugepages, MAP_HUGETLB */

/* Zeroed memory of `size` bytes aligned to `align` (a power of two >= 8) in *out.
   0, -EINVAL (bad alignment or size 0) or -ENOMEM. Free with me_dio_free(). */
int me_dio_alloc(void **out, size_t size, size_t align);
void me_dio_free(void *p);

/* Map an anonymous region of `size` bytes backed by `want` pages; with
   ME_PAGES_AUTO try hugetlb, then THP, then 4 KiB pages. The kind used goes to
   *got and the mapped length (size rounded up to the page size) to *mapped.
   0 or -errno (ENOMEM when `want` hugetlb pages are not available). */
int me_region_map(void **out, size_t size, int want, int *got, size_t *mapped);
int me_region_unmap(void *p, size_t mapped);

/* Size of a reserved hugepage (from /proc/meminfo), 0 if unknown. */
size_t me_hugepage_size(void);

/* Direct-I/O alignment of an open file from statx(STATX_DIOALIGN): memory and
   file-offset alignment in bytes. 0; -EOPNOTSUPP when the kernel or the
   filesystem does not report it (the caller falls back); -errno otherwise. */
int me_dio_alignment(int fd, uint32_t *mem_align, uint32_t *offset_align);

#endif /* MCP_EDGE_ME_DIO_H */
