# Class layout of _frame.Frame.
from mcp_edge.native.includes.me_frame cimport me_frame


cdef class Frame:
    cdef me_frame f
    cdef object _ext
    cdef object _payload
