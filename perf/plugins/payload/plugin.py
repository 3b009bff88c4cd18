"""payload: ``blob(size) -> str`` (a text of ``size`` characters the client can check) and ``nap(ms) -> str``.

``blob``'s text is the 64 characters of ``PATTERN`` repeated and cut to ``size``, so a client checks any
slice of it from its offset alone. Texts are kept per size: the bench times moving the result, not making it.
``nap`` sleeps without holding the event loop, so many can be in flight at once (the drain case).
"""

import asyncio

from mcp_edge.plugin import PluginBase, tool

__all__ = ["PATTERN", "Payload"]

PATTERN = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
MAX_SIZE = 64 << 20


class Payload(PluginBase):
    def __init__(self) -> None:
        super().__init__()
        self._texts: dict[int, str] = {}

    @tool
    def blob(self, size: int) -> str:
        """A text of ``size`` characters: the 64-character pattern repeated."""
        if not 0 <= size <= MAX_SIZE:
            raise ValueError(f"size must be within 0..{MAX_SIZE}")
        text = self._texts.get(size)
        if text is None:
            text = self._texts[size] = (PATTERN * (size // len(PATTERN) + 1))[:size]
        return text

    @tool
    async def nap(self, ms: float) -> str:
        """Sleep ``ms`` milliseconds, then answer ``"slept <ms>"``."""
        await asyncio.sleep(ms / 1000)
        return f"slept {ms:g}"
