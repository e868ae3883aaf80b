"""Typed data passed between pipeline stages. Arrays are numpy, images are row-major (H, W).

Conventions: depth in metres as float32 with NaN for "unknown" (REP-118 32FC1); points in the
camera optical frame (REP-103: x right, y down, z forward); instance id 0 means "no instance".
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from ..errors import InputError


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an undistorted (rectified) image."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values):
            raise InputError(
                "invalid_intrinsics", f"intrinsics contain NaN/inf: fx={self.fx} fy={self.fy} cx={self.cx} cy={self.cy}"
            )
        if self.fx <= 0 or self.fy <= 0:
            raise InputError("invalid_intrinsics", f"focal lengths must be positive, got fx={self.fx} fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise InputError("invalid_intrinsics", f"image size must be positive, got {self.width}x{self.height}")

    @classmethod
    def from_matrix(cls, k: np.ndarray, width: int, height: int) -> CameraIntrinsics:
        k = np.asarray(k, dtype=np.float64).reshape(3, 3)
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), int(width), int(height))

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, width: int, height: int) -> CameraIntrinsics:
        sx, sy = width / self.width, height / self.height
        # Pixel centres sit at +0.5: scale about the image corner, not the first pixel centre.
        return CameraIntrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                                (self.cy + 0.5) * sy - 0.5, width, height)


@dataclass
class RGBDFrame:
    """One synchronised camera frame as the pipeline sees it."""

    rgb: np.ndarray                     # (H, W, 3) uint8, RGB order
    intrinsics: CameraIntrinsics
    depth: np.ndarray | None = None     # (H, W) float32 metres, NaN = unknown
    stamp_ns: int = 0
    frame_id: str = "camera_optical_frame"

    def __post_init__(self) -> None:
        h, w = self.intrinsics.height, self.intrinsics.width
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.uint8:
            raise InputError("bad_image", f"rgb must be (H, W, 3) uint8, got {self.rgb.shape} {self.rgb.dtype}")
        if self.rgb.shape[:2] != (h, w):
            raise InputError(
                "size_mismatch", f"image is {self.rgb.shape[1]}x{self.rgb.shape[0]} but camera_info says {w}x{h}"
            )
        if self.depth is not None and self.depth.shape != (h, w):
            raise InputError(
                "size_mismatch", f"depth is {self.depth.shape[1]}x{self.depth.shape[0]} but camera_info says {w}x{h}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return self.intrinsics.height, self.intrinsics.width


KIND_OBJECT, KIND_STRUCTURE = "object", "structure"   # what an instance is: users pick the objects


@dataclass
class Segmentation:
    """Visible (modal) instance segmentation: visible masks never overlap, so one label image holds them."""

    labels: np.ndarray                  # (H, W) int32, 0 = no instance, else instance id
    ids: np.ndarray                     # (N,) int32, ids present in ``labels`` in ascending order
    scores: np.ndarray                  # (N,) float32 in [0, 1]
    class_names: tuple[str, ...] = ()   # per instance; empty = class-agnostic ("object")
    # (H, W) float32 in [0, 1] from learned segmenters: the chance that the pixel's surface hides the surface
    # across the instance outline next to it (who is in front of whom); None = not known.
    occluder: np.ndarray | None = None
    # (N,) bool: the instance is room structure (a floor, a wall, a table top), not an object; None = all objects.
    structure: np.ndarray | None = None

    @cached_property
    def windows(self) -> dict[int, Window]:
        """Each instance's bounding window (``label_windows``), found once for every stage that reads it: treat as
        read-only, like ``labels``."""
        return label_windows(self.labels)

    @cached_property
    def pixel_counts(self) -> np.ndarray:
        """(max id + 1,) pixels of each label (``np.bincount`` of ``labels``), counted once: read-only."""
        return np.bincount(self.labels.ravel(), minlength=int(self.ids.max()) + 1 if self.ids.size else 1)

    def mask(self, instance_id: int) -> np.ndarray:
        return self.labels == instance_id

    def class_name(self, index: int) -> str:
        return self.class_names[index] if self.class_names else "object"

    def kind(self, index: int) -> str:
        """KIND_STRUCTURE or KIND_OBJECT, of the instance at ``index``."""
        return KIND_STRUCTURE if self.structure is not None and bool(self.structure[index]) else KIND_OBJECT

    def structure_ids(self) -> set[int]:
        return set() if self.structure is None else {int(i) for i in self.ids[self.structure]}


@dataclass
class OcclusionGraph:
    """Directed "A occludes B" edges between instance ids, with the boundary evidence behind each."""

    edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int32))   # (E, 2): occluder, occluded
    support: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))       # (E,) boundary pixel pairs

    def occluders_of(self, instance_id: int) -> np.ndarray:
        return self.edges[self.edges[:, 1] == instance_id, 0]

    def ancestor_map(self) -> dict[int, set[int]]:
        """Every occluded instance -> every instance in front of it (``ancestors_of`` for all at once: one walk
        over an adjacency list instead of an edge scan per step)."""
        fronts: dict[int, list[int]] = {}
        for occluder, occluded in self.edges.tolist():
            fronts.setdefault(occluded, []).append(occluder)
        found: dict[int, set[int]] = {}
        for start in fronts:
            seen: set[int] = set()
            frontier = [start]
            while frontier:
                for occluder in fronts.get(frontier.pop(), ()):
                    if occluder not in seen and occluder != start:
                        seen.add(occluder)
                        frontier.append(occluder)
            found[start] = seen
        return found

    def ancestors_of(self, instance_id: int) -> set[int]:
        """Every instance in front of ``instance_id``, directly or through a chain of occluders."""
        found: set[int] = set()
        frontier = [instance_id]
        while frontier:
            current = frontier.pop()
            for occluder in self.occluders_of(current).tolist():
                if occluder not in found and occluder != instance_id:
                    found.add(occluder)
                    frontier.append(occluder)
        return found


Window = tuple[int, int, int, int]   # (row0, col0, row1, col1): a part of the frame, rows row0..row1-1


def mask_window(mask: np.ndarray) -> Window:
    """The bounding window of a bool mask ((0, 0, 0, 0) when empty). (cv2: 20x faster than numpy's column
    reductions on frame-sized masks.)"""
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask, dtype=bool).view(np.uint8))
    return int(y), int(x), int(y + h), int(x + w)


def label_windows(labels: np.ndarray) -> dict[int, Window]:
    """Each label's bounding window, in one pass over the label image (labels without pixels are left out)."""
    return {k + 1: (s[0].start, s[1].start, s[0].stop, s[1].stop)
            for k, s in enumerate(ndimage.find_objects(labels)) if s is not None}


