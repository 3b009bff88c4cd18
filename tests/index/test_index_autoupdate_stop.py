"""A server stopped while its auto-update round downloads: the round's thread is cut short at its next read and
stop() returns only once it is done, so nothing of the install outlives the server (no work folder left in
staging, no swap after the stop) and the installed version is the old one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from index_helpers import PLUGIN_ID, base_url, box_settings, installer, published_v1, serve_folder

from mcp_edge.server import Server


def test_stop_during_an_update_download_leaves_nothing_running(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    artifact = f"{PLUGIN_ID}-2.0.0.tar.gz"
    with serve_folder(pub.out) as http:
        url = base_url(http) + "index.json"
        assert installer(tmp_path, url, trust).install(PLUGIN_ID) is not None
        pub.publish("2.0.0", "v2")
        http.slow.add(artifact)  # 64 bytes every 0.2 s: the download takes many seconds
        settings = box_settings(tmp_path, url, trust, plugin_update_interval_s=0.05, reload_watch=False,
                                entry_points=False, plugin_dirs=())
        staging = tmp_path / "data" / "plugins" / ".staging"

        async def main() -> list[Path]:
            running = await Server.configure(settings).start()
            try:
                for _ in range(600):  # until the round's download has begun
                    if artifact in http.requests:
                        break
                    await asyncio.sleep(0.05)
                assert artifact in http.requests
                await asyncio.sleep(0.3)  # a few drips in
            finally:
                await running.stop()
            return list(staging.iterdir())

        assert asyncio.run(main()) == []  # the round's thread was done when stop() returned
    record = installer(tmp_path, url, trust).state.installed()[PLUGIN_ID]
    assert record["version"] == "1.0.0"
    assert "'v1'" in (tmp_path / "data" / "plugins" / PLUGIN_ID / "plugin.py").read_text()
