# mcp_edge: `make run` and `make test` set up everything they need on a fresh machine.
# SPDX-License-Identifier: Apache-2.0

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mcp-edge-installed
# Debian packages the build and the test suite need (liburing/libnuma: the data
# path; libisal2 and fio: peers of the CRC32C and I/O benches; libjemalloc2 and
# libmimalloc2.0: peers of the slab bench; strace: the frame I/O test of the system calls; swupdate and
# openssl: the signed update image's tests, checked by SWUpdate's own tool; podman, runc, catatonit, netavark,
# aardvark-dns, iptables and busybox-static: the real engine the containers and kubernetes plugins are tested
# against, started by the tests themselves, with a local busybox image and nothing pulled; clang, lld, wasi-libc and
# libclang-rt-dev-wasm32: the WASM plugins, compiled from C for wasm32-wasi by setup.py and by the tests).
DEBS := gcc make pkg-config python3-venv liburing-dev libnuma-dev libisal2 fio libjemalloc2 libmimalloc2.0 strace \
	swupdate openssl podman runc catatonit netavark aardvark-dns iptables busybox-static \
	clang lld wasi-libc libclang-rt-dev-wasm32

.PHONY: all setup deps build run test lint pytest bench wheels test-firmware test-perf test-aarch64 test-sanitize conformance fuzz clean
FUZZ_TIME ?= 300

all: setup

deps:
	@bash tools/deps.sh $(DEBS)

$(STAMP): pyproject.toml setup.py
	@$(MAKE) --no-print-directory deps
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mcp_edge needs Python >= 3.11; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=77" wheel "Cython>=3.0.10"
	$(PY) -m pip install -q --no-build-isolation -e '.[test,perf]'
	touch $(STAMP)

build: $(STAMP)
	@$(PY) setup.py -q build_ext --inplace

setup: deps build

run: setup
	$(VENV)/bin/mcp-edge serve

lint: setup
	$(VENV)/bin/ruff check mcp_edge tests perf tools plugins setup.py
	$(VENV)/bin/mypy --strict mcp_edge
	for p in plugins/*/plugin.py; do $(VENV)/bin/mypy --strict $$p || exit 1; done
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/cython-lint mcp_edge/native

pytest: setup
	$(PY) -m pytest

test: lint pytest

bench: setup
	@mkdir -p perf-results
	$(VENV)/bin/mcp-edge perf run --json perf-results/latest.json

conformance: setup
	bash tools/conformance.sh

# Long fuzzing: the hypothesis properties with many examples, then each atheris target FUZZ_TIME seconds (x86_64).
# (make test runs the same properties briefly and each atheris target for 15 s.)
fuzz: setup
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q tests/fuzz --ignore=tests/fuzz/test_atheris_short.py
	$(PY) tools/fuzz/run.py --time $(FUZZ_TIME)

# The perf suite end to end: a --quick run, compare against itself (must pass) and against a copy with a planted
# regression (must fail), then the report and its PNGs read back.
test-perf: setup
	@mkdir -p perf-results
	$(VENV)/bin/mcp-edge perf run --quick --json perf-results/quick.json
	$(VENV)/bin/mcp-edge perf compare perf-results/quick.json perf-results/quick.json
	$(PY) tools/perf_selftest.py plant perf-results/quick.json perf-results/quick-regressed.json
	@$(VENV)/bin/mcp-edge perf compare perf-results/quick.json perf-results/quick-regressed.json; rc=$$?; \
	  if [ $$rc -ne 1 ]; then echo "perf compare: exit $$rc on a planted regression, expected 1" >&2; exit 1; fi; \
	  echo "perf compare: exit 1 on the planted regression, as it should"
	$(VENV)/bin/mcp-edge perf report perf-results/quick.json -o perf-results/report
	$(PY) tools/perf_selftest.py pngs perf-results/report

# manylinux wheels of mcp_edge for x86_64 and aarch64 in dist/ (auditwheel-repaired; aarch64 cross-compiled).
wheels: setup
	PYTHON=$(PY) $(PY) tools/wheels.py

# The qemu-virt-aarch64 bundle end to end in an arm64 Debian root under qemu-user (tools/firmware/e2e.sh; root).
test-firmware: setup
	PYTHON=$(PY) bash tools/firmware/e2e.sh

test-aarch64: setup
	PYTHON=$(PY) bash tools/aarch64/test.sh

# The slab, ring and frame C code under ThreadSanitizer and ASan+UBSan (tests/csrc/*.c stress programs),
# then the native, ipc and frame-I/O pytest suites against an ASan+UBSan build in a throw-away copy.
test-sanitize: setup
	PYTHON=$(PY) bash tools/sanitize/run.sh --python

clean:
	rm -rf build .cross mcp_edge/native/*.so mcp_edge/native/_*.c plugins/*/*.so plugins/*/*.wasm *.egg-info