def window_union(a: Window, b: Window) -> Window:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def overlap(window: Window, other: Window) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Where two windows overlap, as slices into an array of each; None where they do not."""
    r0, c0, r1, c1 = window
    s0, d0, s1, d1 = other
    top, left, bottom, right = max(r0, s0), max(c0, d0), min(r1, s1), min(c1, d1)
    if top >= bottom or left >= right:
        return None
    return ((slice(top - r0, bottom - r0), slice(left - c0, right - c0)),
            (slice(top - s0, bottom - s0), slice(left - d0, right - d0)))


class AmodalMasks(Mapping[int, np.ndarray]):
    """Amodal masks by instance id, each held as a crop of a window of the frame (a window holding the whole
    mask): the amodal mask stage's output. ``masks[i]`` gives the frame-sized mask, built on demand (for
    evaluation and tools); the stages read the crops (``window``, ``crop``, ``or_into``)."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self._crops: dict[int, tuple[Window, np.ndarray]] = {}

    @classmethod
    def of(cls, masks: Mapping[int, np.ndarray], shape: tuple[int, int]) -> AmodalMasks:
        """``masks`` as AmodalMasks: themselves, or frame-sized masks (ground truth, say) cropped to their windows."""
        if isinstance(masks, AmodalMasks):
            return masks
        out = cls(shape)
        for i, mask in masks.items():
            r0, c0, r1, c1 = window = mask_window(mask)
            out.set(i, window, mask[r0:r1, c0:c1].copy())   # a copy: add() must not write into the caller's mask
        return out

    def set(self, instance_id: int, window: Window, crop: np.ndarray) -> None:
        self._crops[instance_id] = (window, crop)

    def add(self, instance_id: int, window: Window, pixels: np.ndarray) -> None:
        """OR ``pixels`` (a crop of ``window``) into the mask, its window growing to hold them."""
        old, crop = self._crops[instance_id]
        grown = window_union(old, window)
        if grown != old:
            r0, c0, r1, c1 = grown
            bigger = np.zeros((r1 - r0, c1 - c0), bool)
            bigger[old[0] - r0:old[2] - r0, old[1] - c0:old[3] - c0] = crop
            crop = bigger
            self._crops[instance_id] = (grown, crop)
        crop[window[0] - grown[0]:window[2] - grown[0], window[1] - grown[1]:window[3] - grown[1]] |= pixels

    def window(self, instance_id: int) -> Window:
        """Where the mask's crop lies (it holds the mask, maybe with margins)."""
        return self._crops[instance_id][0]

    def bounds(self, instance_id: int) -> Window:
        """The mask's own bounding window (the crop window's when it is empty)."""
        (r0, c0, _, _), crop = self._crops[instance_id]
        top, left, bottom, right = mask_window(crop)
        return (r0 + top, c0 + left, r0 + bottom, c0 + right) if bottom > top else self._crops[instance_id][0]

    def crop(self, instance_id: int) -> np.ndarray:
        return self._crops[instance_id][1]

    def or_into(self, target: np.ndarray, window: Window, instance_id: int) -> None:
        """OR the mask, seen through ``window``, into ``target`` (a crop of ``window``)."""
        own, crop = self._crops[instance_id]
        where = overlap(window, own)
        if where is not None:
            target[where[0]] |= crop[where[1]]

    def within(self, instance_id: int, window: Window) -> np.ndarray:
        """The mask seen through ``window`` (False beyond its own)."""
        out = np.zeros((window[2] - window[0], window[3] - window[1]), bool)
        self.or_into(out, window, instance_id)
        return out

    def __getitem__(self, instance_id: int) -> np.ndarray:
        return self.within(instance_id, (0, 0, *self.shape))

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._crops   # (Mapping's would build the frame-sized mask)

    def __iter__(self) -> Iterator[int]:
        return iter(self._crops)

    def __len__(self) -> int:
        return len(self._crops)


