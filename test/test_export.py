"""ONNX export: static shapes, opset, TensorRT-friendly operators, parity with torch under onnxruntime."""
import json

import torch

from amodal_depth_ros.networks import AmodalMaskNet, DepthAnythingV2, EncoderConfig, SpadeAmodalDepthNet
from amodal_depth_ros.runtime.export import check_onnx, export_amodal_nets, export_onnx, onnxruntime_session, parity
from amodal_depth_ros.tools import cli


def test_amodal_networks_export_static_and_match_torch(tmp_path):
    torch.manual_seed(0)
    report = export_amodal_nets(AmodalMaskNet(), SpadeAmodalDepthNet(), tmp_path, batch=4)
    assert report["amodal_mask"]["shapes"] == {"crops": [4, 5, 48, 48], "logits": [4, 48, 48]}
    assert report["amodal_depth"]["shapes"]["amodal"] == [4, 48, 48]
    for r in report.values():
        assert r["opset"] >= 17 and r["static"] and r["uncommon_ops"] == []
        assert r["max_abs_diff"] < 1e-4


def test_depth_anything_exports_with_layernorm_and_softmax(tmp_path):
    torch.manual_seed(0)
    tiny = EncoderConfig(embed_dim=48, depth=4, heads=2, layers=(0, 1, 2, 3), features=16, out_channels=(8, 16, 32, 48))
    model = DepthAnythingV2(tiny, max_depth=20.0).eval()
    image = torch.rand(1, 3, 140, 182)
    path = export_onnx(model, (image,), tmp_path / "dav2.onnx", ["image"], ["depth"])
    report = check_onnx(path)
    assert report["static"] and report["shapes"]["depth"] == [1, 140, 182]
    assert {"Softmax", "MatMul"} <= set(report["ops"]) and report["uncommon_ops"] == []
    assert parity(model, (image,), path) < 1e-3


def test_export_command_on_the_shipped_weights(tmp_path, capsys):
    assert cli.main(["export", str(tmp_path), "--batch", "2"]) == 0
    report = json.loads((tmp_path / "export.json").read_text())
    assert set(report) == {"amodal_mask", "amodal_depth", "segmentation"}
    assert report["segmentation"]["static"] and report["segmentation"]["uncommon_ops"] == []
    assert max(entry["max_abs_diff"] for entry in report.values()) < 1e-3
    assert "onnxruntime max |diff|" in capsys.readouterr().out
    assert cli.main(["export", str(tmp_path), "--mask-weights", str(tmp_path / "none.pt")]) == 2


def test_onnxruntime_backend_matches_torch_in_the_stages(tmp_path, monkeypatch):
    """Both learned stages on a room with the shipped weights: onnxruntime (cached exports, static batches)
    gives the torch results; the export is cached per weights file."""
    import numpy as np

    from amodal_depth_ros.core.config import Settings
    from amodal_depth_ros.learned import LearnedAmodalMask, SpadeAmodalDepth
    from amodal_depth_ros.runtime.backends import CPU_BATCHES
    from amodal_depth_ros.synthetic import generate

    monkeypatch.setenv("AMODAL_DEPTH_CACHE", str(tmp_path))
    truth = generate(3, 320, 240)
    seg, occlusion = truth.segmentation(), truth.occlusion()
    s = {b: Settings.from_values({"inference.device": "cpu", "inference.backend": b, "amodal_depth.min_gap": 0.01,
                                  "amodal_depth.planar_tolerance": 0.0, "inference.cpu_precision": "fp32"})
         for b in ("torch", "onnxruntime")}   # the export's parity: int8 is test_quantize's
    masks = {b: LearnedAmodalMask(s[b].amodal_mask, s[b].inference)(seg, occlusion, truth.depth) for b in s}
    for i in masks["torch"]:
        assert (masks["torch"][i] != masks["onnxruntime"][i]).sum() <= 2     # logits agree to ~1e-5
    depth = {b: SpadeAmodalDepth(s[b].amodal_depth, s[b].inference)(truth.to_rgbd_frame(), truth.depth, seg, occlusion,
                                                                    truth.true_amodal_masks()) for b in s}
    for a, b in zip(depth["torch"], depth["onnxruntime"], strict=False):
        assert np.allclose(a.depth, b.depth, equal_nan=True, atol=1e-4)
    # One graph per network and CPU batch size (the export is cached per weights file).
    graphs = sorted(p.name.split("-")[0] for p in (tmp_path / "onnx").glob("*.onnx"))
    assert graphs == ["amodal_depth"] * len(CPU_BATCHES) + ["amodal_mask"] * len(CPU_BATCHES)


def test_cpu_sessions_keep_to_the_omp_thread_budget(tmp_path, monkeypatch):
    """torch keeps to $OMP_NUM_THREADS and onnxruntime does not by itself: the sessions are told."""
    path = export_onnx(AmodalMaskNet(), (torch.zeros(1, 5, 48, 48),), tmp_path / "m.onnx", ["crops"], ["logits"])
    for threads in ("1", "2"):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        assert onnxruntime_session(path).get_session_options().intra_op_num_threads == int(threads)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert onnxruntime_session(path).get_session_options().intra_op_num_threads == 0   # onnxruntime's own choice
