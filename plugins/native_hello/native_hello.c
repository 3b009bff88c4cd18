/* native_hello.c - example mcp_edge native plugin: tools native_echo and native_add over the C ABI.
 * SPDX-License-Identifier: Apache-2.0
 *
 * Built by setup.py into plugins/native_hello/native_hello.so with the project's
 * strict C flags. Arguments arrive as JSON text; a tiny JSON reader below takes
 * the members it needs (strings with escapes, numbers), and results are written
 * as CallToolResult JSON.
 */
#include "mcp_edge_plugin.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELLO_MAX_DEPTH 32

struct hello_state {
    char *prefix;  /* config "prefix": put before every echo */
};

/* --- a minimal JSON reader ------------------------------------------------------------------ */

struct cur {
    const char *p;
    const char *end;
};

static void skip_ws(struct cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v |= (unsigned)(ch - 'A' + 10);
        else
            return -EINVAL;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Reads a JSON string at c->p. With out != NULL, decodes it into out (malloc'd, NUL-terminated). */
static int read_string(struct cur *c, char **out, size_t *out_len)
{
    if (c->p >= c->end || *c->p != '"')
        return -EINVAL;
    const char *start = ++c->p;
    char *buf = NULL;
    size_t n = 0;
    if (out) {
        /* decoded text is never longer than the encoded one */
        buf = malloc((size_t)(c->end - start) + 1);
        if (!buf)
            return -ENOMEM;
    }
    while (c->p < c->end && *c->p != '"') {
        char ch = *c->p++;
        if ((unsigned char)ch < 0x20)
            goto bad;
        if (ch != '\\') {
            if (buf)
                buf[n] = ch;
            n++;
            continue;
        }
        if (c->p >= c->end)
            goto bad;
        char esc = *c->p++;
        char lit = 0;
        switch (esc) {
        case '"': lit = '"'; break;
        case '\\': lit = '\\'; break;
        case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;
        case 'f': lit = '\f'; break;
        case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;
        case 't': lit = '\t'; break;
        case 'u': {
            unsigned cp;
            if (c->end - c->p < 4 || hex4(c->p, &cp) < 0)
                goto bad;
            c->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' || hex4(c->p + 2, &lo) < 0
                    || lo < 0xDC00 || lo > 0xDFFF)
                    goto bad;
                c->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                goto bad;
            }
            if (buf)
                n += put_utf8(buf + n, cp);
            else
                n += 4;
            continue;
        }
        default:
            goto bad;
        }
        if (buf)
            buf[n] = lit;
        n++;
    }
    if (c->p >= c->end)
        goto bad;
    c->p++; /* closing quote */
    if (out) {
        buf[n] = '\0';
        *out = buf;
        *out_len = n;
    }
    return 0;
bad:
    free(buf);
    return -EINVAL;
}

static int read_number(struct cur *c, double *out)
{
    char tmp[64];
    size_t n = 0;
    while (c->p < c->end && n < sizeof tmp - 1 && strchr("+-0123456789.eE", *c->p) && *c->p)
        tmp[n++] = *c->p++;
    tmp[n] = '\0';
    if (n == 0)
        return -EINVAL;
    char *stop;
    *out = strtod(tmp, &stop);
    return (*stop == '\0' && isfinite(*out)) ? 0 : -EINVAL;
}

static int skip_value(struct cur *c, int depth)
{
    if (depth > HELLO_MAX_DEPTH)
        return -EINVAL;
    skip_ws(c);
    if (c->p >= c->end)
        return -EINVAL;
    char ch = *c->p;
    if (ch == '"')
        return read_string(c, NULL, NULL);
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->p++;
        skip_ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 0;
        }
        for (;;) {
            if (ch == '{') {
                skip_ws(c);
                if (read_string(c, NULL, NULL) < 0)
                    return -EINVAL;
                skip_ws(c);
                if (c->p >= c->end || *c->p++ != ':')
                    return -EINVAL;
            }
            if (skip_value(c, depth + 1) < 0)
                return -EINVAL;
            skip_ws(c);
            if (c->p >= c->end)
                return -EINVAL;
            if (*c->p == ',') {
                c->p++;
                continue;
            }
            if (*c->p++ == close)
                return 0;
            return -EINVAL;
        }
    }
    static const char *const words[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++) {
        size_t len = strlen(words[i]);
        if ((size_t)(c->end - c->p) >= len && memcmp(c->p, words[i], len) == 0) {
            c->p += len;
            return 0;
        }
    }
    double ignored;
    return read_number(c, &ignored);
}

