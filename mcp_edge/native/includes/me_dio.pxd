# Declarations of csrc/dio/me_dio.h.
from libc.stdint cimport uint32_t


cdef extern from "dio/me_dio.h" nogil:
    int ME_PAGES_AUTO
    int ME_PAGES_4K
    int ME_PAGES_THP
    int ME_PAGES_HUGETLB
    int me_dio_alloc(void **out, size_t size, size_t align)
    void me_dio_free(void *p)
    int me_region_map(void **out, size_t size, int want, int *got, size_t *mapped)
    int me_region_unmap(void *p, size_t mapped)
    size_t me_hugepage_size()
    int me_dio_alignment(int fd, uint32_t *mem_align, uint32_t *offset_align)
