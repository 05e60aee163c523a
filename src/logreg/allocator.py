"""How the process's C allocator hands large arrays back: keep them for reuse instead.

glibc serves an allocation above its mmap threshold (128 KB, rising to at most 32 MB as
such blocks are freed) with a fresh mapping, and unmaps it when it is freed: the next
array of that size is new pages again, each zeroed by the kernel on first touch. A loop
that allocates and frees arrays of tens of MB pays that every time. The evaluate stage's
bootstrap does: thousands of (resamples × rows) count and cumulative-sum arrays. At 2M
rows (400,000 test rows, 1.6M out-of-fold rows, 1,000 resamples) its process spent 22.7
of 121 s in the kernel; with the arrays kept in the heap, 8.0 of 101 s, at the same peak
RSS (2.2 GB), since the freed arrays are reused, not added to.

A Dask worker is worse off by default: its nanny starts it with
``MALLOC_TRIM_THRESHOLD_=65536`` (so that freed memory goes back to the OS and the
worker's memory monitor sees it), and setting that freezes the mmap threshold at 128 KB.
Every array above 128 KB is then new pages: a pandas- and NumPy-heavy job took 1.6 to
1.9x the thread CPU time it took in a loky worker, with 200 times the page faults
(README, sweeps on Dask). A sweep job sets
:data:`JOB_THRESHOLDS` instead: the values glibc's own dynamic thresholds reach, so a
job allocates as it would in any other process, and at most 64 MB of freed heap stays
with the worker (a data task's partitions, above 32 MB, are still mapped and unmapped).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt's parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # allocations below 1 GB come from the heap...
TRIM_THRESHOLD = (1 << 31) - 1  # ... and the heap's free top is kept up to 2 GB (a C int)
JOB_THRESHOLDS = (32 << 20, 64 << 20)  # glibc's dynamic maxima: mmap above 32 MB, trim above 64


def keep_freed_memory(
    mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD
) -> bool:
    """Ask glibc to serve allocations below ``mmap_threshold`` from the heap and to keep
    up to ``trim_threshold`` bytes of its free top; False where there is no glibc (macOS,
    musl), which is left as it is."""
    if not sys.platform.startswith("linux"):
        return False
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    mallopt = getattr(ctypes.CDLL(libc_name), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, trim_threshold)
    )
