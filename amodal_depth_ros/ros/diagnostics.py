"""Counters and per-stage latency of the node, reported as one diagnostic_msgs/DiagnosticStatus."""
from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

# Where each image the node received went (keys of its diagnostics): processed (frames_out) or one of these.
IMAGE_FATES = ("dropped_superseded", "dropped_unsynchronized", "dropped_out_of_order", "skipped_no_subscriber",
               "rejected_total", "images_waiting")


def images_accounted(values: dict[str, str]) -> int:
    """Images a driver published that the node's diagnostics account for: received (frames_in) or superseded in
    its input queue while it was busy. With one reliable publisher this is every image published."""
    return int(values.get("frames_in", "0")) + int(values.get("superseded_in_queue_image", "0"))


def unaccounted_images(values: dict[str, str]) -> int:
    """Images received that the diagnostics count neither as processed nor as dropped for a reason: 0 whenever
    the node is idle (a frame in the worker's hands is counted when it is done)."""
    return int(values["frames_in"]) - int(values["frames_out"]) - sum(int(values[k]) for k in IMAGE_FATES)


RESTART_BELOW = 2   # a sequence number this low after higher ones: a new publisher, not a repeat


class SequenceGaps:
    """Messages a publisher sent that never reached the callback, from the gaps in its publication sequence
    numbers (DDS numbers each writer's samples 1, 2, 3, ...). Only meaningful while one publisher feeds the
    topic: with several, their numbers interleave, so the caller passes None and the count pauses."""

    def __init__(self) -> None:
        self._last: int | None = None

    def missed(self, sequence: int | None) -> int:
        """How many of this publisher's messages came between the newest one received and this one."""
        if sequence is None or sequence <= 0:
            self._last = None
            return 0
        last = self._last
        if last is not None and sequence <= last:
            # A repeat (a re-created subscription delivers in-flight messages twice: older numbers) changes
            # nothing; a new publisher (numbers start again from 1) sets a new baseline.
            if sequence <= RESTART_BELOW or 2 * sequence < last:
                self._last = sequence
            return 0
        self._last = sequence
        return 0 if last is None else sequence - last - 1   # the first message: a baseline, nothing missed


class NodeStats:
    """Updated from the subscription callbacks and the worker; read by the diagnostics timer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames_in = 0
        self.frames_out = 0
        self.superseded = 0          # matched frames replaced by a newer one before the worker took them
        self.unmatched = 0           # images that never found their camera_info/depth partner
        self.idle = 0                # paired frames left unprocessed: no output had a subscriber
        self.out_of_order = 0        # paired frames older than (or as old as) one already handed on
        self.time_jumps = 0          # image stamps jumped back (bag loop, restarted driver)
        self._window_idle = 0
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
        self.hardware_id = ""                # the camera's frame_id, from the newest input
        self._arrivals: Counter[str] = Counter()          # input topic -> messages in the window
        self._last_arrival: dict[str, float] = {}         # input topic -> monotonic time of its newest message
        # Input topic -> messages its publisher sent that the node never received: under a reliable subscription
        # superseded by newer ones in the subscription's history (KEEP_LAST) while the node was busy; under a
        # best-effort one lost in transport or superseded (DDS does not say which).
        self._gaps: dict[str, SequenceGaps] = defaultdict(SequenceGaps)
        self.superseded_in_queue: Counter[str] = Counter()
        self.lost: Counter[str] = Counter()

    def count_message(self, topic: str, frame_id: str, sequence: int | None = None, reliable: bool = True) -> None:
        """Any input message: per-input rates, staleness, the camera frame that names the hardware, and the
        messages missed before it (``sequence``: its publication sequence number, None when it cannot be told
        which publisher sent it)."""
        with self._lock:
            self._arrivals[topic] += 1
            self._last_arrival[topic] = time.monotonic()
            if frame_id:
                self.hardware_id = frame_id
            missed = self._gaps[topic].missed(sequence)
            if missed:
                (self.superseded_in_queue if reliable else self.lost)[topic] += missed

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

    def count_idle(self) -> None:
        with self._lock:
            self.idle += 1
            self._window_idle += 1

    def count_rejected(self, reason: str, message: str) -> None:
        with self._lock:
            self.rejected[reason] += 1
            self._window_rejected += 1
            self.last_error = f"{reason}: {message}"

    def status(self, name: str, qos: dict[str, str] | None = None, stale_after: float = 0.0,
               waiting: int = 0) -> DiagnosticStatus:
        """Snapshot since the previous call: rates and mean stage times over that window; ``qos``: input topic ->
        the QoS in use; an input silent for more than ``stale_after`` seconds (0: never) turns the level WARN;
        ``waiting``: images received that wait for their camera_info or depth partner."""
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
                "skipped_no_subscriber": self.idle,
                "dropped_out_of_order": self.out_of_order,
                "time_jumps": self.time_jumps,
                "images_waiting": waiting,
                "rejected_total": sum(self.rejected.values()),
            }
            values.update({f"rejected_{reason}": count for reason, count in sorted(self.rejected.items())})
            for stage, total in self._stage_sums.items():
                values[f"stage_ms_{stage}"] = f"{total / max(self._stage_count, 1):.2f}"
            for topic in sorted(set(qos or {}) | set(self._arrivals)):
                values[f"rate_{topic}_hz"] = f"{self._arrivals[topic] / span:.2f}"
            values.update({f"qos_{topic}": what for topic, what in sorted((qos or {}).items())})
            for topic in sorted(qos or {}):
                values[f"superseded_in_queue_{topic}"] = self.superseded_in_queue[topic]
                values[f"lost_{topic}"] = self.lost[topic]
            stale = sorted(t for t, last in self._last_arrival.items() if stale_after > 0 and now - last > stale_after)
            if stale:
                values["stale_inputs"] = ", ".join(stale)
            if self.last_error:
                values["last_error"] = self.last_error
            values.update({f"fallback_{stage}": why for stage, why in sorted(self.fallbacks.items())})
            values.update({f"backend_{stage}": what for stage, what in sorted(self.backends.items())})
            if self._window_rejected:
                level, message = DiagnosticStatus.WARN, f"{self._window_rejected} bad input frame(s) dropped"
            elif self._window_in == 0:
                level, message = DiagnosticStatus.WARN, "no input images"
            elif self._window_idle and not self._window_out:
                level, message = DiagnosticStatus.OK, "idle: no subscriber to any output"
            else:
                level, message = DiagnosticStatus.OK, "processing"
            if stale:
                level = DiagnosticStatus.WARN
                message += "; stale input: " + ", ".join(
                    f"{t} silent for {now - self._last_arrival[t]:.1f} s" for t in stale)
            if self.fallbacks:   # the learned model the user configured is not running: never OK
                level = DiagnosticStatus.WARN
                message += f"; fallback in use for {', '.join(sorted(self.fallbacks))} (see fallback_* values)"
            self._window_start, self._window_in, self._window_out, self._window_rejected = now, 0, 0, 0
            self._stage_sums.clear()
            self._arrivals.clear()
            self._window_idle = 0
            self._stage_count = 0
        return DiagnosticStatus(level=level, name=f"{name}: pipeline", message=message, hardware_id=self.hardware_id,
                                values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
