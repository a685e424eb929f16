"""bad_output (parallel): return a new image outside any zarr_dir (the runner must refuse it)."""

from __future__ import annotations

from typing import Any

try:
    from ._contract import run_task
except ImportError:  # run as a script: python <package_root>/bad_output.py
    from _contract import run_task

OUTSIDE_URL = "/outside/zarr_dir"


def bad_output(zarr_url: str) -> dict[str, Any]:
    """Return an image_list_update for /outside/zarr_dir, which lies under no dataset."""
    return {"image_list_updates": [{"zarr_url": OUTSIDE_URL}]}


if __name__ == "__main__":
    run_task(bad_output)
