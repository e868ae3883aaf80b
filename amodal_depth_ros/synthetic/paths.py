"""Camera paths through procedural scenes, for fused maps: a camera moving around a room's or a table top's
target, every frame with its camera-to-world pose and the true surfaces it faces.

The path sweeps the scene's own camera sideways (``sweep`` metres either side) and towards the target,
always aimed at it: frame 0 is the scene's own view, later frames see behind what hid things at first.
The true surfaces of a frame are every object's nearest surface along each pixel ray, hidden or not
(``GroundTruthFrame.object_depths``): what a complete reconstruction from that viewpoint holds.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..core.geometry import normalized_coords
from ..groundtruth import GroundTruthFrame
from .procedural import random_room
from .scene import World
from .shapes import look_at
from .tabletop import random_tabletop


@dataclass
class PathFrame:
    truth: GroundTruthFrame
    camera_to_world: np.ndarray   # (4, 4) float64: optical frame -> world


def scene_world(kind: str, seed: int, width: int, height: int) -> World:
    """The scene of ``seed``: 'synthetic' (a procedural room) or 'tabletop'."""
    if kind == "synthetic":
        return random_room(seed, width, height)
    if kind == "tabletop":
        return random_tabletop(seed, width, height)
    raise ValueError(f"scene kind must be 'synthetic' or 'tabletop', got {kind!r}")


def eye_offsets(world: World, frames: int, sweep: float = 0.5) -> list[np.ndarray]:
    """World-frame displacements of the eye: a sideways sweep (``sweep`` of the eye's distance to the target,
    at most 0.6 m, either side) with a dip towards the target mid-way; frame 0 at the scene's own eye."""
    to_target = world.target - world.eye
    distance = float(np.linalg.norm(to_target))
    forward = to_target / distance
    side = np.cross(forward, (0.0, -1.0, 0.0))
    side /= np.linalg.norm(side)
    reach = min(sweep * distance, 0.6)
    offsets = []
    for k in range(frames):
        phase = 2.0 * math.pi * k / max(frames, 1)
        offsets.append(reach * math.sin(phase) * side + 0.2 * reach * (1.0 - math.cos(phase)) * forward)
    return offsets


def camera_to_world(world: World, eye_offset: np.ndarray) -> np.ndarray:
    """(4, 4) pose of the optical frame of ``world.view(eye_offset)`` in the world frame."""
    rotation, translation = look_at(world.eye + eye_offset, world.target)
    c, s = math.cos(world.roll), math.sin(world.roll)
    roll = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3], world_to_camera[:3, 3] = roll @ rotation, roll @ translation
    return np.linalg.inv(world_to_camera)


def path_frames(world: World, frames: int, seed: int = 0) -> Iterator[PathFrame]:
    """``frames`` rendered frames along the path of ``world``, with their poses."""
    for k, offset in enumerate(eye_offsets(world, frames)):
        yield PathFrame(world.render(offset, seed=(seed, k)), camera_to_world(world, offset))


def true_surface_points(frame: PathFrame, stride: int = 2) -> np.ndarray:
    """(N, 3) world points of every object's surface facing the camera (visible or hidden), on every
    ``stride``-th pixel."""
    truth = frame.truth
    x_n, y_n = normalized_coords(truth.intrinsics)
    depths = truth.object_depths[:, ::stride, ::stride]
    k, r, c = np.nonzero(np.isfinite(depths) & (depths > 0))
    z = depths[k, r, c].astype(np.float64)
    camera = np.stack([x_n[::stride][c] * z, y_n[::stride][r] * z, z], axis=1)
    pose = frame.camera_to_world
    return (camera @ pose[:3, :3].T + pose[:3, 3]).astype(np.float32)
