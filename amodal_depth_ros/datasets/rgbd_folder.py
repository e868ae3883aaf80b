"""Real RGB-D frames with their intrinsics, read from a folder in one of a few common layouts.

  1. Metric3D: ``test_annotations.json`` = {"files": [{"cam_in": [fx, fy, cx, cy], "rgb": ..., "depth": ...,
     "depth_scale": s}, ...]}. Its paths are relative to the Metric3D repository root ("data/nyu_demo/...")
     so each is tried against the json's folder, dropping leading components until the file exists.
  2. ``intrinsics.json`` ({"fx", "fy", "cx", "cy", "depth_scale"}) beside ``color.png`` + ``depth.png``, or
     beside a colour folder (rgb/, color/, image/, image_color/) and a depth folder (depth/, disparity/)
     whose images pair by file stem, else by the stem's trailing number (rgb_00050 <-> sync_depth_00050).
     or beside ``NAME_color.png`` + ``NAME_depth.png`` pairs, one per frame (mOSD's layout as converted in
     the shared sample data; ``NAME_labels.png`` beside them is read by ``datasets.labelled_folder``).
  3. The folder layouts of 2 without intrinsics.json, when ``intrinsics`` and ``depth_scale`` are given.

Arguments override the files. Integer depth images are divided by the depth scale, 0 = invalid; float
depth images are metres. Depth follows ``core.types``: float32 metres, NaN = invalid.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..core.types import CameraIntrinsics
from ..errors import ConfigError, DataError

COLOR_DIRS = ("rgb", "color", "image", "image_color")
DEPTH_DIRS = ("depth", "disparity")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff"})
FLAT_COLOR, FLAT_DEPTH = "_color.png", "_depth.png"   # NAME_color.png + NAME_depth.png beside each other
_TRAILING_NUMBER = re.compile(r"(\d+)$")

Intrinsics4 = tuple[float, float, float, float]


@dataclass
class RGBDSample:
    name: str
    rgb: np.ndarray                # (H, W, 3) uint8 RGB
    depth: np.ndarray              # (H, W) float32 metres, NaN = invalid
    intrinsics: CameraIntrinsics


@dataclass(frozen=True)
class _Entry:
    """A frame found on disk, before its images are read."""

    name: str
    rgb: Path
    depth: Path
    cam: Intrinsics4 | None
    scale: float | None


def load_rgbd_folder(path: Path, intrinsics: Intrinsics4 | None = None,
                     depth_scale: float | None = None) -> list[RGBDSample]:
    """Every frame of the folder ``path``, sorted by name; ValueError naming the path on any problem."""
    path = Path(path)
    if depth_scale is not None and not depth_scale > 0:   # `not >` also rejects NaN
        raise ConfigError(f"{path}: depth_scale must be positive, got {depth_scale}")
    if not path.is_dir():
        raise DataError(f"{path}: not a folder")
    annotations = path / "test_annotations.json"
    entries = _metric3d_entries(annotations) if annotations.is_file() else _folder_entries(path)
    if intrinsics is None and any(e.cam is None for e in entries):
        raise DataError(f"{path}: missing intrinsics: no intrinsics.json or test_annotations.json; "
                         "pass intrinsics (fx, fy, cx, cy)")
    entries.sort(key=lambda e: (e.name, str(e.rgb)))
    return [_read(e, intrinsics if intrinsics is not None else e.cam,
                  depth_scale if depth_scale is not None else e.scale) for e in entries]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable json ({exc})") from exc


def _metric3d_entries(annotations: Path) -> list[_Entry]:
    data = _read_json(annotations)
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list) or not files:
        raise DataError(f"{annotations}: no frames found: expected a non-empty \"files\" list")
    entries = []
    for i, item in enumerate(files):
        try:
            cam = tuple(float(v) for v in item["cam_in"])
            rgb, depth, scale = str(item["rgb"]), str(item["depth"]), item.get("depth_scale")
            scale = None if scale is None else float(scale)
            if len(cam) != 4:
                raise DataError(f"cam_in has {len(cam)} values")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{annotations}: files[{i}] is malformed ({exc}); expected cam_in [fx, fy, cx, cy], "
                             "rgb, depth and depth_scale") from exc
        rgb_path = _resolve(annotations, rgb)
        entries.append(_Entry(rgb_path.stem, rgb_path, _resolve(annotations, depth), cam, scale))
    return entries


def _resolve(annotations: Path, listed: str) -> Path:
    """``listed`` under the json's folder, dropping leading components ("data/", "nyu_demo/") until it exists."""
    parts = Path(listed).parts
    for start in range(len(parts)):
        candidate = annotations.parent.joinpath(*parts[start:])
        if candidate.is_file():
            return candidate
    raise DataError(f"{annotations}: listed file {listed} not found under {annotations.parent} "
                     "(also tried with leading folders dropped)")


