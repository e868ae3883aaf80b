"""Amodal depth / mask evaluation metrics against values worked out by hand."""
import json
import math

import numpy as np
import pytest

from amodal_depth_ros.core import fit_scale_shift
from amodal_depth_ros.evaluation.metrics import (
    DEPTH_METRICS,
    VISIBLE_RATIO_BUCKETS,
    MaskScore,
    ObjectDepthScore,
    ResultTable,
    depth_errors,
    format_table,
    mask_iou,
    score_amodal_mask,
    score_object_depth,
    visible_ratio_bucket,
)

NAN = np.nan


# ---------------------------------------------------------------- depth_errors

def test_depth_errors_hand_values():
    pred = np.array([1.0, 2.0, 4.0], np.float32)
    gt = np.array([1.0, 2.5, 5.0], np.float32)
    e = depth_errors(pred, gt)
    assert set(e) == set(DEPTH_METRICS)
    assert all(type(v) is float for v in e.values())
    # |p-g| = [0, 0.5, 1]; /g = [0, 0.2, 0.2] -> (0 + 0.2 + 0.2) / 3
    assert e["abs_rel"] == pytest.approx(0.4 / 3)
    # (p-g)^2 / g = [0, 0.25/2.5, 1/5] = [0, 0.1, 0.2] -> 0.3 / 3
    assert e["sq_rel"] == pytest.approx(0.1)
    # sqrt((0 + 0.25 + 1) / 3) = sqrt(0.41666..) = 0.645497..
    assert e["rmse"] == pytest.approx(0.6454972, rel=1e-6)
    # d = ln p - ln g = [0, ln 0.8, ln 0.8] = [0, -a, -a], a = ln 1.25 = 0.2231436
    a = 0.22314355131
    # rmse_log = sqrt(2 a^2 / 3) = a * 0.8164966 = 0.1821960
    assert e["rmse_log"] == pytest.approx(0.1821960, rel=1e-6)
    # log10 = 2 * log10(1.25) / 3 = 2 * 0.0969100 / 3 = 0.0646067
    assert e["log10"] == pytest.approx(0.0646067, rel=1e-5)
    # ratios max(p/g, g/p) = [1, 1.25, 1.25]; 1.25 < 1.25 is false -> only the first counts
    assert e["delta1"] == pytest.approx(1 / 3)
    assert e["delta2"] == 1.0 and e["delta3"] == 1.0
    # silog: mean(d^2) - mean(d)^2 = 2a^2/3 - 4a^2/9 = 2a^2/9 -> 100 * a * sqrt(2) / 3 = 10.51909
    assert e["silog"] == pytest.approx(100 * a * math.sqrt(2) / 3, rel=1e-6)
    assert e["silog"] == pytest.approx(10.51909, rel=1e-5)


def test_delta_thresholds_are_strict_at_exact_boundaries():
    gt = np.ones(6)
    # 1.25, 1.25^2 = 1.5625 and 1.25^3 = 1.953125 are exact in binary floating point
    pred = np.array([1.0, 1.25, 1.5625, 1.953125, 1.2499, 2.0])
    e = depth_errors(pred, gt)
    # < 1.25: 1.0 and 1.2499 -> 2/6
    assert e["delta1"] == pytest.approx(2 / 6)
    # < 1.5625: also 1.25 -> 3/6
    assert e["delta2"] == pytest.approx(3 / 6)
    # < 1.953125: also 1.5625 -> 4/6 (1.953125 itself and 2.0 fail)
    assert e["delta3"] == pytest.approx(4 / 6)
    # the ratio is symmetric: under-estimation by the same factor is on the boundary too
    under = depth_errors(np.array([1.0]), np.array([1.25]))
    assert under["delta1"] == 0.0 and under["delta2"] == 1.0


