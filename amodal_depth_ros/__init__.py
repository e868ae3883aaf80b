"""amodal_depth_ros: visible and amodal (occluded) depth for ROS 2 cameras.

Layers, lowest first: ``errors``; ``core``, the ROS-free, training-free pipeline stages with small typed
interfaces; ``networks`` (torch modules) and ``runtime`` (where they run: torch, onnxruntime, TensorRT);
``learned``, the stages backed by networks; ``pipeline``, which composes the stages; ``synthetic``
(procedural ground truth); ``ros``, the ROS 2 adapter (messages, bags, the node); ``datasets``,
``evaluation`` and ``training``; and ``tools``, the ``amodal-depth`` command. Imports point down this list
only (checked by test/test_import_graph.py).
"""

# The ROS interface build (rosidl) installs the generated ``amodal_depth_ros.msg`` into
# site-packages, apart from this source tree: extend the package path so both halves import.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"
