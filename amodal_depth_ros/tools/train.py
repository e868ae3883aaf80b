"""Train the amodal mask and SPADE amodal depth networks on procedural rooms (CPU, or CUDA when present).

Renders the training and validation frames once into OUT (train_cache.npz, val_cache.npz; reused
while the seed ranges stay the same), trains both networks jointly with progress, validates and
checkpoints every --checkpoint-every steps (OUT/checkpoint.pt; --resume continues from it), and
writes OUT/amodal_mask.pt, OUT/amodal_depth.pt and OUT/summary.json. --install copies the two weight
files into the package (amodal_depth_ros/models/weights), where the node loads them by default.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import fields
from pathlib import Path

from ..datasets.sources import parse_seeds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..training.trainer import TrainConfig   # defaults shown in --help come from the one config class
    d = TrainConfig()
    parser.add_argument("--out", default=d.out, help=f"output folder (default: {d.out})")
    parser.add_argument("--train-seeds", default=f"{d.train_seeds[0]}-{d.train_seeds[1] - 1}",
                        help="seed range of training frames (default: %(default)s; eval uses 0-9999)")
    parser.add_argument("--val-seeds", default=f"{d.val_seeds[0]}-{d.val_seeds[1] - 1}", help="validation seeds")
    for name in ("steps", "batch", "lr", "seed", "workers", "checkpoint_every", "width", "height"):
        value = getattr(d, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value, help=f"(default: {value})")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device, help="(default: auto)")
    parser.add_argument("--composites", action="append", default=[], metavar="DIR",
                        help="a composite set to add to the training data (repeatable; never the evaluation set)")
    parser.add_argument("--composite-share", type=float, default=d.composite_share, metavar="F",
                        help="fraction of each batch drawn from the composite sets (default: 0 = in proportion)")
    parser.add_argument("--init", default=d.init, metavar="DIR",
                        help="start from the amodal_mask.pt and amodal_depth.pt in DIR (fine-tuning; 'package' = "
                             "the shipped weights)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--install", action="store_true", help="copy the trained weights into the package")


def run(args: argparse.Namespace) -> int:
    from ..models.stages import WEIGHTS_DIR
    from ..training.trainer import TrainConfig, initial_weights, train
    try:
        train_seeds, val_seeds = parse_seeds(args.train_seeds), parse_seeds(args.val_seeds)
    except ValueError as exc:
        print(f"amodal-depth train: {exc}", file=sys.stderr)
        return 2
    if set(train_seeds) & set(val_seeds) or train_seeds.start < 10_000:
        print("amodal-depth train: training seeds must be >= 10000 (0-9999 are held out for eval) and disjoint "
              "from the validation seeds", file=sys.stderr)
        return 2
    if not 0.0 <= args.composite_share < 1.0 or (args.composite_share and not args.composites):
        print("amodal-depth train: --composite-share must be in [0, 1) and needs --composites", file=sys.stderr)
        return 2
    if args.init and not all((initial_weights(args.init) / n).is_file() for n in ("amodal_mask.pt", "amodal_depth.pt")):
        print(f"amodal-depth train: --init {args.init} lacks amodal_mask.pt or amodal_depth.pt", file=sys.stderr)
        return 2
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    cfg = TrainConfig(**{**values, "train_seeds": (train_seeds.start, train_seeds.stop),
                         "val_seeds": (val_seeds.start, val_seeds.stop), "composites": tuple(args.composites)})
    summary = train(cfg, resume=args.resume)
    last = summary["history"][-1] if summary["history"] else {}
    print(f"trained {cfg.steps} steps on {summary['train_samples']} samples in {summary['seconds']} s ({summary['device']}); "
          f"validation: occluded mask IoU {last.get('occluded_iou', float('nan')):.3f}, "
          f"hidden |log ratio| {last.get('hidden_log_l1', float('nan')):.4f}")
    if args.install:
        WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("amodal_mask.pt", "amodal_depth.pt", "MODEL_CARD.md"):
            shutil.copyfile(Path(cfg.out) / name, WEIGHTS_DIR / name)
        print(f"installed the weights in {WEIGHTS_DIR}")
    return 0
