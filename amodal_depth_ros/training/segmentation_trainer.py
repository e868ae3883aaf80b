"""Train the segmentation network on procedural rooms and table tops (and, optionally, composite sets).

Frames are rendered once into a memory-mapped cache (``segmentation_samples.FrameCache``, in parallel
processes, seeded per frame). Every training batch is a pure function of (seed, step): crops, sensor
noise and colour jitter are drawn from ``np.random.default_rng([seed, step, k])``, prepared one step
ahead in a worker process. So a run resumed from its checkpoint (network, optimiser, schedule, step)
continues exactly. Loss: binary cross-entropy of the outline map (outline pixels weighted up), of the
structure map, and of the occluder map on outline pixels. Validation segments whole held-out frames
with the stage's own decoding and scores them with the UOIS protocol.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..core import config
from ..core.occlusion import BoundaryDepthOrder
from ..datasets.composite_set import iter_composite_set, read_composite_set
from ..evaluation.segmentation import SegmentationTable, score_segmentation
from ..groundtruth import GroundTruthFrame
from ..learned.segmentation import decode
from ..networks.checkpoints import WEIGHTS_DIR, load_weights
from ..networks.segmentation_net import SegmentationNet, network_size, segmentation_inputs
from ..runtime.devices import select_device
from ..synthetic.procedural import generate
from ..synthetic.tabletop import generate_tabletop
from .segmentation_samples import UNKNOWN, FrameCache, cache_row, training_crop

SOURCES = {"rooms": generate, "tabletop": generate_tabletop}


@dataclass
class SegmentationTrainConfig:
    out: str = "out/train_segmentation"
    room_seeds: tuple[int, int] = (10_000, 15_000)        # [start, stop): eval uses 0..9999
    tabletop_seeds: tuple[int, int] = (10_000, 15_000)
    val_seeds: tuple[int, int] = (1_000_000, 1_000_040)   # of each source
    width: int = 320
    height: int = 240
    crop: tuple[int, int] = (160, 160)                    # (w, h) of the training crops
    steps: int = 12_000
    batch: int = 16
    lr: float = 2e-3
    seed: int = 0
    workers: int = 2
    checkpoint_every: int = 1000
    device: str = "auto"
    composites: tuple[str, ...] = ()     # composite sets added as partly labelled frames
    composite_share: float = 0.0         # fraction of each batch drawn from them (0: in proportion to size)
    init: str = ""                       # segmentation.pt to start from (fine-tuning); 'package' = shipped
    boundary_weight: float = 3.0         # outline pixels weigh this much more than the rest


def _render(args: tuple[str, int, int, int]) -> dict[str, np.ndarray]:
    """The cache row of one rendered frame, made in the worker: only compact arrays cross the pipe."""
    source, seed, width, height = args
    return cache_row(SOURCES[source](seed, width, height), width, height, rendered=True)


def build_cache(folder: Path, cfg: SegmentationTrainConfig, jobs: list[tuple[str, int]], desc: str,
                composites: tuple[str, ...] = ()) -> FrameCache:
    """Render ``jobs`` (source, seed) and load ``composites`` into a cache in ``folder`` (reused when it
    holds the same frames)."""
    meta = {"jobs": [list(j) for j in jobs], "composites": list(composites), "size": [cfg.width, cfg.height]}
    if (folder / "cache.json").is_file() and json.loads((folder / "cache.json").read_text()) == meta:
        return FrameCache.open(folder)
    composite_count = sum(len(read_composite_set(Path(c))) for c in composites)
    cache = FrameCache.create(folder, len(jobs) + composite_count, cfg.height, cfg.width)
    tasks = [(source, seed, cfg.width, cfg.height) for source, seed in jobs]
    with get_context("spawn").Pool(max(1, cfg.workers), initializer=torch.set_num_threads, initargs=(1,)) as pool:
        for index, row in enumerate(tqdm(pool.imap(_render, tasks, chunksize=4), total=len(tasks), desc=desc,
                                         unit="frame")):
            cache.put(index, row)
    composite_frames = (f for c in composites for f in iter_composite_set(Path(c)))   # one at a time: 640x480 each
    for k, truth in enumerate(tqdm(composite_frames, total=composite_count, desc="composites", unit="frame",
                                   disable=not composite_count)):
        cache.put(len(jobs) + k, cache_row(truth, cfg.width, cfg.height, rendered=False, partial=True))
    cache.flush(folder, meta)
    return FrameCache.open(folder)


_WORKER: dict = {}


def _init_worker(folder: str) -> None:
    torch.set_num_threads(1)
    _WORKER["cache"] = FrameCache.open(Path(folder))


def make_batch(args: tuple[SegmentationTrainConfig, int, int]) -> tuple[np.ndarray, ...]:
    """The batch of training step ``step``: a pure function of (cfg.seed, step) and the cache."""
    cfg, step, rendered_count = args
    cache: FrameCache = _WORKER["cache"]
    rng = np.random.default_rng([cfg.seed, step])
    total = len(cache)
    if cfg.composite_share and total > rendered_count:
        from_composites = rng.random(cfg.batch) < cfg.composite_share
        index = np.where(from_composites, rng.integers(rendered_count, total, cfg.batch),
                         rng.integers(0, rendered_count, cfg.batch))
    else:
        index = rng.integers(0, total, cfg.batch)
    crops = [training_crop(cache, int(i), np.random.default_rng([cfg.seed, step, k]), cfg.crop)
             for k, i in enumerate(index)]
    return tuple(np.stack([getattr(c, f) for c in crops]) for f in ("inputs", "boundary", "structure", "occluder"))


def losses(net: SegmentationNet, batch: list[torch.Tensor], boundary_weight: float) -> dict[str, torch.Tensor]:
    inputs, boundary, structure, occluder = batch
    logits = net(inputs)

    def bce(logit: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        loss = F.binary_cross_entropy_with_logits(logit, target.clamp(max=1).float(), reduction="none")
        return (loss * weight).sum() / weight.sum().clamp(min=1.0)

    known = (boundary != UNKNOWN).float()
    outline = (boundary == 1).float()
    out = {"boundary": bce(logits[:, 0], boundary, known * (1.0 + (boundary_weight - 1.0) * outline)),
           "structure": bce(logits[:, 1], structure, (structure != UNKNOWN).float()),
           "occluder": bce(logits[:, 2], occluder, (occluder != UNKNOWN).float())}
    out["total"] = out["boundary"] + 0.5 * out["structure"] + 0.5 * out["occluder"]
    return out


def validation_frames(cfg: SegmentationTrainConfig) -> list[GroundTruthFrame]:
    return [SOURCES[s](seed, cfg.width, cfg.height) for s in SOURCES for seed in range(*cfg.val_seeds)]


@torch.no_grad()
def validate(net: SegmentationNet, frames: list[GroundTruthFrame], device: torch.device) -> dict[str, float]:
    """UOIS scores of whole held-out frames, segmented as the stage does (clean rendered depth)."""
    net.eval()
    table, order = SegmentationTable(), BoundaryDepthOrder(config.Settings.from_values().occlusion)
    for truth in frames:
        size = network_size(truth.intrinsics.width, truth.intrinsics.height, max(truth.depth.shape))
        x = torch.from_numpy(segmentation_inputs(truth.rgb, truth.depth, truth.intrinsics, size)[None]).to(device)
        segmentation = decode(net(x)[0].float().cpu().numpy(), truth.depth, 6, 0.04)
        graph = order(segmentation, truth.depth, truth.intrinsics)
        table.add("learned", score_segmentation(truth, segmentation.labels, graph))
    net.train()
    s = table.summary()["learned"]
    return {"overlap_f": s["visible"]["overlap_f"], "boundary_f": s["visible"]["boundary_f"],
            "f75": s["visible"]["f75"], "order_accuracy": s["order"]["accuracy"]}


def initial_weights(init: str) -> Path:
    return WEIGHTS_DIR / "segmentation.pt" if init == "package" else Path(init)


def train(cfg: SegmentationTrainConfig, resume: bool = False, command: tuple[str, ...] = ()) -> dict:
    """Train; ``command`` is the command line recorded in the summary and model card."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = select_device(cfg.device)
    torch.manual_seed(cfg.seed)
    jobs = [("rooms", s) for s in range(*cfg.room_seeds)] + [("tabletop", s) for s in range(*cfg.tabletop_seeds)]
    cache_folder = out / "frames"
    cache = build_cache(cache_folder, cfg, jobs, "rendering training frames", cfg.composites)
    val_frames = validation_frames(cfg)
    net = SegmentationNet()
    if cfg.init:
        load_weights(net, initial_weights(cfg.init), "initial segmentation").train()
    # Module.to takes memory_format (documented); its overloads omit it.
    net = net.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimiser = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / 300) * 0.5 * (1 + math.cos(math.pi * min(s / cfg.steps, 1.0))))
    step, history, runs, seconds_before = 0, [], [], 0.0
    checkpoint_path = out / "checkpoint.pt"
    if resume and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        net.load_state_dict(state["net"]), optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        step, history = state["step"], state["history"]
        runs, seconds_before = state.get("runs", []), state.get("seconds", 0.0)
    # Every command that trained these weights, with the step it started from: a resumed run's card
    # names the whole sequence, and its time is the sum.
    runs = [*runs, {"argv": list(command), "from_step": step}]

    def save() -> None:
        tmp = checkpoint_path.with_suffix(".tmp")
        torch.save({"net": net.state_dict(), "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(),
                    "step": step, "history": history, "config": asdict(cfg), "runs": runs,
                    "seconds": seconds_before + time.perf_counter() - start}, tmp)
        os.replace(tmp, checkpoint_path)

    start = time.perf_counter()
    progress = tqdm(total=cfg.steps, initial=step, desc="training segmentation", unit="step")
    with get_context("spawn").Pool(max(1, cfg.workers - 1), initializer=_init_worker,
                                   initargs=(str(cache_folder),)) as pool:
        ahead = cfg.workers + 1   # batches prepared ahead of the step that needs them
        pending = {s: pool.apply_async(make_batch, ((cfg, s, len(jobs)),))
                   for s in range(step, min(step + ahead, cfg.steps))}
        while step < cfg.steps:
            arrays = pending.pop(step).get()
            if step + ahead < cfg.steps:
                pending[step + ahead] = pool.apply_async(make_batch, ((cfg, step + ahead, len(jobs)),))
            batch = [torch.from_numpy(a).to(device) for a in arrays]
            batch[0] = batch[0].contiguous(memory_format=torch.channels_last)
            loss = losses(net, batch, cfg.boundary_weight)
            optimiser.zero_grad(set_to_none=True)
            loss["total"].backward()
            optimiser.step()
            schedule.step()
            step += 1
            progress.update()
            progress.set_postfix({k: f"{v.item():.3f}" for k, v in loss.items()})
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                metrics = validate(net, val_frames, device)
                history.append({"step": step, **{k: float(v.detach()) for k, v in loss.items()}, **metrics})
                progress.write(json.dumps(history[-1]))
                save()
    progress.close()
    torch.save({"model": {k: v.cpu().contiguous() for k, v in net.state_dict().items()},
                "meta": {"config": asdict(cfg), "steps": step, "validation": history[-1] if history else {}}},
               out / "segmentation.pt")
    summary = {"argv": list(command), "runs": runs,
               "config": asdict(cfg), "frames": len(cache), "rendered_frames": len(jobs), "device": str(device),
               "seconds": round(seconds_before + time.perf_counter() - start, 1), "history": history}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "MODEL_CARD.segmentation.md").write_text(model_card(summary, net))
    return summary


