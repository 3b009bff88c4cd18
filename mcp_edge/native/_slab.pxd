# Class layouts of _slab, for wrappers that cimport them (the shared-memory rings build arenas in segments).
from cpython.buffer cimport Py_buffer
from libc.stdint cimport int64_t, uint32_t

from mcp_edge.native.includes.me_slab_numa cimport me_numa_topology


cdef class _Source:
    cdef Py_ssize_t _exports
    cdef Py_ssize_t _live
    cdef bint _closed
    cdef uint32_t _nclasses
    cdef uint32_t _sizes[16]
    cdef uint32_t _counts[16]
    cdef int _class_of(self, Py_ssize_t n) except -1
    cdef int _usable(self) except -1


cdef class Arena(_Source):
    cdef Py_buffer _buf
    cdef bint _have_buf
    cdef void *_base
    cdef size_t _len
    cdef bint _cache
    cdef Block _alloc(self, Py_ssize_t n, uint32_t owner)


cdef class Pool(_Source):
    cdef void *_arenas[64]
    cdef size_t _arena_len
    cdef int _node_ids[64]
    cdef int _narenas
    cdef bint _bound
    cdef uint32_t *_order
    cdef int _order_rows
    cdef me_numa_topology *_topo
    cdef Block _try_alloc(self, int cls, Py_ssize_t n)
    cdef void _unmap(self) noexcept


cdef class Block:
    cdef _Source _owner
    cdef void *_arena
    cdef char *_ptr
    cdef int64_t _off
    cdef Py_ssize_t _size
    cdef uint32_t _capacity
    cdef int _exports
    cdef int _node
    cdef bint _held
    cdef bint _cached


cdef Block make_block(_Source owner, void *arena, int64_t off, Py_ssize_t size, uint32_t capacity, int node,
                      bint cached)
