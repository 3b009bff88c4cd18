"""The OS-facing pieces the supervisor calls: the systemd notify protocol and watchdog, a hardened unit file,
per-worker resource limits (rlimits, cgroup v2 memory.max) and worker confinement (no_new_privs, Landlock,
seccomp).

Each submodule is imported where it is needed (``from mcp_edge.system.notify import Notifier``); this package
imports none of them, so a worker that only confines itself does not load the notify client, nor the runtime
the unit writer.
"""

from __future__ import annotations

__all__: list[str] = []
