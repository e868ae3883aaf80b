"""A map fused over time from what the camera sees and what the pipeline predicts behind it.

Two TSDF voxel block grids (Open3D's tensor ``VoxelBlockGrid``, on the CPU or CUDA): ``observed`` integrates
the visible depth, ``predicted`` the hidden layers (``HiddenSurfaces``). Predictions weigh less than
observations and never overrule them:

- A prediction for space the camera has already observed is not integrated: each hidden pixel's point is
  looked up in the observed grid (integrated by an earlier frame: weight > 0) first; nor is one for space an
  earlier frame predicted (the first prediction stands; averaging the views' disagreeing guesses smeared
  them). A predicted surface point within ``OBSERVED_RADIUS`` voxels of an observed one is dropped at
  extraction: the observation stands for that surface.
- Observations clear predictions. Every frame, the predicted voxels near their surface are projected into
  the visible depth. Where the camera sees through such a voxel (its ray ends beyond it) or onto it (an
  observed surface within two voxels), the voxel loses ``1 / hidden_weight`` of its weight (each prediction
  adds 1): one look undoes ``1 / hidden_weight`` frames of prediction. Only what stays hidden keeps its
  prediction, and only while the views agree: a predicted voxel hidden in a frame that predicts no surface
  within the truncation distance of it loses one frame's weight (a one-off guess fades).
- The surface is where the signed distance changes sign between neighbouring voxels, except where it changes
  steeply (``SURFACE_STEP``): at a silhouette, the voxels behind a near surface sit beside those in front of a
  far one, and a plain TSDF extraction puts a "skirt" of points and triangles between the two. In the
  predicted grid, whose views are not averaged away by later ones, half of the predicted points that missed
  the true surfaces after 30 frames of ``amodal-depth map-eval`` were such skirts.
- Memory is bounded: each grid holds at most ``max_blocks`` blocks of 8^3 voxels. At the limit, new blocks
  are not allocated; the allocated ones keep integrating.

A frame is integrated with its camera-to-map pose (4x4, the optical frame's). Poses come from the caller.
The visible depth is integrated at every ``pixel_stride``-th pixel, the nearest ``hidden_layers`` hidden
surfaces at about ``hidden_width`` pixels across: predicted surfaces are smooth, and a VGA frame then fuses in
~14 ms on two CPU cores.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.cloud import instance_mean_colors
from ..core.layers import layer_grids
from ..core.types import CameraIntrinsics, HiddenSurfaces, PipelineResult

BLOCK_RESOLUTION = 8
TRUNCATION_VOXELS = 3   # the default truncation distance: 6 cm at 2 cm voxels, about a Kinect's noise at 4 m
OBSERVED_RADIUS = 1.5   # voxels: a predicted point this close to an observed one is that surface, observed
# Voxels: the most that the signed distances of two neighbouring voxels may differ by for a surface to pass
# between them. Across a surface it changes by one voxel, by several where the surface is seen obliquely (a
# floor far ahead); at the silhouette of a surface in front of another, from in front of the far one to behind
# the near one, by more than the truncation distance: no surface lies there ("skirts").
SURFACE_STEP = 3.2


@dataclass
class MapCloud:
    """The map's surface as points: observed ones first, then the predictions that survive."""

    points: np.ndarray      # (N, 3) float32 metres, map frame
    colors: np.ndarray      # (N, 3) uint8 RGB
    predicted: np.ndarray   # (N,) bool: from the hidden layers, not (yet) observed