def test_silog_ignores_a_pure_scale_error_but_rmse_log_does_not():
    gt = np.array([1.0, 2.0, 3.0, 7.5])
    e = depth_errors(2.0 * gt, gt)
    # d = ln 2 everywhere: zero variance -> silog 0, rmse_log = ln 2 = 0.693147
    assert e["silog"] == pytest.approx(0.0, abs=1e-6)
    assert e["rmse_log"] == pytest.approx(math.log(2))
    assert e["abs_rel"] == pytest.approx(1.0)  # |2g - g| / g = 1


def test_non_positive_predictions_are_clamped_for_logs():
    e = depth_errors(np.array([-1.0, 0.0]), np.array([1.0, 1.0]))
    # abs_rel uses the raw prediction: (|-1-1| + |0-1|) / 2 = 1.5
    assert e["abs_rel"] == pytest.approx(1.5)
    # logs use max(p, 1e-3): d = ln(1e-3) = -6.907755 for both
    assert e["rmse_log"] == pytest.approx(6.907755, rel=1e-6)
    assert e["log10"] == pytest.approx(3.0)
    assert e["delta3"] == 0.0
    assert all(math.isfinite(v) for v in e.values())


def test_depth_errors_rejects_empty_and_mismatched_input():
    with pytest.raises(ValueError):
        depth_errors(np.array([]), np.array([]))
    with pytest.raises(ValueError):
        depth_errors(np.array([1.0, 2.0]), np.array([1.0]))


# ---------------------------------------------------------------- fit_scale_shift

def test_fit_scale_shift_recovers_exact_affine_map():
    pred = np.array([0.5, 1.0, 1.7, 2.2, 3.9, 4.0], np.float32)
    target = 2.5 * pred.astype(np.float64) - 0.7
    s, t = fit_scale_shift(pred, target)
    assert s == pytest.approx(2.5, rel=1e-9)
    assert t == pytest.approx(-0.7, rel=1e-9)
    assert type(s) is float and type(t) is float


def test_fit_scale_shift_least_squares_with_noise():
    # pred [0, 1, 2], target [0, 2, 1]: mean p 1, mean y 1; cov = (1*0 + 0*1 + 1*0)/3 ... by hand:
    # (p - 1) = [-1, 0, 1], (y - 1) = [-1, 1, 0] -> sum = 1; sum (p-1)^2 = 2 -> s = 0.5, t = 1 - 0.5 = 0.5
    s, t = fit_scale_shift(np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 1.0]))
    assert (s, t) == (pytest.approx(0.5), pytest.approx(0.5))


def test_fit_scale_shift_degenerate_cases():
    assert fit_scale_shift(np.array([]), np.array([])) == (1.0, 0.0)
    # one point: scale 1, shift = 5 - 2
    assert fit_scale_shift(np.array([2.0]), np.array([5.0])) == (1.0, pytest.approx(3.0))
    # constant prediction: scale 1, shift = mean([3, 4, 8] - 2) = 5 - 2 = 3
    assert fit_scale_shift(np.full(3, 2.0), np.array([3.0, 4.0, 8.0])) == (1.0, pytest.approx(3.0))


# ---------------------------------------------------------------- score_object_depth

def small_scene():
    """4x4 object: columns 0-1 visible, 2-3 hidden behind an occluder at 1 m.

    gt = 2 / 3 on the visible rows 0-1 / 2-3, 4 / 5 on the hidden ones; the prediction is the
    affine map gt = 2 * pred + 0.5, i.e. pred = (gt - 0.5) / 2 -> visible 0.75 / 1.25,
    hidden 1.75 / 2.25.
    """
    gt = np.array([[2, 2, 4, 4], [2, 2, 4, 4], [3, 3, 5, 5], [3, 3, 5, 5]], np.float32)
    pred = ((gt - 0.5) / 2).astype(np.float32)
    visible = np.zeros((4, 4), bool)
    visible[:, :2] = True
    amodal = np.ones((4, 4), bool)
    observed = np.where(visible, gt, np.float32(1.0)).astype(np.float32)
    return pred, gt, observed, visible, amodal


