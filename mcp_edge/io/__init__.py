"""The storage path of mcp_edge: an io_uring engine (thread-pool fallback), O_DIRECT helpers, atomic files.

Everything in mcp_edge that reads or writes files goes through an ``Engine``::

    engine = open_engine()                 # io_uring, or the thread pool where io_uring cannot start
    n = await engine.read(fd, buf, offset)
    counts = await engine.gather([IoOp.read(fd, a, 0), IoOp.read(fd, b, 4096)])
    fd, direct = open_direct(path, os.O_RDONLY)
    content = await read_file(path)        # FileData: .data, .crc32c, .size, .direct
    await write_file(path, data)           # atomic replace, durable
"""

from mcp_edge.io.alignment import Alignment, direct_fallbacks, file_alignment, is_direct, open_direct
from mcp_edge.io.engine import Engine, IoOp, OpKind
from mcp_edge.io.engines import DEFAULT_POOL, ENGINE_ENV, get_engine, open_engine, probe_storage
from mcp_edge.io.files import FileData, read_file, write_file
from mcp_edge.io.thread_engine import ThreadEngine

__all__ = [
    "DEFAULT_POOL",
    "ENGINE_ENV",
    "Alignment",
    "Engine",
    "FileData",
    "IoOp",
    "OpKind",
    "ThreadEngine",
    "direct_fallbacks",
    "file_alignment",
    "get_engine",
    "is_direct",
    "open_direct",
    "open_engine",
    "probe_storage",
    "read_file",
    "write_file",
]
