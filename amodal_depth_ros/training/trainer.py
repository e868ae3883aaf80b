"""Train the amodal mask network and the SPADE amodal depth network on procedural rooms.

Samples are rendered once into a cache (in parallel processes, seeded per frame), then both networks
train on it jointly: mask loss = binary cross-entropy, weighted towards the pixels under occluders
(where the answer is not simply the visible mask); depth loss = L1 of the log depth ratio on the
hidden part plus a tenth of it on the visible part. Checkpoints hold both networks, the optimiser,
the step and the random state, so ``resume`` continues exactly.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..datasets.composite_set import iter_composite_set
from ..networks.amodal_nets import AmodalMaskNet, SpadeAmodalDepthNet
from ..networks.checkpoints import WEIGHTS_DIR, load_weights
from ..networks.crops import CROP_SIZE as CROP
from ..networks.crops import with_nearest_fill
from ..pipeline import AmodalDepthPipeline
from ..runtime.devices import select_device
from ..synthetic.procedural import generate
from ..synthetic.tabletop import generate_tabletop
from .samples import SampleBatch, frame_samples, segmented_samples


@dataclass
class TrainConfig:
    out: str = "out/train"
    train_seeds: tuple[int, int] = (10_000, 14_000)   # [start, stop): disjoint from eval seeds 0..9999
    val_seeds: tuple[int, int] = (1_000_000, 1_000_200)
    width: int = 320
    height: int = 240
    steps: int = 6000
    batch: int = 64
    lr: float = 2e-3
    seed: int = 0
    workers: int = 2
    checkpoint_every: int = 500
    device: str = "auto"
    composites: tuple[str, ...] = ()   # composite sets (`amodal-depth composites`) added to the training data
    composite_share: float = 0.0       # fraction of each batch drawn from the composites (0: in proportion to size)
    init: str = ""                     # folder with amodal_mask.pt + amodal_depth.pt to start from (fine-tuning)
    # Seeds [start, stop) (empty: none) of the rooms and table tops whose mask samples are cut from the learned
    # segmenter's instances (``segmented_samples``), drawn as ``segmented_share`` of each batch.
    segmented: tuple[int, int] = (0, 0)
    segmented_share: float = 0.0
    mask_only: bool = False            # train the amodal mask network only; the depth network stays as initialised


def _render_samples(args: tuple[int, int, int, bool]) -> SampleBatch | None:
    seed, width, height, noise = args
    return frame_samples(generate(seed, width, height), np.random.default_rng([seed, 7]), noise)


def build_cache(path: Path, seeds: tuple[int, int], cfg: TrainConfig, noise: bool, desc: str) -> SampleBatch:
    """Samples of frames ``range(*seeds)``, rendered in ``cfg.workers`` processes; cached in ``path``."""
    def render() -> list[SampleBatch]:
        jobs = [(seed, cfg.width, cfg.height, noise) for seed in range(*seeds)]
        if cfg.workers <= 1:
            return [b for b in map(_render_samples, tqdm(jobs, desc=desc, unit="frame")) if b is not None]
        with get_context("spawn").Pool(cfg.workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            return [b for b in tqdm(pool.imap(_render_samples, jobs, chunksize=8), total=len(jobs), desc=desc,
                                    unit="frame") if b is not None]
    return _cached(path, seeds, render)


def build_segmented_cache(path: Path, cfg: TrainConfig) -> SampleBatch:
    """``segmented_samples`` of the procedural rooms and table tops of the seeds ``cfg.segmented``, segmented by the
    default pipeline (one process: the segmenter's runtime uses the cores); cached in ``path``."""
    def segment() -> list[SampleBatch]:
        pipeline = AmodalDepthPipeline({"inference.device": "cpu"} if cfg.device == "cpu" else {})
        # A room and a table top of each seed: the segmenter's errors differ between the two (clutter on a table).
        jobs = [(kind, seed) for seed in range(*cfg.segmented) for kind in (generate, generate_tabletop)]
        batches = (segmented_samples(make(seed, cfg.width, cfg.height), pipeline,
                                     np.random.default_rng([seed, 11, k % 2]))
                   for k, (make, seed) in enumerate(jobs))
        return [b for b in tqdm(batches, total=len(jobs), desc="segmenting training frames", unit="frame")
                if b is not None]
    return _cached(path, cfg.segmented, segment)


def _cached(path: Path, seeds: tuple[int, int], make: Callable[[], list[SampleBatch]]) -> SampleBatch:
    """The samples cached in ``path`` for ``seeds``; else ``make()``'s, cached there."""
    if path.is_file():
        with np.load(path) as data:
            if tuple(data["seeds"]) == tuple(seeds):
                return SampleBatch(*(data[f] for f in SampleBatch.FIELDS))
    samples = SampleBatch.concatenate(make())
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, seeds=np.array(seeds), **{f: getattr(samples, f) for f in SampleBatch.FIELDS})
    os.replace(tmp, path)
    return samples


