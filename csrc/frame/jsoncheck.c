/* jsoncheck.c - is this one JSON object or array, safe to embed as a value, on one line? */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The runtime embeds the JSON a plugin's worker wrote (a tool's result) in its own response without decoding
 * it. The worker is another process, so its bytes are checked first, on the runtime's own copy:
 *
 *   - no raw line break anywhere (a '\n' would end the stdio line and let a second message through);
 *   - strings closed, with no raw control character in them and only JSON escapes ('\u' with four hex digits);
 *   - brackets balanced and matched outside strings, no ',' or ':' outside every bracket, and nothing but
 *     spaces and tabs after the closing bracket: exactly one value, so it cannot close the envelope around it
 *     and add members of its own (a second "id");
 *   - UTF-8 well formed (the response must be text).
 *
 * What lies between brackets outside strings (numbers, true/false/null) is only checked to be made of the
 * characters those can be made of: a worker that writes `tru` breaks its own answer, never the envelope or
 * the framing. Strings are skipped 32 (AVX2) or 16 (NEON) bytes at a time while they hold no quote, backslash,
 * control character or non-ASCII byte; the rest goes byte by byte.
 */
#include "me_frame.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#include "../cpu/me_cpu.h"
#define ME_JSON_AVX2 1
#elif defined(__aarch64__)
#include <arm_neon.h>
#define ME_JSON_NEON 1
#endif

#define MAX_DEPTH 1024 /* brackets open at once; msgspec's own encoder stops well before */

/* Bytes a string may run over in one go: printable ASCII but '"' and '\'. */
static inline int plain(uint8_t c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Bytes a number or literal may be made of (outside strings, between structure). */
static inline int scalar_byte(uint8_t c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' ||
           (c >= 'a' && c <= 'z');
}

static inline int hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F)) /* overlong, surrogate */
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F)) /* overlong, past U+10FFFF */
            return 0;
        return 4;
    }
    return 0;
}

#if ME_JSON_AVX2
__attribute__((target("avx2"))) static size_t plain_run_avx2(const uint8_t *p, size_t n)
{
    size_t i = 0;
    const __m256i quote = _mm256_set1_epi8('"'), bs = _mm256_set1_epi8('\\'), ctl = _mm256_set1_epi8(0x1F);
    for (; i + 32 <= n; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(p + i));
        /* c <= 0x1F (unsigned), '"', '\\'; bytes >= 0x80 have their top bit: movemask of v itself. */
        __m256i stop = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, bs)),
                                        _mm256_cmpeq_epi8(_mm256_min_epu8(v, ctl), v));
        uint32_t mask = (uint32_t)_mm256_movemask_epi8(stop) | (uint32_t)_mm256_movemask_epi8(v);
        if (mask)
            return i + (size_t)__builtin_ctz(mask);
    }
    return i;
}
#endif

#if ME_JSON_NEON
static size_t plain_run_neon(const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint8x16_t v = vld1q_u8(p + i);
        uint8x16_t stop = vorrq_u8(vorrq_u8(vceqq_u8(v, vdupq_n_u8('"')), vceqq_u8(v, vdupq_n_u8('\\'))),
                                   vorrq_u8(vcleq_u8(v, vdupq_n_u8(0x1F)), vcgeq_u8(v, vdupq_n_u8(0x80))));
        if (vmaxvq_u8(stop))
            break;
    }
    return i;
}
#endif

/* How many bytes from p are plain string bytes (a lower bound: the byte loop finishes the run). */
static size_t plain_run(const uint8_t *p, size_t n, int wide)
{
#if ME_JSON_AVX2
    if (wide)
        return plain_run_avx2(p, n);
#elif ME_JSON_NEON
    (void)wide;
    return plain_run_neon(p, n);
#endif
    (void)wide;
    (void)p;
    (void)n;
    return 0;
}

static int wide_ok(void)
{
#if ME_JSON_AVX2
    return (me_cpu_features() & ME_CPU_AVX2) != 0;
#else
    return 1;
#endif
}

