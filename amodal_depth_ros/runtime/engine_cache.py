"""TensorRT engines on disk: the key an engine is valid for, and a cache that processes can share.

An engine only fits the graph, TensorRT version, GPU, precision, build policy and code it was built
from, so the key holds all of them (``engine_key``) and names the files (``key_digest``). Per key the
cache holds ``<digest>.json``, the record (the key, and the name, size and sha256 of the engine file),
and ``<digest>-<sha256[:12]>.engine``, the engine itself. The record is written last, by a rename, and
an engine file never changes once written: a reader that finds a record finds the complete engine it
names, never half of a pair. Builders hold the key's lock (``lock``), so two processes never build
the same engine at once and nothing is deleted under a reader that holds it. Needs no TensorRT.
"""
from __future__ import annotations

import hashlib
import json
import logging
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .cache import atomic_write, file_lock, remove_temps
from .export import code_version

log = logging.getLogger(__name__)


def graph_io(graph: Path) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """The graph's inputs and outputs, name -> static shape, in the graph's order (the call order)."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)

    def shapes(values: Any) -> dict[str, list[int]]:
        return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}
    return shapes(model.graph.input), shapes(model.graph.output)


def engine_key(graph: Path, precision: str, tensorrt: str, gpu: dict[str, Any],
               build: dict[str, Any]) -> dict[str, Any]:
    """Everything an engine depends on: the graph (sha256, input and output shapes), precision, TensorRT
    version, the GPU (``gpu``: name, compute capability, memory, SM count), the build policy (``build``:
    typing mode, layers kept in fp32, workspace, TF32) and the code that exported the graph."""
    inputs, outputs = graph_io(graph)
    return {"onnx_sha256": hashlib.sha256(Path(graph).read_bytes()).hexdigest(), "inputs": inputs,
            "outputs": outputs, "precision": precision, "tensorrt": tensorrt, **gpu, "build": build,
            "code": code_version()}


def key_digest(key: dict[str, Any]) -> str:
    """Short hex digest of ``key``: the stem of its files."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


class EngineCache:
    """Engines in ``directory``, shared by processes (see the module docstring)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.reason = ""   # why the last ``load`` returned None

    def record_path(self, key: dict[str, Any]) -> Path:
        return self.directory / f"{key_digest(key)}.json"

    def lock(self, key: dict[str, Any]) -> AbstractContextManager[None]:
        """The key's lock: hold it to build, store or delete the key's files."""
        digest = key_digest(key)
        return file_lock(self.directory / f".{digest}.lock", f"building TensorRT engine {digest}")

    def build_lock(self) -> AbstractContextManager[None]:
        """One build at a time among all processes using this cache; taken inside a key's lock, never around one."""
        return file_lock(self.directory / ".build.lock", "building another TensorRT engine")

    def engine_path(self, key: dict[str, Any]) -> Path | None:
        """The engine file the key's record names (None without a readable record)."""
        try:
            name = json.loads(self.record_path(key).read_text())["engine"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return self.directory / name if isinstance(name, str) and Path(name).name == name else None

    def inspect(self, key: dict[str, Any]) -> tuple[bytes | None, str]:
        """The cached engine and 'cached', or None and why there is no usable one; changes nothing and takes
        no lock (a record always names a complete engine)."""
        for attempt in range(2):
            try:
                meta = json.loads(self.record_path(key).read_text())
            except FileNotFoundError:
                return None, "no cached engine"
            except (OSError, ValueError):
                return None, "the cached engine's record is unreadable"
            if not isinstance(meta, dict) or not {"key", "engine", "size", "sha256"} <= set(meta):
                return None, "the cached engine's record is incomplete"
            stored = meta["key"]
            if stored != key:
                changed = [k for k in key if not isinstance(stored, dict) or stored.get(k) != key[k]]
                return None, f"the cached engine was built for another {', '.join(changed) or 'key'}"
            path = self.engine_path(key)
            try:
                engine = path.read_bytes() if path is not None else None
            except FileNotFoundError:   # replaced by a builder since the record was read: read the new record
                engine = None
            if engine is None:
                if attempt == 0:
                    continue
                return None, "the engine file the record names is missing"
            if len(engine) != meta["size"]:
                return None, f"the cached engine is truncated ({len(engine)} of {meta['size']} bytes)"
            if hashlib.sha256(engine).hexdigest() != meta["sha256"]:
                return None, "the cached engine's checksum does not match (corrupt file)"
            return engine, "cached"
        return None, "no cached engine"   # not reached

    def load(self, key: dict[str, Any]) -> bytes | None:
        """The cached engine, or None (``reason`` says why), after deleting what a killed writer left and any
        bad engine. Call it holding ``lock(key)``."""
        remove_temps(self.directory, key_digest(key))
        engine, why = self.inspect(key)
        self.reason = "" if engine is not None else why
        if engine is None:
            if why != "no cached engine":
                log.warning("deleting the cached engine %s: %s", self.record_path(key), why)
            self.remove(key)
        else:
            self._remove_engines(key, keep=self.engine_path(key))
        return engine

    def store(self, key: dict[str, Any], engine: bytes) -> Path:
        """Write the engine, then the record naming it (the commit); returns the engine file. Call it holding
        ``lock(key)``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        sha256 = hashlib.sha256(engine).hexdigest()
        path = self.directory / f"{key_digest(key)}-{sha256[:12]}.engine"
        atomic_write(path, engine)
        record = {"key": key, "engine": path.name, "size": len(engine), "sha256": sha256}
        atomic_write(self.record_path(key), (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
        self._remove_engines(key, keep=path)
        return path

    def remove(self, key: dict[str, Any]) -> None:
        """Delete the key's record and engines. Call it holding ``lock(key)``."""
        self.record_path(key).unlink(missing_ok=True)
        self._remove_engines(key, keep=None)

    def _remove_engines(self, key: dict[str, Any], keep: Path | None) -> None:
        for path in self.directory.glob(f"{key_digest(key)}-*.engine"):
            if path != keep:
                path.unlink(missing_ok=True)
