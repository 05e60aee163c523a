"""logreg.allocator: freed large arrays are reused, not mapped (and zeroed) afresh."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SECOND_ALLOCATION_FAULTS = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from logreg.allocator import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    n = (64 << 20) // 8  # 64 MB: above glibc's largest dynamic mmap threshold (32 MB)
    first = np.ones(n)
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    second = np.ones(n)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def second_allocation_faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", SECOND_ALLOCATION_FAULTS, mode],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_freed_large_array_is_reused_without_page_faults():
    # glibc's default unmaps the freed 64 MB and maps new pages, touched (faulted) anew;
    # kept in the heap, the same memory comes back already mapped.
    assert second_allocation_faults("default") > 100
    assert second_allocation_faults("keep") < 10
