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

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import open3d as o3d

Vec3 = tuple[np.ndarray | float, np.ndarray | float, np.ndarray | float]

# Hits nearer than this to the ray origin are ignored: a ray leaving a surface must not re-hit it.
MIN_HIT_DISTANCE = 1e-9
_IDENTITY = np.eye(3)


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


def _vec3(components: Iterable[np.ndarray | float]) -> Vec3:
    """The three components yielded by ``components`` (a generator over the axes) as a ``Vec3``."""
    x, y, z = components
    return x, y, z


def dot(a: Vec3, b: Vec3) -> np.ndarray | float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _times(v: Vec3, matrix: np.ndarray) -> Vec3:
    """Row vectors times matrix: ``v @ matrix``."""
    return _vec3(v[0] * matrix[0, j] + v[1] * matrix[1, j] + v[2] * matrix[2, j] for j in range(3))


def _point_at(origins: Vec3, dirs: Vec3, t: np.ndarray) -> Vec3:
    """Hit points; misses (t = inf) give the origin instead of inf/NaN."""
    t = np.where(np.isfinite(t), t, 0.0)
    return _vec3(o + t * d for o, d in zip(origins, dirs, strict=False))


def _nearest_positive(t_first: np.ndarray, t_second: np.ndarray) -> np.ndarray:
    """Per ray, the first of two ordered roots that lies in front of the origin, else inf."""
    return np.where(t_first > MIN_HIT_DISTANCE, t_first, np.where(t_second > MIN_HIT_DISTANCE, t_second, np.inf))


@dataclass(frozen=True, eq=False, kw_only=True)
class Shape:
    """Base of the solids: pose handling and the ray interface; subclasses intersect in local frame.

    The constructors take array-likes (tuples, lists) for the array fields, which ``__post_init__``
    stores as float arrays; the subclasses' ``__init__`` signatures under ``TYPE_CHECKING`` say so.
    """

    centre: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        rotation = np.asarray(self.rotation, float).reshape(3, 3)
        # Plain float arithmetic: scenes construct hundreds of shapes; np.allclose + det cost ~100 us each.
        (a, b, c), (d, e, f), (g, h, i) = rotation.tolist()
        det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
        if not (float(np.abs(rotation.T @ rotation - _IDENTITY).max()) <= 1e-6 and det > 0):
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
        t, normals = self.cast(_vec3(origins[..., j] for j in range(3)), _vec3(dirs[:, j] for j in range(3)))
        return t, np.stack(np.broadcast_arrays(*normals), axis=1)

    def cast(self, origins: Vec3, dirs: Vec3) -> tuple[np.ndarray, Vec3]:
        """``intersect`` on vectors given as component triples of any (broadcastable) shape."""
        local_dirs = _times(dirs, self.rotation)
        offsets = _vec3(o - c for o, c in zip(origins, self.centre, strict=False))
        t, normals = self._cast_local(_times(offsets, self.rotation), local_dirs)
        # Local routines may return either orientation of the surface normal; turn it against the ray.
        factor = np.where(dot(normals, local_dirs) > 0, -1.0, 1.0) * np.isfinite(t)
        return t, _vec3(n * factor for n in _times(normals, self.rotation.T))

    def _cast_local(self, origins: Vec3, dirs: Vec3) -> tuple[np.ndarray, Vec3]:
        raise NotImplementedError

    def transformed(self, rotation: npt.ArrayLike, translation: npt.ArrayLike) -> Shape:
        """The same shape after the rigid motion ``p -> rotation @ p + translation``."""
        rotation = np.asarray(rotation, float)
        return replace(self, centre=rotation @ self.centre + np.asarray(translation, float),
                       rotation=rotation @ self.rotation)

    def to_local(self, points: Vec3) -> Vec3:
        """Parent-frame points in the shape's own frame, in the points' precision (float32 stays float32)."""
        dtype = np.result_type(*points)
        centre, rotation = self.centre.astype(dtype), self.rotation.astype(dtype)
        return _times(_vec3(p - c for p, c in zip(points, centre, strict=False)), rotation)


@dataclass(frozen=True, eq=False, kw_only=True)
class Box(Shape):
    """Oriented box; ``half_extents`` along the local x, y, z axes."""

    half_extents: np.ndarray

    if TYPE_CHECKING:
        def __init__(self, *, centre: npt.ArrayLike, half_extents: npt.ArrayLike,
                     rotation: npt.ArrayLike = ...) -> None: ...

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
        for o, d, h in zip(origins, dirs, self.half_extents, strict=False):
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
        return t, _vec3((axis == j).astype(float) for j in range(3))


