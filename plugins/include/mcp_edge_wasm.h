/* mcp_edge_wasm.h - the ABI of mcp_edge WASM plugins, for authors writing them in C (clang --target=wasm32-wasi).
 * SPDX-License-Identifier: Apache-2.0
 *
 * A WASM plugin is a folder with a plugin.toml ([plugin] id, version, abi = 1, wasm = "name.wasm", and an
 * optional [wasm] policy table) and a WebAssembly module. docs/wasm-plugins.md is the full reference; in short:
 *
 * The module exports (this header defines the first three for you in MCP_EDGE_WASM_PLUGIN()):
 *   memory                                   its linear memory (clang exports it by default)
 *   int32_t mcp_abi_version(void)            MCP_EDGE_WASM_ABI
 *   int32_t mcp_alloc(int32_t len)           a buffer the host writes inputs into (0 when out of memory)
 *   void    mcp_free(int32_t ptr)            releases what mcp_alloc, mcp_catalog or mcp_call returned
 *   int64_t mcp_catalog(void)                JSON {"tools": [{"name", "description", "inputSchema", ...}]}
 *   int64_t mcp_call(int32_t name, int32_t name_len, int32_t args, int32_t args_len)
 *                                            runs tool `name` with its arguments (a JSON object, checked by the
 *                                            host against the tool's inputSchema) and answers a CallToolResult:
 *                                            {"content": [...], "isError"?, "structuredContent"?}
 *   int32_t mcp_init(int32_t cfg, int32_t cfg_len)   optional: the plugin's config (a JSON object) on every
 *                                            fresh instance, before its first call; non-zero refuses the config
 *
 * An int64_t answer packs a buffer the module allocated: (pointer << 32) | length (me_pack). The host copies it
 * out and hands it back with mcp_free. Inputs are not NUL-terminated: use the lengths. The host owns the
 * input buffers (the name and the arguments may share one mcp_alloc buffer): never free or keep them.
 *
 * The host functions (module "mcp_edge") a plugin may call, each only when plugin.toml's [wasm] host_functions
 * grants it (and the box allows it). Calling one that is not granted ends the call with an error naming it.
 * Negative answers are -errno (wasi-libc's <errno.h> values).
 *   log(level, msg, len)                      level 0 debug, 1 info, 2 warning, 3 error: the plugin's logger,
 *                                             and the client's log when it asked for one
 *   progress(done, total, msg, len)           a progress notification (total < 0: unknown)
 *   data_read(path, len)                      a file under the plugin's data folder: packed buffer (release with
 *                                             free()) or -ENOENT, -EACCES (outside the folder), -EFBIG ...
 *   data_write(path, len, data, data_len, flags)  writes (flags & 1: appends to) a file there: 0 or -errno
 *   http_get(url, len, status_out)            GET to a host listed in [wasm] http_hosts: packed body (free()),
 *                                             the HTTP status written to *status_out; or -EACCES, -EFBIG ...
 *
 * Each call runs under a wall-clock deadline and a memory cap ([wasm] deadline_ms, memory_mb): past either,
 * the call fails and the instance is thrown away; the next call gets a fresh one. Keep no state between calls
 * in memory that you cannot lose: the data folder is the place for it. An instance serves calls of any client
 * in turn: do not leave one client's data in memory (globals, buffers) past its call.
 */
#ifndef MCP_EDGE_WASM_H
#define MCP_EDGE_WASM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MCP_EDGE_WASM_ABI 1

#define ME_EXPORT(name) __attribute__((export_name(name)))
#define ME_IMPORT(name) __attribute__((import_module("mcp_edge"), import_name(name)))

/* -- host functions ------------------------------------------------------------------------------------- */

ME_IMPORT("log") void me_log(int32_t level, const char *msg, int32_t len);
ME_IMPORT("progress") void me_progress(double done, double total, const char *msg, int32_t len);
ME_IMPORT("data_read") int64_t me_data_read(const char *path, int32_t len);
ME_IMPORT("data_write") int32_t me_data_write(const char *path, int32_t len, const void *data, int32_t data_len,
                                              int32_t flags);
