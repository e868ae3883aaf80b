"""Table-top clutter, the commonest robot scene: many objects touching, stacked and lying on a table,
seen from above by a camera at arm's reach.

``random_tabletop(seed)`` builds a ``World`` like ``procedural.random_room`` (same objects, materials,
room and renderer) with what that generator lacks: objects packed edge to edge (gaps of 0-2 cm), small
objects standing on boxes and cylinders, objects lying on their side, a camera 0.45-1.3 m away looking
down at 25-80 degrees, and a wider range of intrinsics. Deterministic in the seed (its own random
stream: tabletop and room seeds never repeat each other).
"""
from __future__ import annotations

import math

import numpy as np

from ..core.types import CameraIntrinsics
from ..groundtruth import GroundTruthFrame
from .procedural import EXTENT, SMALL_KINDS, Solid, _legged, _material
from .scene import World
from .shapes import Rectangle, rotation_x, rotation_y

STACKABLE = ("box", "cylinder")   # flat tops when upright
# How often each kind comes: boxes and cans are the commonest household objects, dumbbells and tori rare.
KIND_WEIGHTS = {"box": 3.0, "cylinder": 3.0, "mug": 1.5, "vase": 1.5, "sphere": 1.0, "ellipsoid": 1.0, "rock": 1.0,
                "cone": 0.7, "prism": 0.7, "dumbbell": 0.4, "torus": 0.4}
LYING = ("box", "cylinder", "vase", "prism", "cone")


def _lying(solid: Solid, rng: np.random.Generator) -> Solid:
    """The solid turned onto its side (about its local x axis), standing on y = 0 again."""
    shape = solid.shape.transformed(rotation_x(math.pi / 2), (0.0, 0.0, 0.0))
    corners = shape.corners()
    shape = shape.transformed(np.eye(3), (0.0, -corners[:, 1].max(), 0.0))
    return Solid(solid.kind, shape, float(np.hypot(corners[:, 0], corners[:, 2]).max()))


def _top(solid: Solid) -> float:
    """Height of the solid's top above its support (y down: the smallest corner y)."""
    return float(-solid.shape.corners()[:, 1].min())


