"""The ``amodal-depth`` command: one module per subcommand (demo, eval, train, bench, replay, ...), dispatched by
``cli.main``."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .cli import main

__all__ = [
    "main",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "cli": ("main",),
})
