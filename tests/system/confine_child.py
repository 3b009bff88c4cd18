"""Child process for tests/system/test_confine.py: confine itself with confine.apply, then try things.

argv[1] is JSON: {"policy": {...[sandbox] table...}, "plugin_dir": str, "data_dir": str,
"hide": {"syscalls": [names], "errno": name} (a seccomp filter installed first, making those calls fail the way
a kernel without the facility, or a container runtime's filter, makes them fail),
"threads": int (threads started before apply), "probes": [[kind, args...], ...]}.
Prints one JSON line: {"confinement": Confinement.as_dict(), "probes": ["ok" | errno name, ...]}.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import threading
from typing import Any


def probe(kind: str, *args: Any) -> str:
    try:
        if kind == "read":
            with open(args[0]) as f:
                f.read()
        elif kind == "write":
            with open(args[0], "a") as f:
                f.write("x")
        elif kind == "mkdir":
            os.mkdir(args[0])
        elif kind == "listdir":
            os.listdir(args[0])
        elif kind == "unix":
            a, b = socket.socketpair(socket.AF_UNIX)
            a.sendall(b"x")
            assert b.recv(1) == b"x"
            a.close()
            b.close()
        elif kind == "tcp":
            with socket.create_connection(("127.0.0.1", int(args[0])), timeout=10):
                pass
        elif kind == "getpid":
            assert os.getpid() > 0
        else:
            raise ValueError(kind)
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "ok"


def main() -> None:
    spec = json.loads(sys.argv[1])
    from mcp_edge.native import _sys
    from mcp_edge.system.confine import SandboxPolicy, apply

    hide = spec.get("hide")
    if hide:
        _sys.set_no_new_privs()
        numbers = [_sys.syscall_number(name) for name in hide["syscalls"]]
        _sys.seccomp_deny([n for n in numbers if n is not None], getattr(errno, hide["errno"]))
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait) for _ in range(spec.get("threads", 0))]
    for t in threads:
        t.start()
    policy = SandboxPolicy.from_mapping(spec["policy"])
    try:
        result = apply(policy, spec["plugin_dir"], spec["data_dir"])
    finally:
        stop.set()
        for t in threads:
            t.join()
    probes = [probe(*p) for p in spec.get("probes", [])]
    print(json.dumps({"confinement": result.as_dict(), "probes": probes}))


if __name__ == "__main__":
    main()
