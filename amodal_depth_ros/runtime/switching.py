"""Serve with one runner while a faster one is prepared in the background, then switch.

Building a TensorRT engine can take minutes; blocking the node's startup on it was the most common
complaint. A SwitchingRunner answers every call at once with the serving runner and hands over to
the built one when it is ready; a failed build leaves the serving runner in place and says why. So
does a built runner that fails at run time (a TensorRT enqueue that reports failure, a CUDA error): the
call that failed is answered by the serving runner, which serves from then on.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class SwitchingRunner:
    def __init__(self, serving: Any, build: Callable[[], Any], what: str):
        """``serving`` and the result of ``build`` are runners: callables on numpy arrays with a ``status``."""
        self._serving, self._what = serving, what
        self._fast: Any = None
        self.status = f"building {what}, serving {serving.status}"
        self.error = ""                    # why the build failed; the serving runner then stays for good
        self.ready = threading.Event()     # set once the build has finished, either way
        threading.Thread(target=self._build, args=(build, what), name=f"build {what}", daemon=True).start()

    def _build(self, build: Callable[[], Any], what: str) -> None:
        try:
            fast = build()
        except Exception as exc:   # whatever goes wrong, the serving runner keeps answering
            self.error = f"{type(exc).__name__}: {exc}"
            self.status = f"{what} failed, serving {self._serving.status}: {self.error}"
            log.error(self.status)
        else:
            self._fast = fast      # one reference assignment: a call sees either runner, never a mix
            self.status = fast.status
            self.error = getattr(fast, "error", "")   # e.g. onnxruntime serving on its CPU provider
        finally:
            self.ready.set()

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        fast = self._fast
        if fast is None:
            return self._serving(*arrays)
        try:
            return fast(*arrays)
        except (RuntimeError, OSError) as exc:   # what TensorRT, CUDA and onnxruntime raise on a failed run
            self._fast = None
            self.error = f"{type(exc).__name__}: {exc}"
            self.status = f"{self._what} failed at run time, serving {self._serving.status}: {self.error}"
            log.error(self.status)
            return self._serving(*arrays)
