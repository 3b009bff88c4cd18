#!/usr/bin/env bash
# tools/aarch64/test.sh - cross-build mcp_edge for aarch64 and run the native, ring and frame suites under qemu-user.
# SPDX-License-Identifier: Apache-2.0
#
# Usage (`make test-aarch64`): PYTHON=.venv/bin/python tools/aarch64/test.sh [pytest args]
# AARCH64_STAGE_ONLY=1 stops after the staged package (steps a-d): what make wheels builds the arm64 wheel from.
# As root it apt-installs what is missing; otherwise it prints the command and exits 2.
# Everything it makes lives under .cross/aarch64/ (gitignored), each step skipped
# when its stamp says it is up to date:
#   debs/ sysroot/  Debian's arm64 python3.11, its libraries and the -dev packages
#                   of setup.SYSTEM_LIBS (apt-get download + dpkg-deb -x)
#   site/           arm64 wheels of the test deps (pip install --target --platform)
#   build/ pkg/     Cython C and objects; the staged package (Python + aarch64 .so)
#   bin/python3.11  the arm64 interpreter under qemu, runnable by hand too
# Every extension of setup.EXTENSIONS is built (cross_build.py reads the table). tests/native runs
# once per ISA level (MCP_EDGE_ISA=scalar, =armv8crc, =neon, unset); the suites of EXTRA_TESTS that
# exist (the shared-memory rings, frame I/O over both engines) run once more at the default level;
# all in parallel. qemu-user has no io_uring, so the io_uring engine's runs skip (named in
# MCP_EDGE_TEST_MAY_SKIP, so that CI=true accepts that one skip and no other).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-.venv/bin/python}
CROSS=$ROOT/.cross/aarch64
SYSROOT=$CROSS/sysroot
SITE=$CROSS/site
STAGE=$CROSS/pkg
QEMU=qemu-aarch64-static
# Debian's arm64 Python 3.11 and the shared libraries of its interpreter and stdlib
# extensions (checked below: every DT_NEEDED must resolve in the sysroot); libstdc++6
# for numpy's wheel. The -dev packages of setup.SYSTEM_LIBS and their libraries join.
PY_PKGS=(
    python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11-dev
    libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 libssl3 libbz2-1.0 liblzma5 libffi8
    libcrypt1 libuuid1 libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libdb5.3
    libnsl2 libtirpc3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0
    libcom-err2 libkeyutils1
)
TEST_DEPS=(pytest crc32c numpy hypothesis msgspec)  # msgspec: the board profiles (a runtime dependency)
# Run at the default ISA level besides tests/native (paths relative to the root; missing ones are left out).
EXTRA_TESTS=(tests/ipc tests/io/test_frame_io.py)

say() { printf '== aarch64: %s\n' "$*"; }
die() { printf 'tools/aarch64/test.sh: %s\n' "$*" >&2; exit 1; }
as_root() {  # run package-manager commands (one per argument), or print them and exit 2
    if [[ $(id -u) -ne 0 ]]; then
        printf 'tools/aarch64/test.sh needs root to set up the cross toolchain; run:\n' >&2
        printf '  sudo %s\n' "$@" >&2
        printf 'then run make test-aarch64 again.\n' >&2
        exit 2
    fi
    local cmd
    for cmd in "$@"; do say "$cmd"; eval "$cmd"; done
}
export DEBIAN_FRONTEND=noninteractive
APT="apt-get -y -q -o Dpkg::Use-Pty=0"

"$PYTHON" -c 'import Cython, setuptools' 2>/dev/null \
    || die "PYTHON=$PYTHON needs Cython and setuptools (make setup creates .venv with them)"
read -r -a SYS_DEVS <<<"$("$PYTHON" tools/aarch64/cross_build.py --system-packages)"
SYSROOT_WANT="${PY_PKGS[*]} ${SYS_DEVS[*]}"

# --- (a) host tools and the arm64 package index -------------------------------
need_sysroot() { [[ "$(cat "$SYSROOT/.stamp" 2>/dev/null)" != "$SYSROOT_WANT" ]]; }
have_arm64_index() { apt-cache show --no-all-versions libc6:arm64 >/dev/null 2>&1; }
missing=()
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[[ -e /usr/aarch64-linux-gnu/include/stdio.h ]] || missing+=(libc6-dev-arm64-cross)
command -v $QEMU >/dev/null || missing+=(qemu-user-static)
command -v pkg-config >/dev/null || missing+=(pkg-config)
cmds=()
if need_sysroot && ! dpkg --print-foreign-architectures 2>/dev/null | grep -qx arm64; then
    cmds+=("dpkg --add-architecture arm64")
