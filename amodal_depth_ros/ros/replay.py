"""Offline replay: a recorded bag through the node's pipeline into a bag of the node's outputs.

Messages are read in bag-time order and paired by header stamp exactly as the node pairs them
(``StampSynchronizer``); every pair is processed (offline nothing is superseded), and the outputs
are written with the input image's stamp and frame_id, at the image's bag time. Same bag, same
parameters: same output bag. The completed mesh stays out of the bag (a few MB a frame): with
``mesh_dir`` each frame's goes there as STAMP_NS.ply. With ``map_dir`` the frames are also fused into a map
(``mapping.FusedMap``) written there at the end (map_cloud.ply, map_mesh.ply): the camera fixed (the map in
its optical frame), or posed by the geometry_msgs/PoseStamped of ``pose_topic`` in the bag (the camera's
optical frame in the map frame) nearest each frame's stamp within sync.slop; frames without one are counted
and not fused.
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
from ..mapping import FusedMap, write_map
from ..pipeline import AmodalDepthPipeline, PipelineResult
from . import conversions as conv
from .bag import BagWriter, read_messages, topics_of
from .node_map import PoseBuffer
from .outputs import MESH_TYPES, completed_mesh, mesh_settings, process
from .sync import StampSynchronizer

POSE_WAIT = 10   # frames kept waiting for a later pose before fusing with the poses at hand


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
    frames_fused: int = 0
    frames_without_pose: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        means = {k: round(float(np.mean(v)), 2) for k, v in self.stage_ms.items()}
        return {"frames_in": self.frames_in, "frames_out": self.frames_out, "unmatched": self.unmatched,
                "rejected": self.rejected, "stage_ms_mean": means, "messages_written": self.messages_written,
                "meshes_written": self.meshes_written, "frames_fused": self.frames_fused,
                "frames_without_pose": self.frames_without_pose,
                "seconds": round(self.seconds, 2)}


def replay(bag_in: Path, bag_out: Path, params: dict[str, Any], topics: ReplayTopics = ReplayTopics(),
           storage: str = "mcap", copy_inputs: bool = False,
           on_frame: Callable[[int, int], None] | None = None, mesh_dir: Path | None = None,
           map_dir: Path | None = None, pose_topic: str | None = None) -> ReplaySummary:
    """Process ``bag_in`` into ``bag_out`` (each frame's completed mesh into ``mesh_dir`` and the fused map
    into ``map_dir``, when given); ``on_frame(done, total)`` reports progress."""
    available = topics_of(bag_in)
    wanted = {"image": topics.image, "camera_info": topics.camera_info}
    if params.get("use_depth", True):
        if not topics.depth:
            raise ConfigError("use_depth is true but no depth topic was given")
        wanted["depth"] = topics.depth
    if pose_topic:
        wanted["pose"] = pose_topic
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
    fused = FusedMap() if map_dir is not None else None
    slop_ns = int(params.get("sync.slop", 0.02) * 1e9)
    poses = PoseBuffer(slop_ns)   # the bag's, from pose_topic
    waiting: list[PipelineResult] = []  # processed frames whose pose may still come (bag order is not stamp order)

    def fuse(results: list[PipelineResult]) -> None:
        assert fused is not None
        for result in results:
            found = poses.nearest(result.frame.stamp_ns) if pose_topic else (np.eye(4), "")
            if isinstance(found, str):
                summary.frames_without_pose += 1
                continue
            fused.integrate_result(result, found[0])
            summary.frames_fused += 1

    def fuse_settled(latest_pose_ns: int | None) -> None:
        """Fuse the waiting frames no later pose can be nearer to (or the oldest, past POSE_WAIT frames)."""
        settled = [r for r in waiting if latest_pose_ns is not None and r.frame.stamp_ns + slop_ns < latest_pose_ns]
        settled += waiting[:max(len(waiting) - len(settled) - POSE_WAIT, 0)]
        if settled:
            fuse(settled)
            waiting[:] = [r for r in waiting if all(r is not s for s in settled)]
    start = time.perf_counter()
    if mesh_dir is not None:
        mesh_dir.mkdir(parents=True, exist_ok=True)
    with BagWriter(bag_out, storage) as out:
        for topic, bag_time, msg in read_messages(bag_in, wanted.values()):
            if copy_inputs:
                out.write(topic, msg, bag_time)
                summary.messages_written += 1
            stamp = conv.stamp_to_ns(msg.header.stamp)
            if role[topic] == "pose":
                poses.add(msg)   # a NaN pose is not kept: the frames it would have posed count as without one
                fuse_settled(stamp)
                continue
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
            if fused is not None:
                waiting.append(result)
                if pose_topic:
                    fuse_settled(poses.newest_stamp)
                else:
                    fuse(waiting)
                    waiting.clear()
            summary.frames_out += 1
            for stage, ms in result.timings_ms.items():
                summary.stage_ms.setdefault(stage, []).append(ms)
            if on_frame:
                on_frame(summary.frames_in, total)
    summary.unmatched = sync.unmatched_images + len(sync.queues["image"])   # never paired, or still waiting
    if fused is not None and map_dir is not None:
        fuse(waiting)
        write_map(fused, map_dir)
    summary.seconds = time.perf_counter() - start
    return summary

