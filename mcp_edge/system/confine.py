"""What a worker gives up before it loads its plugin: privileges, filesystem reach, syscalls.

Three kernel facilities, each applied where the kernel has it and reported where it does not:

- ``PR_SET_NO_NEW_PRIVS``: execve can no longer grant privileges (always; the other two need it);
- a Landlock ruleset: the filesystem shrinks to the plugin's folder and the interpreter (read), the plugin's data
  folder (read and write) and what the plugin's ``[sandbox]`` table adds; with ``network = false`` and Landlock
  ABI 4, TCP bind and connect are denied too;
- a seccomp filter: the ``deny_syscalls`` names fail with EPERM, everything else runs.

A plugin asks for its sandbox in ``plugin.toml``; the board's profile may only narrow it (:func:`tighten`).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Final

from mcp_edge.errors import ConfigError

__all__ = ["PLACEHOLDERS", "Confinement", "SandboxPolicy", "apply", "board_policies", "interpreter_paths",
           "landlock_status", "policy_for", "seccomp_status", "tighten"]

# What a path in a [sandbox] table may start with, filled in by apply().
PLACEHOLDERS: Final = ("{plugin_dir}", "{data_dir}")
_KEYS: Final = ("read", "write", "deny_syscalls", "network")


def _norm(path: str) -> str:
    return str(PurePosixPath(os.path.normpath(path)))


def _within(path: str, root: str) -> bool:
    return path == root or root == "/" or path.startswith(root.rstrip("/") + "/")


class SandboxPolicy:
    """Paths a plugin may read, paths it may write, syscalls it may not make, and whether it may use TCP.

    ``read``/``write`` of None mean "no limit from this side" (a board that does not narrow paths); a tuple lists
    every allowed path (absolute, or starting with ``{plugin_dir}``/``{data_dir}``) besides what :func:`apply`
    always allows.
    """

    __slots__ = ("deny_syscalls", "network", "read", "write")

    def __init__(self, read: Iterable[str] | None = (), write: Iterable[str] | None = (),
                 deny_syscalls: Iterable[str] = (), network: bool = True) -> None:
        self.read = None if read is None else tuple(dict.fromkeys(_norm(p) for p in read))
        self.write = None if write is None else tuple(dict.fromkeys(_norm(p) for p in write))
        self.deny_syscalls = tuple(sorted(set(deny_syscalls)))
        self.network = network

    @classmethod
    def unrestricted(cls) -> SandboxPolicy:
        """The policy that narrows nothing: what :func:`tighten` leaves a plugin's policy as it is with."""
        return cls(None, None, (), True)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], *, where: str = "[sandbox]",
                     missing_paths: tuple[str, ...] | None = ()) -> SandboxPolicy:
        """Parse a ``[sandbox]`` table; ConfigError naming ``where`` and the key on bad input.

        ``missing_paths``: what an absent ``read``/``write`` key means: () for a plugin (nothing beyond the
        defaults), None for a board (no narrowing)."""
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where} must be a table, got {type(table).__name__}")
        unknown = sorted(set(table) - set(_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
        paths = {key: cls._paths(table[key], f"{where} {key}") if key in table else missing_paths
                 for key in ("read", "write")}
        deny = table.get("deny_syscalls", [])
        if not isinstance(deny, list) or not all(isinstance(n, str) for n in deny):
            raise ConfigError(f"{where} deny_syscalls must be a list of syscall names, got {deny!r}")
        from mcp_edge.native._sys import syscall_names

        known = set(syscall_names())
        for name in deny:
            if name not in known:
                raise ConfigError(f"{where} deny_syscalls: unknown syscall {name!r} (not a syscall of x86_64 or "
                                  "aarch64)")
        network = table.get("network", True)
        if not isinstance(network, bool):
            raise ConfigError(f"{where} network must be true or false, got {network!r}")
        return cls(paths["read"], paths["write"], deny, network)

    @staticmethod
    def _paths(value: object, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise ConfigError(f"{where} must be a list of paths, got {value!r}")
        for p in value:
            if not p or not (p.startswith("/") or p.startswith(PLACEHOLDERS)):
                raise ConfigError(f"{where}: {p!r} must be an absolute path or start with "
                                  f"{' or '.join(PLACEHOLDERS)}")
            if "\0" in p:
                raise ConfigError(f"{where}: {p!r} holds a NUL byte")
        return tuple(value)

    def resolve(self, plugin_dir: str | Path, data_dir: str | Path) -> SandboxPolicy:
        """This policy with the placeholders replaced by ``plugin_dir`` and ``data_dir``."""
        def fill(paths: tuple[str, ...] | None) -> tuple[str, ...] | None:
            if paths is None:
                return None
            return tuple(p.replace("{plugin_dir}", str(plugin_dir)).replace("{data_dir}", str(data_dir))
                         for p in paths)
        return SandboxPolicy(fill(self.read), fill(self.write), self.deny_syscalls, self.network)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (None paths stay None: no limit)."""
        return {"read": None if self.read is None else list(self.read),
                "write": None if self.write is None else list(self.write),
                "deny_syscalls": list(self.deny_syscalls), "network": self.network}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SandboxPolicy) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash((self.read, self.write, self.deny_syscalls, self.network))

    def __repr__(self) -> str:
        return f"SandboxPolicy({self.as_dict()!r})"


def _intersect(asked: tuple[str, ...] | None, allowed: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """Paths in both: a path asked for inside an allowed one stays; an allowed one inside a path asked for
    replaces it (only that part of it is allowed)."""
    if allowed is None:
        return asked
    if asked is None:
        return allowed
    out: list[str] = []
    for a in asked:
        for b in allowed:
            if _within(a, b):
                out.append(a)
            elif _within(b, a):
                out.append(b)
    return tuple(dict.fromkeys(out))


def tighten(policy: SandboxPolicy, board_policy: SandboxPolicy) -> SandboxPolicy:
    """What the plugin asked for, narrowed by the board: paths in both (a path the plugin would write and the
    board only lets it read becomes read-only), the deny lists together, TCP only when both allow it. Resolve
    both first when they use placeholders."""
    write = _intersect(policy.write, board_policy.write)
    board_read = (None if board_policy.read is None or board_policy.write is None
                  else board_policy.read + board_policy.write)
    read = _intersect(policy.read, board_read)
    demoted = _intersect(policy.write, board_policy.read)
    if read is not None and demoted is not None and board_policy.write is not None:
        read = tuple(dict.fromkeys(read + tuple(p for p in demoted if p not in (write or ()))))
    return SandboxPolicy(read, write, set(policy.deny_syscalls) | set(board_policy.deny_syscalls),
                         policy.network and board_policy.network)


def board_policies(table: Mapping[str, Any], *, where: str = "[sandbox]"
                   ) -> tuple[SandboxPolicy, dict[str, SandboxPolicy]]:
    """A board profile's ``[sandbox]``: the policy every process plugin is narrowed to (its keys ``read``,
    ``write``, ``deny_syscalls``, ``network``; an absent ``read``/``write`` narrows no paths) and, from its
    ``[sandbox.<plugin id>]`` sub-tables, one more per plugin. ConfigError naming the key on bad input."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, got {type(table).__name__}")
    common = {k: v for k, v in table.items() if k in _KEYS}
    per_plugin: dict[str, SandboxPolicy] = {}
    for key, value in table.items():
        if key in _KEYS:
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(_KEYS)}, or a [sandbox.<plugin id>] "
                              "table)")
        per_plugin[key] = SandboxPolicy.from_mapping(value, where=f"{where}.{key}", missing_paths=None)
    return SandboxPolicy.from_mapping(common, where=where, missing_paths=None), per_plugin