@dataclass
class AmodalInstance:
    """An instance with its full (visible + hidden) extent and the depth of its hidden part.

    Masks and depth are crops of ``window``, a part of the frame that holds the whole amodal mask: an
    instance costs what its extent does, not what the frame does (real clutter gives dozens). The
    frame-sized ``visible_mask``, ``amodal_mask`` and ``depth`` are built on demand, for evaluation and tools.
    """

    id: int
    label: str
    score: float
    window: Window                      # (row0, col0, row1, col1) of the crops in the frame
    visible: np.ndarray                 # (h, w) bool crop
    amodal: np.ndarray                  # (h, w) bool crop, a superset of visible
    occluded_by: tuple[int, ...]        # ids of the instances directly in front of it
    frame_shape: tuple[int, int]        # (H, W)
    surface: np.ndarray | None = None   # (h, w) float32 crop: own surface depth inside amodal, NaN elsewhere
    kind: str = KIND_OBJECT

    @classmethod
    def from_frame(cls, id: int, label: str, score: float, visible_mask: np.ndarray, amodal_mask: np.ndarray,
                   occluded_by: tuple[int, ...], depth: np.ndarray | None = None,
                   kind: str = KIND_OBJECT) -> AmodalInstance:
        """From frame-sized masks and depth, cropped to the amodal mask's bounding window."""
        window = mask_window(amodal_mask | visible_mask)
        r0, c0, r1, c1 = window
        return cls(id, label, score, window, visible_mask[r0:r1, c0:c1].copy(), amodal_mask[r0:r1, c0:c1].copy(),
                   occluded_by, (int(amodal_mask.shape[0]), int(amodal_mask.shape[1])),
                   None if depth is None else depth[r0:r1, c0:c1].astype(np.float32), kind)

    @property
    def slices(self) -> tuple[slice, slice]:
        r0, c0, r1, c1 = self.window
        return slice(r0, r1), slice(c0, c1)

    def _full(self, crop: np.ndarray, fill: Any) -> np.ndarray:
        full = np.full(self.frame_shape, fill, crop.dtype)
        full[self.slices] = crop
        return full

    @property
    def visible_mask(self) -> np.ndarray:
        """(H, W) bool."""
        return self._full(self.visible, False)

    @property
    def amodal_mask(self) -> np.ndarray:
        """(H, W) bool, a superset of visible_mask."""
        return self._full(self.amodal, False)

    @property
    def depth(self) -> np.ndarray | None:
        """(H, W) float32: own surface depth inside amodal_mask, NaN elsewhere."""
        return None if self.surface is None else self._full(self.surface, np.float32(np.nan))

    @property
    def hidden(self) -> np.ndarray:
        """(h, w) bool crop of the hidden part."""
        return self.amodal & ~self.visible

    @property
    def hidden_mask(self) -> np.ndarray:
        return self._full(self.hidden, False)

    @property
    def visible_ratio(self) -> float:
        total = np.count_nonzero(self.amodal)
        return np.count_nonzero(self.visible) / total if total else 0.0

    def bbox(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) of the amodal mask in the frame; zeros when empty."""
        r0, c0, r1, c1 = mask_window(self.amodal)
        if r1 == r0:
            return 0, 0, 0, 0
        return c0 + self.window[1], r0 + self.window[0], c1 - c0, r1 - r0


# One record per cloud point, laid out as the published PointCloud2 (20 bytes, little-endian): the cloud
# stage writes the wire format once and the ROS adapter copies it into the message as one block.
# rgb is 0x00RRGGBB (rviz's packed-colour convention); byte 19 is zero padding.
POINT_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb", "instance", "layer"],
                        "formats": ["<f4", "<f4", "<f4", "<u4", "<u2", "u1"],
                        "offsets": [0, 4, 8, 12, 16, 18], "itemsize": 20})


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (...) uint32 0x00RRGGBB, the one colour packing of the package. RGB2BGRA gives the
    little-endian bytes B, G, R, A in one cv2 pass (6x faster than numpy shifts); the mask clears alpha."""
    rgb = np.asarray(rgb, np.uint8)
    if rgb.size == 0:
        return np.zeros(rgb.shape[:-1], np.uint32)
    bgra = cv2.cvtColor(np.ascontiguousarray(rgb.reshape(-1, 1, 3)), cv2.COLOR_RGB2BGRA)
    return (bgra.view("<u4")[:, 0, 0] & np.uint32(0x00FFFFFF)).reshape(rgb.shape[:-1])


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """(...) packed 0x00RRGGBB (uint32, or float32 bits as rviz and PCL declare it) -> (..., 3) uint8 RGB."""
    packed = np.asarray(packed)
    if packed.dtype.kind == "f":
        packed = np.ascontiguousarray(packed, np.float32).view(np.uint32)
    packed = packed.astype(np.uint32, copy=False)
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(np.uint8)


