"""The pure helpers of perf/bench_io.py: fio's JSON, fio's command line, offsets, short reads, mounts.

No I/O and no timing here: the bench itself runs under ``mcp-edge perf``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import mcp_edge
from mcp_edge.perf.harness import load_bench

BENCH = Path(mcp_edge.__file__).resolve().parents[1] / "perf" / "bench_io.py"

pytestmark = pytest.mark.skipif(not BENCH.is_file(), reason="perf/bench_io.py is not in this checkout")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("io", BENCH)


def _case(bench: ModuleType, name: str) -> Any:
    return next(c for c in bench.CASES if c.name == name)


def _fio_job(name: str = "mcp-edge-io", *, ios: int = 1000, runtime_ms: int = 500, iops: float = 2000.0,
             bw: float = 8.192e6, error: int = 0) -> dict[str, Any]:
    return {"jobname": name, "error": error,
            "read": {"total_ios": ios, "runtime": runtime_ms, "iops": iops, "bw_bytes": bw, "io_bytes": ios * 4096},
            "write": {"total_ios": 0, "runtime": 0, "iops": 0.0, "bw_bytes": 0}}


def _fio_output(*jobs: dict[str, Any]) -> str:
    return json.dumps({"fio version": "fio-3.33", "jobs": list(jobs)}, indent=2)


# -- cases ------------------------------------------------------------------------------------------------


def test_cases_are_the_issue_s_five(bench: ModuleType) -> None:
    assert [c.name for c in bench.CASES] == [
        "rand4k-qd1-direct", "rand4k-qd32-direct", "seq128k-qd32-direct", "rand4k-qd32-buffered",
        "seq128k-qd32-buffered"]
    for c in bench.CASES:
        assert c.name.startswith("seq128k" if c.sequential else "rand4k")
        assert c.block == (128 << 10 if c.sequential else 4 << 10)
        assert f"-qd{c.depth}-" in c.name
        assert c.name.endswith("-direct" if c.direct else "-buffered")
        assert c.slots >= 2 * c.depth
        assert c.batch >= 64 * c.depth


def test_impl_names(bench: ModuleType) -> None:
    assert bench.IMPLS == ("mcp_edge[uring]", "mcp_edge[uring-async]", "mcp_edge[threads]", "os.preadv", "liburing",
                           "fio[io_uring]", "fio[psync]")


# -- offsets ----------------------------------------------------------------------------------------------


def test_random_offsets_are_aligned_in_range_and_seeded(bench: ModuleType) -> None:
    case = _case(bench, "rand4k-qd32-direct")
    offs = bench.case_offsets(case, file_size=1 << 24, count=5000)
    assert len(offs) == 5000
    assert all(o % 4096 == 0 and 0 <= o <= (1 << 24) - 4096 for o in offs)
    assert offs == bench.case_offsets(case, file_size=1 << 24, count=5000)
    assert offs != bench.case_offsets(case, file_size=1 << 24, count=5000, seed=1)
    assert len(set(offs)) > 1000  # spread over the file, not stuck
    assert min(offs) < (1 << 22) and max(offs) > (3 << 22)


def test_sequential_offsets_walk_the_whole_file(bench: ModuleType) -> None:
    case = _case(bench, "seq128k-qd32-direct")
    offs = bench.case_offsets(case, file_size=1 << 20)
    assert offs == [i * (128 << 10) for i in range(8)]


def test_offsets_need_a_block(bench: ModuleType) -> None:
    with pytest.raises(ValueError, match="holds no"):
        bench.case_offsets(_case(bench, "seq128k-qd32-direct"), file_size=4096)


def test_check_offsets_spread(bench: ModuleType) -> None:
    offs = list(range(0, 1000 * 4096, 4096))
    picked = bench.check_offsets(offs, 10)
    assert picked == [offs[i * 100] for i in range(10)]
    assert bench.check_offsets(offs[:5], 10) == offs[:5]


def test_cursor_wraps_and_continues(bench: ModuleType) -> None:
    cur = bench.OffsetCursor([0, 1, 2, 3, 4])
    assert cur.take(3) == [0, 1, 2]
    assert cur.take(4) == [3, 4, 0, 1]
    assert cur.take(11) == [2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2]
    it = bench.OffsetCursor([7, 8]).cycle()
    assert [next(it) for _ in range(5)] == [7, 8, 7, 8, 7]
    with pytest.raises(ValueError):
        bench.OffsetCursor([])


# -- short reads ------------------------------------------------------------------------------------------


def test_short_reads(bench: ModuleType) -> None:
    assert bench.short_reads([4096, 4096], 4096, [0, 4096]) is None
    assert bench.short_reads([4096, 100], 4096, [0, 8192]) == "read of 4096 bytes at offset 8192 gave 100 bytes"
    assert "error 22" in bench.short_reads([-22], 4096, [4096])
    assert bench.short_reads([4096], 4096, [0, 4096]) == "1 results for 2 reads"


# -- fio ---------------------------------------------------------------------------------------------------


def test_parse_fio_json(bench: ModuleType) -> None:
    res = bench.parse_fio_json(_fio_output(_fio_job()))
    assert (res.ios, res.runtime_s, res.iops, res.bw_bytes, res.version) == (1000, 0.5, 2000.0, 8.192e6, "fio-3.33")


def test_parse_fio_json_skips_warnings_and_sums_jobs(bench: ModuleType) -> None:
    text = "fio: file hash not empty on exit\nnote: both iodepth >= 1 and synchronous I/O engine are selected\n"
    text += _fio_output(_fio_job("a"), _fio_job("b", ios=500, runtime_ms=600, iops=1000.0, bw=4.096e6))
    text += "\n<trailing junk>"
    res = bench.parse_fio_json(text)
    assert res.ios == 1500
    assert res.runtime_s == 0.6
    assert res.iops == 3000.0
    assert res.bw_bytes == pytest.approx(12.288e6)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("fio: engine io_uring not loadable\n", "no JSON"),
        ('{"jobs": [', "malformed"),
        (json.dumps({"jobs": []}), "no jobs"),
        (_fio_output(_fio_job(error=5)), "error 5"),
        (_fio_output(_fio_job(ios=0)), "no reads"),
    ],
)
def test_parse_fio_json_errors(bench: ModuleType, text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bench.parse_fio_json(text)


def test_fio_command(bench: ModuleType) -> None:
    path = Path("/data/io-1GiB.bin")
    cmd = bench.fio_command("fio", path, _case(bench, "rand4k-qd32-direct"), "io_uring", 1.2)
    assert cmd[0] == "fio"
    for arg in ("--filename=/data/io-1GiB.bin", "--rw=randread", "--bs=4096", "--ioengine=io_uring", "--iodepth=32",
                "--direct=1", "--invalidate=0", "--norandommap", "--time_based", "--runtime=1200ms",
                "--output-format=json", "--readonly", "--numjobs=1"):
        assert arg in cmd
    seq = bench.fio_command("fio", path, _case(bench, "seq128k-qd32-buffered"), "psync", 0.5)
    for arg in ("--rw=read", "--bs=131072", "--ioengine=psync", "--iodepth=1", "--direct=0", "--runtime=500ms"):
        assert arg in seq
    assert not any(a.startswith("--sqthread_poll") for a in cmd + seq)


# -- mounts -----------------------------------------------------------------------------------------------

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:21 / /proc rw,nosuid shared:2 - proc proc rw
24 22 0:22 / /tmp rw,nosuid shared:3 - tmpfs tmpfs rw
25 22 254:16 / /srv/my\\040data rw,relatime shared:4 - xfs /dev/vdb rw
26 24 0:23 / /tmp/disk rw shared:5 - ext4 /dev/vdc rw
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/work/main/build/perf/io-1GiB.bin", ("/", "ext4", "/dev/vda")),
        ("/tmp/io-1GiB.bin", ("/tmp", "tmpfs", "tmpfs")),
        ("/tmpfoo/x", ("/", "ext4", "/dev/vda")),
        ("/tmp/disk/x", ("/tmp/disk", "ext4", "/dev/vdc")),
        ("/srv/my data/x", ("/srv/my data", "xfs", "/dev/vdb")),
    ],
)
def test_mount_of(bench: ModuleType, path: str, expected: tuple[str, str, str]) -> None:
    assert bench.mount_of(Path(path), MOUNTINFO) == expected


def test_memory_filesystems_are_refused(bench: ModuleType) -> None:
    assert {"tmpfs", "ramfs"} <= bench.MEMORY_FILESYSTEMS
    assert "ext4" not in bench.MEMORY_FILESYSTEMS


# -- peers in child processes -------------------------------------------------------------------------------

SIGILL_LIBURING = (
    "import os, signal\nclass Ring:\n    def __init__(self):\n        os.kill(os.getpid(), signal.SIGILL)\n"
)

FAKE_HOST = '''
import os, signal


class Host:
    """Reads like liburing would (os.pread), then dies of SIGILL when timed: a peer that crashes mid-run."""

    def version(self):
        return "fake"

    def open(self, path, case, offsets):
        self.fd = os.open(path, os.O_RDONLY)
        self.block = case[1]
        return max(2 * case[2], 8)

    def read(self, offsets):
        return [os.pread(self.fd, self.block, off) for off in offsets]

    def timed(self, seconds):
        os.kill(os.getpid(), signal.SIGILL)

    def close(self):
        os.close(self.fd)
'''


def _ctx() -> Any:
    from mcp_edge.perf import BenchContext

    ctx = BenchContext("io", quick=True)
    ctx.peer_timeout = 30.0
    return ctx


@pytest.mark.parametrize(("source", "note"), [
    (SIGILL_LIBURING, "liburing failed: killed by SIGILL while starting"),
    ("raise ImportError('no wheel for this machine')\n", "liburing skipped: not installed (pip install liburing)"),
])
def test_a_liburing_that_crashes_or_is_missing_is_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, note: str
) -> None:
    """The PyPI liburing 2026.3.30 wheel's Ring() executes an instruction some CPUs lack: a fake one that kills
    itself with SIGILL (on any CPU) costs the liburing rows only. It is imported in the child alone."""
    (tmp_path / "liburing.py").write_text(source)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    bench = load_bench("io", BENCH)
    ctx = _ctx()
    av = bench._available(ctx)
    assert "liburing" not in av.impls and av.liburing is None
    assert "os.preadv" in av.impls
    texts = [n["text"] for n in ctx.notes if n["impl"] == "liburing"]
    assert len(texts) == 1 and texts[0].startswith(note)


def test_the_io_bench_completes_when_a_peer_dies_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole bench on a small file, with a liburing stand-in that reads correctly and then dies of SIGILL
    when timed, and an os.preadv that raises: every case has the other impls' rows, none has theirs, one note
    each says why."""
    import sys

    from mcp_edge.perf import harness

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    bench = load_bench("io", BENCH)
    point, fstype, _ = bench.mount_of(data_dir.resolve(), Path("/proc/self/mountinfo").read_text())
    if sys.platform != "linux" or fstype in bench.MEMORY_FILESYSTEMS:
        pytest.skip(f"needs Linux and a disk filesystem for {data_dir} ({fstype} at {point})")
    host = tmp_path / "fake_host.py"
    host.write_text(FAKE_HOST)
    monkeypatch.setenv(bench.FILE_DIR_ENV, str(data_dir))
    monkeypatch.setattr(bench, "FILE_SIZE", 8 << 20)
    monkeypatch.setattr(bench, "WRITE_CHUNK", 1 << 20)
    monkeypatch.setattr(bench, "RANDOM_OFFSETS", 4096)
    monkeypatch.setattr(bench, "SECONDS", {True: 0.03, False: 0.03})
    monkeypatch.setattr(bench, "BATCH_BYTES", 256 << 10)
    monkeypatch.setattr(bench, "liburing_factory", lambda: f"{host}:Host")
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)  # no fio: 30 processes would only cost time

    def preadv_breaks(self: Any, seconds: float) -> tuple[int, float]:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(bench.PreadvRunner, "timed", preadv_breaks)  # an in-process peer that raises
    ctx = _ctx()
    rows = [harness._result_row("io", r) for r in bench.run(ctx)]
    impls = {r["impl"] for r in rows}
    assert not impls & {"liburing", "os.preadv"}
    assert "mcp_edge[threads]" in impls
    assert [n["text"] for n in ctx.notes if n["impl"] == "os.preadv"] == [
        "os.preadv failed: raised OSError: [Errno 5] Input/output error; its rows are left out"]
    for case in bench.CASES:
        assert {r["impl"] for r in rows if r["case"] == case.name} == impls
    texts = [n["text"] for n in ctx.notes if n["impl"] == "liburing"]
    assert texts[0] == "peer liburing fake (PyPI), in a child process"
    assert texts[1].startswith("liburing failed: killed by SIGILL in timed()")
    assert len(texts) == 2


def test_the_device_warm_up_reads_the_whole_file_with_o_direct(bench: ModuleType) -> None:
    """The pass before each O_DIRECT case reads every byte, the tail of a size that is not a multiple of its
    8 MiB buffer included, through O_DIRECT (on the checkout's disk filesystem, as the bench file is)."""
    folder = Path(mcp_edge.__file__).resolve().parents[1] / "build"
    folder.mkdir(exist_ok=True)
    path = folder / f"test-warm-device-{os.getpid()}.bin"
    try:
        path.write_bytes(os.urandom((9 << 20) + 3 * 4096))
        assert bench._warm_device(path) == (9 << 20) + 3 * 4096
    finally:
        path.unlink(missing_ok=True)
