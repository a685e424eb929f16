"""measure_demo_image (parallel): measure one image and record its mean intensity."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

try:
    from ._call import logger, run_task, write_json
except ImportError:  # run as a script: python <package_root>/measure_demo_image.py
    from _call import logger, run_task, write_json  # type: ignore[no-redef,import-not-found]  # same names, found beside the script


def measure_demo_image(zarr_url: str, threshold: int = 128) -> dict[str, Any]:
    """Write <zarr_url>/measurement.json; add the attribute `mean_intensity`."""
    folder = Path(zarr_url)
    image = json.loads((folder / "pixels.json").read_text(encoding="utf-8"))
    values = [value for row in image["pixels"] for value in row]
    mean = round(statistics.fmean(values), 2)
    measurement = {
        "zarr_url": zarr_url,
        "mean_intensity": mean,
        "max_intensity": max(values),
        "fraction_above_threshold": round(sum(v > threshold for v in values) / len(values), 4),
        "threshold": threshold,
    }
    write_json(folder / "measurement.json", measurement)
    logger.info("measured %s: mean %.2f", zarr_url, mean)
    return {"image_list_updates": [{"zarr_url": zarr_url, "attributes": {"mean_intensity": mean}}]}


if __name__ == "__main__":
    run_task(measure_demo_image)