fi
if ((${#cmds[@]} + ${#missing[@]})) || { need_sysroot && ! have_arm64_index; }; then
    cmds+=("$APT update")
fi
((${#missing[@]} == 0)) || cmds+=("$APT install --no-install-recommends ${missing[*]}")
updated=0
if ((${#cmds[@]})); then
    as_root "${cmds[@]}"
    updated=1
fi

# --- (b) arm64 sysroot: Debian's packages unpacked ----------------------------
fresh_sysroot=0
if need_sysroot; then
    fresh_sysroot=1
    # The libraries the -dev packages depend on (liburing-dev -> liburing2), not libc6-dev.
    sys_libs=()
    if ((${#SYS_DEVS[@]})); then
        read -r -a sys_libs <<<"$(apt-cache depends --no-recommends --no-suggests --no-conflicts \
            --no-breaks --no-replaces --no-enhances "${SYS_DEVS[@]/%/:arm64}" \
            | sed -n 's/^  Depends: \([a-z0-9][^ <]*\):arm64$/\1/p' | grep -v -- '-dev$' | sort -u | tr '\n' ' ')"
    fi
    pkgs=("${PY_PKGS[@]}" "${SYS_DEVS[@]}" "${sys_libs[@]}")
    say "building sysroot from ${#pkgs[@]} arm64 packages"
    rm -rf "$SYSROOT" "$CROSS/debs"
    mkdir -p "$SYSROOT" "$CROSS/debs"
    fetch() { (cd "$CROSS/debs" && apt-get download -q -o APT::Sandbox::User=root "${pkgs[@]/%/:arm64}"); }
    if ! fetch; then  # a stale index names versions the mirror no longer has
        ((updated)) && die "apt-get download of the arm64 packages failed"
        as_root "$APT update"
        fetch
    fi
    for deb in "$CROSS"/debs/*.deb; do dpkg-deb -x "$deb" "$SYSROOT"; done
    # Every library the interpreter, its stdlib extensions and the libraries need is here.
    found=$(find "$SYSROOT" \( -name '*.so*' -o -name 'ld-linux-aarch64*' \) -printf '%f\n' | sort -u)
    unresolved=$(find "$SYSROOT/usr/bin" "$SYSROOT/usr/lib/python3.11/lib-dynload" \
                     "$SYSROOT"/{lib,usr/lib}/aarch64-linux-gnu -maxdepth 1 -type f \
                     \( -name 'python3.11' -o -name '*.so*' \) -print0 \
                 | xargs -0 aarch64-linux-gnu-readelf -d 2>/dev/null \
                 | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u | comm -23 - <(printf '%s\n' "$found"))
    [[ -z $unresolved ]] || die "the sysroot lacks $(echo $unresolved): add their packages to PY_PKGS"
    [[ -e $SYSROOT/usr/include/aarch64-linux-gnu/python3.11/pyconfig.h ]] || die "no arm64 pyconfig.h in the sysroot"
    printf '%s' "$SYSROOT_WANT" >"$SYSROOT/.stamp"
fi

# Debian's arm64 interpreter under qemu, through a host script so that
# sys.executable (argv[0], via qemu -0) is runnable by the tests' subprocesses:
# binfmt_misc is not registered. PYTHONHOME is the sysroot's real path, so the
# stdlib and site dirs are the sysroot's and none of the host's /usr/lib/python3*
# leaks in through qemu -L's fallback to host paths. mcp_edge is imported from
# PYTHONPATH only (PYTHONSAFEPATH: the cwd's mcp_edge holds the x86 .so files).
ARM_PY=$CROSS/bin/python3.11
mkdir -p "$CROSS/bin"
cat >"$ARM_PY.tmp" <<WRAPPER
#!/bin/sh
# Debian's arm64 python3.11 under qemu (written by tools/aarch64/test.sh).
export QEMU_CPU=max PYTHONHOME='$SYSROOT/usr' PYTHONSAFEPATH=1 PYTHONNOUSERSITE=1
export PYTHONPYCACHEPREFIX='$CROSS/pycache'  # bytecode outside the source tree
unset PYTHONDONTWRITEBYTECODE
exec $QEMU -L '$SYSROOT' -0 '$ARM_PY' '$SYSROOT/usr/bin/python3.11' "\$@"
WRAPPER
chmod +x "$ARM_PY.tmp" && mv -f "$ARM_PY.tmp" "$ARM_PY"
if ((fresh_sysroot)); then
    "$ARM_PY" -c 'import platform, ssl, sqlite3, ctypes, lzma, bz2, zlib, decimal, readline, uuid
print("== aarch64: sysroot python", platform.python_version(), platform.machine())'
fi

# --- (c) arm64 test dependencies (wheels pinned to the venv's versions) ---------
reqs=$("$PYTHON" - "${TEST_DEPS[@]}" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
out = []
for name in sys.argv[1:]:
    try:
        out.append(f"{name}=={version(name)}")
    except PackageNotFoundError:
        out.append(name)
print(" ".join(out))
EOF
)
if [[ "$(cat "$SITE/.stamp" 2>/dev/null)" != "$reqs" ]]; then
    say "pip install --target .cross/aarch64/site $reqs"
    rm -rf "$SITE"
    # shellcheck disable=SC2086
    "$PYTHON" -m pip install -q --disable-pip-version-check --no-compile --target "$SITE" \
        --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
        --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 $reqs
    printf '%s' "$reqs" >"$SITE/.stamp"
fi

# --- (d) cythonize on the host, cross-compile, stage the package ----------------
"$PYTHON" tools/aarch64/cross_build.py "$SYSROOT" "$CROSS/build" "$STAGE"

# AARCH64_STAGE_ONLY=1 (make wheels, make test-firmware): the sysroot and the staged package, no tests.
if [[ ${AARCH64_STAGE_ONLY:-0} == 1 ]]; then
    say "staged: $STAGE (aarch64 extensions), interpreter $ARM_PY"
    exit 0
fi

# --- (e) the suites under qemu, in parallel ------------------------------------
[[ -d tests/native ]] || die "no tests/native to run"
extra=()
for path in "${EXTRA_TESTS[@]}"; do [[ -e $path ]] && extra+=("$ROOT/$path"); done
LOGS=$CROSS/logs
rm -rf "$LOGS" && mkdir -p "$LOGS"
# name:ISA level; "native" runs tests/native, "extra" the EXTRA_TESTS.
runs=(native:scalar native:armv8crc native:neon native:)
((${#extra[@]} == 0)) || runs+=(extra:)
# qemu-user implements none of io_uring, seccomp(2) and Landlock (ENOSYS): the x86_64 run tests them for real.
may_skip=${MCP_EDGE_TEST_MAY_SKIP:+$MCP_EDGE_TEST_MAY_SKIP,}io_uring,seccomp,landlock
pids=()
for run in "${runs[@]}"; do
    suite=${run%%:*} isa=${run#*:}
    # tests/native imports in append mode (the staged mcp_edge first on sys.path, never the checkout's
    # x86 build). The other suites include folders without __init__.py whose conftest.py would clash
    # with tests/conftest.py in that mode: they import with importlib, tests/ (ci_honesty) on the path.
    if [[ $suite == native ]]; then
        paths=("$ROOT/tests/native") mode=append tests_path=
    else
        paths=("${extra[@]}") mode=importlib tests_path=:$ROOT/tests
    fi
    (
        export PYTHONPATH=$STAGE:$SITE:$ROOT/tools/aarch64$tests_path MCP_EDGE_STAGED=$STAGE
        export MCP_EDGE_TEST_MAY_SKIP=$may_skip
        # What the tests compile to load into the arm64 interpreter (the LD_PRELOAD malloc counter) must be
        # arm64 code: a bare `cc` under qemu-user is the host's.
        export CC=${CC_AARCH64:-aarch64-linux-gnu-gcc}
        if [[ -n $isa ]]; then export MCP_EDGE_ISA=$isa; else unset MCP_EDGE_ISA; fi
        # A test stuck for 15 minutes prints every thread's stack (qemu hides hangs otherwise).
        exec "$ARM_PY" -m pytest -q -p no:cacheprovider -p pytest_staged --import-mode=$mode --rootdir "$ROOT" \
            -o faulthandler_timeout=900 \
            "${paths[@]}" "$@" >"$LOGS/$suite-${isa:-default}.log" 2>&1
    ) &
    pids+=($!)
done
failed=()
for i in "${!runs[@]}"; do
    suite=${runs[$i]%%:*} isa=${runs[$i]#*:}
    rc=0
    wait "${pids[$i]}" || rc=$?
    if [[ $suite == native ]]; then what=tests/native; else what="${EXTRA_TESTS[*]}"; fi
    say "pytest $what with MCP_EDGE_ISA=${isa:-<unset>} (exit $rc)"
    cat "$LOGS/$suite-${isa:-default}.log"
    ((rc == 0)) || failed+=("$suite/${isa:-<unset>}")
done
((${#failed[@]} == 0)) || die "failed on aarch64: ${failed[*]} (suite/MCP_EDGE_ISA)"
say "tests/native passed at every ISA level (scalar, armv8crc, neon, default)${extra:+; ${EXTRA_TESTS[*]} passed}"
