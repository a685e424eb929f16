"""Users, groups and OAuth accounts (the tables fastapi-users works on)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, String
from sqlmodel import Field, SQLModel

from ._types import created_at_field, json_field


class UserOAuth(SQLModel, table=True):
    __tablename__ = "user_oauth"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_column=Column(String(320), unique=True, index=True, nullable=False))
    hashed_password: str = Field(sa_column=Column(String(1024), nullable=False))
    is_active: bool = True
    is_superuser: bool = False
    is_verified: bool = False
    # A guest reads the projects shared with them and writes nothing (Fractal's is_guest).
    is_guest: bool = False
    username: str | None = Field(default=None, max_length=255)
    profile_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("profile.id", ondelete="SET NULL"), nullable=True),
    )
    project_dirs: list[str] = json_field(list)
    slurm_accounts: list[str] = json_field(list)
    timestamp_created: datetime = created_at_field()


class UserGroup(SQLModel, table=True):
    __tablename__ = "usergroup"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(255), unique=True, nullable=False))
    timestamp_created: datetime = created_at_field()


class LinkUserGroup(SQLModel, table=True):
    __tablename__ = "linkusergroup"

    group_id: int = Field(
        sa_column=Column(Integer, ForeignKey("usergroup.id", ondelete="CASCADE"), primary_key=True)
    )
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("user_oauth.id", ondelete="CASCADE"), primary_key=True, index=True
        )
    )
    timestamp_created: datetime = created_at_field()


class OAuthAccount(SQLModel, table=True):
    __tablename__ = "oauthaccount"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("user_oauth.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    oauth_name: str = Field(sa_column=Column(String(100), nullable=False, index=True))
    access_token: str = Field(sa_column=Column(String(4096), nullable=False))
    expires_at: int | None = None
    refresh_token: str | None = Field(default=None, sa_column=Column(String(4096)))
    account_id: str = Field(sa_column=Column(String(320), nullable=False, index=True))
    account_email: str = Field(sa_column=Column(String(320), nullable=False))
