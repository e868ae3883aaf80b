"""Synthetic RGB-D frames with ground truth of what is hidden, rendered by analytic ray casting.

Besides the sensor view (rgb, visible depth, visible instance labels) every frame carries each
object's own first-surface depth as if it were alone in the scene: its amodal extent and the depth
of its hidden part. Conventions follow ``core.types``: optical frame, depth = z in metres as float32
with NaN for "no surface", pixel (u, v) looks along ((u - cx) / fx, (v - cy) / fy, 1).
"""
from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import cast

import numpy as np
import numpy.typing as npt

from ..core.types import CameraIntrinsics
from ..groundtruth import GroundTruthFrame
from .shapes import (
    MIN_HIT_DISTANCE,
    Box,
    Compound,
    Cylinder,
    Rectangle,
    Shape,
    Sphere,
    Vec3,
    dot,
    look_at,
    rotation_x,
    rotation_y,
)

DEFAULT_LIGHT = (-0.4, -1.0, -0.6)   # towards the light, optical frame: above, left, behind the camera
PATTERNS = ("plaid", "stripes", "checker", "speckle")


@dataclass(frozen=True)
class SceneObject:
    name: str
    shape: Shape
    color: tuple[float, float, float]   # base RGB in [0, 1]
    texture: float = 0.1                # relative amplitude of the surface pattern, 0 = flat colour
    pattern: str = "plaid"              # one of PATTERNS, on the object's own coordinates
    period: float = 0.15                # of the pattern, metres
    stuff: bool = False                 # room structure (wall, floor): not an evaluation target

    def transformed(self, rotation: npt.ArrayLike, translation: npt.ArrayLike) -> SceneObject:
        return replace(self, shape=self.shape.transformed(rotation, translation))


@lru_cache(maxsize=8)
def _pixel_rays(intr: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) components, each (H, W), of the pixel rays (x, y, 1): a ray's hit parameter is its depth."""
    # float64 on purpose (core.geometry.normalized_coords is float32): ground truth must be exact.
    x = np.broadcast_to((np.arange(intr.width) - intr.cx) / intr.fx, (intr.height, intr.width))
    y = np.broadcast_to(((np.arange(intr.height) - intr.cy) / intr.fy)[:, None], (intr.height, intr.width))
    return x, y


def _screen_window(shape: Shape, intr: CameraIntrinsics) -> tuple[slice, slice] | None:
    """Pixel rectangle that contains every pixel whose ray can hit ``shape``; None if there is none.

    The shape lies in the hull of its bounding-box corners. Hits have z >= MIN_HIT_DISTANCE, so the
    hull is clipped at that plane: corners in front plus the crossing points of corner pairs. x/z and
    y/z are extremal at those points, which bounds the image of the shape.
    """
    corners = shape.corners()
    z = corners[:, 2]
    front = z >= MIN_HIT_DISTANCE
    if not front.any():
        return None
    near, far = corners[front], corners[~front]
    s = ((MIN_HIT_DISTANCE - near[:, None, 2]) / (far[None, :, 2] - near[:, None, 2]))[..., None]
    points = np.concatenate([near, (near[:, None] + s * (far[None] - near[:, None])).reshape(-1, 3)])
    points[:, 2] = np.maximum(points[:, 2], MIN_HIT_DISTANCE)   # rounding in the crossing points
    u = intr.cx + intr.fx * points[:, 0] / points[:, 2]
    v = intr.cy + intr.fy * points[:, 1] / points[:, 2]
    u0, u1 = max(0, math.floor(u.min())), min(intr.width, math.ceil(u.max()) + 1)
    v0, v1 = max(0, math.floor(v.min())), min(intr.height, math.ceil(v.max()) + 1)
    return (slice(v0, v1), slice(u0, u1)) if u0 < u1 and v0 < v1 else None


def _pieces(shape: Shape) -> list[Shape]:
    """The non-compound shapes making up ``shape``, posed in its parent frame."""
    if not isinstance(shape, Compound):
        return [shape]
    return [piece for part in shape.parts for piece in _pieces(part.transformed(shape.rotation, shape.centre))]


