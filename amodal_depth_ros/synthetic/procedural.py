"""Procedural rooms with tables, furniture and many varied objects, occluding each other several deep.

``random_room(seed)`` builds a ``World`` (gravity-aligned, y down, floor at y = 0): a room (floor and
three walls), a table with objects queued along lines of sight on its top, furniture on the floor in
front of and behind the table, random materials, light, intrinsics and camera pose. Objects come from
primitives (box, cylinder, sphere), deformed primitives (ellipsoid, cone frustum), composed ones (mug,
dumbbell, chair, table) and meshes the project makes (vases and bottles turned on a lathe, rocks,
extruded star prisms, tori). ``generate(seed)`` renders it. Everything is deterministic in the seed.
"""
from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core.types import CameraIntrinsics
from ..groundtruth import GroundTruthFrame
from . import meshes
from .scene import PATTERNS, SceneObject, World
from .shapes import (
    Box,
    Compound,
    Cylinder,
    Ellipsoid,
    Frustum,
    Rectangle,
    Shape,
    Sphere,
    TriangleMesh,
    rotation_x,
    rotation_y,
)

EXTENT = 30.0   # room planes reach far past any view


@dataclass(frozen=True)
class Solid:
    """A shape standing at the origin of its support: centred on x = z = 0, bottom at y = 0 (y down)."""

    kind: str
    shape: Shape
    radius: float   # of a circle containing its footprint

    def placed(self, x: float, floor_y: float, z: float, yaw: float) -> Shape:
        return self.shape.transformed(rotation_y(yaw), (x, floor_y, z))


def _standing(kind: str, shape: Shape, radius: float) -> Solid:
    """Lift a shape centred on its bounding box so that it stands on y = 0."""
    lowest = shape.corners()[:, 1].max()   # y down: the largest y is the bottom
    return Solid(kind, shape.transformed(np.eye(3), (0.0, -lowest, 0.0)), radius)


def _box(rng: np.random.Generator, s: float) -> Solid:
    half = rng.uniform((0.3, 0.3, 0.3), (1.0, 1.6, 1.0)) * s
    return _standing("box", Box(centre=(0, 0, 0), half_extents=half), float(np.hypot(half[0], half[2])))


def _cylinder(rng: np.random.Generator, s: float) -> Solid:
    radius, half_height = rng.uniform(0.3, 0.8) * s, rng.uniform(0.4, 1.6) * s
    return _standing("cylinder", Cylinder(centre=(0, 0, 0), radius=radius, half_height=half_height), radius)


def _sphere(rng: np.random.Generator, s: float) -> Solid:
    radius = rng.uniform(0.4, 0.9) * s
    return _standing("sphere", Sphere(centre=(0, 0, 0), radius=radius), radius)


def _ellipsoid(rng: np.random.Generator, s: float) -> Solid:
    radii = rng.uniform((0.3, 0.25, 0.3), (1.0, 0.9, 1.0)) * s
    return _standing("ellipsoid", Ellipsoid(centre=(0, 0, 0), radii=radii), float(radii[[0, 2]].max()))


def _cone(rng: np.random.Generator, s: float) -> Solid:
    bottom = rng.uniform(0.4, 0.9) * s
    top = bottom * rng.choice((0.0, rng.uniform(0.2, 0.7)))
    shape = Frustum(centre=(0, 0, 0), radius_bottom=bottom, radius_top=top, half_height=rng.uniform(0.4, 1.2) * s)
    return _standing("cone", shape, bottom)


def _mug(rng: np.random.Generator, s: float) -> Solid:
    radius, half_height = rng.uniform(0.35, 0.55) * s, rng.uniform(0.45, 0.7) * s
    body = Frustum(centre=(0, 0, 0), radius_bottom=radius * 0.85, radius_top=radius, half_height=half_height)
    handle = Box(centre=(radius + 0.12 * s, 0, 0), half_extents=(0.14 * s, 0.55 * half_height, 0.05 * s))
    return _standing("mug", Compound(centre=(0, 0, 0), parts=(body, handle)), radius + 0.26 * s)


