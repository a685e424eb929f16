"""A job's folder: the zip users download, and the live log.

Both are read from disk in worker threads by the routes (never in the event loop), and
neither is ever held whole in memory: the zip goes to a spooled temporary file, the live
log is read up to its last MAX_LIVE_LOG_BYTES.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

WORKFLOW_LOG = "workflow.log"
# A zip this small stays in memory; a larger one goes to a temporary file.
ZIP_IN_MEMORY_BYTES = 4 * 1024 * 1024
ZIP_CHUNK_BYTES = 1024 * 1024
MAX_LIVE_LOG_BYTES = 1024 * 1024
_CUT = "[... earlier lines cut ...]\n"


def zip_folders(*folders: str | None) -> IO[bytes]:
    """Zip a job's folders into one tree, workflow.log at the root; empty when they are gone.

    A SLURM job has two: the server's (workflow.log, batch files, scripts) and the cluster
    user's (the units' logs and outputs), with the same task subfolders. The zip is
    returned as an open file at its start; the caller closes it.
    """
    # Handed to the caller open (it streams the zip, then closes it).
    archive_file = tempfile.SpooledTemporaryFile(max_size=ZIP_IN_MEMORY_BYTES)  # noqa: SIM115
    seen: set[str] = set()
    try:
        with zipfile.ZipFile(archive_file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
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
    except BaseException:
        archive_file.close()
        raise
    archive_file.seek(0)
    return archive_file


def iter_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    """The file's content chunk by chunk, closing it at the end (or when abandoned)."""
    with handle:
        while chunk := handle.read(ZIP_CHUNK_BYTES):
            yield chunk


def read_live_log(folder: str | None) -> str | None:
    """The end of the job's workflow.log (its last MAX_LIVE_LOG_BYTES), or None."""
    if not folder:
        return None
    path = Path(folder) / WORKFLOW_LOG
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - MAX_LIVE_LOG_BYTES))
            data = handle.read(MAX_LIVE_LOG_BYTES)
    except OSError:
        return None
    text = data.decode("utf-8", errors="replace")
    return _CUT + text.split("\n", 1)[-1] if size > MAX_LIVE_LOG_BYTES else text
