/* sys.c - process controls: the parent-death signal (prctl PR_SET_PDEATHSIG). */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "me_sys.h"

#include <errno.h>
#include <sys/prctl.h>

int me_sys_set_pdeathsig(int sig)
{
    return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0UL, 0UL, 0UL) == 0 ? 0 : -errno;
}

int me_sys_get_pdeathsig(void)
{
    int sig = 0;
    return prctl(PR_GET_PDEATHSIG, (unsigned long)&sig, 0UL, 0UL, 0UL) == 0 ? sig : -errno;
}
