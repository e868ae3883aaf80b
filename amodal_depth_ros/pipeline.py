"""The amodal depth pipeline: stages chosen by configuration, run in one direction, timed.

It composes the training-free stages of ``core`` and the learned ones of ``learned``, so it sits above
both: ``core`` never imports ``learned``.

    frame -> visible depth -> segmentation -> occlusion order -> amodal masks -> amodal depth
          -> hidden layers -> amodal depth image + completed cloud
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from .core import config
from .core.amodal_depth import NearestVisibleFill, PlaneFitCompletion, TeleaInpaintFill
from .core.amodal_mask import ConvexHullCompletion
from .core.cloud import build_layered_cloud
from .core.layers import amodal_depth_image, stack_hidden_surfaces
from .core.occlusion import BoundaryDepthOrder
from .core.segmentation import GeometricSegmenter
from .core.types import AmodalInstance, CameraIntrinsics, OcclusionGraph, PipelineResult, RGBDFrame, Segmentation
from .core.visible_depth import DepthFromTopic
from .errors import ConfigError, ModelLoadError


class VisibleDepthStage(Protocol):
    def __call__(self, frame: RGBDFrame) -> np.ndarray: ...


class SegmentationStage(Protocol):
    def __call__(self, frame: RGBDFrame, depth: np.ndarray) -> Segmentation: ...


class OcclusionStage(Protocol):
    def __call__(self, segmentation: Segmentation, depth: np.ndarray,
                 intrinsics: CameraIntrinsics) -> OcclusionGraph: ...


class AmodalMaskStage(Protocol):
    def __call__(self, segmentation: Segmentation, occlusion: OcclusionGraph,
                 depth: np.ndarray) -> Mapping[int, np.ndarray]: ...   # AmodalMasks: crops of the frame


class AmodalDepthStage(Protocol):
    def __call__(self, frame: RGBDFrame, depth: np.ndarray, segmentation: Segmentation,
                 occlusion: OcclusionGraph, amodal_masks: Mapping[int, np.ndarray]) -> list[AmodalInstance]: ...


def _learned() -> Any:
    """The learned stages, imported on first use: torch is only needed when they are configured."""
    from .learned import amodal as stages
    return stages


def _learned_segmentation() -> Any:
    """The learned segmentation stage, imported on first use (torch)."""
    from .learned import segmentation as learned_segmentation
    return learned_segmentation


def _monocular(s: config.Settings) -> Any:
    """Depth Anything V2 visible depth. No fallback: a checkpoint that cannot be loaded raises ModelLoadError
    naming monocular.checkpoint (the node refuses to start). torch is imported here, only when configured."""
    m = s.monocular
    try:
        from .learned.monocular import MonocularDepth
        from .runtime.devices import inference_device
    except ImportError as exc:
        raise ModelLoadError(
            f"visible_depth.source 'monocular' needs PyTorch, which cannot be imported: {exc}"
        ) from exc
    device, why = inference_device(s.inference.device)
    try:
        return MonocularDepth.from_checkpoint(
            m.checkpoint, encoder=m.encoder or None, metric_max_depth=m.metric_max_depth or None, device=device.type,
            device_fallback=why,
            input_size=m.input_size, fill_only=m.fill_only, min_depth=s.visible_depth.min_depth,
            max_depth=s.visible_depth.max_depth, backend=monocular_backend(s.inference.backend),
            precision=s.inference.precision)
    except ModelLoadError as exc:
        raise ModelLoadError(f"monocular.checkpoint '{m.checkpoint}' cannot be loaded: {exc}") from exc


def monocular_backend(backend: str) -> str:
    """'auto' keeps the monocular network on torch: a user's Depth Anything checkpoint is a ViT whose ONNX
    export at the camera's resolution takes longer than the package's own networks' (those go to onnxruntime
    on the CPU)."""
    return "torch" if backend == "auto" else backend


# Stage name -> method name -> factory taking the typed settings. New models register here.
STAGE_FACTORIES: dict[str, dict[str, Callable[[config.Settings], Any]]] = {
    "visible_depth": {
        "topic": lambda s: DepthFromTopic(s.visible_depth),
        "monocular": _monocular,
    },
    "segmentation": {
        "learned": lambda s: _learned_segmentation().LearnedSegmenter(s.segmentation, s.inference),
        "geometric": lambda s: GeometricSegmenter(s.segmentation),
    },
    "amodal_mask": {
        "convex_hull": lambda s: ConvexHullCompletion(),
        "learned": lambda s: _learned().LearnedAmodalMask(s.amodal_mask, s.inference),
    },
    "amodal_depth": {
        "spade": lambda s: _learned().SpadeAmodalDepth(s.amodal_depth, s.inference),
        "plane_fit": lambda s: PlaneFitCompletion(s.amodal_depth),
        "nearest": lambda s: NearestVisibleFill(s.amodal_depth),
        "telea": lambda s: TeleaInpaintFill(s.amodal_depth),
    },
}

# What serves when a learned stage cannot be loaded (no torch, missing or corrupt weights).
FALLBACKS = {"segmentation": "geometric", "amodal_mask": "convex_hull", "amodal_depth": "plane_fit"}


class AmodalDepthPipeline:
    def __init__(self, params: dict[str, Any] | None = None):
        self.params = config.validated(params or {})
        self.settings = s = config.Settings.from_values(self.params)
        self.visible_depth: VisibleDepthStage = STAGE_FACTORIES["visible_depth"][s.visible_depth.source](s)
        self._load_fallbacks: dict[str, str] = {}   # stage -> why its configured method was replaced at startup
        self.segmentation: SegmentationStage = self._build("segmentation", s.segmentation.method, s)
        self.occlusion: OcclusionStage = BoundaryDepthOrder(s.occlusion)
        self.amodal_mask: AmodalMaskStage = self._build("amodal_mask", s.amodal_mask.method, s)
        self.amodal_depth: AmodalDepthStage = self._build("amodal_depth", s.amodal_depth.method, s)

    def _build(self, stage: str, method: str, s: config.Settings) -> Any:
        try:
            return STAGE_FACTORIES[stage][method](s)
        except (ModelLoadError, ImportError) as exc:
            fallback = FALLBACKS[stage]
            self._load_fallbacks[stage] = f"{stage}.method '{method}' unavailable, using '{fallback}': {exc}"
            return STAGE_FACTORIES[stage][fallback](s)

    def apply_live(self, params: dict[str, Any]) -> None:
        """Take new values of live parameters (``config.LIVE_NAMES``) without rebuilding anything: each stage
        gets its new settings group and reads it from the next frame on. Other changes need a new pipeline."""
        values = config.validated({**self.params, **params})
        changed = {name for name in values if values[name] != self.params[name]}
        if changed - config.LIVE_NAMES:
            raise ConfigError(f"not live: {sorted(changed - config.LIVE_NAMES)} need a new pipeline", "not_live")
        self.params, self.settings = values, config.Settings.from_values(values)
        groups = {"visible_depth": self.settings.visible_depth, "segmentation": self.settings.segmentation,
                  "occlusion": self.settings.occlusion, "amodal_mask": self.settings.amodal_mask,
                  "amodal_depth": self.settings.amodal_depth}
        for name, group in groups.items():
            stage = getattr(self, name)
            if hasattr(stage, "settings"):   # the convex hull has no settings
                stage.settings = group

    def _network_stages(self) -> dict[str, Any]:
        """The stages running a network on inference.backend: monocular visible depth and the learned ones."""
        stages = (("visible_depth", self.visible_depth), ("segmentation", self.segmentation),
                  ("amodal_mask", self.amodal_mask), ("amodal_depth", self.amodal_depth))
        return {name: stage for name, stage in stages if hasattr(stage, "backend_status")}

    @property
    def backend_status(self) -> dict[str, str]:
        """Network stage -> what runs its network now (e.g. 'building tensorrt engine, serving torch on cuda ...')."""
        return {name: stage.backend_status for name, stage in self._network_stages().items()}

    @property
    def fallbacks(self) -> dict[str, str]:
        """Stage -> why its configured method or inference.backend is not the one serving. Read anew each time:
        a TensorRT engine built in the background can fail long after startup."""
        backend = self.params["inference.backend"]
        degraded = {name: f"{name} inference.backend '{backend}': {stage.backend_status}"
                    for name, stage in self._network_stages().items() if stage.backend_error}
        return {**self._load_fallbacks, **degraded}

    def __call__(self, frame: RGBDFrame) -> PipelineResult:
        timings: dict[str, float] = {}
        clock = time.perf_counter

        t = clock()
        depth = self.visible_depth(frame)
        timings["visible_depth"], t = (clock() - t) * 1e3, clock()
        segmentation = self.segmentation(frame, depth)
        timings["segmentation"], t = (clock() - t) * 1e3, clock()
        occlusion = self.occlusion(segmentation, depth, frame.intrinsics)
        timings["occlusion"], t = (clock() - t) * 1e3, clock()
        masks = self.amodal_mask(segmentation, occlusion, depth)
        timings["amodal_mask"], t = (clock() - t) * 1e3, clock()
        instances = self.amodal_depth(frame, depth, segmentation, occlusion, masks)
        timings["amodal_depth"], t = (clock() - t) * 1e3, clock()
        hidden = stack_hidden_surfaces(instances, frame.shape)
        amodal = amodal_depth_image(depth, hidden)
        cloud = build_layered_cloud(frame, depth, segmentation.labels, hidden, self.settings.output.cloud_stride)
        timings["cloud"] = (clock() - t) * 1e3
        timings["total"] = sum(timings.values())
        return PipelineResult(frame=frame, visible_depth=depth, segmentation=segmentation, occlusion=occlusion,
                              instances=instances, amodal_depth=amodal, cloud=cloud, timings_ms=timings, hidden=hidden)
