"""``StopToken``: how whoever owns the process tells a transport to stop, without the transport knowing why.

Transports take one and install no signal handlers; ``mcp_edge.supervisor`` (or an embedding program) sets it.
Setting it means "accept nothing new, answer what is in flight within the drain budget, then return". Its
``second`` event is set when the owner is asked a second time (a second SIGTERM): the supervisor exits at
once then, an embedder may cut the drain short.
"""

from __future__ import annotations

import asyncio

__all__ = ["StopToken"]


class StopToken:
    """A one-way switch with a reason: ``set(reason)``, ``is_set()``, ``await wait()``, ``reason``, ``second``.

    Made anywhere (the asyncio events bind to a loop on first wait); set from the loop's thread (signal
    handlers added with ``loop.add_signal_handler`` run there).
    """

    __slots__ = ("_event", "_reason", "second")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._reason: str | None = None
        self.second = asyncio.Event()

    def set(self, reason: str = "stop requested") -> None:
        """Ask for a stop; the first reason given is the one kept."""
        if self._reason is None:
            self._reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> str:
        """Return (the reason) once the token is set."""
        await self._event.wait()
        return self._reason or ""

    @property
    def reason(self) -> str | None:
        """Why it was set; None while it is not."""
        return self._reason

    def __repr__(self) -> str:
        return f"<StopToken {'set: ' + repr(self._reason) if self.is_set() else 'clear'}>"