def composite_samples(folders: tuple[str, ...], seed: int) -> list[SampleBatch]:
    """Samples of real-image composites; their depth is a real sensor's, so no noise is added."""
    rng = np.random.default_rng(seed)
    frames = (frame for folder in folders for frame in iter_composite_set(Path(folder)))
    return [b for b in (frame_samples(f, rng, noise=False) for f in tqdm(frames, desc="composites", unit="frame"))
            if b is not None]


def _tensors(samples: SampleBatch, index: np.ndarray, device: torch.device) -> list[torch.Tensor]:
    arrays = [getattr(samples, f)[index].astype(np.float32) for f in SampleBatch.FIELDS]
    arrays[2] = with_nearest_fill(arrays[2])   # depth inputs: the baseline the network corrects, as at run time
    return [torch.from_numpy(a).to(device) for a in arrays]


def initial_weights(init: str) -> Path:
    """The folder ``TrainConfig.init`` names: 'package' is the shipped weights."""
    return WEIGHTS_DIR if init == "package" else Path(init)


def _draw(rng: np.random.Generator, cfg: TrainConfig, rendered: int, total: int, segmented: int = 0) -> np.ndarray:
    """Sample indices of one batch: rendered rooms are [0, rendered), composites [rendered, total - segmented),
    segmented samples the last ``segmented`` (``cfg.segmented_share`` of the batch)."""
    plain = total - segmented
    if not cfg.composite_share or plain == rendered:
        index = rng.integers(0, plain, cfg.batch)
    else:
        from_composites = rng.random(cfg.batch) < cfg.composite_share
        index = np.where(from_composites, rng.integers(rendered, plain, cfg.batch),
                         rng.integers(0, rendered, cfg.batch))
    if segmented:
        from_segmented = rng.random(cfg.batch) < cfg.segmented_share
        index = np.where(from_segmented, rng.integers(plain, total, cfg.batch), index)
    return index


def losses(
    mask_net: AmodalMaskNet, depth_net: SpadeAmodalDepthNet, batch: list[torch.Tensor], train_depth: bool = True
) -> dict[str, torch.Tensor]:
    """The two losses (and the hidden-pixel L1); without ``train_depth`` the depth loss is reported, not trained."""
    mask_in, mask_target, depth_in, amodal, target, valid = batch
    weight = 0.1 + mask_in[:, 1]                  # the decision only matters under occluders
    mask_loss = (F.binary_cross_entropy_with_logits(mask_net(mask_in), mask_target, reduction="none") * weight).sum() \
        / weight.sum()
    with torch.set_grad_enabled(train_depth and torch.is_grad_enabled()):
        error = (depth_net(depth_in, amodal) - target).abs() * valid
    hidden = valid * (1 - depth_in[:, 0])
    depth_loss = (error * (hidden + 0.1 * (valid - hidden))).sum() / (hidden.sum() + 0.1 * (valid - hidden).sum() + 1)
    with torch.no_grad():
        hidden_l1 = (error * hidden).sum() / hidden.sum().clamp(min=1)
    return {"mask": mask_loss, "depth": depth_loss, "hidden_l1": hidden_l1}


@torch.no_grad()
def validate(mask_net: AmodalMaskNet, depth_net: SpadeAmodalDepthNet, samples: SampleBatch,
             device: torch.device) -> dict[str, float]:
    """Occluded-part mask IoU and mean |log ratio| error on hidden pixels (~ relative depth error)."""
    mask_net.eval(), depth_net.eval()
    inter = union = 0.0
    err = count = 0.0
    for start in range(0, len(samples), 256):
        batch = _tensors(samples, np.arange(start, min(start + 256, len(samples))), device)
        mask_in, mask_target, depth_in, amodal, target, valid = batch
        occluder = mask_in[:, 1] > 0.5
        pred = (mask_net(mask_in) > 0) & occluder
        truth = (mask_target > 0.5) & occluder
        inter += float((pred & truth).sum())
        union += float((pred | truth).sum())
        hidden = valid * (1 - depth_in[:, 0])
        err += float(((depth_net(depth_in, amodal) - target).abs() * hidden).sum())
        count += float(hidden.sum())
    mask_net.train(), depth_net.train()
    return {"occluded_iou": inter / max(union, 1.0), "hidden_log_l1": err / max(count, 1.0)}


