"""Count the heap allocations of a process: an LD_PRELOAD library over glibc's malloc, and its Python side.

``malloc_count.c`` (next to this file) replaces malloc, calloc, realloc, free
and the aligned allocators, forwards each call to glibc (``__libc_malloc`` ...)
and counts it. This module builds it and reads it, two ways:

From outside: run a whole command under the library::

    from malloc_count import run
    report = run([sys.executable, "-c", "..."])
    report.total.calls      # malloc + calloc + realloc calls over the process's life
    report.window.calls     # the same, summed over its begin/end windows (below)
    report.returncode, report.stdout

From inside a process started under the library (``run()``, or any
``subprocess`` given ``env=preload_env()``): count a region of code::

    from malloc_count import window
    with window() as counts:
        hot_loop()
    assert counts.calls == 0  # counts.malloc, .calloc, .realloc, .free

A window counts the calls of every thread of the process while it is open,
and nothing else; ``window()`` raises :class:`NotPreloaded` when the library
is not in the process. To count calls the Python interpreter makes for its
own objects too, run the process with ``preload_env(python_objects=True)``,
which sets ``PYTHONMALLOC=malloc`` (pymalloc serves small objects from its own
arenas, which this library does not see). Opening and closing the window are
ctypes calls: compare against an empty window (:func:`empty_window`) rather
than assume they cost nothing.

The library is built with ``cc`` into this folder the first time (and again
when the source is newer): :func:`library`. It needs glibc (the ``__libc_*``
entry points); the process must end through ``exit`` (not ``os._exit``) for
``run`` to read the counts, which the library writes to the file named by
``MALLOC_COUNT_OUT`` as it unloads. Used by perf/bench_slab.py and
perf/bench_ipc.py for the "zero heap allocations on the hot path" rows.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Counts", "NotPreloaded", "Report", "empty_window", "library", "preload_env", "run", "window"]

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "malloc_count.c"
LIBRARY = HERE / f"libmalloc_count.{platform.machine()}.so"  # per architecture: a cross test run builds its own
OUT_ENV = "MALLOC_COUNT_OUT"


class NotPreloaded(RuntimeError):
    """The counting library is not loaded in this process (start it with ``preload_env()``)."""


@dataclass
class Counts:
    """Calls counted: ``calls`` is malloc + calloc + realloc (the allocations); ``free`` apart."""

    malloc: int = 0
    calloc: int = 0
    realloc: int = 0
    free: int = 0

    @property
    def calls(self) -> int:
        return self.malloc + self.calloc + self.realloc

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.malloc - other.malloc, self.calloc - other.calloc,
                      self.realloc - other.realloc, self.free - other.free)


@dataclass
class Report:
    """What ``run`` saw: the whole process (``total``), its windows (``window``), its exit and output."""

    total: Counts
    window: Counts
    returncode: int
    stdout: str = ""
    stderr: str = field(default="", repr=False)


def library(cc: str | None = None) -> Path:
    """Path of the built library, compiling it first if absent or older than its source.

    RuntimeError naming the compiler's complaint if it cannot be built.
    """
    if LIBRARY.exists() and LIBRARY.stat().st_mtime >= SOURCE.stat().st_mtime:
        return LIBRARY
    compiler = cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise RuntimeError("building the malloc counter needs a C compiler (cc or gcc)")
    fd, tmp = tempfile.mkstemp(prefix=".libmalloc_count.", suffix=".so", dir=HERE)
    os.close(fd)
    try:
        proc = subprocess.run(
            [compiler, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
             "-fvisibility=hidden", "-o", tmp, str(SOURCE)],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"building {SOURCE.name} failed: {proc.stderr.strip()}")
        os.replace(tmp, LIBRARY)  # atomic: a concurrent build never loads half a file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return LIBRARY


def preload_env(env: Mapping[str, str] | None = None, *, python_objects: bool = False,
                out: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the library in LD_PRELOAD, optionally
    ``PYTHONMALLOC=malloc`` and the ``MALLOC_COUNT_OUT`` file."""
    result = dict(os.environ if env is None else env)
    preload = result.get("LD_PRELOAD", "")
    result["LD_PRELOAD"] = str(library()) + (" " + preload if preload else "")
    if python_objects:
        result["PYTHONMALLOC"] = "malloc"
    if out is not None:
        result[OUT_ENV] = os.fspath(out)
    return result


def run(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, python_objects: bool = False,
        timeout: float | None = None, cwd: str | os.PathLike[str] | None = None) -> Report:
    """Run ``cmd`` under the library; its counts, exit status and output.

    RuntimeError if the process left no counts (it crashed, or ended with ``_exit``).
    """
    with tempfile.TemporaryDirectory(prefix="malloc-count-") as tmp:
        out = Path(tmp) / "counts.json"
        proc = subprocess.run(list(cmd), env=preload_env(env, python_objects=python_objects, out=out),
                              capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)
        if not out.exists():
            raise RuntimeError(f"{cmd[0]} left no allocation counts (exit status {proc.returncode}): "
                               f"{proc.stderr.strip()[-500:]}")
        data = json.loads(out.read_text())
    return Report(Counts(**data["total"]), Counts(**data["window"]), proc.returncode, proc.stdout, proc.stderr)


def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL(None)
    try:
        lib.malloc_count_begin  # noqa: B018 - probing for the symbol
    except AttributeError:
        raise NotPreloaded("the malloc counter is not loaded in this process: start it with "
                           "env=malloc_count.preload_env()") from None
    return lib


@contextmanager
def window() -> Iterator[Counts]:
    """Count the allocations of the whole process while the ``with`` block runs."""
    lib = _lib()
    begin, end = lib.malloc_count_begin, lib.malloc_count_end
    buf = (ctypes.c_uint64 * 4)()
    counts = Counts()
    begin()
    try:
        yield counts
    finally:
        end(buf)
        counts.malloc, counts.calloc, counts.realloc, counts.free = (int(v) for v in buf)


def empty_window() -> Counts:
    """The counts of a window with nothing in it: what opening and closing one costs."""
    with window() as counts:
        pass
    return counts


def loaded() -> bool:
    """Whether the library is loaded in this process."""
    try:
        _lib()
    except NotPreloaded:
        return False
    return True