def _folder_entries(path: Path) -> list[_Entry]:
    cam, scale = _intrinsics_json(path / "intrinsics.json") if (path / "intrinsics.json").is_file() else (None, None)
    pairs = _pairs(path)
    if not pairs:
        raise DataError(f"{path}: no frames found: expected test_annotations.json, color.png + depth.png, "
                        f"NAME{FLAT_COLOR} + NAME{FLAT_DEPTH} pairs, or colour "
                        f"images in one of {'/, '.join(COLOR_DIRS)}/ paired by name with depth images in one of "
                        f"{'/, '.join(DEPTH_DIRS)}/")
    return [_Entry(name, rgb, depth, cam, scale) for name, rgb, depth in pairs]


def _intrinsics_json(path: Path) -> tuple[Intrinsics4, float | None]:
    data = _read_json(path)
    try:
        fx, fy, cx, cy = (float(data[key]) for key in ("fx", "fy", "cx", "cy"))
        scale = data.get("depth_scale")
        return (fx, fy, cx, cy), None if scale is None else float(scale)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(
            f"{path}: expected numbers fx, fy, cx, cy (and depth_scale), got a problem with {exc}"
        ) from exc


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _pairs(path: Path) -> list[tuple[str, Path, Path]]:
    """(name, colour, depth) image pairs of the folder layouts; colour images without a partner are skipped."""
    if (path / "color.png").is_file() and (path / "depth.png").is_file():
        return [(path.name, path / "color.png", path / "depth.png")]
    flat = [(p.name[:-len(FLAT_COLOR)], p) for p in sorted(path.glob(f"*{FLAT_COLOR}"))]
    flat_pairs = [(name, rgb, path / f"{name}{FLAT_DEPTH}") for name, rgb in flat
                  if (path / f"{name}{FLAT_DEPTH}").is_file()]
    if flat_pairs:
        return flat_pairs
    color_dir = next((path / d for d in COLOR_DIRS if (path / d).is_dir()), None)
    depth_dir = next((path / d for d in DEPTH_DIRS if (path / d).is_dir()), None)
    if color_dir is None or depth_dir is None:
        return []
    depths = _images(depth_dir)
    by_stem = {p.stem: p for p in depths}
    numbers = [_number(p.stem) for p in depths]
    # A number pairs only when exactly one depth image carries it: an ambiguous pairing is no pairing.
    by_number = {n: p for n, p in zip(numbers, depths, strict=False) if n is not None and numbers.count(n) == 1}
    pairs = []
    for rgb in _images(color_dir):
        number = _number(rgb.stem)
        depth = by_stem.get(rgb.stem) or (by_number.get(number) if number is not None else None)
        if depth is not None:
            pairs.append((rgb.stem, rgb, depth))
    return pairs


def _number(stem: str) -> int | None:
    match = _TRAILING_NUMBER.search(stem)
    return int(match.group(1)) if match else None


def _read(entry: _Entry, cam: Intrinsics4 | None, scale: float | None) -> RGBDSample:
    bgr = cv2.imread(str(entry.rgb), cv2.IMREAD_COLOR)   # greyscale comes back as 3 channels, alpha dropped
    if bgr is None:
        raise DataError(f"{entry.rgb}: unreadable colour image")
    raw = cv2.imread(str(entry.depth), cv2.IMREAD_UNCHANGED)   # keeps uint16 and float32 as stored
    if raw is None:
        raise DataError(f"{entry.depth}: unreadable depth image")
    if raw.ndim != 2:
        raise DataError(f"{entry.depth}: depth image must have one channel, got {raw.shape[2]}")
    h, w = bgr.shape[:2]
    if raw.shape != (h, w):
        raise DataError(
            f"{entry.depth}: depth is {raw.shape[1]}x{raw.shape[0]} but colour image {entry.rgb} is {w}x{h}"
        )
    if np.issubdtype(raw.dtype, np.floating):
        depth = raw.astype(np.float32)
    else:
        if scale is None or not scale > 0:
            raise DataError(
                f"{entry.depth}: integer depth needs a positive depth_scale (units per metre), got {scale}"
            )
        depth = raw.astype(np.float32) / np.float32(scale)
    with np.errstate(invalid="ignore"):
        depth[~(depth > 0) | ~np.isfinite(depth)] = np.nan   # 0 = no reading
    assert cam is not None   # load_rgbd_folder checked
    try:
        intrinsics = CameraIntrinsics(*cam, w, h)
    except ValueError as exc:
        raise DataError(f"{entry.rgb}: bad intrinsics ({exc})") from exc
    return RGBDSample(entry.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), depth, intrinsics)
