"""Projects and who may use them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, String
from sqlmodel import Field, SQLModel

from ._types import created_at_field


class Project(SQLModel, table=True):
    __tablename__ = "projectv2"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(255), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(String(4096)))
    timestamp_created: datetime = created_at_field()


class LinkUserProject(SQLModel, table=True):
    """A user's access to a project: the owner has rwx; others what was shared."""

    __tablename__ = "linkuserprojectv2"

    project_id: int = Field(
        sa_column=Column(Integer, ForeignKey("projectv2.id", ondelete="CASCADE"), primary_key=True)
    )
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("user_oauth.id", ondelete="CASCADE"), primary_key=True, index=True
        )
    )
    is_owner: bool = False
    is_verified: bool = True
    permissions: str = Field(default="rwx", sa_column=Column(String(3), nullable=False))
    is_starred: bool = False