def random_tabletop(seed: int, width: int = 320, height: int = 240, object_count: int | None = None) -> World:
    """A table with ``object_count`` objects tried on it (placed where they fit; default 4-16 by the seed), touching,
    stacked and lying, in a room, seen from above at 25-80 degrees."""
    rng = np.random.default_rng([seed, 2])
    hfov = math.radians(rng.uniform(45.0, 90.0))
    fx = width / 2 / math.tan(hfov / 2)
    intr = CameraIntrinsics(fx, fx * rng.uniform(0.97, 1.03), (width - 1) / 2 + rng.uniform(-0.04, 0.04) * width,
                            (height - 1) / 2 + rng.uniform(-0.04, 0.04) * height, width, height)
    table_height = rng.uniform(0.6, 0.8)
    top_half = np.array([rng.uniform(0.45, 1.0), 0.02, rng.uniform(0.35, 0.7)])
    objects = [_material(rng, "table", _legged("table", top_half, table_height, 0.025).placed(0.0, 0.0, 0.0, 0.0))]
    centre = rng.uniform(-0.5, 0.5, 2) * (top_half[[0, 2]] - 0.2)
    spread = rng.uniform(0.12, 0.35)
    placed: list[tuple[float, float, float]] = []   # footprints (x, z, radius) on the table top
    stacks: list[tuple[float, float, float, float]] = []   # flat tops (x, z, radius, height above the table)

    def on_table(x: float, z: float, r: float) -> bool:
        return abs(x) <= top_half[0] - 0.7 * r and abs(z) <= top_half[2] - 0.7 * r

    def free(x: float, z: float, r: float, gap: float) -> bool:
        return all(math.hypot(x - px, z - pz) >= r + pr + gap for px, pz, pr in placed)

    scale = rng.uniform(0.07, 0.12)
    kinds = list(KIND_WEIGHTS)
    weights = np.array(list(KIND_WEIGHTS.values())) / sum(KIND_WEIGHTS.values())
    count = int(rng.integers(4, 17))
    scene_rng = rng
    if object_count is not None:   # objects from a stream of their own: the room and camera stay the seed's
        rng = np.random.default_rng([seed, 2, 1])
    tries = 0
    # The seed's count tries that many objects (some do not fit); object_count places that many where they fit.
    while (tries < count) if object_count is None else (len(objects) - 1 < object_count and tries < 5 * object_count):
        tries += 1
        kind = kinds[int(rng.choice(len(kinds), p=weights))]
        solid = SMALL_KINDS[kind](rng, scale * rng.uniform(0.7, 1.5))
        if kind in LYING and rng.random() < 0.25:
            solid = _lying(solid, rng)
        if stacks and rng.random() < 0.3:   # on top of a box or cylinder already there (towers too)
            k = int(rng.integers(len(stacks)))
            x, z, r, top = stacks[k]
            if solid.radius <= r:
                stacks.pop(k)
                objects.append(_material(rng, f"{solid.kind}_{len(objects)}",
                                         solid.placed(x, -table_height - top, z, rng.uniform(0, 2 * math.pi))))
                if solid.kind in STACKABLE and solid.shape.rotation[1, 1] > 0.99:
                    stacks.append((x, z, 0.8 * solid.radius, top + _top(solid)))
                continue
        for _attempt in range(20):
            gap = rng.uniform(0.0, 0.01) if rng.random() < 0.7 else rng.uniform(0.01, 0.08)
            if placed and rng.random() < 0.9:   # next to an object already there: touching clutter
                px, pz, pr = placed[int(rng.integers(len(placed)))]
                angle = rng.uniform(0, 2 * math.pi)
                reach = pr + solid.radius + gap
                x, z = px + reach * math.cos(angle), pz + reach * math.sin(angle)
            else:
                x, z = centre + rng.normal(0.0, spread, 2)
            if on_table(x, z, solid.radius) and free(x, z, solid.radius, min(gap, 0.002) * 0.99):
                placed.append((x, z, solid.radius))
                objects.append(_material(rng, f"{solid.kind}_{len(objects)}",
                                         solid.placed(x, -table_height, z, rng.uniform(0, 2 * math.pi))))
                if solid.kind in STACKABLE and solid.shape.rotation[1, 1] > 0.99:   # upright: flat top
                    stacks.append((x, z, 0.8 * solid.radius, _top(solid)))
                break

    rng = scene_rng
    # The room around the table: floor and three walls at random distances.
    back, side = rng.uniform(0.8, 3.0), rng.uniform(1.2, 3.0)
    room = [("floor", Rectangle(centre=(0.0, 0.0, 0.0), rotation=rotation_x(math.pi / 2), half_size=(EXTENT, EXTENT))),
            ("back_wall", Rectangle(centre=(0.0, -EXTENT / 2, back), half_size=(EXTENT, EXTENT / 2))),
            ("left_wall", Rectangle(centre=(-side, -EXTENT / 2, 0.0), rotation=rotation_y(math.pi / 2),
                                    half_size=(EXTENT, EXTENT / 2))),
            ("right_wall", Rectangle(centre=(side, -EXTENT / 2, 0.0), rotation=rotation_y(math.pi / 2),
                                     half_size=(EXTENT, EXTENT / 2)))]
    structure = [_material(rng, name, shape, stuff=True) for name, shape in room]

    # The camera: around the clutter, looking down at it from 25-80 degrees.
    target = np.array([centre[0], -table_height - 0.03, centre[1]]) + rng.uniform(-0.05, 0.05, 3)
    distance, elevation = rng.uniform(0.45, 1.3), math.radians(rng.uniform(25.0, 80.0))
    azimuth = math.radians(rng.uniform(-50.0, 50.0))
    offset = np.array([math.cos(elevation) * math.sin(azimuth), -math.sin(elevation),
                       -math.cos(elevation) * math.cos(azimuth)])
    eye = target + distance * offset
    eye[0] = np.clip(eye[0], -side + 0.15, side - 0.15)   # inside the room
    light = (rng.uniform(-0.8, 0.8), -rng.uniform(0.5, 1.0), -rng.uniform(0.1, 0.9))
    return World(structure + objects, intr, eye, target, roll=rng.uniform(-0.1, 0.1), light_dir=light,
                 ambient=rng.uniform(0.2, 0.45))


def generate_tabletop(seed: int, width: int = 320, height: int = 240,
                      object_count: int | None = None) -> GroundTruthFrame:
    """Render ``random_tabletop(seed, object_count=...)`` from its camera."""
    return random_tabletop(seed, width, height, object_count).render(seed=(seed, 2))
