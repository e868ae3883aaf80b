"""Every tunable of the node and the pipeline, declared once.

The ROS node declares these as parameters (with descriptions and ranges), config/amodal_depth.yaml
lists them, and the offline tools read the same YAML: one table, no second copy of defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Value = bool | int | float | str


@dataclass(frozen=True)
class ParamSpec:
    name: str                       # ROS parameter name; dots group related parameters
    default: Value
    description: str
    low: float | None = None        # inclusive range for numbers
    high: float | None = None
    choices: tuple[str, ...] = ()   # allowed values for strings

    def validate(self, value: Any) -> Value:
        """Return ``value`` coerced to the spec's type, or raise ValueError saying what is wrong."""
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not kind:
            raise ValueError(f"parameter '{self.name}' must be {kind.__name__}, got {value!r} ({type(value).__name__})")
        if self.choices and value not in self.choices:
            raise ValueError(f"parameter '{self.name}' must be one of {list(self.choices)}, got {value!r}")
        if kind in (int, float):
            if value != value:  # NaN
                raise ValueError(f"parameter '{self.name}' must be a number, got NaN")
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                raise ValueError(f"parameter '{self.name}' must be in [{self.low}, {self.high}], got {value}")
        return value


PARAMS: tuple[ParamSpec, ...] = (
    # Inputs and synchronisation.
    ParamSpec("use_depth", True,
              "Subscribe to an aligned depth image (RGB-D camera). False: visible depth must come from a monocular "
              "model."),
    ParamSpec("sync.slop", 0.02,
              "Largest stamp difference (s) between image, depth and camera_info that still counts as one frame.",
              0.0, 1.0),
    ParamSpec("sync.camera_info_use_latest", False,
              "Pair each image with the newest camera_info whatever its stamp (for drivers that stamp camera_info "
              "with 'now')."),
    ParamSpec("sync.queue_size", 10, "Messages kept per input topic while waiting for their partners.", 1, 100),
    # Outputs.
    ParamSpec("output.queue_depth", 2,
              "History depth of the (reliable) publishers; small so that slow subscribers never build a backlog.",
              1, 100),
    ParamSpec("output.cloud_stride", 1,
              "Keep every n-th pixel in both directions in the completed point cloud.", 1, 16),
    ParamSpec("output.publish_instances", True,
              "Publish the AmodalInstanceArray with per-instance masks and hidden depth."),
    ParamSpec("output.colorized", False,
              "Also publish visible_depth/colorized and amodal_depth/colorized (rgb8, turbo colour map) for quick "
              "viewing."),
    ParamSpec("output.colorize_min", 0.3, "Depth (m) shown as the first colour of the colorized images.", 0.0, 100.0),
    ParamSpec("output.colorize_max", 5.0, "Depth (m) shown as the last colour of the colorized images.", 0.01, 1000.0),
    ParamSpec("diagnostics.period", 1.0, "Seconds between /diagnostics messages.", 0.1, 60.0),
    ParamSpec("diagnostics.log_throttle", 5.0,
              "Seconds between repeated log lines about the same kind of bad input.", 0.0, 3600.0),
    # Visible depth.
    ParamSpec("visible_depth.source", "topic",
              "Where visible depth comes from: 'topic' = the aligned depth image (needs use_depth: true); 'monocular'"
              " = a Depth Anything V2 network run on the colour image (monocular.* parameters), for cameras without "
              "depth or to fill the depth image's holes.", choices=("topic", "monocular")),
    ParamSpec("visible_depth.min_depth", 0.1,
              "Depth readings nearer than this (m) are treated as unknown.", 0.0, 100.0),
    ParamSpec("visible_depth.max_depth", 10.0,
              "Depth readings farther than this (m) are treated as unknown.", 0.1, 1000.0),
    ParamSpec("monocular.checkpoint", "",
              "Depth Anything V2 weights file (.pth, official layout) used when visible_depth.source is 'monocular'. "
              "Nothing is downloaded: get the checkpoint yourself (e.g. depth_anything_v2_vits.pth, or "
              "depth_anything_v2_metric_hypersim_vits.pth for metric indoor depth). A file that cannot be loaded "
              "stops the node at startup."),
    ParamSpec("monocular.encoder", "",
              "Encoder size of monocular.checkpoint: '' = inferred from the checkpoint's tensor shapes; 'vits', "
              "'vitb' or 'vitl' = required size (a checkpoint of another size is refused).",
              choices=("", "vits", "vitb", "vitl")),
    ParamSpec("monocular.metric_max_depth", 0.0,
              "0 = monocular.checkpoint is a relative model (inverse depth up to scale and shift, aligned to the "
              "depth topic on every frame, so it needs use_depth: true); > 0 = it is a metric model predicting metres"
              " up to this depth: 20 for the indoor (Hypersim) checkpoints, 80 for the outdoor (Virtual KITTI) ones.",
              0.0, 1000.0),
    ParamSpec("monocular.input_size", 518,
              "Pixels: the image is resized so that its short side is about this long (a multiple of 14) before the "
              "network; smaller is faster and coarser (518 = the size the models were trained at).", 140, 1540),
    ParamSpec("monocular.fill_only", True,
              "With a depth topic: true = keep the sensor's reading where it is valid (within visible_depth.min_depth"
              " / max_depth) and use the network only for the holes; false = use the network's depth everywhere (a "
              "relative model still aligned to the sensor). Without a depth topic the network's depth is used "
              "everywhere."),
    # Segmentation.
    ParamSpec("segmentation.method", "geometric",
              "Instance segmentation: 'learned' = the RGB-D segmentation network (shipped weights): instance "
              "outlines, room structure and who is in front at each outline, from depth first and colour second; "
              "'geometric' = training-free, class-agnostic, from depth discontinuities, concave creases and colour "
              "edges (also the fallback when the network cannot be loaded).", choices=("learned", "geometric")),
    ParamSpec("segmentation.weights", "",
              "Weights file of the segmentation network ('learned'); empty = the weights shipped with the package."),
    ParamSpec("segmentation.network_size", 320,
              "'learned' only: pixels of the long side of the network's input (a multiple of 16; images are never "
              "enlarged); masks come back at full resolution. Larger finds smaller objects and costs more.", 64, 1280),
    ParamSpec("segmentation.min_core", 6,
              "'learned' only: smallest instance core (pixels at the network's resolution inside an outline); smaller"
              " regions join their neighbours.", 1, 10000),
    ParamSpec("segmentation.outline_threshold", 0.3,
              "'learned' only: outline probability above which a pixel separates instances; lower cuts more (real "
              "sensors' outlines are fainter than rendered ones).", 0.05, 0.95),
    ParamSpec("segmentation.depth_jump", 0.04,
              "Relative depth step between neighbouring pixels that separates two surfaces (0.04 = 4 cm at 1 m).",
              0.001, 1.0),
    ParamSpec("segmentation.concavity", 0.01,
              "'geometric' only: relative second difference of inverse depth above which a concave crease (object "
              "standing on a surface, wall corner) separates segments.", 0.0005, 1.0),
    ParamSpec("segmentation.crease_scale", 3,
              "'geometric' only: pixel offset at which creases are measured; larger is more robust to sensor noise.",
              1, 15),
    ParamSpec("segmentation.color_edge", 120.0,
              "'geometric' only: colour gradient magnitude (0-255 scale) that separates segments where depth is "
              "continuous; 0 disables colour edges.", 0.0, 1000.0),
    ParamSpec("segmentation.min_area", 0.002,
              "'geometric' only: smallest segment as a fraction of the image area; smaller ones merge into neighbours"
              " or are dropped.", 0.0, 0.5),
    # Occlusion order.
    ParamSpec("occlusion.min_boundary", 8,
              "Boundary pixel pairs needed before one instance is said to occlude another.", 1, 100000),
    # Amodal completion.
    ParamSpec("amodal_mask.method", "learned",
              "Amodal mask completion: 'learned' = the amodal mask network (shipped weights), instances peeled front "
              "to back; 'convex_hull' = visible mask plus the part of its convex hull covered by instances in front "
              "(faster on a CPU; also the fallback when learned weights cannot be loaded).",
              choices=("learned", "convex_hull")),
    ParamSpec("amodal_mask.weights", "",
              "Weights file of the amodal mask network; empty = the weights shipped with the package."),
    ParamSpec("amodal_mask.threshold", 0.3,
              "'learned' only: probability above which a pixel under an occluder becomes hidden part of the instance "
              "behind. 0.3 gives the best occluded-part IoU end to end (0.5: 9 % less hidden surface found); lower "
              "finds more and is less precise.", 0.01, 0.99),
    ParamSpec("amodal_depth.method", "spade",
              "Hidden-surface depth: 'spade' = the SPADE amodal depth network (shipped weights), instances peeled "
              "front to back, aligned to the observed depth by scale and shift on the visible part; 'plane_fit' = "
              "weighted plane fitted to the visible surface near the occlusion, extrapolated (faster on a CPU; also "
              "the fallback when learned weights cannot be loaded); 'nearest' = depth of the nearest visible pixel; "
              "'telea' = OpenCV Telea inpainting of the visible depth (the last two are evaluation baselines).",
              choices=("spade", "plane_fit", "nearest", "telea")),
    ParamSpec("amodal_depth.weights", "",
              "Weights file of the SPADE amodal depth network; empty = the weights shipped with the package."),
    ParamSpec("inference.device", "auto",
              "Where the networks run: 'auto' = CUDA when available, else CPU.", choices=("auto", "cpu", "cuda")),
    ParamSpec("inference.backend", "torch",
              "How the networks run (the monocular depth network and the learned amodal ones): 'torch' (the amodal "
              "networks on CUDA as CUDA graphs); 'onnxruntime' (exported once per weights file to a static-shape ONNX"
              " graph in the user cache: a fixed batch for the amodal networks, the camera's resolution for the "
              "monocular one, whose graph is exported in the background at the first frame while torch serves; on "
              "CUDA its TensorRT and CUDA providers when onnxruntime-gpu is installed, else the CPU); 'tensorrt' (a "
              "TensorRT 10 engine built from that graph and cached per GPU; torch serves while it builds, and for "
              "good without tensorrt or CUDA, reported as a fallback).", choices=("torch", "onnxruntime", "tensorrt")),
    ParamSpec("inference.precision", "fp16",
              "Precision of the networks (monocular depth and learned amodal) on CUDA and TensorRT: 'fp16' "
              "(normalisation, softmax and reductions stay fp32 in TensorRT engines) or 'fp32'. The CPU always runs "
              "fp32.", choices=("fp32", "fp16")),
    ParamSpec("amodal_depth.planar_tolerance", 0.005,
              "'spade' only: an instance whose visible surface is a plane (90 % of its pixels within this relative "
              "distance of one) and that covers at least amodal_depth.planar_min_area of the image (a wall, a floor) "
              "is extended as that plane ('plane_fit') instead of by the network, whose 48-pixel crop of it is too "
              "coarse; 0 disables.", 0.0, 0.1),
    ParamSpec("amodal_depth.planar_min_area", 0.05,
              "'spade' only: smallest visible part, as a fraction of the image, of an instance extended as a plane "
              "(see amodal_depth.planar_tolerance).", 0.0, 1.0),
    ParamSpec("amodal_depth.boundary_band", 25.0,
              "Pixels: visible points this close to the hidden part dominate the fit.", 1.0, 1000.0),
    ParamSpec("amodal_depth.inpaint_radius", 5.0,
              "Pixels: neighbourhood of Telea inpainting ('telea' only).", 1.0, 100.0),
    ParamSpec("amodal_depth.min_gap", 0.01,
              "A hidden surface lies at least this far (m) behind the surface that hides it.", 0.0, 10.0),
)

SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMS}


def defaults() -> dict[str, Value]:
    return {spec.name: spec.default for spec in PARAMS}


def validated(values: dict[str, Any]) -> dict[str, Value]:
    """Defaults overridden by ``values``; unknown names and bad values raise ValueError."""
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(unknown)} (known: {', '.join(SPECS)})")
    merged = defaults()
    for name, value in values.items():
        merged[name] = SPECS[name].validate(value)
    if merged["visible_depth.source"] == "topic" and not merged["use_depth"]:
        raise ValueError("visible_depth.source 'topic' needs use_depth: true; "
                         "use visible_depth.source: monocular for cameras without depth")
    if merged["visible_depth.source"] == "monocular":
        if not merged["monocular.checkpoint"]:
            raise ValueError("visible_depth.source 'monocular' needs monocular.checkpoint: the path of a "
                             "Depth Anything V2 .pth file (nothing is downloaded)")
        if not merged["use_depth"] and merged["monocular.metric_max_depth"] == 0.0:
            raise ValueError("use_depth: false with a relative monocular model (monocular.metric_max_depth: 0) has no "
                             "metric scale: use a metric checkpoint and set monocular.metric_max_depth (20 indoor, "
                             "80 outdoor), or set use_depth: true so the relative depth is aligned to the depth topic")
    return merged


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def load_params_file(path: str | Path, node_name: str = "amodal_depth_node") -> dict[str, Value]:
    """Read a ROS 2 params file (``<node or /**>: ros__parameters: {...}``) into validated values."""
    tree = yaml.safe_load(Path(path).read_text()) or {}
    values: dict[str, Any] = {}
    for key in ("/**", node_name, f"/{node_name}"):
        section = tree.get(key, {})
        values.update(_flatten(section.get("ros__parameters", {})))
    return validated(values)
