"""One log sink: the package's log records reach /rosout through the node's rclpy logger, and the
console in the tools."""
import logging
import subprocess
import sys
import time

import pytest


def test_library_records_reach_rosout_with_the_node_name(rclpy_context):
    import rclpy
    from rcl_interfaces.msg import Log
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from amodal_depth_ros.ros.logs import PACKAGE_LOGGER, route_to_rclpy, stop_routing

    node = rclpy.create_node("log_routing_test")
    received: list[Log] = []
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(Log, "/rosout", received.append, qos)
    before = (logging.getLogger(PACKAGE_LOGGER).level, logging.getLogger(PACKAGE_LOGGER).propagate)
    handler = route_to_rclpy(node.get_logger())
    try:
        library = logging.getLogger("amodal_depth_ros.runtime.switching")   # as a library module logs
        deadline = time.monotonic() + 60.0
        mine: list[Log] = []
        while not mine and time.monotonic() < deadline:
            library.error("tensorrt engine of %s failed: %s", "seg.onnx", "out of memory")
            library.debug("not shown at the default level")
            rclpy.spin_once(node, timeout_sec=0.1)
            mine = [m for m in received if m.name == "log_routing_test" and "seg.onnx" in m.msg]
        assert mine, f"nothing on /rosout; got {[m.msg for m in received]}"
        assert mine[0].level == Log.ERROR
        assert mine[0].msg == "[amodal_depth_ros.runtime.switching] tensorrt engine of seg.onnx failed: out of memory"
        assert not any("not shown" in m.msg for m in received)   # rclpy's threshold (INFO) applies
        assert not logging.getLogger(PACKAGE_LOGGER).propagate   # once only: not also through the root logger
    finally:
        stop_routing(handler)
        node.destroy_node()
    assert (logging.getLogger(PACKAGE_LOGGER).level, logging.getLogger(PACKAGE_LOGGER).propagate) == before


@pytest.mark.parametrize("level, shown", [("warning", True), ("debug", False)])
def test_tools_log_the_package_to_the_console(level, shown):
    code = ("import logging, sys\nfrom amodal_depth_ros.tools import cli\ncli.log_to_console()\n"
            f"logging.getLogger('amodal_depth_ros.runtime.tensorrt_engine').{level}('engine cache at %s', '/tmp/x')\n"
            "logging.getLogger('other_library').warning('not ours')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line = f"{level.upper()} amodal_depth_ros.runtime.tensorrt_engine: engine cache at /tmp/x"
    assert (line in done.stderr) is shown
    assert "not ours" in done.stderr   # other loggers keep Python's default (last-resort) handling
