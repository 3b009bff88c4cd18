"""Is the wall clock set? A box without a real-time clock (a Raspberry Pi) boots in 1970 and keeps that time
until it syncs. Until then every check that depends on the date would lie: an expired token would pass, a
valid one fail. So a clock earlier than ``CLOCK_FLOOR`` (the date of this release: no set clock is older)
counts as unset, ``doctor`` and the health probes say so, and time-dependent checks (JWT expiry, certificate
validity) are refused with a reason naming the clock, until it is set."""

from __future__ import annotations

import time
from typing import Final

__all__ = ["CLOCK_FLOOR", "clock_set", "clock_state"]

CLOCK_FLOOR: Final = 1_796_083_200  # 2026-12-01T00:00:00Z: this release's date
_FLOOR_TEXT: Final = "2026-12-01"


def clock_set(now: float | None = None) -> bool:
    """Whether the wall clock is at or after ``CLOCK_FLOOR``."""
    return (time.time() if now is None else now) >= CLOCK_FLOOR


def clock_state(now: float | None = None) -> dict[str, object]:
    """``{"set": bool, "now": RFC 3339, "reason": ...}`` for doctor and the health probes."""
    t = time.time() if now is None else now
    shown = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    if t >= CLOCK_FLOOR:
        return {"set": True, "now": shown, "reason": "the wall clock is set"}
    return {"set": False, "now": shown,
            "reason": f"the wall clock reads {shown}, before this release ({_FLOOR_TEXT}): it is not set (no "
                      "real-time clock, no time sync yet); token expiry and certificate validity cannot be "
                      "checked until it is"}