def _dumbbell(rng: np.random.Generator, s: float) -> Solid:
    half_length, bell = rng.uniform(0.6, 1.1) * s, rng.uniform(0.25, 0.4) * s
    bar = Cylinder(centre=(0, 0, 0), rotation=rotation_x(math.pi / 2), radius=0.35 * bell, half_height=half_length)
    ends = tuple(Sphere(centre=(0, 0, side * half_length), radius=bell) for side in (-1, 1))
    return _standing("dumbbell", Compound(centre=(0, 0, 0), parts=(bar, *ends)), half_length + bell)


def _lathe(rng: np.random.Generator, s: float) -> Solid:
    """A vase or a bottle: a smooth random profile turned around the vertical axis."""
    n = int(rng.integers(5, 9))
    heights = np.linspace(0.0, rng.uniform(1.2, 2.6) * s, n)
    radii = rng.uniform(0.3, 0.8) * s * (1.0 + 0.45 * np.sin(np.linspace(0, rng.uniform(2, 6), n) + rng.uniform(0, 6)))
    vertices, triangles = meshes.lathe(radii, heights, segments=20)
    return _standing("vase", TriangleMesh(centre=(0, 0, 0), vertices=vertices, triangles=triangles), float(radii.max()))


def _rock(rng: np.random.Generator, s: float) -> Solid:
    radius = rng.uniform(0.4, 0.9) * s
    vertices, triangles = meshes.rock(rng, radius, roughness=rng.uniform(0.1, 0.3))
    mesh = TriangleMesh(centre=(0, 0, 0), vertices=vertices, triangles=triangles)
    return _standing("rock", mesh, float(np.hypot(vertices[:, 0], vertices[:, 2]).max()))


def _prism(rng: np.random.Generator, s: float) -> Solid:
    polygon = meshes.star_polygon(rng, int(rng.integers(4, 8)), 0.35 * s, 0.9 * s)
    vertices, triangles = meshes.prism(polygon, rng.uniform(0.3, 1.2) * s)
    mesh = TriangleMesh(centre=(0, 0, 0), vertices=vertices, triangles=triangles)
    return _standing("prism", mesh, float(np.hypot(polygon[:, 0], polygon[:, 1]).max()))


def _torus(rng: np.random.Generator, s: float) -> Solid:
    major = rng.uniform(0.45, 0.8) * s
    vertices, triangles = meshes.torus(major, major * rng.uniform(0.25, 0.45), segments=20, rings=10)
    return _standing("torus", TriangleMesh(centre=(0, 0, 0), vertices=vertices, triangles=triangles),
                     float(np.hypot(vertices[:, 0], vertices[:, 2]).max()))


def _legged(kind: str, top_half: np.ndarray, height: float, leg: float, back: float = 0.0) -> Solid:
    """Table or chair: a slab on four legs (and, for a chair, a back rest) as one compound."""
    parts: list[Shape] = [Box(centre=(0, -height + top_half[1], 0), half_extents=top_half)]
    leg_half = (height - 2 * top_half[1]) / 2
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(Box(centre=(sx * (top_half[0] - leg), -leg_half, sz * (top_half[2] - leg)),
                             half_extents=(leg, leg_half, leg)))
    if back > 0:
        parts.append(Box(centre=(0, -height - back / 2, top_half[2] - leg), half_extents=(top_half[0], back / 2, leg)))
    top = -height - back
    # Re-centre the parts on their bounding box (y from top to 0) to keep the render window tight.
    centred = [p.transformed(np.eye(3), (0, -top / 2, 0)) for p in parts]
    return _standing(kind, Compound(centre=(0, 0, 0), parts=tuple(centred)), float(np.hypot(top_half[0], top_half[2])))


def _chair(rng: np.random.Generator, s: float) -> Solid:
    seat = np.array([rng.uniform(0.2, 0.26), 0.02, rng.uniform(0.2, 0.26)])
    return _legged("chair", seat, rng.uniform(0.42, 0.5), 0.02, back=rng.uniform(0.35, 0.5))


def _cabinet(rng: np.random.Generator, s: float) -> Solid:
    half = rng.uniform((0.25, 0.3, 0.2), (0.6, 0.8, 0.35))
    return _standing("cabinet", Box(centre=(0, 0, 0), half_extents=half), float(np.hypot(half[0], half[2])))