def _texture(local_points: Vec3, pattern: str, period: float) -> np.ndarray:
    """Surface pattern in [-1, 1] on the object's own coordinates: colour varies but stays deterministic.
    float32 because numpy's float64 sin is an order of magnitude slower."""
    k = np.float32(2.0 * math.pi / period)
    x, y, z = local_points
    if pattern == "stripes":
        return np.sin(k * (x + np.float32(0.5) * y + np.float32(0.3) * z))
    if pattern == "checker":   # softened so that edges do not alias
        return np.tanh(np.float32(4.0) * np.sin(k * x) * np.sin(k * y) * np.sin(k * z + np.float32(0.7)))
    if pattern == "speckle":   # incommensurate frequencies: looks irregular, costs three sines
        return (np.sin(k * np.float32(2.3) * x + np.float32(3.1) * np.sin(k * y))
                * np.sin(k * np.float32(1.7) * z + np.float32(2.0) * np.sin(k * np.float32(0.9) * x)))
    waves = (np.sin(p * k + np.float32(phase)) for p, phase in zip(local_points, (0.0, 1.3, 2.1), strict=False))
    return cast(np.ndarray, sum(waves)) / np.float32(3.0)   # the points are arrays, so are the waves


def render(objects: Sequence[SceneObject], intrinsics: CameraIntrinsics, light_dir: Sequence[float] = DEFAULT_LIGHT,
           ambient: float = 0.3, depth_noise_std: float = 0.0, seed: int | Sequence[int] = 0) -> GroundTruthFrame:
    """Ray-cast camera-frame ``objects`` from the origin. ``depth_noise_std`` (metres, Gaussian from
    ``seed``) perturbs only the visible ``depth``; the ground truth ``object_depths`` stays exact."""
    h, w = intrinsics.height, intrinsics.width
    ray_x, ray_y = _pixel_rays(intrinsics)
    light = np.asarray(light_dir, float) / np.linalg.norm(light_dir)
    object_depths = np.full((len(objects), h, w), np.nan, np.float32)
    nearest = np.full((h, w), np.inf)
    ids = np.zeros((h, w), np.int32)
    lambert = np.zeros((h, w), np.float32)   # shading runs in float32: it only feeds 8-bit colour
    windows = [_screen_window(obj.shape, intrinsics) for obj in objects]
    for k, (obj, win) in enumerate(zip(objects, windows, strict=False)):
        if win is None:
            continue
        # A compound is cast part by part, each in its own window: a table's thin legs cover few pixels.
        for part in _pieces(obj.shape):
            part_win = _screen_window(part, intrinsics)
            if part_win is None:
                continue
            t, normal = part.cast((0.0, 0.0, 0.0), (ray_x[part_win], ray_y[part_win], 1.0))
            np.fmin(object_depths[k][part_win], np.where(np.isfinite(t), t, np.nan), out=object_depths[k][part_win])
            # Z-buffer on the window (basic slices are views). Strict < keeps the earlier object on ties.
            closer = t < nearest[part_win]
            np.copyto(nearest[part_win], t, where=closer)
            np.copyto(ids[part_win], k + 1, where=closer)
            np.copyto(lambert[part_win], np.maximum(dot(normal, light), 0.0), where=closer)

    # Albedo factor of the surface pattern, evaluated only where each object is seen. float32 also
    # because numpy's float64 sin is an order of magnitude slower.
    albedo = np.ones((h, w), np.float32)
    for k, (obj, win) in enumerate(zip(objects, windows, strict=False)):
        mine = ids[win] == k + 1 if win is not None else None
        if mine is not None and mine.any():
            z = nearest[win][mine]
            points = tuple(p.astype(np.float32) for p in (ray_x[win][mine] * z, ray_y[win][mine] * z, z))
            albedo[win][mine] = 1.0 + obj.texture * _texture(obj.shape.to_local(points), obj.pattern, obj.period)
    shade = albedo * (ambient + (1.0 - ambient) * lambert) * np.float32(255.0)
    palette = np.array([(0.0, 0.0, 0.0)] + [obj.color for obj in objects], np.float32)   # id 0: black background
    rgb = np.empty((h, w, 3), np.uint8)
    for c in range(3):   # per channel: (H, W) ops stay fast element-wise loops
        rgb[..., c] = np.clip(palette[:, c][ids] * shade + 0.5, 0, 255)

    depth = np.where(np.isfinite(nearest), nearest, np.nan).astype(np.float32)
    if depth_noise_std > 0:
        depth += np.random.default_rng(seed).normal(0.0, depth_noise_std, depth.shape).astype(np.float32)
    return GroundTruthFrame(
        rgb,
        depth,
        ids,
        np.isfinite(object_depths),
        object_depths,
        tuple(obj.name for obj in objects),
        intrinsics,
        _occlusion_pairs(ids, object_depths, windows),
        np.array([obj.stuff for obj in objects], bool),
    )


