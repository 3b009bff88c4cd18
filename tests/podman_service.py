"""A real Podman engine for the containers and kubernetes plugins' tests, made and started by the test run.

``PodmanService.start()`` makes a private Podman under the repository's build/ folder (its own storage root,
run root, ``containers.conf`` and socket: nothing of the machine's own Podman is touched), imports the
machine's static busybox as the local image ``localhost/busybox:latest`` with ``podman import`` (nothing is
pulled from a registry), and starts ``podman system service --time=0 unix://<folder>/podman.sock``: the
Docker-compatible Engine API and Podman's own libpod API on one socket. ``stop()`` removes every container,
pod and volume it made, stops the service and deletes the folder.

The ``containers.conf`` is the project's own (``CONF`` below): ``runtime = "runc"`` (crun fails in this
sandbox), cgroupfs, file events, and container ulimits no higher than this process's own (higher ones fail).

``podman_unavailable()`` says why this machine cannot run it (no podman, no busybox-static), or None.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
IMAGE = "localhost/busybox:latest"
BUSYBOX = "/bin/busybox"
# The applets the image links to busybox (a shell and the commands the tests run in containers).
APPLETS = ("sh", "echo", "cat", "sleep", "ls", "env", "true", "false", "printf", "yes", "head", "wc", "id",
           "hostname", "ip", "top", "ps", "kill", "date", "touch", "mkdir", "rm")


def _ulimit(which: int, cap: int) -> str:
    soft, hard = resource.getrlimit(which)
    limit = min(x for x in (soft, hard, cap) if x != resource.RLIM_INFINITY)
    return f"{limit}:{limit}"


def conf_text() -> str:
    """The project's containers.conf for the test engine."""
    nofile = _ulimit(resource.RLIMIT_NOFILE, 1024)
    nproc = _ulimit(resource.RLIMIT_NPROC, 4096)
    return (
        "# mcp_edge's test engine (tests/podman_service.py): runc, cgroupfs, ulimits within the caller's.\n"
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}", "nproc={nproc}"]\n'
        'log_driver = "k8s-file"\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        "[network]\n"
        'network_backend = "netavark"\n'
    )


def podman_unavailable() -> str | None:
    """Why the test engine cannot run here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed (Debian: podman runc catatonit netavark)"
    if shutil.which("runc") is None:
        return "runc is not installed"
    if not os.access(BUSYBOX, os.X_OK):
        return f"{BUSYBOX} is missing (Debian: busybox-static)"
    if os.geteuid() != 0:
        return "the test engine runs Podman as root (rootless needs subuids this sandbox lacks)"
    return None


class PodmanService:
    """A private Podman and its API socket (see the module docstring)."""

    def __init__(self, base: Path | None = None) -> None:
        BUILD.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="podman-", dir=base or BUILD))
        self.sock = self.dir / "podman.sock"
        self.conf = self.dir / "containers.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "service.log"

    @property
    def host(self) -> str:
        """The DOCKER_HOST value for this engine."""
        return f"unix://{self.sock}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CONTAINERS_CONF"] = str(self.conf)
        env["CONTAINERS_REGISTRIES_CONF"] = str(self.dir / "registries.conf")
        env["DOCKER_HOST"] = self.host
        return env

    def cli(self) -> list[str]:
        """The podman command line for this engine (append the subcommand)."""
        return ["podman", "--root", str(self.dir / "root"), "--runroot", str(self.dir / "run"),
                "--tmpdir", str(self.dir / "tmp")]

    def podman(self, *args: str, check: bool = True, timeout: float = 120, input: bytes | None = None
               ) -> subprocess.CompletedProcess[str]:
        """Run ``podman ARGS`` against this engine's storage."""
        return subprocess.run([*self.cli(), *args], env=self.env(), capture_output=True, text=input is None,
                              input=input, timeout=timeout, check=check)  # type: ignore[call-overload]

    def _image(self) -> None:
        tar = self.dir / "busybox.tar"
        with tarfile.open(tar, "w") as tf:
            tf.add(BUSYBOX, arcname="bin/busybox")
            for name in APPLETS:
                info = tarfile.TarInfo(f"bin/{name}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tf.addfile(info)
            for folder in ("tmp", "etc", "proc", "sys", "dev", "root"):
                info = tarfile.TarInfo(folder)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
                tf.addfile(info)
        self.podman("import", "--change", 'CMD ["/bin/sh"]', "--change", "ENV PATH=/bin", str(tar), IMAGE)
        tar.unlink()

    def start(self, timeout: float = 60.0) -> PodmanService:
        self.conf.write_text(conf_text())
        (self.dir / "registries.conf").write_text("# no registries: the tests pull nothing\n")
        (self.dir / "tmp").mkdir()
        self._image()
        self.proc = subprocess.Popen(
            [*self.cli(), "system", "service", "--time=0", self.host], env=self.env(),
            stdout=subprocess.DEVNULL, stderr=self.log.open("wb"), start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"podman system service exited {self.proc.returncode}: "
                                   f"{self.log.read_text()[-2000:]}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(self.sock))
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"podman system service did not listen on {self.sock} within {timeout} s")

    def stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                for args in (("pod", "rm", "-af", "-t", "0"), ("rm", "-af", "-t", "0"), ("volume", "rm", "-af"),
                             ("network", "prune", "-f")):
                    self.podman(*args, check=False)
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(10)
            self.podman("system", "reset", "-f", check=False)
        finally:
            _unmount_below(self.dir)
            shutil.rmtree(self.dir, ignore_errors=True)


def _unmount_below(folder: Path) -> None:
    """Unmount what Podman left mounted under ``folder`` (overlay layers, shm), deepest first."""
    prefix = str(folder.resolve()) + "/"
    try:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        return
    for point in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
