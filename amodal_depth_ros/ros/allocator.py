"""Keep the per-frame multi-megabyte buffers (cloud records, message data, serialised messages) in the heap.

glibc serves allocations above its mmap threshold with fresh mmap()s and unmaps them on free, so
every frame page-faults its ~7 MB cloud in again, two or three times over. Measured at 640x480 on a
2-core CPU: PointCloud2 serialisation 13 ms -> 5 ms, the instance array 4 ms -> 1.7 ms once the
buffers are recycled. Raising the mmap and trim thresholds keeps them in the heap; the price is up
to ``trim_threshold`` of freed memory the process keeps instead of returning it to the system.
"""
from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc's mallopt parameters (malloc.h)


def reuse_large_buffers(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20) -> bool:
    """True when glibc accepted the thresholds. A no-op off glibc, and where the user set the
    MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ environment variables (theirs win)."""
    if not sys.platform.startswith("linux") or {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)
        )
    except (OSError, AttributeError):  # not glibc (musl, ...): keep its defaults
        return False
