"""Depth Anything V2: official checkpoint layout, loading and its errors, preprocessing, and the visible-depth stage."""
import math
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from amodal_depth_ros.core import CameraIntrinsics, RGBDFrame  # noqa: E402
from amodal_depth_ros.errors import InputError, ModelLoadError  # noqa: E402
from amodal_depth_ros.learned.monocular import MonocularDepth, TorchDepthAnything, robust_scale_shift  # noqa: E402
from amodal_depth_ros.networks.depth_anything_v2 import (  # noqa: E402
    ENCODERS,
    DepthAnythingV2,
    EncoderConfig,
    infer_encoder,
    load_depth_anything_v2,
    predict,
    preprocess,
)

TINY = EncoderConfig(embed_dim=48, depth=4, heads=2, layers=(0, 1, 2, 3), features=16, out_channels=(8, 16, 32, 48))


def meta_model(name: str, max_depth: float | None = None) -> DepthAnythingV2:
    with torch.device("meta"):        # shapes only: no memory, no initialisation cost
        return DepthAnythingV2(ENCODERS[name], max_depth)


def official_keys(depth: int) -> set[str]:
    """Every name in an official Depth Anything V2 checkpoint (DINOv2 without registers + DPT head)."""
    keys = {f"pretrained.{k}" for k in ("cls_token", "pos_embed", "mask_token", "patch_embed.proj.weight",
                                        "patch_embed.proj.bias", "norm.weight", "norm.bias")}
    block = ("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
             "ls1.gamma", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
             "mlp.fc2.bias", "ls2.gamma")
    keys |= {f"pretrained.blocks.{i}.{k}" for i in range(depth) for k in block}
    head = [f"projects.{i}" for i in range(4)] + [f"resize_layers.{i}" for i in (0, 1, 3)]
    head += [
        f"scratch.refinenet{i}.{m}"
        for i in range(1, 5)
        for m in ("out_conv", "resConfUnit1.conv1", "resConfUnit1.conv2", "resConfUnit2.conv1", "resConfUnit2.conv2")
    ]
    head += ["scratch.output_conv1", "scratch.output_conv2.0", "scratch.output_conv2.2"]
    keys |= {f"depth_head.{m}.{p}" for m in head for p in ("weight", "bias")}
    keys |= {f"depth_head.scratch.layer{i}_rn.weight" for i in range(1, 5)}       # 3x3 convs without bias
    return keys


# name: (width, blocks, features, out_channels, parameter range in millions; DAv2 reports 24.8, 97.5, 335.3)
LAYOUT = {"vits": (384, 12, 64, (48, 96, 192, 384), (24.5, 25.2)),
          "vitb": (768, 12, 128, (96, 192, 384, 768), (97.0, 98.0)),
          "vitl": (1024, 24, 256, (256, 512, 1024, 1024), (334.5, 336.0))}


