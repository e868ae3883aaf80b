"""Benchmark the pipeline and the node's per-frame overhead; prints a table and writes JSON.

For each resolution and pipeline (geometric stages; learned stages = the default, on its default backend and
on each backend; the learned amodal stages after the geometric segmenter) on the demo's synthetic scene:
per-stage p50/p95 ms and end-to-end frames/s of the pipeline; the node's overhead per frame
(decoding the input messages, building the output messages including the cloud, serialising them
as a publisher does); the completed mesh (~/completed_mesh: grid mesh and Marker bytes) apart; cloud
construction alone against open3d's create_from_rgbd_image on the same frame; peak RSS and, with CUDA,
peak GPU memory. Learned stages run on torch (CUDA with fp16 and CUDA
graphs when present), onnxruntime, and TensorRT where it is installed (timed once the engines are
built; the row is skipped, with the reason, elsewhere). The live row runs the node as a process fed by a
reliable 30 Hz camera with every output subscribed, and gives its output rate beside its own (1000 / mean stage ms).
Without ROS 2 (rclpy cannot be imported) the overhead columns are '-' (null in the JSON), frames/s is the
pipeline's alone and the live row says why it is missing. The default pipeline is also timed on table
tops of 5 and of 40 objects (the cost against the scene) and on folders of real frames (``--real``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TypeAlias, cast

import numpy as np
from tqdm import tqdm

from ..core import RGBDFrame, build_layered_cloud, config, stack_hidden_surfaces
from ..core.types import PipelineResult
from ..groundtruth import GroundTruthFrame
from ..pipeline import AmodalDepthPipeline
from ..synthetic import SyntheticCamera

LEARNED = {"segmentation.method": "learned", "amodal_mask.method": "learned", "amodal_depth.method": "spade"}
GEOMETRIC = {
    "segmentation.method": "geometric",
    "amodal_mask.method": "convex_hull",
    "amodal_depth.method": "plane_fit",
}
PIPELINES = {"geometric": GEOMETRIC, "learned": LEARNED,
             "learned_geometric_segmentation": {**LEARNED, "segmentation.method": "geometric"},
             "learned_torch": {**LEARNED, "inference.backend": "torch"},   # the default is 'auto'
             "learned_onnxruntime": {**LEARNED, "inference.backend": "onnxruntime"},
             "learned_tensorrt": {**LEARNED, "inference.backend": "tensorrt"}}


def unavailable(name: str) -> str:
    """Why pipeline ``name`` cannot be measured here ('' when it can): a TensorRT row that torch serves
    would be mislabelled."""
    if PIPELINES[name].get("inference.backend") != "tensorrt":
        return ""
    from ..runtime import tensorrt_unavailable
    return tensorrt_unavailable()


def wait_for_engines(pipeline: AmodalDepthPipeline) -> None:
    """Time the engines and graphs, not the torch runner serving while they build. Networks whose input
    follows the camera (segmentation, monocular depth) start theirs at the first frame of a resolution."""
    for stage in (pipeline.visible_depth, pipeline.segmentation, pipeline.amodal_mask, pipeline.amodal_depth):
        ready = getattr(getattr(stage, "run", None), "ready", None)
        if ready is not None:
            ready.wait()
        wait = getattr(stage, "wait_ready", None) or getattr(getattr(stage, "backend", None), "wait_ready", None)
        if wait is not None:
            wait(None)


def segmentation_network(resolutions: list[tuple[int, int]], frames: int) -> list[dict]:
    """The segmentation stage alone, split into its parts (input features, network, decoding into
    instances), per resolution and backend: torch, onnxruntime, and TensorRT where it runs (on CUDA in fp16)."""
    from ..learned.segmentation import LearnedSegmenter, decode
    from ..networks.segmentation_net import network_size, segmentation_inputs
    from ..runtime import tensorrt_unavailable

    backends = ["torch", "onnxruntime"] + ([] if tensorrt_unavailable() else ["tensorrt"])
    rows = []
    for backend in backends:
        settings = config.Settings.from_values({"inference.backend": backend})
        seg = settings.segmentation
        stage = LearnedSegmenter(seg, settings.inference)
        for width, height in resolutions:
            camera = SyntheticCamera(0, width, height)
            truth = [camera.frame(i) for i in range(3)]
            size = network_size(width, height, seg.network_size)
            stage(truth[0].to_rgbd_frame(), truth[0].depth)   # first call of this shape starts its graph / engine
            stage.wait_ready(None)
            times: dict[str, list[float]] = {"inputs": [], "network": [], "decode": [], "total": []}
            for i in range(frames):
                frame = truth[i % 3]
                t0 = time.perf_counter()
                x = segmentation_inputs(frame.rgb, frame.depth, frame.intrinsics, size)
                t1 = time.perf_counter()
                logits = stage.run(x[None])[0]
                t2 = time.perf_counter()
                decode(logits, frame.depth, seg.min_core, seg.depth_jump, seg.outline_threshold, seg.min_area,
                       frame.intrinsics, seg.structure_min_area, seg.structure_tolerance)   # as the stage does
                t3 = time.perf_counter()
                for key, value in (("inputs", t1 - t0), ("network", t2 - t1), ("decode", t3 - t2), ("total", t3 - t0)):
                    times[key].append(value * 1e3)
            rows.append({"backend": backend, "status": stage.backend_status, "resolution": f"{width}x{height}",
                         "network_input": f"{size[0]}x{size[1]}", "ms": {k: _ms(v) for k, v in times.items()}})
    return rows


def live_row(seconds: float, size: str) -> dict:
    """The node as a process with the shipped parameters, a reliable 30 Hz camera and every output subscribed (cloud
    and instances too): its output rate beside its own (``ros.stream_probe``); ``unavailable`` says why where ROS 2
    is missing."""
    try:
        import rclpy
        from rclpy.context import Context

        from ..ros import NodeProcess
        from ..ros.process import remap_args
        from ..ros.stream_probe import StreamProbe
        from .demo import config_file, prepare_ros_environment
    except ImportError as exc:
        return {"size": size, "unavailable": f"not measured: {exc}"}
    width, height = (int(v) for v in size.lower().split("x"))
    prepare_ros_environment()
    with tempfile.TemporaryDirectory() as folder:
        node = NodeProcess(["--params-file", str(config_file("amodal_depth.yaml")), *remap_args()],
                           Path(folder) / "node.log")
        context = Context()
        rclpy.init(context=context)
        probe = StreamProbe(width, height, context=context, every_output=True)
        try:
            if not probe.connected(60.0):
                return {"size": size, "unavailable": f"the node did not connect: {node.log_tail()}"}
            probe.stream(3.0, 30.0, 3.0, node.proc.pid)              # warm-up: first frames, caches
            window = probe.stream(seconds, 30.0, seconds, node.proc.pid)[0]
        finally:
            probe.close()
            node.stop()
            rclpy.try_shutdown(context=context)
    return {"size": size, **window.row()}


def scene_rows(counts: list[int], size: tuple[int, int], frames: int) -> list[dict]:
    """The default pipeline on table tops (seeds 0-4) holding each of ``counts`` objects: ms per frame
    p50 / p95, instances found, and each count's p50 against the first count's."""
    from ..synthetic.tabletop import generate_tabletop

    pipeline = AmodalDepthPipeline()
    rows: list[dict] = []
    for count in counts:
        scenes = [generate_tabletop(seed, *size, object_count=count) for seed in range(5)]
        pipeline(scenes[0].to_rgbd_frame())   # warm-up
        wait_for_engines(pipeline)             # the graph of the segmentation's input shape
        times: list[float] = []
        found: list[int] = []
        for i in tqdm(range(frames), desc=f"table top, {count} objects"):
            result = pipeline(scenes[i % len(scenes)].to_rgbd_frame())
            times.append(result.timings_ms["total"])
            found.append(len(result.instances))
        rows.append({"objects": count, "size": f"{size[0]}x{size[1]}", "ms": _ms(times),
                     "instances": round(float(np.mean(found)), 1)})
    for row in rows:
        row["ms_over_first"] = round(row["ms"]["p50"] / rows[0]["ms"]["p50"], 3)
    return rows


def map_row(size: tuple[int, int], frames: int) -> dict:
    """The fused map along a synthetic camera path (room seed 0) at ``size``: ms per frame to integrate the
    visible depth alone and with the hidden layers (p50 / p95), and ms to extract the map's cloud and mesh at
    the end; the blocks allocated."""
    from ..mapping import FusedMap
    from ..synthetic.paths import path_frames, scene_world

    pipeline = AmodalDepthPipeline()
    maps = {"visible_only": FusedMap(), "with_hidden": FusedMap()}
    times: dict[str, list[float]] = {name: [] for name in maps}
    for k, step in enumerate(tqdm(list(path_frames(scene_world("synthetic", 0, *size), frames)), desc="fused map")):
        result = pipeline(step.truth.to_rgbd_frame())
        for name, fused in maps.items():
            t = time.perf_counter()
            fused.integrate_result(result, step.camera_to_world, with_hidden=name == "with_hidden")
            if k:   # the first frame allocates the grids' first blocks
                times[name].append((time.perf_counter() - t) * 1e3)
    fused = maps["with_hidden"]
    t = time.perf_counter()
    points = len(fused.extract().points)
    t1 = time.perf_counter()
    triangles = len(fused.extract_mesh()[1])
    t2 = time.perf_counter()
    return {"size": f"{size[0]}x{size[1]}", "frames": frames, "integrate_ms": {k: _ms(v) for k, v in times.items()},
            "extract_cloud_ms": round((t1 - t) * 1e3, 1), "extract_mesh_ms": round((t2 - t1) * 1e3, 1),
            "points": points, "triangles": triangles, "blocks": list(fused.blocks())}


def real_rows(folders: list[Path], size: tuple[int, int]) -> list[dict]:
    """The default pipeline on real RGB-D frames resized to ``size``: ms per frame p50 / p95 and the
    instances found, per folder and over all of them."""
    import cv2

    from ..datasets import load_rgbd_folder

    pipeline = AmodalDepthPipeline()
    width, height = size
    rows: list[dict] = []
    every: list[float] = []
    for folder in folders:
        times: list[float] = []
        found: list[int] = []
        for sample in tqdm(load_rgbd_folder(folder), desc=folder.name):
            frame = RGBDFrame(cv2.resize(sample.rgb, size, interpolation=cv2.INTER_AREA),
                              sample.intrinsics.scaled(width, height),
                              cv2.resize(sample.depth, size, interpolation=cv2.INTER_NEAREST))
            if not every and not times:
                pipeline(frame)   # warm-up
                wait_for_engines(pipeline)
            result = pipeline(frame)
            times.append(result.timings_ms["total"])
            found.append(len(result.instances))
        every += times
        rows.append({"folder": str(folder), "frames": len(times), "ms": _ms(times),
                     "instances": [min(found), max(found)]})
    if every:
        rows.append({"folder": "all", "frames": len(every), "ms": _ms(every), "instances": None})
    return rows


def live_summary(live: dict) -> str:
    if "unavailable" in live:
        return str(live["unavailable"])
    ratio = "-" if live["output_over_own"] is None else f"{live['output_over_own']:.2f}"
    return (f"{live['output_hz']:.2f} frames/s out against its own {live['own_hz']:.2f} (1000 / mean stage ms): "
            f"{ratio}; delivery {live['delivery']:.3f}; latency p50 {live['latency_p50_ms']:.0f} "
            f"ms, p95 {live['latency_p95_ms']:.0f} ms")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out/bench"), help="output folder (default: out/bench)")
    parser.add_argument("--frames", type=int, default=20, help="timed frames per configuration (default: 20)")
    parser.add_argument("--resolutions", default="320x240,640x480,1280x720", help="WxH list (default: %(default)s)")
    parser.add_argument(
        "--pipelines", default=",".join(PIPELINES), help=f"some of {', '.join(PIPELINES)} (default: all)"
    )
    parser.add_argument("--live-seconds", type=float, default=20.0,
                        help="seconds of the live row: the node as a process, fed at 30 Hz (0 skips it; default 20)")
    parser.add_argument("--live-size", default="640x480", help="WxH of the live row's camera (default: 640x480)")
    parser.add_argument("--scene-objects", default="5,40",
                        help="object counts of the table tops timed with the default pipeline at --scene-size: the "
                             "cost against the scene (empty skips it; default %(default)s)")
    parser.add_argument("--scene-size", default="640x480", help="WxH of those table tops (default: 640x480)")
    parser.add_argument("--real", default="", help="comma-separated folders of real RGB-D frames (any layout "
                        "`amodal-depth eval` reads) timed with the default pipeline at --scene-size")
    parser.add_argument("--map-frames", type=int, default=20,
                        help="frames of a synthetic camera path fused into a map at --scene-size (0 skips it; "
                             "default %(default)s)")
    parser.add_argument("--no-segmentation-network", action="store_true",
                        help="skip the table of the segmentation network alone (features, network, decoding)")


def _ms(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2)}


OVERHEAD_KEYS = ("decode", "build_messages", "serialize", "overhead", "core_overhead", "mesh")
# One timed frame: the OVERHEAD_KEYS in ms (with ROS 2 only), "cloud_stage" in ms, "stages" (the pipeline's
# timings_ms) and "result" (its PipelineResult).
FrameTimes: TypeAlias = dict[str, Any]


def node_overhead(pipeline: AmodalDepthPipeline, frame: GroundTruthFrame, stamp: int) -> FrameTimes:
    """ms to decode the inputs, build every default output message (cloud packing included) and
    serialise it as a publisher does; ``core_overhead`` leaves out the AmodalInstanceArray (depth images,
    camera_info and cloud only: what a depth + rviz consumer subscribes to; the node skips topics
    without subscribers). The completed mesh (built and serialised as one, ~/completed_mesh) is timed apart
    (``mesh``): the overhead figures are those of the outputs the issue targets were set on."""
    try:
        from rclpy.serialization import serialize_message
        from std_msgs.msg import Header

        from ..ros import conversions as conv
        from ..ros.outputs import MESH_TYPES, frame_of, mesh_settings, output_messages, output_topics
        from ..ros.sync import Matched
    except ImportError:   # no ROS 2 here (a bare GPU machine): the pipeline alone, no overhead keys
        result = pipeline(RGBDFrame(frame.rgb, frame.intrinsics, frame.depth, stamp))
        return {"cloud_stage": result.timings_ms["cloud"], "stages": result.timings_ms, "result": result}
    header = Header(stamp=conv.ns_to_stamp(stamp), frame_id="camera_color_optical_frame")
    matched = Matched(conv.rgb_to_image(frame.rgb, header), conv.intrinsics_to_camera_info(frame.intrinsics, header),
                      conv.depth_to_image(frame.depth, header), stamp)
    t0 = time.perf_counter()
    rgbd = frame_of(matched)
    t1 = time.perf_counter()
    result = pipeline(rgbd)
    built, serialized = {}, {}
    t = time.perf_counter()
    output_messages(result, matched, list(MESH_TYPES), mesh=mesh_settings(pipeline.params))   # CDR bytes already
    mesh_ms = (time.perf_counter() - t) * 1e3
    for topic in (t for t in output_topics(pipeline.params) if t not in MESH_TYPES):
        t = time.perf_counter()
        msg = output_messages(result, matched, [topic])[topic]
        built[topic] = time.perf_counter() - t
        t = time.perf_counter()
        serialize_message(msg)
        serialized[topic] = time.perf_counter() - t
    core = [t for t in built if t != "amodal_instances"]
    ms = {"decode": (t1 - t0) * 1e3, "build_messages": sum(built.values()) * 1e3,
          "serialize": sum(serialized.values()) * 1e3}
    ms["overhead"] = ms["decode"] + ms["build_messages"] + ms["serialize"]
    ms["core_overhead"] = ms["decode"] + sum(built[t] + serialized[t] for t in core) * 1e3
    ms["mesh"] = mesh_ms
    return {**ms, "cloud_stage": result.timings_ms["cloud"], "stages": result.timings_ms, "result": result}


def _p50(overhead: dict | None, key: str) -> str:
    """Table cell of an overhead figure: '-' where ROS 2 was not there to measure it."""
    return "-" if overhead is None else f"{overhead[key]['p50']:.1f}"


def cloud_versus_open3d(result: PipelineResult, repeats: int = 5) -> dict[str, float]:
    """Our layered cloud (visible + hidden points) against open3d's RGB-D back-projection (visible only;
    NaN where open3d does not import)."""
    frame, intr = result.frame, result.frame.intrinsics
    hidden = stack_hidden_surfaces(result.instances, frame.shape)
    ours = []
    for _ in range(repeats):
        t = time.perf_counter()
        build_layered_cloud(frame, result.visible_depth, result.segmentation.labels, hidden)
        ours.append((time.perf_counter() - t) * 1e3)
    try:
        import open3d as o3d
    except ImportError:
        return {"ours_ms": round(float(np.median(ours)), 2), "open3d_ms": float("nan")}
    # An ndarray is a buffer; numpy's stubs declare __buffer__ for Python >= 3.12 only.
    color = o3d.geometry.Image(np.ascontiguousarray(frame.rgb))  # type: ignore[call-overload]
    depth = o3d.geometry.Image(np.nan_to_num(result.visible_depth, nan=0.0).astype(np.float32))
    camera = o3d.camera.PinholeCameraIntrinsic(intr.width, intr.height, intr.fx, intr.fy, intr.cx, intr.cy)
    theirs = []
    for _ in range(repeats):
        t = time.perf_counter()
        rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(color, depth, depth_scale=1.0, depth_trunc=1e6,
                                                                  convert_rgb_to_intensity=False)
        o3d.geometry.PointCloud.create_from_rgbd_image(rgbd, camera)
        theirs.append((time.perf_counter() - t) * 1e3)
    return {"ours_ms": round(float(np.median(ours)), 2), "open3d_ms": round(float(np.median(theirs)), 2)}


def run(args: argparse.Namespace) -> int:
    import torch

    from ..ros.allocator import reuse_large_buffers

    reuse_large_buffers()   # as the node does

    resolutions = cast(list[tuple[int, int]],   # WxH: two numbers each, unpacked as such below
                       [tuple(int(v) for v in r.split("x")) for r in args.resolutions.split(",") if r])
    names = [p for p in args.pipelines.split(",") if p]
    if set(names) - set(PIPELINES):
        print(f"amodal-depth bench: unknown pipelines {sorted(set(names) - set(PIPELINES))}; "
              f"choose from {', '.join(PIPELINES)}", file=sys.stderr)
        return 2
    rows, skipped = [], {}
    for name in names:
        if unavailable(name):
            skipped[name] = unavailable(name)
            print(f"{name}: not measured: {skipped[name]}")
            continue
        pipeline = AmodalDepthPipeline(PIPELINES[name])
        wait_for_engines(pipeline)
        for width, height in resolutions:
            camera = SyntheticCamera(0, width, height)
            frames = [camera.frame(i) for i in range(5)]
            node_overhead(pipeline, frames[0], 0)   # warm-up: caches, thread pools, first torch call
            wait_for_engines(pipeline)               # graphs of this resolution
            runs: list[FrameTimes] = []
            for i in tqdm(range(args.frames), desc=f"{name} {width}x{height}"):
                if runs:
                    runs[-1].pop("result")   # keep one result alive, as the node does
                runs.append(node_overhead(pipeline, frames[i % 5], i))
            stages = {k: _ms([r["stages"][k] for r in runs]) for k in runs[0]["stages"]}
            with_ros = "overhead" in runs[0]
            totals = [r["stages"]["total"] + r.get("overhead", 0.0) for r in runs]
            rows.append({"pipeline": name, "resolution": f"{width}x{height}", "stages_ms": stages,
                         # None without ROS 2: the node's messages cannot be built here.
                         "overhead_ms": {k: _ms([r[k] for r in runs]) for k in OVERHEAD_KEYS} if with_ros else None,
                         "frames_per_s": round(1e3 / float(np.mean(totals)), 2),
                         "cloud_vs_open3d": cloud_versus_open3d(runs[-1]["result"])})
    segmentation = [] if args.no_segmentation_network else segmentation_network(resolutions, args.frames)
    scene_size = cast(tuple[int, int], tuple(int(v) for v in args.scene_size.lower().split("x")))
    scenes = scene_rows([int(c) for c in args.scene_objects.split(",") if c], scene_size, args.frames) \
        if args.scene_objects else []
    real = real_rows([Path(f) for f in args.real.split(",") if f], scene_size)
    fused_map = map_row(scene_size, args.map_frames) if args.map_frames > 1 else None
    live = live_row(args.live_seconds, args.live_size) if args.live_seconds > 0 else None
    memory = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None}
    width = max([len("pipeline")] + [len(r["pipeline"]) for r in rows])
    print(f"{'pipeline':{width}s} {'size':>9s} {'fps':>6s} {'pipe p50':>9s} {'p95':>7s} {'seg p50':>8s} "
          f"{'overhead p50':>13s} {'w/o instances':>14s} {'cloud ms':>9s} {'open3d ms':>10s} {'mesh ms':>8s}")
    for r in rows:
        print(f"{r['pipeline']:{width}s} {r['resolution']:>9s} {r['frames_per_s']:6.2f} "
              f"{r['stages_ms']['total']['p50']:9.1f} "
              f"{r['stages_ms']['total']['p95']:7.1f} {r['stages_ms']['segmentation']['p50']:8.1f} "
              f"{_p50(r['overhead_ms'], 'overhead'):>13s} {_p50(r['overhead_ms'], 'core_overhead'):>14s} "
              f"{r['cloud_vs_open3d']['ours_ms']:9.1f} {r['cloud_vs_open3d']['open3d_ms']:10.1f} "
              f"{_p50(r['overhead_ms'], 'mesh'):>8s}")
    if segmentation:
        print(f"\n{'segmentation network':28s} {'size':>9s} {'input':>8s} {'features':>9s} {'network':>8s} "
              f"{'decode':>7s} {'total p50':>10s} {'p95':>6s}")
        for r in segmentation:
            ms = r["ms"]
            print(f"{r['status'][:28]:28s} {r['resolution']:>9s} {r['network_input']:>8s} {ms['inputs']['p50']:9.1f} "
                  f"{ms['network']['p50']:8.1f} {ms['decode']['p50']:7.1f} {ms['total']['p50']:10.1f} "
                  f"{ms['total']['p95']:6.1f}")
    if scenes:
        print(f"\n{'default pipeline on table tops':31s} {'size':>9s} {'instances':>9s} {'p50 ms':>7s} {'p95 ms':>7s} "
              f"{'p50 / first':>11s}")
        for r in scenes:
            print(f"{str(r['objects']) + ' objects':31s} {r['size']:>9s} {r['instances']:9.1f} {r['ms']['p50']:7.1f} "
                  f"{r['ms']['p95']:7.1f} {r['ms_over_first']:11.3f}")
    if real:
        print(f"\n{'default pipeline on real frames':31s} {'frames':>6s} {'instances':>9s} {'p50 ms':>7s} "
              f"{'p95 ms':>7s}  (resized to {args.scene_size})")
        for r in real:
            found = "-" if r["instances"] is None else f"{r['instances'][0]}-{r['instances'][1]}"
            print(f"{Path(r['folder']).name[:31]:31s} {r['frames']:6d} {found:>9s} {r['ms']['p50']:7.1f} "
                  f"{r['ms']['p95']:7.1f}")
    if fused_map is not None:
        ms = fused_map["integrate_ms"]
        print(f"\nfused map ({fused_map['size']}, {fused_map['frames']} frames of a camera path): integrate p50 / p95 "
              f"{ms['visible_only']['p50']:.1f} / {ms['visible_only']['p95']:.1f} ms visible only, "
              f"{ms['with_hidden']['p50']:.1f} / {ms['with_hidden']['p95']:.1f} ms with the hidden layers; extract "
              f"{fused_map['extract_cloud_ms']:.0f} ms cloud ({fused_map['points']} points), "
              f"{fused_map['extract_mesh_ms']:.0f} ms mesh ({fused_map['triangles']} triangles)")
    if live is not None:
        print(f"\nlive node ({live['size']}, 30 Hz in, every output subscribed): " + live_summary(live))
    print(f"peak RSS {memory['peak_rss_mb']} MB; peak GPU memory {memory['peak_gpu_mb']} MB; "
          f"torch device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": platform.platform(), "cpus": os.cpu_count(),
              "torch_device": "cuda" if torch.cuda.is_available() else "cpu", "rows": rows, "skipped": skipped,
              "segmentation_network": segmentation, "scenes": scenes, "real": real, "map": fused_map, "live": live,
              **memory}
    (args.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0