/* Positions *value at the member `key` of the top-level JSON object; -ENOENT if absent. */
static int find_member(const char *json, size_t len, const char *key, struct cur *value)
{
    struct cur c = {json, json + len};
    skip_ws(&c);
    if (c.p >= c.end || *c.p++ != '{')
        return -EINVAL;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}')
        return -ENOENT;
    int found = -ENOENT;
    for (;;) {
        skip_ws(&c);
        char *name = NULL;
        size_t name_len = 0;
        int rc = read_string(&c, &name, &name_len);
        if (rc < 0)
            return rc;
        int match = strlen(key) == name_len && memcmp(name, key, name_len) == 0;
        free(name);
        skip_ws(&c);
        if (c.p >= c.end || *c.p++ != ':')
            return -EINVAL;
        skip_ws(&c);
        if (match) {
            *value = c;
            found = 0;
        }
        if (skip_value(&c, 1) < 0)
            return -EINVAL;
        skip_ws(&c);
        if (c.p >= c.end)
            return -EINVAL;
        if (*c.p == ',') {
            c.p++;
            continue;
        }
        if (*c.p == '}')
            return found;
        return -EINVAL;
    }
}

/* --- output --------------------------------------------------------------------------------- */

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

static int buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return -ENOMEM;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int buf_str(struct buf *b, const char *s)
{
    return buf_put(b, s, strlen(s));
}

static int buf_json_string(struct buf *b, const char *s, size_t n)
{
    int rc = buf_put(b, "\"", 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        if (ch == '"')
            rc = buf_put(b, "\\\"", 2);
        else if (ch == '\\')
            rc = buf_put(b, "\\\\", 2);
        else if (ch < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            rc = buf_put(b, esc, 6);
        } else
            rc = buf_put(b, (const char *)&s[i], 1);
    }
    return rc ? rc : buf_put(b, "\"", 1);
}

static int fail(const char *message, int rc, char **out_json, size_t *out_len)
{
    size_t n = strlen(message);
    char *copy = malloc(n + 1);
    if (copy) {
        memcpy(copy, message, n + 1);
        *out_json = copy;
        *out_len = n;
    }
    return rc;
}

/* --- the tools ------------------------------------------------------------------------------ */

static int tool_echo(struct hello_state *st, const char *args, size_t len, char **out_json, size_t *out_len)
{
    struct cur v;
    int rc = find_member(args, len, "text", &v);
    if (rc == -ENOENT)
        return fail("native_echo: missing required argument 'text'", -EINVAL, out_json, out_len);
    char *text = NULL;
    size_t text_len = 0;
    if (rc < 0 || read_string(&v, &text, &text_len) < 0)
        return fail("native_echo: 'text' must be a string", -EINVAL, out_json, out_len);
    struct buf b = {0};
    rc = buf_str(&b, "{\"content\":[{\"type\":\"text\",\"text\":");
    if (rc == 0) {
        /* prefix + text as one JSON string */
        size_t plen = strlen(st->prefix);
        char *joined = malloc(plen + text_len + 1);
        if (!joined) {
            rc = -ENOMEM;
        } else {
            memcpy(joined, st->prefix, plen);
            memcpy(joined + plen, text, text_len);
            rc = buf_json_string(&b, joined, plen + text_len);
            free(joined);
        }
    }
    if (rc == 0)
        rc = buf_str(&b, "}]}");
    free(text);
    if (rc < 0) {
        free(b.data);
        return rc;
    }
    *out_json = b.data;
    *out_len = b.len;
    return 0;
}