SMALL_KINDS: dict[str, Callable[[np.random.Generator, float], Solid]] = {
    "box": _box, "cylinder": _cylinder, "sphere": _sphere, "ellipsoid": _ellipsoid, "cone": _cone, "mug": _mug,
    "dumbbell": _dumbbell, "vase": _lathe, "rock": _rock, "prism": _prism, "torus": _torus}
FLOOR_KINDS: dict[str, Callable[[np.random.Generator, float], Solid]] = {
    "chair": _chair, "cabinet": _cabinet, "box": _box, "cylinder": _cylinder, "sphere": _sphere, "vase": _lathe}


def _material(rng: np.random.Generator, name: str, shape: Shape, stuff: bool = False) -> SceneObject:
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.2, 0.9), rng.uniform(0.35, 0.95)
    return SceneObject(name, shape, colorsys.hsv_to_rgb(hue, sat, val), texture=rng.uniform(0.0, 0.3),
                       pattern=PATTERNS[int(rng.integers(len(PATTERNS)))], period=rng.uniform(0.03, 0.3),
                       stuff=stuff)


class _Footprints:
    """Occupied floor circles of one support surface: standing convex hulls must not intersect."""

    def __init__(self) -> None:
        self.circles: list[tuple[float, float, float]] = []

    def free(self, x: float, z: float, r: float) -> bool:
        return all(math.hypot(x - cx, z - cz) >= r + cr + 0.005 for cx, cz, cr in self.circles)

    def add(self, x: float, z: float, r: float) -> None:
        self.circles.append((x, z, r))


def _queue_along_sight(rng: np.random.Generator, eye_xz: np.ndarray, start_xz: np.ndarray, count: int,
                       make: Callable[[], Solid], inside: Callable[[float, float, float], bool],
                       footprints: _Footprints) -> list[tuple[Solid, float, float]]:
    """Objects one behind the other along the line of sight through ``start_xz``, each shifted sideways
    by part of its size, so each is partly hidden by the one before: occlusion chains several deep."""
    direction = (start_xz - eye_xz) / np.linalg.norm(start_xz - eye_xz)
    side_axis = np.array([-direction[1], direction[0]])
    placed, position, previous_radius = [], start_xz.copy(), 0.0
    for _ in range(count):
        solid = make()
        for _attempt in range(8):
            step = previous_radius + solid.radius + rng.uniform(0.01, 0.12)
            x, z = position + direction * step + side_axis * rng.uniform(-0.9, 0.9) * solid.radius
            if inside(x, z, solid.radius) and footprints.free(x, z, solid.radius):
                footprints.add(x, z, solid.radius)
                placed.append((solid, float(x), float(z)))
                position, previous_radius = np.array([x, z]), solid.radius
                break
    return placed