@pytest.mark.parametrize("name", ["vits", "vitb", "vitl"])
def test_full_size_models_have_the_official_layout(name):
    width, depth, feat, (c0, c1, c2, c3), (low, high) = LAYOUT[name]
    model = meta_model(name)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(shapes) == official_keys(depth)
    expected = {
        "pretrained.pos_embed": (1, 1370, width), "pretrained.cls_token": (1, 1, width),
        "pretrained.mask_token": (1, width), "pretrained.patch_embed.proj.weight": (width, 3, 14, 14),
        f"pretrained.blocks.{depth - 1}.attn.qkv.weight": (3 * width, width),
        f"pretrained.blocks.{depth - 1}.mlp.fc1.weight": (4 * width, width),
        f"pretrained.blocks.{depth - 1}.ls2.gamma": (width,),
        "depth_head.projects.0.weight": (c0, width, 1, 1), "depth_head.projects.3.weight": (c3, width, 1, 1),
        "depth_head.resize_layers.0.weight": (c0, c0, 4, 4), "depth_head.resize_layers.1.weight": (c1, c1, 2, 2),
        "depth_head.resize_layers.3.weight": (c3, c3, 3, 3), "depth_head.scratch.layer3_rn.weight": (feat, c2, 3, 3),
        "depth_head.scratch.refinenet4.resConfUnit1.conv1.weight": (feat, feat, 3, 3),
        "depth_head.scratch.refinenet1.out_conv.weight": (feat, feat, 1, 1),
        "depth_head.scratch.output_conv1.weight": (feat // 2, feat, 3, 3),
        "depth_head.scratch.output_conv2.0.weight": (32, feat // 2, 3, 3),
        "depth_head.scratch.output_conv2.2.weight": (1, 32, 1, 1),
    }
    assert {k: shapes[k] for k in expected} == expected
    assert not list(model.depth_head.resize_layers[2].parameters())                 # the Identity at grid scale
    count = sum(p.numel() for p in model.parameters())
    assert low * 1e6 <= count <= high * 1e6, count
    # A metric checkpoint differs only by its final activation: same names and shapes.
    assert {k: tuple(v.shape) for k, v in meta_model(name, 20.0).state_dict().items()} == shapes


@pytest.mark.parametrize("name", ["vits", "vitb", "vitl"])
def test_encoder_is_inferred_from_state_dict_shapes(name):
    assert infer_encoder(meta_model(name).state_dict()) == name


def test_unsupported_encoder_size_is_named():
    state = meta_model("vits").state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("pretrained.blocks.11.")}
    with pytest.raises(ModelLoadError, match="384 wide with 11 blocks"):
        infer_encoder(state)


def tiny_model(max_depth: float | None = None, seed: int = 0) -> DepthAnythingV2:
    torch.manual_seed(seed)
    model = DepthAnythingV2(TINY, max_depth).eval()
    with torch.no_grad():   # keep the final ReLU open so that relative outputs are not all zero
        model.depth_head.scratch.output_conv2[2].bias.fill_(1.0)
    return model


@pytest.fixture
def tiny_checkpoint(tmp_path):
    model = tiny_model()
    path = tmp_path / "tiny.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_tiny_checkpoint_round_trip_gives_identical_outputs(tiny_checkpoint):
    model, path = tiny_checkpoint
    loaded = load_depth_anything_v2(path, TINY)
    x = torch.randn(2, 3, 70, 98)
    with torch.no_grad():
        expected, got = model(x), loaded(x)
    assert got.shape == (2, 70, 98)
    assert expected.std() > 0 and torch.equal(expected, got)
    assert not loaded.training and all(p.dtype == torch.float32 for p in loaded.parameters())


def test_wrapped_and_prefixed_state_dicts_load(tiny_checkpoint, tmp_path):
    model, _ = tiny_checkpoint
    x = torch.randn(1, 3, 42, 56)
    for i, wrapped in enumerate([{"model": model.state_dict()},
                                 {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}]):
        path = tmp_path / f"wrapped{i}.pth"
        torch.save(wrapped, path)
        with torch.no_grad():
            assert torch.equal(load_depth_anything_v2(path, TINY)(x), model(x))


def test_encoder_is_inferred_when_loading(tiny_checkpoint, monkeypatch):
    model, path = tiny_checkpoint
    monkeypatch.setitem(ENCODERS, "tiny", TINY)
    assert load_depth_anything_v2(path).config == TINY


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ModelLoadError, match="checkpoint not found"):
        load_depth_anything_v2(tmp_path / "nope.pth", TINY)


def test_truncated_and_foreign_files_are_reported(tiny_checkpoint, tmp_path):
    _, path = tiny_checkpoint
    data = path.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    text = tmp_path / "text.pth"
    text.write_text("this is not a checkpoint\n")
    for bad in (cut, text):
        with pytest.raises(ModelLoadError, match="cannot read checkpoint .*truncated, corrupt"):
            load_depth_anything_v2(bad, TINY)


class Executable:
    """A pickled object: weights_only loading must refuse it rather than run its reduce."""

    def __reduce__(self):
        return (print, ("pwned",))


def test_code_carrying_and_non_tensor_files_are_refused(tmp_path):
    code = tmp_path / "code.pth"
    code.write_bytes(pickle.dumps({"pretrained.pos_embed": Executable()}, protocol=2))
    with pytest.raises(ModelLoadError, match="cannot read checkpoint"):
        load_depth_anything_v2(code, TINY)
    plain = tmp_path / "plain.pth"
    torch.save({"epoch": 3}, plain)
    with pytest.raises(ModelLoadError, match="does not hold a state dict"):
        load_depth_anything_v2(plain, TINY)


def test_missing_and_unexpected_keys_are_listed(tiny_checkpoint, tmp_path):
    model, _ = tiny_checkpoint
    state = model.state_dict()
    del state["depth_head.scratch.output_conv1.bias"]
    state["depth_head.extra.weight"] = torch.zeros(1)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    with pytest.raises(ModelLoadError) as error:
        load_depth_anything_v2(path, TINY)
    message = str(error.value)
    assert "not a Depth Anything V2" in message
    assert "1 missing keys ['depth_head.scratch.output_conv1.bias']" in message
    assert "1 unexpected keys ['depth_head.extra.weight']" in message


