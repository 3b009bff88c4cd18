################################################################################
#
# mcp-edge
#
################################################################################

# The tarball comes from a local path (site method "file"); nothing is built. Its top level is opt/ and etc/,
# so no leading component is stripped when Buildroot extracts it into $(@D).
MCP_EDGE_VERSION = 0.1.0
MCP_EDGE_OVERLAY = $(call qstrip,$(BR2_PACKAGE_MCP_EDGE_OVERLAY))
MCP_EDGE_SITE = $(patsubst %/,%,$(dir $(MCP_EDGE_OVERLAY)))
MCP_EDGE_SOURCE = $(notdir $(MCP_EDGE_OVERLAY))
MCP_EDGE_SITE_METHOD = file
MCP_EDGE_STRIP_COMPONENTS = 0
MCP_EDGE_LICENSE = Apache-2.0
MCP_EDGE_DEPENDENCIES = python3

# The compiled extensions in site-packages are for the bundle's architecture, which Buildroot's check-bin-arch
# checks against the target's. Its strip step would rewrite them (manifest.json keeps the SHA-256 of every
# file as bundled); BR2_STRIP_EXCLUDE_DIRS="opt/mcp-edge" in the defconfig keeps them byte for byte.

define MCP_EDGE_INSTALL_TARGET_CMDS
	mkdir -p $(TARGET_DIR)/opt $(TARGET_DIR)/etc
	cp -a $(@D)/opt/mcp-edge $(TARGET_DIR)/opt/
	cp -a $(@D)/etc/mcp-edge $(TARGET_DIR)/etc/
endef

# The unit is written for the board by the bundle (mcp-edge systemd-unit); enabled here the way
# `systemctl enable` would (its [Install] section says WantedBy=multi-user.target).
define MCP_EDGE_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/etc/systemd/system/mcp-edge.service \
		$(TARGET_DIR)/etc/systemd/system/mcp-edge.service
	mkdir -p $(TARGET_DIR)/etc/systemd/system/multi-user.target.wants
	ln -sf ../mcp-edge.service \
		$(TARGET_DIR)/etc/systemd/system/multi-user.target.wants/mcp-edge.service
endef

$(eval $(generic-package))