def model_card(summary: dict, net: torch.nn.Module) -> str:
    """What was trained, on what, how, and how it validated: travels with the weights."""
    cfg, last = summary["config"], (summary["history"][-1] if summary["history"] else {})

    def metric(key: str) -> str:
        return f"{last.get(key, float('nan')):.3f}"
    rooms, tabletops, val = cfg["room_seeds"], cfg["tabletop_seeds"], cfg["val_seeds"]
    composites = summary["frames"] - summary["rendered_frames"]
    extra = ""
    if cfg["composites"]:
        share = f"{cfg['composite_share']:.0%} of each batch" if cfg["composite_share"] else "drawn in proportion"
        extra = (f", plus {composites} frames of the composite sets {', '.join(f'`{c}`' for c in cfg['composites'])} "
                 f"(only their target and occluder labelled), {share}")
    init = ""
    if cfg["init"]:
        init = f"- **Initialised from** `{cfg['init']}`.\n"
    commands = "\n    ".join(" ".join(run["argv"]) + (f"    # from step {run['from_step']}" if run["from_step"] else "")
                              for run in summary.get("runs", [{"argv": summary.get("argv", []), "from_step": 0}]))
    return f"""# Segmentation network

Trained by this package's own command:

    {commands}

- **segmentation.pt**: `SegmentationNet` (encoder-decoder, {sum(p.numel() for p in net.parameters()):,} parameters).
  Input per pixel at the network's resolution: log depth ratio to the frame's median depth, its validity,
  the surface normal from the back-projected depth, RGB. Output per pixel: instance outline, room
  structure, and on outlines whether this side hides the other (occlusion order of touching neighbours).
  Instances are the regions the outlines enclose (`learned.segmentation`).
- **Data**: {cfg["width"]}x{cfg["height"]} frames rendered by the package: procedural rooms
  (`synthetic.procedural`, seeds {rooms[0]}..{rooms[1] - 1}) and table tops (`synthetic.tabletop`, seeds
  {tabletops[0]}..{tabletops[1] - 1}: objects touching, stacked and lying){extra}. Per step, random crops of
  {cfg["crop"][0]}x{cfg["crop"][1]} at scales 0.7-1.4 (varied focal lengths), mirrored, with RealSense/Kinect-like
  depth (quantisation, noise, flying pixels, projector shadows, holes; `synthetic.sensor`) and colour jitter.
  Validation: seeds {val[0]}..{val[1] - 1} of each kind. Evaluation seeds 0..9999 and the evaluation composites
  are never trained on. No external weights or data.
{init}- **Training**: {cfg["steps"]} steps of batch {cfg["batch"]}, AdamW lr {cfg["lr"]} (cosine), seed {cfg["seed"]},
  {summary["device"]}, {summary["seconds"]:.0f} s, torch {torch.__version__}.
- **Validation** (last checkpoint, whole frames, UOIS protocol): visible overlap F {metric("overlap_f")},
  boundary F {metric("boundary_f")}, F@.75 {metric("f75")}, occlusion-order accuracy {metric("order_accuracy")}.
"""
