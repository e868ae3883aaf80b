"""`amodal-depth bench`: the report has every figure the issue asks for, with plausible values."""
import json

import numpy as np

from amodal_depth_ros.tools import cli


def test_bench_reports_stages_overhead_and_open3d_peer(tmp_path, capsys):
    import cv2
    real = tmp_path / "real"
    real.mkdir()
    cv2.imwrite(str(real / "color.png"), np.full((240, 320, 3), 120, np.uint8))
    cv2.imwrite(str(real / "depth.png"), np.full((240, 320), 1500, np.uint16))
    (real / "intrinsics.json").write_text('{"fx": 200, "fy": 200, "cx": 159.5, "cy": 119.5, "depth_scale": 1000}')
    assert cli.main(["bench", "--frames", "2", "--resolutions", "160x120", "--pipelines", "geometric",
                     "--live-seconds", "4", "--live-size", "160x120", "--scene-objects", "2,8", "--scene-size",
                     "160x120", "--real", str(real), "--map-frames", "3", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    row = report["rows"][0]
    assert (row["pipeline"], row["resolution"]) == ("geometric", "160x120")
    assert {"segmentation", "amodal_depth", "cloud", "total"} <= set(row["stages_ms"])
    assert row["stages_ms"]["total"]["p95"] >= row["stages_ms"]["total"]["p50"] > 0
    assert row["overhead_ms"]["overhead"]["p50"] > 0 and row["frames_per_s"] > 0
    assert row["cloud_vs_open3d"]["ours_ms"] > 0 and row["cloud_vs_open3d"]["open3d_ms"] > 0
    assert report["peak_rss_mb"] > 50 and report["torch_device"] in ("cpu", "cuda")
    # The segmentation network alone, per backend: its parts add up to its total.
    rows = {r["backend"]: r for r in report["segmentation_network"]}
    assert {"torch", "onnxruntime"} <= set(rows)
    assert rows["onnxruntime"]["status"].startswith("onnxruntime") and rows["torch"]["network_input"] == "160x128"
    for r in rows.values():
        parts = sum(r["ms"][k]["p50"] for k in ("inputs", "network", "decode"))
        assert r["ms"]["network"]["p50"] > 0 and abs(parts - r["ms"]["total"]["p50"]) < 0.5 * r["ms"]["total"]["p50"]
    # The live row: the node as a process at 30 Hz, its output rate beside its own.
    live = report["live"]
    assert live["size"] == "160x120" and live["published"] > 0
    # Every image accounted for (received, or superseded in the node's input queue); the rates themselves
    # depend on the machine's load: reported, not asserted.
    assert live["delivered"] + live["superseded_in_queue"] == live["published"], live
    assert live["output_hz"] > 0 and live["own_hz"] > 0
    assert 0 < live["latency_p50_ms"] <= live["latency_p95_ms"]
    # The default pipeline against the scene: more objects, more instances; and on real frames (resized).
    few, many = report["scenes"]
    assert (few["objects"], many["objects"]) == (2, 8) and many["instances"] > few["instances"] >= 2
    assert many["ms_over_first"] == round(many["ms"]["p50"] / few["ms"]["p50"], 3)
    assert many["ms"]["p95"] >= many["ms"]["p50"] > 0
    assert [r["folder"] for r in report["real"]] == [str(real), "all"] and report["real"][0]["frames"] == 1
    # The fused map along a camera path: integration with the hidden layers, extraction at the end.
    fused = report["map"]
    assert fused["frames"] == 3 and fused["points"] > 0 and fused["triangles"] > 0 and fused["blocks"][0] > 0
    assert 0 < fused["integrate_ms"]["visible_only"]["p50"] and 0 < fused["integrate_ms"]["with_hidden"]["p50"]
    out = capsys.readouterr().out
    assert "open3d ms" in out and "segmentation network" in out and "live node (160x120" in out
    assert "fused map (160x120, 3 frames" in out


def test_bench_skips_tensorrt_where_it_cannot_run_and_refuses_unknown_pipelines(tmp_path, capsys):
    from amodal_depth_ros.runtime import tensorrt_unavailable

    reason = tensorrt_unavailable()
    if not reason:
        import pytest
        pytest.skip("TensorRT runs here: the row is measured, not skipped")
    assert cli.main(["bench", "--frames", "1", "--resolutions", "160x120", "--pipelines", "learned_tensorrt",
                     "--no-segmentation-network", "--live-seconds", "0", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["rows"] == [] and report["skipped"] == {"learned_tensorrt": reason}
    assert cli.main(["bench", "--pipelines", "fastest", "--out", str(tmp_path)]) == 2
    assert "unknown pipelines" in capsys.readouterr().err
