"""The completed mesh (``core.mesh``) as a visualization_msgs/Marker TRIANGLE_LIST, serialised with numpy.

A Marker carries its triangles as geometry_msgs/Point[] and std_msgs/ColorRGBA[], three of each per
triangle. rclpy would build a Python object per point (about a second for a VGA mesh), so the message is
written straight in its CDR encoding (little endian, as rmw serialises it) and published as those bytes,
which rclpy publishers and the bag writer take as they are (``Serialized``).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from visualization_msgs.msg import Marker

from ..core.mesh import LayeredMesh

CDR_LE = b"\x00\x01\x00\x00"   # encapsulation: plain CDR, little endian


@dataclass(frozen=True)
class Serialized:
    """A message already serialised (CDR bytes with their encapsulation header) and its type."""

    msg_type: type
    data: bytes


class _Cdr:
    """Appends CDR fields, each aligned to its size counted from the end of the encapsulation header."""

    def __init__(self) -> None:
        self.parts: list[bytes | memoryview] = [CDR_LE]
        self.size = 0

    def _align(self, n: int) -> None:
        pad = -self.size % n
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad

    def put(self, fmt: str, *values: float | int | bool) -> None:
        """Primitives of one size (struct format without byte order, e.g. 'iI', '3d')."""
        data = struct.pack("<" + fmt, *values)
        self._align(struct.calcsize("<" + fmt[-1]))
        self.parts.append(data)
        self.size += len(data)

    def string(self, text: str) -> None:
        data = text.encode() + b"\0"
        self.put("I", len(data))
        self.parts.append(data)
        self.size += len(data)

    def sequence(self, items: np.ndarray, align: int) -> None:
        """A sequence of structs whose fields are the rows of ``items`` (C-contiguous, little endian)."""
        self.put("I", len(items))
        if len(items):
            self._align(align)
            self.parts.append(np.ascontiguousarray(items).data.cast("B"))
            self.size += items.nbytes

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def mesh_marker(mesh: LayeredMesh, stamp: tuple[int, int], frame_id: str, ns: str = "completed_mesh",
                marker_id: int = 0, hidden_alpha: float = 0.6) -> Serialized:
    """``mesh`` as one TRIANGLE_LIST Marker (action ADD, identity pose, unit scale) in ``frame_id`` at ``stamp``
    (sec, nanosec): vertex colours per triangle corner, hidden layers at ``hidden_alpha`` so that what
    lies behind them shows through."""
    # Per vertex first, then one gather per triangle corner: (N, 3) float64 and (N, 4) float32 rows are the
    # records of Point and ColorRGBA.
    corners = mesh.triangles.reshape(-1)
    points = mesh.vertices.astype("<f8")[corners]
    rgba = np.empty((len(mesh.vertices), 4), "<f4")
    np.multiply(mesh.colors, np.float32(1.0 / 255.0), out=rgba[:, :3])
    rgba[:, 3] = np.where(mesh.layer == 0, np.float32(1.0), np.float32(hidden_alpha))
    colors = rgba[corners]
    cdr = _Cdr()
    cdr.put("iI", *stamp)
    cdr.string(frame_id)
    cdr.string(ns)
    cdr.put("iii", marker_id, Marker.TRIANGLE_LIST, Marker.ADD)
    cdr.put("7d", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)    # pose: identity (points are in the camera frame)
    cdr.put("3d", 1.0, 1.0, 1.0)                        # scale: TRIANGLE_LIST points are used as given
    cdr.put("4f", 1.0, 1.0, 1.0, 1.0)                   # colour: overridden by the per-vertex colours
    cdr.put("iI", 0, 0)                                 # lifetime: until replaced
    cdr.put("?", False)                                 # frame_locked
    cdr.sequence(points, 8)
    cdr.sequence(colors, 4)
    cdr.string("")                                      # texture_resource
    cdr.put("iI", 0, 0)                                 # texture: header stamp,
    cdr.string("")                                      # frame_id,
    cdr.string("")                                      # format,
    cdr.put("I", 0)                                     # data
    cdr.put("I", 0)                                     # uv_coordinates
    cdr.string("")                                      # text
    cdr.string("")                                      # mesh_resource
    cdr.string("")                                      # mesh_file: filename,
    cdr.put("I", 0)                                     # data
    cdr.put("?", False)                                 # mesh_use_embedded_materials
    return Serialized(Marker, cdr.bytes())
