/* segv: a native plugin whose "segv" tool dereferences NULL (a crash in C), and "ok" answers. For the tests
 * that a native plugin's segfault kills its worker, not the runtime. Built by the test into a temp folder. */
#include <stdlib.h>
#include <string.h>
#include "mcp_edge_plugin.h"

static const char TOOLS[] =
    "[{\"name\":\"segv\",\"description\":\"crash\",\"inputSchema\":{\"type\":\"object\"}},"
    "{\"name\":\"ok\",\"description\":\"answer\",\"inputSchema\":{\"type\":\"object\"}}]";

static int call_tool(void *state, const char *name, const char *args, size_t len, char **out, size_t *out_len)
{
    (void)state; (void)args; (void)len;
    if (strcmp(name, "segv") == 0) {
        volatile int *nowhere = NULL;
        *nowhere = 1;
    }
    static const char OK[] = "{\"content\":[{\"type\":\"text\",\"text\":\"fine\"}]}";
    *out = malloc(sizeof OK);
    if (*out == NULL)
        return -12;
    memcpy(*out, OK, sizeof OK);
    *out_len = sizeof OK - 1;
    return 0;
}

static void free_result(char *out) { free(out); }

static const struct mcp_edge_plugin_v1 TABLE = {
    MCP_EDGE_PLUGIN_ABI, "segv", "1.0.0", "crashes in C", TOOLS, NULL, call_tool, free_result, NULL,
};

MCP_EDGE_PLUGIN_EXPORT const struct mcp_edge_plugin_v1 *mcp_edge_plugin_v1(void) { return &TABLE; }
