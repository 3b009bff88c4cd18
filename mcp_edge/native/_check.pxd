# The one error contract of the C core: rc >= 0, or -errno -> OSError subclass.
from libc.string cimport strerror


cdef inline int check(int rc, str what) except -1:
    """Raise OSError(-rc) naming `what` when rc < 0; Python picks the subclass
    (FileNotFoundError, BlockingIOError...) from the errno."""
    if rc < 0:
        raise OSError(-rc, f"{what}: {strerror(-rc).decode()}")
    return rc
