"""What a WASM engine costs the wasm host: wasmtime (PyPI ``wasmtime``) driven directly with our small ABI, against
Extism (PyPI ``extism``, its own ABI and kernel), running the same tiny tool compiled from the same C.

The tool is ``add``: JSON ``{"a": 2, "b": 3}`` in, JSON ``{"sum": 5}`` out. Its C body is shared; a thin wrapper
fits it to each ABI (ours: ``mcp_call`` with the arguments in memory the host wrote through ``mcp_alloc``;
Extism's: ``input_load_u8``/``output_set`` imports from ``extism:host/env``). Both are compiled here with clang
for wasm32-wasi. Each figure is measured in a fresh interpreter, ``--runs`` times, and the median is reported:

* import: ``import wasmtime`` / ``import extism`` (ms) and the resident memory it adds (MiB);
* start: from the imported module to the first answer: compile, instantiate, first call (ms);
* RSS: resident memory added by import, start and ``--calls`` calls (MiB), over a bare interpreter;
* calls/s: ``--calls`` calls of the tool, JSON encoded and decoded on the host side as a plugin host must.

Rows: wasmtime through its public ``Func.__call__``, with its on-disk compile cache off and on (Extism turns
wasmtime's cache on by default: its start figure is a warm one after the first run); wasmtime through the wasm
host's unchecked calls (``runtime._Direct``; mcp_edge's module imported, which its RSS counts); Extism; and
``mcp_edge wasm host``, our whole call path (``WasmPlugin.call_sync``: schema check, instance pool, deadline,
result decoding) with its unchecked direct calls (``runtime._Direct``); its start includes importing mcp_edge's
plugin machinery and loading Settings. Run it with the interpreter whose site-packages
hold the engines::

    python tools/wasm_engine_cost.py --runs 5 --calls 5000

An engine that is not installed is reported as such, not measured. Needs clang, lld and wasi-libc.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fresh_runs import PROBE_HEAD, fresh_samples, median

ROOT = Path(__file__).resolve().parents[1]

COMMON = r"""
#include "mcp_edge_wasm.h"
/* the tool: {"a": x, "b": y} -> {"sum": x + y} (integers, as the benchmark sends) */
static int64_t add(const char *args, size_t n, me_buf *out) {
    double a = 0, b = 0;
    if (me_json_get_number(args, n, "a", &a) || me_json_get_number(args, n, "b", &b)) return -1;
    long long s = (long long)(a + b);
    me_buf_puts(out, "{\"sum\":");
    if (s < 0) { me_buf_puts(out, "-"); s = -s; }
    me_buf_uint(out, (uint64_t)s);
    me_buf_puts(out, "}");
    return 0;
}
"""

OURS = COMMON + r"""
MCP_EDGE_WASM_PLUGIN()
ME_EXPORT("mcp_catalog") int64_t mcp_catalog(void) {
    me_buf b = {0};
    me_buf_puts(&b, "{\"tools\":[{\"name\":\"add\",\"inputSchema\":{\"type\":\"object\",\"properties\":"
                    "{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"integer\"}},\"required\":[\"a\",\"b\"]}}]}");
    return me_buf_answer(&b);
}
ME_EXPORT("mcp_call") int64_t mcp_call(const char *name, int32_t name_len, const char *args, int32_t args_len) {
    (void)name; (void)name_len;
    me_buf sum = {0}, out = {0};
    if (add(args, (size_t)args_len, &sum)) return me_error("a and b: expected numbers");
    me_buf_puts(&out, "{\"content\":[{\"type\":\"text\",\"text\":");
    me_buf_json_string(&out, sum.data, sum.len);
    me_buf_puts(&out, "}],\"structuredContent\":");
    me_buf_put(&out, sum.data, sum.len);
    me_buf_puts(&out, "}");
    free(sum.data);
    return me_buf_answer(&out);
}
"""

EXTISM = COMMON + r"""
#define EX(name) __attribute__((import_module("extism:host/env"), import_name(name)))
EX("input_length") uint64_t ex_input_length(void);
EX("input_load_u8") uint32_t ex_input_load_u8(uint64_t offs);
EX("alloc") uint64_t ex_alloc(uint64_t n);
EX("store_u8") void ex_store_u8(uint64_t offs, uint32_t v);
EX("output_set") void ex_output_set(uint64_t offs, uint64_t n);
ME_EXPORT("add") int32_t add_export(void) {
    size_t n = (size_t)ex_input_length();
    char *in = malloc(n + 1);
    for (size_t i = 0; i < n; i++) in[i] = (char)ex_input_load_u8(i);
    me_buf out = {0};
    int rc = (int)add(in, n, &out);
    free(in);
    if (rc) return 1;
    uint64_t offs = ex_alloc(out.len);
    for (size_t i = 0; i < out.len; i++) ex_store_u8(offs + i, (unsigned char)out.data[i]);
    ex_output_set(offs, out.len);
    free(out.data);
    return 0;
}
"""

PROBE = PROBE_HEAD + r"""
engine, module, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = rss()
t = time.perf_counter()
try:
    lib = __import__("extism" if engine == "extism" else "wasmtime")
    if engine == "mcp_edge":
        import mcp_edge.plugin.wasm.runtime
