"""amodal_depth_ros: visible and amodal (occluded) depth for ROS 2 cameras.

Layout: ``core`` is the ROS-free pipeline (stages with small typed interfaces), ``synthetic``
makes RGB-D scenes with known hidden geometry, ``ros`` adapts the pipeline to ROS 2 topics and
``tools`` holds the command-line programs (demo, ...).
"""

# The ROS interface build (rosidl) installs the generated ``amodal_depth_ros.msg`` into
# site-packages, apart from this source tree: extend the package path so both halves import.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"