def test_other_architecture_without_encoder_is_not_dav2(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3), "fc.bias": torch.zeros(4)}, path)
    with pytest.raises(ModelLoadError, match="not a Depth Anything V2 state dict: no 'pretrained.pos_embed'"):
        load_depth_anything_v2(path)


def test_wrong_encoder_is_reported(tiny_checkpoint, monkeypatch):
    _, path = tiny_checkpoint
    wide = EncoderConfig(64, 4, 2, (0, 1, 2, 3), 16, (8, 16, 32, 48))
    with pytest.raises(ModelLoadError, match=r"does not fit encoder custom: \d+ shape mismatches.*pos_embed \(1, 1370, "
                                             r"48\) "
                                             r"\(expected \(1, 1370, 64\)\)"):
        load_depth_anything_v2(path, wide)
    monkeypatch.setitem(ENCODERS, "tiny", TINY)
    monkeypatch.setitem(ENCODERS, "tiny_wide", wide)
    with pytest.raises(ModelLoadError, match="holds a tiny model but encoder 'tiny_wide' was requested"):
        load_depth_anything_v2(path, "tiny_wide")
    with pytest.raises(ModelLoadError, match="unknown encoder 'vitx'"):
        load_depth_anything_v2(path, "vitx")


def test_non_518_inputs_use_interpolated_positions():
    model = tiny_model()
    vit = model.pretrained
    assert vit.interpolate_pos_encoding(37, 37) is vit.pos_embed
    pos = vit.interpolate_pos_encoding(20, 27)
    assert pos.shape == (1, 1 + 20 * 27, 48)
    assert torch.equal(pos[:, 0], vit.pos_embed[:, 0])                                # class position untouched
    with torch.no_grad():
        out = model(torch.randn(1, 3, 280, 378))
    assert out.shape == (1, 280, 378) and torch.isfinite(out).all() and out.min() >= 0
    with pytest.raises(ValueError, match="multiples of 14"):
        model(torch.randn(1, 3, 280, 380))


def test_metric_head_stays_within_max_depth():
    model = tiny_model(max_depth=20.0)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 98, 126) * 3)
    assert out.shape == (2, 98, 126)
    assert out.min() > 0 and out.max() < 20.0 and out.std() > 0


@pytest.mark.parametrize("shape, expected", [((480, 640), (518, 686)), ((720, 1280), (518, 924)),
                                             ((640, 480), (686, 518)), ((100, 150), (518, 784)),
                                             ((518, 518), (518, 518))])
