# Class layouts of _dio, for wrappers that cimport them (_uring registers pools).
from posix.uio cimport iovec


cdef class _Memory:
    cdef void *_ptr
    cdef Py_ssize_t _size
    cdef int _exports
    cdef int _usable(self) except -1


cdef class AlignedBuffer(_Memory):
    cdef size_t _align


cdef class BufferPool:
    cdef void *_base
    cdef size_t _mapped
    cdef int _kind
    cdef Py_ssize_t _count
    cdef Py_ssize_t _size
    cdef size_t _align
    cdef list _free
    cdef list _buffers
    cdef int fill_iovecs(self, iovec *out) except -1


cdef class PoolBuffer(_Memory):
    cdef BufferPool _pool
    cdef Py_ssize_t _index
