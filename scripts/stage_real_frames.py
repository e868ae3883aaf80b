#!/usr/bin/env python3
"""Stage the shared real RGB-D frames as folders `amodal-depth eval` and `amodal-depth bench --real` read.

    python scripts/stage_real_frames.py ../shared/realdata out/real

Writes OUT/{mosd,nyu,graspnet,osd,tum,sun,unidepth}/: each colour/depth pairs plus intrinsics.json (fx, fy,
cx, cy, depth_scale), converting what is not already so (TUM's depth scale, SUN RGB-D's bit-rotated depth,
UniDepth's intrinsics.npy, OSD's undocumented Kinect v1 intrinsics: the nominal 525 / 319.5 / 239.5).
Frames are linked or written, never altered in value. Licences (realdata/LICENSES.md): the NYU and TUM
frames may be trained on; mosd, graspnet, osd, sun and unidepth are for evaluation only.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

KINECT = {"fx": 525.0, "fy": 525.0, "cx": 319.5, "cy": 239.5}
TRAINABLE = ("nyu", "tum")   # licences allow training; every other folder is evaluation only


def link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()
    target.symlink_to(source.resolve())


def intrinsics(folder: Path, values: dict, scale: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "intrinsics.json").write_text(json.dumps({**values, "depth_scale": scale}) + "\n")


def main(shared: Path, out: Path) -> int:
    mosd = shared / "mosd_learn"
    for path in mosd.glob("*_*.png"):
        if not path.name.endswith("_labels.png"):   # images only: labels are for `amodal-depth eval` on mosd itself
            link(path, out / "mosd" / path.name)
    shutil.copy(mosd / "intrinsics.json", out / "mosd" / "intrinsics.json")
    nyu = shared / "metric3d_kitti_nyu" / "nyu_demo"
    for path in nyu.rglob("*"):
        if path.is_file():
            link(path, out / "nyu" / path.relative_to(nyu))
    grasp = shared / "graspnet_realsense"
    for name in ("color.png", "depth.png"):
        link(grasp / name, out / "graspnet" / name)
    g = json.loads((grasp / "intrinsics.json").read_text())
    intrinsics(out / "graspnet", {k: g[k] for k in ("fx", "fy", "cx", "cy")}, g["depth_scale"])
    osd = shared / "uoais_osd"
    for kind in ("image_color", "disparity"):   # "disparity" holds depth in millimetres (its README)
        for path in (osd / kind).glob("*.png"):
            link(path, out / "osd" / kind / path.name)
    intrinsics(out / "osd", KINECT, 1000.0)
    other = shared / "open3d_tum_sun_nyu"
    link(other / "TUM_color.png", out / "tum" / "color.png")
    link(other / "TUM_depth.png", out / "tum" / "depth.png")
    intrinsics(out / "tum", KINECT, 5000.0)
    raw = cv2.imread(str(other / "SUN_depth.png"), cv2.IMREAD_UNCHANGED).astype(np.uint16)
    (out / "sun").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "sun" / "depth.png"), (raw >> 3) | (raw << 13))   # SUN RGB-D's bit rotation undone: mm
    cv2.imwrite(str(out / "sun" / "color.png"), cv2.imread(str(other / "SUN_color.jpg"), cv2.IMREAD_COLOR))
    intrinsics(out / "sun", KINECT, 1000.0)
    uni = shared / "unidepth_demo"
    link(uni / "rgb.png", out / "unidepth" / "color.png")
    link(uni / "depth.png", out / "unidepth" / "depth.png")
    k = np.load(uni / "intrinsics.npy")
    intrinsics(out / "unidepth", {"fx": float(k[0, 0]), "fy": float(k[1, 1]), "cx": float(k[0, 2]),
                                  "cy": float(k[1, 2])}, 1000.0)
    print(f"staged {', '.join(sorted(p.name for p in out.iterdir()))} in {out} (trainable: {', '.join(TRAINABLE)})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
