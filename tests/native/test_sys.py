"""Process controls of mcp_edge.native._sys: each kernel facility exercised for real in a child process."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ci_honesty import require_or_skip

from mcp_edge.native import _sys

ROOT = Path(__file__).resolve().parents[2]


def _child(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter (what it changes cannot be undone) and return its output lines."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\n")[:-1]


def test_parent_death_signal_round_trip() -> None:
    from mcp_edge.native._sys import parent_death_signal, set_parent_death_signal

    code = (
        "from mcp_edge.native._sys import parent_death_signal as g, set_parent_death_signal as s\n"
        "s(15); a = g(); s(0); print(a, g())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["15", "0"]
    with pytest.raises(OSError, match="PR_SET_PDEATHSIG"):
        set_parent_death_signal(999)
    assert parent_death_signal() >= 0


def test_no_new_privs_reads_back_once_set() -> None:
    before, after = _child("""
        import os
        from mcp_edge.native import _sys
        print(_sys.no_new_privs())
        _sys.set_no_new_privs()
        print(_sys.no_new_privs())
        """)
    assert after == "True"
    assert before in ("False", "True")  # an outer sandbox may have set it already; it is never unset


# -- syscall table ------------------------------------------------------------------------------------------


def test_syscall_table_knows_both_architectures() -> None:
    assert _sys.ARCH in ("x86_64", "aarch64")
    # Spot values from the two ABIs (x86_64's own table; aarch64 uses the generic one).
    assert [_sys.syscall_number(n, "x86_64") for n in ("read", "socket", "mkdir", "mkdirat", "getpid")] == \
        [0, 41, 83, 258, 39]
    assert [_sys.syscall_number(n, "aarch64") for n in ("read", "socket", "mkdirat", "openat", "getpid")] == \
        [63, 198, 34, 56, 172]
    assert _sys.syscall_number("mkdir", "aarch64") is None  # legacy calls the generic table dropped
    assert _sys.syscall_number("open", "aarch64") is None
    names = _sys.syscall_names()
    assert list(names) == sorted(names) and len(names) > 300 and "landlock_create_ruleset" in names
    with pytest.raises(ValueError, match="unknown syscall 'frobnicate'"):
        _sys.syscall_number("frobnicate")
    with pytest.raises(ValueError, match="no syscall table for architecture 'mips'"):
        _sys.syscall_number("read", "mips")


def test_native_column_matches_this_systems_headers() -> None:
    """Every number the table gives for this machine's architecture is the one <sys/syscall.h> defines."""
    # $CC first: under qemu-user (tools/aarch64/test.sh) it is the cross compiler, whose headers are this
    # machine's; a bare gcc there is the host's.
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    assert cc, "the build needs a C compiler; so does this check"
    names = _sys.syscall_names()
    probe = "#include <sys/syscall.h>\n" + "".join(f"ME_NR {n} __NR_{n}\n" for n in names)
    out = subprocess.run([cc, "-E", "-P", "-x", "c", "-"], input=probe, capture_output=True, text=True, check=True)
    header: dict[str, int | None] = {}
    for line in out.stdout.splitlines():
        m = re.fullmatch(r"ME_NR (\w+) \(?(\d+|__NR_\w+)\)?", line.strip())
        if m:
            header[m.group(1)] = int(m.group(2)) if m.group(2).isdigit() else None
    assert len(header) == len(names)
    mismatched = {n: (header[n], _sys.syscall_number(n)) for n in names
                  if header[n] is not None and header[n] != _sys.syscall_number(n)}
    assert mismatched == {}
    # And a call the headers define is never missing from the table's column.
    assert [n for n in names if header[n] is not None and _sys.syscall_number(n) is None] == []


# -- seccomp ------------------------------------------------------------------------------------------------


