#!/usr/bin/env python3
"""Record the TensorRT Python API names of given releases, read from the bindings' sources.

Usage: scripts/tensorrt_api_names.py TENSORRT_GIT_DIR BRANCH[=LABEL]... > test/data/tensorrt_api.json

TENSORRT_GIT_DIR is a clone of github.com/NVIDIA/TensorRT (a bare one will do). For each branch, the
pybind11 sources (python/src/infer/*.cpp, python/src/parsers/pyOnnx.cpp) are scanned for the classes
and enums they bind and the names each exposes; module attributes (``trt.float32``) too. The test
stand-ins of the TensorRT API (test/tensorrt_standin.py) expose only names recorded here, so code
that passes against a stand-in uses nothing its release lacks.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

FILES = ("python/src/infer/pyCore.cpp", "python/src/infer/pyGraph.cpp", "python/src/infer/pyFoundationalTypes.cpp",
         "python/src/parsers/pyOnnx.cpp")
BLOCK = re.compile(r'py::(class_|enum_)<(.*?)>\s*\(\s*m\s*,\s*"(\w+)"', re.S)
MEMBER = re.compile(r'\.(?:def|def_property|def_property_readonly|def_readwrite|def_readonly|def_static)\(\s*"(\w+)"')
VALUE = re.compile(r'\.value\(\s*"(\w+)"')
MODULE_ATTR = re.compile(r'm\.(?:attr|def)\(\s*"(\w+)"')


def scan(source: str, api: dict) -> None:
    starts = [(m.start(), m.group(1), m.group(3)) for m in BLOCK.finditer(source)] + [(len(source), "", "")]
    for (start, kind, name), (end, _, _) in zip(starts, starts[1:], strict=False):
        body = source[start:end]
        # A block ends where the next binding starts, or earlier at module-level code (m.def / m.attr).
        stop = re.search(r"\n\s*m\.(attr|def)\(", body)
        body = body[:stop.start()] if stop else body
        if kind == "enum_":
            api["enums"].setdefault(name, set()).update(VALUE.findall(body))
        else:
            api["classes"].setdefault(name, set()).update(MEMBER.findall(body))
    api["module"].update(MODULE_ATTR.findall(source))


def record(git_dir: str, branch: str) -> dict:
    commit = subprocess.run(["git", "-C", git_dir, "rev-parse", branch], capture_output=True, text=True,
                            check=True).stdout.strip()
    api: dict = {"enums": {}, "classes": {}, "module": set()}
    for path in FILES:
        shown = subprocess.run(["git", "-C", git_dir, "show", f"{commit}:{path}"], capture_output=True, text=True)
        if shown.returncode == 0:
            scan(shown.stdout, api)
    version = subprocess.run(["git", "-C", git_dir, "show", f"{commit}:include/NvInferVersion.h"],
                             capture_output=True, text=True, check=True).stdout
    parts = [re.search(rf"#define (?:TRT_{p}_ENTERPRISE|NV_TENSORRT_{p})\s+(\d+)", version)
             for p in ("MAJOR", "MINOR", "PATCH")]
    return {"source": {"repository": "github.com/NVIDIA/TensorRT", "branch": branch, "commit": commit,
                       "files": list(FILES)},
            "version": ".".join(p.group(1) for p in parts if p),
            "enums": {k: sorted(v) for k, v in sorted(api["enums"].items())},
            "classes": {k: sorted(v) for k, v in sorted(api["classes"].items())},
            "module": sorted(api["module"])}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = {}
    for spec in argv[1:]:
        branch, _, label = spec.partition("=")
        entry = record(argv[0], branch)
        out[label or entry["version"]] = entry
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
