"""A set of composites on disk: frames/NNNNNN.npz (``GroundTruthFrame.save``), previews/NNNNNN.png and
index.json (provenance of every frame), written last: no index, no set."""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from .. import visualize as vis
from ..errors import DataError
from ..groundtruth import GroundTruthFrame

SET_FORMAT, SET_VERSION = "amodal_depth_ros.composite_set", 1
TARGET_RGB, OCCLUDER_RGB = (40, 255, 40), (255, 40, 255)   # preview outlines


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` to a temporary name beside ``path``, then rename: a crash never leaves half a file under ``path``."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")   # same suffix: cv2 picks the format from it
    write(tmp)
    os.replace(tmp, path)


def preview(frame: GroundTruthFrame) -> np.ndarray:
    """Composite RGB beside its colorized depth, both with the target's amodal and the occluder's outline."""
    vmin, vmax = vis.depth_range(frame.depth)
    panels = [frame.rgb.copy(), vis.add_colorbar(vis.colorize_depth(frame.depth, vmin, vmax), vmin, vmax)]
    for mask, colour in ((frame.amodal_mask(2), OCCLUDER_RGB), (frame.amodal_mask(1), TARGET_RGB)):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        for panel in panels:
            cv2.drawContours(panel, contours, -1, colour, max(1, frame.rgb.shape[1] // 640))
    return np.concatenate(panels, axis=1)


def write_composite_set(out: Path, items: Iterable[tuple[GroundTruthFrame, dict]], source: str, seed: int,
                        previews: int = 12) -> dict:
    """Write the composites of ``items`` under ``out``; returns the index written to out/index.json."""
    out = Path(out)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "previews").mkdir(exist_ok=True)
    (out / "index.json").unlink(missing_ok=True)   # a rewrite interrupted half-way must not look like a set
    entries = []
    for n, (frame, provenance) in enumerate(items):
        name = f"{n:06d}"
        _atomic(out / "frames" / f"{name}.npz", frame.save)
        if n < previews:
            _atomic(out / "previews" / f"{name}.png", partial(vis.write_png, rgb=preview(frame)))
        entries.append({"file": f"frames/{name}.npz", **provenance})
    ratios = [e["visible_ratio"] for e in entries if "visible_ratio" in e]
    index = {"format": SET_FORMAT, "format_version": SET_VERSION, "source": source, "seed": seed,
             "count": len(entries), "mean_visible_ratio": round(float(np.mean(ratios)), 4) if ratios else None,
             "occluder_kinds": dict(sorted(Counter(e.get("occluder") for e in entries).items())), "frames": entries}
    _atomic(out / "index.json", lambda p: p.write_text(json.dumps(index, indent=1) + "\n"))
    # Files of an earlier, larger set in the same folder would pass for part of this one.
    for folder, keep, suffix in (("frames", len(entries), ".npz"), ("previews", min(previews, len(entries)), ".png")):
        for stale in (out / folder).glob(f"[0-9][0-9][0-9][0-9][0-9][0-9]{suffix}"):
            if int(stale.stem) >= keep:
                stale.unlink()
    return index


def read_composite_set(path: Path) -> list[Path]:
    """The frame files that ``path``/index.json lists; ValueError if it is no composite set or files are missing."""
    path = Path(path)
    try:
        index = json.loads((path / "index.json").read_text())
        if index.get("format") != SET_FORMAT or index.get("format_version") != SET_VERSION:
            raise DataError(f"format {index.get('format')!r} version {index.get('format_version')!r}")
        files = [path / entry["file"] for entry in index["frames"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{path}: not a composite set ({exc})") from exc
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{path}: {len(missing)} frame file(s) listed in index.json are missing, e.g. {missing[0]}")
    return files


def iter_composite_set(path: Path) -> Iterator[GroundTruthFrame]:
    for file in read_composite_set(path):
        yield GroundTruthFrame.load(file)
