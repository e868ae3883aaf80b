"""Ground-truth datasets named on the command line, each an iterable of ``GroundTruthFrame``s.

    synthetic:0-499      procedural rooms, seeds 0..499 (``synthetic:500`` = seeds 0..499)
    tabletop:0-199       table-top clutter (``synthetic.tabletop``), seeds 0..199
    PATH                 a composite set written by ``amodal-depth composites`` (has index.json)
    PATH                 real frames with object labels: NAME_{color,depth,labels}.png + intrinsics.json
    PATH                 a rosbag2 folder / .mcap / .db3 or a ROS 1 .bag carrying ground-truth topics
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataError
from ..groundtruth import GroundTruthFrame

_SEEDS = re.compile(r"^(?:(\d+)-)?(\d+)$")


@dataclass
class Dataset:
    name: str                                        # short, file-name safe
    description: str
    count: int
    frames: Callable[[], Iterator[GroundTruthFrame]]

    def __iter__(self) -> Iterator[GroundTruthFrame]:
        return self.frames()


def parse_seeds(text: str) -> range:
    """'0-499' -> range(0, 500); '500' -> range(0, 500)."""
    match = _SEEDS.match(text.strip())
    if not match:
        raise ConfigError(f"synthetic seeds must look like 'START-END' or 'COUNT', got {text!r}")
    start, end = match.groups()
    seeds = range(int(start), int(end) + 1) if start is not None else range(int(end))
    if len(seeds) == 0:
        raise ConfigError(f"synthetic seed range {text!r} is empty")
    return seeds


def open_dataset(spec: str, width: int = 320, height: int = 240, depth_noise_std: float = 0.0) -> Dataset:
    """The dataset ``spec`` names (see the module docstring); ValueError with the reason if it cannot."""
    if spec.startswith("synthetic:"):
        from ..synthetic.procedural import generate  # imported here: the generator is not needed otherwise

        seeds = parse_seeds(spec.split(":", 1)[1])
        return Dataset(f"synthetic_{seeds.start}-{seeds.stop - 1}",
                       f"procedural rooms, seeds {seeds.start}..{seeds.stop - 1}, {width}x{height}", len(seeds),
                       lambda: (generate(seed, width, height, depth_noise_std) for seed in seeds))
    if spec.startswith("tabletop:"):
        from ..synthetic.tabletop import generate_tabletop

        seeds = parse_seeds(spec.split(":", 1)[1])
        return Dataset(f"tabletop_{seeds.start}-{seeds.stop - 1}",
                       f"table tops, seeds {seeds.start}..{seeds.stop - 1}, {width}x{height}", len(seeds),
                       lambda: (generate_tabletop(seed, width, height) for seed in seeds))
    path = Path(spec)
    if not path.exists():
        raise DataError(f"{spec}: no such file or folder (and not 'synthetic:SEEDS' or 'tabletop:SEEDS')")
    from .labelled_folder import is_labelled_folder, iter_labelled_folder, labelled_frame_names

    if is_labelled_folder(path):
        names = labelled_frame_names(path)
        return Dataset(path.name, f"real frames with object labels {path}", len(names),
                       lambda: iter_labelled_folder(path))
    if (path / "index.json").is_file():
        from .composite_set import iter_composite_set, read_composite_set

        files = read_composite_set(path)
        return Dataset(path.name, f"composite set {path}", len(files), lambda: iter_composite_set(path))
    from .bag import count_ground_truth_frames, read_ground_truth_bag

    return Dataset(path.stem, f"ground-truth bag {path}", count_ground_truth_frames(path),
                   lambda: read_ground_truth_bag(path))
