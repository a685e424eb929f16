"""Users and groups."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi_users import schemas
from pydantic import (
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

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


# Accounts reach sbatch's --account: the characters Fractal allows, nothing a shell reads.
SlurmAccount = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[a-zA-Z0-9_\-\.]+$")
]


class UserRead(schemas.BaseUser[int]):
    # Stored addresses are shown as they are, never re-validated on the way out.
    email: str
    is_guest: bool = False
    username: str | None = None
    profile_id: int | None = None
    project_dirs: list[str] = []
    slurm_accounts: list[str] = []
    group_ids_names: list[tuple[int, str]] | None = None
    oauth_accounts: list[dict[str, object]] = []


def _guest_is_no_superuser(is_guest: bool | None, is_superuser: bool | None) -> None:
    if is_guest and is_superuser:
        raise ValueError("a superuser cannot be a guest")


class UserCreate(RequestModel, schemas.BaseUserCreate):
    # Fractal's UserCreate ignores unknown fields (its schema does not forbid them).
    model_config = ConfigDict(extra="ignore")

    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=1, max_length=255)
    # Nullable as in Fractal's schema; null means the default, never a NULL stored.
    is_active: bool | None = True
    is_superuser: bool | None = False
    is_verified: bool | None = False
    # A guest reads what is shared with them and changes nothing.
    is_guest: bool = False
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

    @model_validator(mode="after")
    def _no_superuser_guest(self) -> UserCreate:
        _guest_is_no_superuser(self.is_guest, self.is_superuser)
        return self


class UserUpdate(RequestModel, schemas.BaseUserUpdate):
    """What an admin may change on a user: null clears username and profile_id only;
    every other field is either left out or given a value (as in Fractal's schema)."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr = omittable(max_length=320)
    password: str = omittable(min_length=1, max_length=255)
    is_active: bool = omittable()
    is_superuser: bool = omittable()
    is_verified: bool = omittable()
    is_guest: bool = omittable()
    username: NonEmptyStr | None = None
    profile_id: Id | None = None
    project_dirs: list[PathStr] = omittable(max_length=MAX_DIRS)
    slurm_accounts: list[SlurmAccount] = omittable(max_length=MAX_DIRS)

    _dirs = field_validator("project_dirs")(_absolute_dirs)
    _accts = field_validator("slurm_accounts")(_accounts)


class UserUpdateOwn(StrictModel):
    """What users may change on themselves: their SLURM accounts (as Fractal's
    UserUpdateStrict) and, beyond Fractal, their password."""

    password: str = omittable(min_length=1, max_length=255)
    slurm_accounts: list[SlurmAccount] = omittable(max_length=MAX_DIRS)

    _accts = field_validator("slurm_accounts")(_accounts)


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
