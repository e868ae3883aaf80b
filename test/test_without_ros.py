"""The ROS-free tools run where ROS 2 cannot be imported (a bare GPU machine, a laptop without ROS)."""
import json
import subprocess
import sys

# Imports of rclpy, rosidl and every ROS interface package fail, as on a machine without ROS 2.
BLOCK_ROS = """
import importlib.abc, sys
class NoRos(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top == "rclpy" or top.startswith(("rosidl", "rosbag2", "rmw")) or top.endswith(("_msgs", "_interfaces")):
            raise ModuleNotFoundError(f"No module named {name!r} (ROS 2 blocked by the test)")
sys.meta_path.insert(0, NoRos())
from amodal_depth_ros.tools import main
sys.exit(main(sys.argv[1:]))
"""


def amodal_depth(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_ROS, *args], capture_output=True, text=True, timeout=600)


def test_ros_free_tools_run_without_ros(tmp_path):
    for tool in ("eval", "generate", "composites", "train", "export", "pictures", "bench"):
        done = amodal_depth(tool, "--help")
        assert done.returncode == 0 and "usage: amodal-depth" in done.stdout, (tool, done.stderr[-2000:])
    done = amodal_depth("generate", str(tmp_path / "gen"), "--seeds", "0-0", "--width", "80", "--height", "60")
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list((tmp_path / "gen" / "frames").glob("*.npz"))) == 1
    done = amodal_depth("eval", "synthetic:0-1", "--width", "96", "--height", "72", "--no-oracle",
                        "--out", str(tmp_path / "eval"))
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "eval" / "synthetic_0-1" / "results.json").read_text())
    assert 0.0 <= results["depth"]["pipeline"]["all"]["coverage"] <= 1.0
    done = amodal_depth("bench", "--frames", "2", "--resolutions", "80x60", "--pipelines", "geometric",
                        "--no-segmentation-network", "--live-seconds", "5", "--out", str(tmp_path / "bench"))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "bench" / "bench.json").read_text())
    [row] = report["rows"]
    assert report["live"]["unavailable"].startswith("not measured") and "ROS 2 blocked" in report["live"]["unavailable"]
    assert row["overhead_ms"] is None and row["frames_per_s"] > 0 and row["stages_ms"]["total"]["p50"] > 0


def test_ros_tools_say_why_they_cannot_run():
    done = amodal_depth("demo", "--frames", "1")
    assert done.returncode == 2 and "amodal-depth demo is unavailable here" in done.stderr
    assert "ROS 2 blocked by the test" in done.stderr
