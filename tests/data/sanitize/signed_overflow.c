/* signed_overflow.c - signed integer overflow: tools/sanitize must fail it under UBSan. */
/* SPDX-License-Identifier: Apache-2.0 */
// sources:
#include <limits.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argv;
    int x = INT_MAX - 1;
    x += argc + 1; /* INT_MAX + 1 */
    printf("%d\n", x);
    return 0;
}
