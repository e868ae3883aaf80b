"""Real RGB-D frames with visible object labels: ``NAME_{color,depth,labels}.png`` beside ``intrinsics.json``
(the layout of the shared sample data's mOSD conversion). Labels are 16-bit: 0 = nothing (no depth), 1 = the
support surface (a table top: room structure, background in the UOIS protocol), 2.. = objects; the parts of
one object an occluder splits apart share its label. Only the visible masks are known, so the frames are
``visible_labels_only``: instance segmentation is scored on them, not amodal masks, hidden depth or order.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..core.types import CameraIntrinsics
from ..errors import DataError
from ..groundtruth import GroundTruthFrame
from .rgbd_folder import FLAT_COLOR, FLAT_DEPTH, load_rgbd_folder

LABELS_SUFFIX = "_labels.png"
SUPPORT_LABEL = 1


def is_labelled_folder(path: Path) -> bool:
    return path.is_dir() and (path / "intrinsics.json").is_file() and any(path.glob(f"*{LABELS_SUFFIX}"))


def labelled_frame_names(path: Path) -> list[str]:
    """The frames of the folder that have colour, depth and labels, sorted."""
    names = (p.name[:-len(LABELS_SUFFIX)] for p in path.glob(f"*{LABELS_SUFFIX}"))
    return sorted(n for n in names if (path / f"{n}{FLAT_COLOR}").is_file() and (path / f"{n}{FLAT_DEPTH}").is_file())


def iter_labelled_folder(path: Path) -> Iterator[GroundTruthFrame]:
    """Every labelled frame of ``path`` as ground truth; DataError naming the file on any problem."""
    wanted = set(labelled_frame_names(path))
    for sample in load_rgbd_folder(path):
        if sample.name not in wanted:
            continue
        labels_path = path / f"{sample.name}{LABELS_SUFFIX}"
        raw = cv2.imread(str(labels_path), cv2.IMREAD_UNCHANGED)
        if raw is None or raw.ndim != 2 or not np.issubdtype(raw.dtype, np.integer):
            raise DataError(f"{labels_path}: expected a one-channel integer label image")
        if raw.shape != sample.depth.shape:
            raise DataError(f"{labels_path}: labels are {raw.shape[1]}x{raw.shape[0]}, the frame "
                            f"{sample.depth.shape[1]}x{sample.depth.shape[0]}")
        yield labelled_frame(raw, sample.rgb, sample.depth, sample.intrinsics)


def labelled_frame(raw: np.ndarray, rgb: np.ndarray, depth: np.ndarray,
                   intrinsics: CameraIntrinsics) -> GroundTruthFrame:
    """Ground truth from a label image (0 nothing, ``SUPPORT_LABEL`` the support surface, others objects)."""
    values = np.unique(raw)
    values = values[values > 0]
    dense = np.zeros(int(values.max()) + 1 if values.size else 1, np.int32)
    dense[values] = np.arange(1, values.size + 1)
    ids = dense[raw]
    masks = ids[None] == np.arange(1, values.size + 1)[:, None, None]
    names = tuple("table" if v == SUPPORT_LABEL else f"object_{int(v)}" for v in values.tolist())
    return GroundTruthFrame(rgb=rgb, depth=depth, instance_ids=ids, amodal_masks=masks,
                            object_depths=np.where(masks, depth[None], np.float32(np.nan)).astype(np.float32),
                            names=names, intrinsics=intrinsics, occlusion_pairs=np.zeros((0, 2), np.int32),
                            stuff=values == SUPPORT_LABEL, visible_labels_only=True)