except ImportError as exc:
    print(json.dumps({"missing": str(exc)}))
    raise SystemExit(0)
import_ms = (time.perf_counter() - t) * 1e3
import_kib = rss() - base
args = [json.dumps({"a": i, "b": 3}).encode() for i in range(calls)]
t = time.perf_counter()
if engine.startswith("wasmtime"):
    w = lib
    config = w.Config()
    if engine in ("wasmtime-cache", "wasmtime-direct"):
        config.cache = True  # wasmtime's on-disk compile cache, as Extism uses by default
    eng = w.Engine(config)
    mod = w.Module.from_file(eng, module)
    linker = w.Linker(eng)
    linker.define_wasi()
    store = w.Store(eng)
    store.set_wasi(w.WasiConfig())
    inst = linker.instantiate(store, mod)
    ex = inst.exports(store)
    ex["_initialize"](store)
    mem, alloc, free, call_fn = ex["memory"], ex["mcp_alloc"], ex["mcp_free"], ex["mcp_call"]
    name = b"add"
    if engine == "wasmtime-direct":  # the wasm host's unchecked calls (its module imported after the timing)
        from mcp_edge.plugin.wasm.runtime import _Direct
        d_alloc, d_free = _Direct(store, alloc, 1, False), _Direct(store, free, 1, False)
        d_call = _Direct(store, call_fn, 4, True)
        def call(data):  # as the host does it: name and arguments in one buffer
            np = d_alloc(len(name) + len(data)); mem.write(store, name + data, np)
            packed = d_call(np, len(name), np + len(name), len(data)) & 0xFFFFFFFFFFFFFFFF
            ptr, n = packed >> 32, packed & 0xFFFFFFFF
            out = mem.read(store, ptr, ptr + n)
            d_free(ptr); d_free(np)
            return json.loads(out)["structuredContent"]
    else:
        def call(data):
            np = alloc(store, len(name)); mem.write(store, name, np)
            ap = alloc(store, len(data)); mem.write(store, data, ap)
            packed = call_fn(store, np, len(name), ap, len(data)) & 0xFFFFFFFFFFFFFFFF
            ptr, n = packed >> 32, packed & 0xFFFFFFFF
            out = mem.read(store, ptr, ptr + n)
            free(store, ptr); free(store, np); free(store, ap)
            return json.loads(out)["structuredContent"]
elif engine == "extism":
    plugin = lib.Plugin({"wasm": [{"path": module}]}, wasi=True)
    def call(data):
        return json.loads(plugin.call("add", data))
