"""The package's exceptions. Each carries ``reason``, a short stable key that the node counts in its
diagnostics (``rejected_<reason>``) and throttles its log lines by; the message is for people.

All derive from ValueError: each says that a value handed in (a frame, a file, a parameter) cannot be used.
"""
from __future__ import annotations

__all__ = ["AmodalDepthError", "ConfigError", "DataError", "InputError", "ModelLoadError"]


class AmodalDepthError(ValueError):
    """Base of the package's exceptions: ``reason`` is a stable key, the message says what to do."""

    default_reason = "error"

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason


class InputError(AmodalDepthError):
    """A frame that cannot be processed (encoding, size, intrinsics, ...); the node drops it and goes on.
    Takes the reason first, as the conversions raise it: ``InputError("size_mismatch", "...")``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason)


class ModelLoadError(AmodalDepthError):
    """A network that cannot be served: weights missing, unreadable or of another architecture, or no device
    for it. The pipeline falls back to the training-free stage and reports why."""

    default_reason = "model_unavailable"


class ConfigError(AmodalDepthError):
    """A parameter or option that is out of range or inconsistent with another."""

    default_reason = "bad_parameter"


class DataError(AmodalDepthError):
    """A data set, bag or annotation file that cannot be read as what it claims to be."""

    default_reason = "bad_data"
