/* race.c - a data race: tools/sanitize must fail it under ThreadSanitizer. */
/* SPDX-License-Identifier: Apache-2.0 */
// sources:
// libs: -lpthread
#include <pthread.h>
#include <stdio.h>

static long counter; /* written by two threads, no lock, no atomics */

static void *bump(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++)
        counter++;
    return NULL;
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, bump, NULL);
    bump(NULL);
    pthread_join(t, NULL);
    printf("%ld\n", counter);
    return 0;
}
