"""create_demo_images (converter_non_parallel): make small images under zarr_dir."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

try:
    from ._call import logger, run_task, write_json
except ImportError:  # run as a script: python <package_root>/create_demo_images.py
    from _call import logger, run_task, write_json  # type: ignore[no-redef,import-not-found]  # same names, found beside the script

ROWS = "ABCDEFGH"
COLUMNS = 12
SIZE = 16


def create_demo_images(zarr_dir: str, num_images: int = 8, plate: str = "demo") -> dict[str, Any]:
    """Create `num_images` images <zarr_dir>/<plate>.zarr/<row>/<column>/0, well by well."""
    if not 1 <= num_images <= len(ROWS) * COLUMNS:
        raise ValueError(f"num_images must be between 1 and {len(ROWS) * COLUMNS}")
    updates = []
    for index in range(num_images):
        row, column = ROWS[index // COLUMNS], index % COLUMNS + 1
        well = f"{row}{column:02d}"
        folder = Path(zarr_dir.rstrip("/")) / f"{plate}.zarr" / row / f"{column:02d}" / "0"
        folder.mkdir(parents=True, exist_ok=True)
        noise = random.Random(f"{plate}-{well}")  # the same pixels on every run
        brightness = noise.randint(40, 200)
        pixels = [
            [max(0, min(255, round(noise.gauss(brightness, 20)))) for _ in range(SIZE)]
            for _ in range(SIZE)
        ]
        write_json(folder / "pixels.json", {"shape": [SIZE, SIZE], "pixels": pixels})
        logger.info("created %s", folder)
        updates.append(
            {
                "zarr_url": str(folder),
                "attributes": {"plate": plate, "well": well},
                "types": {"is_3D": False},
            }
        )
    print(f"create_demo_images: {num_images} image(s) in {zarr_dir}", flush=True)
    return {"image_list_updates": updates}


if __name__ == "__main__":
    run_task(create_demo_images)
