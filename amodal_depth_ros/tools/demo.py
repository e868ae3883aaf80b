"""Run the node on a synthetic RGB-D stream over real DDS and write what comes back.

Starts amodal_depth_node as its own process, publishes rendered frames at a fixed rate, collects the
node's outputs and writes into --out: input_rgb.png, visible_depth.png, amodal_depth.png,
hidden_layers.png and amodal_cloud.ply (of the last frame that came back), node.log, and
summary.json with rates, latency, per-stage times and the error against the renderer's ground truth.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
from tqdm import tqdm

import amodal_depth_ros

from .. import visualize as vis
from ..groundtruth import GroundTruthFrame
from ..resources import package_path
from ..ros import conversions as conv
from ..ros.client import CameraStreamClient, Outputs
from ..ros.diagnostics import images_accounted
from ..ros.process import NodeProcess, remap_args
from ..synthetic import SyntheticCamera

BASE_STAMP_NS = 1_700_000_000 * 10**9   # fixed epoch: stamps, and so outputs, are the same on every run
NODE_NAME = "/amodal/amodal_depth_node"
# Generous: a node loading its networks on a loaded machine takes a while to connect, and its last frame too.
CONNECT_TIMEOUT_S, DRAIN_TIMEOUT_S = 120.0, 60.0
PROFILE_VARS = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: out/demo)")
    parser.add_argument("--frames", type=int, default=30, help="frames to publish (default: 30)")
    parser.add_argument("--rate", type=float, default=5.0, help="publishing rate in Hz (default: 5)")
    parser.add_argument("--width", type=int, default=640, help="image width in pixels (default: 640)")
    parser.add_argument("--height", type=int, default=480, help="image height in pixels (default: 480)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic scene seed (default: 0)")
    parser.add_argument("--params", type=Path, default=None,
                        help="node parameter file (default: the package's config/amodal_depth.yaml)")


def config_file(name: str) -> Path:
    """A file of the package's config/ (checkout or installed share)."""
    return package_path("config", name)


def prepare_ros_environment() -> None:
    """Own DDS domain (no cross-talk with other runs) and the large-data Fast DDS profile (without it a
    6 MB cloud waits for 3 s heartbeat repairs). Set here so the node process inherits both."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
    if not any(os.environ.get(var) for var in PROFILE_VARS):
        os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(config_file("fastdds_large_data.xml"))


def wait_connected(client: CameraStreamClient, node: NodeProcess) -> str | None:
    """None once connected and the node's inputs have adapted to our reliable publishers (no frame is then
    lost to a best-effort subscription), else why not."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while time.monotonic() < deadline:
        if not node.alive():
            return f"the node exited with code {node.proc.returncode}"
        values = client.latest_diagnostic_values()
        if client.wait_connected(timeout=0.5) and all(
                values.get(f"qos_{name}", "").startswith("reliable/") for name in ("image", "depth", "camera_info")):
            return None
    return f"the node did not connect within {CONNECT_TIMEOUT_S:.0f} s"


def publish_stream(client: CameraStreamClient, camera: SyntheticCamera, frames: int,
                   rate: float) -> tuple[dict[int, float], int]:
    """Render on the fly and publish at ``rate``: {stamp: monotonic publish time}, frames published late."""
    period, published, late = 1.0 / rate, {}, 0
    for index in tqdm(range(frames), desc="publishing", unit="frame"):
        frame = camera.frame(index)
        now = time.monotonic()
        if index == 0:
            next_tick = now   # the schedule starts when the first frame is ready
        if now < next_tick:
            time.sleep(next_tick - now)
        elif now > next_tick + 0.1 * period:
            late += 1
        stamp = BASE_STAMP_NS + camera.stamp_ns(index)
        client.publish_frame(frame.rgb, frame.depth, camera.intrinsics, stamp)
        published[stamp] = time.monotonic()
        # When rendering runs late, publish right after it instead of bursting to catch up.
        next_tick = max(next_tick + period, published[stamp])
    return published, late


