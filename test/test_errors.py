"""The package's exceptions come from one module, each with a stable reason key, and all are ValueErrors."""
from __future__ import annotations

import pytest

from amodal_depth_ros import errors
from amodal_depth_ros.core import CameraIntrinsics, config
from amodal_depth_ros.datasets import open_dataset, parse_seeds


def test_every_error_is_a_value_error_with_a_reason():
    for name in errors.__all__:
        kind = getattr(errors, name)
        assert issubclass(kind, errors.AmodalDepthError) and issubclass(kind, ValueError)


@pytest.mark.parametrize("call, kind, reason", [
    (lambda: CameraIntrinsics(float("nan"), 1.0, 1.0, 1.0, 4, 4), errors.InputError, "invalid_intrinsics"),
    (lambda: config.Settings.from_values({"segmentation.depth_jump": 5.0}), errors.ConfigError, "bad_parameter"),
    (lambda: parse_seeds("9-3"), errors.ConfigError, "bad_parameter"),
    (lambda: open_dataset("/no/such/folder"), errors.DataError, "bad_data"),
])
def test_errors_carry_their_kind_and_reason(call, kind, reason):
    with pytest.raises(kind) as caught:
        call()
    assert caught.value.reason == reason and str(caught.value)


def test_missing_and_corrupt_weights_have_their_own_reasons(tmp_path):
    torch = pytest.importorskip("torch")
    from amodal_depth_ros.networks import AmodalMaskNet, load_weights

    with pytest.raises(errors.ModelLoadError) as missing:
        load_weights(AmodalMaskNet(), tmp_path / "none.pt", "amodal mask")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(errors.ModelLoadError) as corrupt:
        load_weights(AmodalMaskNet(), tmp_path / "bad.pt", "amodal mask")
    torch.save({"model": {"x": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(errors.ModelLoadError) as other:
        load_weights(AmodalMaskNet(), tmp_path / "other.pt", "amodal mask")
    assert (missing.value.reason, corrupt.value.reason, other.value.reason) == (
        "model_missing", "model_unreadable", "model_mismatch")