def test_preprocess_keeps_aspect_with_multiples_of_14(shape, expected):
    rgb = np.full((*shape, 3), (124, 116, 104), np.uint8)
    x = preprocess(rgb)
    h, w = x.shape[2:]
    assert x.shape == (1, 3, *expected) and x.dtype == torch.float32
    assert h % 14 == 0 and w % 14 == 0 and min(h, w) >= 518
    assert abs(w / h - shape[1] / shape[0]) <= 14 / min(h, w) * (shape[1] / shape[0])
    # ImageNet normalisation, channel by channel (RGB order).
    expected_values = (np.array([124, 116, 104]) / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    assert np.allclose(x[0, :, h // 2, w // 2].numpy(), expected_values, atol=1e-5)


def test_predict_returns_the_input_resolution():
    model = tiny_model(max_depth=10.0)
    rgb = np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    depth = predict(model, rgb, input_size=56)
    assert depth.shape == (45, 61) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and 0 < depth.min() and depth.max() < 10.0


# --- the visible-depth stage ---------------------------------------------------------------------------------------

H, W = 60, 80
INTR = CameraIntrinsics(70.0, 70.0, 39.5, 29.5, W, H)


def true_depth() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return (1.0 + 3.0 * x / W + 0.5 * np.sin(y / 7.0) + 0.5).astype(np.float32)       # 1.0 .. 4.96 m


class AffineInverseStub:
    """A relative model that is exactly right up to scale and shift: pred = 7 / depth + 0.25."""

    metric = False

    def __init__(self, depth: np.ndarray):
        self.pred = (7.0 / depth.astype(np.float64) + 0.25).astype(np.float32)

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        assert rgb.shape == (H, W, 3)
        return self.pred


def frame(depth: np.ndarray | None) -> RGBDFrame:
    return RGBDFrame(np.zeros((H, W, 3), np.uint8), INTR, depth)


def test_fit_scale_shift_ignores_outliers():
    rng = np.random.default_rng(1)
    pred = rng.uniform(0, 5, 10_000)
    target = 0.4 * pred - 0.1
    target[:500] += rng.uniform(1, 3, 500)                                            # 5 % gross outliers
    s, t = robust_scale_shift(pred, target)
    assert s == pytest.approx(0.4, rel=1e-9) and t == pytest.approx(-0.1, rel=1e-9)


def test_relative_prediction_is_aligned_to_the_sensor():
    truth = true_depth()
    sensor = truth.copy()
    sensor[10:25, 30:50] = np.nan                                                     # a hole
    sensor[::17, ::13] = 0.3                                                          # speckle, far off
    depth = MonocularDepth(AffineInverseStub(truth), fill_only=False)(frame(sensor))
    assert depth.dtype == np.float32 and depth.shape == (H, W)
    np.testing.assert_allclose(depth, truth, rtol=1e-4)                               # everywhere, hole included


def test_fill_only_keeps_the_sensor_and_fills_holes_and_far_pixels():
    truth = true_depth()
    sensor = truth * np.float32(1.01)                                                 # the sensor is trusted as is
    sensor[10:25, 30:50] = np.nan
    depth = MonocularDepth(AffineInverseStub(truth), fill_only=True, min_depth=0.2, max_depth=4.0)(frame(sensor))
    valid = np.isfinite(sensor) & (sensor <= 4.0)
    assert (~valid).sum() > 300 and (sensor > 4.0).any()
    assert np.array_equal(depth[valid], sensor[valid])
    # The network was aligned to the 1 %-scaled sensor, so the fill continues the sensor's scale.
    filled = ~valid
    assert np.isfinite(depth[filled]).all()
    np.testing.assert_allclose(depth[filled], truth[filled] * 1.01, rtol=1e-4)


def test_relative_model_without_depth_needs_a_metric_scale():
    stage = MonocularDepth(AffineInverseStub(true_depth()))
    with pytest.raises(InputError) as error:
        stage(frame(None))
    assert error.value.reason == "no_metric_scale"
    assert "metric checkpoint" in str(error.value) and "depth topic" in str(error.value)
    with pytest.raises(InputError) as error:                                          # depth image with no readings
        stage(frame(np.full((H, W), np.nan, np.float32)))
    assert error.value.reason == "no_metric_scale"


def test_far_aligned_inverse_depth_becomes_unknown():
    truth = true_depth()
    stub = AffineInverseStub(truth)
    stub.pred = stub.pred.copy()
    stub.pred[0, :5] = 0.25 - 1.0                                                     # aligned inverse depth < 0
    sensor = truth.copy()
    sensor[0, :5] = np.nan
    depth = MonocularDepth(stub)(frame(sensor))
    assert np.isnan(depth[0, :5]).all() and np.isfinite(depth[1:]).all()


class MetricStub:
    metric = True

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        depth = true_depth()
        depth[:5] = 0.0                                                               # no prediction
        return depth


def test_metric_model_is_used_as_is():
    depth = MonocularDepth(MetricStub())(frame(None))
    assert np.isnan(depth[:5]).all()
    np.testing.assert_array_equal(depth[5:], true_depth()[5:])
    sensor = np.full((H, W), np.nan, np.float32)
    sensor[40:, :] = 2.0
    filled = MonocularDepth(MetricStub(), fill_only=True)(frame(sensor))
    assert (filled[40:] == 2.0).all()
    np.testing.assert_array_equal(filled[5:40], true_depth()[5:40])


def test_stage_runs_a_real_checkpoint(tiny_checkpoint, tmp_path):
    model = tiny_model(max_depth=20.0)
    path = tmp_path / "metric.pth"
    torch.save(model.state_dict(), path)
    stage = MonocularDepth.from_checkpoint(path, TINY, metric_max_depth=20.0, input_size=56)
    rgb = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = stage(RGBDFrame(rgb, INTR))
    assert isinstance(stage.backend, TorchDepthAnything) and stage.backend.metric
    np.testing.assert_array_equal(depth, predict(model, rgb, 56))
    assert depth.dtype == np.float32 and 0 < depth.min() and depth.max() < 20.0
    assert math.isfinite(float(depth.mean()))