def strided(intrinsics: CameraIntrinsics, step: int) -> CameraIntrinsics:
    """The pinhole that sees just the pixels on every ``step``-th row and column (``image[::step, ::step]``)."""
    return CameraIntrinsics(intrinsics.fx / step, intrinsics.fy / step, intrinsics.cx / step, intrinsics.cy / step,
                            -(-intrinsics.width // step), -(-intrinsics.height // step))


class FusedMap:
    def __init__(self, voxel_size: float = 0.02, truncation: float | None = None, max_blocks: int = 8000,
                 hidden_weight: float = 0.2, depth_max: float = 8.0, device: str = "CPU:0",
                 hidden_truncation: float | None = None, pixel_stride: int = 2, hidden_layers: int = 2,
                 hidden_width: int = 160):
        import open3d as o3d
        import open3d.core as o3c

        if not 0.0 < hidden_weight <= 1.0:
            raise ValueError(f"hidden_weight must be in (0, 1], got {hidden_weight}")
        self._o3d, self._o3c = o3d, o3c
        self.voxel_size, self.max_blocks = voxel_size, max_blocks
        self.truncation = TRUNCATION_VOXELS * voxel_size if truncation is None else truncation
        self.hidden_weight, self.depth_max = hidden_weight, depth_max
        self.hidden_truncation = self.truncation if hidden_truncation is None else hidden_truncation
        self.pixel_stride = pixel_stride   # every n-th pixel: at 2 a VGA pixel is ~1 cm at 3 m, below a voxel
        self.hidden_layers = hidden_layers   # the nearest hidden surfaces fused (a third behind two is rare)
        # Predicted surfaces are smooth: they are integrated at about hidden_width pixels across (at a multiple
        # of pixel_stride), ~2 cm apart at 3 m for a VGA camera.
        self.hidden_width = hidden_width
        self.device = o3c.Device(device)
        self.observed, self.predicted = self._grid(), self._grid()
        self.frames = 0
        self.blocks_refused = 0   # new blocks not allocated because a grid was at max_blocks

    def _grid(self) -> Any:   # an o3d.t.geometry.VoxelBlockGrid
        o3c = self._o3c
        return self._o3d.t.geometry.VoxelBlockGrid(
            attr_names=("tsdf", "weight", "color"), attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
            attr_channels=(o3c.SizeVector([1]), o3c.SizeVector([1]), o3c.SizeVector([3])),
            voxel_size=self.voxel_size, block_resolution=BLOCK_RESOLUTION, block_count=self.max_blocks,
            device=self.device)


    def blocks(self) -> tuple[int, int]:
        """Allocated blocks of the observed and the predicted grid."""
        return self.observed.hashmap().size(), self.predicted.hashmap().size()

    def integrate(self, depth: np.ndarray, rgb: np.ndarray, intrinsics: CameraIntrinsics, camera_to_map: np.ndarray,
                  hidden: HiddenSurfaces | None = None, palette: np.ndarray | None = None) -> None:
        """One frame: visible ``depth`` (H, W metres, NaN or 0 unknown) with its ``rgb``; ``hidden`` surfaces
        in the colour of their instance in ``palette`` ((max id + 1, 3) uint8; None: the frame's colour there)."""
        o3c = self._o3c
        if not np.isfinite(camera_to_map).all():
            raise ValueError("camera_to_map has non-finite entries")
        s = self.pixel_stride
        h = max(s, round(intrinsics.width / self.hidden_width) // s * s)
        full = intrinsics
        # The pixels on every s-th row and column, and the pinhole that sees just them.
        intrinsics = strided(full, s)
        extrinsic = o3c.Tensor(np.linalg.inv(camera_to_map), o3c.float64)
        visible = np.ascontiguousarray(np.nan_to_num(depth[::s, ::s], nan=0.0), np.float32)
        grids = [] if hidden is None else layer_grids(hidden, depth.shape, h, 0.0, self.hidden_layers)
        layers = [z for z, _ in grids]
        if self.predicted.hashmap().size():
            self._carve(visible, intrinsics, np.linalg.inv(camera_to_map), layers if hidden is not None else None,
                        h // s)
        self._drop_known(layers, strided(full, h), camera_to_map)   # before this frame's observations: only
        # earlier ones overrule its predictions
        self._integrate(self.observed, visible, np.ascontiguousarray(rgb[::s, ::s]),
                        o3c.Tensor(intrinsics.matrix(), o3c.float64), extrinsic, self.truncation)
        for layer, ids in grids:
            colour = np.ascontiguousarray(rgb[::h, ::h]) if palette is None else np.take(palette, ids, axis=0)
            self._integrate(self.predicted, layer, colour, o3c.Tensor(strided(full, h).matrix(), o3c.float64),
                            extrinsic, self.hidden_truncation)
        self.frames += 1

    def integrate_result(self, result: PipelineResult, camera_to_map: np.ndarray, with_hidden: bool = True) -> None:
        """One processed frame: its visible depth and (``with_hidden``) its hidden surfaces, each in its
        instance's mean colour."""
        frame, hidden = result.frame, result.hidden if with_hidden else None
        palette = None if hidden is None else instance_mean_colors(frame.rgb, result.segmentation.labels)
        self.integrate(result.visible_depth, frame.rgb, frame.intrinsics, camera_to_map, hidden, palette)

    def _drop_known(self, layers: list[np.ndarray], intrinsics: CameraIntrinsics, camera_to_map: np.ndarray) -> None:
        """Zero the pixels of hidden ``layers`` (depth images) whose point either grid already holds: observed
        space, or a prediction made from an earlier viewpoint (predictions are not averaged across views)."""
        found = [np.nonzero(layer) for layer in layers]
        if not layers or not sum(len(r) for r, _ in found) or self.observed.hashmap().size() == 0:
            return
        rows, cols = np.concatenate([r for r, _ in found]), np.concatenate([c for _, c in found])
        z = np.concatenate([layer[r, c] for layer, (r, c) in zip(layers, found, strict=True)]).astype(np.float64)
        camera = np.stack([(cols - intrinsics.cx) / intrinsics.fx * z, (rows - intrinsics.cy) / intrinsics.fy * z, z],
                          axis=1)
        points = camera @ camera_to_map[:3, :3].T + camera_to_map[:3, 3]
        known = self.integrated_at(points, self.observed) | self.integrated_at(points, self.predicted)
        start = 0
        for layer, (r, c) in zip(layers, found, strict=True):
            drop = known[start:start + len(r)]
            layer[r[drop], c[drop]] = 0.0
            start += len(r)

    def integrated_at(self, points: np.ndarray, grid: Any) -> np.ndarray:
        """(N,) bool: whether ``grid`` (observed or predicted) has integrated the voxel nearest each map point
        (weight > 0)."""
        weight = self._at_voxels(grid, "weight", np.rint(points / self.voxel_size).astype(np.int64))
        return weight > 0   # (NaN where no block: False)

    def _at_voxels(self, grid: Any, name: str, voxels: np.ndarray) -> np.ndarray:
        """(N,) float32: attribute ``name`` (one channel) of ``grid`` at integer ``voxels`` (N, 3); NaN in
        blocks not allocated."""
        out = np.full(len(voxels), np.nan, np.float32)
        if grid.hashmap().size() == 0 or not len(voxels):
            return out
        block = np.floor_divide(voxels, BLOCK_RESOLUTION)
        x, y, z = (voxels - block * BLOCK_RESOLUTION).T
        buf, found = grid.hashmap().find(self._o3c.Tensor(block.astype(np.int32), self._o3c.int32, self.device))
        found = found.cpu().numpy().astype(bool)
        at = (buf.cpu().numpy().astype(np.int64)[found], z[found], y[found], x[found])
        if self.device.get_type() == self._o3c.Device.DeviceType.CPU:
            out[found] = self._attribute(grid, name)[at]
        else:   # read on the device: only these voxels come back
            flat = np.ravel_multi_index(at, (grid.hashmap().capacity(), *(BLOCK_RESOLUTION,) * 3))
            out[found] = grid.attribute(name).reshape((-1,))[self._o3c.Tensor(flat, self._o3c.int64,
                                                                                   self.device)].cpu().numpy()
        return out

    def _integrate(self, grid: Any, depth: np.ndarray, rgb: np.ndarray, intrinsic: Any, extrinsic: Any,
                   truncation: float) -> None:
        o3d, o3c = self._o3d, self._o3c
        if not (depth > 0).any():   # Open3D refuses an image that touches no block
            return
        image = o3d.t.geometry.Image(o3c.Tensor(depth).to(self.device))
        colour = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(rgb, np.float32) / 255.0).to(self.device))
        multiplier = truncation / self.voxel_size
        try:
            coords = grid.compute_unique_block_coordinates(image, intrinsic, extrinsic, 1.0, self.depth_max,
                                                           multiplier)
        except RuntimeError as exc:   # a few scattered pixels (its scan skips some) or all beyond depth_max
            if "No block is touched" in str(exc):
                return
            raise
        coords = self._within_budget(grid, coords)
        if coords.shape[0]:
            grid.integrate(coords, image, colour, intrinsic, extrinsic, 1.0, self.depth_max, multiplier)

    def _within_budget(self, grid: Any, coords: Any) -> Any:
        """``coords`` less the new blocks that would take the grid past max_blocks (the first ones fit)."""
        hashmap = grid.hashmap()
        room = self.max_blocks - hashmap.size()
        _, found = hashmap.find(coords)
        new = np.flatnonzero(~found.cpu().numpy())
        if len(new) <= room:
            return coords
        self.blocks_refused += len(new) - max(room, 0)
        keep = np.ones(coords.shape[0], bool)
        keep[new[max(room, 0):]] = False
        return coords[self._o3c.Tensor(keep, self._o3c.bool, self.device)]

    def _carve(self, visible: np.ndarray, intrinsics: CameraIntrinsics, map_to_camera: np.ndarray,
               layers: list[np.ndarray] | None = None, layer_step: int = 1) -> None:
        """Predicted voxels near their surface that this frame sees through or onto lose weight."""
        grid, o3c = self.predicted, self._o3c
        hashmap = grid.hashmap()
        buf = hashmap.active_buf_indices().cpu().numpy().astype(np.int64)
        if not len(buf):
            return
        weights = self._attribute(grid, "weight")   # on the CPU a view: lowered in place below
        w, t = weights[buf], self._attribute(grid, "tsdf")[buf]
        # Within half the truncation of the predicted surface (one flat search: faster than a 4-d one).
        index = np.flatnonzero((w > 0) & (np.abs(t) < 0.5))
        if not len(index):
            return
        block, cell = index >> 9, index & 511   # 512 = BLOCK_RESOLUTION ** 3 voxels a block, x fastest
        vz, vy, vx = cell >> 6, (cell >> 3) & 7, cell & 7
        w = w[block, vz, vy, vx]
        keys = hashmap.key_tensor().cpu().numpy().astype(np.int64)[buf]
        points = (keys[block] * BLOCK_RESOLUTION + np.stack([vx, vy, vz], axis=1)) * self.voxel_size
        camera = points @ map_to_camera[:3, :3].T + map_to_camera[:3, 3]
        z = camera[:, 2]
        ahead = z > 1e-3
        u = np.full(z.shape, -1, np.int64)
        v = np.full(z.shape, -1, np.int64)
        u[ahead] = np.rint(camera[ahead, 0] / z[ahead] * intrinsics.fx + intrinsics.cx).astype(np.int64)
        v[ahead] = np.rint(camera[ahead, 1] / z[ahead] * intrinsics.fy + intrinsics.cy).astype(np.int64)
        inside = ahead & (u >= 0) & (u < visible.shape[1]) & (v >= 0) & (v < visible.shape[0])
        seen = np.zeros(z.shape, np.float32)
        seen[inside] = visible[v[inside], u[inside]]
        # Seen through (the camera sees past it) or onto (an observed surface within two voxels of it).
        through = inside & (seen > 0) & (seen > z - 2.0 * self.voxel_size)
        penalty = np.where(through, np.float32(1.0 / self.hidden_weight), np.float32(0.0))
        if layers is not None:
            # Hidden now, and this frame predicts no surface there: the prediction fades by one frame's weight.
            hidden_now = inside & (seen > 0) & ~through
            supported = np.zeros(z.shape, bool)
            for layer in layers:
                d = np.zeros(z.shape, np.float32)
                d[hidden_now] = layer[np.minimum(v[hidden_now] // layer_step, layer.shape[0] - 1),
                                      np.minimum(u[hidden_now] // layer_step, layer.shape[1] - 1)]
                supported |= (d > 0) & (np.abs(d - z) < self.hidden_truncation)
            penalty[hidden_now & ~supported] = 1.0
        through = penalty > 0
        if not through.any():
            return
        lowered = np.maximum(w[through] - penalty[through], 0.0).astype(np.float32)
        at = (buf[block[through]], vz[through], vy[through], vx[through])
        if self.device.get_type() == o3c.Device.DeviceType.CPU:
            weights[at] = lowered
        else:
            flat = np.ravel_multi_index(at, weights.shape)
            grid.attribute("weight").reshape((-1,))[o3c.Tensor(flat, o3c.int64, self.device)] = o3c.Tensor(
                lowered, o3c.float32, self.device)

    def extract(self) -> MapCloud:
        """The map's surface: observed points, and predicted ones that no observation stands for."""
        from scipy.spatial import cKDTree

        observed = self._points(self.observed)
        predicted = self._points(self.predicted)
        if len(observed[0]) and len(predicted[0]):
            distance, _ = cKDTree(observed[0]).query(predicted[0],
                                                     distance_upper_bound=OBSERVED_RADIUS * self.voxel_size)
            keep = ~np.isfinite(distance)
            predicted = (predicted[0][keep], predicted[1][keep])
        return MapCloud(np.concatenate([observed[0], predicted[0]]), np.concatenate([observed[1], predicted[1]]),
                        np.r_[np.zeros(len(observed[0]), bool), np.ones(len(predicted[0]), bool)])

    def extract_mesh(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The map's surface as one mesh: (vertices (N, 3) float32, triangles (M, 3) int32, colours (N, 3) uint8,
        predicted (N,) bool); predicted triangles with a corner next to an observed vertex are left out."""
        from scipy.spatial import cKDTree

        parts = []
        for grid in (self.observed, self.predicted):
            if grid.hashmap().size() == 0:
                parts.append((np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), np.zeros((0, 3), np.uint8)))
                continue
            mesh = grid.extract_triangle_mesh(0.5)
            if "positions" not in mesh.vertex or mesh.vertex.positions.shape[0] == 0:
                parts.append((np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), np.zeros((0, 3), np.uint8)))
                continue
            colors = np.clip(mesh.vertex.colors.cpu().numpy() * 255.0, 0, 255).astype(np.uint8) \
                if "colors" in mesh.vertex else np.full((mesh.vertex.positions.shape[0], 3), 128, np.uint8)
            vertices = mesh.vertex.positions.cpu().numpy().astype(np.float32)
            triangles = mesh.triangle.indices.cpu().numpy().astype(np.int32)
            triangles = triangles[~self._silhouette_vertices(grid, vertices)[triangles].any(axis=1)]
            parts.append((vertices, triangles, colors))
        (ov, ot, oc), (pv, pt, pc) = parts
        if len(ov) and len(pt):
            distance, _ = cKDTree(ov).query(pv, distance_upper_bound=OBSERVED_RADIUS * self.voxel_size)
            pt = pt[~np.isfinite(distance)[pt].any(axis=1)]
        return (np.concatenate([ov, pv]), np.concatenate([ot, pt + len(ov)]).astype(np.int32),
                np.concatenate([oc, pc]), np.r_[np.zeros(len(ov), bool), np.ones(len(pv), bool)])

    def _max_step(self, grid: Any) -> float:
        """SURFACE_STEP in the units of ``grid``'s tsdf (signed distance / truncation distance)."""
        truncation = self.truncation if grid is self.observed else self.hidden_truncation
        return SURFACE_STEP * self.voxel_size / truncation

    def _attribute(self, grid: Any, name: str) -> np.ndarray:
        """Attribute ``name`` of every block of ``grid`` (allocated or not) as numpy, (blocks, z, y, x[, channels])
        (x varies fastest in a block): a view on the CPU, a copy elsewhere."""
        attribute = grid.attribute(name)
        values = attribute.numpy() if self.device.get_type() == self._o3c.Device.DeviceType.CPU \
            else attribute.cpu().numpy()
        channels = values.shape[-1]
        shape = (-1, BLOCK_RESOLUTION, BLOCK_RESOLUTION, BLOCK_RESOLUTION)
        return values.reshape(shape) if channels == 1 else values.reshape((*shape, channels))

    def _points(self, grid: Any) -> tuple[np.ndarray, np.ndarray]:
        """The surface of ``grid`` as points (metres, RGB): where the signed distance changes sign between two
        integrated neighbouring voxels (weight > 0.5: at least once, not carved away) by at most
        ``SURFACE_STEP`` voxels (a steeper change is the edge of a silhouette, not a surface)."""
        hashmap = grid.hashmap()
        if hashmap.size() == 0:
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
        buf = hashmap.active_buf_indices().cpu().numpy().astype(np.int64)
        keys = hashmap.key_tensor().cpu().numpy().astype(np.int64)[buf]
        tsdf_all, weight_all = self._attribute(grid, "tsdf"), self._attribute(grid, "weight")
        colour_all = self._attribute(grid, "color")
        t = np.where(weight_all[buf] > 0.5, tsdf_all[buf], np.float32(np.nan))   # NaN: no crossing
        points, colours = [], []
        for axis, dim in ((0, 3), (1, 2), (2, 1)):   # x, y, z: array dims 3, 2, 1 of (block, z, y, x)
            step = np.zeros(3, np.int64)
            step[axis] = 1
            ahead = np.full(t.shape, np.nan, np.float32)   # each voxel's neighbour along the axis
            np.moveaxis(ahead, dim, -1)[..., :-1] = np.moveaxis(t, dim, -1)[..., 1:]
            found_buf, found = hashmap.find(self._o3c.Tensor((keys + step).astype(np.int32), self._o3c.int32,
                                                             self.device))
            found = found.cpu().numpy().astype(bool)
            nbuf = found_buf.cpu().numpy().astype(np.int64)[found]
            first = np.where(weight_all[nbuf] > 0.5, tsdf_all[nbuf], np.float32(np.nan))
            np.moveaxis(ahead, dim, -1)[found, ..., -1] = np.moveaxis(first, dim, -1)[..., 0]
            with np.errstate(invalid="ignore"):
                cross = (t * ahead < 0) & (np.abs(t - ahead) <= self._max_step(grid))
            block, z, y, x = np.nonzero(cross)
            ta, tb = t[block, z, y, x], ahead[block, z, y, x]
            f = ta / (ta - tb)
            voxel = keys[block] * BLOCK_RESOLUTION + np.stack([x, y, z], axis=1)
            points.append((voxel + f[:, None] * step) * self.voxel_size)
            # The colour of the nearer voxel of the two (blending across blocks would need the neighbour's).
            colours.append(colour_all[buf[block], z, y, x])
        return (np.concatenate(points).astype(np.float32),
                np.clip(np.rint(np.concatenate(colours)), 0, 255).astype(np.uint8))   # stored as 0-255

    def _silhouette_vertices(self, grid: Any, vertices: np.ndarray) -> np.ndarray:
        """(N,) bool: mesh ``vertices`` (marching cubes puts each on an edge between two voxels) where the
        signed distance changes by more than ``SURFACE_STEP`` voxels: the edge of a silhouette, not a surface."""
        v = vertices.astype(np.float64) / self.voxel_size
        axis = np.argmax(np.abs(v - np.rint(v)), axis=1)
        rows = np.arange(len(v))
        low = np.rint(v).astype(np.int64)
        low[rows, axis] = np.floor(v[rows, axis]).astype(np.int64)
        high = low.copy()
        high[rows, axis] += 1
        ends = [self._at_voxels(grid, "tsdf", voxel) for voxel in (low, high)]
        with np.errstate(invalid="ignore"):
            return ~(np.abs(ends[0] - ends[1]) <= self._max_step(grid))


def write_map(fused: FusedMap, folder: Path) -> tuple[int, int]:
    """``folder``/map_cloud.ply (points; layer 1 = predicted) and ``folder``/map_mesh.ply (triangles; layer
    1 = predicted) of ``fused``; (points, triangles) written."""
    from ..core.mesh import LayeredMesh
    from ..core.mesh import write_ply as write_mesh_ply
    from ..visualize import write_ply

    folder.mkdir(parents=True, exist_ok=True)
    cloud = fused.extract()
    n = write_ply(folder / "map_cloud.ply", {"x": cloud.points[:, 0], "y": cloud.points[:, 1], "z": cloud.points[:, 2],
                                             "rgb": cloud.colors, "layer": cloud.predicted.astype(np.uint8),
                                             "instance": np.zeros(len(cloud.points), np.uint16)})
    vertices, triangles, colors, predicted = fused.extract_mesh()
    write_mesh_ply(LayeredMesh(vertices, colors, np.zeros(len(vertices), np.int32), predicted.astype(np.uint8),
                               triangles), folder / "map_mesh.ply")
    return n, len(triangles)
