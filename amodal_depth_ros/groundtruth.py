"""One frame of amodal ground truth, whatever made it (the renderer, a real-image composite, a bag).

Besides the sensor view (rgb, observed depth, visible instance labels) it carries every object's
full extent and own surface depth, hidden part included. Conventions follow ``core.types``: optical
frame, depth = z in metres as float32 with NaN for "no surface / unknown"; object ids are 1-based
positions in ``names`` (0 = nothing).
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core.types import CameraIntrinsics, OcclusionGraph, RGBDFrame, Segmentation
from .errors import DataError

FORMAT_VERSION = 1


@dataclass
class GroundTruthFrame:
    rgb: np.ndarray               # (H, W, 3) uint8 RGB
    depth: np.ndarray             # (H, W) float32 observed (visible) depth, NaN where unknown
    instance_ids: np.ndarray      # (H, W) int32 visible object id, 0 = nothing
    amodal_masks: np.ndarray      # (K, H, W) bool: object k+1's full extent, hidden part included
    object_depths: np.ndarray     # (K, H, W) float32: object k+1's own surface, NaN outside it or where unknown
    names: tuple[str, ...]
    intrinsics: CameraIntrinsics
    occlusion_pairs: np.ndarray   # (P, 2) int32 (occluder id, occluded id): occluder seen inside occluded's mask
    stuff: np.ndarray             # (K,) bool: room structure (walls, floors, a support surface), not a target
    # True: a real frame labelled with visible object masks only (no hidden extent, hidden depth or order is
    # known): scored as UOIS scores real table tops, objects only, structure counting as background.
    visible_labels_only: bool = False

    def id_of(self, name: str) -> int:
        return self.names.index(name) + 1

    @property
    def object_ids(self) -> range:
        return range(1, len(self.names) + 1)

    def visible_mask(self, object_id: int) -> np.ndarray:
        return self.instance_ids == object_id

    def amodal_mask(self, object_id: int) -> np.ndarray:
        return self.amodal_masks[object_id - 1]

    def hidden_mask(self, object_id: int) -> np.ndarray:
        return self.amodal_masks[object_id - 1] & (self.instance_ids != object_id)

    def to_rgbd_frame(self, stamp_ns: int = 0, frame_id: str = "camera_optical_frame") -> RGBDFrame:
        return RGBDFrame(self.rgb, self.intrinsics, self.depth, stamp_ns, frame_id)

    def segmentation(self) -> Segmentation:
        """The true visible segmentation, as the segmentation stage would report it."""
        ids = np.unique(self.instance_ids)
        ids = ids[ids > 0].astype(np.int32)
        return Segmentation(self.instance_ids, ids, np.ones(ids.size, np.float32),
                            tuple(self.names[i - 1] for i in ids.tolist()))

    def occlusion(self) -> OcclusionGraph:
        """The true occlusion graph; support counts the occluder's pixels inside the occluded mask."""
        pairs = self.occlusion_pairs.reshape(-1, 2)
        support = [int((self.visible_mask(a) & self.amodal_mask(b)).sum()) for a, b in pairs.tolist()]
        return OcclusionGraph(pairs.astype(np.int32), np.array(support, np.int32))

    def true_amodal_masks(self) -> dict[int, np.ndarray]:
        """Amodal masks of the visible instances, keyed by id: the input of an oracle depth stage."""
        return {int(i): self.amodal_mask(int(i)) for i in self.segmentation().ids}

    def save(self, path: Path) -> None:
        """Write a compressed .npz (masks bit-packed); ``load`` reads it back exactly."""
        k, h, w = self.amodal_masks.shape
        meta = {"format_version": FORMAT_VERSION, "names": list(self.names), "shape": [k, h, w],
                "intrinsics": [self.intrinsics.fx, self.intrinsics.fy, self.intrinsics.cx, self.intrinsics.cy]}
        ids_dtype = np.uint8 if k < 256 else np.int32
        with open(path, "wb") as f:
            np.savez_compressed(f, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), rgb=self.rgb,
                                depth=self.depth, instance_ids=self.instance_ids.astype(ids_dtype),
                                amodal_masks=np.packbits(self.amodal_masks), object_depths=self.object_depths,
                                occlusion_pairs=self.occlusion_pairs.astype(np.int32), stuff=self.stuff)

    @classmethod
    def load(cls, path: Path) -> GroundTruthFrame:
        """Read a frame written by ``save``; a truncated or foreign file raises ValueError naming it."""
        try:
            with np.load(path) as data:
                meta = json.loads(data["meta"].tobytes())
                if meta.get("format_version") != FORMAT_VERSION:
                    raise DataError(f"format version {meta.get('format_version')}, expected {FORMAT_VERSION}")
                k, h, w = meta["shape"]
                fx, fy, cx, cy = meta["intrinsics"]
                masks = np.unpackbits(data["amodal_masks"], count=k * h * w).reshape(k, h, w).astype(bool)
                return cls(rgb=data["rgb"], depth=data["depth"], instance_ids=data["instance_ids"].astype(np.int32),
                           amodal_masks=masks, object_depths=data["object_depths"], names=tuple(meta["names"]),
                           intrinsics=CameraIntrinsics(fx, fy, cx, cy, w, h),
                           occlusion_pairs=data["occlusion_pairs"].reshape(-1, 2), stuff=data["stuff"].astype(bool))
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: not a readable ground-truth frame ({exc})") from exc
