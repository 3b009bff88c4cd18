# Class layout of _uring.Ring.
from libc.stdint cimport uint64_t
from posix.uio cimport iovec

from mcp_edge.native.includes.me_uring cimport me_ring


cdef class Ring:
    cdef me_ring _r
    cdef bint _open
    cdef dict _pins
    cdef object _buffers
    cdef object _files
    cdef int _ensure_open(self) except -1
    cdef int _space(self) except -1
    cdef int _queued(self, int rc, uint64_t ud, object pin, int op) except -1
    cdef int _register(self, iovec *iov, int n, Py_ssize_t total) except -1
