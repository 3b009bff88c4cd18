"""The native suite: CPU dispatch and the CRC32C kernels (a package, so that its conftest keeps its own name
when tools/aarch64/test.sh runs pytest with --import-mode=append)."""
