"""summarise_demo (non_parallel): one summary of the measurements of all images."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

try:
    from ._call import logger, run_task, write_json
except ImportError:  # run as a script: python <package_root>/summarise_demo.py
    from _call import logger, run_task, write_json  # type: ignore[no-redef,import-not-found]  # same names, found beside the script


def summarise_demo(zarr_urls: list[str], zarr_dir: str, output_name: str = "summary.json") -> None:
    """Write <zarr_dir>/<output_name>: the count, mean and brightest of the measured images."""
    measurements = []
    for url in zarr_urls:
        path = Path(url) / "measurement.json"
        if path.exists():
            measurements.append(json.loads(path.read_text(encoding="utf-8")))
    means = [item["mean_intensity"] for item in measurements]
    brightest = max(measurements, key=lambda item: item["mean_intensity"], default=None)
    summary = {
        "images": len(zarr_urls),
        "measured": len(measurements),
        "mean_of_means": round(statistics.fmean(means), 2) if means else None,
        "brightest": brightest["zarr_url"] if brightest else None,
    }
    target = Path(zarr_dir) / output_name
    target.parent.mkdir(parents=True, exist_ok=True)
    write_json(target, summary)
    logger.info("summary of %d image(s) written to %s", len(zarr_urls), target)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    run_task(summarise_demo)
