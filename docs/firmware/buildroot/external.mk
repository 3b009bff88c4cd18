include $(sort $(wildcard $(BR2_EXTERNAL_MCP_EDGE_PATH)/package/*/*.mk))