static int read_operand(const char *args, size_t len, const char *key, double *out)
{
    struct cur v;
    int rc = find_member(args, len, key, &v);
    if (rc < 0)
        return rc;
    return read_number(&v, out);
}

static int tool_add(const char *args, size_t len, char **out_json, size_t *out_len)
{
    double a, b;
    if (read_operand(args, len, "a", &a) < 0 || read_operand(args, len, "b", &b) < 0)
        return fail("native_add: 'a' and 'b' must be numbers", -EINVAL, out_json, out_len);
    double sum = a + b;
    if (!isfinite(sum))
        return fail("native_add: the sum is out of range", -ERANGE, out_json, out_len);
    char *out = malloc(160);
    if (!out)
        return -ENOMEM;
    int n = snprintf(out, 160, "{\"content\":[{\"type\":\"text\",\"text\":\"%.17g\"}],\"structuredContent\":{\"sum\":%.17g}}",
                     sum, sum);
    if (n < 0 || n >= 160) {
        free(out);
        return -EOVERFLOW;
    }
    *out_json = out;
    *out_len = (size_t)n;
    return 0;
}

/* --- the ABI table -------------------------------------------------------------------------- */

static int hello_init(const char *config_json, void **state)
{
    struct hello_state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    struct cur v;
    size_t n = 0;
    int rc = config_json ? find_member(config_json, strlen(config_json), "prefix", &v) : -ENOENT;
    if (rc == 0)
        rc = read_string(&v, &st->prefix, &n);
    else if (rc == -ENOENT)
        rc = (st->prefix = calloc(1, 1)) ? 0 : -ENOMEM;
    if (rc < 0) {
        free(st->prefix);
        free(st);
        return rc;
    }
    *state = st;
    return 0;
}

static int hello_call_tool(void *state, const char *name, const char *args_json, size_t args_len, char **out_json,
                           size_t *out_len)
{
    struct hello_state *st = state;
    if (strcmp(name, "native_echo") == 0)
        return tool_echo(st, args_json, args_len, out_json, out_len);
    if (strcmp(name, "native_add") == 0)
        return tool_add(args_json, args_len, out_json, out_len);
    return -ENOENT;
}

static void hello_free_result(char *out_json)
{
    free(out_json);
}

static void hello_shutdown(void *state)
{
    struct hello_state *st = state;
    if (st) {
        free(st->prefix);
        free(st);
    }
}

static const char TOOLS_JSON[] =
    "[{\"name\":\"native_echo\",\"description\":\"Echo text back (from C), after the configured prefix\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},"
    "\"required\":[\"text\"]},\"annotations\":{\"readOnlyHint\":true}},"
    "{\"name\":\"native_add\",\"description\":\"Add two numbers (from C)\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\"},\"b\":{\"type\":\"number\"}},"
    "\"required\":[\"a\",\"b\"]},"
    "\"outputSchema\":{\"type\":\"object\",\"properties\":{\"sum\":{\"type\":\"number\"}},\"required\":[\"sum\"]},"
    "\"annotations\":{\"readOnlyHint\":true,\"idempotentHint\":true}}]";

static const struct mcp_edge_plugin_v1 HELLO = {
    .abi_version = MCP_EDGE_PLUGIN_ABI,
    .id = "native_hello",
    .version = "1.0.0",
    .description = "Example native plugin: echo and add, in C",
    .tools_json = TOOLS_JSON,
    .init = hello_init,
    .call_tool = hello_call_tool,
    .free_result = hello_free_result,
    .shutdown = hello_shutdown,
};

MCP_EDGE_PLUGIN_EXPORT const struct mcp_edge_plugin_v1 *mcp_edge_plugin_v1(void)
{
    return &HELLO;
}