def test_seccomp_denies_the_listed_calls_with_the_errno_and_runs_the_rest() -> None:
    try:
        _sys.seccomp_probe()
    except OSError as exc:
        require_or_skip("seccomp", f"this kernel has no seccomp filters: {exc}")
    lines = _child("""
        import errno, os, socket, tempfile, threading
        from mcp_edge.native import _sys
        d = tempfile.mkdtemp()
        _sys.set_no_new_privs()
        nrs = [_sys.syscall_number(n) for n in ("mkdir", "mkdirat", "socket")]
        started = threading.Event()
        def other():
            started.wait()
            try:
                os.mkdir(os.path.join(d, "from-thread"))
                print("thread mkdir ok")
            except OSError as e:
                print("thread mkdir", errno.errorcode[e.errno])
        t = threading.Thread(target=other); t.start()
        _sys.seccomp_deny([n for n in nrs if n is not None], errno.EPERM)
        started.set(); t.join()
        for what, call in (("mkdir", lambda: os.mkdir(os.path.join(d, "x"))),
                           ("socket", lambda: socket.socket(socket.AF_UNIX))):
            try:
                call()
                print(what, "ok")
            except OSError as e:
                print(what, errno.errorcode[e.errno])
        print("getpid", os.getpid() > 0)
        with open(os.path.join(d, "f"), "w") as f:
            print("write", f.write("x"))
        """)
    # TSYNC: the thread that existed before the filter is filtered too.
    assert lines == ["thread mkdir EPERM", "mkdir EPERM", "socket EPERM", "getpid True", "write 1"]


def test_seccomp_other_errno_and_bad_arguments() -> None:
    try:
        _sys.seccomp_probe()
    except OSError as exc:
        require_or_skip("seccomp", f"this kernel has no seccomp filters: {exc}")
    lines = _child("""
        import errno, os
        from mcp_edge.native import _sys
        for bad in ([-1], list(range(_sys.SECCOMP_MAX_DENY + 1))):
            try:
                _sys.seccomp_deny(bad)
            except ValueError as e:
                print("ValueError", str(e).split(",")[0])
        try:
            _sys.seccomp_deny([], 5000)
        except OSError as e:
            print("OSError", errno.errorcode[e.errno])
        _sys.set_no_new_privs()
        _sys.seccomp_deny([_sys.syscall_number("getcwd")], errno.ENOSYS)
        try:
            os.getcwd()
        except OSError as e:
            print("getcwd", errno.errorcode[e.errno])
        print("getpid", os.getpid() > 0)
        """)
    assert lines == ["ValueError syscall numbers are not negative",
                     f"ValueError a seccomp filter denies at most {_sys.SECCOMP_MAX_DENY} syscalls",
                     "OSError EINVAL", "getcwd ENOSYS", "getpid True"]


# -- Landlock -----------------------------------------------------------------------------------------------


def _landlock_abi() -> int:
    try:
        return _sys.landlock_abi()
    except OSError as exc:
        assert exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP), exc
        return 0


def test_landlock_rights_by_abi() -> None:
    assert _sys.landlock_fs_rights(0) == 0
    assert _sys.landlock_fs_rights(1) == (1 << 13) - 1
    assert _sys.landlock_fs_rights(2) == (1 << 14) - 1
    assert _sys.landlock_fs_rights(3) == _sys.landlock_fs_rights(4) == (1 << 15) - 1
    assert _sys.landlock_fs_rights(5) == _sys.landlock_fs_rights(7) == (1 << 16) - 1
    assert _sys.landlock_net_rights(3) == 0 and _sys.landlock_net_rights(4) == 0b11
    assert _sys.LANDLOCK_READ_RIGHTS == 0b1101  # execute, read_file, read_dir


