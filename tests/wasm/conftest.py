"""Fixtures of the WASM plugin suite: the test module (tests/wasm/fixtures/misbehave.c) built once, and the
sample plugin's module (built by setup.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from wasm_helpers import FIXTURES, WASM_HELLO, build_c, need_wasmtime


@pytest.fixture(scope="session")
def misbehave(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """misbehave.wasm: ok, spin, hog, fetch, read, write, shout."""
    need_wasmtime()
    return build_c(FIXTURES / "misbehave.c", tmp_path_factory.mktemp("wasm") / "misbehave.wasm")


@pytest.fixture(scope="session")
def wasm_hello() -> Path:
    need_wasmtime()
    module = WASM_HELLO / "wasm_hello.wasm"
    if not module.is_file():
        pytest.fail(f"{module} is missing: setup.py builds it (make build, or python setup.py build_ext --inplace)")
    return WASM_HELLO
