"""Counters and per-stage latency of the node, reported as one diagnostic_msgs/DiagnosticStatus."""
from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


class NodeStats:
    """Updated from the subscription callbacks and the worker; read by the diagnostics timer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames_in = 0
        self.frames_out = 0
        self.superseded = 0          # matched frames replaced by a newer one before the worker took them
        self.unmatched = 0           # images that never found their camera_info/depth partner
        self.rejected: Counter[str] = Counter()
        self.last_error = ""
        self._stage_sums: dict[str, float] = defaultdict(float)
        self._stage_count = 0
        self._window_start = time.monotonic()
        self._window_in = 0
        self._window_out = 0
        self._window_rejected = 0
        # stage -> why its configured (learned) method is not running; non-empty keeps the level at WARN.
        self.fallbacks: dict[str, str] = {}
        self.backends: dict[str, str] = {}   # learned stage -> what runs its network now

    def set_fallbacks(self, fallbacks: dict[str, str], backends: dict[str, str] | None = None) -> None:
        with self._lock:
            self.fallbacks = dict(fallbacks)
            self.backends = dict(backends or {})

    def count_input(self) -> None:
        with self._lock:
            self.frames_in += 1
            self._window_in += 1

    def count_output(self, timings_ms: dict[str, float]) -> None:
        with self._lock:
            self.frames_out += 1
            self._window_out += 1
            self._stage_count += 1
            for stage, ms in timings_ms.items():
                self._stage_sums[stage] += ms

    def count_rejected(self, reason: str, message: str) -> None:
        with self._lock:
            self.rejected[reason] += 1
            self._window_rejected += 1
            self.last_error = f"{reason}: {message}"

    def status(self, name: str) -> DiagnosticStatus:
        """Snapshot since the previous call: rates and mean stage times over that window."""
        with self._lock:
            now = time.monotonic()
            span = max(now - self._window_start, 1e-6)
            values = {
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "rate_in_hz": f"{self._window_in / span:.2f}",
                "rate_out_hz": f"{self._window_out / span:.2f}",
                "dropped_superseded": self.superseded,
                "dropped_unsynchronized": self.unmatched,
                "rejected_total": sum(self.rejected.values()),
            }
            values.update({f"rejected_{reason}": count for reason, count in sorted(self.rejected.items())})
            for stage, total in self._stage_sums.items():
                values[f"stage_ms_{stage}"] = f"{total / max(self._stage_count, 1):.2f}"
            if self.last_error:
                values["last_error"] = self.last_error
            values.update({f"fallback_{stage}": why for stage, why in sorted(self.fallbacks.items())})
            values.update({f"backend_{stage}": what for stage, what in sorted(self.backends.items())})
            if self._window_rejected:
                level, message = DiagnosticStatus.WARN, f"{self._window_rejected} bad input frame(s) dropped"
            elif self._window_in == 0:
                level, message = DiagnosticStatus.WARN, "no input images"
            else:
                level, message = DiagnosticStatus.OK, "processing"
            if self.fallbacks:   # the learned model the user configured is not running: never OK
                level = DiagnosticStatus.WARN
                message += f"; fallback in use for {', '.join(sorted(self.fallbacks))} (see fallback_* values)"
            self._window_start, self._window_in, self._window_out, self._window_rejected = now, 0, 0, 0
            self._stage_sums.clear()
            self._stage_count = 0
        return DiagnosticStatus(level=level, name=f"{name}: pipeline", message=message, hardware_id="",
                                values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
