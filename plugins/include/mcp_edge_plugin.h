/* mcp_edge_plugin.h - the C ABI of mcp_edge native plugins (a shared object loaded in-process with cffi).
 * SPDX-License-Identifier: Apache-2.0
 *
 * A native plugin is a folder with a plugin.toml ([plugin] id, version, abi = 1,
 * library = "name.so") and a shared object exporting one entry symbol,
 * mcp_edge_plugin_v1, that returns a static table describing the plugin. The
 * symbol's name carries the ABI version, and so does the table's first field:
 * the loader refuses a table whose abi_version differs from the
 * MCP_EDGE_PLUGIN_ABI it speaks, naming both.
 *
 * Strings are UTF-8 and NUL-terminated. JSON crosses the boundary as text:
 *   tools_json    a JSON array of tool definitions as MCP's tools/list has them:
 *                 {"name", "description", "inputSchema", optional "title",
 *                  "outputSchema", "annotations"}. An entry may add
 *                 "x-blocking": true: the runtime then calls that tool from a worker
 *                 thread (the GIL released) instead of inline on the event loop.
 *   config_json   the plugin's merged, validated config (a JSON object).
 *   args_json     the tool's arguments (a JSON object, not NUL-terminated: use args_len).
 *   out_json      on success, a CallToolResult: {"content": [...], "isError"?,
 *                 "structuredContent"?}. On failure (a negative return), optionally
 *                 a UTF-8 message saying what went wrong. Allocated by the plugin,
 *                 released by the runtime with free_result.
 *
 * Return values are 0 or -errno, as in the rest of mcp_edge (liburing style):
 *   -EINVAL  invalid arguments: answered as a JSON-RPC invalid-params error;
 *   -ENOENT  no such tool;
 *   other    the tool failed: the model sees an isError result with the message.
 *
 * Threads: init and shutdown run on the event-loop thread, once each. call_tool
 * runs inline on that thread (so it must return in well under a millisecond)
 * unless its tool says "x-blocking": true; blocking tools may run concurrently
 * with each other and with inline calls, so the state they share must be safe.
 * The shared object is never unloaded.
 *
 * The declarations between the cdef markers are read by cffi (see
 * mcp_edge/plugin/_gen_ffi.py), so they stay plain C: no macros, no attributes.
 */
#ifndef MCP_EDGE_PLUGIN_H
#define MCP_EDGE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MCP_EDGE_PLUGIN_ABI 1

/* Marks the entry symbol as exported even under -fvisibility=hidden. */
#define MCP_EDGE_PLUGIN_EXPORT __attribute__((visibility("default")))

/* cdef-begin */
struct mcp_edge_plugin_v1 {
    uint32_t abi_version;     /* MCP_EDGE_PLUGIN_ABI */
    const char *id;           /* must equal plugin.toml's id */
    const char *version;
    const char *description;
    const char *tools_json;   /* JSON array of tool definitions */
    /* May be NULL. Sets *state (passed back to call_tool and shutdown); 0 or -errno. */
    int (*init)(const char *config_json, void **state);
    /* 0 or -errno; sets *out_json and *out_len as described above (or leaves them NULL and 0). */
    int (*call_tool)(void *state, const char *name, const char *args_json, size_t args_len,
                     char **out_json, size_t *out_len);
    /* Frees what call_tool put in *out_json. */
    void (*free_result)(char *out_json);
    /* May be NULL. Releases state. */
    void (*shutdown)(void *state);
};

const struct mcp_edge_plugin_v1 *mcp_edge_plugin_v1(void);
/* cdef-end */

#ifdef __cplusplus
}
#endif

#endif /* MCP_EDGE_PLUGIN_H */
