"""Every tunable of the node and the pipeline, declared once.

The ROS node declares these as parameters (with descriptions and ranges), config/amodal_depth.yaml
lists them, and the offline tools read the same YAML: one table, no second copy of defaults. Each entry
says how a change applies (``change``): read-only for the node's life, live (the running stages take the new
value at the next frame), or by rebuilding the pipeline (networks and weights are loaded anew). Stages take
their group of the table as a typed, frozen settings object (``Settings``), never the string-keyed dict.
"""
from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_type_hints

import yaml

from ..errors import ConfigError

Value = bool | int | float | str
Change = Literal["read_only", "live", "rebuild"]
READ_ONLY: Change = "read_only"   # fixed for the node's life: subscriptions, publishers, timers depend on it
LIVE: Change = "live"             # the running stages take it at the next frame, nothing is rebuilt
REBUILD: Change = "rebuild"       # a new pipeline is prepared (networks loaded) and swapped in


@dataclass(frozen=True)
class ParamSpec:
    name: str                       # ROS parameter name; dots group related parameters
    default: Value
    description: str
    low: float | None = None        # inclusive range for numbers
    high: float | None = None
    choices: tuple[str, ...] = ()   # allowed values for strings
    change: Change = REBUILD        # how a change at run time applies

    def validate(self, value: Any) -> Value:
        """Return ``value`` coerced to the spec's type, or raise ConfigError (a ValueError) saying what is wrong."""
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not kind:
            raise ConfigError(
                f"parameter '{self.name}' must be {kind.__name__}, got {value!r} ({type(value).__name__})")
        if self.choices and value not in self.choices:
            raise ConfigError(f"parameter '{self.name}' must be one of {list(self.choices)}, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value:  # NaN
                raise ConfigError(f"parameter '{self.name}' must be a number, got NaN")
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                raise ConfigError(f"parameter '{self.name}' must be in [{self.low}, {self.high}], got {value}")
        return value


PARAMS: tuple[ParamSpec, ...] = (
    # Inputs and synchronisation.
    ParamSpec("use_depth", True,
              "Subscribe to an aligned depth image (RGB-D camera). False: visible depth must come from a monocular "
              "model.", change=READ_ONLY),
    ParamSpec("sync.slop", 0.02,
              "Largest stamp difference (s) between image, depth and camera_info that still counts as one frame.",
              0.0, 1.0, change=LIVE),
    ParamSpec("sync.camera_info_use_latest", False,
              "Pair each image with the newest camera_info whatever its stamp (for drivers that stamp camera_info "
              "with 'now').", change=LIVE),
    ParamSpec("sync.queue_size", 10, "Messages kept per input topic while waiting for their partners.",
              1, 100, change=READ_ONLY),
    # Outputs.
    ParamSpec("output.queue_depth", 2,
              "History depth of the (reliable) publishers; small so that slow subscribers never build a backlog.",
              1, 100, change=READ_ONLY),
    ParamSpec("output.cloud_stride", 1,
              "Keep every n-th pixel in both directions in the completed point cloud.", 1, 16, change=LIVE),
    ParamSpec("output.mesh_stride", 4,
              "Pixels between the grid points of the completed mesh (~/completed_mesh, replay's .ply files): the "
              "visible surface and each hidden layer triangulated on this grid (4: about 50k triangles at 640x480).",
              1, 64,
              change=LIVE),
    ParamSpec("output.mesh_depth_jump", 0.05,
              "Relative depth step between neighbouring grid points above which the completed mesh is cut (an "
              "occlusion edge, not a surface).", 0.001, 1.0, change=LIVE),
    ParamSpec("output.publish_mesh", True,
              "Publish ~/completed_mesh, a visualization_msgs/Marker TRIANGLE_LIST of the visible surface and the "
              "hidden layers (built only while it has a subscriber).", change=READ_ONLY),
    ParamSpec("output.publish_instances", True,
              "Publish the AmodalInstanceArray with per-instance masks and hidden depth.", change=READ_ONLY),
    ParamSpec("output.colorized", False,
              "Also publish visible_depth/colorized and amodal_depth/colorized (rgb8, turbo colour map) for quick "
              "viewing.", change=READ_ONLY),
    ParamSpec("output.colorize_min", 0.3, "Depth (m) shown as the first colour of the colorized images.",
              0.0, 100.0, change=LIVE),
    ParamSpec("output.colorize_max", 5.0, "Depth (m) shown as the last colour of the colorized images.",
              0.01, 1000.0, change=LIVE),
    ParamSpec("map.enabled", False,
              "Fuse every processed frame, visible and hidden surfaces, into a map (Open3D voxel block grids; "
              "predictions weigh less than observations and observations clear them) and publish ~/map_points "
              "(x, y, z, rgb, layer 0 observed / 1 predicted) every map.publish_period seconds while it has a "
              "subscriber. Costs ~15 ms a frame.", change=READ_ONLY),
    ParamSpec("map.pose_topic", "",
              "geometry_msgs/PoseStamped of the camera's optical frame in the map frame (their header's frame), the "
              "one nearest each frame within sync.slop; empty: a fixed camera, the map in its optical frame. Frames "
              "without a usable pose are counted in /diagnostics and not fused.", change=READ_ONLY),
    ParamSpec("map.voxel_size", 0.02, "Map voxel edge (m); the truncation distance is three voxels.", 0.005, 0.5,
              change=READ_ONLY),
    ParamSpec("map.max_blocks", 8000,
              "Most voxel blocks (8^3 voxels, 20 bytes each) per grid, observed and predicted: the map's memory "
              "bound. At the limit no new block is allocated; /diagnostics counts the refused ones.", 100, 1000000,
              change=READ_ONLY),
    ParamSpec("map.hidden_weight", 0.2,
              "Weight of a predicted surface against an observation: one look through or onto a prediction undoes "
              "1 / hidden_weight frames of it.", 0.01, 1.0, change=READ_ONLY),
    ParamSpec("map.publish_period", 1.0, "Seconds between ~/map_points messages.", 0.1, 60.0, change=READ_ONLY),
    ParamSpec("diagnostics.period", 1.0, "Seconds between /diagnostics messages.", 0.1, 60.0, change=READ_ONLY),
    ParamSpec("diagnostics.log_throttle", 5.0,
              "Seconds between repeated log lines about the same kind of bad input.", 0.0, 3600.0, change=LIVE),
    ParamSpec("diagnostics.stale_after", 2.0,
              "Seconds without a message on an input that has delivered before, after which the diagnostics turn "
              "WARN naming the stale input (a stopped driver, an unplugged camera).", 0.1, 3600.0, change=LIVE),
    # Visible depth.
    ParamSpec("visible_depth.source", "topic",
              "Where visible depth comes from: 'topic' = the aligned depth image (needs use_depth: true); 'monocular'"
              " = a Depth Anything V2 network run on the colour image (monocular.* parameters), for cameras without "
              "depth or to fill the depth image's holes.", choices=("topic", "monocular")),
    ParamSpec("visible_depth.min_depth", 0.1,
              "Depth readings nearer than this (m) are treated as unknown.", 0.0, 100.0, change=LIVE),
    ParamSpec("visible_depth.max_depth", 10.0,
              "Depth readings farther than this (m) are treated as unknown.", 0.1, 1000.0, change=LIVE),
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
    ParamSpec("segmentation.method", "learned",
              "Instance segmentation: 'learned' = the RGB-D segmentation network (shipped weights): instance "
              "outlines, room structure and who is in front at each outline, from depth first and colour second; "
              "'geometric' = training-free, class-agnostic, from depth discontinuities, concave creases and colour "
              "edges (also the fallback when the network cannot be loaded).", choices=("learned", "geometric")),
    ParamSpec("segmentation.weights", "",
              "Weights file of the segmentation network ('learned'); empty = the weights shipped with the package."),
    ParamSpec("segmentation.network_size", 320,
              "'learned' only: pixels of the long side of the network's input (a multiple of 16; images are never "
              "enlarged); masks come back at full resolution. Larger finds smaller objects and costs more.",
              64, 1280, change=LIVE),
    ParamSpec("segmentation.min_core", 6,
              "'learned' only: smallest instance core (pixels at the network's resolution inside an outline); smaller"
              " regions join their neighbours.", 1, 10000, change=LIVE),
    ParamSpec("segmentation.outline_threshold", 0.3,
              "'learned' only: outline probability above which a pixel separates instances; lower cuts more (real "
              "sensors' outlines are fainter than rendered ones).", 0.05, 0.95, change=LIVE),
    ParamSpec("segmentation.depth_jump", 0.04,
              "Relative depth step between neighbouring pixels that separates two surfaces (0.04 = 4 cm at 1 m).",
              0.001, 1.0, change=LIVE),
    ParamSpec("segmentation.concavity", 0.01,
              "'geometric' only: relative second difference of inverse depth above which a concave crease (object "
              "standing on a surface, wall corner) separates segments.", 0.0005, 1.0, change=LIVE),
    ParamSpec("segmentation.crease_scale", 3,
              "'geometric' only: pixel offset at which creases are measured; larger is more robust to sensor noise.",
              1, 15, change=LIVE),
    ParamSpec("segmentation.color_edge", 120.0,
              "'geometric' only: colour gradient magnitude (0-255 scale) that separates segments where depth is "
              "continuous; 0 disables colour edges.", 0.0, 1000.0, change=LIVE),
    ParamSpec("segmentation.min_area", 0.002,
              "Smallest segment as a fraction of the image area; smaller ones (the fragments of real clutter) merge "
              "into a neighbour on the same surface; 'geometric' drops those that cannot, 'learned' keeps them (a "
              "small object standing apart).", 0.0, 0.5, change=LIVE),
    ParamSpec("segmentation.structure_min_area", 0.05,
              "Instances covering at least this fraction of the image, half its width, that are planes (see "
              "segmentation.structure_tolerance) are of kind structure (a table top, a floor, a wall), like those "
              "the network calls floor or wall; 0 disables.", 0.0, 1.0, change=LIVE),
    ParamSpec("segmentation.structure_tolerance", 0.01,
              "Relative distance from a plane within which 90 % of a large instance's pixels lie for it to be a "
              "plane (see segmentation.structure_min_area).", 0.0, 0.2, change=LIVE),
    # Occlusion order.
    ParamSpec("occlusion.min_boundary", 8,
              "Boundary pixel pairs needed before one instance is said to occlude another.", 1, 100000, change=LIVE),
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
              "finds more and is less precise.", 0.01, 0.99, change=LIVE),
    ParamSpec("amodal_mask.max_instances", 16,
              "'learned' only: most occluded instances per frame whose amodal mask the network completes (one batch "
              "per peeling pass), the largest first; the others get the convex hull ('convex_hull'). Bounds the "
              "cost of a frame of real clutter, whatever the number of instances (the network: ~1 ms per instance "
              "on two CPU cores).", 0, 1000, change=LIVE),
    ParamSpec("amodal_depth.max_instances", 8,
              "'spade' only: most instances per frame whose hidden surface the network completes, those with the "
              "largest hidden part first; the others take the depth of their nearest visible pixel ('nearest'), "
              "and large planes are extended by the plane fit (the network: ~2 ms per instance on two CPU cores). "
              "8 against 16: the same on held-out rooms, 1 % more error behind real occluders, 20 % less time "
              "for a frame of 40 objects.",
              0, 1000, change=LIVE),
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
              "Where the networks run: 'auto' = CUDA when usable, else CPU; 'cuda' without a usable CUDA runs the "
              "learned networks on the CPU, reported as a fallback.", choices=("auto", "cpu", "cuda")),
    ParamSpec("inference.backend", "auto",
              "How the networks run (the monocular depth network and the learned ones): 'auto' = 'onnxruntime' for "
              "the segmentation and amodal networks on the CPU where it is installed (1.2-1.6x faster than eager torch "
              "on the same cores), 'torch' on CUDA and for the monocular network; 'torch' (the amodal "
              "networks on CUDA as CUDA graphs); 'onnxruntime' (exported once per weights file to a static-shape ONNX"
              " graph in the user cache: fixed batches for the amodal networks (on the CPU one graph per batch of 1, "
              "2, 4, 8 and 16 crops, so that no call pads), the camera's resolution for the segmentation and "
              "monocular ones, whose graph is exported in the background at the first frame while torch serves; on "
              "CUDA its TensorRT and CUDA providers when onnxruntime-gpu is installed, else the CPU); 'tensorrt' (a "
              "TensorRT 10.x or 11.x engine built from that graph and cached per GPU; torch serves while it builds, "
              "and for good without tensorrt or CUDA, reported as a fallback).",
              choices=("auto", "torch", "onnxruntime", "tensorrt")),
    ParamSpec("inference.precision", "fp16",
              "Precision of the networks (monocular depth and learned amodal) on CUDA and TensorRT: 'fp16' "
              "(normalisation, softmax and reductions stay fp32 in TensorRT engines) or 'fp32'. On the CPU see "
              "inference.cpu_precision.", choices=("fp32", "fp16")),
    ParamSpec("inference.cpu_precision", "int8",
              "Precision of the segmentation and amodal mask networks on onnxruntime's CPU provider (inference.backend "
              "'auto' or 'onnxruntime' on the CPU): 'int8' (static QDQ quantisation with the activation ranges shipped "
              "beside the weights, computed by `amodal-depth calibrate`; weights without them run fp32 and the backend "
              "status says so) or 'fp32'. The amodal depth network always runs fp32: its log-depth inputs need finer "
              "steps than 8 bits.", choices=("int8", "fp32")),
    ParamSpec("amodal_depth.planar_tolerance", 0.005,
              "'spade' only: an instance whose visible surface is a plane (90 % of its pixels within this relative "
              "distance of one) and that covers at least amodal_depth.planar_min_area of the image (a wall, a floor) "
              "is extended as that plane ('plane_fit') instead of by the network, whose 48-pixel crop of it is too "
              "coarse; 0 disables.", 0.0, 0.1, change=LIVE),
    ParamSpec("amodal_depth.planar_min_area", 0.05,
              "'spade' only: smallest visible part, as a fraction of the image, of an instance extended as a plane "
              "(see amodal_depth.planar_tolerance).", 0.0, 1.0, change=LIVE),
    ParamSpec("amodal_depth.boundary_band", 25.0,
              "Pixels: visible points this close to the hidden part dominate the fit.", 1.0, 1000.0, change=LIVE),
    ParamSpec("amodal_depth.inpaint_radius", 5.0,
              "Pixels: neighbourhood of Telea inpainting ('telea' only).", 1.0, 100.0, change=LIVE),
    ParamSpec("amodal_depth.min_gap", 0.01,
              "A hidden surface lies at least this far (m) behind the surface that hides it.", 0.0, 10.0, change=LIVE),
)

SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMS}
READ_ONLY_NAMES = frozenset(spec.name for spec in PARAMS if spec.change == READ_ONLY)
LIVE_NAMES = frozenset(spec.name for spec in PARAMS if spec.change == LIVE)


def defaults() -> dict[str, Value]:
    return {spec.name: spec.default for spec in PARAMS}


def validated(values: dict[str, Any]) -> dict[str, Value]:
    """Defaults overridden by ``values``; unknown names and bad values raise ConfigError (a ValueError)."""
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise ConfigError(f"unknown parameter(s): {', '.join(unknown)} (known: {', '.join(SPECS)})")
    merged = defaults()
    for name, value in values.items():
        merged[name] = SPECS[name].validate(value)
    if merged["visible_depth.source"] == "topic" and not merged["use_depth"]:
        raise ConfigError("visible_depth.source 'topic' needs use_depth: true; "
                         "use visible_depth.source: monocular for cameras without depth")
    if merged["visible_depth.source"] == "monocular":
        if not merged["monocular.checkpoint"]:
            raise ConfigError("visible_depth.source 'monocular' needs monocular.checkpoint: the path of a "
                             "Depth Anything V2 .pth file (nothing is downloaded)")
        if not merged["use_depth"] and merged["monocular.metric_max_depth"] == 0.0:
            raise ConfigError("use_depth: false with a relative monocular model (monocular.metric_max_depth: 0) has no "
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


# --- typed settings: each stage's group of the table ------------------------------------------------------
# Field names are the parameter names without their group prefix; ``param`` metadata names a parameter of
# another group that a stage also reads (one table entry, two readers).


def _shared(name: str) -> Any:
    return field(metadata={"param": name})


@dataclass(frozen=True)
class SyncSettings:
    slop: float
    camera_info_use_latest: bool
    queue_size: int


@dataclass(frozen=True)
class OutputSettings:
    queue_depth: int
    cloud_stride: int
    mesh_stride: int
    mesh_depth_jump: float
    publish_mesh: bool
    publish_instances: bool
    colorized: bool
    colorize_min: float
    colorize_max: float


@dataclass(frozen=True)
class MapSettings:
    enabled: bool
    pose_topic: str
    voxel_size: float
    max_blocks: int
    hidden_weight: float
    publish_period: float


@dataclass(frozen=True)
class DiagnosticsSettings:
    period: float
    log_throttle: float
    stale_after: float


@dataclass(frozen=True)
class VisibleDepthSettings:
    source: str
    min_depth: float
    max_depth: float


@dataclass(frozen=True)
class MonocularSettings:
    checkpoint: str
    encoder: str
    metric_max_depth: float
    input_size: int
    fill_only: bool


@dataclass(frozen=True)
class SegmentationSettings:
    method: str
    weights: str
    network_size: int
    min_core: int
    outline_threshold: float
    depth_jump: float
    concavity: float
    crease_scale: int
    color_edge: float
    min_area: float
    structure_min_area: float
    structure_tolerance: float


@dataclass(frozen=True)
class OcclusionSettings:
    min_boundary: int
    depth_jump: float = _shared("segmentation.depth_jump")


@dataclass(frozen=True)
class AmodalMaskSettings:
    method: str
    weights: str
    threshold: float
    max_instances: int


@dataclass(frozen=True)
class AmodalDepthSettings:
    method: str
    weights: str
    planar_tolerance: float
    planar_min_area: float
    boundary_band: float
    inpaint_radius: float
    min_gap: float
    max_instances: int


@dataclass(frozen=True)
class InferenceSettings:
    device: str
    backend: str
    precision: str
    cpu_precision: str


@dataclass(frozen=True)
class Settings:
    """The whole table, typed: one frozen group per stage (and for the node's own parameters)."""

    use_depth: bool
    sync: SyncSettings
    output: OutputSettings
    diagnostics: DiagnosticsSettings
    visible_depth: VisibleDepthSettings
    monocular: MonocularSettings
    segmentation: SegmentationSettings
    occlusion: OcclusionSettings
    amodal_mask: AmodalMaskSettings
    amodal_depth: AmodalDepthSettings
    inference: InferenceSettings
    map: MapSettings

    @classmethod
    def from_values(cls, values: dict[str, Any] | None = None) -> Settings:
        """Settings of ``values`` (parameter name -> value, validated here; missing names take defaults)."""
        v = validated(values or {})
        groups: dict[str, Any] = {}
        for name, kind in get_type_hints(cls).items():
            groups[name] = v[name] if kind is bool else kind(**{f.name: v[_param(name, f)] for f in fields(kind)})
        return cls(**groups)


def _param(group: str, item: Field[Any]) -> str:
    return str(item.metadata.get("param", f"{group}.{item.name}"))


def settings_param_names() -> set[str]:
    """Every parameter name that ``Settings`` reads (a test holds it equal to the table)."""
    names: set[str] = set()
    for name, kind in get_type_hints(Settings).items():
        names |= {name} if kind is bool else {_param(name, f) for f in fields(kind)}
    return names
