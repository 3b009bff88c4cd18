"""The one place the runtime reads its process environment.

The settings loader (``Settings.load``, the board choice and the boards folder) and the tools that pass the
environment on to a child process get it from here; plugins and transports see only ``Settings`` (plugins
through their context), so ``grep os.environ`` over the runtime finds this module alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["process_environ"]


def process_environ() -> Mapping[str, str]:
    """This process's environment, live (later changes show)."""
    return os.environ
