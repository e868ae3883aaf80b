"""Procedural triangle meshes for ``shapes.TriangleMesh``: vases, rocks, extruded polygons, rings.

Every generator returns ``(vertices (V, 3) float64, triangles (T, 3) int64)`` of a closed (watertight)
surface whose triangles are wound counter-clockwise seen from outside (positive signed volume). The
local frame is y down, like the solids of ``shapes``, and centred on the mesh's bounding box, so an
object standing on the floor (y = 0) is placed at ``centre = (x, -half_height, z)`` with
``half_height = vertices[:, 1].max()``. All generators are deterministic (``rock`` in its generator).
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

Mesh = tuple[np.ndarray, np.ndarray]


def signed_volume(vertices: np.ndarray, triangles: np.ndarray) -> float:
    """Volume enclosed by a closed mesh, positive when its triangles are wound outward."""
    a, b, c = (vertices[triangles[:, j]] for j in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def _finish(vertices: np.ndarray, triangles: np.ndarray) -> Mesh:
    """Wind outward (flip all when the volume is negative) and centre on the bounding box."""
    vertices = np.asarray(vertices, float)
    triangles = np.asarray(triangles, np.int64)
    if signed_volume(vertices, triangles) < 0:
        triangles = triangles[:, ::-1]
    vertices = vertices - (vertices.min(axis=0) + vertices.max(axis=0)) / 2.0
    return vertices, np.ascontiguousarray(triangles)


def _band_triangles(index: np.ndarray, wrap_rows: bool) -> np.ndarray:
    """Triangles of the quad grid ``index (rows, cols)`` of vertex ids, columns wrapping around.

    Quad (i, k), (i, k+1), (i+1, k+1), (i+1, k) -> two triangles with one consistent winding; triangles
    that collapse because a row is a single pole vertex (repeated id) are dropped.
    """
    rows = index if not wrap_rows else np.vstack([index, index[:1]])
    a, b = rows[:-1], np.roll(rows[:-1], -1, axis=1)
    d, c = rows[1:], np.roll(rows[1:], -1, axis=1)
    triangles = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    degenerate = ((triangles[:, 0] == triangles[:, 1]) | (triangles[:, 1] == triangles[:, 2])
                  | (triangles[:, 0] == triangles[:, 2]))
    return triangles[~degenerate]


def lathe(radii: npt.ArrayLike, heights: npt.ArrayLike, segments: int = 24) -> Mesh:
    """Surface of revolution around the y axis (vase, bottle, bowl) of the profile ``(radii[i], heights[i])``.

    ``heights`` are y values (y down: the top of a vase has the smallest y) and need not be monotonic
    (a bowl's profile may run down its outside and back up its inside). An end of the profile with a
    positive radius is closed by a flat cap, one with radius 0 ends in a pole; two consecutive profile
    points must not both lie on the axis. ``segments`` vertices per ring.
    """
    radii, heights = np.asarray(radii, float).ravel(), np.asarray(heights, float).ravel()
    if len(radii) != len(heights) or len(radii) < 2:
        raise ValueError(
            f"lathe needs >= 2 profile points with one height per radius, got {len(radii)}, {len(heights)}"
        )
    if not (np.isfinite(radii).all() and np.isfinite(heights).all()) or (radii < 0).any():
        raise ValueError(f"lathe radii must be finite and >= 0, heights finite, got {radii}, {heights}")
    if segments < 3:
        raise ValueError(f"lathe needs >= 3 segments, got {segments}")
    # Caps: extend the profile by the axis points of its ends (cap centres).
    if radii[0] > 0:
        radii, heights = np.insert(radii, 0, 0.0), np.insert(heights, 0, heights[0])
    if radii[-1] > 0:
        radii, heights = np.append(radii, 0.0), np.append(heights, heights[-1])
    on_axis = radii == 0
    if (on_axis[1:] & on_axis[:-1]).any():
        raise ValueError("two consecutive lathe profile points lie on the axis")
    if len(radii) < 3:
        raise ValueError("a lathe profile needs some point off the axis")
    angles = 2.0 * np.pi * np.arange(segments) / segments
    # One vertex per pole, one ring of ``segments`` vertices per other profile point.
    counts = np.where(on_axis, 1, segments)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    index = starts[:, None] + np.where(on_axis[:, None], 0, np.arange(segments))
    ring = ~on_axis
    ring_vertices = np.stack([np.outer(radii[ring], np.cos(angles)), np.repeat(heights[ring][:, None], segments, 1),
                              np.outer(radii[ring], np.sin(angles))], axis=-1)
    vertices = np.empty((counts.sum(), 3))
    vertices[index[ring].ravel()] = ring_vertices.reshape(-1, 3)
    vertices[starts[on_axis]] = np.stack([np.zeros(on_axis.sum()), heights[on_axis], np.zeros(on_axis.sum())], 1)
    return _finish(vertices, _band_triangles(index, wrap_rows=False))


def torus(major: float, minor: float, segments: int = 24, rings: int = 12) -> Mesh:
    """Ring torus lying in the x-z plane (axis = y): tube radius ``minor`` around a circle of radius ``major``.

    ``segments`` vertices around the y axis, ``rings`` around the tube.
    """
    if not (np.isfinite([major, minor]).all() and major > minor > 0):
        raise ValueError(f"torus needs major > minor > 0, got {major}, {minor}")
    if segments < 3 or rings < 3:
        raise ValueError(f"torus needs >= 3 segments and rings, got {segments}, {rings}")
    theta = 2.0 * np.pi * np.arange(segments) / segments
    phi = 2.0 * np.pi * np.arange(rings) / rings
    radius = major + minor * np.cos(phi)[:, None]   # (rings, 1): distance from the y axis
    vertices = np.stack([radius * np.cos(theta), np.broadcast_to(minor * np.sin(phi)[:, None], (rings, segments)),
                         radius * np.sin(theta)], axis=-1).reshape(-1, 3)
    index = np.arange(rings * segments).reshape(rings, segments)
    return _finish(vertices, _band_triangles(index, wrap_rows=True))


def _icosphere(subdivisions: int) -> Mesh:
    """Unit icosphere: the icosahedron with every triangle split in four ``subdivisions`` times."""
    g = (1.0 + np.sqrt(5.0)) / 2.0
    vertices = np.array([[-1, g, 0], [1, g, 0], [-1, -g, 0], [1, -g, 0], [0, -1, g], [0, 1, g], [0, -1, -g],
                         [0, 1, -g], [g, 0, -1], [g, 0, 1], [-g, 0, -1], [-g, 0, 1]], float)
    triangles = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
                          [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
                          [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], np.int64)
    vertices /= np.linalg.norm(vertices, axis=1, keepdims=True)
    for _ in range(subdivisions):
        edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
        unique, inverse = np.unique(edges, axis=0, return_inverse=True)
        midpoints = vertices[unique].mean(axis=1)
        mid = len(vertices) + inverse.reshape(3, -1)   # (3, T): ids of the midpoints of edges ab, bc, ca
        vertices = np.concatenate([vertices, midpoints / np.linalg.norm(midpoints, axis=1, keepdims=True)])
        a, b, c = triangles.T
        ab, bc, ca = mid
        triangles = np.concatenate([np.stack(t, 1) for t in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    return vertices, triangles


def rock(rng: np.random.Generator, radius: float, roughness: float = 0.25, subdivisions: int = 2) -> Mesh:
    """Boulder: an icosphere of mean radius ``radius`` with a smooth random radial displacement.

    The displacement is a sum of a few random low-frequency plane waves over the sphere, scaled so that
    the distance from the centre stays within ``radius * (1 +- roughness)`` (``0 <= roughness < 1``:
    the surface stays star-shaped, hence closed and free of self-intersections). ``subdivisions``
    levels give 20 * 4**subdivisions triangles. Deterministic in the state of ``rng``.
    """
    if not (np.isfinite(radius) and radius > 0 and 0 <= roughness < 1):
        raise ValueError(f"rock needs radius > 0 and 0 <= roughness < 1, got {radius}, {roughness}")
    if not 0 <= subdivisions <= 6:
        raise ValueError(f"rock subdivisions must lie in [0, 6], got {subdivisions}")
    unit, triangles = _icosphere(subdivisions)
    waves = 6
    directions = rng.normal(size=(waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    frequencies = rng.uniform(1.0, 3.0, waves)
    phases = rng.uniform(0.0, 2.0 * np.pi, waves)
    amplitudes = rng.uniform(0.2, 1.0, waves)
    amplitudes /= amplitudes.sum()   # |displacement| <= 1
    displacement = np.sin((unit @ directions.T) * frequencies + phases) @ amplitudes
    return _finish(unit * (radius * (1.0 + roughness * displacement))[:, None], triangles)


def _polygon_area_centroid(polygon: np.ndarray) -> tuple[float, np.ndarray]:
    x, y = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2.0
    if area == 0:
        return 0.0, polygon.mean(axis=0)
    return float(area), np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (6.0 * area)


def _star_shaped_about(polygon: np.ndarray, centre: np.ndarray) -> bool:
    """Counter-clockwise ``polygon`` winds once around ``centre`` and sees every edge from it at a positive angle."""
    p, q = polygon - centre, np.roll(polygon, -1, axis=0) - centre
    cross = p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]
    turn = np.arctan2(cross, (p * q).sum(axis=1)).sum()
    return bool((cross > 0).all() and abs(turn - 2.0 * np.pi) < 1e-6)


def prism(polygon: np.ndarray, half_height: float) -> Mesh:
    """Extrusion along y (|y| <= half_height) of a simple polygon ``(N, 2)`` of (x, z) vertices.

    The caps are triangulated as a fan from the polygon's area centroid, so the polygon must be
    star-shaped about its centroid (convex polygons are; ``star_polygon`` makes such non-convex ones):
    ValueError otherwise. Either vertex order is accepted.
    """
    polygon = np.asarray(polygon, float)
    if polygon.ndim != 2 or polygon.shape[1] != 2 or len(polygon) < 3 or not np.isfinite(polygon).all():
        raise ValueError(f"prism needs a finite (N >= 3, 2) polygon, got shape {polygon.shape}")
    if not (np.isfinite(half_height) and half_height > 0):
        raise ValueError(f"prism half height must be positive, got {half_height}")
    area, centroid = _polygon_area_centroid(polygon)
    if area < 0:
        polygon = polygon[::-1]
    if area == 0 or not _star_shaped_about(polygon, centroid):
        raise ValueError("prism polygon must be simple and star-shaped about its centroid")
    n = len(polygon)
    ring = np.arange(n)
    x, z = np.r_[polygon[:, 0], polygon[:, 0], centroid[0], centroid[0]], np.r_[polygon[:, 1], polygon[:, 1],
                                                                                centroid[1], centroid[1]]
    y = np.r_[np.full(n, -half_height), np.full(n, half_height), -half_height, half_height]
    # Rows of the band grid: top centre (pole), top ring, bottom ring, bottom centre (pole).
    index = np.stack([np.full(n, 2 * n), ring, n + ring, np.full(n, 2 * n + 1)])
    return _finish(np.stack([x, y, z], axis=1), _band_triangles(index, wrap_rows=False))


def star_polygon(rng: np.random.Generator, n: int, r_min: float, r_max: float) -> np.ndarray:
    """Random star-shaped polygon ``(n, 2)``, counter-clockwise, its area centroid at the origin.

    Vertices at jittered, increasing angles with radii in ``[r_min, r_max]`` about a kernel point; if the
    polygon is not star-shaped about its own centroid (``prism`` needs that), the radii are pulled
    towards their mean until it is. Deterministic in the state of ``rng``.
    """
    if n < 3 or not (0 < r_min <= r_max) or not np.isfinite(r_max):
        raise ValueError(f"star polygon needs n >= 3 and 0 < r_min <= r_max, got {n}, {r_min}, {r_max}")
    angles = 2.0 * np.pi * (np.arange(n) + rng.uniform(-0.2, 0.2, n)) / n + rng.uniform(0.0, 2.0 * np.pi)
    radii = rng.uniform(r_min, r_max, n)
    mean = radii.mean()
    for blend in [0.5 ** k for k in range(12)] + [0.0]:
        r = mean + blend * (radii - mean)
        polygon = np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)
        _, centroid = _polygon_area_centroid(polygon)
        if _star_shaped_about(polygon, centroid):
            break
    return polygon - centroid
