# _sys has no C-level API of its own; wrappers cimport includes/me_sys.pxd.
