"""A job's folder: the zip users download, and the live log."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

WORKFLOW_LOG = "workflow.log"


def zip_folders(*folders: str | None) -> bytes:
    """Zip a job's folders into one tree, workflow.log at the root; empty when they are gone.

    A SLURM job has two: the server's (workflow.log, batch files, scripts) and the cluster
    user's (the units' logs and outputs), with the same task subfolders.
    """
    buffer = io.BytesIO()
    seen: set[str] = set()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for folder in dict.fromkeys(folder for folder in folders if folder):
            if not os.path.isdir(folder):
                continue
            root = Path(folder)
            for path in sorted(root.rglob("*")):
                name = str(path.relative_to(root))
                # Never follow links out of the job folder into other files.
                if path.is_file() and not path.is_symlink() and name not in seen:
                    seen.add(name)
                    archive.write(path, arcname=name)
    return buffer.getvalue()


def read_live_log(folder: str | None) -> str | None:
    if not folder:
        return None
    path = Path(folder) / WORKFLOW_LOG
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None
