"""What the admin routes over every user's projects and project links answer."""

from __future__ import annotations

from ._base import ReadModel, UTCTimestamp


class ProjectReadSuperuser(ReadModel):
    """A project as a superuser lists it: with its owner's e-mail."""

    id: int
    name: str
    description: str | None = None
    is_starred: bool = False
    timestamp_created: UTCTimestamp
    user_email: str


class LinkUserProjectRead(ReadModel):
    """One user's link to one project (an owner, a member, or a pending invitation)."""

    user_id: int
    user_email: str
    project_id: int
    project_name: str
    is_verified: bool
    is_owner: bool
    permissions: str
