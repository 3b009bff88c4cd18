# Declarations of csrc/sys/me_sys.h.


cdef extern from "sys/me_sys.h" nogil:
    int me_sys_set_pdeathsig(int sig)
    int me_sys_get_pdeathsig()
