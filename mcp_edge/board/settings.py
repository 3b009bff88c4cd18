"""One typed ``Settings`` for the whole runtime: the board profile, then ``MCP_EDGE_*`` variables, then the caller.

This module is the only place that reads the environment for the runtime (the CPU level, picked by the native
extension at import, and the board choice, made before any profile is read, are the two knobs that come first).
Every limit the runtime enforces is a field here with its default, a section and a sentence; ``mcp-edge doctor``
and the README list them from :data:`FIELDS`.

Layers, each overriding the one before:

1. the field's default;
2. the board profile: its ``[paths]`` and ``[settings]`` tables (unknown keys are refused, naming the file and
   the key) and ``[plugins]`` (``enabled``/``disabled`` lists, ``entry_points``, and one ``[plugins.<id>]``
   table of config per plugin);
3. the environment: ``MCP_EDGE_<FIELD>`` for each field (``MCP_EDGE_MAX_FRAME=8388608``), parsed by the
   field's kind (lists are comma-separated, paths ``:``-separated; booleans ``1/0/true/false/yes/no/on/off``);
4. the caller: ``Settings.load(**overrides)`` and ``mcp-edge serve --set FIELD=VALUE``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

from mcp_edge.board.environ import process_environ
from mcp_edge.board.profiles import Board, detect
from mcp_edge.errors import ConfigError

__all__ = ["ENV_PREFIX", "FIELDS", "ISOLATION_MODES", "FieldInfo", "PluginSettings", "Settings", "env_setting",
           "installed_plugins_dir", "parse_value"]

ENV_PREFIX: Final = "MCP_EDGE_"
KiB: Final = 1024
MiB: Final = 1024 * 1024
# Limits of the slab arena's layout (csrc/slab/me_slab.h), checked here so a profile gets the error.
SLAB_MAX_CLASSES: Final = 16
SLAB_MAX_SIZE: Final = 1 << 30
SLAB_MAX_COUNT: Final = 1 << 24
# Where a plugin runs: in the runtime's process, or in a worker process of its own.
ISOLATION_MODES: Final = ("inproc", "process")


@dataclass(frozen=True)
class FieldInfo:
    """What doctor and the README say about one setting."""

    name: str
    section: str
    kind: str  # int, float, str, bool, strs, ints, path, paths, opt_int, mapping, idmap (plugin id -> word)
    doc: str
    minimum: float | None = None
    env: str = ""
    choices: tuple[str, ...] = ()


def _s(default: Any, section: str, kind: str, doc: str, minimum: float | None = None, env: str = "",
       choices: tuple[str, ...] = ()) -> Any:
    meta = {"section": section, "kind": kind, "doc": doc, "minimum": minimum, "env": env, "choices": choices}
    if isinstance(default, (dict, list, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Everything the runtime is configured with; immutable, so a running server's view cannot drift."""

    board: Board
    data_dir: Path = _s(Path("/var/lib/mcp-edge"), "paths", "path",
                        "Where the runtime and its plugins keep their data (plugin-data/<id>, keys, logs).")
    plugin_dirs: tuple[Path, ...] = _s((), "paths", "paths",
                                       "Folders searched for plugins, in order; the environment's are put first.")
    # -- plugins ---------------------------------------------------------------------------------------
    plugin_config: Mapping[str, Mapping[str, Any]] = _s({}, "plugins", "mapping",
                                                        "Config per plugin id (the profile's [plugins.<id>] tables).")
    enabled_plugins: frozenset[str] | None = _s(None, "plugins", "strs", "Only these plugin ids load (unset: all).")
    disabled_plugins: frozenset[str] = _s(frozenset(), "plugins", "strs", "Plugin ids that never load.")
    entry_points: bool = _s(True, "plugins", "bool", "Discover plugins installed as Python entry points.")
    entry_point_cache: bool = _s(True, "plugins", "bool", "Cache the entry-point scan on disk.")
    cache_dir: Path = _s(Path("~/.cache/mcp-edge"), "plugins", "path",
                         "Where the entry-point scan is cached ($XDG_CACHE_HOME/mcp-edge when that is set).")
    plugin_isolation: Mapping[str, str] = _s({}, "plugins", "idmap",
                                             "Isolation per plugin id, inproc or process, over the manifest's "
                                             "(the profile's [plugins] isolation table; "
                                             "MCP_EDGE_PLUGIN_ISOLATION=id=mode,...).")
    max_published_resources: int = _s(1000, "plugins", "int",
                                      "Concrete resources one plugin may publish for resources/list (each "
                                      "matching one of its templates: a container, a Kubernetes object).", 0)
    init_timeout_s: float = _s(30.0, "plugins", "float",
                               "How long a plugin's initialize may take before the plugin fails.", 0.001)
    plugin_shutdown_timeout_s: float = _s(10.0, "plugins", "float",
                                          "How long a plugin's shutdown may take before it is marked failed.", 0.0)
    native_drain_s: float = _s(5.0, "plugins", "float",
                               "At shutdown, how long running native calls may finish before the plugin stops.",
                               0.0)
    # -- mounted MCP servers (bridge plugins, docs/bridge.md) ----------------------------------------------------
    bridge_max_message: int = _s(8 * MiB, "plugins", "int",
                                 "Largest message a mounted MCP server may send (one stdio line, one HTTP body or "
                                 "SSE event); past it the server is stopped and restarted.", 1024)
    bridge_max_list_pages: int = _s(100, "plugins", "int",
                                    "Pages of tools/resources/prompts a mounted server may answer one listing with; "
                                    "past it the plugin fails.", 1)
    bridge_stderr_line_max: int = _s(2048, "plugins", "int",
                                     "A stdio server's stderr goes to the runtime's log line by line, each cut at "
                                     "this many bytes.", 80)
    bridge_max_pending: int = _s(1024, "plugins", "int",
                                 "Messages from one mounted server (progress, log lines, resource updates, its own "
                                 "requests) on their way at once; past it more are dropped, and logged.", 1)
    # -- WASM plugins: defaults of a plugin's [wasm] table, and the box's ceilings over it ------------------
    wasm_memory_mb: int = _s(64, "plugins", "int",
                             "A WASM plugin's linear-memory cap in MiB when its [wasm] memory_mb says none.", 1)
    wasm_memory_max_mb: int = _s(512, "plugins", "int",
                                 "The most memory (MiB) any WASM plugin gets, whatever its [wasm] memory_mb asks.", 1)
    wasm_deadline_ms: int = _s(5000, "plugins", "int",
                               "A WASM plugin call's wall-clock limit (ms) when its [wasm] deadline_ms says none.", 1)
    wasm_deadline_max_ms: int = _s(60000, "plugins", "int",
                                   "The longest any WASM plugin call may run (ms), whatever its deadline_ms asks.", 1)
    wasm_host_functions: tuple[str, ...] = _s(("log", "progress", "data_read", "data_write", "http_get"),
                                              "plugins", "strs",
                                              "Host functions the box lets WASM plugins be granted (a plugin "
                                              "gets those its [wasm] host_functions also names).")
    wasm_http_max_bytes: int = _s(1 << 20, "plugins", "int",
                                  "Largest response body (bytes) a WASM plugin's http_get may receive.", 0)
    wasm_notes_per_call: int = _s(1000, "plugins", "int",
                                  "Log lines and progress notifications one WASM plugin call may send together; "
                                  "past it the rest are dropped (one warning says so).", 0)
    wasm_data_max_mb: int = _s(64, "plugins", "int",
                               "Most a WASM plugin's data_write may fill its data folder to (MiB, each file and "
                               "folder counted in 4 KiB blocks); past it -EDQUOT. Writable WASI preopens are not "
                               "counted.", 1)
    wasm_idle_instances: int = _s(4, "plugins", "int",
                                  "Idle instances kept per WASM plugin for the next calls (0: a fresh one each call).",
                                  0)
    wasm_threads: int = _s(8, "plugins", "int",
                           "Threads that run one WASM plugin's calls (each plugin its own pool, so runaway calls "
                           "up to their deadlines hold up only that plugin's later calls); more calls wait.", 1)
    wasm_compile_cache: bool = _s(False, "plugins", "bool",
                                  "Keep WASM plugins' compiled code in cache_dir/wasmtime, so a load skips compiling "
                                  "(faster start, less memory); the cache holds native code the runtime runs: keep "
                                  "that folder writable by the runtime's user only.")
    server_name: str = _s("mcp-edge", "protocol", "str", "serverInfo.name sent to clients.")
    instructions: str | None = _s(None, "protocol", "str", "Instructions sent to clients at initialize.")
    plugin_environ: tuple[str, ...] = _s(("DOCKER_HOST", "DOCKER_API_VERSION", "DOCKER_TLS_VERIFY",
                                          "DOCKER_CERT_PATH", "KUBECONFIG"), "plugins", "strs",
                                         "Variables of the runtime's environment, besides MCP_EDGE_*, that plugins "
                                         "see in settings.environ (where the container engine and the cluster are).")
    environ: Mapping[str, str] = _s({}, "plugins", "mapping",
                                    "The MCP_EDGE_* variables seen at load (plugin config overrides come from it), "
                                    "and those plugin_environ names.")
    # -- protocol ----------------------------------------------------------------------------------------
    page_size: int = _s(100, "protocol", "int", "Items per page of tools/list, resources/list and prompts/list.", 1)
    max_input_rounds: int = _s(8, "protocol", "int",
                               "Input-required rounds one request may take before it fails.", 1)
    request_state_ttl_s: float = _s(600.0, "protocol", "float",
                                    "How long a requestState handed to a client stays valid.", 1.0)
    max_inflight: int = _s(256, "protocol", "int",
                           "Requests one session may have running at once; past it a retryable busy error.", 1)
    max_listeners: int = _s(64, "protocol", "int",
                            "subscriptions/listen streams open at once on the whole server.", 1)
    retry_after_s: float = _s(1.0, "protocol", "float",
                              "The wait suggested by a busy refusal (Retry-After, data.retryAfterMs).", 0.0)
    # -- transports ----------------------------------------------------------------------------------------
    max_frame: int = _s(4 * MiB, "transport", "int",
                        "Largest message a client may send: one stdio/unix line or one HTTP body.", 1024)
    max_depth: int = _s(64, "transport", "int",
                        "Deepest nesting of arrays and objects in a client's message; deeper gets -32600.", 2)
    max_out_frame: int = _s(8 * MiB, "transport", "int",
                            "Largest message the server sends; a bigger response becomes an error naming the limit.",
                            1024)
    output_backlog: int = _s(16 * MiB, "transport", "int",
                             "Unsent output one stdio/unix client may have pending before reading pauses.", 64 * KiB)
    stdio_pipe_size: int = _s(1 * MiB, "transport", "int",
                              "Buffer asked for the stdio pipes (F_SETPIPE_SZ, up to /proc/sys/fs/pipe-max-size), so "
                              "a large answer crosses in few wake-ups; 0 leaves the pipes as they are.", 0)
    drain_timeout_s: float = _s(5.0, "transport", "float",
                                "When a stdio or unix client ends its input (EOF), how long its in-flight requests "
                                "may finish and be answered; signals use shutdown_timeout_s.", 0.0)
    spin_us: int = _s(-1, "transport", "int",
                      "Microseconds the event loop polls before sleeping (-1: 100 when the process may run on "
                      "several CPUs, else 0).", -1)
    transport_mode: str = _s("http", "transport", "str",
                             "What `mcp-edge serve` serves with no --stdio/--http/--unix flag.",
                             choices=("http", "stdio", "unix"))
    unix_path: str = _s("", "transport", "str",
                        "The socket `serve` listens on in unix mode without --unix ('': <data_dir>/mcp-edge.sock).")
    asyncio_tls: bool = _s(False, "transport", "bool",
                           "Keep asyncio's TLS support loaded (costs about 4.5 MiB of RSS); for plugins that need it.")
    # -- http ----------------------------------------------------------------------------------------------
    http_host: str = _s("127.0.0.1", "http", "str", "Address the HTTP transport binds.")
    http_port: int = _s(8765, "http", "int", "Port the HTTP transport binds (0: any free port).", 0)
    allowed_origins: tuple[str, ...] = _s((), "http", "strs",
                                          "Origins (and their hosts) allowed besides loopback; '*' allows any "
                                          "Origin but never turns the Host check off.")
    max_body: int = _s(4 * MiB, "http", "int", "Largest HTTP request body; past it 413.", 1024)
    max_head: int = _s(32 * KiB, "http", "int", "Largest HTTP request head (request line and headers); past it 431.",
                       1024)
    head_timeout_s: float = _s(10.0, "http", "float", "Time a client has to send a whole request head; then 408.",
                               0.1)
    body_timeout_s: float = _s(30.0, "http", "float", "Time a client has to send a whole request body; then 408.",
                               0.1)
    keepalive_s: float = _s(75.0, "http", "float", "An idle keep-alive connection is closed after this.", 0.1)
    max_connections: int = _s(256, "http", "int", "Open HTTP connections at once; past it 503 with Retry-After.", 1)
    accept_backoff_s: float = _s(0.5, "http", "float",
                                 "Pause in accepting when the process is out of file descriptors.", 0.01)
    max_sessions: int = _s(1024, "http", "int", "Handshake-era HTTP sessions at once.", 1)
    session_idle_s: float = _s(600.0, "http", "float", "A session idle this long is reaped.", 0.01)
    session_min_idle_s: float = _s(60.0, "http", "float",
                                   "A session must be idle at least this long before a newcomer may evict it; "
                                   "when none is, the newcomer gets 503 with Retry-After.", 0.0)
    stream_ping_s: float = _s(15.0, "http", "float", "A quiet SSE stream gets a comment this often.", 0.1)
    stream_backlog: int = _s(4 * MiB, "http", "int", "A GET stream whose client lets this much pile up is dropped.",
                             64 * KiB)
    # -- io --------------------------------------------------------------------------------------------------
    io_uring_entries: int = _s(256, "io", "int",
                               "Submission-queue entries of the process's io_uring ring (the threads engine runs "
                               "min(entries, 32) threads).", 1)
    io_engine: str = _s("auto", "io", "str", "I/O engine: uring, threads or auto (uring, else threads).",
                        env="MCP_EDGE_IO", choices=("uring", "threads", "auto"))
    # -- ipc: slab pools and shared-memory rings ------------------------------------------------------------
    slab_sizes: tuple[int, ...] = _s((64, 256, KiB, 4 * KiB, 16 * KiB, 64 * KiB), "ipc", "ints",
                                     "Block sizes of the slab pools' classes, ascending (bytes, multiples of 64).", 64)
    slab_counts: tuple[int, ...] = _s((1024, 512, 256, 128, 64, 16), "ipc", "ints",
                                      "Blocks per slab class, one per size (pre-faulted and kept).", 1)
    slab_numa: bool = _s(True, "ipc", "bool",
                         "One slab arena per NUMA node, bound to it, used by the CPUs of that node.")
    ring_entries: int = _s(1024, "ipc", "int", "Descriptors a shared-memory ring holds (a power of two).", 2)
    ring_spin_us: int = _s(50, "ipc", "int",
                           "How long a ring's consumer spins for frames before it sleeps (0: never; never when "
                           "both sides may share one CPU; a producer held back never spins).", 0)
    ring_payload_crc: bool = _s(False, "ipc", "bool",
                                "Frames on a ring also carry a CRC32C of their shared-memory payload.")
    ipc_connect_timeout_s: float = _s(5.0, "ipc", "float",
                                      "Time a ring's connect or accept handshake may take.", 0.001)
    # -- supervisor: worker processes, health, recovery, shutdown -------------------------------------------
    shutdown_timeout_s: float = _s(10.0, "supervisor", "float",
                                   "At SIGTERM/SIGINT, how long in-flight calls may finish before what is left is "
                                   "cancelled with an error (one budget for every transport and host).", 0.0)
    heartbeat_interval_s: float = _s(1.0, "supervisor", "float",
                                     "How often a worker process proves it is alive over its ring.", 0.01)
    heartbeat_misses: int = _s(3, "supervisor", "int",
                               "Heartbeats a worker may miss in a row before it is called hung and restarted.", 1)
    restart_backoff_base_s: float = _s(0.1, "supervisor", "float",
                                       "First wait before restarting a dead worker; doubles on each restart in a "
                                       "row.", 0.0)
    restart_backoff_cap_s: float = _s(30.0, "supervisor", "float", "Longest wait between restarts of a worker.",
                                      0.0)
    restart_backoff_jitter: float = _s(0.2, "supervisor", "float",
                                       "Random spread of each restart wait, as a fraction of it (0.2: +-20%).", 0.0)
    breaker_failure_ratio: float = _s(0.5, "supervisor", "float",
                                      "Failed share of a plugin's recent calls that opens its circuit breaker.",
                                      0.0)
    breaker_window: int = _s(20, "supervisor", "int",
                             "Recent calls the breaker judges a plugin by (crashes and timeouts count as failed).",
                             1)
    breaker_min_calls: int = _s(5, "supervisor", "int",
                                "Calls in the window before the breaker may open at all.", 1)
    breaker_open_s: float = _s(10.0, "supervisor", "float",
                               "How long an open breaker refuses calls before it lets probes through.", 0.0)
    breaker_probes: int = _s(1, "supervisor", "int",
                             "Probe calls a half-open breaker lets through; all succeeding closes it.", 1)
    plugin_concurrency: int = _s(32, "supervisor", "int",
                                 "Calls one plugin runs at once (its bulkhead); more wait in its queue.", 1)
    plugin_queue: int = _s(128, "supervisor", "int",
                           "Calls that may wait for one plugin; past it a retryable busy error at once.", 0)
    tool_timeout_s: float = _s(60.0, "supervisor", "float",
                               "Deadline of a call whose client and tool set none; past it the call is cancelled.",
                               0.001)
    memory_pressure_shed: float = _s(40.0, "supervisor", "float",
                                     "Memory pressure (PSI some avg10, %) above which low-priority calls are "
                                     "refused (0: never).", 0.0)
    reload_watch: bool = _s(True, "supervisor", "bool",
                            "Watch plugin folders (inotify): hot-reload a plugin whose files change, add or "
                            "remove one whose folder appears or goes.")
    worker_rlimit_as: int = _s(0, "supervisor", "int",
                               "Address-space limit of each worker process in bytes (RLIMIT_AS; 0: none).", 0)
    worker_rlimit_nofile: int = _s(1024, "supervisor", "int",
                                   "Open-file limit of each worker process (RLIMIT_NOFILE).", 16)
    watchdog_s: float = _s(30.0, "supervisor", "float",
                           "WatchdogSec of the systemd unit (mcp-edge systemd-unit); the runtime pings at half "
                           "of what systemd sets.", 1.0)
    service_memory_max: int = _s(0, "supervisor", "int",
                                 "MemoryMax of the whole service in its systemd unit, bytes (0: none).", 0)
    worker_memory_max: int = _s(0, "supervisor", "int",
                                "cgroup v2 memory.max of each worker in bytes, where the cgroup is writable "
                                "(0: none).", 0)
    malloc_mmap_threshold: int = _s(4 * MiB, "supervisor", "int",
                                    "The runtime's and its workers' heap serves allocations below this many bytes "
                                    "(glibc M_MMAP_THRESHOLD; 0: glibc's own), so a message of a few MiB reuses "
                                    "memory instead of faulting fresh pages.", 0)
    malloc_keep: int = _s(8 * MiB, "supervisor", "int",
                          "Free heap the runtime and its workers keep for the next message before giving it back "
                          "(glibc M_TRIM_THRESHOLD; 0: glibc's own).", 0)
    # -- TLS (HTTP) ------------------------------------------------------------------------------------------------
    tls_cert: str = _s("", "tls", "str",
                       "PEM certificate chain of the HTTP transport: set, it serves HTTPS ('': plain HTTP, and "
                       "OpenSSL is never loaded).")
    tls_key: str = _s("", "tls", "str", "PEM private key of tls_cert ('': in the tls_cert file).")
    tls_client_ca: str = _s("", "tls", "str",
                            "PEM CA bundle that signs client certificates: set, mutual TLS (the certificate's "
                            "name becomes the principal, kind certificate).")
    tls_client_required: bool = _s(True, "tls", "bool",
                                   "With tls_client_ca, a client without a certificate is refused at the "
                                   "handshake (false: asked for, checked when sent).")
    tls_min_version: str = _s("1.2", "tls", "str", "Oldest TLS version served (1.3 is preferred anyway).",
                              choices=("1.2", "1.3"))
    tls_reload_s: float = _s(5.0, "tls", "float",
                             "How often the certificate, key and client CA files are checked for a rotation.", 0.1)
    # -- authentication (HTTP) -----------------------------------------------------------------------------------
    auth_required: bool = _s(False, "auth", "bool",
                             "HTTP requests to /mcp must carry a valid bearer token or API key (401 otherwise); "
                             "needs pyjwt for tokens: pip install 'mcp-edge[auth]'.")
    auth_resource: str = _s("", "auth", "str",
                            "This server's canonical URI: tokens' audience and the metadata's resource ('': "
                            "http://<http_host>:<http_port>/mcp).")
    auth_servers: tuple[str, ...] = _s((), "auth", "strs",
                                       "Issuer URLs of the authorization servers whose tokens are accepted (named "
                                       "in the Protected Resource Metadata).")
    auth_jwks_file: str = _s("", "auth", "str", "A local JWKS file of the issuers' signing keys.")
    auth_jwks_url: str = _s("", "auth", "str",
                            "The issuers' JWKS URL, fetched at start and when a token names an unknown key id.")
    auth_jwks_refresh_s: float = _s(60.0, "auth", "float",
                                    "Least time between two fetches of auth_jwks_url.", 1.0)
    auth_algorithms: tuple[str, ...] = _s(("RS256", "ES256", "EdDSA"), "auth", "strs",
                                          "JWT signature algorithms accepted (none is never).")
    auth_leeway_s: float = _s(30.0, "auth", "float", "Clock skew allowed on a token's exp, nbf and iat.", 0.0)
    auth_scopes: tuple[str, ...] = _s((), "auth", "strs",
                                      "Scopes every authenticated request needs (a scope covers those below it: "
                                      "mcp covers mcp:tools).")
    auth_method_scopes: tuple[str, ...] = _s((), "auth", "strs",
                                             "More scopes per JSON-RPC method, as METHOD_GLOB=SCOPE [SCOPE...] "
                                             "(tools/call=mcp:tools:call).")
    auth_token_cache: int = _s(1024, "auth", "int",
                               "Verified tokens remembered until they expire, so a client's next request is not "
                               "verified again (0: verify every request).", 0)
    auth_policy_file: str = _s("", "auth", "str",
                               "The RBAC policy (TOML: [roles.*], [principals]) the router enforces on every "
                               "transport ('': none, every caller may use everything).")
    rate_limit_rps: float = _s(0.0, "auth", "float",
                               "Requests a second one principal may make, on average (0: no limit); past it 429.",
                               0.0)
    rate_limit_burst: int = _s(20, "auth", "int", "Requests one principal may make at once above that rate.", 1)
    tool_rate_limit_rps: float = _s(0.0, "auth", "float",
                                    "tools/call a second one principal may make to one tool (0: no limit).", 0.0)
    tool_rate_limit_burst: int = _s(10, "auth", "int", "Calls of one tool by one principal at once above it.", 1)
    rate_limit_keys: int = _s(10000, "auth", "int",
                              "Rate-limit buckets kept (principals and principal-tool pairs; the least recently "
                              "used go first).", 1)
    auth_api_keys_file: str = _s("", "auth", "str",
                                 "The API keys (their SHA-256 only) that mcp-edge apikey manages ('': "
                                 "<data_dir>/api-keys.json).")
    # -- audit -------------------------------------------------------------------------------------------------
    audit: bool = _s(False, "audit", "bool",
                     "Keep a tamper-evident audit log (SHA-256 hash chain) of every call, denial, plugin load, "
                     "reload and unload, and configuration change; mcp-edge audit verify checks it.")
    audit_file: str = _s("", "audit", "str", "The audit log ('': <data_dir>/audit/audit.jsonl).")
    audit_flush_s: float = _s(5.0, "audit", "float",
                              "How often pending records are written and fsynced (and at shutdown): the write "
                              "rate flash storage sees.", 0.05)
    audit_max_bytes: int = _s(16 * MiB, "audit", "int",
                              "Size past which the audit file rotates (NAME.1, NAME.2...; the chain goes on).",
                              4096)
    audit_keep: int = _s(5, "audit", "int", "Rotated audit files kept.", 1)
    audit_max_pending: int = _s(10000, "audit", "int",
                                "Records waiting in memory while the disk refuses them; past it they are counted "
                                "and a gap record says how many.", 1)
    audit_sign: bool = _s(False, "audit", "bool",
                          "Sign each audit file's final hash with the box's Ed25519 audit key (NAME.sig).")
    trust_dir: str = _s("/etc/mcp-edge/trust", "audit", "str",
                        "Folder of public keys this box trusts (one a file, hex or PEM): the plugin index and its "
                        "artifacts must be signed by one (docs/plugin-index.md); mcp-edge keys list shows them.")
    trusted_keys: tuple[str, ...] = _s((), "audit", "strs",
                                       "More trusted public keys from the board profile, as NAME=HEX (raw "
                                       "Ed25519); mcp-edge keys list shows them.")
    # -- plugin index (mcp_edge.index, docs/plugin-index.md) ---------------------------------------------------
    plugin_index: str = _s("", "plugins", "str",
                           "The signed plugin index mcp-edge plugin install/update read: an http(s) URL, a file:// "
                           "URL or a path ('': none).")
    index_timeout_s: float = _s(30.0, "plugins", "float",
                                "Deadline of each network read of the plugin index or an artifact.", 0.1)
    index_deadline_s: float = _s(600.0, "plugins", "float",
                                 "Longest a whole read of the plugin index or download of an artifact may take "
                                 "(a server that sends slowly is cut off).", 0.1)
    index_max_bytes: int = _s(4 * MiB, "plugins", "int", "Largest plugin index document read.", 1024)
    plugin_max_download: int = _s(256 * MiB, "plugins", "int",
                                  "Largest plugin artifact downloaded (also bounded by the size the index gives).",
                                  1024)
    plugin_max_unpacked: int = _s(512 * MiB, "plugins", "int",
                                  "Most bytes one plugin artifact may unpack to.", 1024)
    plugin_max_members: int = _s(10000, "plugins", "int",
                                 "Most files and folders one plugin artifact may hold.", 1)
    plugin_update_interval_s: float = _s(0.0, "plugins", "float",
                                         "How often the running server checks the index and installs newer "
                                         "versions of the plugins installed from it, hot-reloading them (0: never).",
                                         0.0)
    # -- observability ------------------------------------------------------------------------------------------
    log_format: str = _s("text", "observability", "str",
                         "Log lines as text (mcp-edge: LEVEL logger: message) or json (one object a line: ts, "
                         "level, logger, msg, request_id, pid, exc); secrets are scrubbed from both.",
                         choices=("text", "json"))
    log_target: str = _s("stderr", "observability", "str",
                         "Where logs go: stderr, or journald (the journal's native socket: structured fields, "
                         "SYSLOG_IDENTIFIER=mcp-edge; stderr when it cannot be reached).",
                         choices=("stderr", "journald"))
    journal_socket: str = _s("/run/systemd/journal/socket", "observability", "str",
                             "The systemd journal's native socket (log_target = journald).")
    metrics: bool = _s(False, "observability", "bool",
                       "Count every plugin call (calls, errors, refusals and a latency histogram per tool, resource "
                       "and prompt) and expose them with plugin, ring, slab, I/O and process figures: GET /metrics "
                       "on HTTP, a text file otherwise (needs prometheus-client: pip install 'mcp-edge[metrics]').")
    metrics_public: bool = _s(False, "observability", "bool",
                              "With auth_required, GET /metrics still answers without a credential (a scraper on "
                              "a trusted interface).")
    metrics_max_series: int = _s(1024, "observability", "int",
                                 "Series (plugin and tool, resource or prompt) the metrics keep; past it new ones "
                                 "share one '(other)' series.", 2)
    metrics_textfile: str = _s("", "observability", "str",
                               "Where serving on stdio or a unix socket writes the metrics, in the Prometheus text "
                               "format, replaced atomically (node_exporter's textfile collector reads it; '': "
                               "<data_dir>/metrics/mcp-edge.prom).")
    metrics_interval_s: float = _s(15.0, "observability", "float",
                                   "How often that file is rewritten (and once more at shutdown).", 0.1)
    tracing: bool = _s(False, "observability", "bool",
                       "A span per request (OpenTelemetry), the child of the client's _meta traceparent, carried "
                       "into worker processes (needs OpenTelemetry: pip install 'mcp-edge[tracing]').")
    tracing_exporter: str = _s("otlp", "observability", "str",
                               "Where spans go: otlp (OTLP/HTTP to tracing_endpoint), jsonl (JSON lines appended "
                               "to tracing_file) or none (the embedding program's TracerProvider).",
                               choices=("otlp", "jsonl", "none"))
    tracing_endpoint: str = _s("http://127.0.0.1:4318/v1/traces", "observability", "str",
                               "The OTLP/HTTP traces URL of the collector the otlp exporter sends to.")
    tracing_file: str = _s("", "observability", "str",
                           "The file the jsonl exporter appends spans to ('': <data_dir>/traces/spans.jsonl).")
    tracing_sample_ratio: float = _s(1.0, "observability", "float",
                                     "Share of new traces recorded (0..1); a client's sampled flag is followed.",
                                     0.0)
    # -- built-in plugins -------------------------------------------------------------------------------------
    max_read: int = _s(4 * MiB, "plugins", "int",
                       "Most bytes one fs read returns in one response; larger files are read in ranges.", 1)
    max_large_reads: int = _s(2, "plugins", "int",
                              "Reads of max_read/4 bytes or more that may run at once; others wait.", 1)
    max_regex: int = _s(1024, "plugins", "int", "Longest regular expression a client may send to a search.", 1)

    # -----------------------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, board: Board | None = None, environ: Mapping[str, str] | None = None,
             **overrides: Any) -> Settings:
        """Settings for this box: defaults, the board profile, ``MCP_EDGE_*`` variables, then ``overrides``."""
        env = process_environ() if environ is None else environ
        board = board or detect(environ=env)
        values: dict[str, Any] = {"board": board, "data_dir": board.data_dir}
        values.update(_profile_layer(board))
        values.update(_env_layer(env))
        extra_dirs = env.get("MCP_EDGE_PLUGIN_DIRS")
        profile_dirs = tuple(values.get("plugin_dirs", board.plugin_dirs))
        if extra_dirs:
            values["plugin_dirs"] = tuple(Path(p).expanduser() for p in extra_dirs.split(os.pathsep) if p) \
                + profile_dirs
        else:
            values["plugin_dirs"] = profile_dirs
        if "cache_dir" not in values and env.get("XDG_CACHE_HOME"):
            values["cache_dir"] = Path(env["XDG_CACHE_HOME"]) / "mcp-edge"
        if parse_value("entry_point_cache", env.get("MCP_EDGE_NO_EP_CACHE") or "0", "MCP_EDGE_NO_EP_CACHE"):
            values["entry_point_cache"] = False
        passed = frozenset(values.get("plugin_environ", Settings.__dataclass_fields__["plugin_environ"].default))
        values["environ"] = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX) or k in passed}
        isolation = env.get(ISOLATION_ENV)
        if isolation:
            values["plugin_isolation"] = {**values.get("plugin_isolation", {}),
                                          **_isolation_from_text(isolation, ISOLATION_ENV)}
        unknown = sorted(set(overrides) - _NAMES)
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(_NAMES))})")
        values.update(overrides)
        moved = Path(values["data_dir"])
        if moved != board.data_dir:  # the profile's {data_dir}/... plugin folders follow a data_dir set later
            values["plugin_dirs"] = tuple(moved / p.relative_to(board.data_dir) if p.is_relative_to(board.data_dir)
                                          else p for p in values["plugin_dirs"])
        installed = installed_plugins_dir(moved)  # scanned last
        if installed.is_dir():
            values["plugin_dirs"] = (*values["plugin_dirs"], installed)
        values["plugin_dirs"] = _unique_dirs(values["plugin_dirs"])
        settings = cls(**values)
        settings = replace(settings, cache_dir=settings.cache_dir.expanduser())
        settings.validate()
        return settings

    def validate(self) -> None:
        """ConfigError naming the first bad value."""
        for info in FIELDS:
            value = getattr(self, info.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"setting {info.name} must be a finite number, got {value}")
            if info.minimum is not None and isinstance(value, (int, float)) and value < info.minimum:
                raise ConfigError(f"setting {info.name} must be at least {info.minimum:g}, got {value}")
            if info.minimum is not None and info.kind == "ints" and any(v < info.minimum for v in value):
                raise ConfigError(f"setting {info.name}: every item must be at least {info.minimum:g}, got "
                                  f"{', '.join(map(str, value))}")
        if self.tracing_sample_ratio > 1:
            raise ConfigError(f"setting tracing_sample_ratio must be 0..1, got {self.tracing_sample_ratio}")
        if not 0 <= self.http_port <= 65535:
            raise ConfigError(f"setting http_port must be 0..65535, got {self.http_port}")
        encoded = 4 * -(-self.max_read // 3) + 64 * KiB  # base64 of one read plus its JSON envelope
        if encoded > self.max_out_frame:
            raise ConfigError(f"setting max_read ({self.max_read}) does not fit max_out_frame "
                              f"({self.max_out_frame}) once base64-encoded: raise max_out_frame to at least "
                              f"{encoded} or lower max_read")
        if not self.slab_sizes or list(self.slab_sizes) != sorted(set(self.slab_sizes)):
            raise ConfigError(f"setting slab_sizes must be distinct sizes in ascending order, got "
                              f"{', '.join(map(str, self.slab_sizes)) or 'none'}")
        if len(self.slab_sizes) > SLAB_MAX_CLASSES:
            raise ConfigError(f"setting slab_sizes has {len(self.slab_sizes)} classes; at most {SLAB_MAX_CLASSES}")
        for size in self.slab_sizes:
            if size % 64 or size > SLAB_MAX_SIZE:
                raise ConfigError(f"setting slab_sizes: each size must be a multiple of 64 up to {SLAB_MAX_SIZE} "
                                  f"(1 GiB), got {size}")
        if len(self.slab_counts) != len(self.slab_sizes):
            raise ConfigError(f"setting slab_counts needs one count per slab size ({len(self.slab_sizes)}), "
                              f"got {len(self.slab_counts)}")
        if max(self.slab_counts) > SLAB_MAX_COUNT:
            raise ConfigError(f"setting slab_counts: at most {SLAB_MAX_COUNT} blocks per class, got "
                              f"{max(self.slab_counts)}")
        if self.ring_entries & (self.ring_entries - 1):
            raise ConfigError(f"setting ring_entries must be a power of two, got {self.ring_entries}")
        for info in FIELDS:
            if info.choices and getattr(self, info.name) not in info.choices:
                raise ConfigError(f"setting {info.name} must be one of {', '.join(info.choices)}, "
                                  f"got {getattr(self, info.name)!r}")

        for name in ("breaker_failure_ratio", "restart_backoff_jitter"):
            if getattr(self, name) > 1.0:
                raise ConfigError(f"setting {name} is a fraction: at most 1, got {getattr(self, name)}")
        if self.restart_backoff_cap_s < self.restart_backoff_base_s:
            raise ConfigError(f"setting restart_backoff_cap_s ({self.restart_backoff_cap_s}) must be at least "
                              f"restart_backoff_base_s ({self.restart_backoff_base_s})")
        if self.breaker_min_calls > self.breaker_window:
            raise ConfigError(f"setting breaker_min_calls ({self.breaker_min_calls}) cannot exceed breaker_window "
                              f"({self.breaker_window}): the breaker could never open")
        for plugin_id, mode in self.plugin_isolation.items():
            if mode not in ISOLATION_MODES:
                raise ConfigError(f"plugin {plugin_id}: isolation must be one of {', '.join(ISOLATION_MODES)}, "
                                  f"got {mode!r}")

    def plugin(self, plugin_id: str) -> PluginSettings:
        """What the board and environment say of plugin ``plugin_id``: its config table and isolation mode."""
        return PluginSettings(plugin_id, dict(self.plugin_config.get(plugin_id) or {}),
                              self.plugin_isolation.get(plugin_id))

    def limits(self) -> list[tuple[FieldInfo, Any]]:
        """Every setting but the board and the plugin tables, with its value, for doctor."""
        return [(info, getattr(self, info.name)) for info in FIELDS if info.kind != "mapping"]


class PluginSettings:
    """One plugin's part of the settings: its ``[plugins.<id>]`` config table (before its schema fills defaults
    and the ``MCP_EDGE_<PLUGIN>_<KEY>`` overrides apply) and its isolation mode (None: the manifest decides)."""

    __slots__ = ("config", "id", "isolation")

    def __init__(self, plugin_id: str, config: Mapping[str, Any], isolation: str | None) -> None:
        self.id = plugin_id
        self.config = config
        self.isolation = isolation

    def __repr__(self) -> str:
        return f"PluginSettings(id={self.id!r}, config={dict(self.config)!r}, isolation={self.isolation!r})"


ISOLATION_ENV: Final = "MCP_EDGE_PLUGIN_ISOLATION"


def _isolation_from_text(text: str, where: str) -> dict[str, str]:
    """``fs=process,logs=inproc`` -> {"fs": "process", "logs": "inproc"}; ConfigError naming the bad item."""
    out: dict[str, str] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        plugin_id, eq, mode = (x.strip() for x in item.partition("="))
        if not eq or not plugin_id or mode.lower() not in ISOLATION_MODES:
            raise ConfigError(f"{where}: {item!r} must be <plugin id>=<mode>, mode one of "
                              f"{', '.join(ISOLATION_MODES)}")
        out[plugin_id] = mode.lower()
    return out


FIELDS: Final[tuple[FieldInfo, ...]] = tuple(
    FieldInfo(f.name, f.metadata["section"], f.metadata["kind"], f.metadata["doc"], f.metadata["minimum"],
              f.metadata["env"] or ENV_PREFIX + f.name.upper(), f.metadata["choices"])
    for f in fields(Settings) if f.metadata
)
_BY_NAME: Final = {info.name: info for info in FIELDS}
_NAMES: Final = frozenset(_BY_NAME)
# Settings the environment layer does not set by their plain MCP_EDGE_<NAME> (handled in load, or not at all).
_NOT_FROM_ENV: Final = frozenset({"plugin_config", "environ", "plugin_dirs", "plugin_isolation"})
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


def installed_plugins_dir(data_dir: Path | str) -> Path:
    """``<data_dir>/plugins``: where ``mcp-edge plugin install`` puts plugins (mcp_edge.index), scanned by the
    runtime, guarded from file-serving plugins' roots."""
    return Path(data_dir).expanduser() / "plugins"


def _unique_dirs(dirs: Any) -> tuple[Path, ...]:
    """Plugin folders in order, each once (a folder named by MCP_EDGE_PLUGIN_DIRS and by the profile would
    otherwise be scanned twice, its plugins failing as duplicates of themselves)."""
    seen: set[Path] = set()
    out = []
    for d in dirs:
        path = Path(d)
        key = path.expanduser().resolve(strict=False)
        if key not in seen:
            seen.add(key)
            out.append(path)
    return tuple(out)


def parse_value(name: str, raw: Any, where: str) -> Any:
    """A setting's value from text (environment, command line) or a TOML value, checked for its kind."""
    info = _BY_NAME.get(name)
    if info is None:
        raise ConfigError(f"{where}: unknown setting {name!r} (known: {', '.join(sorted(_NAMES))})")
    kind = info.kind
    text = raw if isinstance(raw, str) else None
    try:
        if kind == "int":
            if isinstance(raw, bool) or not isinstance(raw, (int, str)):
                raise ValueError
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                raise ValueError
            return float(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            if text is not None and text.strip().lower() in _TRUE | _FALSE:
                return text.strip().lower() in _TRUE
            raise ValueError
        if kind == "str":
            if text is None:
                raise ValueError
            if not info.choices:
                return text
            if text.strip().lower() in info.choices:
                return text.strip().lower()
        if kind == "path":
            if text is None:
                raise ValueError
            return Path(text).expanduser()
        if kind == "ints":
            if text is not None:
                return tuple(int(p.strip()) for p in text.split(",") if p.strip())
            if isinstance(raw, list) and all(isinstance(p, int) and not isinstance(p, bool) for p in raw):
                return tuple(raw)
            raise ValueError
        if kind in ("strs", "paths"):
            if text is not None:
                sep = os.pathsep if kind == "paths" else ","
                items = [p.strip() for p in text.split(sep) if p.strip()]
            elif isinstance(raw, list) and all(isinstance(p, str) for p in raw):
                items = list(raw)
            else:
                raise ValueError
            if kind == "paths":
                return tuple(Path(p).expanduser() for p in items)
            return frozenset(items) if name.endswith("_plugins") else tuple(items)
    except ValueError:
        pass
    if info.choices:
        raise ConfigError(f"{where}: setting {name} must be one of {', '.join(info.choices)}, got {raw!r}")
    shown = {"int": "an integer", "float": "a number", "bool": "a boolean", "str": "a string", "path": "a path",
             "strs": "a list of strings", "ints": "a list of integers", "paths": "a list of paths"}.get(kind, kind)
    raise ConfigError(f"{where}: setting {name} must be {shown}, got {raw!r}")


def field_default(name: str) -> Any:
    """The default of setting ``name``."""
    return {f.name: f.default for f in fields(Settings)}[name]


def env_setting(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting from the environment alone (its default when unset), for code that runs before or without
    a ``Settings`` (the process-wide I/O engine opened on first use)."""
    info = _BY_NAME[name]
    env = process_environ() if environ is None else environ
    raw = env.get(info.env)
    if raw is None or raw.strip() == "":
        return field_default(name)
    return parse_value(name, raw, info.env)


def _profile_layer(board: Board) -> dict[str, Any]:
    from mcp_edge.board.schema import table_of

    out: dict[str, Any] = {}
    for key, raw in board.settings.items():
        info = _BY_NAME.get(key)
        table = table_of(key, info.section) if info else "runtime"
        out[key] = parse_value(key, raw, f"{board.path}: [{table}] {key}")
    out.update(plugin_layer(board.plugins, f"{board.path}: [plugins]"))
    return out


def plugin_layer(plugins: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The settings a profile's [plugins] table sets; ConfigError naming ``where`` and the key."""
    out: dict[str, Any] = {}
    config: dict[str, Mapping[str, Any]] = {}
    for key, raw in plugins.items():
        at = f"{where} {key}"
        if key in ("enabled", "disabled"):
            out[f"{key}_plugins"] = parse_value(f"{key}_plugins", raw, at)
        elif key == "entry_points":
            out["entry_points"] = parse_value("entry_points", raw, at)
        elif key == "isolation":  # reserved: no plugin may be called "isolation"
            if not isinstance(raw, dict):
                raise ConfigError(f"{at}: expected a table of <plugin id> = \"inproc\" or \"process\"")
            for plugin_id, mode in raw.items():
                if not isinstance(mode, str) or mode.lower() not in ISOLATION_MODES:
                    raise ConfigError(f"{at}.{plugin_id}: must be one of {', '.join(ISOLATION_MODES)}, "
                                      f"got {mode!r}")
            out["plugin_isolation"] = {k: v.lower() for k, v in raw.items()}
        elif isinstance(raw, dict):
            config[key] = raw
        else:
            raise ConfigError(f"{at}: expected enabled, disabled, entry_points, isolation or a [plugins.{key}] "
                              "table of that plugin's config")
    if config:
        out["plugin_config"] = config
    return out


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for info in FIELDS:
        if info.name in _NOT_FROM_ENV or info.kind == "mapping":
            continue
        raw = env.get(info.env)
        if raw is None or (raw == "" and info.kind != "str"):  # an empty variable is unset (a str may be empty)
            continue
        out[info.name] = parse_value(info.name, raw, info.env)
    return out