def test_alignment_makes_an_affine_prediction_perfect():
    pred, gt, observed, visible, amodal = small_scene()
    score = score_object_depth(pred, gt, observed, visible, amodal, min_pixels=5)
    assert score.visible_ratio == pytest.approx(0.5)  # 8 / 16
    assert score.hidden_pixels == 8 and score.coverage == 1.0
    assert (score.scale, score.shift) == (pytest.approx(2.0), pytest.approx(0.5))
    # raw: |1.75 - 4| / 4 = 0.5625 (4 px), |2.25 - 5| / 5 = 0.55 (4 px) -> 0.55625
    assert score.raw["abs_rel"] == pytest.approx(0.55625)
    assert score.aligned["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert score.aligned["rmse"] == pytest.approx(0.0, abs=1e-5)
    assert score.aligned["delta1"] == 1.0 and score.raw["delta3"] == 0.0  # 4/1.75 = 2.29 > 1.95


def test_nan_gt_is_excluded_and_nan_pred_lowers_coverage():
    pred, gt, observed, visible, amodal = small_scene()
    gt[0, 3] = NAN    # unknown ground truth: not scored at all
    gt[1, 3] = 0.0    # invalid ground truth: not scored either
    pred[3, 3] = NAN  # no prediction: counts against coverage
    score = score_object_depth(pred, gt, observed, visible, amodal, min_pixels=5)
    assert score.hidden_pixels == 6
    assert score.coverage == pytest.approx(5 / 6)
    # covered: (0,2), (1,2) at 0.5625; (2,2), (2,3), (3,2) at 0.55 -> (1.125 + 1.65) / 5 = 0.555
    assert score.raw["abs_rel"] == pytest.approx(0.555)
    assert score.aligned["abs_rel"] == pytest.approx(0.0, abs=1e-6)


def test_alignment_only_uses_valid_visible_pixels():
    pred, gt, observed, visible, amodal = small_scene()
    pred[0, 0] = 100.0        # a wild value the fit must not see...
    observed[0, 0] = NAN      # ...because the sensor has no depth there
    observed[1, 0] = 0.0      # invalid sensor depth: also skipped
    score = score_object_depth(pred, gt, observed, visible, amodal, min_pixels=5)
    assert (score.scale, score.shift) == (pytest.approx(2.0), pytest.approx(0.5))


def test_too_few_visible_pixels_means_no_alignment():
    pred, gt, observed, visible, amodal = small_scene()
    observed[:, :2] = NAN
    observed[0, 0] = 2.0  # a single usable visible pixel: not enough to fit
    score = score_object_depth(pred, gt, observed, visible, amodal, min_pixels=5)
    assert (score.scale, score.shift) == (1.0, 0.0)
    assert score.aligned == score.raw
    assert score.aligned["abs_rel"] == pytest.approx(0.55625)


def test_min_pixels_threshold():
    pred, gt, observed, visible, amodal = small_scene()
    gt[0, 3] = NAN  # 7 scorable hidden pixels
    assert score_object_depth(pred, gt, observed, visible, amodal, min_pixels=8) is None
    assert score_object_depth(pred, gt, observed, visible, amodal, min_pixels=7).hidden_pixels == 7
    assert score_object_depth(pred, gt, observed, visible, amodal) is None  # default 20
    # an unoccluded object has nothing to score, whatever min_pixels
    assert score_object_depth(pred, gt, observed, amodal, amodal, min_pixels=0) is None


def test_no_prediction_on_the_hidden_part_still_reports():
    pred, gt, observed, visible, amodal = small_scene()
    pred[:, 2:] = NAN
    score = score_object_depth(pred, gt, observed, visible, amodal, min_pixels=5)
    assert score is not None and score.coverage == 0.0 and score.hidden_pixels == 8
    assert set(score.raw) == set(score.aligned) == set(DEPTH_METRICS)
    assert all(math.isnan(v) for v in [*score.raw.values(), *score.aligned.values()])


# ---------------------------------------------------------------- masks

def test_mask_iou_hand_values():
    a = np.zeros((4, 4), bool)
    a[:2, :2] = True             # 4 px
    b = np.zeros((4, 4), bool)
    b[:2, :3] = True             # 6 px, contains a -> 4 / 6
    assert mask_iou(a, b) == pytest.approx(2 / 3)
    c = np.zeros((4, 4), bool)
    c[3, 3] = True
    assert mask_iou(a, c) == 0.0
    empty = np.zeros((4, 4), bool)
    assert mask_iou(empty, empty) == 1.0
    assert mask_iou(a, empty) == 0.0


def test_score_amodal_mask():
    gt = np.zeros((4, 4), bool)
    gt[:2, :] = True             # 8 px
    visible = np.zeros((4, 4), bool)
    visible[:2, :2] = True       # 4 px -> visible ratio 0.5
    pred = np.zeros((4, 4), bool)
    pred[:2, :3] = True
    pred[2, 0] = True            # 7 px, 6 inside gt
    score = score_amodal_mask(pred, gt, visible)
    assert score.visible_ratio == pytest.approx(0.5)
    assert score.iou == pytest.approx(6 / 9)  # union 8 + 1 stray pixel
    # occluded gt = rows 0-1, cols 2-3 (4 px); occluded pred = col 2 of rows 0-1 + (2, 0) (3 px)
    # intersection 2, union 5
    assert score.occluded_iou == pytest.approx(0.4)
    assert score_amodal_mask(pred, visible, visible) is None  # nothing hidden


def test_visible_ratio_bucket_edges():
    assert VISIBLE_RATIO_BUCKETS == (">0.75", "0.5-0.75", "<=0.5")
    assert visible_ratio_bucket(1.0) == ">0.75"
    assert visible_ratio_bucket(0.7501) == ">0.75"
    assert visible_ratio_bucket(0.75) == "0.5-0.75"
    assert visible_ratio_bucket(0.5001) == "0.5-0.75"
    assert visible_ratio_bucket(0.5) == "<=0.5"
    assert visible_ratio_bucket(0.0) == "<=0.5"


# ---------------------------------------------------------------- ResultTable

def depth_score(ratio, aligned, raw, coverage=1.0, pixels=100):
    return ObjectDepthScore(visible_ratio=ratio, hidden_pixels=pixels, coverage=coverage, scale=1.0,
                            shift=0.0, raw=dict.fromkeys(DEPTH_METRICS, raw),
                            aligned=dict.fromkeys(DEPTH_METRICS, aligned))


@pytest.fixture
def table():
    t = ResultTable()
    t.add_depth("plane", depth_score(0.9, 0.1, 0.3, 1.0, 100))
    t.add_depth("plane", depth_score(0.8, 0.3, 0.5, 0.5, 50))
    t.add_depth("plane", depth_score(0.3, 0.2, 0.4, 1.0, 30))
    t.add_depth("empty_net", depth_score(0.6, NAN, NAN, 0.0, 40))
    t.add_depth("empty_net", depth_score(0.6, 0.4, 0.6, 1.0, 20))
    t.add_depth("empty_net", depth_score(0.2, NAN, NAN, 0.0, 10))
    t.add_mask("plane", MaskScore(0.9, 0.8, 0.6))
    t.add_mask("plane", MaskScore(0.4, 0.6, 0.2))
    return t


def test_result_table_depth_summary(table):
    s = table.summary()
    json.dumps(s)  # plain ints / floats / str only
    plane = s["depth"]["plane"]
    assert list(plane) == ["all", ">0.75", "0.5-0.75", "<=0.5"]
    # all: 3 objects, 180 px, coverage (1 + 0.5 + 1) / 3, aligned (0.1 + 0.3 + 0.2) / 3, raw (0.3 + 0.5 + 0.4) / 3
    assert plane["all"]["objects"] == 3 and plane["all"]["pixels"] == 180
    assert plane["all"]["coverage"] == pytest.approx(2.5 / 3)
    assert plane["all"]["aligned"]["abs_rel"] == pytest.approx(0.2)
    assert plane["all"]["raw"]["silog"] == pytest.approx(0.4)
    assert type(plane["all"]["aligned"]["abs_rel"]) is float and type(plane["all"]["pixels"]) is int
    # >0.75: the first two -> aligned (0.1 + 0.3) / 2, 150 px
    assert plane[">0.75"]["objects"] == 2 and plane[">0.75"]["pixels"] == 150
    assert plane[">0.75"]["aligned"]["delta1"] == pytest.approx(0.2)
    assert plane["0.5-0.75"] == {"objects": 0}
    assert plane["<=0.5"]["aligned"]["rmse"] == pytest.approx(0.2)


def test_result_table_keeps_failed_objects_visible(table):
    net = table.summary()["depth"]["empty_net"]
    # objects with coverage 0 count, their NaN metrics are skipped in the mean
    assert net["all"]["objects"] == 3 and net["all"]["pixels"] == 70
    assert net["all"]["coverage"] == pytest.approx(1 / 3)
    assert net["all"]["aligned"]["abs_rel"] == pytest.approx(0.4)
    assert net["0.5-0.75"]["objects"] == 2 and net["0.5-0.75"]["coverage"] == pytest.approx(0.5)
    assert net[">0.75"] == {"objects": 0}
    # a bucket where nothing was predicted: NaN metric, coverage 0
    assert net["<=0.5"]["coverage"] == 0.0 and math.isnan(net["<=0.5"]["aligned"]["abs_rel"])


def test_result_table_mask_summary(table):
    mask = table.summary()["mask"]
    assert list(mask) == ["plane"]
    assert mask["plane"]["all"] == {"objects": 2, "iou": pytest.approx(0.7), "occluded_iou": pytest.approx(0.4)}
    assert mask["plane"][">0.75"]["iou"] == pytest.approx(0.8)
    assert mask["plane"]["0.5-0.75"] == {"objects": 0}
    assert mask["plane"]["<=0.5"]["occluded_iou"] == pytest.approx(0.2)


def test_result_table_end_to_end_from_scores():
    pred, gt, observed, visible, amodal = small_scene()
    t = ResultTable()
    t.add_depth("affine", score_object_depth(pred, gt, observed, visible, amodal, min_pixels=5))
    s = t.summary()
    assert s["depth"]["affine"]["<=0.5"]["raw"]["abs_rel"] == pytest.approx(0.55625)
    assert s["mask"] == {}


def test_format_table(table):
    text = format_table(table.summary())
    assert "plane" in text and "empty_net" in text
    assert "abs_rel" in text and "silog" in text and "occluded_iou" in text
    # "all" block first, then the buckets in order
    positions = [text.index(f"[{b}]") for b in ("all", *VISIBLE_RATIO_BUCKETS)]
    assert positions == sorted(positions)
    # plane's "all" depth row: objects 3, coverage 0.8333, aligned 0.2000 x4, raw abs_rel 0.4000
    row = next(line for line in text.splitlines() if line.startswith("plane"))
    assert row.split() == ["plane", "3", "0.8333", "0.2000", "0.2000", "0.2000", "0.2000", "0.4000"]
    # fixed width: every header and row of a block lines up
    block = text.split("\n\n")[0].splitlines()[1:]
    assert len({len(line) for line in block}) == 1
    # no masks -> no mask block; custom metric columns
    t = ResultTable()
    t.add_depth("solo", depth_score(0.9, 0.1, 0.3))
    text = format_table(t.summary(), metrics=("sq_rel",))
    assert "solo" in text and "sq_rel" in text and "iou" not in text and "silog" not in text
