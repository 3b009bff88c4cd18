/* me_sys.h - small process controls the runtime needs without ctypes (which costs RSS at every start). */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_SYS_H
#define MCP_EDGE_ME_SYS_H

/* Deliver signal `sig` to this process when its parent dies (0 turns it off). 0 or -errno. */
int me_sys_set_pdeathsig(int sig);

/* The signal set by me_sys_set_pdeathsig (0 if none), or -errno. */
int me_sys_get_pdeathsig(void);

#endif /* MCP_EDGE_ME_SYS_H */