def policy_for(plugin_id: str, asked: Mapping[str, Any] | None, board_table: Mapping[str, Any],
               plugin_dir: str | Path, data_dir: str | Path, *, where: str = "[sandbox]") -> SandboxPolicy | None:
    """The sandbox a worker of ``plugin_id`` gets: its manifest's ``[sandbox]`` (``asked``; None when it declares
    none) narrowed by the board's table and the board's table for that plugin, placeholders resolved. None
    when neither the plugin nor the board asks for one."""
    if asked is None and not board_table:
        return None
    policy = (SandboxPolicy.unrestricted() if asked is None
              else SandboxPolicy.from_mapping(asked, where=f"plugin {plugin_id} {where}"))
    policy = policy.resolve(plugin_dir, data_dir)
    if board_table:
        common, per_plugin = board_policies(board_table, where=f"board {where}")
        for narrower in (common, per_plugin.get(plugin_id)):
            if narrower is not None:
                policy = tighten(policy, narrower.resolve(plugin_dir, data_dir))
    return policy


class Confinement:
    """What :func:`apply` did, and what the kernel lacked (each a sentence)."""

    __slots__ = ("denied_syscalls", "lacking", "landlock", "landlock_abi", "network_restricted",
                 "no_new_privs", "notes", "read_paths", "seccomp", "write_paths")

    def __init__(self) -> None:
        self.no_new_privs = False
        self.landlock_abi = 0
        self.landlock = False
        self.read_paths: tuple[str, ...] = ()
        self.write_paths: tuple[str, ...] = ()
        self.network_restricted = False
        self.seccomp = False
        self.denied_syscalls: tuple[str, ...] = ()
        self.lacking: list[str] = []
        self.notes: list[str] = []

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for logs and the worker's report to the runtime."""
        return {name: (list(v) if isinstance(v, (tuple, list)) else v)
                for name in self.__slots__ for v in (getattr(self, name),)}

    def __repr__(self) -> str:
        return f"Confinement({self.as_dict()!r})"


