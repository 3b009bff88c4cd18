/* clean.c - threads, atomics and the CRC32C dispatch used correctly: tools/sanitize must pass it. */
/* SPDX-License-Identifier: Apache-2.0 */
// sources: ext:mcp_edge.native._crc
// libs: -lpthread
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "crc32c/me_crc32c.h"

static atomic_long counter;

static void *work(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        atomic_fetch_add(&counter, (long)(me_crc32c(0, "123456789", 9) == 0xE3069283u));
    return NULL;
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, work, NULL);
    work(NULL);
    pthread_join(t, NULL);
    printf("%ld\n", atomic_load(&counter));
    return atomic_load(&counter) == 2000 ? 0 : 1;
}