def drain(client: CameraStreamClient, last_stamp: int, published: int) -> None:
    """Wait until the last frame came back (the newest is always processed), or the node's diagnostics account
    for all ``published`` images with every processed one answered here (the last was dropped, for a reason
    they give), or DRAIN_TIMEOUT_S passed; then for one more diagnostics message, so that the counters include
    the last frame."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline and client.wait_outputs(last_stamp, 0.05) is None:
        values = client.settled_diagnostics(timeout=0.0)
        if values and images_accounted(values) >= published and int(values["frames_out"]) == client.answered():
            break
    diagnostics, deadline = len(client.diagnostics), time.monotonic() + 3.0
    while len(client.diagnostics) == diagnostics and time.monotonic() < deadline:
        time.sleep(0.05)


def node_diagnostics(client: CameraStreamClient) -> tuple[dict[str, float], dict[str, str]]:
    """(mean of every stage_ms_* over the run's diagnostics messages, the last message's values)."""
    statuses = [s for array in list(client.diagnostics) for s in array.status if s.name.startswith(NODE_NAME)]
    stages: dict[str, list[float]] = {}
    for status in statuses:
        for kv in status.values:
            if kv.key.startswith("stage_ms_"):
                stages.setdefault(kv.key[len("stage_ms_"):], []).append(float(kv.value))
    last = {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}
    return {k: round(float(np.mean(v)), 2) for k, v in stages.items()}, last


def ground_truth_errors(truth: GroundTruthFrame, visible: np.ndarray, amodal: np.ndarray) -> dict[str, object]:
    """Visible depth against the renderer, and the node's hidden surfaces against the true nearest
    surface behind the visible one (the smallest object depth more than 1 cm beyond it)."""
    common = np.isfinite(visible) & np.isfinite(truth.depth)
    behind = np.where(truth.object_depths > truth.depth + 0.01, truth.object_depths, np.inf).min(axis=0)
    hidden = vis.hidden_mask(visible, amodal)
    errors = np.abs(amodal - behind)[hidden & np.isfinite(behind)]
    return {
        "visible_depth_max_abs_err_m": float(np.abs(visible - truth.depth)[common].max()) if common.any() else None,
        "visible_depth_pixels_compared": int(common.sum()),
        "hidden_surface_pixels": int(hidden.sum()),
        "hidden_surface_pixels_without_true_surface": int((hidden & ~np.isfinite(behind)).sum()),
        "hidden_surface_abs_err_m": {"mean": round(float(errors.mean()), 4) if errors.size else None,
                                     "median": round(float(np.median(errors)), 4) if errors.size else None},
    }


def write_frame_outputs(out: Path, truth: GroundTruthFrame, outputs: Outputs) -> dict[str, object]:
    """Images and PLY of one returned frame (one colour range for all depth images); its summary entries."""
    msgs = outputs.messages
    visible, amodal = conv.image_to_depth(msgs["visible_depth"]), conv.image_to_depth(msgs["amodal_depth"])
    vmin, vmax = vis.depth_range(visible, amodal)
    vis.write_png(out / "input_rgb.png", truth.rgb)
    vis.write_png(out / "visible_depth.png", vis.add_colorbar(vis.colorize_depth(visible, vmin, vmax), vmin, vmax))
    vis.write_png(out / "amodal_depth.png", vis.add_colorbar(vis.colorize_depth(amodal, vmin, vmax), vmin, vmax))
    overlay = vis.hidden_overlay(truth.rgb, visible, amodal, vmin, vmax)
    vis.write_png(out / "hidden_layers.png", vis.add_colorbar(overlay, vmin, vmax))
    cloud = conv.cloud_from_msg(msgs["cloud"])
    vis.write_ply(out / "amodal_cloud.ply", cloud)
    layers, counts = np.unique(cloud["layer"], return_counts=True)
    instances: Any = msgs.get("instances")   # an AmodalInstanceArray message (rosidl messages are untyped)
    entries: dict[str, object] = {
        "depth_colour_range_m": [round(vmin, 3), round(vmax, 3)],
        "cloud_points_by_layer": {str(int(layer)): int(n) for layer, n in zip(layers, counts, strict=False)},
        "instances": None if instances is None else len(instances.instances),
        "occlusion": None if instances is None else [
            {"id": int(i.id), "occluded_by": [int(o) for o in i.occluded_by],
             "visible_ratio": round(float(i.visible_ratio), 3)} for i in instances.instances],
    }
    entries.update(ground_truth_errors(truth, visible, amodal))
    return entries


def versions() -> dict[str, str]:
    found = {"amodal_depth_ros": amodal_depth_ros.__version__, "python": platform.python_version(),
             "numpy": np.__version__, "opencv": cv2.__version__, "rmw": rclpy.get_rmw_implementation_identifier()}
    try:
        found["rclpy"] = metadata.version("rclpy")
    except metadata.PackageNotFoundError:  # a source/apt ROS install has no wheel metadata
        pass
    return found


def print_table(summary: dict) -> None:
    frame = summary["last_frame"] or {}
    rows = [(k, summary[k]) for k in ("frames_published", "frames_returned", "input_rate_hz", "output_rate_hz")]
    rows += [(f"{group} {k}", v) for group in ("latency_ms", "stage_ms", "node_counters")
             for k, v in summary[group].items()]
    rows += [(f"last frame {k}", frame[k]) for k in ("index", "instances", "cloud_points_by_layer",
                                                     "visible_depth_max_abs_err_m", "hidden_surface_pixels")
             if k in frame]
    rows += [(f"hidden_surface_abs_err_m {k}", v) for k, v in frame.get("hidden_surface_abs_err_m", {}).items()]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value:.3f}" if isinstance(value, float) else f"{name:<{width}}  {value}"
                    for name, value in rows))


def summarize(client: CameraStreamClient, camera: SyntheticCamera, published: dict[int, float], late: int) -> dict:
    """summary.json entries of the run (``last_frame`` is filled in by the caller)."""
    outputs = {s: o for s, o in dict(client.outputs).items() if s in published and o.complete()}
    latency = [1e3 * (outputs[s].received_at - published[s]) for s in sorted(outputs)]
    stage_ms, last_values = node_diagnostics(client)
    counters = ("frames_in", "frames_out", "superseded_in_queue_image", "dropped_superseded", "dropped_unsynchronized",
                "dropped_out_of_order", "skipped_no_subscriber", "images_waiting")
    return {
        "frames_published": len(published), "frames_returned": len(outputs),
        "returned_indices": [camera_index(camera, s) for s in sorted(outputs)],
        "input_rate_hz": rate(sorted(published.values())),
        "output_rate_hz": rate(sorted(o.received_at for o in outputs.values())),
        "frames_published_late": late,
        "latency_ms": {f"p{q}": round(float(np.percentile(latency, q)), 1) if latency else None for q in (50, 95)},
        "stage_ms": stage_ms,
        "node_counters": {k: int(v) for k, v in last_values.items() if k in counters or k.startswith("rejected_")},
        "ros_domain_id": int(os.environ["ROS_DOMAIN_ID"]), "versions": versions(), "last_frame": None,
    }


def run(args: argparse.Namespace) -> int:
    if args.frames < 1 or args.rate <= 0 or args.width < 1 or args.height < 1:
        print("amodal-depth demo: --frames, --rate, --width and --height must be positive", file=sys.stderr)
        return 2
    try:
        params = args.params or config_file("amodal_depth.yaml")
        if not params.is_file():
            raise FileNotFoundError(f"parameter file {params} does not exist")
        prepare_ros_environment()
    except FileNotFoundError as error:
        print(f"amodal-depth demo: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    node = NodeProcess(["--params-file", str(params), *remap_args()], args.out / "node.log")
    rclpy.init(args=[])
    client = CameraStreamClient()
    try:
        problem = wait_connected(client, node)
        if problem:
            print(f"amodal-depth demo: {problem}. Node log ({node.log_path}):\n{node.log_tail()}", file=sys.stderr)
            return 1
        camera = SyntheticCamera(args.seed, args.width, args.height, fps=args.rate)
        published, late = publish_stream(client, camera, args.frames, args.rate)
        drain(client, max(published), len(published))
        summary = summarize(client, camera, published, late)
        if summary["frames_returned"]:
            index = summary["returned_indices"][-1]
            outputs = client.outputs[BASE_STAMP_NS + camera.stamp_ns(index)]
            summary["last_frame"] = {"index": index, **write_frame_outputs(args.out, camera.frame(index), outputs)}
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print_table(summary)
        if late:
            print(f"note: rendering fell behind the {args.rate:g} Hz schedule; {late} frame(s) went out late "
                  f"(measured input rate {summary['input_rate_hz']} Hz)")
        if not summary["frames_returned"]:
            print(f"amodal-depth demo: no frame came back. Node log:\n{node.log_tail()}", file=sys.stderr)
            return 1
        print(f"outputs in {args.out}/")
        return 0
    finally:
        node.stop()
        client.close()
        rclpy.try_shutdown()


def camera_index(camera: SyntheticCamera, stamp: int) -> int:
    return round((stamp - BASE_STAMP_NS) * camera.fps / 1e9)


def rate(times: list[float]) -> float | None:
    """Events per second over the span of the events: (n - 1) intervals."""
    return round((len(times) - 1) / (times[-1] - times[0]), 2) if len(times) > 1 and times[-1] > times[0] else None
