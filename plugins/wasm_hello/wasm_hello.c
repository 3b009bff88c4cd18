/* wasm_hello.c - the sample WASM plugin: text statistics (the same tool as tests' Python twin) and notes kept in
 * the plugin's data folder, through the host functions its plugin.toml grants.
 * SPDX-License-Identifier: Apache-2.0
 *
 * Built by setup.py (make build): clang --target=wasm32-wasi -O2 -mexec-model=reactor -I plugins/include
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "mcp_edge_wasm.h"

MCP_EDGE_WASM_PLUGIN()

static const char CATALOG[] =
    "{\"tools\":["
    "{\"name\":\"text_stats\",\"description\":\"Counts the UTF-8 bytes, characters, words (runs of non-blank "
    "bytes) and lines of a text, and its CRC-32\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},\"required\":[\"text\"],"
    "\"additionalProperties\":false},"
    "\"annotations\":{\"readOnlyHint\":true,\"idempotentHint\":true}},"
    "{\"name\":\"note_write\",\"description\":\"Keeps a note (a file in the plugin's data folder)\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"text\":{\"type\":"
    "\"string\"}},\"required\":[\"name\",\"text\"],\"additionalProperties\":false}},"
    "{\"name\":\"note_read\",\"description\":\"Reads a note back\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},\"required\":[\"name\"],"
    "\"additionalProperties\":false},\"annotations\":{\"readOnlyHint\":true}}"
    "]}";

ME_EXPORT("mcp_catalog") int64_t mcp_catalog(void) {
    me_buf b = {0};
    me_buf_put(&b, CATALOG, sizeof CATALOG - 1);
    return me_buf_answer(&b);
}

static uint32_t crc32_ieee(const unsigned char *p, size_t n) {
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static int blank(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static int64_t text_stats(const char *args, size_t n) {
    me_buf text = {0};
    if (me_json_get_string(args, n, "text", &text) != 0) { free(text.data); return me_error("text: expected a string"); }
    const unsigned char *s = (const unsigned char *)text.data;
    size_t chars = 0, words = 0, lines = 0;
    int in_word = 0;
    for (size_t i = 0; i < text.len; i++) {
        if ((s[i] & 0xc0) != 0x80) chars++;
        if (s[i] == '\n') lines++;
        if (blank(s[i])) in_word = 0;
        else if (!in_word) { in_word = 1; words++; }
    }
    if (text.len && s[text.len - 1] != '\n') lines++;
    static const char hex[] = "0123456789abcdef";
    uint32_t crc = crc32_ieee(s, text.len);
    char crc_hex[9];
    for (int k = 0; k < 8; k++) crc_hex[k] = hex[(crc >> (28 - 4 * k)) & 15];
    crc_hex[8] = 0;

    me_buf line = {0};
    me_buf_puts(&line, "bytes="); me_buf_uint(&line, text.len);
    me_buf_puts(&line, " chars="); me_buf_uint(&line, chars);
    me_buf_puts(&line, " words="); me_buf_uint(&line, words);
    me_buf_puts(&line, " lines="); me_buf_uint(&line, lines);
    me_buf_puts(&line, " crc32="); me_buf_puts(&line, crc_hex);

    me_buf out = {0};
    me_buf_puts(&out, "{\"content\":[{\"type\":\"text\",\"text\":");
    me_buf_json_string(&out, line.data ? line.data : "", line.len);
    me_buf_puts(&out, "}],\"structuredContent\":{\"bytes\":"); me_buf_uint(&out, text.len);
    me_buf_puts(&out, ",\"chars\":"); me_buf_uint(&out, chars);
    me_buf_puts(&out, ",\"words\":"); me_buf_uint(&out, words);
    me_buf_puts(&out, ",\"lines\":"); me_buf_uint(&out, lines);
    me_buf_puts(&out, ",\"crc32\":\""); me_buf_puts(&out, crc_hex); me_buf_puts(&out, "\"}}");
    free(text.data);
    free(line.data);
    return me_buf_answer(&out);
}

static int64_t errno_result(const char *what, int64_t rc) {
    me_buf b = {0};
    me_buf_puts(&b, what);
    me_buf_puts(&b, ": ");
    me_buf_puts(&b, strerror((int)-rc));
    int64_t r = me_text_result(b.data ? b.data : what, b.data ? b.len : strlen(what), 1);
    free(b.data);
    return r;
}

static int64_t note_write(const char *args, size_t n) {
    me_buf name = {0}, text = {0};
    int64_t r;
    if (me_json_get_string(args, n, "name", &name) || me_json_get_string(args, n, "text", &text)) {
        r = me_error("name and text: expected strings");
    } else {
        int32_t rc = me_data_write(name.data, (int32_t)name.len, text.data ? text.data : "", (int32_t)text.len, 0);
        r = rc < 0 ? errno_result("note_write", rc) : me_text_result("saved", 5, 0);
        if (rc == 0) me_log(1, "note saved", 10);
    }
    free(name.data);
    free(text.data);
    return r;
}

static int64_t note_read(const char *args, size_t n) {
    me_buf name = {0};
    if (me_json_get_string(args, n, "name", &name)) { free(name.data); return me_error("name: expected a string"); }
    int64_t got = me_data_read(name.data, (int32_t)name.len);
    free(name.data);
    if (got < 0) return errno_result("note_read", got);
    char *data = me_packed_ptr(got);
    int64_t r = me_text_result(data, me_packed_len(got), 0);
    free(data);
    return r;
}

ME_EXPORT("mcp_call") int64_t mcp_call(const char *name, int32_t name_len, const char *args, int32_t args_len) {
    size_t nl = (size_t)name_len, n = (size_t)args_len;
    if (nl == 10 && memcmp(name, "text_stats", 10) == 0) return text_stats(args, n);
    if (nl == 10 && memcmp(name, "note_write", 10) == 0) return note_write(args, n);
    if (nl == 9 && memcmp(name, "note_read", 9) == 0) return note_read(args, n);
    return me_error("no such tool");
}
