"""Fusing frames over time into a map: what was observed and what was predicted behind it (``fused_map``),
observations winning where they exist and free space clearing wrong predictions (Open3D voxel block grids)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .fused_map import FusedMap, MapCloud, write_map

__all__ = ["FusedMap", "MapCloud", "write_map"]

__getattr__, __dir__ = lazy_exports(__name__, {"fused_map": ("FusedMap", "MapCloud", "write_map")})
