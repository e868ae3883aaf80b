"""Fused maps scored against the true surfaces of synthetic camera paths (``synthetic.paths``).

Each scene's path is run through the pipeline and fused twice (``mapping.FusedMap``): from the visible
depth alone, and with the hidden layers. After the first frame and after the last, each map is scored
against the true surfaces of the frames fused so far (every object's nearest surface along each pixel
ray, hidden or not: what a complete reconstruction holds):

- completeness: the fraction of true surface points within ``tolerance`` (2 cm) of the map;
- accuracy: the fraction of map points within ``tolerance`` of a true surface;
- Chamfer distance (metres): the mean of the two mean nearest-neighbour distances.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy.spatial import cKDTree
from tqdm import tqdm

from ..mapping import FusedMap, MapCloud
from ..pipeline import AmodalDepthPipeline
from ..synthetic.paths import path_frames, scene_world, true_surface_points
from ..visualize import orbit_view, render_points
from .pictures import titled

VARIANTS = ("visible_only", "with_hidden")
TRUTH_VOXEL = 0.01   # true surface points are thinned to one per cm^3


def thinned(points: np.ndarray, voxel: float = TRUTH_VOXEL) -> np.ndarray:
    """One point per ``voxel``-sized cell (the first of each)."""
    if not len(points):
        return points
    _, first = np.unique(np.floor(points / voxel).astype(np.int64), axis=0, return_index=True)
    return points[np.sort(first)]


def map_scores(map_points: np.ndarray, truth: np.ndarray, tolerance: float = 0.02) -> dict[str, float]:
    """completeness, accuracy and chamfer_m of ``map_points`` against the true surface points ``truth``."""
    if not len(map_points) or not len(truth):
        return {"completeness": 0.0, "accuracy": 0.0, "chamfer_m": float("nan")}
    to_map, _ = cKDTree(map_points).query(truth)
    to_truth, _ = cKDTree(truth).query(map_points)
    return {"completeness": float(np.mean(to_map <= tolerance)), "accuracy": float(np.mean(to_truth <= tolerance)),
            "chamfer_m": float(0.5 * (to_map.mean() + to_truth.mean()))}


def evaluate_paths(scenes: Iterable[tuple[str, int]], frames: int, params: dict[str, Any] | None = None,
                   width: int = 320, height: int = 240, map_options: dict[str, Any] | None = None
                   ) -> tuple[dict[str, Any], dict[str, MapCloud], dict[str, float]]:
    """(``map.<variant>.<frames_1|frames_N>.<metric>`` means over the scenes, the last scene's final maps in
    the optical frame of its first camera, ms per frame of integrating with and without the hidden layers)."""
    pipeline = AmodalDepthPipeline(params or {})
    per_scene: dict[str, dict[str, list[dict[str, float]]]] = {v: {} for v in VARIANTS}
    integrate_ms: dict[str, list[float]] = {v: [] for v in VARIANTS}
    clouds: dict[str, MapCloud] = {}
    checkpoints = {0: "frames_1", frames - 1: f"frames_{frames}"}
    scenes = list(scenes)
    for kind, seed in tqdm(scenes, desc="scenes"):
        maps = {v: FusedMap(**(map_options or {})) for v in VARIANTS}
        truth: list[np.ndarray] = []
        for k, step in enumerate(path_frames(scene_world(kind, seed, width, height), frames, seed)):
            result = pipeline(step.truth.to_rgbd_frame())
            t = time.perf_counter()
            maps["visible_only"].integrate_result(result, step.camera_to_world, with_hidden=False)
            t1 = time.perf_counter()
            maps["with_hidden"].integrate_result(result, step.camera_to_world)
            integrate_ms["visible_only"].append((t1 - t) * 1e3)
            integrate_ms["with_hidden"].append((time.perf_counter() - t1) * 1e3)
            truth.append(true_surface_points(step))
            if k in checkpoints:
                reference = thinned(np.concatenate(truth))
                for variant, fused in maps.items():
                    cloud = fused.extract()
                    per_scene[variant].setdefault(checkpoints[k], []).append(map_scores(cloud.points, reference))
                    if k == frames - 1:
                        clouds[variant] = cloud
            if k == 0:
                first_camera = np.linalg.inv(step.camera_to_world)
    for cloud in clouds.values():   # seen as from the path's first camera: image down is down
        cloud.points = (cloud.points @ first_camera[:3, :3].T + first_camera[:3, 3]).astype(np.float32)
    results = {"map": {variant: {point: {metric: float(np.mean([s[metric] for s in scores]))
                                         for metric in ("completeness", "accuracy", "chamfer_m")}
                                 for point, scores in by_point.items()}
                       for variant, by_point in per_scene.items()}}
    timing = {variant: float(np.median(ms)) for variant, ms in integrate_ms.items()}
    return results, clouds, timing


def format_maps(results: dict[str, Any]) -> str:
    lines = [f"{'fusion':14s} {'after':>10s} {'completeness':>13s} {'accuracy':>9s} {'chamfer m':>10s}"]
    for variant, by_point in results["map"].items():
        for point, scores in by_point.items():
            lines.append(f"{variant:14s} {point:>10s} {scores['completeness']:13.3f} {scores['accuracy']:9.3f} "
                         f"{scores['chamfer_m']:10.4f}")
    return "\n".join(lines)


def maps_side_by_side(clouds: dict[str, MapCloud], size: int = 480) -> np.ndarray:
    """The final maps of each variant seen from one viewpoint above the path, predicted points magenta."""
    from ..core.types import CameraIntrinsics

    intr = CameraIntrinsics(size * 0.8, size * 0.8, size / 2, size / 2, size, size)
    everything = np.concatenate([c.points for c in clouds.values()])
    rotation, translation = orbit_view(everything, 30.0, -25.0)
    # Back off so that the whole map fits: the median point at the distance that holds the map's spread.
    spread = np.percentile(np.linalg.norm(everything - np.median(everything, axis=0), axis=1), 90)
    translation = translation + np.array([0.0, 0.0, 0.8 * spread])
    panels = []
    for variant, title in zip(VARIANTS, ("visible only", "with the hidden layers (magenta: predicted)"), strict=True):
        cloud = clouds[variant]
        colors = cloud.colors.copy()
        colors[cloud.predicted] = (230, 40, 200)
        panels.append(titled(render_points(cloud.points, colors, intr, rotation, translation), title))
    return np.concatenate(panels, axis=1)
