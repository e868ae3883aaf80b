"""Pairs image, depth and camera_info messages by stamp (what message_filters' ApproximateTime does,
without its stalls: the newest image wins and nothing waits for a partner that never comes)."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass
class Matched:
    image: Any
    camera_info: Any
    depth: Any | None
    stamp_ns: int


class StampSynchronizer:
    def __init__(self, slop_s: float, queue_size: int, use_depth: bool, camera_info_use_latest: bool):
        self.slop_ns = int(slop_s * 1e9)
        self.use_depth = use_depth
        self.camera_info_use_latest = camera_info_use_latest
        self.queues: dict[str, deque[tuple[int, Any]]] = {
            name: deque(maxlen=queue_size) for name in ("image", "camera_info", "depth")}
        self.unmatched_images = 0  # images dropped because no partner arrived within the slop

    def add(self, topic: str, stamp_ns: int, msg: Any) -> Matched | None:
        queue = self.queues[topic]
        if topic == "image" and len(queue) == queue.maxlen:
            self.unmatched_images += 1
        queue.append((stamp_ns, msg))
        return self._match()

    def _match(self) -> Matched | None:
        images = self.queues["image"]
        # Newest first: an older image is never worth processing once a newer one is complete.
        for index in range(len(images) - 1, -1, -1):
            stamp, image = images[index]
            info = self._partner("camera_info", stamp, latest=self.camera_info_use_latest)
            depth = self._partner("depth", stamp) if self.use_depth else None
            if info is None or (self.use_depth and depth is None):
                continue
            self.unmatched_images += index  # older images can no longer be used
            for _ in range(index + 1):
                images.popleft()
            self._drop_older("depth", stamp)
            return Matched(image=image, camera_info=info, depth=depth, stamp_ns=stamp)
        return None

    def _partner(self, topic: str, stamp_ns: int, latest: bool = False) -> Any | None:
        queue = self.queues[topic]
        if not queue:
            return None
        if latest:
            return queue[-1][1]
        best_stamp, best = min(queue, key=lambda item: abs(item[0] - stamp_ns))
        return best if abs(best_stamp - stamp_ns) <= self.slop_ns else None

    def _drop_older(self, topic: str, stamp_ns: int) -> None:
        queue = self.queues[topic]
        while queue and queue[0][0] <= stamp_ns:
            queue.popleft()
