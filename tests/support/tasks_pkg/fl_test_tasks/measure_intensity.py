"""measure_intensity (parallel): record the call, measure one image, mark it measured."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

try:
    from ._contract import DATA_FILE, clean_url, record_run, run_task, write_text_atomic
except ImportError:  # run as a script: python <package_root>/measure_intensity.py
    from _contract import DATA_FILE, clean_url, record_run, run_task, write_text_atomic


def measure_intensity(zarr_url: str, threshold: float = 0, sleep: float = 0) -> dict[str, Any]:
    """Append a line to runs.log, wait `sleep` seconds, then write measurement.json."""
    zarr_url = clean_url(zarr_url)
    record_run(zarr_url, "measure_intensity")
    if sleep > 0:
        print(f"measure_intensity: sleeping {sleep} s", flush=True)
        time.sleep(sleep)
    data = Path(zarr_url) / DATA_FILE
    value = data.stat().st_size if data.exists() else 0
    measurement = {
        "zarr_url": zarr_url,
        "value": value,
        "threshold": threshold,
        "above_threshold": value > threshold,
        "pid": os.getpid(),
    }
    write_text_atomic(Path(zarr_url) / "measurement.json", json.dumps(measurement, indent=2))
    print(f"measure_intensity: {zarr_url} value={value}", flush=True)
    return {"image_list_updates": [{"zarr_url": zarr_url, "attributes": {"measured": True}}]}


if __name__ == "__main__":
    run_task(measure_intensity)
