"""Process a recorded bag offline with the node's pipeline and write the node's outputs to a bag.

IN is a rosbag2 folder or file (mcap or sqlite3) or a ROS 1 .bag; OUT (default: IN_amodal) gets
/amodal/visible_depth/{image,camera_info}, /amodal/amodal_depth/{image,camera_info},
/amodal/amodal_points and /amodal/amodal_instances with the input image's stamps and frame ids
(--copy-inputs adds the input topics, for playback in rviz); --mesh DIR writes each frame's completed mesh
(visible surface and hidden layers, the node's ~/completed_mesh) to DIR/STAMP_NS.ply; --map DIR fuses the
frames into a map of what was seen and what was predicted behind it and writes DIR/map_cloud.ply and
DIR/map_mesh.ply (layer 1 = predicted), the camera fixed or posed by --pose-topic (geometry_msgs/PoseStamped
of the camera's optical frame in the map frame, in the bag). Parameters come from
--params (the node's YAML file) exactly as the node reads them. No ROS installation is needed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from ..core import config
from ..ros.allocator import reuse_large_buffers
from ..ros.replay import ReplayTopics, replay


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ReplayTopics()
    parser.add_argument("bag_in", type=Path, metavar="IN", help="input bag")
    parser.add_argument("bag_out", type=Path, nargs="?", metavar="OUT", help="output bag (default: IN_amodal)")
    parser.add_argument("--params", type=Path, default=None, help="node parameter file (default: built-in defaults)")
    parser.add_argument("--image-topic", default=d.image, help=f"(default: {d.image})")
    parser.add_argument("--camera-info-topic", default=d.camera_info, help=f"(default: {d.camera_info})")
    parser.add_argument("--depth-topic", default=d.depth, help=f"(default: {d.depth})")
    parser.add_argument(
        "--namespace", default=d.output_namespace, help=f"output topic namespace (default: {d.output_namespace})"
    )
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="output format (default: mcap)")
    parser.add_argument("--copy-inputs", action="store_true", help="write the input topics to OUT too")
    parser.add_argument("--map", type=Path, default=None, metavar="DIR",
                        help="fuse the frames into a map; write DIR/map_cloud.ply and DIR/map_mesh.ply")
    parser.add_argument("--pose-topic", default=None, help="geometry_msgs/PoseStamped camera poses for --map "
                        "(default: a fixed camera)")
    parser.add_argument("--mesh", type=Path, default=None, metavar="DIR",
                        help="write each frame's completed mesh to DIR/STAMP_NS.ply (binary PLY: vertex colour, "
                             "instance and layer)")


def run(args: argparse.Namespace) -> int:
    bag_out = args.bag_out or args.bag_in.with_name(args.bag_in.name.removesuffix(".bag") + "_amodal")
    if bag_out.exists():
        print(f"amodal-depth replay: {bag_out} exists; choose another OUT", file=sys.stderr)
        return 2
    reuse_large_buffers()   # as the node does: per-frame clouds stay in the heap
    try:
        params = config.load_params_file(args.params) if args.params else config.defaults()
        topics = ReplayTopics(args.image_topic, args.camera_info_topic, args.depth_topic, args.namespace)
        progress = tqdm(desc="replaying", unit="frame")

        def advance(done: int, total: int) -> None:
            progress.total = total
            progress.n = done
            progress.refresh()

        summary = replay(args.bag_in, bag_out, params, topics, args.storage, args.copy_inputs, advance, args.mesh,
                         args.map, args.pose_topic)
        progress.close()
    except (ValueError, OSError) as exc:
        print(f"amodal-depth replay: {exc}", file=sys.stderr)
        return 2
    report = summary.as_dict()
    print(f"{report['frames_out']} of {report['frames_in']} frames processed in {report['seconds']} s -> {bag_out}")
    print(json.dumps(report))
    return 0
