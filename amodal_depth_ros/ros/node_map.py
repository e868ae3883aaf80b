"""The node's fused map (``map.enabled``): each processed frame fused with its camera pose into a
``mapping.FusedMap``; ``~/map_points`` (PointCloud2: x, y, z, rgb, instance 0, layer 0 observed / 1 predicted)
and ``~/map_mesh`` (a Marker TRIANGLE_LIST, predicted parts translucent) published every
``map.publish_period`` seconds while they have a subscriber; the ``~/save_map`` service
(amodal_depth_ros/srv/SaveMap: a folder) saves map_cloud.ply and map_mesh.ply there.

Poses: with ``map.pose_topic`` empty the camera is fixed and the map lies in its optical frame; otherwise the
topic's geometry_msgs/PoseStamped give the camera's optical frame in the map frame (their header's frame), the
one nearest each frame's stamp within ``sync.slop``. TF is not read (no tf2 in this Python environment): a
robot publishes its camera pose on a topic, e.g. from its localisation. A frame without a usable pose (none
near its stamp, or not finite) is not fused, and ``/diagnostics`` counts it with the reason.
"""
from __future__ import annotations

import threading
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from ..core.geometry import pose_matrix
from ..core.mesh import LayeredMesh
from ..core.types import LayeredCloud
from ..mapping import FusedMap, write_map
from ..pipeline import PipelineResult
from . import conversions as conv
from .marker import Serialized, mesh_marker
from .sync import TIME_JUMP_NS

POSES_KEPT = 200   # recent poses searched for each frame's stamp


class PoseBuffer:
    """Camera poses from geometry_msgs/PoseStamped by stamp (the node's recent ones, or a whole bag's): for a
    frame, the pose nearest its stamp within ``slop_ns``."""

    def __init__(self, slop_ns: int, kept: int | None = None):
        self.slop_ns = slop_ns
        self._poses: deque[tuple[int, np.ndarray, str]] = deque(maxlen=kept)   # stamp, pose, map frame
        self._newest: int | None = None   # the newest stamp of this timeline

    def add(self, msg: PoseStamped) -> str | None:
        """Keep ``msg``'s pose: None, or why it is not kept as is ("bad_pose_message": NaN, a zero
        quaternion; "pose_time_jump": TIME_JUMP_NS behind the newest, a new timeline, whose first pose it is:
        the poses of the old one are forgotten, lest they pose its frames)."""
        p, q = msg.pose.position, msg.pose.orientation
        try:
            pose = pose_matrix((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))
        except ValueError:
            return "bad_pose_message"
        stamp = conv.stamp_to_ns(msg.header.stamp)
        jumped = self._newest is not None and stamp < self._newest - TIME_JUMP_NS
        if jumped:
            self._poses.clear()
        self._poses.append((stamp, pose, msg.header.frame_id))
        self._newest = stamp if jumped or self._newest is None else max(self._newest, stamp)
        return "pose_time_jump" if jumped else None

    @property
    def newest_stamp(self) -> int | None:
        return self._newest

    def nearest(self, stamp_ns: int) -> tuple[np.ndarray, str] | str:
        """(camera-to-map pose, map frame) for a frame stamp, or why there is none."""
        if not self._poses:
            return "no_pose_yet"
        stamp, pose, frame = min(self._poses, key=lambda entry: abs(entry[0] - stamp_ns))
        return (pose, frame) if abs(stamp - stamp_ns) <= self.slop_ns else "no_pose_near_stamp"


class NodeMap:
    def __init__(self, params: dict[str, Any]):
        self.map = FusedMap(voxel_size=params["map.voxel_size"],
                            max_blocks=params["map.max_blocks"], hidden_weight=params["map.hidden_weight"])
        self.pose_topic: str = params["map.pose_topic"]
        self.poses = PoseBuffer(int(params["sync.slop"] * 1e9), POSES_KEPT)
        self._lock = threading.Lock()   # the worker fuses, the timer extracts
        self.fused = 0
        self.saved = 0
        self.save_failures = 0
        self.pose_time_jumps = 0
        self.skipped: Counter[str] = Counter()   # reason -> frames not fused
        self._header = Header()                 # of the newest frame fused, in the map frame

    def on_pose(self, msg: PoseStamped) -> None:
        with self._lock:
            why = self.poses.add(msg)
            if why == "bad_pose_message":
                self.skipped[why] += 1   # (the frames it would have posed are counted as without one)
            elif why:
                self.pose_time_jumps += 1

    def fuse(self, result: PipelineResult, header: Header) -> None:
        """Fuse one processed frame (``header``: the input image's) if it has a usable pose."""
        with self._lock:
            found = self.poses.nearest(conv.stamp_to_ns(header.stamp)) if self.pose_topic \
                else (np.eye(4), header.frame_id)
            if isinstance(found, str):
                self.skipped[found] += 1
                return
            pose, map_frame = found
            self.map.integrate_result(result, pose)
            self.fused += 1
            self._header = Header(stamp=header.stamp, frame_id=map_frame)

    def cloud_msg(self) -> PointCloud2 | None:
        """The map's surface now, or None before the first fused frame."""
        with self._lock:
            if not self.fused:
                return None
            cloud = self.map.extract()
            header = self._header
        layered = LayeredCloud.from_arrays(cloud.points, cloud.colors, cloud.predicted.astype(np.uint8),
                                           np.zeros(len(cloud.points), np.uint16))
        return conv.cloud_to_msg(layered, header)

    def mesh_marker(self) -> Serialized | None:
        """The map's mesh as a Marker (CDR bytes), or None before the first fused frame."""
        with self._lock:
            if not self.fused:
                return None
            vertices, triangles, colors, predicted = self.map.extract_mesh()
            header = self._header
        mesh = LayeredMesh(vertices, colors, np.zeros(len(vertices), np.int32), predicted.astype(np.uint8), triangles)
        return mesh_marker(mesh, (header.stamp.sec, header.stamp.nanosec), header.frame_id, ns="map_mesh")

    def save(self, folder: str) -> tuple[int, int]:
        """map_cloud.ply and map_mesh.ply into ``folder``: (points, triangles)."""
        with self._lock:
            try:
                written = write_map(self.map, Path(folder))
            except OSError:
                self.save_failures += 1
                raise
            self.saved += 1
        return written

    def diagnostics(self) -> dict[str, Any]:
        with self._lock:
            observed, predicted = self.map.blocks()
            values: dict[str, Any] = {"map_frames_fused": self.fused, "map_saved": self.saved,
                                      "map_save_failed": self.save_failures,
                                      "map_pose_time_jumps": self.pose_time_jumps,
                                      "map_blocks_observed": observed,
                                      "map_blocks_predicted": predicted, "map_blocks_refused": self.map.blocks_refused}
            values.update({f"map_skipped_{reason}": n for reason, n in sorted(self.skipped.items())})
        return values
