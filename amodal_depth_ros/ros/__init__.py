"""The ROS 2 adapter: the node, message conversions (no cv_bridge), diagnostics, logging into /rosout, bags
without a ROS install, and the camera-side client (spinning in a ``spin_thread``), replay and live replay the
tools and tests use."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .bag import BagWriter, read_messages
    from .client import CameraStreamClient
    from .diagnostics import NodeStats
    from .live import LiveReplay
    from .node import AmodalDepthNode, main
    from .outputs import output_messages, output_topics
    from .process import NodeProcess

__all__ = [
    "AmodalDepthNode", "BagWriter", "CameraStreamClient", "LiveReplay", "NodeProcess", "NodeStats", "main",
    "output_messages", "output_topics", "read_messages",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "node": ("AmodalDepthNode", "main"),
    "outputs": ("output_messages", "output_topics"),
    "diagnostics": ("NodeStats",),
    "bag": ("BagWriter", "read_messages"),
    "client": ("CameraStreamClient",),
    "live": ("LiveReplay",),
    "process": ("NodeProcess",),
})
