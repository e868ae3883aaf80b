"""One frame through the pipeline at the message level: input messages in, the node's output messages
out. Shared by the node and the offline replay, so both publish exactly the same messages."""
from __future__ import annotations

from typing import Any

from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ..core.pipeline import AmodalDepthPipeline, PipelineResult
from ..core.types import RGBDFrame
from ..visualize import colorize_depth
from . import conversions as conv
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


def frame_of(matched: Matched) -> RGBDFrame:
    """The pipeline's input; InputError (with a reason) for anything that cannot be decoded."""
    intrinsics = conv.camera_info_to_intrinsics(matched.camera_info)
    rgb = conv.image_to_rgb(matched.image)
    depth = conv.image_to_depth(matched.depth) if matched.depth is not None else None
    return RGBDFrame(rgb=rgb, intrinsics=intrinsics, depth=depth, stamp_ns=matched.stamp_ns,
                     frame_id=matched.image.header.frame_id)


def output_messages(result: PipelineResult, matched: Matched, instances: bool = True,
                    colorize: tuple[float, float] | None = None) -> dict[str, Any]:
    """Output topic -> message; every header is the input image's (stamp and frame_id, never "now").
    ``colorize`` = (min, max) metres adds the COLORIZED_TYPES images."""
    header = matched.image.header
    info = matched.camera_info
    info.header = header   # camera_info goes out beside each depth image, with the image's header
    intr = result.frame.intrinsics
    messages = {"visible_depth/image": conv.depth_to_image(result.visible_depth, header),
                "visible_depth/camera_info": info,
                "amodal_depth/image": conv.depth_to_image(result.amodal_depth, header),
                "amodal_depth/camera_info": info,
                "amodal_points": conv.cloud_to_msg(result.cloud, header)}
    if instances and "amodal_instances" in OUTPUT_TYPES:
        messages["amodal_instances"] = conv.instances_to_msg(result.instances, header, intr.width, intr.height)
    if colorize is not None:
        for name, depth in (("visible_depth", result.visible_depth), ("amodal_depth", result.amodal_depth)):
            messages[f"{name}/colorized"] = conv.rgb_to_image(colorize_depth(depth, *colorize), header)
    return messages


def colorize_range(params: dict[str, Any]) -> tuple[float, float] | None:
    return (params["output.colorize_min"], params["output.colorize_max"]) if params["output.colorized"] else None


def process(pipeline: AmodalDepthPipeline, matched: Matched) -> tuple[PipelineResult, dict[str, Any]]:
    """The pipeline and its output messages as the pipeline's parameters ask for them."""
    p = pipeline.params
    result = pipeline(frame_of(matched))
    return result, output_messages(result, matched, p["output.publish_instances"], colorize_range(p))
