"""Amodal ground truth in a bag: the camera topics plus an ``AmodalInstanceArray`` of the true instances.

Each true instance carries its visible and amodal masks, the instances directly in front of it
(``occluded_by``) and its own surface depth over the whole amodal mask (``amodal_depth``), exactly the
message the node publishes for its predictions, so a bag can hold truth and predictions side by side.
Messages of one frame share a header stamp. Room structure (walls, floors) is not written.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import cast

import numpy as np
from std_msgs.msg import Header

from ..core.types import AmodalInstance
from ..errors import DataError
from ..groundtruth import GroundTruthFrame
from ..ros import conversions as conv
from ..ros.bag import BagWriter, read_messages, topics_of

TOPICS = {"image": "/camera/color/image_raw", "camera_info": "/camera/color/camera_info",
          "depth": "/camera/depth/image_raw", "truth": "/amodal/ground_truth"}


def _true_instances(truth: GroundTruthFrame) -> list[AmodalInstance]:
    pairs = truth.occlusion_pairs.reshape(-1, 2)
    return [
        AmodalInstance.from_frame(
            id=i,
            label=truth.names[i - 1],
            score=1.0,
            visible_mask=truth.visible_mask(i),
            amodal_mask=truth.amodal_mask(i),
            occluded_by=tuple(sorted(pairs[pairs[:, 1] == i, 0].tolist())),
            depth=truth.object_depths[i - 1],
        )
        for i in truth.object_ids
        if not truth.stuff[i - 1] and truth.amodal_mask(i).any()
    ]


def write_ground_truth_bag(path: Path, frames: Iterable[GroundTruthFrame], storage: str = "mcap",
                           frame_id: str = "camera_color_optical_frame", start_ns: int = 1_700_000_000 * 10**9,
                           period_ns: int = 100_000_000, topics: dict[str, str] = TOPICS) -> int:
    """Write ``frames`` at a fixed rate; returns the number of frames written."""
    count = 0
    with BagWriter(path, storage) as bag:
        for count, truth in enumerate(frames, 1):
            stamp = start_ns + (count - 1) * period_ns
            header = Header(stamp=conv.ns_to_stamp(stamp), frame_id=frame_id)
            h, w = truth.depth.shape
            bag.write(topics["image"], conv.rgb_to_image(truth.rgb, header), stamp)
            bag.write(topics["camera_info"], conv.intrinsics_to_camera_info(truth.intrinsics, header), stamp)
            bag.write(topics["depth"], conv.depth_to_image(truth.depth, header), stamp)
            bag.write(topics["truth"], conv.instances_to_msg(_true_instances(truth), header, w, h), stamp)
    return count


def count_ground_truth_frames(path: Path, topics: dict[str, str] = TOPICS) -> int:
    found = topics_of(path)
    missing = [t for t in topics.values() if t not in found]
    if missing:
        raise DataError(f"{path}: no ground-truth topics {missing} (has {sorted(found)})")
    return min(found[t][1] for t in topics.values())


def read_ground_truth_bag(path: Path, topics: dict[str, str] = TOPICS) -> Iterator[GroundTruthFrame]:
    """Frames whose four messages (same header stamp) are all in the bag, in stamp order of completion."""
    role_of = {topic: role for role, topic in topics.items()}
    pending: dict[int, dict] = defaultdict(dict)
    for topic, _, msg in read_messages(path, topics.values()):
        stamp = conv.stamp_to_ns(msg.header.stamp)
        parts = pending[stamp]
        parts[role_of[topic]] = msg
        if len(parts) == len(topics):
            del pending[stamp]
            yield _frame(parts)


def _frame(parts: dict) -> GroundTruthFrame:
    intrinsics = conv.camera_info_to_intrinsics(parts["camera_info"])
    rgb, depth = conv.image_to_rgb(parts["image"]), conv.image_to_depth(parts["depth"])
    instances = conv.instances_from_msg(parts["truth"])
    shape = depth.shape
    index = {inst.id: k + 1 for k, inst in enumerate(instances)}   # message ids -> 1-based frame ids
    ids = np.zeros(shape, np.int32)
    for inst in instances:
        ids[inst.visible_mask] = index[inst.id]
    empty = np.zeros((0,) + shape)
    pairs = [(index[a], index[inst.id]) for inst in instances for a in inst.occluded_by if a in index]
    depths = [cast(np.ndarray, inst.depth) for inst in instances]   # instances_from_msg gives each its depth
    return GroundTruthFrame(
        rgb=rgb, depth=depth, instance_ids=ids,
        amodal_masks=np.stack([inst.amodal_mask for inst in instances]) if instances else empty.astype(bool),
        object_depths=np.stack(depths) if instances else empty.astype(np.float32),
        names=tuple(inst.label for inst in instances), intrinsics=intrinsics,
        occlusion_pairs=np.array(sorted(pairs), np.int32).reshape(-1, 2), stuff=np.zeros(len(instances), bool))
