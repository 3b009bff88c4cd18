# Class layout of _frame.Frame.
from mcp_edge.native.includes.me_frame cimport me_frame


cdef class Frame:
    cdef me_frame f
    cdef object _ext
    cdef object _payload
    cdef object _obj
    cdef Py_buffer _view
    cdef bint _held
    cdef int _make_views(self) except -1
