/* overflow.c - a heap read one past the end: tools/sanitize must fail it under AddressSanitizer. */
/* SPDX-License-Identifier: Apache-2.0 */
// sources:
// libs:
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    (void)argv;
    char *p = malloc(16), out[16];
    memset(p, 1, 16);
    volatile size_t n = sizeof out; /* a length the compiler cannot see: the real memcpy, which ASan checks */
    memcpy(out, p + argc, n);       /* argc is 1: reads p[1..16], one byte past the block */
    free(p);
    printf("%d\n", out[0]);
    return 0;
}
