"""Build of mcp_edge: the C core in csrc/ and the Cython extensions over it.

Knobs: MCP_EDGE_DEBUG=1 (-O0 -g, Cython line tracing), MCP_EDGE_SANITIZE=1
(ASan + UBSan). Each ISA kernel is compiled with its own -m flags only.
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ARCH = platform.machine()
SUPPORTED_ARCHES = ("x86_64", "aarch64")

# Per-ISA kernel files and the only flags each is compiled with, per architecture.
ISA_SOURCES: dict[str, dict[str, list[str]]] = {
    "x86_64": {
        "csrc/crc32c/crc32c_sse42.c": ["-msse4.2"],
        "csrc/crc32c/crc32c_avx2.c": ["-mavx2", "-msse4.2", "-mpclmul"],
        "csrc/crc32c/crc32c_avx2_vpclmul.c": ["-mavx2", "-msse4.2", "-mpclmul", "-mvpclmulqdq"],
        "csrc/crc32c/crc32c_avx512.c": [
            "-mavx512f", "-mavx512bw", "-mavx512vl", "-mvpclmulqdq", "-mpclmul", "-msse4.2",
        ],
    },
    "aarch64": {
        "csrc/crc32c/crc32c_armv8crc.c": ["-march=armv8-a+crc"],
        "csrc/crc32c/crc32c_armv8.c": ["-march=armv8-a+crc+crypto"],
    },
}

# Extension -> (Cython module, portable C sources, ISA-kernel folder prefixes, system libraries).
EXTENSIONS: dict[str, tuple[str, list[str], list[str], list[str]]] = {
    "mcp_edge.native._cpu": ("mcp_edge/native/_cpu.pyx", ["csrc/cpu/cpu.c"], [], []),
    "mcp_edge.native._crc": (
        "mcp_edge/native/_crc.pyx",
        ["csrc/cpu/cpu.c", "csrc/crc32c/crc32c.c", "csrc/crc32c/crc32c_scalar.c"],
        ["csrc/crc32c/"],
        [],
    ),
    "mcp_edge.native._dio": ("mcp_edge/native/_dio.pyx", ["csrc/dio/dio.c"], [], []),
    "mcp_edge.native._frame": (
        "mcp_edge/native/_frame.pyx",
        ["csrc/cpu/cpu.c", "csrc/crc32c/crc32c.c", "csrc/crc32c/crc32c_scalar.c", "csrc/frame/frame.c",
         "csrc/frame/frame_io.c", "csrc/frame/jsoncheck.c"],
        ["csrc/crc32c/"],
        [],
    ),
    "mcp_edge.native._slab": (
        "mcp_edge/native/_slab.pyx",
        ["csrc/slab/slab.c", "csrc/slab/numa.c", "csrc/slab/bench.c"],
        [],
        ["numa"],
    ),
    "mcp_edge.native._shm": (
        "mcp_edge/native/_shm.pyx",
        ["csrc/cpu/cpu.c", "csrc/crc32c/crc32c.c", "csrc/crc32c/crc32c_scalar.c", "csrc/frame/frame.c",
         "csrc/slab/slab.c", "csrc/shm/segment.c", "csrc/shm/ring.c", "csrc/shm/wake.c", "csrc/shm/chan.c"],
        ["csrc/crc32c/"],
        [],
    ),
    "mcp_edge.native._metrics": ("mcp_edge/native/_metrics.pyx", ["csrc/metrics/metrics.c"], [], []),
    "mcp_edge.native._sys": ("mcp_edge/native/_sys.pyx", ["csrc/sys/sys.c"], [], []),
    "mcp_edge.native._uring": ("mcp_edge/native/_uring.pyx", ["csrc/uring/uring.c"], [], ["liburing"]),
}

# System libraries the data path links (io_uring engine, NUMA pools): found with
# pkg-config; a miss names the Debian package that provides it.
SYSTEM_LIBS = {"liburing": "liburing-dev", "numa": "libnuma-dev"}

STRICT_CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden"]

# Native plugins built in place (shared object -> C sources): plain shared objects
# implementing plugins/include/mcp_edge_plugin.h, loaded with cffi at run time.
NATIVE_PLUGINS: dict[str, list[str]] = {
    "plugins/native_hello/native_hello.so": ["plugins/native_hello/native_hello.c"],
}

# WASM plugins built in place (module -> C sources) with clang for wasm32-wasi: modules speaking
# plugins/include/mcp_edge_wasm.h, run by the wasm host (wasmtime). Debian: clang lld wasi-libc
# libclang-rt-dev-wasm32 (make deps installs them).
WASM_PLUGINS: dict[str, list[str]] = {
    "plugins/wasm_hello/wasm_hello.wasm": ["plugins/wasm_hello/wasm_hello.c"],
}
WASM_CFLAGS = ["--target=wasm32-wasi", "-O2", "-mexec-model=reactor", "-Wall", "-Wextra", "-Werror",
               "-Iplugins/include", "-Wl,--strip-debug"]


def build_wasm_plugins(force: bool = False) -> None:
    """Compile WASM_PLUGINS with clang; a missing compiler or WASI sysroot is an error naming the packages."""
    from setuptools.modified import newer_group

    for target, sources in WASM_PLUGINS.items():
        if not (force or newer_group([*sources, "plugins/include/mcp_edge_wasm.h"], target, "newer")):
            continue
        clang = shutil.which("clang")
        if clang is None:
            sys.exit(f"building {target} needs clang for wasm32-wasi: apt-get install clang lld wasi-libc "
                     "libclang-rt-dev-wasm32")
        proc = subprocess.run([clang, *WASM_CFLAGS, "-o", target, *sources], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"building {target} failed (the WASI toolchain is Debian's clang, lld, wasi-libc and "
                     f"libclang-rt-dev-wasm32):\n{proc.stderr}")


def c_sources(ext_name: str, arch: str) -> list[tuple[str, list[str]]]:
    """(source, extra flags) of the project C an extension links, for `arch`."""
    _, portable, isa_prefixes, _ = EXTENSIONS[ext_name]
    out = [(src, []) for src in portable]
    for src, flags in ISA_SOURCES.get(arch, {}).items():
        if any(src.startswith(prefix) for prefix in isa_prefixes):
            out.append((src, flags))
    return out


def opt_flags() -> list[str]:
    flags = ["-O0", "-g"] if os.environ.get("MCP_EDGE_DEBUG") else ["-O3"]
    if os.environ.get("MCP_EDGE_SANITIZE"):
        flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    return flags


def pkgconfig(name: str) -> tuple[list[str], list[str]]:
    """(cflags, libs) of a system library; SystemExit naming the package if absent."""
    package = SYSTEM_LIBS[name]
    if shutil.which("pkg-config") is None:
        sys.exit("mcp_edge needs pkg-config to find its system libraries: apt-get install pkg-config")
    proc = subprocess.run(["pkg-config", "--cflags", "--libs", name], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(
            f"mcp_edge needs the system library '{name}', which pkg-config cannot find: "
            f"install the Debian package {package} (apt-get install {package})"
        )
    flags = proc.stdout.split()
    return [f for f in flags if not f.startswith("-l")], [f for f in flags if f.startswith("-l")]


def system_lib_flags(ext_name: str) -> tuple[list[str], list[str]]:
    """(cflags, libs) of the system libraries an extension links."""
    cflags: list[str] = []
    libs: list[str] = []
    for lib in EXTENSIONS[ext_name][3]:
        c, link = pkgconfig(lib)
        cflags += c
        libs += link
    return cflags, libs


class BuildExt(build_ext):
    """Compiles each extension's project C with strict flags and per-ISA -m flags, then the native plugins."""

    def run(self) -> None:
        super().run()
        self.build_native_plugins()
        build_wasm_plugins(bool(self.force))

    def build_native_plugins(self) -> None:
        from setuptools.modified import newer_group

        link = ["-fsanitize=address,undefined"] if os.environ.get("MCP_EDGE_SANITIZE") else []
        for target, sources in NATIVE_PLUGINS.items():
            if not (self.force or newer_group([*sources, "plugins/include/mcp_edge_plugin.h"], target, "newer")):
                continue
            objects = self.compiler.compile(
                sources, output_dir=self.build_temp, include_dirs=["plugins/include"],
                extra_postargs=[*STRICT_CFLAGS, *opt_flags(), "-fPIC"],
            )
            self.compiler.link_shared_object(objects, target, extra_postargs=link)

    def build_extension(self, ext: Extension) -> None:
        from setuptools.modified import newer_group

        target = self.get_ext_fullpath(ext.name)
        if not (self.force or newer_group(ext.sources + ext.depends, target, "newer")):
            return  # up to date: skip compiling the C core again
        objects: list[str] = []
        for src, flags in c_sources(ext.name, ARCH):
            objects += self.compiler.compile(
                [src],
                output_dir=self.build_temp,
                extra_postargs=STRICT_CFLAGS + opt_flags() + flags + system_lib_flags(ext.name)[0],
            )
        ext.extra_objects = objects
        super().build_extension(ext)


