/* malloc_count.c - LD_PRELOAD library counting malloc/calloc/realloc/free calls of a process (glibc). */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every call is forwarded to glibc's own allocator (__libc_malloc and kin, so
 * no dlsym bootstrap is needed) and counted with relaxed atomics:
 *
 * - always, into the "total" counters (the whole life of the process);
 * - between malloc_count_begin() and malloc_count_end(), into the "window"
 *   counters as well (any thread's calls: the process is what is measured).
 *
 * malloc_count_end(out) stores the window's counts in out[0..3] (malloc,
 * calloc, realloc, free; aligned allocations count as malloc) and clears them.
 * With MALLOC_COUNT_OUT=<file> in the environment, the library writes at exit
 * one JSON line: {"total": {...}, "window": {...}} where "window" sums every
 * begin/end window of the run. tools/malloc_count/malloc_count.py builds the
 * library and wraps both ways of reading it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t align, size_t n);

#define EXPORT __attribute__((visibility("default")))

enum { C_MALLOC, C_CALLOC, C_REALLOC, C_FREE, C_N };
static const char *const names[C_N] = {"malloc", "calloc", "realloc", "free"};

static _Atomic uint64_t total[C_N];
static _Atomic uint64_t window[C_N];
static _Atomic uint64_t window_sum[C_N];
static _Atomic int armed;

static inline void count(int which)
{
    atomic_fetch_add_explicit(&total[which], 1, memory_order_relaxed);
    if (atomic_load_explicit(&armed, memory_order_relaxed))
        atomic_fetch_add_explicit(&window[which], 1, memory_order_relaxed);
}

EXPORT void *malloc(size_t n)
{
    count(C_MALLOC);
    return __libc_malloc(n);
}

EXPORT void *calloc(size_t n, size_t size)
{
    count(C_CALLOC);
    return __libc_calloc(n, size);
}

EXPORT void *realloc(void *p, size_t n)
{
    count(C_REALLOC);
    return __libc_realloc(p, n);
}

EXPORT void free(void *p)
{
    if (p)
        count(C_FREE);
    __libc_free(p);
}

EXPORT void *memalign(size_t align, size_t n)
{
    count(C_MALLOC);
    return __libc_memalign(align, n);
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
    count(C_MALLOC);
    return __libc_memalign(align, n);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    count(C_MALLOC);
    void *p = __libc_memalign(align, n);
    if (!p && n)
        return ENOMEM;
    *out = p;
    return 0;
}

EXPORT void *valloc(size_t n)
{
    count(C_MALLOC);
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

EXPORT void malloc_count_begin(void)
{
    for (int i = 0; i < C_N; i++)
        atomic_store_explicit(&window[i], 0, memory_order_relaxed);
    atomic_store_explicit(&armed, 1, memory_order_seq_cst);
}

EXPORT void malloc_count_end(uint64_t *out)
{
    atomic_store_explicit(&armed, 0, memory_order_seq_cst);
    for (int i = 0; i < C_N; i++) {
        uint64_t v = atomic_exchange_explicit(&window[i], 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&window_sum[i], v, memory_order_relaxed);
        if (out)
            out[i] = v;
    }
}

static void put(FILE *f, const char *label, _Atomic uint64_t *c)
{
    fprintf(f, "\"%s\": {", label);
    for (int i = 0; i < C_N; i++)
        fprintf(f, "%s\"%s\": %llu", i ? ", " : "", names[i],
                (unsigned long long)atomic_load_explicit(&c[i], memory_order_relaxed));
    fputc('}', f);
}

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("MALLOC_COUNT_OUT");
    if (!path || !*path)
        return;
    atomic_store(&armed, 0);
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fputc('{', f);
    put(f, "total", total);
    fputs(", ", f);
    put(f, "window", window_sum);
    fputs("}\n", f);
    fclose(f);
}
