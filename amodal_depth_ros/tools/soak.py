"""Soak the node: stream RGB-D at 30 Hz into it for N minutes and report each minute (a benchmark command).

A synthetic 640x480 camera is published reliable (depth 10, the middleware's defaults, as most drivers
start) into a node started here, with one viewer on amodal_depth/image. Each minute prints delivery
(images the node received / published; the others were superseded in its input queue while it was busy,
counted), output frames/s against the node's own rate (1000 / its mean stage ms), latency from publication
to the viewer (p50/p95), and the node's RSS and CPU; the JSON (``--out``) adds the RSS growth after the
first minute, the latency trend (first third against last) and the images not accounted for (0 expected).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import rclpy

from ..ros import NodeProcess
from ..ros.process import remap_args
from ..ros.stream_probe import StreamProbe, Window
from .demo import PROFILE_VARS, config_file, prepare_ros_environment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to stream (default: 10)")
    parser.add_argument("--rate", type=float, default=30.0, help="camera frames/s (default: 30)")
    parser.add_argument("--size", default="640x480", help="WxH of the camera (default: 640x480)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds per reported row (default: 60)")
    parser.add_argument("--params", type=Path, default=None, help="node parameter file (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=Path("out/soak.json"), help="JSON report (default: out/soak.json)")


def summary(rows: list[dict]) -> dict:
    """RSS growth after the first window and the latency trend, from the rows."""
    third = max(len(rows) // 3, 1)
    first, last = rows[:third], rows[-third:]
    return {"rss_first_mb": rows[0]["rss_mb"], "rss_last_mb": rows[-1]["rss_mb"],
            "rss_growth_after_first": round(rows[-1]["rss_mb"] / rows[0]["rss_mb"] - 1.0, 4),
            "latency_p50_first_third_ms": round(float(np.mean([r["latency_p50_ms"] for r in first])), 1),
            "latency_p50_last_third_ms": round(float(np.mean([r["latency_p50_ms"] for r in last])), 1),
            "delivery": round(sum(r["delivered"] for r in rows) / max(sum(r["published"] for r in rows), 1), 4),
            # The node's promise to a reliable driver: each image received or superseded in its input queue.
            "superseded_in_queue": sum(r["superseded_in_queue"] for r in rows),
            "unaccounted": sum(r["published"] - r["delivered"] - r["superseded_in_queue"] for r in rows),
            "output_hz": round(float(np.mean([r["output_hz"] for r in rows])), 2),
            "own_hz": round(float(np.nanmean([r["own_hz"] for r in rows])), 2)}


def run(args: argparse.Namespace) -> int:
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"amodal-depth soak: --size must be WxH, got {args.size!r}", file=sys.stderr)
        return 2
    user_profile = any(os.environ.get(var) for var in PROFILE_VARS)
    prepare_ros_environment()   # the node gets the large-data Fast DDS profile, as the launch file gives it
    log = args.out.with_suffix(".node.log")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    params = args.params or config_file("amodal_depth.yaml")
    node = NodeProcess(["--params-file", str(params), "-p", "diagnostics.period:=1.0", *remap_args()], log)
    if not user_profile:   # the camera side keeps the middleware's defaults, as most drivers do
        os.environ.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    rclpy.init()
    probe = StreamProbe(width, height)
    rows: list[dict] = []

    def report(window: Window) -> None:
        row = window.row()
        rows.append(row)
        elapsed = sum(r["seconds"] for r in rows)
        print(f"{elapsed / 60:5.1f} min: delivery {row['delivery']:.3f} (superseded in queue "
              f"{row['superseded_in_queue']})  out {row['output_hz']:5.2f} Hz "
              f"(own {row['own_hz']:5.2f})  latency p50 {row['latency_p50_ms']:6.1f} "
              f"p95 {row['latency_p95_ms']:6.1f} ms"
              f"  RSS {row['rss_mb']:6.1f} MB  CPU {row['cpu_percent']:5.1f} %", flush=True)

    try:
        if not probe.connected(60.0):
            print(f"amodal-depth soak: the node did not connect; its log: {log}", file=sys.stderr)
            return 1
        probe.stream(args.minutes * 60.0, args.rate, args.window, node.proc.pid, report)
    finally:
        probe.close()
        node.stop()
        rclpy.try_shutdown()
    result = {"size": [width, height], "rate_hz": args.rate, "minutes": args.minutes, "rows": rows,
              "summary": summary(rows)}
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["summary"]))
    return 0
