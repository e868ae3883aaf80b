"""Start amodal_depth_node on an RGB-D camera (RealSense topic layout by default).

    ros2 launch amodal_depth_ros amodal_depth.launch.py
    ros2 launch amodal_depth_ros amodal_depth.launch.py camera_namespace:=/camera/camera rviz:=true
    ros2 launch amodal_depth_ros amodal_depth.launch.py image_topic:=/my/rgb depth_topic:=/my/depth \
        camera_info_topic:=/my/rgb/camera_info

Outputs (under the node namespace, `/amodal` by default): visible_depth/{image,camera_info},
amodal_depth/{image,camera_info}, amodal_points, amodal_instances, and /diagnostics.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, GroupAction, LogInfo, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription

PACKAGE = "amodal_depth_ros"
PROFILES_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    default_params = os.path.join(share, "config", "amodal_depth.yaml")
    dds_profile = os.path.join(share, "config", "fastdds_large_data.xml")
    rviz_config = os.path.join(share, "config", "amodal_depth.rviz")

    camera_namespace = LaunchConfiguration("camera_namespace")
    arguments = [
        DeclareLaunchArgument("namespace", default_value="amodal",
                              description="Namespace of amodal_depth_node and its output topics."),
        DeclareLaunchArgument("camera_namespace", default_value="/camera",
                              description="Namespace of the camera driver; the default topic names below are "
                                          "built from it."),
        DeclareLaunchArgument("image_topic", default_value=[camera_namespace, "/color/image_raw"],
                              description="Colour image topic (rgb8, bgr8, rgba8, bgra8 or mono8)."),
        DeclareLaunchArgument("depth_topic", default_value=[camera_namespace, "/aligned_depth_to_color/image_raw"],
                              description="Depth image registered to the colour image (16UC1 mm or 32FC1 m)."),
        DeclareLaunchArgument("camera_info_topic", default_value=[camera_namespace, "/color/camera_info"],
                              description="CameraInfo of the colour image."),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="ROS 2 parameters file for amodal_depth_node."),
        DeclareLaunchArgument("use_depth", default_value="true",
                              description="true: subscribe to the depth topic (overrides use_depth in params_file)."),
        DeclareLaunchArgument("cloud_stride", default_value="1",
                              description="Keep every n-th pixel in both directions in amodal_points, 1..16 "
                                          "(overrides output.cloud_stride in params_file)."),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="Logging level of amodal_depth_node: debug, info, warn, error or fatal."),
        DeclareLaunchArgument("use_large_data_profile", default_value="true",
                              description=f"Set {PROFILES_ENV} to the package's Fast DDS profile for large images and "
                                          "clouds (64 MB shared memory, 50 ms heartbeat), unless it is already set."),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="Also start rviz2" + (" with config/amodal_depth.rviz."
                                                                if os.path.exists(rviz_config) else ".")),
    ]

    use_large_data_profile = IfCondition(LaunchConfiguration("use_large_data_profile"))
    # An already exported profile wins: the variable is set to its own value in that case.
    profile = EnvironmentVariable(PROFILES_ENV, default_value=dds_profile)
    node = Node(
        package=PACKAGE,
        executable="amodal_depth_node",
        name="amodal_depth_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "use_depth": ParameterValue(LaunchConfiguration("use_depth"), value_type=bool),
                "output.cloud_stride": ParameterValue(LaunchConfiguration("cloud_stride"), value_type=int),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("depth", LaunchConfiguration("depth_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
        ],
        ros_arguments=["--log-level", LaunchConfiguration("log_level")],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        output="screen",
        arguments=["-d", rviz_config] if os.path.exists(rviz_config) else [],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    # Scoped: the DDS profile reaches the processes started here, not whatever includes this file.
    group = GroupAction(scoped=True, actions=[
        SetEnvironmentVariable(PROFILES_ENV, profile, condition=use_large_data_profile),
        LogInfo(msg=["Fast DDS profile: ", profile], condition=use_large_data_profile),
        node,
        rviz,
    ])
    return LaunchDescription([*arguments, group])
