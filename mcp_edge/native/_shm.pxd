# Class layouts of _shm: segments, the producer and consumer ends of a ring, loans and received frames.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

from mcp_edge.native.includes.me_frame cimport me_frame
from mcp_edge.native.includes.me_shm cimport me_chan_consumer, me_chan_producer, me_shm_info


cdef class Segment:
    cdef int _fd
    cdef void *_base
    cdef size_t _len
    cdef me_shm_info _info
    cdef object _name
    cdef Py_ssize_t _exports


cdef class Loan:
    cdef Producer _owner
    cdef uint64_t _off
    cdef Py_ssize_t _size
    cdef Py_ssize_t _exports
    cdef bint _live


cdef class Frame:
    cdef me_frame f
    cdef Consumer _owner
    cdef uint8_t *_ptr
    cdef object _view
    cdef Py_ssize_t _exports
    cdef bint _live
    cdef bint _pending
    cdef int _give_back(self) except -1


cdef class _End:
    cdef Segment _hub
    cdef int64_t _spin_setting
    cdef int64_t _spin
    cdef int64_t _spin_checked
    cdef int64_t _peer_checked
    cdef int _efd
    cdef bint _closed
    cdef object _sticky
    cdef object _on_close
    cdef int _usable(self) except -1
    cdef void _decide_spin(self, int pid) noexcept


cdef class Producer(_End):
    cdef me_chan_producer _p
    cdef Segment _own
    cdef int _peer_pid
    cdef int _peer_pidfd
    cdef bint _peer
    cdef uint32_t _slot
    cdef uint32_t _since_check
    cdef list _loans
    cdef Py_ssize_t _next_loan
    cdef Loan _new_loan(self, uint64_t off, Py_ssize_t size)
    cdef int _check_peer(self, bint force) except -1
    cdef int _wait(self, bint space, double timeout, uint32_t size) except -1
    cdef int64_t _loan(self, Py_ssize_t size, object timeout) except -2
    cdef Loan _loan_of(self, object view)
    cdef int _publish(self, Loan loan, Py_ssize_t n, int type, uint64_t id, bint end, object timeout) except -1


cdef class Consumer(_End):
    cdef me_chan_consumer *_c
    cdef list _segs
    cdef int _pid[65]
    cdef int _pidfd[65]
    cdef uint64_t _closed_at[65]
    cdef bint _mpsc
    cdef list _frames
    cdef Py_ssize_t _next_frame
    cdef list _deaths
    cdef Frame _take_frame(self)
    cdef Frame _poll(self)
    cdef int _check_peers(self, bint force) except -1
    cdef int _scan_peers(self, bint force) except -1
    cdef int _wait(self, double timeout) except -1