def random_room(seed: int, width: int = 320, height: int = 240) -> World:
    rng = np.random.default_rng(seed)
    hfov = math.radians(rng.uniform(55.0, 90.0))
    fx = width / 2 / math.tan(hfov / 2)
    intr = CameraIntrinsics(fx, fx * rng.uniform(0.98, 1.02), (width - 1) / 2 + rng.uniform(-0.03, 0.03) * width,
                            (height - 1) / 2 + rng.uniform(-0.03, 0.03) * height, width, height)
    objects: list[SceneObject] = []

    # The table, yawed, in front of the camera (at the origin of the floor plane, looking along +z).
    table_x, table_z, table_yaw = rng.uniform(-0.2, 0.2), rng.uniform(0.9, 1.6), rng.uniform(-0.5, 0.5)
    top_half = np.array([rng.uniform(0.4, 0.8), 0.02, rng.uniform(0.3, 0.5)])
    table_height = rng.uniform(0.55, 0.8)
    table = _legged("table", top_half, table_height, 0.025)
    objects.append(_material(rng, "table", table.placed(table_x, 0.0, table_z, table_yaw)))
    to_table = rotation_y(table_yaw)[[0, 2]][:, [0, 2]]   # floor (x, z) -> table frame, transposed below

    def on_table(x: float, z: float, r: float) -> bool:
        local = to_table.T @ (np.array([x, z]) - (table_x, table_z))
        return bool(np.all(np.abs(local) <= top_half[[0, 2]] - r * 0.7))   # may overhang a little

    eye = np.array([rng.uniform(-0.3, 0.3), -table_height - rng.uniform(0.15, 0.7), 0.0])
    eye_xz = eye[[0, 2]]
    footprints, floor_prints = _Footprints(), _Footprints()
    floor_prints.add(table_x, table_z, float(np.hypot(*top_half[[0, 2]])))
    scale = rng.uniform(0.08, 0.13)
    small = list(SMALL_KINDS.values())
    for _ in range(int(rng.integers(2, 5))):
        local_start = rng.uniform(-0.6, 0.6) * top_half[0], -top_half[2] * rng.uniform(0.4, 0.9)
        start = np.array([table_x, table_z]) + to_table @ np.array(local_start)
        for solid, x, z in _queue_along_sight(
            rng,
            eye_xz,
            start,
            int(rng.integers(2, 6)),
            lambda: small[int(rng.integers(len(small)))](rng, scale * rng.uniform(0.7, 1.4)),
            on_table,
            footprints,
        ):
            objects.append(_material(rng, f"{solid.kind}_{len(objects)}", solid.placed(x, -table_height, z,
                                                                                      rng.uniform(0, 2 * math.pi))))

    # Furniture: in front of the table (hiding its legs and what stands on it) and behind it.
    floor = list(FLOOR_KINDS.values())
    back_z = table_z + top_half[2] + rng.uniform(0.5, 1.5)
    for zone_z, count in (
        ((0.7, table_z - 0.4), int(rng.integers(0, 3))),
        ((table_z + 0.3, back_z - 0.3), int(rng.integers(0, 3))),
    ):
        for _ in range(count):
            solid = floor[int(rng.integers(len(floor)))](rng, rng.uniform(0.15, 0.3))
            for _attempt in range(6):
                z = rng.uniform(*zone_z) if zone_z[1] > zone_z[0] else zone_z[0]
                x = table_x + rng.uniform(-1.0, 1.0) * (top_half[0] + solid.radius)
                if floor_prints.free(x, z, solid.radius) and z - solid.radius > 0.5 and z + solid.radius < back_z:
                    floor_prints.add(x, z, solid.radius)
                    objects.append(_material(rng, f"{solid.kind}_{len(objects)}",
                                             solid.placed(x, 0.0, z, rng.uniform(0, 2 * math.pi))))
                    break

    # The room: floor, back wall, side walls. rotation_x(pi/2) lays a rectangle into the floor plane.
    side = rng.uniform(1.6, 3.0)
    room = [("floor", Rectangle(centre=(0.0, 0.0, back_z / 2), rotation=rotation_x(math.pi / 2),
                                half_size=(EXTENT, back_z / 2 + 3.0))),
            ("back_wall", Rectangle(centre=(0.0, -EXTENT / 2, back_z), half_size=(EXTENT, EXTENT / 2))),
            ("left_wall", Rectangle(centre=(-side, -EXTENT / 2, back_z / 2), rotation=rotation_y(math.pi / 2),
                                    half_size=(back_z / 2 + 3.0, EXTENT / 2))),
            ("right_wall", Rectangle(centre=(side, -EXTENT / 2, back_z / 2), rotation=rotation_y(math.pi / 2),
                                     half_size=(back_z / 2 + 3.0, EXTENT / 2)))]
    structure = [_material(rng, name, shape, stuff=True) for name, shape in room]

    # Aim at the table top's centre, a little beyond it, so that the objects on it fill the view.
    target = np.array([table_x, -table_height, table_z + 0.1]) + rng.uniform(-0.1, 0.1, 3)
    light = (rng.uniform(-0.8, 0.8), -rng.uniform(0.5, 1.0), -rng.uniform(0.1, 0.9))
    return World(structure + objects, intr, eye, target, roll=rng.uniform(-0.08, 0.08), light_dir=light,
                 ambient=rng.uniform(0.2, 0.45))


def generate(seed: int, width: int = 320, height: int = 240, depth_noise_std: float = 0.0) -> GroundTruthFrame:
    """Render ``random_room(seed)`` from its camera."""
    return random_room(seed, width, height).render(depth_noise_std=depth_noise_std, seed=seed)
