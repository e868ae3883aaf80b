"""One frame through the pipeline at the message level: input messages in, the node's output messages
out. Shared by the node and the offline replay, so both publish exactly the same messages."""
from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import Marker

from ..core.layers import stack_hidden_surfaces
from ..core.mesh import build_layered_mesh
from ..core.types import RGBDFrame
from ..pipeline import AmodalDepthPipeline, PipelineResult
from ..visualize import colorize_depth
from . import conversions as conv
from .marker import Serialized, mesh_marker
from .sync import Matched

try:
    from amodal_depth_ros.msg import AmodalInstanceArray
except ImportError:  # interfaces not built: run without the instance topic rather than not at all
    AmodalInstanceArray = None

# Output topic (relative to the node's namespace) -> message type.
OUTPUT_TYPES: dict[str, type] = {
    "visible_depth/image": Image, "visible_depth/camera_info": CameraInfo,
    "amodal_depth/image": Image, "amodal_depth/camera_info": CameraInfo, "amodal_points": PointCloud2}
if AmodalInstanceArray is not None:
    OUTPUT_TYPES["amodal_instances"] = AmodalInstanceArray
# Optional (output.colorized): rgb8 renderings of the two depth images for quick viewing.
COLORIZED_TYPES: dict[str, type] = {"visible_depth/colorized": Image, "amodal_depth/colorized": Image}
# output.publish_mesh: the completed mesh, a Marker of ~50k triangles (a few MB a frame at the default stride),
# built only for a subscriber like every output, and left out of replay's bags (replay --mesh writes .ply files).
MESH_TYPES: dict[str, type] = {"completed_mesh": Marker}
ALL_TYPES: dict[str, type] = {**OUTPUT_TYPES, **COLORIZED_TYPES, **MESH_TYPES}


def frame_of(matched: Matched) -> RGBDFrame:
    """The pipeline's input; InputError (with a reason) for anything that cannot be decoded."""
    intrinsics = conv.camera_info_to_intrinsics(matched.camera_info)
    rgb = conv.image_to_rgb(matched.image)
    depth = conv.image_to_depth(matched.depth) if matched.depth is not None else None
    return RGBDFrame(rgb=rgb, intrinsics=intrinsics, depth=depth, stamp_ns=matched.stamp_ns,
                     frame_id=matched.image.header.frame_id)


def output_topics(params: dict[str, Any]) -> list[str]:
    """The output topics the parameters ask for: the node's publishers, replay's written topics."""
    topics = [t for t in OUTPUT_TYPES if t != "amodal_instances" or params["output.publish_instances"]]
    return topics + (list(COLORIZED_TYPES) if params["output.colorized"] else []) + \
        (list(MESH_TYPES) if params["output.publish_mesh"] else [])


def output_messages(result: PipelineResult, matched: Matched, topics: Collection[str],
                    colorize: tuple[float, float] = (0.0, 10.0), mesh: tuple[int, float] = (4, 0.05)) -> dict[str, Any]:
    """Output topic -> message for each of ``topics`` (others are not built: the node skips topics nobody
    subscribes to). Every header is the input image's (stamp and frame_id, never "now"). ``colorize`` =
    (min, max) metres of the COLORIZED_TYPES images; ``mesh`` = (grid stride, depth jump) of the completed
    mesh, a ``Serialized`` Marker (``marker``)."""
    header = matched.image.header
    info = matched.camera_info
    info.header = header   # camera_info goes out beside each depth image, with the image's header
    intr = result.frame.intrinsics
    builders: dict[str, Callable[[], Any]] = {
        "visible_depth/image": lambda: conv.depth_to_image(result.visible_depth, header),
        "visible_depth/camera_info": lambda: info,
        "amodal_depth/image": lambda: conv.depth_to_image(result.amodal_depth, header),
        "amodal_depth/camera_info": lambda: info,
        "amodal_points": lambda: conv.cloud_to_msg(result.cloud, header),
        "amodal_instances": lambda: conv.instances_to_msg(result.instances, header, intr.width, intr.height),
        "completed_mesh": lambda: mesh_marker(completed_mesh(result, *mesh), (header.stamp.sec, header.stamp.nanosec),
                                              header.frame_id),
        "visible_depth/colorized": lambda: conv.rgb_to_image(colorize_depth(result.visible_depth, *colorize), header),
        "amodal_depth/colorized": lambda: conv.rgb_to_image(colorize_depth(result.amodal_depth, *colorize), header),
    }
    return {topic: builders[topic]() for topic in topics if topic in builders and topic in ALL_TYPES}


def colorize_range(params: dict[str, Any]) -> tuple[float, float]:
    return params["output.colorize_min"], params["output.colorize_max"]


def mesh_settings(params: dict[str, Any]) -> tuple[int, float]:
    return params["output.mesh_stride"], params["output.mesh_depth_jump"]


def completed_mesh(result: PipelineResult, stride: int = 4, depth_jump: float = 0.05) -> Any:
    """The frame's completed mesh (``core.mesh.LayeredMesh``): visible surface and hidden layers."""
    hidden = result.hidden if result.hidden is not None else stack_hidden_surfaces(result.instances, result.frame.shape)
    return build_layered_mesh(result.frame, result.visible_depth, result.segmentation.labels, hidden, stride,
                              depth_jump)


def payload(msg: Any) -> Any:
    """What a publisher is given: the message, or the bytes of a ``Serialized`` one."""
    return msg.data if isinstance(msg, Serialized) else msg


def process(pipeline: AmodalDepthPipeline, matched: Matched,
            leave_out: Collection[str] = ()) -> tuple[PipelineResult, dict[str, Any]]:
    """The pipeline and its output messages as the pipeline's parameters ask for them, less ``leave_out``."""
    p = pipeline.params
    result = pipeline(frame_of(matched))
    topics = [t for t in output_topics(p) if t not in leave_out]
    return result, output_messages(result, matched, topics, colorize_range(p), mesh_settings(p))
