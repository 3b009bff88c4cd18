SUMMARY = "mcp-edge, the MCP runtime for edge appliances (prebuilt overlay of mcp-edge bundle)"
DESCRIPTION = "Installs the tree of the overlay tarball written by `mcp-edge bundle --board NAME`: \
/opt/mcp-edge (launcher, site-packages, plugins, manifest.json), /etc/mcp-edge and the board's systemd unit."
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# The tarball for this machine: put it in files/ beside this recipe, or set MCP_EDGE_OVERLAY in local.conf to
# its name. The board name and architecture are part of the name `mcp-edge bundle` gives it.
MCP_EDGE_BOARD ?= "qemu-virt-aarch64"
MCP_EDGE_OVERLAY ?= "mcp-edge-${PV}-${MCP_EDGE_BOARD}-${TARGET_ARCH}.tar.gz"
SRC_URI = "file://${MCP_EDGE_OVERLAY};subdir=overlay"
S = "${WORKDIR}/overlay"

inherit systemd

# The bundle's extensions are compiled for one architecture and one CPython version (manifest.json says which);
# its launcher runs the board profile's interpreter (default /usr/bin/python3.11) and refuses another version.
COMPATIBLE_HOST = "(aarch64|x86_64).*-linux"
RDEPENDS:${PN} = "python3"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    install -d ${D}/opt ${D}${sysconfdir}
    cp -R --no-dereference --preserve=mode,links ${S}/opt/mcp-edge ${D}/opt/
    cp -R --no-dereference --preserve=mode,links ${S}/etc/mcp-edge ${D}${sysconfdir}/
    install -D -m 0644 ${S}/etc/systemd/system/mcp-edge.service ${D}${systemd_system_unitdir}/mcp-edge.service
}

SYSTEMD_SERVICE:${PN} = "mcp-edge.service"

FILES:${PN} = "/opt/mcp-edge ${sysconfdir}/mcp-edge ${systemd_system_unitdir}/mcp-edge.service"
CONFFILES:${PN} = "${sysconfdir}/mcp-edge/board.toml"

# Prebuilt files: leave them as the bundle made them (manifest.json keeps their SHA-256). The wheels carry
# their own copies of liburing and libnuma (auditwheel), which no package of the image provides.
INHIBIT_PACKAGE_STRIP = "1"
INHIBIT_PACKAGE_DEBUG_SPLIT = "1"
INSANE_SKIP:${PN} += "already-stripped file-rdeps ldflags"
