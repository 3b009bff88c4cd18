# cython: language_level=3
"""Process controls the runtime needs at start, without ctypes."""

from mcp_edge.native._check cimport check
from mcp_edge.native.includes.me_sys cimport me_sys_get_pdeathsig, me_sys_set_pdeathsig


def set_parent_death_signal(int sig):
    """set_parent_death_signal(sig) -> None

    int me_sys_set_pdeathsig(int sig)

    Have the kernel send ``sig`` to this process when its parent dies (0 turns
    it off). OSError(EINVAL) for a signal number that does not exist.
    """
    check(me_sys_set_pdeathsig(sig), "prctl(PR_SET_PDEATHSIG)")


def parent_death_signal():
    """parent_death_signal() -> int

    int me_sys_get_pdeathsig(void)

    The signal set by set_parent_death_signal, 0 if none.
    """
    return check(me_sys_get_pdeathsig(), "prctl(PR_GET_PDEATHSIG)")
