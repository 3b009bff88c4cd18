# Class layout of _frame.Frame, _frame.FrameWriter and _frame.FrameReader.
from mcp_edge.native.includes.me_frame cimport me_frame
from mcp_edge.native.includes.me_frame_io cimport me_frame_reader, me_frame_writer


cdef class Frame:
    cdef me_frame f
    cdef object _ext
    cdef object _payload
    cdef object _obj
    cdef Py_buffer _view
    cdef bint _held
    cdef int _make_views(self) except -1


cdef class FrameWriter:
    cdef me_frame_writer w
    cdef bytearray _header
    cdef tuple _parts  # memoryviews of the header, extensions, inline payload: they hold the bytes in place


cdef class FrameReader:
    cdef me_frame_reader r
    cdef object _pay_arg
    cdef object _ext_arg
    cdef object _ext  # the destinations' memoryviews, cut to the frame's lengths
    cdef object _payload
    cdef int _raise(self, int rc) except -1
    cdef object _dest(self, object arg, Py_ssize_t n)
    cdef int _choose(self) except -1
