"""allocate_memory (parallel): really use some memory for a while, then succeed."""

from __future__ import annotations

import sys
import time

try:
    from ._contract import run_task
except ImportError:  # run as a script: python <package_root>/allocate_memory.py
    from _contract import run_task

PAGE = 4096


def _max_rss_kb() -> int | None:
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, kB on Linux


def allocate_memory(zarr_url: str, megabytes: int = 200, hold_seconds: float = 1.0) -> None:
    """Allocate `megabytes` MiB, write one byte per page so it is resident, hold it, succeed."""
    size = megabytes * 1024 * 1024
    buffer = bytearray(size)
    for offset in range(0, size, PAGE):
        buffer[offset] = 1
    print(f"allocate_memory: {megabytes} MiB allocated and touched for {zarr_url}", flush=True)
    time.sleep(hold_seconds)
    print(f"allocate_memory: max_rss_kb={_max_rss_kb()}", flush=True)
    del buffer


if __name__ == "__main__":
    run_task(allocate_memory)
