# Declarations of csrc/compat/me_numa.h.


cdef extern from "compat/me_numa.h" nogil:
    int ME_HAVE_NUMA
    int me_numa_kernel()
    int me_numa_bind(void *p, size_t len, int node)
