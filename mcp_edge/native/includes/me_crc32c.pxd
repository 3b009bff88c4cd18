# Declarations of csrc/crc32c/me_crc32c.h.
from libc.stdint cimport uint32_t, uint64_t, uintptr_t


cdef extern from "crc32c/me_crc32c.h" nogil:
    uint32_t me_crc32c(uint32_t crc, const void *buf, size_t len)
    int me_crc32c_set_level(int level)
    int me_crc32c_level()
    int me_crc32c_active()
    int me_crc32c_kernel_count()
    const char *me_crc32c_kernel_name(int kernel)
    const char *me_crc32c_kernel_detail(int kernel)
    int me_crc32c_kernel_level(int kernel)
    uint32_t me_crc32c_kernel_needs(int kernel)
    int me_crc32c_kernel_runnable(int kernel)
    int me_crc32c_level_kernel(int level)
    uintptr_t me_crc32c_active_kernel()
    uintptr_t me_crc32c_kernel_address(int kernel)
    int me_crc32c_variant(int kernel, uint32_t crc, const void *buf, size_t len, uint32_t *out)
    uint32_t me_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