def landlock_status() -> tuple[int, str]:
    """(Landlock ABI, "") where the kernel has it, else (0, why not)."""
    from mcp_edge.native._sys import landlock_abi

    try:
        return landlock_abi(), ""
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            return 0, "landlock not available (ABI 0: ENOSYS): the kernel has no Landlock, or a seccomp filter " \
                      "hides it"
        if exc.errno == errno.EOPNOTSUPP:
            return 0, "landlock not available (ABI 0: EOPNOTSUPP): built in but not enabled at boot " \
                      "(add landlock to the lsm= kernel parameter)"
        return 0, f"landlock not available (ABI 0): {exc}"


def seccomp_status() -> str:
    """"" where the kernel can install a seccomp filter returning an errno, else why not."""
    from mcp_edge.native._sys import seccomp_probe

    try:
        seccomp_probe()
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return f"seccomp not available ({name}): {exc.strerror}"
    return ""


def interpreter_paths() -> tuple[str, ...]:
    """What a confined Python worker must still read to import modules: the interpreter's prefixes, the
    folders on sys.path (those that exist), and the mcp_edge package."""
    here = str(Path(__file__).resolve().parents[1])
    found = [sys.base_prefix, sys.prefix, sys.exec_prefix, here, *sys.path]
    return tuple(dict.fromkeys(_norm(p) for p in found if p and os.path.isabs(p) and os.path.exists(p)))


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _landlock(policy: SandboxPolicy, read: tuple[str, ...], write: tuple[str, ...], out: Confinement) -> None:
    from mcp_edge.native import _sys

    abi, why = landlock_status()
    out.landlock_abi = abi
    if not abi:
        out.lacking.append(why)
        return
    fs = _sys.landlock_fs_rights(abi)
    net = 0
    if not policy.network:
        net = _sys.landlock_net_rights(abi)
        if not net:
            out.lacking.append(f"network not restricted: TCP rules need Landlock ABI 4, this kernel has {abi}")
    fd = _sys.landlock_create(fs, net)
    try:
        read_done: list[str] = []
        write_done: list[str] = []
        for paths, rights, done in ((read, _sys.LANDLOCK_READ_RIGHTS, read_done), (write, fs, write_done)):
            for path in paths:
                try:
                    _sys.landlock_allow_path(fd, path, rights & fs)
                except FileNotFoundError:
                    out.notes.append(f"landlock: {path} does not exist; no rule for it")
                    continue
                done.append(path)
        threads = _threads()
        _sys.landlock_restrict(fd)
    finally:
        os.close(fd)
    if threads > 1:
        out.notes.append(f"landlock binds the calling thread and what it starts: {threads - 1} other thread(s) "
                         "were already running unconfined")
    out.landlock = True
    out.network_restricted = bool(net)
    out.read_paths = tuple(read_done)
    out.write_paths = tuple(write_done)


def _seccomp(names: tuple[str, ...], out: Confinement) -> None:
    from mcp_edge.native import _sys

    why = seccomp_status()
    if why:
        out.lacking.append(why)
        return
    numbers: list[int] = []
    denied: list[str] = []
    for name in names:
        nr = _sys.syscall_number(name)
        if nr is None:
            out.notes.append(f"seccomp: {name} does not exist on {_sys.ARCH}; nothing to deny")
            continue
        numbers.append(nr)
        denied.append(name)
    _sys.seccomp_deny(numbers, errno.EPERM)
    out.seccomp = True
    out.denied_syscalls = tuple(denied)


def apply(policy: SandboxPolicy, plugin_dir: str | Path, data_dir: str | Path) -> Confinement:
    """Confine the calling process (a worker, before it loads its plugin; it cannot be undone).

    no_new_privs, then Landlock (``plugin_dir`` and the interpreter read-only, ``data_dir`` read-write, plus the
    policy's paths; any other path EACCES), then seccomp (the policy's ``deny_syscalls`` fail with EPERM). What
    the kernel lacks is listed in the result's ``lacking``, never raised; a kernel call that fails otherwise
    raises OSError. Call it before starting threads: Landlock binds the calling thread only.
    """
    from mcp_edge.native import _sys

    policy = policy.resolve(plugin_dir, data_dir)
    out = Confinement()
    _sys.set_no_new_privs()
    out.no_new_privs = _sys.no_new_privs()
    everywhere = ("/",)
    read = everywhere if policy.read is None else (_norm(str(plugin_dir)), *interpreter_paths(), *policy.read)
    write = everywhere if policy.write is None else (_norm(str(data_dir)), *policy.write)
    if "/" in write and policy.network:
        out.notes.append("landlock: nothing to restrict (every path writable, network allowed)")
    else:
        _landlock(policy, tuple(dict.fromkeys(read)), tuple(dict.fromkeys(write)), out)
    if policy.deny_syscalls:
        _seccomp(policy.deny_syscalls, out)
    return out
