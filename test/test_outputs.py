"""The node's output messages: built per requested topic, cloud records in their wire layout."""
import numpy as np
import pytest
from std_msgs.msg import Header

from amodal_depth_ros.core import POINT_DTYPE, LayeredCloud
from amodal_depth_ros.errors import InputError
from amodal_depth_ros.pipeline import AmodalDepthPipeline
from amodal_depth_ros.ros import allocator
from amodal_depth_ros.ros import conversions as conv
from amodal_depth_ros.ros.outputs import ALL_TYPES, frame_of, output_messages, output_topics
from amodal_depth_ros.ros.sync import Matched
from amodal_depth_ros.synthetic import SyntheticCamera


@pytest.fixture(scope="module")
def processed():
    frame = SyntheticCamera(0, 160, 120).frame(0)
    header = Header(frame_id="cam_optical", stamp=conv.ns_to_stamp(42))
    matched = Matched(conv.rgb_to_image(frame.rgb, header), conv.intrinsics_to_camera_info(frame.intrinsics, header),
                      conv.depth_to_image(frame.depth, header), 42)
    pipeline = AmodalDepthPipeline({"output.colorized": True})
    return pipeline, matched, pipeline(frame_of(matched))


def test_only_requested_topics_are_built_and_equal_the_full_set(processed):
    pipeline, matched, result = processed
    topics = output_topics(pipeline.params)
    assert set(topics) == set(ALL_TYPES)   # colorized on, instances on
    everything = output_messages(result, matched, topics)
    some = output_messages(result, matched, ["amodal_points", "visible_depth/image"])
    assert set(some) == {"amodal_points", "visible_depth/image"}
    assert bytes(some["amodal_points"].data) == bytes(everything["amodal_points"].data)
    assert bytes(some["visible_depth/image"].data) == bytes(everything["visible_depth/image"].data)
    assert output_messages(result, matched, []) == {}
    assert "amodal_instances" not in output_topics({**pipeline.params, "output.publish_instances": False})


def test_cloud_records_are_the_published_bytes(processed):
    _, matched, result = processed
    cloud = result.cloud
    msg = conv.cloud_to_msg(cloud, matched.image.header)
    assert bytes(msg.data) == cloud.records.tobytes() and msg.point_step == POINT_DTYPE.itemsize == 20
    assert msg.is_dense and np.isfinite(cloud.points).all()
    assert bytes(msg.data)[19::20] == bytes(len(cloud))   # padding zero: identical bytes for identical clouds
    # Visible points back-project the visible depth through the intrinsics.
    intr, depth = result.frame.intrinsics, result.visible_depth
    seen = cloud.layer == 0
    rows, cols = np.nonzero(np.isfinite(depth))
    z = depth[rows, cols]
    np.testing.assert_allclose(
        cloud.points[seen],
        np.stack([(cols - intr.cx) / intr.fx * z, (rows - intr.cy) / intr.fy * z, z], 1),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_array_equal(cloud.colors[seen], result.frame.rgb[rows, cols])


def test_clouds_are_dense_by_construction():
    with pytest.raises(InputError) as e:
        LayeredCloud.from_arrays(np.array([[0, 0, np.nan]], np.float32), np.zeros((1, 3), np.uint8),
                                 np.zeros(1, np.uint8), np.zeros(1, np.uint16))
    assert e.value.reason == "invalid_points"


def test_allocator_thresholds(monkeypatch):
    assert allocator.reuse_large_buffers() is True   # glibc Linux, as in CI
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1000000")
    assert allocator.reuse_large_buffers() is False  # the user's environment wins
