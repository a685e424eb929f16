"""A job's folder: the zip users download, and the live log."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

WORKFLOW_LOG = "workflow.log"


def zip_folder(folder: str | None) -> bytes:
    """Zip a job's folder, workflow.log at the root; an empty zip when the folder is gone."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if folder and os.path.isdir(folder):
            root = Path(folder)
            for path in sorted(root.rglob("*")):
                # Never follow links out of the job folder into other files.
                if path.is_file() and not path.is_symlink():
                    archive.write(path, arcname=str(path.relative_to(root)))
    return buffer.getvalue()


def read_live_log(folder: str | None) -> str | None:
    if not folder:
        return None
    path = Path(folder) / WORKFLOW_LOG
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None
