"""pip install of amodal_depth_ros (the virtual environment route; colcon builds with CMakeLists.txt)."""
from setuptools import find_packages, setup

setup(
    name="amodal_depth_ros",
    version="0.1.0",
    description="Visible and amodal depth with a completed point cloud for ROS 2 cameras",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["amodal_depth_ros", "amodal_depth_ros.*"]),
    package_data={"amodal_depth_ros": ["py.typed", "weights/*.pt", "weights/*.md", "weights/int8/*.json"]},
    entry_points={
        "console_scripts": [
            "amodal_depth_node = amodal_depth_ros.ros.node:main",
            "amodal-depth = amodal_depth_ros.tools.cli:main",
        ],
    },
)
