"""Users and groups."""

from __future__ import annotations

from typing import Any

from fastapi_users import schemas
from pydantic import ConfigDict, EmailStr, Field, ValidationInfo, field_validator

from ._base import (
    Id,
    NonEmptyStr,
    PathStr,
    ReadModel,
    RequestModel,
    StrictModel,
    UTCTimestamp,
    omittable,
)

MAX_DIRS = 100


def _absolute_dirs(value: list[str] | None) -> list[str] | None:
    """Project dirs are absolute, normalised, without duplicates."""
    if value is None:
        return None
    import os.path

    result: list[str] = []
    for item in value:
        if not item.startswith("/"):
            raise ValueError(f"project dir {item!r} is not an absolute path")
        if "\x00" in item:
            raise ValueError("project dirs cannot contain NUL characters")
        normal = os.path.normpath(item)
        if normal not in result:
            result.append(normal)
    return result


def _accounts(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if len(set(value)) != len(value):
        raise ValueError("slurm_accounts must not repeat an account")
    return value


SlurmAccount = NonEmptyStr


class UserRead(schemas.BaseUser[int]):
    # Stored addresses are shown as they are, never re-validated on the way out.
    email: str
    username: str | None = None
    profile_id: int | None = None
    project_dirs: list[str] = []
    slurm_accounts: list[str] = []
    group_ids_names: list[tuple[int, str]] | None = None
    oauth_accounts: list[dict[str, object]] = []


class UserCreate(RequestModel, schemas.BaseUserCreate):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=1, max_length=255)
    # Nullable as in Fractal's schema; null means the default, never a NULL stored.
    is_active: bool | None = True
    is_superuser: bool | None = False
    is_verified: bool | None = False
    username: NonEmptyStr | None = None
    profile_id: Id | None = None
    project_dirs: list[PathStr] = Field(default_factory=list, max_length=MAX_DIRS)
    slurm_accounts: list[SlurmAccount] = Field(default_factory=list, max_length=MAX_DIRS)

    _dirs = field_validator("project_dirs")(_absolute_dirs)
    _accts = field_validator("slurm_accounts")(_accounts)

    @field_validator("is_active", "is_superuser", "is_verified", mode="after")
    @classmethod
    def _null_is_default(cls, value: bool | None, info: ValidationInfo) -> Any:
        return cls.model_fields[info.field_name or ""].default if value is None else value


class UserUpdate(RequestModel, schemas.BaseUserUpdate):
    """What an admin may change on a user: null clears username and profile_id only;
    every other field is either left out or given a value (as in Fractal's schema)."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr = omittable(max_length=320)
    password: str = omittable(min_length=1, max_length=255)
    is_active: bool = omittable()
    is_superuser: bool = omittable()
    is_verified: bool = omittable()
    username: NonEmptyStr | None = None
    profile_id: Id | None = None
    project_dirs: list[PathStr] = omittable(max_length=MAX_DIRS)
    slurm_accounts: list[SlurmAccount] = omittable(max_length=MAX_DIRS)

    _dirs = field_validator("project_dirs")(_absolute_dirs)
    _accts = field_validator("slurm_accounts")(_accounts)


class UserUpdateOwn(StrictModel):
    """What users may change on themselves."""

    password: str = omittable(min_length=1, max_length=255)


class UserSetGroups(StrictModel):
    group_ids: list[Id] = Field(max_length=1000)


class GroupCreate(StrictModel):
    name: NonEmptyStr


class GroupUpdate(StrictModel):
    name: NonEmptyStr = omittable()


class GroupRead(ReadModel):
    id: int
    name: str
    timestamp_created: UTCTimestamp
    user_ids: list[int] | None = None


class TokenRead(ReadModel):
    access_token: str
    token_type: str = "bearer"


class UserProfileInfo(ReadModel):
    """Where the current user's jobs would run: their profile and its resource, if any."""

    has_profile: bool
    resource_name: str | None = None
    profile_name: str | None = None
    username: str | None = None
