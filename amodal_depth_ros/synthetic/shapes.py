"""Analytic ray casting against simple solids, vectorised over all rays at once.

Rays are ``x(t) = origin + t * dir``. The renderer's pixel rays start at the camera centre and have
``dir_z = 1``, so the ray parameter ``t`` of a hit *is* its depth (z in the optical frame).

Each shape is posed by ``centre`` and ``rotation`` (columns = the shape's local axes expressed in the
parent frame): rays are moved into the local frame once, so every intersection routine only handles
the axis-aligned case, and moving a shape or the camera is a single ``transformed`` call.

Vectors are handled as ``Vec3`` triples of equally shaped arrays (or scalars) rather than (N, 3)
arrays: every operation is then a fast element-wise ufunc, while numpy's ops along a length-3 last
axis, broadcast against it or handed to BLAS run several times slower.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
import numpy as np

Vec3 = tuple[np.ndarray | float, np.ndarray | float, np.ndarray | float]

# Hits nearer than this to the ray origin are ignored: a ray leaving a surface must not re-hit it.
MIN_HIT_DISTANCE = 1e-9


def rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def look_at(eye: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera ``(R, t)`` (``p_cam = R @ p + t``) for a camera at ``eye`` looking at ``target``.

    The world frame has y pointing down (gravity), like a level optical frame; the camera gets no roll.
    """
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, (0.0, -1.0, 0.0))
    right /= np.linalg.norm(right)
    rotation = np.stack([right, np.cross(forward, right), forward])
    return rotation, -rotation @ eye


def dot(a: Vec3, b: Vec3) -> np.ndarray:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _times(v: Vec3, matrix: np.ndarray) -> Vec3:
    """Row vectors times matrix: ``v @ matrix``."""
    return tuple(v[0] * matrix[0, j] + v[1] * matrix[1, j] + v[2] * matrix[2, j] for j in range(3))


def _point_at(origins: Vec3, dirs: Vec3, t: np.ndarray) -> Vec3:
    """Hit points; misses (t = inf) give the origin instead of inf/NaN."""
    t = np.where(np.isfinite(t), t, 0.0)
    return tuple(o + t * d for o, d in zip(origins, dirs))


def _nearest_positive(t_first: np.ndarray, t_second: np.ndarray) -> np.ndarray:
    """Per ray, the first of two ordered roots that lies in front of the origin, else inf."""
    return np.where(t_first > MIN_HIT_DISTANCE, t_first, np.where(t_second > MIN_HIT_DISTANCE, t_second, np.inf))


