#!/usr/bin/env bash
# tools/firmware/e2e.sh (make test-firmware): the qemu-virt-aarch64 bundle in an arm64 Debian root, under qemu.
# SPDX-License-Identifier: Apache-2.0
#
# 1. the aarch64 wheel (make wheels) and the bundle for qemu-virt-aarch64 with its signed SWUpdate image, which
#    swupdate's own check accepts;
# 2. an arm64 Debian 12 root filesystem made by mmdebstrap (its second stage runs under qemu-user through
#    binfmt_misc), cached as a tarball in $MCP_EDGE_FIRMWARE_CACHE (default ~/.cache/mcp-edge-firmware) and
#    unpacked afresh each run; the bundle's overlay unpacked into it;
# 3. inside it, under emulation (chroot): `mcp-edge board check qemu-virt-aarch64`, `mcp-edge doctor` (the neon
#    level), `mcp-edge serve`, and an MCP client session from outside the root (the host's SDK client:
#    initialize, list tools, the fs and sysinfo tools, and the WASM sample plugin's (wasm_hello, its module run by
#    wasmtime's aarch64 build, Cranelift's code under qemu-user): text_stats checked against the same counts as
#    tests/wasm's, a note written and read back); again with MCP_EDGE_ISA capped to the Pi 4's level (armv8crc),
#    with `board check raspberry-pi-4`;
# 4. the aarch64 wheel installed with pip in the root (which has no compiler) and imported there.
# Needs root (apt-get, mounts, chroot). Prints each phase's duration; the doctor output is kept in
# build/firmware/doctor-*.txt. It leaves binfmt_misc mounted with qemu-aarch64 registered (as qemu-user-static's
# package does on a host that boots with systemd-binfmt).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PY=${PYTHON:-.venv/bin/python}
MCP_EDGE=$(dirname "$PY")/mcp-edge
BOARD=qemu-virt-aarch64
PI4=raspberry-pi-4
SUITE=bookworm
MIRROR=${MCP_EDGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT_PKGS=python3,python3-pip,ca-certificates
CACHE=${MCP_EDGE_FIRMWARE_CACHE:-$HOME/.cache/mcp-edge-firmware}
WORK=$ROOT/build/firmware
RFS=$WORK/root
HOST_DEBS=(mmdebstrap arch-test qemu-user-static binfmt-support swupdate openssl)

START=$(date +%s)
LAST=$START
say() { printf '== firmware: %s\n' "$*"; }
die() { printf 'tools/firmware/e2e.sh: %s\n' "$*" >&2; exit 1; }
phase() {  # the duration of the phase that just ended
    local now; now=$(date +%s)
    say "$1 ($((now - LAST)) s; $((now - START)) s in all)"
    LAST=$now
}

[[ $(id -u) -eq 0 ]] || die "needs root (apt-get, binfmt_misc, mounts and chroot); run it as root"
bash tools/deps.sh "${HOST_DEBS[@]}"

# --- binfmt_misc: arm64 binaries run through qemu-user, also inside the chroot (the F flag) -----------------
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    update-binfmts --enable qemu-aarch64 2>/dev/null || cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
fi
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "binfmt_misc's qemu-aarch64 entry is not enabled"
grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "qemu-aarch64 is registered without the F flag"
phase "host packages and binfmt_misc"

# --- the wheel, the bundle, the signed update image ------------------------------------------------------------
# A run killed before its trap leaves the root's /proc, /sys and /dev mounted: unmount them first, and never
# let rm cross into a mount (it would delete the host's device nodes).
if [[ -d $WORK ]]; then
    # (grep finds nothing in the usual case: its exit status 1 must not end the script under pipefail)
    findmnt -rn -o TARGET | { grep -F "$WORK/" || true; } | sort -r | while read -r m; do umount -l "$m"; done
    if findmnt -rn -o TARGET | grep -qF "$WORK/"; then die "$WORK still holds mounts; unmount them first"; fi
fi
rm -rf --one-file-system "$WORK" && mkdir -p "$WORK/out" "$WORK/keys" "$WORK/swupdate-tmp"
export TMPDIR_SWU=$WORK/swupdate-tmp  # swupdate's control sockets go to $TMPDIR: a folder of this run's own
swu_check() {  # swupdate -c; a run that prints success and no error but exits 1 (a race of swupdate 2022.12's
    local i out rc  # exit status with its progress thread on a loaded machine) is repeated, twice at most
    for i in 1 2 3; do
        rc=0; out=$(TMPDIR=$TMPDIR_SWU swupdate -c "$@" 2>&1) || rc=$?
        if ((rc == 0)) || ! grep -q 'SWUPDATE successful' <<<"$out" || grep -q '\[ERROR\]' <<<"$out"; then break; fi
    done
    printf '%s\n' "$out"
    return "$rc"
}
"$PY" tools/wheels.py --arch aarch64
WHEEL=$(ls -t dist/mcp_edge-*-cp311-cp311-manylinux*_aarch64.whl | head -1)
"$PY" -c 'import sys; from pathlib import Path; from mcp_edge.bundle.swupdate import make_signing_key
make_signing_key(Path(sys.argv[1]), "mcp-edge firmware test")' "$WORK/keys"
KEY=$WORK/keys/signer-key.pem CERT=$WORK/keys/signer.pem CA=$WORK/keys/ca.pem
"$MCP_EDGE" bundle --board "$BOARD" -o "$WORK/out" --wheel "$WHEEL" --sign-key "$KEY" --sign-cert "$CERT"
OVERLAY=$(ls "$WORK"/out/mcp-edge-*-"$BOARD"-aarch64.tar.gz)
# The profile sets [firmware] wasm: the overlay carries wasm_hello's module and wasmtime's aarch64 library.
tar -tzf "$OVERLAY" >"$WORK/overlay-files.txt"
grep -qx 'opt/mcp-edge/plugins/wasm_hello/wasm_hello.wasm' "$WORK/overlay-files.txt" \
    || die "the overlay has no wasm_hello.wasm"
grep -Eq '^opt/mcp-edge/lib/python3\.11/site-packages/wasmtime/linux-aarch64/_libwasmtime\.so$' "$WORK/overlay-files.txt" \
    || die "the overlay has no wasmtime library for aarch64"
say "overlay $(basename "$OVERLAY"): $(( $(stat -c %s "$OVERLAY") / 1024 )) KiB, with wasm_hello and wasmtime"
SWU=$(ls "$WORK"/out/mcp-edge-*-"$BOARD"-aarch64.swu)
# SWUpdate's own check: the CMS signature of sw-description (against the CA), the board section and the
# payload's SHA-256; a copy with one payload byte flipped must be refused.
swu_check -i "$SWU" -k "$CA" -H "$BOARD:1.0" >"$WORK/swupdate-check.log" 2>&1 \
    || { cat "$WORK/swupdate-check.log"; die "swupdate -c refused the signed image"; }
"$PY" -c 'import sys; from pathlib import Path; from mcp_edge.bundle.swupdate import cpio_members, cpio_newc_crc
desc, sig, (name, payload) = cpio_members(Path(sys.argv[1]).read_bytes())
bad = bytearray(payload); bad[len(bad) // 2] ^= 0xFF  # cpio checksums right again: the signed hash must catch it
Path(sys.argv[2]).write_bytes(cpio_newc_crc([desc, sig, (name, bytes(bad))]))' "$SWU" "$WORK/tampered.swu"
if swu_check -i "$WORK/tampered.swu" -k "$CA" -H "$BOARD:1.0" >"$WORK/swupdate-tampered.log" 2>&1; then
    die "swupdate -c accepted an image with a flipped payload byte"
fi
grep -q 'HASH mismatch' "$WORK/swupdate-tampered.log" || { cat "$WORK/swupdate-tampered.log"; die "no hash mismatch"; }
say "swupdate -c accepts $(basename "$SWU") and refuses a tampered copy (HASH mismatch)"
phase "aarch64 wheel, bundle and signed SWUpdate image"

# --- the arm64 root filesystem (cached tarball, unpacked afresh) ------------------------------------------------
KEYSTR=$(printf '%s %s %s' "$SUITE" "$ROOT_PKGS" "$MIRROR" | sha256sum | cut -c1-12)
ROOTFS_TAR=$CACHE/rootfs-$SUITE-arm64-$KEYSTR.tar
if [[ ! -s $ROOTFS_TAR ]]; then
    mkdir -p "$CACHE"
    say "mmdebstrap --arch=arm64 $SUITE ($ROOT_PKGS) -> $ROOTFS_TAR"
    partial=$CACHE/.partial-$KEYSTR.tar  # mmdebstrap picks the output format from the .tar name
    mmdebstrap --arch=arm64 --variant=apt --include="$ROOT_PKGS" "$SUITE" "$partial" "$MIRROR" \
        >"$WORK/mmdebstrap.log" 2>&1 || { tail -30 "$WORK/mmdebstrap.log"; die "mmdebstrap failed"; }
    mv -f "$partial" "$ROOTFS_TAR"
    phase "arm64 root filesystem made (cached for the next run)"
fi
cleanup() {
    [[ -n ${SERVER:-} ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    for m in dev/pts dev sys proc; do mountpoint -q "$RFS/$m" && umount -l "$RFS/$m"; done
    return 0
}
trap cleanup EXIT
mkdir -p "$RFS"
tar -xf "$ROOTFS_TAR" -C "$RFS"
tar -xzf "$OVERLAY" -C "$RFS"
mkdir -p "$RFS/var/lib/mcp-edge"
phase "root filesystem unpacked with the overlay"

mount -t proc proc "$RFS/proc"
mount --rbind /sys "$RFS/sys"
mount --rbind /dev "$RFS/dev"
mount --make-rslave "$RFS/sys"  # unmounting them later must not reach the host's own mounts
mount --make-rslave "$RFS/dev"

# Inside the root: a clean environment, the image's own interpreter (the launcher's default).
inside() { chroot "$RFS" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
check_no_compiler() { ! inside sh -c 'command -v gcc || command -v cc || command -v clang' >/dev/null; }
check_no_compiler || die "the arm64 root has a C compiler; the wheel test needs a box without one"
inside uname -m | grep -qx aarch64 || die "the chroot does not run aarch64 binaries"

serve_and_talk() {  # $1: expected ISA level, $2: board id, rest: env for the server
    local isa=$1 board=$2; shift 2
    local port log
    port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log=$WORK/serve-$isa.log; : >"$log"  # there before the wait below reads it
    # exec all the way down (chroot, env, the launcher's exec): $SERVER is the server itself, so SIGTERM reaches it
    (exec chroot "$RFS" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "$@" \
        /opt/mcp-edge/bin/mcp-edge serve --http --port "$port") >"$log" 2>&1 &
    SERVER=$!
    for _ in $(seq 1 600); do
        grep -q 'serving MCP over Streamable HTTP' "$log" && break
        kill -0 "$SERVER" 2>/dev/null || { cat "$log"; die "mcp-edge serve ended before serving"; }
        sleep 0.5
    done
    grep -q 'serving MCP over Streamable HTTP' "$log" || { cat "$log"; die "mcp-edge serve did not start in 300 s"; }
    grep -q "board $board" "$log" || { cat "$log"; die "the server did not run with board $board"; }
    "$PY" tools/firmware/client.py "http://127.0.0.1:$port/mcp" --isa "$isa" --board "$board" --arch aarch64 --wasm \
        || { cat "$log"; die "the MCP session against the arm64 server failed"; }
    kill -TERM "$SERVER"
    wait "$SERVER" || { cat "$log"; die "mcp-edge serve did not stop cleanly on SIGTERM"; }
    SERVER=
    grep -q stopped "$log" || { cat "$log"; die "no clean stop in the server's log"; }
}

# --- the default level: neon ------------------------------------------------------------------------------------
inside /opt/mcp-edge/bin/mcp-edge board check "$BOARD" | tee "$WORK/board-check-neon.txt" \
    || die "board check $BOARD failed inside the arm64 root"
inside /opt/mcp-edge/bin/mcp-edge doctor | tee "$WORK/doctor-neon.txt"
grep -Eq '^ +isa active +neon' "$WORK/doctor-neon.txt" || die "doctor does not report the neon level"
grep -Eq "^ +board +$BOARD " "$WORK/doctor-neon.txt" || die "doctor does not report board $BOARD"
phase "board check and doctor at neon"
serve_and_talk neon "$BOARD"
phase "serve and an MCP session at neon"

# --- capped to the Pi 4's level -------------------------------------------------------------------------------
inside MCP_EDGE_ISA=armv8crc /opt/mcp-edge/bin/mcp-edge doctor | tee "$WORK/doctor-armv8crc.txt"
grep -Eq '^ +isa active +armv8crc' "$WORK/doctor-armv8crc.txt" || die "doctor does not report the armv8crc cap"
inside MCP_EDGE_ISA=armv8crc /opt/mcp-edge/bin/mcp-edge board check "$BOARD" | tee "$WORK/board-check-capped.txt" \
    || die "board check $BOARD failed under the armv8crc cap"
grep -Eq 'WARN +isa level +MCP_EDGE_ISA=armv8crc caps the kernels at armv8crc' "$WORK/board-check-capped.txt" \
    || die "board check does not warn of the cap below the profile's neon"
# The Pi 4's profile: its ISA floor and level hold under the cap; what differs is io_uring, which the Pi 4
# has and qemu-user has not (exit 1, that one check failed).
rc=0
inside MCP_EDGE_ISA=armv8crc /opt/mcp-edge/bin/mcp-edge board check "$PI4" >"$WORK/board-check-pi4.txt" || rc=$?
cat "$WORK/board-check-pi4.txt"
[[ $rc -eq 1 ]] || die "board check $PI4 exited $rc under qemu-user, expected 1 (io_uring)"
grep -Eq 'PASS +isa level +armv8crc' "$WORK/board-check-pi4.txt" || die "the Pi 4's level does not hold under the cap"
[[ $(grep -c FAIL "$WORK/board-check-pi4.txt") -eq 2 && $(grep -Ec 'FAIL +io_uring' "$WORK/board-check-pi4.txt") -eq 1 ]] \
    || die "board check $PI4 failed on more than io_uring"
serve_and_talk armv8crc "$BOARD" MCP_EDGE_ISA=armv8crc
phase "doctor, board checks ($BOARD, $PI4), serve and a session capped at armv8crc"

# --- the aarch64 wheel, installed by pip in the root (no compiler there) ----------------------------------------
mkdir -p "$RFS/tmp/wheels"
cp "$WHEEL" "$RFS/tmp/wheels/"
"$PY" -m pip download -q --disable-pip-version-check --only-binary=:all: --python-version 3.11 --implementation cp \
    --abi cp311 --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux_2_28_aarch64 \
    --platform manylinux_2_34_aarch64 \
    -d "$RFS/tmp/wheels" "$WHEEL"
inside python3 -m pip install -q --no-index --find-links /tmp/wheels --break-system-packages --root-user-action=ignore \
    mcp-edge
inside sh -c 'cd /tmp && python3 -c "import mcp_edge, mcp_edge.native.cpu as c, mcp_edge.native._uring
print(\"wheel:\", mcp_edge.__file__, c.active())"' | tee "$WORK/wheel-import.txt"
grep -q '/usr/local/lib/python3.11/dist-packages/mcp_edge' "$WORK/wheel-import.txt" \
    || die "the wheel's package was not the one imported"
inside /usr/local/bin/mcp-edge board list >/dev/null || die "the wheel's mcp-edge command does not run"
check_no_compiler || die "installing the wheel brought a compiler"
phase "the aarch64 wheel installed by pip and imported in the arm64 root"

say "passed in $(( $(date +%s) - START )) s; doctor output in $WORK/doctor-neon.txt"
