"""Errors shared by the model loaders."""
from __future__ import annotations


class ModelLoadError(ValueError):
    """A checkpoint that cannot be turned into a model: missing, unreadable, or of another architecture."""
