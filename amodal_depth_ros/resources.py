"""Files the package ships beside its code (config/, msg/): found in the source checkout, else in the
installed share/amodal_depth_ros of a colcon/ament install."""
from __future__ import annotations

from pathlib import Path

import amodal_depth_ros


def package_path(*parts: str) -> Path:
    """Path of a shipped file or folder, e.g. ``package_path("config", "amodal_depth.yaml")``."""
    checkout = Path(amodal_depth_ros.__file__).resolve().parents[1].joinpath(*parts)
    if checkout.exists():
        return checkout
    try:
        from ament_index_python.packages import get_package_share_directory
        installed = Path(get_package_share_directory("amodal_depth_ros")).joinpath(*parts)
        if installed.exists():
            return installed
    except (ImportError, LookupError, OSError, ValueError):  # no ament index, or the package is not in it
        pass
    raise FileNotFoundError(f"{'/'.join(parts)} is neither in the checkout ({checkout.parent}) nor in an installed "
                            "share/amodal_depth_ros; pass the file explicitly")
