"""Projects and their sharing."""

from __future__ import annotations

from typing import Literal

from pydantic import EmailStr

from ._base import LongStr, NonEmptyStr, ReadModel, StrictModel, UTCTimestamp

Permissions = Literal["r", "rw", "rwx"]


class ProjectCreate(StrictModel):
    name: NonEmptyStr
    description: LongStr | None = None


class ProjectUpdate(StrictModel):
    name: NonEmptyStr | None = None
    description: LongStr | None = None
    is_starred: bool | None = None


class ProjectRead(ReadModel):
    id: int
    name: str
    description: str | None = None
    is_starred: bool = False
    timestamp_created: UTCTimestamp


class ProjectAccessCreate(StrictModel):
    email: EmailStr
    permissions: Permissions = "r"


class ProjectAccessUpdate(StrictModel):
    permissions: Permissions


class ProjectAccessRead(ReadModel):
    user_id: int
    email: str
    is_owner: bool
    permissions: str
