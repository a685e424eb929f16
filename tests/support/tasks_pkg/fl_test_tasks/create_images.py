"""create_images (converter_non_parallel): create a small plate of new images under zarr_dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    from ._contract import clean_url, logger, run_task, write_image
except ImportError:  # run as a script: python <package_root>/create_images.py
    from _contract import clean_url, logger, run_task, write_image


def create_images(
    zarr_dir: str,
    num_images: int = 3,
    plate: str = "plate",
    attribute_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create <zarr_dir>/<plate>.zarr/A/<i>/0 for i = 1..num_images, each with a data.txt."""
    extra = dict(attribute_extra or {})
    updates = []
    for index in range(1, num_images + 1):
        well = f"A{index:02d}"
        zarr_url = str(Path(clean_url(zarr_dir)) / f"{plate}.zarr" / "A" / str(index) / "0")
        write_image(zarr_url, f"plate={plate} well={well} index={index}\n")
        logger.info("created image %s", zarr_url)
        updates.append(
            {
                "zarr_url": zarr_url,
                "attributes": {"plate": plate, "well": well, "index": index, **extra},
                "types": {"is_3D": True},
            }
        )
    print(f"create_images: {len(updates)} images in {zarr_dir}", flush=True)
    return {"image_list_updates": updates}


if __name__ == "__main__":
    run_task(create_images)