def _occlusion_pairs(ids: np.ndarray, object_depths: np.ndarray,
                     windows: list[tuple[slice, slice] | None]) -> np.ndarray:
    """(occluder, occluded) for every object seen somewhere inside another object's amodal mask."""
    pairs = []
    for k, win in enumerate(windows):
        if win is None:
            continue
        seen_there = np.bincount(ids[win][np.isfinite(object_depths[k][win])], minlength=len(windows) + 1)
        pairs += [(int(i), k + 1) for i in np.flatnonzero(seen_there) if i not in (0, k + 1)]
    return np.array(sorted(pairs), np.int32).reshape(-1, 2)


def box_in_front_of_wall(width: int = 320, height: int = 240) -> tuple[list[SceneObject], CameraIntrinsics]:
    """A 0.6 m cube on the optical axis (front face at z = 1.5 m) before a wall at z = 3.0 m filling the view."""
    intr = CameraIntrinsics(0.8 * width, 0.8 * width, (width - 1) / 2, (height - 1) / 2, width, height)
    seen_half_size = 3.0 * np.array([width / 2 / intr.fx, height / 2 / intr.fy])   # of the view at z = 3
    wall = SceneObject("wall", Rectangle(centre=(0.0, 0.0, 3.0), half_size=2.0 * seen_half_size), (0.8, 0.8, 0.78))
    box = SceneObject("box", Box(centre=(0.0, 0.0, 1.8), half_extents=(0.3, 0.3, 0.3)), (0.9, 0.15, 0.1))
    return [wall, box], intr


@dataclass(frozen=True, eq=False)
class World:
    """Objects in a gravity-aligned world frame (y down, floor at y = 0) and a camera aimed at them."""

    objects: list[SceneObject]
    intrinsics: CameraIntrinsics
    eye: np.ndarray
    target: np.ndarray
    roll: float = 0.0                              # camera roll about its optical axis, radians
    light_dir: tuple[float, float, float] = DEFAULT_LIGHT
    ambient: float = 0.3

    def view(self, eye_offset: npt.ArrayLike = (0.0, 0.0, 0.0)) -> list[SceneObject]:
        """The objects in the optical frame of the camera moved by ``eye_offset``, still aimed at ``target``."""
        rotation, translation = look_at(self.eye + np.asarray(eye_offset, float), self.target)
        c, s = math.cos(self.roll), math.sin(self.roll)
        roll = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return [obj.transformed(roll @ rotation, roll @ translation) for obj in self.objects]

    def render(self, eye_offset: npt.ArrayLike = (0.0, 0.0, 0.0), depth_noise_std: float = 0.0,
               seed: int | Sequence[int] = 0) -> GroundTruthFrame:
        return render(self.view(eye_offset), self.intrinsics, self.light_dir, self.ambient, depth_noise_std, seed)


def _random_solid(rng: np.random.Generator) -> tuple[str, Shape, float]:
    """(kind, shape standing on the floor at x = z = 0, radius of its floor footprint)."""
    kind = ("box", "cylinder", "sphere")[int(rng.integers(3))]
    if kind == "box":
        half = rng.uniform((0.07, 0.08, 0.07), (0.22, 0.35, 0.22))
        shape = Box(centre=(0.0, -half[1], 0.0), half_extents=half, rotation=rotation_y(rng.uniform(0, math.pi / 2)))
        return kind, shape, float(np.hypot(half[0], half[2]))
    if kind == "cylinder":
        radius, half_height = rng.uniform(0.06, 0.16), rng.uniform(0.08, 0.35)
        return kind, Cylinder(centre=(0.0, -half_height, 0.0), radius=radius, half_height=half_height), radius
    radius = rng.uniform(0.08, 0.2)
    return kind, Sphere(centre=(0.0, -radius, 0.0), radius=radius), radius


