"""Projects and their sharing."""

from __future__ import annotations

from typing import Literal

from pydantic import EmailStr

from ._base import LongStr, NonEmptyStr, ReadModel, StrictModel, UTCTimestamp, omittable

Permissions = Literal["r", "rw", "rwx"]


class ProjectCreate(StrictModel):
    name: NonEmptyStr
    description: LongStr | None = None


class ProjectUpdate(StrictModel):
    """Null clears the description; name and is_starred are left out or given."""

    name: NonEmptyStr = omittable()
    description: LongStr | None = None
    is_starred: bool = omittable()


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
