"""What the collection services need from an uploaded file: its name and its bytes.

A protocol rather than the web framework's upload class, so that services stay free of
HTTP; FastAPI's `UploadFile` satisfies it as it is.
"""

from __future__ import annotations

from typing import Protocol


class Upload(Protocol):
    @property
    def filename(self) -> str | None: ...

    async def read(self, size: int = -1) -> bytes: ...
