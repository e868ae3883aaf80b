"""Ground-truth data sets named on the command line (``open_dataset``): procedural seeds, bags with amodal
ground truth, folders of real RGB-D frames, and composites of real frames with pasted occluders."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .bag import read_ground_truth_bag, write_ground_truth_bag
    from .composite_set import iter_composite_set, read_composite_set, write_composite_set
    from .composites import build_composites
    from .labelled_folder import iter_labelled_folder
    from .rgbd_folder import RGBDSample, load_rgbd_folder
    from .sources import open_dataset, parse_seeds
    from .synthetic_rgbd import SyntheticRGBD

__all__ = [
    "RGBDSample", "SyntheticRGBD", "build_composites", "iter_composite_set", "iter_labelled_folder",
    "load_rgbd_folder", "open_dataset", "parse_seeds", "read_composite_set", "read_ground_truth_bag",
    "write_composite_set", "write_ground_truth_bag",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "sources": ("open_dataset", "parse_seeds"),
    "bag": ("read_ground_truth_bag", "write_ground_truth_bag"),
    "composite_set": ("iter_composite_set", "read_composite_set", "write_composite_set"),
    "composites": ("build_composites",),
    "labelled_folder": ("iter_labelled_folder",),
    "rgbd_folder": ("RGBDSample", "load_rgbd_folder"),
    "synthetic_rgbd": ("SyntheticRGBD",),
})
