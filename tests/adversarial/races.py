"""Other processes changing a tree while the runtime resolves paths in it (bounded, for issue 7's tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_RENAMER = """
import os, sys
a, b, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
open(a, "w").close()
print("ready", flush=True)
for _ in range(limit):
    os.rename(a, b)
    os.rename(b, a)
"""

_SWAPPER = """
import os, sys
folder, name, target, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
os.chdir(folder)
with open(name, "w") as f:
    f.write("plain\\n")
print("ready", flush=True)
for i in range(limit):
    os.symlink(target, ".l")
    os.rename(".l", name)
    with open(".f", "w") as f:
        f.write("plain\\n")
    os.rename(".f", name)
"""


class _Process:
    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.running = False

    def __enter__(self) -> _Process:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None and self.proc.stdout.readline() == b"ready\n"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.running = self.proc.poll() is None  # still at work when the test was done
        self.proc.kill()
        self.proc.wait(30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


class RenameLoop(_Process):
    """Another process renaming a file back and forth (bounded), as any busy machine does: the kernel makes a
    RESOLVE_BENEATH lookup through '..' that overlaps a rename anywhere answer EAGAIN."""

    def __init__(self, folder: Path, limit: int = 2_000_000) -> None:
        super().__init__([sys.executable, "-c", _RENAMER, str(folder / "r1"), str(folder / "r2"), str(limit)])


class Swapper(_Process):
    """Another process replacing ``folder/name`` again and again (bounded), by rename, with a symbolic link to
    ``target`` and with a regular file."""

    def __init__(self, folder: Path, name: str, target: str, limit: int = 2_000_000) -> None:
        super().__init__([sys.executable, "-c", _SWAPPER, str(folder), name, target, str(limit)])