def _arg_extreme(values: Sequence[np.ndarray | float], better: np.ufunc) -> tuple[np.ndarray, np.ndarray]:
    """(index, value) of the best array element-wise; the first wins ties (box edges and corners).

    The first value is an array; later ones may be scalars (inf for a candidate that does not exist)."""
    index, best = np.zeros(np.shape(values[0]), int), np.asarray(values[0])
    for i in range(1, len(values)):
        improved = better(values[i], best)
        index, best = np.where(improved, i, index), np.where(improved, values[i], best)
    return index, best


@dataclass(frozen=True, eq=False, kw_only=True)
class Sphere(Shape):
    radius: float

    if TYPE_CHECKING:
        def __init__(self, *, centre: npt.ArrayLike, radius: float, rotation: npt.ArrayLike = ...) -> None: ...

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
        return t, _vec3(p / self.radius for p in _point_at(origins, dirs, t))


@dataclass(frozen=True, eq=False, kw_only=True)
class Cylinder(Shape):
    """Finite capped cylinder around the local y axis (upright with the default rotation, y = down)."""

    radius: float
    half_height: float

    if TYPE_CHECKING:
        def __init__(self, *, centre: npt.ArrayLike, radius: float, half_height: float,
                     rotation: npt.ArrayLike = ...) -> None: ...

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

    if TYPE_CHECKING:
        def __init__(self, *, centre: npt.ArrayLike, half_size: npt.ArrayLike,
                     rotation: npt.ArrayLike = ...) -> None: ...

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


@dataclass(frozen=True, eq=False, kw_only=True)
class Ellipsoid(Shape):
    """Ellipsoid with semi-axes ``radii`` along the local x, y, z axes."""

    radii: np.ndarray

    if TYPE_CHECKING:
        def __init__(self, *, centre: npt.ArrayLike, radii: npt.ArrayLike, rotation: npt.ArrayLike = ...) -> None: ...

    def __post_init__(self) -> None:
        super().__post_init__()
        radii = np.asarray(self.radii, float).reshape(3)
        if not np.all(np.isfinite(radii) & (radii > 0)):
            raise ValueError(f"ellipsoid radii must be positive, got {radii.tolist()}")
        object.__setattr__(self, "radii", radii)

    @property
    def local_extent(self) -> np.ndarray:
        return self.radii

    def _cast_local(self, origins: Vec3, dirs: Vec3) -> tuple[np.ndarray, Vec3]:
        # The map p -> p / radii takes the ellipsoid onto the unit sphere and keeps the ray parameter t.
        o = _vec3(c / r for c, r in zip(origins, self.radii, strict=False))
        d = _vec3(c / r for c, r in zip(dirs, self.radii, strict=False))
        a = dot(d, d)
        b = dot(o, d)
        disc = b * b - a * (dot(o, o) - 1.0)
        hit = disc >= 0
        root = np.sqrt(np.where(hit, disc, 0.0))
        t = np.where(hit, _nearest_positive((-b - root) / a, (-b + root) / a), np.inf)
        # Gradient of |p / radii|^2, normalised (on the unit sphere image: scaled point / radii).
        gradient = _vec3(p / r for p, r in zip(_point_at(o, d, t), self.radii, strict=False))
        norm = np.sqrt(dot(gradient, gradient))
        norm = np.where(norm > 0, norm, 1.0)
        return t, _vec3(g / norm for g in gradient)