def test_landlock_limits_the_filesystem_to_its_rules(tmp_path: Path) -> None:
    abi = _landlock_abi()
    if not abi:
        require_or_skip("landlock", "this kernel has no Landlock (the 'not available' path is tested in tests/system)")
    inside, rw, outside = tmp_path / "inside", tmp_path / "rw", tmp_path / "outside"
    for d in (inside, rw, outside):
        d.mkdir()
        (d / "f").write_text(d.name)
    lines = _child(f"""
        import errno, os, sys
        from mcp_edge.native import _sys
        abi = _sys.landlock_abi()
        fs = _sys.landlock_fs_rights(abi)
        fd = _sys.landlock_create(fs)
        for p in [*sys.path, sys.base_prefix, {str(inside)!r}]:
            if os.path.isabs(p) and os.path.exists(p):
                _sys.landlock_allow_path(fd, p, _sys.LANDLOCK_READ_RIGHTS)
        _sys.landlock_allow_path(fd, {str(rw)!r}, fs)
        _sys.landlock_allow_path(fd, {str(rw / "f")!r}, fs)  # a file: narrowed to the rights a file can have
        try:
            _sys.landlock_allow_path(fd, {str(tmp_path / "nope")!r}, fs)
        except FileNotFoundError as e:
            print("missing", "nope" in str(e))
        _sys.set_no_new_privs()
        _sys.landlock_restrict(fd)
        os.close(fd)
        for path, mode in (({str(inside / "f")!r}, "r"), ({str(rw / "f")!r}, "a"), ({str(outside / "f")!r}, "r"),
                           ({str(inside / "g")!r}, "w")):
            try:
                with open(path, mode):
                    print(os.path.basename(os.path.dirname(path)), mode, "ok")
            except OSError as e:
                print(os.path.basename(os.path.dirname(path)), mode, errno.errorcode[e.errno])
        """)
    assert lines == ["missing True", "inside r ok", "rw a ok", "outside r EACCES", "inside w EACCES"]


def test_landlock_restrict_without_no_new_privs_needs_privilege() -> None:
    """Without no_new_privs only CAP_SYS_ADMIN may restrict itself: EPERM otherwise, never silently nothing."""
    if not _landlock_abi():
        require_or_skip("landlock", "this kernel has no Landlock")
    lines = _child("""
        import os
        from mcp_edge.native import _sys
        fd = _sys.landlock_create(_sys.landlock_fs_rights(_sys.landlock_abi()))
        if os.geteuid() == 0:  # root keeps CAP_SYS_ADMIN: become nobody, which drops it
            os.setgroups([]); os.setgid(65534); os.setuid(65534)
        try:
            _sys.landlock_restrict(fd)
            print("restricted")
        except PermissionError as e:
            print("EPERM", "landlock_restrict_self" in str(e))
        """)
    assert lines == ["EPERM True"]


_FAULTS = """
import resource, sys
from mcp_edge.native._sys import set_malloc_thresholds
taken = set_malloc_thresholds(int(sys.argv[1]), int(sys.argv[2])) if sys.argv[1] != "-" else None
src = b"x" * (1 << 20)
def one():  # what a 1 MiB answer does in the runtime: a copy, and the line around it while the copy lives
    a = bytes(bytearray(src))
    return len(a + b"\\n")
for _ in range(5):
    one()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    one()
print(taken, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 100)
"""


def test_the_heap_keeps_memory_for_the_next_large_message() -> None:
    import dataclasses

    from mcp_edge.board import Settings
    from mcp_edge.cli import tune_malloc

    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    mmap, keep = defaults["malloc_mmap_threshold"], defaults["malloc_keep"]

    def run(*args: str) -> tuple[str, float]:
        out = subprocess.run([sys.executable, "-c", _FAULTS, *args], capture_output=True, text=True,
                             cwd=ROOT)  # importable from the checkout (the cross run installs nothing)
        assert out.returncode == 0, out.stderr
        taken, faults = out.stdout.split()
        return taken, float(faults)

    taken, tuned = run(str(mmap), str(keep))  # the defaults: 4 MiB and 8 MiB
    _, untuned = run("-", "-")  # the C library's own thresholds
    # The server's own call never raises, whatever the C library says (only these two settings are read).
    import types

    tune_malloc(types.SimpleNamespace(malloc_mmap_threshold=mmap, malloc_keep=keep))  # type: ignore[arg-type]
    if taken != "True":  # not glibc's malloc (musl, a sanitizer's): said so, and nothing else changed
        assert taken == "False"
        return
    # The pages are reused: no fresh page per 4 KiB of each message. (With glibc's own thresholds the same loop
    # faults each page of each message natively, about 736 per round here; qemu-user does not show those.)
    assert tuned < 8, (tuned, untuned)