def train(cfg: TrainConfig, resume: bool = False, command: tuple[str, ...] = ()) -> dict:
    """Train; ``command`` is the command line recorded in the summary and model card."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = select_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train_set = build_cache(out / "train_cache.npz", cfg.train_seeds, cfg, True, "rendering training frames")
    rendered = len(train_set)
    if cfg.composites:
        train_set = SampleBatch.concatenate([train_set, *composite_samples(cfg.composites, cfg.seed)])
    segmented = 0
    if cfg.segmented[1] > cfg.segmented[0]:
        segmented_set = build_segmented_cache(out / "segmented_cache.npz", cfg)
        segmented = len(segmented_set)
        train_set = SampleBatch.concatenate([train_set, segmented_set])
    val_set = build_cache(out / "val_cache.npz", cfg.val_seeds, cfg, True, "rendering validation frames")
    mask_net, depth_net = AmodalMaskNet(), SpadeAmodalDepthNet()
    if cfg.init:
        load_weights(mask_net, initial_weights(cfg.init) / "amodal_mask.pt", "initial amodal mask").train()
        load_weights(depth_net, initial_weights(cfg.init) / "amodal_depth.pt", "initial amodal depth").train()
    mask_net, depth_net = mask_net.to(device), depth_net.to(device)
    params = list(mask_net.parameters()) + ([] if cfg.mask_only else list(depth_net.parameters()))
    optimiser = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(s / cfg.steps, 1.0))))
    rng = np.random.default_rng(cfg.seed)
    step, history = 0, []
    checkpoint_path = out / "checkpoint.pt"
    if resume and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        mask_net.load_state_dict(state["mask_net"]), depth_net.load_state_dict(state["depth_net"])
        optimiser.load_state_dict(state["optimiser"]), schedule.load_state_dict(state["schedule"])
        rng.bit_generator.state, step, history = state["rng"], state["step"], state["history"]
        torch.set_rng_state(state["torch_rng"])

    def save() -> None:
        tmp = checkpoint_path.with_suffix(".tmp")
        torch.save(
            {
                "mask_net": mask_net.state_dict(),
                "depth_net": depth_net.state_dict(),
                "optimiser": optimiser.state_dict(),
                "schedule": schedule.state_dict(),
                "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "step": step,
                "history": history,
                "config": asdict(cfg),
            },
            tmp,
        )
        os.replace(tmp, checkpoint_path)

    start = time.perf_counter()
    progress = tqdm(total=cfg.steps, initial=step, desc="training", unit="step")
    while step < cfg.steps:
        batch = _tensors(train_set, _draw(rng, cfg, rendered, len(train_set), segmented), device)
        loss = losses(mask_net, depth_net, batch, train_depth=not cfg.mask_only)
        optimiser.zero_grad(set_to_none=True)
        (loss["mask"] if cfg.mask_only else loss["mask"] + loss["depth"]).backward()
        optimiser.step()
        schedule.step()
        step += 1
        progress.update()
        progress.set_postfix(mask=f"{loss['mask'].item():.3f}", depth=f"{loss['depth'].item():.4f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            metrics = validate(mask_net, depth_net, val_set, device)
            history.append({"step": step, **{k: float(v.detach()) for k, v in loss.items()}, **metrics})
            progress.write(json.dumps(history[-1]))
            save()
    progress.close()
    for name, net in (("amodal_mask.pt", mask_net), ("amodal_depth.pt", depth_net)):
        torch.save({"model": {k: v.cpu() for k, v in net.state_dict().items()},
                    "meta": {"config": asdict(cfg), "steps": step, "validation": history[-1] if history else {}}},
                   out / name)
    summary = {
        "argv": list(command),
        "config": asdict(cfg),
        "train_samples": len(train_set),
        "val_samples": len(val_set),
        "device": str(device),
        "composite_samples": len(train_set) - rendered - segmented,
        "segmented_samples": segmented,
        "seconds": round(time.perf_counter() - start, 1),
        "history": history,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(model_card(summary, mask_net, depth_net))
    return summary


def model_card(summary: dict, mask_net: torch.nn.Module, depth_net: torch.nn.Module) -> str:
    """What was trained, on what, how, and how it validated: travels with the weights."""
    cfg, last = summary["config"], (summary["history"][-1] if summary["history"] else {})
    count = lambda net: sum(p.numel() for p in net.parameters())   # noqa: E731
    train_seeds, val_seeds = cfg["train_seeds"], cfg["val_seeds"]
    composites = summary.get("composite_samples", 0)
    segmented = summary.get("segmented_samples", 0)
    rendered = summary["train_samples"] - composites - segmented
    sources = _composites_text(cfg, composites) + _segmented_text(cfg, segmented)
    only = " (the amodal mask network only; the depth network as initialised)" if cfg.get("mask_only") else ""
    return f"""# Amodal mask and SPADE amodal depth networks