ME_IMPORT("http_get") int64_t me_http_get(const char *url, int32_t len, int32_t *status_out);

#define ME_DATA_APPEND 1

/* -- packed buffers -------------------------------------------------------------------------------------- */

static inline int64_t me_pack(const void *ptr, size_t len) {
    return (int64_t)(((uint64_t)(uintptr_t)ptr << 32) | (uint64_t)(uint32_t)len);
}
static inline char *me_packed_ptr(int64_t packed) { return (char *)(uintptr_t)((uint64_t)packed >> 32); }
static inline size_t me_packed_len(int64_t packed) { return (size_t)((uint64_t)packed & 0xffffffffu); }

/* -- a growing output buffer -------------------------------------------------------------------------- */

typedef struct me_buf {
    char *data;
    size_t len, cap;
    int failed; /* an allocation failed: the buffer holds a prefix only */
} me_buf;

static inline void me_buf_put(me_buf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = (char *)realloc(b->data, cap);
        if (!p) { b->failed = 1; return; }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}
static inline void me_buf_puts(me_buf *b, const char *s) { me_buf_put(b, s, strlen(s)); }

static inline void me_buf_uint(me_buf *b, uint64_t v) {
    char tmp[24];
    int i = (int)sizeof tmp;
    do { tmp[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    me_buf_put(b, tmp + i, sizeof tmp - (size_t)i);
}

/* `s` (UTF-8, n bytes) as a JSON string, quotes included. */
static inline void me_buf_json_string(me_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    me_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { char e[2] = {'\\', (char)c}; me_buf_put(b, e, 2); }
        else if (c == '\n') me_buf_put(b, "\\n", 2);
        else if (c == '\r') me_buf_put(b, "\\r", 2);
        else if (c == '\t') me_buf_put(b, "\\t", 2);
        else if (c < 0x20) { char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]}; me_buf_put(b, e, 6); }
        else me_buf_put(b, (const char *)&c, 1);
    }
    me_buf_put(b, "\"", 1);
}

/* The buffer as a packed answer (0 when an allocation failed: the host reports the call as failed). */
static inline int64_t me_buf_answer(me_buf *b) {
    if (b->failed || !b->data) { free(b->data); return 0; }
    return me_pack(b->data, b->len);
}

/* A CallToolResult with one text block (and isError when is_error). */
static inline int64_t me_text_result(const char *text, size_t n, int is_error) {
    me_buf b = {0};
    me_buf_puts(&b, "{\"content\":[{\"type\":\"text\",\"text\":");
    me_buf_json_string(&b, text, n);
    me_buf_puts(&b, is_error ? "}],\"isError\":true}" : "}]}");
    return me_buf_answer(&b);
}
static inline int64_t me_error(const char *text) { return me_text_result(text, strlen(text), 1); }

/* -- reading the arguments: the value of a top-level key of a JSON object -------------------------------- */

static inline size_t me_json_ws(const char *j, size_t n, size_t i) {
    while (i < n && (j[i] == ' ' || j[i] == '\t' || j[i] == '\n' || j[i] == '\r')) i++;
    return i;
}

/* The index just past the JSON value starting at i (n when it is cut short). */
static inline size_t me_json_skip(const char *j, size_t n, size_t i) {
    if (i >= n) return n;
    if (j[i] == '"') {
        for (i++; i < n; i++) {
            if (j[i] == '\\') i++;
            else if (j[i] == '"') return i + 1;
        }
        return n;
    }
    if (j[i] == '{' || j[i] == '[') {
        int depth = 0;
        for (; i < n; i++) {
            if (j[i] == '"') { i = me_json_skip(j, n, i) - 1; continue; }
            if (j[i] == '{' || j[i] == '[') depth++;
            else if ((j[i] == '}' || j[i] == ']') && --depth == 0) return i + 1;
        }
        return n;
    }
    while (i < n && j[i] != ',' && j[i] != '}' && j[i] != ']' && j[i] != ' ' && j[i] != '\n') i++;
    return i;
}