@dataclass
class LayeredCloud:
    """Completed point cloud: visible points (layer 0) and hidden surfaces (layer k = k-th hidden surface).

    ``records`` (N,) POINT_DTYPE: x, y, z (float32 metres, optical frame, all finite), rgb (uint32
    0x00RRGGBB), instance (uint16, 0 = none), layer (uint8). The array properties are views of it.
    """

    records: np.ndarray

    @classmethod
    def from_arrays(cls, points: np.ndarray, colors: np.ndarray, layer: np.ndarray,
                    instance: np.ndarray) -> LayeredCloud:
        n = len(points)
        for name, arr, shape in (("points", points, (n, 3)), ("colors", colors, (n, 3)),
                                 ("layer", layer, (n,)), ("instance", instance, (n,))):
            if np.shape(arr) != shape:
                raise InputError("size_mismatch", f"cloud {name} has shape {np.shape(arr)}, expected {shape}")
        if not np.isfinite(points).all():
            raise InputError("invalid_points", "cloud points must be finite (a LayeredCloud is dense)")
        records = np.zeros(n, POINT_DTYPE)
        for axis, name in enumerate("xyz"):
            records[name] = points[:, axis]
        records["rgb"] = pack_rgb(colors)
        records["instance"] = instance
        records["layer"] = layer
        return cls(records)

    def __len__(self) -> int:
        return int(self.records.shape[0])

    @property
    def points(self) -> np.ndarray:
        """(N, 3) float32 view."""
        return np.lib.stride_tricks.as_strided(self.records["x"], (len(self), 3), (POINT_DTYPE.itemsize, 4))

    @property
    def colors(self) -> np.ndarray:
        """(N, 3) uint8 RGB (a copy)."""
        return unpack_rgb(self.records["rgb"])

    @property
    def layer(self) -> np.ndarray:
        return self.records["layer"]

    @property
    def instance(self) -> np.ndarray:
        return self.records["instance"]


@dataclass
class HiddenSurfaces:
    """One entry per (pixel, instance) whose surface is hidden at that pixel (``layers.stack_hidden_surfaces``)."""

    rows: np.ndarray        # (M,) int
    cols: np.ndarray        # (M,) int
    depth: np.ndarray       # (M,) float32 metres
    instance: np.ndarray    # (M,) int32
    layer: np.ndarray       # (M,) uint8, >= 1

    def on_grid(self, shape: tuple[int, int], stride: int) -> HiddenSurfaces:
        """The entries on every ``stride``-th row and column of an image of ``shape`` (all when stride is 1)."""
        if stride <= 1:
            return self
        # A table lookup: faster than two remainders of every entry.
        row_on, col_on = np.zeros(shape[0], bool), np.zeros(shape[1], bool)
        row_on[::stride], col_on[::stride] = True, True
        keep = row_on[self.rows] & col_on[self.cols]
        return HiddenSurfaces(self.rows[keep], self.cols[keep], self.depth[keep], self.instance[keep], self.layer[keep])


@dataclass
class PipelineResult:
    """Everything the pipeline computed for one frame."""

    frame: RGBDFrame
    visible_depth: np.ndarray           # (H, W) float32 metres, NaN = unknown
    segmentation: Segmentation
    occlusion: OcclusionGraph
    instances: list[AmodalInstance]
    amodal_depth: np.ndarray            # (H, W) float32: nearest hidden surface where one exists, else visible depth
    cloud: LayeredCloud
    timings_ms: dict[str, float]
    hidden: HiddenSurfaces | None = None   # the hidden surfaces per pixel the cloud and the mesh are built from
