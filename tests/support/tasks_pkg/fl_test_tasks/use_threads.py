"""use_threads (parallel): work in threads and in processes (fork and spawn), then report."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

try:
    from ._contract import clean_url, run_task
except ImportError:  # run as a script: python <package_root>/use_threads.py
    from _contract import clean_url, run_task


def square(number: int) -> int:
    """Module-level, so a spawned process can unpickle it by name from `__main__`."""
    return number * number


def use_threads(zarr_url: str, count: int = 4) -> dict[str, Any]:
    """Square 0..count-1 in a thread pool and in fork and spawn process pools; return sums."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        threads = sum(pool.map(square, range(count)))
    sums = {}
    for method in ("fork", "spawn"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            sums[method] = sum(pool.map(square, range(count)))
    print(f"use_threads: pid {os.getpid()} threads={threads} processes={sums}", flush=True)
    attributes = {"threads": threads, "fork": sums["fork"], "spawn": sums["spawn"]}
    return {"image_list_updates": [{"zarr_url": clean_url(zarr_url), "attributes": attributes}]}


if __name__ == "__main__":
    run_task(use_threads)
