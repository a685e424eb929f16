"""aggregate (non_parallel): write a summary of all input images; no output."""

from __future__ import annotations

import json
from pathlib import Path

try:
    from ._contract import logger, run_task, write_text_atomic
except ImportError:  # run as a script: python <package_root>/aggregate.py
    from _contract import logger, run_task, write_text_atomic


def aggregate(zarr_urls: list[str], zarr_dir: str, output_name: str = "summary.json") -> None:
    """Write <zarr_dir>/<output_name> listing the input zarr_urls; return nothing."""
    folder = Path(zarr_dir)
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"count": len(zarr_urls), "zarr_urls": list(zarr_urls)}
    target = folder / output_name
    write_text_atomic(target, json.dumps(summary, indent=2))
    logger.info("aggregated %d images into %s", len(zarr_urls), target)


if __name__ == "__main__":
    run_task(aggregate)
