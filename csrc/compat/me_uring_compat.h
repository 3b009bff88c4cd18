/* me_uring_compat.h - what newer liburing/kernel headers add, for Debian bookworm's liburing 2.3. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MCP_EDGE_ME_URING_COMPAT_H
#define MCP_EDGE_ME_URING_COMPAT_H

#include <liburing.h>

#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_ASYNC_CANCEL_ANY
#define IORING_ASYNC_CANCEL_ANY (1U << 2)
#endif

#endif /* MCP_EDGE_ME_URING_COMPAT_H */
