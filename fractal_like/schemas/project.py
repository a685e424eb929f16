"""Projects and their sharing."""

from __future__ import annotations

from typing import Literal

from pydantic import EmailStr

from ._base import (
    LongStr,
    NonEmptyStr,
    ReadModel,
    RequestModel,
    StrictModel,
    UTCTimestamp,
    omittable,
)

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


# Our own sharing routes (POST/PATCH/DELETE access/...): access granted at once.
class ProjectAccessCreate(StrictModel):
    email: EmailStr
    permissions: Permissions = "r"


class ProjectAccessUpdate(StrictModel):
    permissions: Permissions


class ProjectMemberRead(ReadModel):
    """One user's access to a project, as our own sharing routes list them."""

    user_id: int
    email: str
    is_owner: bool
    permissions: str


# Fractal's "Project Sharing": invitations that the invited user accepts.
class ProjectGuestCreate(RequestModel):
    permissions: Permissions


class ProjectGuestUpdate(RequestModel):
    permissions: Permissions


class ProjectGuestRead(ReadModel):
    email: str
    is_verified: bool
    permissions: str


class ProjectInvitationRead(ReadModel):
    project_id: int
    project_name: str
    owner_email: str
    guest_permissions: str


class ProjectAccessRead(ReadModel):
    """The caller's own access to a project."""

    is_owner: bool
    permissions: str
    owner_email: str