Trained by this package's own command:

    {" ".join(summary.get("argv", []))}

- **amodal_mask.pt**: `AmodalMaskNet` (U-Net, {count(mask_net):,} parameters), input a {CROP}x{CROP} crop around
  the visible part: visible mask, occluder mask (completed amodal masks of the instances in front),
  log depth ratio to the median visible depth and its validity, image border. Output: amodal mask
  logits; only pixels under occluders can become hidden parts.
- **amodal_depth.pt**: `SpadeAmodalDepthNet` (encoder + SPADE decoder, {count(depth_net):,} parameters), the same
  inputs around the amodal mask plus the amodal mask and the crop's nearest-visible fill; SPADE
  conditioning on amodal mask, visible mask, visible log depth and that fill. Residual: output = fill +
  a learned correction (zero when untrained), as a log depth ratio; aligned by scale and shift on the
  visible part.
- **Data**: procedural rooms (`amodal_depth_ros.synthetic.procedural`), {cfg["width"]}x{cfg["height"]},
  training seeds {train_seeds[0]}..{train_seeds[1] - 1} ({rendered} object samples){sources};
  validation seeds {val_seeds[0]}..{val_seeds[1] - 1} ({summary["val_samples"]} samples); rendered depth with
  structured-light noise.
  Evaluation seeds 0..9999 and the evaluation composites are never trained on. No external weights.
{_init_text(cfg["init"])}- **Training**{only}: {cfg["steps"]} steps of batch {cfg["batch"]}, AdamW lr {cfg["lr"]}
  (cosine), seed {cfg["seed"]}, {summary["device"]}, {summary["seconds"]:.0f} s, torch {torch.__version__}.
- **Validation** (last checkpoint): occluded-part mask IoU {last.get("occluded_iou", float("nan")):.3f},
  mean |log depth ratio error| on hidden pixels {last.get("hidden_log_l1", float("nan")):.4f}.
"""


def _composites_text(cfg: dict, samples: int) -> str:
    if not cfg["composites"]:
        return ""
    sources = []
    for folder in cfg["composites"]:
        index = Path(folder) / "index.json"
        source = json.loads(index.read_text()).get("source", "?") if index.is_file() else "?"
        sources.append(f"`{folder}` (from {source})")
    share = f"{cfg['composite_share']:.0%} of each batch" if cfg["composite_share"] else "drawn in proportion"
    return f", plus {samples} samples of the composite sets {', '.join(sources)}, {share}"


def _segmented_text(cfg: dict, samples: int) -> str:
    if not samples:
        return ""
    start, stop = cfg["segmented"]
    return (f", plus {samples} samples of the rooms and table tops of seeds {start}..{stop - 1} whose mask inputs "
            f"are cut from the instances of "
            f"the package's learned segmentation (`segmented_samples`), {cfg['segmented_share']:.0%} of each batch")


def _init_text(init: str) -> str:
    """Fine-tuned weights name where they started, and the command that trained those."""
    if not init:
        return ""
    card = initial_weights(init) / "MODEL_CARD.md"
    commands = [line.strip() for line in card.read_text().splitlines() if line.startswith("    amodal-depth")] \
        if card.is_file() else []
    origin = f", which were trained by `{commands[0]}`" if commands else ""
    where = "the package's shipped weights" if init == "package" else f"the weights in `{init}`"
    return f"- **Initialised from** {where}{origin}.\n"