def extensions() -> list[Extension]:
    from Cython.Build import cythonize

    if sys.platform != "linux" or ARCH not in SUPPORTED_ARCHES:
        sys.exit(
            f"mcp_edge runs on Linux on x86-64 or aarch64 (io_uring, its SIMD kernels); "
            f"this is {sys.platform}/{ARCH}"
        )
    for lib in SYSTEM_LIBS:
        pkgconfig(lib)
    debug = bool(os.environ.get("MCP_EDGE_DEBUG"))
    link = ["-fsanitize=address,undefined"] if os.environ.get("MCP_EDGE_SANITIZE") else []
    exts = [
        Extension(
            name,
            [pyx],
            include_dirs=["csrc"],
            depends=sorted(glob.glob("csrc/**/*.[ch]", recursive=True)),
            extra_compile_args=opt_flags() + system_lib_flags(name)[0],
            extra_link_args=link + system_lib_flags(name)[1],
            define_macros=[("CYTHON_TRACE_NOGIL", "1")] if debug else [],
        )
        for name, (pyx, _, _, _) in EXTENSIONS.items()
    ]
    return cythonize(
        exts,
        compiler_directives={"language_level": "3", "linetrace": debug, "embedsignature": False},
        quiet=True,
    )


if __name__ == "__main__":
    setup(
        ext_modules=extensions(),
        cmdclass={"build_ext": BuildExt},
        data_files=[
            ("share/mcp-edge/boards", sorted(glob.glob("boards/*.toml"))),
            ("share/mcp-edge/perf", sorted(glob.glob("perf/*.py"))),
            ("share/mcp-edge/perf/peers", sorted(glob.glob("perf/peers/*.py"))),
            # The LD_PRELOAD allocation counter the ipc and slab benches run under (built on first use).
            ("share/mcp-edge/tools/malloc_count", ["tools/malloc_count/malloc_count.c",
                                                   "tools/malloc_count/malloc_count.py"]),
            ("share/mcp-edge/plugins/include", sorted(glob.glob("plugins/include/*.h"))),
            # The Python built-in plugins; native ones are built in the checkout (their .so is not in the wheel).
            *(
                (f"share/mcp-edge/{folder}", sorted(glob.glob(f"{folder}/*.py") + glob.glob(f"{folder}/*.toml")))
                for folder in sorted(glob.glob("plugins/*"))
                if os.path.isfile(f"{folder}/plugin.py")
            ),
        ],
    )
