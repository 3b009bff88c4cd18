# _cpu has no C-level API of its own; wrappers cimport includes/me_cpu.pxd.