@dataclass(frozen=True, eq=False, kw_only=True)
class Shape:
    """Base of the solids: pose handling and the ray interface; subclasses intersect in local frame."""

    centre: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        rotation = np.asarray(self.rotation, float).reshape(3, 3)
        if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-6) or np.linalg.det(rotation) < 0:
            raise ValueError(f"rotation must be a proper rotation matrix, got {rotation.tolist()}")
        object.__setattr__(self, "centre", np.asarray(self.centre, float).reshape(3))
        object.__setattr__(self, "rotation", rotation)

    @property
    def local_extent(self) -> np.ndarray:
        """Half sizes (3,) of the shape's bounding box in its local frame."""
        raise NotImplementedError

    def corners(self) -> np.ndarray:
        """(8, 3) corners of the local bounding box in the parent frame: their hull contains the shape."""
        signs = np.array([(sx, sy, sz) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
        return self.centre + (signs * self.local_extent) @ self.rotation.T

    def intersect(self, origins: np.ndarray | None, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First hit along each ray: ``t (N,)`` (inf for a miss) and unit ``normals (N, 3)``.

        ``origins`` is ``(N, 3)``, ``(3,)`` or None for rays from the parent frame's origin. Normals face
        the incoming ray (``dot(n, dir) <= 0``), also for rays starting inside a solid; zero for misses.
        """
        dirs = np.asarray(dirs, float)
        origins = np.zeros(3) if origins is None else np.asarray(origins, float)
        t, normals = self.cast(tuple(origins[..., j] for j in range(3)), tuple(dirs[:, j] for j in range(3)))
        return t, np.stack(np.broadcast_arrays(*normals), axis=1)

    def cast(self, origins: Vec3, dirs: Vec3) -> tuple[np.ndarray, Vec3]:
        """``intersect`` on vectors given as component triples of any (broadcastable) shape."""
        local_dirs = _times(dirs, self.rotation)
        offsets = tuple(o - c for o, c in zip(origins, self.centre))
        t, normals = self._cast_local(_times(offsets, self.rotation), local_dirs)
        # Local routines may return either orientation of the surface normal; turn it against the ray.
        factor = np.where(dot(normals, local_dirs) > 0, -1.0, 1.0) * np.isfinite(t)
        return t, tuple(n * factor for n in _times(normals, self.rotation.T))

    def _cast_local(self, origins: Vec3, dirs: Vec3) -> tuple[np.ndarray, Vec3]:
        raise NotImplementedError

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> "Shape":
        """The same shape after the rigid motion ``p -> rotation @ p + translation``."""
        rotation = np.asarray(rotation, float)
        return replace(self, centre=rotation @ self.centre + np.asarray(translation, float),
                       rotation=rotation @ self.rotation)

    def to_local(self, points: Vec3) -> Vec3:
        """Parent-frame points in the shape's own frame, in the points' precision (float32 stays float32)."""
        dtype = np.result_type(*points)
        centre, rotation = self.centre.astype(dtype), self.rotation.astype(dtype)
        return _times(tuple(p - c for p, c in zip(points, centre)), rotation)


@dataclass(frozen=True, eq=False, kw_only=True)
class Box(Shape):
    """Oriented box; ``half_extents`` along the local x, y, z axes."""

    half_extents: np.ndarray

    def __post_init__(self) -> None:
        super().__post_init__()
        half = np.asarray(self.half_extents, float).reshape(3)
        if np.any(half <= 0):
            raise ValueError(f"box half extents must be positive, got {half.tolist()}")
        object.__setattr__(self, "half_extents", half)

    @property
    def local_extent(self) -> np.ndarray:
        return self.half_extents

    def _cast_local(self, origins: Vec3, dirs: Vec3) -> tuple[np.ndarray, Vec3]:
        # Slab method. Axis-parallel rays get a tiny direction component instead of 0: the slab
        # parameters then become huge finite numbers of the right sign rather than 0/0 = NaN.
        t_in, t_out = [], []
        for o, d, h in zip(origins, dirs, self.half_extents):
            d = np.where(np.abs(d) < 1e-300, 1e-300, d)
            t_low, t_high = (-h - o) / d, (h - o) / d
            t_in.append(np.minimum(t_low, t_high))
            t_out.append(np.maximum(t_low, t_high))
        near_axis, t_near = _arg_extreme(t_in, np.greater)
        far_axis, t_far = _arg_extreme(t_out, np.less)
        entering = t_near > MIN_HIT_DISTANCE
        t = np.where((t_near <= t_far) & (t_far > MIN_HIT_DISTANCE), np.where(entering, t_near, t_far), np.inf)
        # The face hit is the slab that set t (t_near, or t_far from inside); the caller fixes its sign.
        axis = np.where(entering, near_axis, far_axis)
        return t, tuple((axis == j).astype(float) for j in range(3))


def _arg_extreme(values: list[np.ndarray], better: np.ufunc) -> tuple[np.ndarray, np.ndarray]:
    """(index, value) of the best array element-wise; the first wins ties (box edges and corners)."""
    index, best = np.zeros(np.shape(values[0]), int), values[0]
    for i in range(1, len(values)):
        improved = better(values[i], best)
        index, best = np.where(improved, i, index), np.where(improved, values[i], best)
    return index, best


@dataclass(frozen=True, eq=False, kw_only=True)
class Sphere(Shape):
    radius: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.radius > 0:
            raise ValueError(f"sphere radius must be positive, got {self.radius}")

    @property
    def local_extent(self) -> np.ndarray:
        return np.full(3, float(self.radius))

    def _cast_local(self, origins: Vec3, dirs: Vec3) -> tuple[np.ndarray, Vec3]:
        a = dot(dirs, dirs)
        b = dot(origins, dirs)
        disc = b * b - a * (dot(origins, origins) - self.radius ** 2)
        hit = disc >= 0
        root = np.sqrt(np.where(hit, disc, 0.0))
        t = np.where(hit, _nearest_positive((-b - root) / a, (-b + root) / a), np.inf)
        return t, tuple(p / self.radius for p in _point_at(origins, dirs, t))


@dataclass(frozen=True, eq=False, kw_only=True)
class Cylinder(Shape):
    """Finite capped cylinder around the local y axis (upright with the default rotation, y = down)."""

    radius: float
    half_height: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.radius > 0 and self.half_height > 0):
            raise ValueError(f"cylinder radius and half height must be positive, got {self.radius}, {self.half_height}")

    @property
    def local_extent(self) -> np.ndarray:
        return np.array([self.radius, self.half_height, self.radius], float)

    def _cast_local(self, origins: Vec3, dirs: Vec3) -> tuple[np.ndarray, Vec3]:
        (ox, oy, oz), (dx, dy, dz) = origins, dirs
        r2, h = self.radius ** 2, self.half_height
        # Candidates: the two roots of the infinite side wall, then the caps at y = -h and y = +h.
        a = dx * dx + dz * dz
        b = ox * dx + oz * dz
        disc = b * b - a * (ox * ox + oz * oz - r2)
        side = (a > 0) & (disc >= 0)
        root, a_safe = np.sqrt(np.where(side, disc, 0.0)), np.where(side, a, 1.0)
        dy_safe = np.where(dy == 0, 1.0, dy)
        candidates = []
        for sign in (-1.0, 1.0):
            t_side = (-b + sign * root) / a_safe
            within = side & (t_side > MIN_HIT_DISTANCE) & (np.abs(oy + t_side * dy) <= h)
            candidates.append(np.where(within, t_side, np.inf))
        for sign in (-1.0, 1.0):
            t_cap = (sign * h - oy) / dy_safe
            on_cap = (ox + t_cap * dx) ** 2 + (oz + t_cap * dz) ** 2 <= r2
            candidates.append(np.where((dy != 0) & (t_cap > MIN_HIT_DISTANCE) & on_cap, t_cap, np.inf))
        which, t = _arg_extreme(candidates, np.less)
        px, _, pz = _point_at(origins, dirs, t)
        is_side, cap_normal_y = which < 2, np.where(which == 2, -1.0, 1.0)
        return t, (np.where(is_side, px / self.radius, 0.0), np.where(is_side, 0.0, cap_normal_y),
                   np.where(is_side, pz / self.radius, 0.0))


@dataclass(frozen=True, eq=False, kw_only=True)
class Rectangle(Shape):
    """Finite two-sided planar patch in the local z = 0 plane: |x| <= half_size[0], |y| <= half_size[1]."""

    half_size: np.ndarray

    def __post_init__(self) -> None:
        super().__post_init__()
        half = np.asarray(self.half_size, float).reshape(2)
        if np.any(half <= 0):
            raise ValueError(f"rectangle half size must be positive, got {half.tolist()}")
        object.__setattr__(self, "half_size", half)

    @property
    def local_extent(self) -> np.ndarray:
        return np.array([self.half_size[0], self.half_size[1], 0.0])

    def _cast_local(self, origins: Vec3, dirs: Vec3) -> tuple[np.ndarray, Vec3]:
        (ox, oy, oz), (dx, dy, dz) = origins, dirs
        t = -oz / np.where(dz == 0, 1.0, dz)
        inside = (np.abs(ox + t * dx) <= self.half_size[0]) & (np.abs(oy + t * dy) <= self.half_size[1])
        t = np.where((dz != 0) & (t > MIN_HIT_DISTANCE) & inside, t, np.inf)
        return t, (0.0, 0.0, 1.0)
