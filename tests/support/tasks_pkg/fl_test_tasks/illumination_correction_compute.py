"""illumination_correction (compound), compute step: correct one image in place."""

from __future__ import annotations

from typing import Any

try:
    from ._contract import clean_url, record_run, run_task
except ImportError:  # run as a script: python <package_root>/illumination_correction_compute.py
    from _contract import clean_url, record_run, run_task


def illumination_correction_compute(zarr_url: str, init_args: dict[str, Any]) -> dict[str, Any]:
    """Append a line to runs.log; set attribute `corrected` and type illumination_corrected."""
    zarr_url = clean_url(zarr_url)
    record_run(zarr_url, "illumination_correction")
    print(f"illumination_correction: {zarr_url} suffix={init_args['suffix']}", flush=True)
    return {
        "image_list_updates": [
            {
                "zarr_url": zarr_url,
                "attributes": {"corrected": init_args["suffix"]},
                "types": {"illumination_corrected": True},
            }
        ]
    }


if __name__ == "__main__":
    run_task(illumination_correction_compute)