@dataclass(frozen=True, eq=False, kw_only=True)
class Frustum(Shape):
    """Capped cone frustum around the local y axis (y = down, like ``Cylinder``).

    The bottom cap (radius ``radius_bottom``) lies at y = +half_height, the top cap (``radius_top``) at
    y = -half_height; one of the radii may be 0 for a cone with its apex there.
    """

    radius_bottom: float
    radius_top: float
    half_height: float

    if TYPE_CHECKING:
        def __init__(self, *, centre: npt.ArrayLike, radius_bottom: float, radius_top: float, half_height: float,
                     rotation: npt.ArrayLike = ...) -> None: ...

    def __post_init__(self) -> None:
        super().__post_init__()
        rb, rt, h = float(self.radius_bottom), float(self.radius_top), float(self.half_height)
        if not (np.isfinite([rb, rt, h]).all() and rb >= 0 and rt >= 0 and max(rb, rt) > 0 and h > 0):
            raise ValueError(f"frustum radii must be >= 0 (not both 0) and the half height positive, "
                             f"got {self.radius_bottom}, {self.radius_top}, {self.half_height}")

    @property
    def local_extent(self) -> np.ndarray:
        r = max(self.radius_bottom, self.radius_top)
        return np.array([r, self.half_height, r], float)

    def _cast_local(self, origins: Vec3, dirs: Vec3) -> tuple[np.ndarray, Vec3]:
        (ox, oy, oz), (dx, dy, dz) = origins, dirs
        h = self.half_height
        # Side wall: x^2 + z^2 = R(y)^2 with R(y) = mid + slope * y, |y| <= h (R >= 0 there, so the
        # other nappe of the double cone lies outside the slab).
        mid = 0.5 * (self.radius_bottom + self.radius_top)
        slope = (self.radius_bottom - self.radius_top) / (2.0 * h)
        r_origin, r_dir = mid + slope * oy, slope * dy
        a = dx * dx + dz * dz - r_dir * r_dir
        b = ox * dx + oz * dz - r_origin * r_dir
        c = ox * ox + oz * oz - r_origin * r_origin
        disc = b * b - a * c
        side = disc >= 0
        # Roots q / a and c / q with q = -(b + sign(b) sqrt(disc)): no cancellation, and a = 0 (rays
        # parallel to a generatrix, a linear equation) leaves c / q as the one finite root.
        q = -(b + np.copysign(np.sqrt(np.where(side, disc, 0.0)), b))
        with np.errstate(divide="ignore", invalid="ignore"):
            roots = (q / a, c / q)
        candidates: list[np.ndarray | float] = []
        for t_side in roots:
            within = side & np.isfinite(t_side) & (t_side > MIN_HIT_DISTANCE) & (np.abs(oy + t_side * dy) <= h)
            candidates.append(np.where(within, t_side, np.inf))
        dy_safe = np.where(dy == 0, 1.0, dy)
        for y_cap, radius in ((-h, self.radius_top), (h, self.radius_bottom)):
            if radius > 0:
                t_cap = (y_cap - oy) / dy_safe
                on_cap = (ox + t_cap * dx) ** 2 + (oz + t_cap * dz) ** 2 <= radius * radius
                candidates.append(np.where((dy != 0) & (t_cap > MIN_HIT_DISTANCE) & on_cap, t_cap, np.inf))
            else:   # a cone's apex: no cap
                candidates.append(np.inf)
        which, t = _arg_extreme(candidates, np.less)
        px, py, pz = _point_at(origins, dirs, t)
        # Side normal: gradient of x^2 + z^2 - R(y)^2 (up to a factor 2). It vanishes at a cone's apex,
        # which gets the axis direction out of the cone instead.
        ny = -slope * (mid + slope * py)
        norm = np.sqrt(px * px + pz * pz + ny * ny)
        apex = norm == 0
        ny = np.where(apex, -np.sign(slope), ny)
        norm = np.where(apex, 1.0, norm)
        is_side, cap_normal_y = which < 2, np.where(which == 2, -1.0, 1.0)
        return t, (np.where(is_side, px / norm, 0.0), np.where(is_side, ny / norm, cap_normal_y),
                   np.where(is_side, pz / norm, 0.0))


