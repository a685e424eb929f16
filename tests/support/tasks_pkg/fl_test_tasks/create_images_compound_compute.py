"""create_images_compound (converter_compound), compute step: create one planned image."""

from __future__ import annotations

from typing import Any

try:
    from ._contract import clean_url, logger, run_task, write_image
except ImportError:  # run as a script: python <package_root>/create_images_compound_compute.py
    from _contract import clean_url, logger, run_task, write_image


def create_images_compound_compute(zarr_url: str, init_args: dict[str, Any]) -> dict[str, Any]:
    """Create the image folder with a data.txt and return it as a new 3D image."""
    zarr_url = clean_url(zarr_url)
    write_image(zarr_url, f"well={init_args.get('well')} index={init_args.get('index')}\n")
    logger.info("created image %s", zarr_url)
    return {
        "image_list_updates": [
            {"zarr_url": zarr_url, "attributes": dict(init_args), "types": {"is_3D": True}}
        ]
    }


if __name__ == "__main__":
    run_task(create_images_compound_compute)