int me_json_check_value(const uint8_t *p, size_t n, size_t *where)
{
    static int wide = -1;
    if (wide < 0)
        wide = wide_ok();
    uint8_t stack[MAX_DEPTH];
    size_t depth = 0, i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (i == n || (p[i] != '{' && p[i] != '[')) {
        *where = i;
        return ME_JSON_NOT_CONTAINER;
    }
    while (i < n) {
        uint8_t c = p[i];
        if (c == '"') {
            i++;
            for (;;) {
                i += plain_run(p + i, n - i, wide);
                while (i < n && plain(p[i]))
                    i++;
                if (i == n) {
                    *where = i;
                    return ME_JSON_UNCLOSED_STRING;
                }
                c = p[i];
                if (c == '"') {
                    i++;
                    break;
                }
                if (c == '\\') {
                    if (i + 1 >= n) {
                        *where = i;
                        return ME_JSON_UNCLOSED_STRING;
                    }
                    uint8_t e = p[i + 1];
                    if (e == 'u') {
                        if (i + 5 >= n || !hex(p[i + 2]) || !hex(p[i + 3]) || !hex(p[i + 4]) || !hex(p[i + 5])) {
                            *where = i;
                            return ME_JSON_BAD_ESCAPE;
                        }
                        i += 6;
                    } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                               e == 'r' || e == 't') {
                        i += 2;
                    } else {
                        *where = i;
                        return ME_JSON_BAD_ESCAPE;
                    }
                    continue;
                }
                if (c < 0x20) {
                    *where = i;
                    return c == '\n' || c == '\r' ? ME_JSON_LINE_BREAK : ME_JSON_CONTROL;
                }
                size_t len = utf8_len(p + i, n - i); /* c >= 0x80 */
                if (!len) {
                    *where = i;
                    return ME_JSON_BAD_UTF8;
                }
                i += len;
            }
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == MAX_DEPTH) {
                *where = i;
                return ME_JSON_TOO_DEEP;
            }
            stack[depth++] = c == '{' ? '}' : ']';
        } else if (c == '}' || c == ']') {
            if (depth == 0 || stack[depth - 1] != c) {
                *where = i;
                return ME_JSON_UNBALANCED;
            }
            if (--depth == 0) { /* the value ended: only spaces and tabs may follow */
                i++;
                while (i < n && (p[i] == ' ' || p[i] == '\t'))
                    i++;
                *where = i;
                return i == n ? 0 : (p[i] == '\n' || p[i] == '\r' ? ME_JSON_LINE_BREAK : ME_JSON_TRAILING);
            }
        } else if (c == ',' || c == ':' || c == ' ' || c == '\t') {
            /* inside brackets (depth > 0 here: the value started with one and has not closed) */
        } else if (c == '\n' || c == '\r') {
            *where = i;
            return ME_JSON_LINE_BREAK;
        } else if (!scalar_byte(c)) {
            *where = i;
            return ME_JSON_BAD_BYTE;
        }
        i++;
    }
    *where = n;
    return ME_JSON_UNBALANCED;
}

const char *me_json_check_message(int rc)
{
    switch (rc) {
    case 0: return "one JSON value";
    case ME_JSON_NOT_CONTAINER: return "does not start with an object or an array";
    case ME_JSON_UNCLOSED_STRING: return "a string is not closed";
    case ME_JSON_BAD_ESCAPE: return "a bad escape in a string";
    case ME_JSON_LINE_BREAK: return "a raw line break";
    case ME_JSON_CONTROL: return "a raw control character in a string";
    case ME_JSON_BAD_UTF8: return "bytes that are not UTF-8";
    case ME_JSON_TOO_DEEP: return "brackets nested too deep";
    case ME_JSON_UNBALANCED: return "brackets that do not match";
    case ME_JSON_TRAILING: return "more after the value";
    case ME_JSON_BAD_BYTE: return "a byte no JSON value has outside strings";
    default: return "malformed";
    }
}