else:  # our whole wasm host path
    import asyncio
    from pathlib import Path
    from mcp_edge.board import Settings
    from mcp_edge.plugin.manifest import Manifest
    from mcp_edge.plugin.wasm import effective
    from mcp_edge.plugin.wasm.runtime import WasmPlugin
    from mcp_edge.plugin.defaults import DefaultPluginContext
    import tempfile
    folder = Path(module).parent
    m = Manifest(id="bench", version="1", kind="wasm", folder=folder, wasm=Path(module).name)
    settings = Settings.load(environ={"MCP_EDGE_DATA_DIR": tempfile.mkdtemp()})
    p = WasmPlugin(m, effective({}, settings, "bench"))
    asyncio.run(p.initialize({}, DefaultPluginContext("bench", settings=settings, config={})))
    def call(data):
        return p.call_sync("add", data, None, None).structuredContent
first = call(args[0])
assert first == {"sum": 3}, first
start_ms = (time.perf_counter() - t) * 1e3
t = time.perf_counter()
for a in args:
    call(a)
dt = time.perf_counter() - t
assert call(json.dumps({"a": 2, "b": 3}).encode()) == {"sum": 5}
print(json.dumps({"import_ms": import_ms, "import_kib": import_kib, "start_ms": start_ms,
                  "rss_kib": rss() - base, "base_kib": base, "calls_s": calls / dt}))
"""


def build(out: Path, source: str) -> Path:
    clang = shutil.which("clang")
    if clang is None:
        raise SystemExit("needs clang for wasm32-wasi: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32")
    c = out.with_suffix(".c")
    c.write_text(source)
    subprocess.run([clang, "--target=wasm32-wasi", "-O2", "-mexec-model=reactor", f"-I{ROOT / 'plugins/include'}",
                    "-Wl,--strip-debug", "-o", str(out), str(c)], check=True)
    return out


def measure(engine: str, module: Path, runs: int, calls: int, python: str) -> dict[str, object]:
    samples = fresh_samples(python, PROBE, [engine, str(module), str(calls)], runs, cwd=ROOT, label=engine)
    if isinstance(samples, str):
        return {"engine": engine, "missing": samples}

    def med(key: str) -> float:
        return median(samples, key)

    return {"engine": engine, "import_ms": round(med("import_ms"), 1), "import_mib": round(med("import_kib") / 1024, 1),
            "start_ms": round(med("start_ms"), 1), "rss_mib": round(med("rss_kib") / 1024, 1),
            "calls_s": round(med("calls_s")), "interpreter_mib": round(med("base_kib") / 1024, 1), "runs": runs,
            "calls": calls}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--python", default=sys.executable, help="the interpreter to measure with")
    ap.add_argument("--json", action="store_true", help="one JSON object per engine")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ours = build(Path(tmp) / "ours.wasm", OURS)
        extism = build(Path(tmp) / "extism.wasm", EXTISM)
        runs = max(1, args.runs)
        rows = [measure(engine, extism if engine == "extism" else ours, runs, args.calls, args.python)
                for engine in ("wasmtime", "wasmtime-cache", "wasmtime-direct", "extism", "mcp_edge")]
    if args.json:
        for row in rows:
            print(json.dumps({**row, "cpu": cpu_model(), "arch": platform.machine()}))
        return 0
    names = {"wasmtime": "wasmtime, public Func calls (our ABI)",
             "wasmtime-cache": "wasmtime, public Func calls, compile cache on",
             "wasmtime-direct": "wasmtime, unchecked calls (runtime._Direct), compile cache on",
             "extism": "extism (its compile cache on, by default)",
             "mcp_edge": "mcp_edge wasm host (wasmtime, unchecked calls)"}
    print(f"CPU: {cpu_model()} ({platform.machine()}); {args.calls} calls, median of {args.runs} runs")
    print("| engine | import (ms) | import RSS (MiB) | start (ms) | RSS added (MiB) | calls/s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        if "missing" in row:
            print(f"| {names[str(row['engine'])]} | not installed | | | | |")
        else:
            print(f"| {names[str(row['engine'])]} | {row['import_ms']} | {row['import_mib']} | {row['start_ms']} | "
                  f"{row['rss_mib']} | {row['calls_s']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
