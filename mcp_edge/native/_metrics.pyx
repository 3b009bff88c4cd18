# cython: language_level=3
"""The request meter of the runtime's hot path (csrc/metrics): per series call, error and refusal counts, the
sum of durations and a latency histogram in C counters, read by the metrics exposition at scrape time."""

from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, malloc

from mcp_edge.native._check cimport check
from mcp_edge.native.includes.me_metrics cimport (
    ME_METER_MAX_BOUNDS,
    ME_METER_MAX_SERIES,
    me_meter,
    me_meter_clear,
    me_meter_free,
    me_meter_init,
    me_meter_read,
    me_meter_record,
    me_meter_refuse,
)

MAX_SERIES = ME_METER_MAX_SERIES
MAX_BOUNDS = ME_METER_MAX_BOUNDS


cdef class Meter:
    """Meter(series, bounds_ns)

    ``series`` rows (1 .. MAX_SERIES) of counters, each with a histogram whose buckets end at ``bounds_ns``
    (1 .. MAX_BOUNDS strictly ascending nanosecond bounds) and a last +Inf bucket. A row is a slot number.
    """

    cdef me_meter m

    def __cinit__(self, unsigned int series, bounds_ns):
        cdef list bounds = [int(b) for b in bounds_ns]
        cdef uint32_t n = len(bounds)
        if n == 0 or n > ME_METER_MAX_BOUNDS:
            raise ValueError(f"a meter needs 1 to {ME_METER_MAX_BOUNDS} histogram bounds, got {n}")
        if series == 0 or series > ME_METER_MAX_SERIES:
            raise ValueError(f"a meter needs 1 to {ME_METER_MAX_SERIES} series, got {series}")
        if any(b <= 0 for b in bounds) or any(b <= a for a, b in zip(bounds, bounds[1:])):
            raise ValueError("histogram bounds must be positive and strictly ascending")
        cdef uint64_t *buf = <uint64_t *>malloc(sizeof(uint64_t) * n)
        if buf == NULL:
            raise MemoryError()
        try:
            for i in range(n):
                buf[i] = bounds[i]
            check(me_meter_init(&self.m, series, buf, n), "meter")
        finally:
            free(buf)

    def __dealloc__(self):
        me_meter_free(&self.m)

    @property
    def series(self):
        """Rows of the meter."""
        return self.m.series

    @property
    def bounds_ns(self):
        """The histogram's upper bounds in nanoseconds (the +Inf bucket after them)."""
        return tuple(self.m.bounds[i] for i in range(self.m.nbounds))

    def record(self, uint32_t slot, uint64_t ns, bint error):
        """record(slot, ns, error) -> None

        Count a call of row ``slot`` that ran for ``ns`` nanoseconds (``error``: it failed). IndexError for a
        slot past the last row."""
        if me_meter_record(&self.m, slot, ns, error) < 0:
            raise IndexError(f"meter slot {slot} out of range (0..{self.m.series - 1})")

    def refuse(self, uint32_t slot):
        """refuse(slot) -> None

        Count a call of row ``slot`` refused before it ran. IndexError for a slot past the last row."""
        if me_meter_refuse(&self.m, slot) < 0:
            raise IndexError(f"meter slot {slot} out of range (0..{self.m.series - 1})")

    def read(self, uint32_t slot):
        """read(slot) -> (calls, errors, refused, sum_ns, buckets)

        Row ``slot`` now: ``buckets`` holds each bucket's own count (not cumulative), the +Inf one last."""
        cdef uint64_t *row = <uint64_t *>malloc(sizeof(uint64_t) * self.m.stride)
        if row == NULL:
            raise MemoryError()
        try:
            if me_meter_read(&self.m, slot, row) < 0:
                raise IndexError(f"meter slot {slot} out of range (0..{self.m.series - 1})")
            return (row[0], row[1], row[2], row[3], tuple(row[4 + i] for i in range(self.m.nbounds + 1)))
        finally:
            free(row)

    def clear(self, uint32_t slot):
        """clear(slot) -> None

        Zero row ``slot``. IndexError for a slot past the last row."""
        if me_meter_clear(&self.m, slot) < 0:
            raise IndexError(f"meter slot {slot} out of range (0..{self.m.series - 1})")
