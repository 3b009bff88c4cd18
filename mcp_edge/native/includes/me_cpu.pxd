# Declarations of csrc/cpu/me_cpu.h.
from libc.stdint cimport uint32_t


cdef extern from "cpu/me_cpu.h" nogil:
    int ME_CPU_FEATURE_COUNT
    int ME_LEVEL_COUNT
    uint32_t me_cpu_features()
    const char *me_cpu_feature_name(int bit)
    const char *me_cpu_level_name(int level)
    int me_cpu_level_from_name(const char *name)
    int me_cpu_level_runnable(int level)
    int me_cpu_best_level()
    int me_cpu_best_level_for(uint32_t features, int aarch64)
