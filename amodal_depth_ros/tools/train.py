"""Train the package's networks on procedural scenes (CPU, or CUDA when present).

--network amodal (default): the amodal mask and SPADE amodal depth networks. Renders the training and
validation frames once into OUT (train_cache.npz, val_cache.npz; reused while the seed ranges stay the
same), trains both networks jointly, and writes OUT/amodal_mask.pt, OUT/amodal_depth.pt.

--network segmentation: the RGB-D segmentation network, on procedural rooms (--train-seeds) and table
tops (--tabletop-seeds) rendered once into OUT/frames, with sensor-like depth and colour jitter drawn
per step; writes OUT/segmentation.pt.

Both show progress, validate and checkpoint every --checkpoint-every steps (OUT/checkpoint.pt; --resume
continues from it exactly), and write OUT/summary.json and OUT/MODEL_CARD.md (MODEL_CARD.segmentation.md for
the segmentation network). --install copies the
weights and card into the package (amodal_depth_ros/weights), where the node loads them by default.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ..datasets import parse_seeds
from ..errors import ConfigError

NETWORKS = ("amodal", "segmentation")
SHARED = ("steps", "batch", "lr", "seed", "workers", "checkpoint_every", "width", "height")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..training import (
        SegmentationTrainConfig,
        TrainConfig,  # defaults shown in --help come from the config classes
    )
    d, s = TrainConfig(), SegmentationTrainConfig()
    parser.add_argument("--network", choices=NETWORKS, default="amodal",
                        help="which network to train (default: amodal = the amodal mask and depth networks)")
    parser.add_argument("--out", default=None, help=f"output folder (default: {d.out} or {s.out})")
    parser.add_argument("--train-seeds", default=None,
                        help=f"seed range of procedural rooms (default: {d.train_seeds[0]}-{d.train_seeds[1] - 1}, "
                             f"segmentation {s.room_seeds[0]}-{s.room_seeds[1] - 1}; eval uses 0-9999)")
    parser.add_argument("--tabletop-seeds", default=f"{s.tabletop_seeds[0]}-{s.tabletop_seeds[1] - 1}",
                        help="segmentation only: seed range of table-top scenes (default: %(default)s)")
    parser.add_argument("--val-seeds", default=None, help="validation seeds (of each scene kind for segmentation)")
    for name in SHARED:
        a, b = getattr(d, name), getattr(s, name)
        shown = f"{a}" if a == b else f"{a}, segmentation {b}"
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(a), default=None, help=f"(default: {shown})")
    parser.add_argument("--crop", default=f"{s.crop[0]}x{s.crop[1]}", metavar="WxH",
                        help="segmentation only: training crop size (default: %(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device, help="(default: auto)")
    parser.add_argument("--composites", action="append", default=[], metavar="DIR",
                        help="a composite set to add to the training data (repeatable; never the evaluation set)")
    parser.add_argument("--composite-share", type=float, default=d.composite_share, metavar="F",
                        help="fraction of each batch drawn from the composite sets (default: 0 = in proportion)")
    parser.add_argument("--segmented", default=None, metavar="SEEDS",
                        help="amodal only: seeds (e.g. 15000-16499) of rooms and table tops whose mask samples are cut "
                             "from the learned segmenter's instances, as the stage cuts them at run time")
    parser.add_argument("--segmented-share", type=float, default=d.segmented_share, metavar="F",
                        help="fraction of each batch drawn from the --segmented samples (default: %(default)s)")
    parser.add_argument("--mask-only", action="store_true",
                        help="amodal only: train the amodal mask network; the depth network stays as initialised")
    parser.add_argument("--init", default="", metavar="PATH",
                        help="start from existing weights (fine-tuning): for amodal a folder with amodal_mask.pt and "
                             "amodal_depth.pt, for segmentation a segmentation.pt; 'package' = the shipped weights")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--install", action="store_true", help="copy the trained weights into the package")


def _seeds(text: str | None, default: tuple[int, int]) -> tuple[int, int]:
    if text is None:
        return default
    seeds = parse_seeds(text)
    return seeds.start, seeds.stop


def _fail(message: str) -> int:
    print(f"amodal-depth train: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.composite_share < 1.0 or (args.composite_share and not args.composites):
        return _fail("--composite-share must be in [0, 1) and needs --composites")
    if args.network == "segmentation":
        return _run_segmentation(args)
    from ..networks import WEIGHTS_DIR
    from ..training.trainer import TrainConfig, initial_weights, train
    d = TrainConfig()
    try:
        train_seeds, val_seeds = _seeds(args.train_seeds, d.train_seeds), _seeds(args.val_seeds, d.val_seeds)
        segmented = _seeds(args.segmented, d.segmented)
    except ValueError as exc:
        return _fail(str(exc))
    if (set(range(*train_seeds)) | set(range(*segmented))) & set(range(*val_seeds)) or train_seeds[0] < 10_000 \
            or (args.segmented and segmented[0] < 10_000):
        return _fail("training seeds must be >= 10000 (0-9999 are held out for eval) and disjoint from the "
                     "validation seeds")
    if not 0.0 <= args.segmented_share < 1.0 or (args.segmented_share and not args.segmented):
        return _fail("--segmented-share must be in [0, 1) and needs --segmented")
    if args.init and not all((initial_weights(args.init) / n).is_file() for n in ("amodal_mask.pt", "amodal_depth.pt")):
        return _fail(f"--init {args.init} lacks amodal_mask.pt or amodal_depth.pt")
    values = {name: getattr(args, name) for name in SHARED if getattr(args, name) is not None}
    cfg = TrainConfig(**values, out=args.out or d.out, train_seeds=train_seeds, val_seeds=val_seeds, device=args.device,
                      composites=tuple(args.composites), composite_share=args.composite_share, init=args.init,
                      segmented=segmented, segmented_share=args.segmented_share, mask_only=args.mask_only)
    summary = train(cfg, resume=args.resume, command=tuple(getattr(args, "command_line", ())))
    last = summary["history"][-1] if summary["history"] else {}
    print(f"trained {cfg.steps} steps on {summary['train_samples']} samples in {summary['seconds']} s "
          f"({summary['device']}); "
          f"validation: occluded mask IoU {last.get('occluded_iou', float('nan')):.3f}, "
          f"hidden |log ratio| {last.get('hidden_log_l1', float('nan')):.4f}")
    if args.install:
        _install(Path(cfg.out), ("amodal_mask.pt", "amodal_depth.pt", "MODEL_CARD.md"), WEIGHTS_DIR)
    return 0


def _run_segmentation(args: argparse.Namespace) -> int:
    from ..networks import WEIGHTS_DIR
    from ..training.segmentation_trainer import SegmentationTrainConfig, initial_weights, train
    d = SegmentationTrainConfig()
    try:
        rooms = _seeds(args.train_seeds, d.room_seeds)
        tabletops = _seeds(args.tabletop_seeds, d.tabletop_seeds)
        val_seeds = _seeds(args.val_seeds, d.val_seeds)
        crop = tuple(int(v) for v in args.crop.lower().split("x"))
        if len(crop) != 2 or min(crop) < 32 or crop[0] % 16 or crop[1] % 16:
            raise ConfigError(f"--crop must be WxH, multiples of 16 and at least 32, got {args.crop!r}")
    except ValueError as exc:
        return _fail(str(exc))
    held_out = set(range(*val_seeds))
    if min(rooms[0], tabletops[0]) < 10_000 or held_out & (set(range(*rooms)) | set(range(*tabletops))):
        return _fail("training seeds must be >= 10000 (0-9999 are held out for eval) and disjoint from the "
                     "validation seeds")
    if args.init and not initial_weights(args.init).is_file():
        return _fail(f"--init {args.init}: no such segmentation weights file")
    values = {name: getattr(args, name) for name in SHARED if getattr(args, name) is not None}
    if crop[0] > values.get("width", d.width) or crop[1] > values.get("height", d.height):
        return _fail(f"--crop {args.crop} is larger than the rendered frames")
    cfg = SegmentationTrainConfig(**values, out=args.out or d.out, room_seeds=rooms, tabletop_seeds=tabletops,
                                  val_seeds=val_seeds, crop=crop, device=args.device,
                                  composites=tuple(args.composites), composite_share=args.composite_share,
                                  init=args.init)
    summary = train(cfg, resume=args.resume, command=tuple(getattr(args, "command_line", ())))
    last = summary["history"][-1] if summary["history"] else {}
    print(f"trained {cfg.steps} steps on {summary['frames']} frames in {summary['seconds']} s ({summary['device']}); "
          f"validation: visible overlap F {last.get('overlap_f', float('nan')):.3f}, boundary F "
          f"{last.get('boundary_f', float('nan')):.3f}, order accuracy {last.get('order_accuracy', float('nan')):.3f}")
    if args.install:
        _install(Path(cfg.out), ("segmentation.pt", "MODEL_CARD.segmentation.md"), WEIGHTS_DIR)
    return 0


def _install(out: Path, names: tuple[str, ...], weights_dir: Path) -> None:
    weights_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(out / name, weights_dir / name)
    print(f"installed {', '.join(names)} in {weights_dir}")
