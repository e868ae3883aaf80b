"""Offline replay: a recorded bag through the node's pipeline into a bag of the node's outputs.

Messages are read in bag-time order and paired by header stamp exactly as the node pairs them
(``StampSynchronizer``); every pair is processed (offline nothing is superseded), and the outputs
are written with the input image's stamp and frame_id, at the image's bag time. Same bag, same
parameters: same output bag. The completed mesh stays out of the bag (a few MB a frame): with
``mesh_dir`` each frame's goes there as STAMP_NS.ply.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.mesh import write_ply
from ..errors import ConfigError, DataError, InputError
from ..pipeline import AmodalDepthPipeline
from . import conversions as conv
from .bag import BagWriter, read_messages, topics_of
from .outputs import MESH_TYPES, completed_mesh, mesh_settings, process
from .sync import StampSynchronizer


@dataclass(frozen=True)
class ReplayTopics:
    image: str = "/camera/color/image_raw"
    camera_info: str = "/camera/color/camera_info"
    depth: str | None = "/camera/depth/image_raw"
    output_namespace: str = "/amodal"


@dataclass
class ReplaySummary:
    frames_in: int = 0
    frames_out: int = 0
    unmatched: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    messages_written: int = 0
    meshes_written: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        means = {k: round(float(np.mean(v)), 2) for k, v in self.stage_ms.items()}
        return {"frames_in": self.frames_in, "frames_out": self.frames_out, "unmatched": self.unmatched,
                "rejected": self.rejected, "stage_ms_mean": means, "messages_written": self.messages_written,
                "meshes_written": self.meshes_written,
                "seconds": round(self.seconds, 2)}


def replay(bag_in: Path, bag_out: Path, params: dict[str, Any], topics: ReplayTopics = ReplayTopics(),
           storage: str = "mcap", copy_inputs: bool = False,
           on_frame: Callable[[int, int], None] | None = None, mesh_dir: Path | None = None) -> ReplaySummary:
    """Process ``bag_in`` into ``bag_out`` (and each frame's completed mesh into ``mesh_dir``, when given);
    ``on_frame(done, total)`` reports progress."""
    available = topics_of(bag_in)
    wanted = {"image": topics.image, "camera_info": topics.camera_info}
    if params.get("use_depth", True):
        if not topics.depth:
            raise ConfigError("use_depth is true but no depth topic was given")
        wanted["depth"] = topics.depth
    missing = [t for t in wanted.values() if t not in available]
    if missing:
        raise DataError(f"{bag_in}: missing topic(s) {missing}; the bag has {sorted(available)}")
    role = {topic: name for name, topic in wanted.items()}
    total = available[topics.image][1]
    pipeline = AmodalDepthPipeline(params)
    sync = StampSynchronizer(params.get("sync.slop", 0.02), max(int(params.get("sync.queue_size", 10)), 1),
                             "depth" in wanted, bool(params.get("sync.camera_info_use_latest", False)))
    summary = ReplaySummary()
    prefix = topics.output_namespace.rstrip("/")
    image_times: dict[int, int] = {}   # header stamp -> bag time of the image: outputs are written at it
    start = time.perf_counter()
    if mesh_dir is not None:
        mesh_dir.mkdir(parents=True, exist_ok=True)
    with BagWriter(bag_out, storage) as out:
        for topic, bag_time, msg in read_messages(bag_in, wanted.values()):
            if copy_inputs:
                out.write(topic, msg, bag_time)
                summary.messages_written += 1
            stamp = conv.stamp_to_ns(msg.header.stamp)
            if role[topic] == "image":
                summary.frames_in += 1
                image_times[stamp] = bag_time
            matched = sync.add(role[topic], stamp, msg)
            if matched is None:
                continue
            bag_time = image_times.pop(matched.stamp_ns, bag_time)
            try:
                result, messages = process(pipeline, matched, leave_out=MESH_TYPES)
            except InputError as error:
                summary.rejected[error.reason] = summary.rejected.get(error.reason, 0) + 1
                continue
            for name, message in messages.items():
                out.write(f"{prefix}/{name}", message, bag_time)
            summary.messages_written += len(messages)
            if mesh_dir is not None:
                write_ply(completed_mesh(result, *mesh_settings(pipeline.params)), mesh_dir / f"{matched.stamp_ns}.ply")
                summary.meshes_written += 1
            summary.frames_out += 1
            for stage, ms in result.timings_ms.items():
                summary.stage_ms.setdefault(stage, []).append(ms)
            if on_frame:
                on_frame(summary.frames_in, total)
    summary.unmatched = sync.unmatched_images + len(sync.queues["image"])   # never paired, or still waiting
    summary.seconds = time.perf_counter() - start
    return summary
