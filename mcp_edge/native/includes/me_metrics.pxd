# Declarations of csrc/metrics/me_metrics.h.
from libc.stdint cimport uint32_t, uint64_t


cdef extern from "metrics/me_metrics.h" nogil:
    enum:
        ME_METER_CALLS
        ME_METER_ERRORS
        ME_METER_REFUSED
        ME_METER_SUM_NS
        ME_METER_FIXED
        ME_METER_MAX_SERIES
        ME_METER_MAX_BOUNDS

    ctypedef struct me_meter:
        uint32_t series
        uint32_t nbounds
        uint32_t stride
        uint64_t *bounds
        uint64_t *cells

    int me_meter_init(me_meter *m, uint32_t series, const uint64_t *bounds, uint32_t nbounds)
    void me_meter_free(me_meter *m)
    int me_meter_record(me_meter *m, uint32_t slot, uint64_t ns, int error)
    int me_meter_refuse(me_meter *m, uint32_t slot)
    int me_meter_read(const me_meter *m, uint32_t slot, uint64_t *out)
    int me_meter_clear(me_meter *m, uint32_t slot)
