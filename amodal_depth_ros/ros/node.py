"""amodal_depth_node: the ROS 2 adapter around the ROS-free pipeline.

Callbacks only queue messages; one worker thread processes the newest synchronised frame, so a
slow model never builds a backlog (superseded frames are counted, not queued). Subscriptions are
best-effort (they accept reliable and best-effort publishers); publishers are reliable with a
shallow queue (they serve reliable and best-effort subscribers).
"""
from __future__ import annotations

import functools
import sys
import threading
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, KeyValue
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import Marker

from ..core import config
from ..errors import InputError
from ..pipeline import AmodalDepthPipeline
from . import conversions as conv
from . import outputs
from .allocator import reuse_large_buffers
from .diagnostics import NodeStats
from .input_qos import AdaptiveSubscription, overriding_options
from .logs import route_to_rclpy, stop_routing
from .node_map import NodeMap
from .params import declare_pipeline_parameters, validate_update
from .sync import TIME_JUMP_NS, Matched, StampSynchronizer

try:
    from amodal_depth_ros.srv import SaveMap
except ImportError:  # interfaces not built: the map runs without its save service
    SaveMap = None

QOS_POLL_S = 0.5   # how often the inputs look at their publishers (rosbag2 polls topics every 0.1 s)


class AmodalDepthNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("amodal_depth_node", **kwargs)
        self._log_handler = route_to_rclpy(self.get_logger())   # before the pipeline: model loading logs too
        self.params = declare_pipeline_parameters(self)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        # ValueError (bad combination, or a monocular checkpoint that cannot be loaded) stops the node: main().
        self.pipeline = AmodalDepthPipeline(self.params)
        self._prepared: AmodalDepthPipeline | None = None   # built by the on-set callback, swapped in post-set
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._parameters_changed)
        p = self.params
        self.stats = NodeStats()
        self._logged_fallbacks: set[str] = set()
        self._logged_backends: dict[str, str] = {}   # learned stage -> last backend status logged
        self._report_fallbacks()
        self.sync = StampSynchronizer(
            p["sync.slop"], p["sync.queue_size"], p["use_depth"], p["sync.camera_info_use_latest"],
            steady_camera_info=True)
        self._last_log: dict[str, float] = {}
        self._last_stamp: int | None = None   # of the newest frame handed to the worker

        # Inputs follow their publishers' QoS (reliable when all are, transient-local when all latch).
        inputs = [("image", Image), ("camera_info", CameraInfo)] + ([("depth", Image)] if p["use_depth"] else [])
        self.inputs = {name: AdaptiveSubscription(self, kind, name, functools.partial(self._on_message, name),
                                                  p["sync.queue_size"]) for name, kind in inputs}
        for name, sub in self.inputs.items():
            self.get_logger().info(f"{name} ({sub.resolved}): subscribing {sub.describe()}")
        # Wall-clock timers: with use_sim_time they must run while /clock is paused or not yet there.
        self.create_timer(QOS_POLL_S, self._adapt_inputs, clock=self._steady)

        # One profile each: the QoS override parameters (qos_overrides.<topic>.publisher.*) change it in place.
        def out() -> QoSProfile:
            return QoSProfile(depth=p["output.queue_depth"], history=HistoryPolicy.KEEP_LAST,
                              reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        self.publishers_by_topic = {t: self.create_publisher(outputs.ALL_TYPES[t], t, out(),
                                                             qos_overriding_options=overriding_options())
                                    for t in outputs.output_topics(p) if t in outputs.ALL_TYPES}
        if "amodal_instances" not in outputs.OUTPUT_TYPES:
            self.get_logger().warn("amodal_depth_ros.msg is not built: the amodal_instances topic is disabled")
        # map.enabled: every processed frame fused into a map, published at a low rate (``node_map``).
        self.map: NodeMap | None = None
        if p["map.enabled"]:
            self.map = NodeMap(p)
            self.pub_map = self.create_publisher(PointCloud2, "map_points", out(),
                                                 qos_overriding_options=overriding_options())
            self.pub_map_mesh = self.create_publisher(Marker, "map_mesh", out(),
                                                      qos_overriding_options=overriding_options())
            if SaveMap is not None:
                self.create_service(SaveMap, "save_map", self._save_map)
            else:
                self.get_logger().warn("amodal_depth_ros.srv is not built: the save_map service is disabled")
            if p["map.pose_topic"]:
                self.create_subscription(PoseStamped, p["map.pose_topic"], self.map.on_pose, 50)
            self.create_timer(p["map.publish_period"], self._publish_map, clock=self._steady)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(p["diagnostics.period"], self._publish_diagnostics, clock=self._steady)

        self._lock = threading.Condition()
        self._pending: Matched | None = None
        self._running = True
        self._worker = threading.Thread(target=self._work, name="amodal_depth_worker", daemon=True)
        self._worker.start()
        source = p["visible_depth.source"]
        if source == "monocular":
            source += f" ({p['monocular.checkpoint']})"
        self.get_logger().info(
            f"ready: image={self.resolve_topic_name('image')} camera_info={self.resolve_topic_name('camera_info')}"
            + (f" depth={self.resolve_topic_name('depth')}" if p["use_depth"] else " (no depth topic)")
            + f", visible depth from {source}")

    # --- input side: cheap, never blocks on the pipeline ---------------------------------------
    def _adapt_inputs(self) -> None:
        for name, sub in self.inputs.items():
            if sub.adapt():
                self.get_logger().info(f"{name} ({sub.resolved}): publishers changed, now subscribing {sub.describe()}")

    def _on_message(self, topic: str, msg: Any, info: dict[str, Any]) -> None:
        # rclpy passes the message info to a callback that takes two arguments. Its publication sequence number
        # tells the messages the node never got (superseded in the history while it was busy); with several
        # publishers their numbers interleave, so none is counted then.
        sub = self.inputs[topic]
        self.stats.count_message(topic, msg.header.frame_id,
                                 info.get("publication_sequence_number") if sub.choice.publishers == 1 else None,
                                 sub.qos.reliability == ReliabilityPolicy.RELIABLE)
        if topic == "image":
            self.stats.count_input()
        stamp = conv.stamp_to_ns(msg.header.stamp)
        # An image TIME_JUMP_NS behind the last frame's starts over on the new timeline; a frame less far behind,
        # or a repeat, is dropped as out of order (below).
        if topic == "image" and self._last_stamp is not None and stamp < self._last_stamp - TIME_JUMP_NS:
            self.get_logger().info(f"image stamps jumped back {(self._last_stamp - stamp) / 1e9:.3f} s (a bag loop, "
                                   "a restarted driver?): starting over on the new timeline")
            self.stats.time_jumps += 1
            self.sync.forget()
            self._last_stamp = None
        matched = self.sync.add(topic, stamp, msg)
        self.stats.unmatched = self.sync.unmatched_images
        if matched is None:
            return
        if self._last_stamp is not None and matched.stamp_ns <= self._last_stamp:
            self.stats.out_of_order += 1   # never processed twice, never published out of stamp order
            return
        self._last_stamp = matched.stamp_ns
        with self._lock:
            if self._pending is not None:
                self.stats.superseded += 1
            self._pending = matched
            self._lock.notify()

    # --- worker --------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and self._running:
                    self._lock.wait()
                if not self._running:
                    return
                matched, self._pending = self._pending, None
            if matched is None:   # woken to stop
                continue
            try:
                self._process(matched)
            except InputError as error:
                self._reject(error.reason, str(error))
            except Exception as error:  # a bug must not kill the node: report it and keep serving
                self._reject("internal_error", f"{type(error).__name__}: {error}")

    def _process(self, matched: Matched) -> None:
        # Messages nobody subscribes to are not built (the instance array alone costs ~6 ms per frame), and
        # with no subscriber at all the pipeline does not run (depth_image_proc's lazy subscription): the
        # first subscriber gets the next frame.
        wanted = [t for t, pub in self.publishers_by_topic.items() if pub.get_subscription_count() > 0]
        if not wanted:
            self.stats.count_idle()
            return
        result = self.pipeline(outputs.frame_of(matched))
        start = time.perf_counter()
        for topic, msg in outputs.output_messages(result, matched, wanted, outputs.colorize_range(self.params),
                                                  outputs.mesh_settings(self.params)).items():
            self.publishers_by_topic[topic].publish(outputs.payload(msg))
        timings = dict(result.timings_ms, publish=(time.perf_counter() - start) * 1e3)
        if self.map is not None:
            start = time.perf_counter()
            self.map.fuse(result, matched.image.header)
            timings["map"] = (time.perf_counter() - start) * 1e3
        self.stats.count_output(timings)

    def _publish_map(self) -> None:
        if self.map is None:
            return
        if self.pub_map.get_subscription_count() > 0:
            msg = self.map.cloud_msg()
            if msg is not None:
                self.pub_map.publish(msg)
        if self.pub_map_mesh.get_subscription_count() > 0:
            marker = self.map.mesh_marker()
            if marker is not None:
                self.pub_map_mesh.publish(marker.data)

    def _save_map(self, request: Any, response: Any) -> Any:
        """~/save_map (amodal_depth_ros/srv/SaveMap): the map's PLY files into ``request.folder``."""
        assert self.map is not None
        if not request.folder:
            response.success, response.message = False, "no folder given"
            return response
        try:
            response.points, response.triangles = self.map.save(request.folder)
        except OSError as error:
            response.success, response.message = False, f"cannot save the map to {request.folder!r}: {error}"
            self.get_logger().error(response.message)
            return response
        response.success = True
        response.message = f"map saved to {request.folder}: {response.points} points, {response.triangles} triangles"
        self.get_logger().info(response.message)
        return response

    def _reject(self, reason: str, message: str) -> None:
        self.stats.count_rejected(reason, message)
        now = time.monotonic()
        if now - self._last_log.get(reason, -1e9) >= self.params["diagnostics.log_throttle"]:
            self._last_log[reason] = now
            self.get_logger().warn(f"frame dropped ({reason}): {message} [{self.stats.rejected[reason]} so far]")

    # --- parameters and diagnostics ------------------------------------------------------------
    def _report_fallbacks(self) -> None:
        """Learned stages or backends replaced by their fallback: an ERROR line once per message, WARN in
        /diagnostics. Called with every diagnostics message too: a TensorRT engine building in the background
        can fail (or come into service) at any time."""
        fallbacks, backends = self.pipeline.fallbacks, self.pipeline.backend_status
        self.stats.set_fallbacks(fallbacks, backends)
        for message in fallbacks.values():
            if message not in self._logged_fallbacks:
                self._logged_fallbacks.add(message)
                self.get_logger().error(f"configured model or backend not running, fallback in use: {message}")
        for stage, status in backends.items():
            if self._logged_backends.get(stage) != status:
                self._logged_backends[stage] = status
                self.get_logger().info(f"{stage} network: {status}")

    def _check_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """on-set callback: each value against its spec, then the combination, then the new pipeline is built
        (a monocular checkpoint that cannot be loaded refuses the change; the running pipeline stays)."""
        result = validate_update(parameters)
        if not result.successful:
            return result
        changed = {p.name: p.value for p in parameters if p.name in self.params}
        updated = dict(self.params, **changed)
        self._prepared = None
        try:
            # Live parameters (marked so in the table) go to the running stages; any other builds a new pipeline.
            if set(changed) - config.LIVE_NAMES:
                self._prepared = AmodalDepthPipeline(updated)
            else:
                config.validated(updated)
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        return SetParametersResult(successful=True)

    def _parameters_changed(self, parameters: list[Parameter]) -> None:
        changed = {p.name: p.value for p in parameters if p.name in self.params}
        if self._prepared is not None:
            self.pipeline, self._prepared = self._prepared, None
            self.params = dict(self.pipeline.params)
            self._report_fallbacks()
        else:
            self.pipeline.apply_live(changed)
            self.params = config.validated(dict(self.params, **changed))
        sync = self.pipeline.settings.sync
        self.sync.slop_ns, self.sync.camera_info_use_latest = int(sync.slop * 1e9), sync.camera_info_use_latest

    def _publish_diagnostics(self) -> None:
        self._report_fallbacks()
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        qos = {name: sub.describe() for name, sub in self.inputs.items()}
        status = self.stats.status(self.get_fully_qualified_name(), qos, self.pipeline.settings.diagnostics.stale_after,
                                   waiting=len(self.sync.queues["image"]))
        if self.map is not None:
            status.values += [KeyValue(key=k, value=str(v)) for k, v in self.map.diagnostics().items()]
        array.status = [status]
        self.pub_diagnostics.publish(array)

    def destroy_node(self) -> None:
        with self._lock:
            self._running = False
            self._lock.notify()
        self._worker.join(timeout=5.0)
        stop_routing(self._log_handler)
        super().destroy_node()


def main(argv: list[str] | None = None) -> int:
    reuse_large_buffers()
    rclpy.init(args=argv if argv is not None else sys.argv)
    try:
        node = AmodalDepthNode()
    except ValueError as error:   # bad parameters, or a monocular checkpoint that cannot be loaded (ModelLoadError)
        rclpy.logging.get_logger("amodal_depth_node").fatal(f"cannot start: {error}")
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
