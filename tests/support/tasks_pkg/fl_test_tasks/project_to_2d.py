"""project_to_2d (parallel, is_3D -> not is_3D): derive a new `<zarr_url>_mip` image."""

from __future__ import annotations

from typing import Any

try:
    from ._contract import clean_url, logger, run_task, write_image
except ImportError:  # run as a script: python <package_root>/project_to_2d.py
    from _contract import clean_url, logger, run_task, write_image


def project_to_2d(zarr_url: str) -> dict[str, Any]:
    """Create the image <zarr_url>_mip and return it with `origin` set to zarr_url."""
    origin = clean_url(zarr_url)
    new_url = f"{origin}_mip"
    write_image(new_url, f"maximum-intensity projection of {origin}\n")
    logger.info("created %s from %s", new_url, origin)
    return {"image_list_updates": [{"zarr_url": new_url, "origin": origin}]}


if __name__ == "__main__":
    run_task(project_to_2d)
