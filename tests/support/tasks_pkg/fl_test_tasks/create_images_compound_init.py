"""create_images_compound (converter_compound), init step: plan the new images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from ._contract import clean_url, logger, run_task
except ImportError:  # run as a script: python <package_root>/create_images_compound_init.py
    from _contract import clean_url, logger, run_task


def create_images_compound_init(
    zarr_dir: str, num_images: int = 2, plate: str = "compound"
) -> dict[str, Any]:
    """Return one item per new image <zarr_dir>/<plate>.zarr/B/<i>/0, i = 1..num_images."""
    base = Path(clean_url(zarr_dir)) / f"{plate}.zarr" / "B"
    items = [
        {
            "zarr_url": str(base / str(index) / "0"),
            "init_args": {"plate": plate, "well": f"B{index:02d}", "index": index},
        }
        for index in range(1, num_images + 1)
    ]
    logger.info("planned %d new images under %s", len(items), base)
    return {"parallelization_list": items}


if __name__ == "__main__":
    run_task(create_images_compound_init)