@dataclass(frozen=True, eq=False, kw_only=True)
class Compound(Shape):
    """Rigid union of ``parts`` posed in the compound's local frame (a table: top and legs); parts may overlap.

    A ray's hit is the nearest hit over the parts. The local bounding box is symmetric about the local
    origin, so centre the parts on it (as ``meshes`` does) to keep it, and the renderer's window, tight.
    """

    parts: tuple[Shape, ...]
    # Set by __post_init__: the local bounding box's half sizes and the parts' bounding spheres (centre, radius^2).
    _extent: np.ndarray = field(init=False, repr=False, compare=False)
    _spheres: list[tuple[np.ndarray, float]] = field(init=False, repr=False, compare=False)

    if TYPE_CHECKING:
        def __init__(self, *, centre: npt.ArrayLike, parts: Sequence[Shape], rotation: npt.ArrayLike = ...) -> None: ...

    def __post_init__(self) -> None:
        super().__post_init__()
        parts = tuple(self.parts)
        if not parts or not all(isinstance(part, Shape) for part in parts):
            raise ValueError(f"a compound needs at least one part, all of them shapes, got {parts!r}")
        object.__setattr__(self, "parts", parts)
        corners = np.concatenate([part.corners() for part in parts])
        object.__setattr__(self, "_extent", np.abs(corners).max(axis=0))
        # Bounding spheres of the parts (around their bounding boxes), slightly inflated against rounding.
        object.__setattr__(
            self,
            "_spheres",
            [(part.centre, (np.linalg.norm(part.local_extent) * (1 + 1e-6) + 1e-12) ** 2) for part in parts],
        )

    @property
    def local_extent(self) -> np.ndarray:
        return self._extent

    def _cast_local(self, origins: Vec3, dirs: Vec3) -> tuple[np.ndarray, Vec3]:
        shape = np.broadcast_shapes(*(np.shape(c) for c in (*origins, *dirs)))
        t = np.full(shape, np.inf)
        normals = (np.zeros(shape), np.zeros(shape), np.zeros(shape))
        dir_norm2 = dot(dirs, dirs)
        for part, (centre, radius2) in zip(self.parts, self._spheres, strict=False):
            # Only rays that can meet the part's bounding sphere are cast at it: a table leg covers a
            # small share of the table's window. Such a ray starts inside the sphere, or heads towards
            # its centre and passes it within the radius.
            to_centre = tuple(c - o for c, o in zip(centre, origins, strict=False))
            along, distance2 = dot(to_centre, dirs), dot(to_centre, to_centre)
            may_hit = (distance2 <= radius2) | (
                (along > 0) & (distance2 * dir_norm2 - along * along <= radius2 * dir_norm2)
            )
            may_hit = np.broadcast_to(may_hit, shape)
            count = np.count_nonzero(may_hit)
            if count == 0:
                continue
            if count > t.size // 2:   # gathering and scattering would cost more than it saves
                t_part, n_part = part.cast(origins, dirs)
                closer = t_part < t
                np.copyto(t, t_part, where=closer)
                for n, m in zip(normals, n_part, strict=False):
                    np.copyto(n, m, where=closer)
                continue
            t_part, n_part = part.cast(_gather(origins, may_hit), _gather(dirs, may_hit))
            closer = t_part < t[may_hit]
            if not closer.any():
                continue
            index = tuple(i[closer] for i in np.nonzero(may_hit))
            t[index] = t_part[closer]
            for n, m in zip(normals, n_part, strict=False):
                n[index] = np.broadcast_to(m, t_part.shape)[closer]
        return t, normals


def _gather(v: Vec3, mask: np.ndarray) -> Vec3:
    """The components of ``v`` (broadcast to ``mask``'s shape) where ``mask`` holds, as 1-D arrays; scalars stay."""
    return _vec3(c if np.ndim(c) == 0 else np.broadcast_to(c, mask.shape)[mask] for c in v)