/* Where the value of `key` starts in the object `j` (n bytes), or -1 when it has no such key. */
static inline long me_json_find(const char *j, size_t n, const char *key) {
    size_t klen = strlen(key), i = me_json_ws(j, n, 0);
    if (i >= n || j[i] != '{') return -1;
    i = me_json_ws(j, n, i + 1);
    while (i < n && j[i] == '"') {
        size_t kend = me_json_skip(j, n, i);
        int match = kend - i == klen + 2 && memcmp(j + i + 1, key, klen) == 0;
        i = me_json_ws(j, n, kend);
        if (i >= n || j[i] != ':') return -1;
        i = me_json_ws(j, n, i + 1);
        if (match) return (long)i;
        i = me_json_ws(j, n, me_json_skip(j, n, i));
        if (i < n && j[i] == ',') i = me_json_ws(j, n, i + 1);
    }
    return -1;
}

static inline void me_put_utf8(me_buf *b, uint32_t cp) {
    char u[4];
    size_t k;
    if (cp < 0x80) { u[0] = (char)cp; k = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xc0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3f)); k = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)); k = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); u[3] = (char)(0x80 | (cp & 0x3f)); k = 4;
    }
    me_buf_put(b, u, k);
}

static inline int me_hex4(const char *s, uint32_t *out) {
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* The string value of `key`, decoded (escapes, surrogate pairs) into `out` (NUL-terminated; free out->data).
 * 0, or -1 when the key is missing or not a string. */
static inline int me_json_get_string(const char *j, size_t n, const char *key, me_buf *out) {
    long at = me_json_find(j, n, key);
    if (at < 0 || j[at] != '"') return -1;
    size_t end = me_json_skip(j, n, (size_t)at) - 1;
    me_buf_put(out, "", 0);
    for (size_t i = (size_t)at + 1; i < end; i++) {
        if (j[i] != '\\') { me_buf_put(out, j + i, 1); continue; }
        char e = j[++i];
        uint32_t cp;
        switch (e) {
        case 'n': me_buf_put(out, "\n", 1); break;
        case 't': me_buf_put(out, "\t", 1); break;
        case 'r': me_buf_put(out, "\r", 1); break;
        case 'b': me_buf_put(out, "\b", 1); break;
        case 'f': me_buf_put(out, "\f", 1); break;
        case 'u':
            if (i + 4 >= end + 1 || me_hex4(j + i + 1, &cp)) return -1;
            i += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && i + 6 < end && j[i + 1] == '\\' && j[i + 2] == 'u') {
                uint32_t lo;
                if (me_hex4(j + i + 3, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    i += 6;
                }
            }
            me_put_utf8(out, cp);
            break;
        default: me_buf_put(out, &e, 1); break;
        }
    }
    return out->failed ? -1 : 0;
}

/* The number value of `key` in *out: 0, or -1 when missing or not a number. */
static inline int me_json_get_number(const char *j, size_t n, const char *key, double *out) {
    long at = me_json_find(j, n, key);
    if (at < 0) return -1;
    size_t end = me_json_skip(j, n, (size_t)at);
    char tmp[64];
    size_t len = end - (size_t)at;
    if (len == 0 || len >= sizeof tmp) return -1;
    memcpy(tmp, j + at, len);
    tmp[len] = 0;
    char *stop;
    *out = strtod(tmp, &stop);
    return *stop ? -1 : 0;
}

/* -- the exports every plugin has ---------------------------------------------------------------------- */

/* Put once in one source file: the ABI version and the allocator exports. */
#define MCP_EDGE_WASM_PLUGIN()                                                                    \
    ME_EXPORT("mcp_abi_version") int32_t mcp_abi_version(void) { return MCP_EDGE_WASM_ABI; }      \
    ME_EXPORT("mcp_alloc") int32_t mcp_alloc(int32_t len) {                                       \
        return (int32_t)(uintptr_t)malloc(len > 0 ? (size_t)len : 1);                              \
    }                                                                                             \
    ME_EXPORT("mcp_free") void mcp_free(int32_t ptr) { free((void *)(uintptr_t)ptr); }

#endif /* MCP_EDGE_WASM_H */
