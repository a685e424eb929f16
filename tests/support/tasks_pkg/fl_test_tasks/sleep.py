"""sleep (parallel): write the process id to <zarr_url>/sleep.pid, then sleep."""

from __future__ import annotations

import os
import time
from pathlib import Path

try:
    from ._contract import clean_url, run_task, write_text_atomic
except ImportError:  # run as a script: python <package_root>/sleep.py
    from _contract import clean_url, run_task, write_text_atomic


def sleep(zarr_url: str, seconds: float = 30) -> None:
    """Write sleep.pid (the pid of this process) first, then sleep `seconds`; no output."""
    folder = Path(clean_url(zarr_url))
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "sleep.pid", f"{os.getpid()}\n")
    print(f"sleep: pid {os.getpid()} sleeping {seconds} s", flush=True)
    time.sleep(seconds)
    print("sleep: woke up", flush=True)


if __name__ == "__main__":
    run_task(sleep)