def random_world(seed: int, width: int = 320, height: int = 240) -> World:
    """Table-top scene: floor, back wall and 3-8 solids lined up along one or two lines of sight,
    so objects hide objects that hide objects. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    hfov = math.radians(rng.uniform(60.0, 90.0))
    fx = width / 2 / math.tan(hfov / 2)
    intr = CameraIntrinsics(fx, fx * rng.uniform(0.98, 1.02), (width - 1) / 2 + rng.uniform(-0.02, 0.02) * width,
                            (height - 1) / 2 + rng.uniform(-0.02, 0.02) * height, width, height)
    eye = np.array([0.0, -rng.uniform(0.5, 1.1), 0.0])
    lines = int(rng.integers(1, 3))
    # Objects queue along one or two lines of sight: per line the last footprint (x, z, radius),
    # seeded with a zero-size start point at a random bearing.
    starts = zip(rng.uniform(-0.5, 0.5, lines) * hfov / 2, rng.uniform(0.7, 1.2, lines), strict=False)
    last = [(z * math.tan(bearing), z, 0.0) for bearing, z in starts]
    placed: list[tuple[float, float, float]] = []
    objects = []
    for i in range(int(rng.integers(3, 9))):
        line = i % lines
        kind, shape, radius = _random_solid(rng)
        px, pz, pr = last[line]
        z = pz + pr + radius + rng.uniform(0.02, 0.25)
        # Centre near the silhouette edge of the line's previous object, seen from the camera: the
        # object is partly hidden by it and sticks out on one side.
        side = rng.choice((-1.0, 1.0))
        x = (px + side * pr) * z / pz + side * rng.uniform(-0.6, 0.3) * radius
        # Disjoint floor footprints guarantee that standing convex solids do not intersect.
        while any(math.hypot(x - qx, z - qz) < radius + qr + 0.01 for qx, qz, qr in placed):
            z += 0.05
        placed.append((x, z, radius))
        last[line] = (x, z, radius)
        hue, sat, val = rng.uniform(0, 1), rng.uniform(0.5, 0.9), rng.uniform(0.55, 0.95)
        objects.append(SceneObject(f"{kind}_{i}", shape.transformed(np.eye(3), (x, 0.0, z)),
                                   colorsys.hsv_to_rgb(hue, sat, val), rng.uniform(0.05, 0.2)))

    wall_z = max(qz + qr for _, qz, qr in placed) + rng.uniform(0.3, 1.2)
    extent = 20.0   # background planes reach far past any view of the scene
    wall = Rectangle(centre=(0.0, -extent / 2, wall_z), half_size=(extent, extent / 2))
    floor_near = -2.0   # behind the camera, so the floor also fills the view when the camera moves
    # rotation_x(pi/2) maps the local y axis onto the world z axis: the rectangle lies in the floor.
    floor = Rectangle(centre=(0.0, 0.0, (wall_z + floor_near) / 2), rotation=rotation_x(math.pi / 2),
                      half_size=(extent, (wall_z - floor_near) / 2))
    grey = rng.uniform(0.75, 0.9)
    background = [SceneObject("wall", wall, (grey, grey, grey * rng.uniform(0.9, 1.0)), 0.05, stuff=True),
                  SceneObject("floor", floor, colorsys.hsv_to_rgb(rng.uniform(0.05, 0.15), 0.4, 0.55), 0.15,
                              stuff=True)]
    target = np.mean([obj.shape.centre for obj in objects], axis=0)
    return World(background + objects, intr, eye, target)


def random_scene(seed: int, width: int = 320, height: int = 240) -> tuple[list[SceneObject], CameraIntrinsics]:
    """Camera-frame objects and intrinsics of ``random_world(seed)`` seen from its camera."""
    world = random_world(seed, width, height)
    return world.view(), world.intrinsics