class _MeshRaycaster:
    """Lazily built open3d ``RaycastingScene`` of one mesh's local geometry, shared by all its posed copies."""

    builds = 0   # scenes built in this process, all meshes: lets tests see that copies do not rebuild

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray) -> None:
        self.vertices, self.triangles = vertices, triangles
        self.extent = np.abs(vertices).max(axis=0)
        self._scene: o3d.t.geometry.RaycastingScene | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:   # pickling / deepcopy: the open3d scene is rebuilt on demand
        return {"vertices": self.vertices, "triangles": self.triangles}

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, state["vertices"], state["triangles"])

    @property
    def scene(self) -> o3d.t.geometry.RaycastingScene:
        if self._scene is None:
            with self._lock:
                if self._scene is None:
                    import open3d as o3d  # lazily: importing the shapes must not import open3d
                    scene = o3d.t.geometry.RaycastingScene(nthreads=1)
                    # open3d's stub omits the defaults of Tensor(np_array, dtype=None, device=None).
                    vertices = o3d.core.Tensor(self.vertices.astype(np.float32))  # type: ignore[call-overload]
                    triangles = o3d.core.Tensor(self.triangles.astype(np.uint32))  # type: ignore[call-overload]
                    scene.add_triangles(vertices, triangles)
                    self._tensor_from_numpy = o3d.core.Tensor.from_numpy
                    type(self).builds += 1
                    self._scene = scene
        return self._scene

    def cast(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``rays`` (N, 6) float32 -> (t_hit (N,) float32, primitive normals (N, 3) float32)."""
        result = self.scene.cast_rays(self._tensor_from_numpy(rays), nthreads=1)
        return result["t_hit"].numpy(), result["primitive_normals"].numpy()


@dataclass(frozen=True, eq=False, kw_only=True)
class TriangleMesh(Shape):
    """Triangle mesh given in its local frame: ``vertices (V, 3)``, ``triangles (T, 3)`` vertex indices.

    Ray cast by open3d (Embree) in float32, on one thread: depths are exact to about 1e-7 relative. Both
    faces of a triangle are hit, so rays from inside a closed mesh meet its wall like with the solids.
    The arrays are frozen (read-only); the ray casting structure is built on the first cast and shared
    by every copy ``transformed`` makes. The local bounding box is symmetric about the local origin:
    centre the vertices on it (``meshes`` does) to keep the renderer's window tight.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    _raycaster: _MeshRaycaster | None = field(default=None, repr=False, compare=False)   # set by __post_init__

    if TYPE_CHECKING:
        def __init__(self, *, centre: npt.ArrayLike, vertices: npt.ArrayLike, triangles: npt.ArrayLike,
                     rotation: npt.ArrayLike = ..., _raycaster: _MeshRaycaster | None = ...) -> None: ...

    def __post_init__(self) -> None:
        super().__post_init__()
        raycaster = self._raycaster
        if raycaster is not None and raycaster.vertices is self.vertices and raycaster.triangles is self.triangles:
            return   # a copy of a validated mesh (``transformed``): share its geometry and ray caster
        vertices = np.array(self.vertices, float)
        triangles = np.asarray(self.triangles)
        if vertices.ndim != 2 or vertices.shape[1] != 3 or not np.isfinite(vertices).all():
            raise ValueError(f"mesh vertices must be a finite (V, 3) array, got shape {vertices.shape}")
        if triangles.ndim != 2 or triangles.shape[1] != 3 or len(triangles) == 0:
            raise ValueError(f"mesh triangles must be a non-empty (T, 3) array, got shape {triangles.shape}")
        if triangles.dtype.kind not in "iu":
            raise ValueError(f"mesh triangles must hold integer vertex indices, got dtype {triangles.dtype}")
        if triangles.min() < 0 or triangles.max() >= len(vertices):
            raise ValueError(f"mesh triangle indices must lie in [0, {len(vertices)}), "
                             f"got [{triangles.min()}, {triangles.max()}]")
        triangles = triangles.astype(np.int64)
        vertices.setflags(write=False)
        triangles.setflags(write=False)
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "triangles", triangles)
        object.__setattr__(self, "_raycaster", _MeshRaycaster(vertices, triangles))

    @property
    def local_extent(self) -> np.ndarray:
        assert self._raycaster is not None   # set by __post_init__
        return self._raycaster.extent

    def _cast_local(self, origins: Vec3, dirs: Vec3) -> tuple[np.ndarray, Vec3]:
        shape = np.broadcast_shapes(*(np.shape(c) for c in (*origins, *dirs)))
        rays: np.ndarray = np.empty(shape + (6,), np.float32)
        for j, component in enumerate((*origins, *dirs)):
            rays[..., j] = component
        rays = rays.reshape(-1, 6)
        raycaster = self._raycaster
        assert raycaster is not None   # set by __post_init__
        t32, normals32 = raycaster.cast(rays)
        t = t32.astype(float)
        # open3d reports hits at t >= 0, a ray starting on the surface hits it at once: cast those rays
        # again from a little further on (float32 cannot resolve MIN_HIT_DISTANCE itself).
        for _ in range(3):
            again = np.flatnonzero(t <= MIN_HIT_DISTANCE)
            if again.size == 0:
                break
            sub = rays[again].astype(float)
            scale = 1.0 + np.abs(sub[:, :3]).max(axis=1)
            step = 1e-6 * scale / np.linalg.norm(sub[:, 3:], axis=1) + np.maximum(t[again], 0.0)
            sub[:, :3] += step[:, None] * sub[:, 3:]
            t_again, normals_again = raycaster.cast(np.ascontiguousarray(sub, np.float32))
            t[again] = t_again + step
            normals32[again] = normals_again
        t = t.reshape(shape)
        hit = np.isfinite(t)
        normals = normals32.astype(float).reshape(shape + (3,))
        norm = np.sqrt((normals * normals).sum(axis=-1))
        scale = np.where(hit & (norm > 0), 1.0 / np.where(norm > 0, norm, 1.0), 0.0)
        return t, _vec3(normals[..., j] * scale for j in range(3))
