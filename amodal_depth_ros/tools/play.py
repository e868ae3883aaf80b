"""Play a bag into the node at the recorded rate and record what it publishes (live replay).

What `ros2 bag play IN` + `ros2 bag record` do on a ROS machine, without one. With --start-node the
node is started here (parameters from --params, remapped onto the bag's topics, output namespace
/amodal); otherwise a running node must subscribe to the bag's topic names (remap it) and publish in
--namespace. OUT gets the outputs at their header stamps; compare with `amodal-depth replay` of IN.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import rclpy
from tqdm import tqdm

from ..ros import LiveReplay, NodeProcess
from ..ros.replay import ReplayTopics
from .demo import config_file, prepare_ros_environment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ReplayTopics()
    parser.add_argument("bag_in", type=Path, metavar="IN", help="input bag")
    parser.add_argument("bag_out", type=Path, metavar="OUT", help="bag to record the node's outputs in")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default: 1.0)")
    parser.add_argument("--start-node", action="store_true", help="start amodal_depth_node for the replay")
    parser.add_argument("--params", type=Path, default=None, help="node parameter file for --start-node")
    parser.add_argument("--image-topic", default=d.image, help=f"(default: {d.image})")
    parser.add_argument("--camera-info-topic", default=d.camera_info, help=f"(default: {d.camera_info})")
    parser.add_argument("--depth-topic", default=d.depth, help=f"(default: {d.depth}; '' for none)")
    parser.add_argument(
        "--namespace", default=d.output_namespace, help=f"node namespace (default: {d.output_namespace})"
    )
    parser.add_argument("--clock", action="store_true",
                        help="publish the bag's time on /clock (for a node started with use_sim_time:=true)")
    parser.add_argument("--use-sim-time", action="store_true",
                        help="with --start-node: start it with use_sim_time:=true (implies --clock)")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds to keep recording after the bag ends")
    parser.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to wait for the node")


def run(args: argparse.Namespace) -> int:
    if args.rate <= 0:
        print("amodal-depth play: --rate must be positive", file=sys.stderr)
        return 2
    if args.bag_out.exists():
        print(f"amodal-depth play: {args.bag_out} exists; choose another OUT", file=sys.stderr)
        return 2
    topics = ReplayTopics(args.image_topic, args.camera_info_topic, args.depth_topic or None, args.namespace)
    node = None
    if args.start_node:
        prepare_ros_environment()
        remaps = [f"__ns:={args.namespace}", f"image:={topics.image}", f"camera_info:={topics.camera_info}"]
        remaps += [f"depth:={topics.depth}"] if topics.depth else []
        ros_args = ["--params-file", str(args.params or config_file("amodal_depth.yaml"))]
        ros_args += ["-p", "use_depth:=false"] if not topics.depth else []
        ros_args += ["-p", "use_sim_time:=true"] if args.use_sim_time else []
        log = Path(tempfile.gettempdir()) / "amodal_depth_play_node.log"
        node = NodeProcess(ros_args + [a for r in remaps for a in ("-r", r)], log)
    context = rclpy.Context()   # our own: callers (tests, tools) may hold the default context
    rclpy.init(args=[], context=context)
    player = None
    try:
        player = LiveReplay(args.bag_in, args.bag_out, topics, context=context,
                            clock=args.clock or args.use_sim_time)
        if not player.wait_connected(args.connect_timeout):
            why = f"; node log: {node.log_tail(5)}" if node else ""
            print(f"amodal-depth play: no node subscribed to {player.inputs} and publishing in {args.namespace} "
                  f"within {args.connect_timeout} s{why}", file=sys.stderr)
            return 1
        progress = tqdm(desc="playing", unit="frame")
        summary = player.play(args.rate, args.drain, lambda n: progress.update(1))
        progress.close()
    except ValueError as exc:
        print(f"amodal-depth play: {exc}", file=sys.stderr)
        return 2
    finally:
        if player is not None:
            player.close()
        rclpy.try_shutdown(context=context)
        if node is not None:
            node.stop()
    report = summary.as_dict()
    print(f"{report['complete_frames']} of {report['frames_played']} frames recorded complete -> {args.bag_out}")
    print(json.dumps(report))
    return 0
