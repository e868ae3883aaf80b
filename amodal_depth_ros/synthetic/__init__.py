"""Procedural RGB-D scenes with exact ground truth of what is hidden: rooms, table tops, sensor noise, and a
camera stream for demos; rendered by analytic ray casting."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .procedural import generate, random_room
    from .scene import SceneObject, random_scene, render
    from .sensor import rgbd_camera_depth
    from .stream import SyntheticCamera
    from .tabletop import generate_tabletop, random_tabletop

__all__ = [
    "SceneObject", "SyntheticCamera", "generate", "generate_tabletop", "random_room", "random_scene",
    "random_tabletop", "render", "rgbd_camera_depth",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "procedural": ("generate", "random_room"),
    "tabletop": ("generate_tabletop", "random_tabletop"),
    "scene": ("SceneObject", "random_scene", "render"),
    "sensor": ("rgbd_camera_depth",),
    "stream": ("SyntheticCamera",),
})
