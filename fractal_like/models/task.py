"""Task groups (installed packages) and their tasks."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, ForeignKey, Integer, String, Text
from sqlmodel import Field, SQLModel

from ._types import created_at_field, json_field, nullable_json_field, optional_timestamp_field


class TaskGroupOrigin(StrEnum):
    PYPI = "pypi"  # installed by name from a package index
    WHEEL_FILE = "wheel-file"  # installed from an uploaded wheel
    PIXI = "pixi"  # a pixi environment from an uploaded tar.gz
    OTHER = "other"  # registered by hand (task/ or task/collect/custom/): no files of ours


class ActivityStatus(StrEnum):
    PENDING = "pending"
    ONGOING = "ongoing"
    FAILED = "failed"
    OK = "OK"


class ActivityAction(StrEnum):
    COLLECT = "collect"
    DEACTIVATE = "deactivate"
    REACTIVATE = "reactivate"
    DELETE = "delete"
    RESET = "reset"


class TaskGroup(SQLModel, table=True):
    __tablename__ = "taskgroupv2"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("user_oauth.id", ondelete="RESTRICT"), nullable=False, index=True
        )
    )
    user_group_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("usergroup.id", ondelete="SET NULL"), nullable=True),
    )
    resource_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("resource.id", ondelete="SET NULL"), nullable=True),
    )
    origin: str = Field(sa_column=Column(String(16), nullable=False))
    pkg_name: str = Field(sa_column=Column(String(255), nullable=False, index=True))
    version: str | None = Field(default=None, max_length=255)
    python_version: str | None = Field(default=None, max_length=32)
    pixi_version: str | None = Field(default=None, max_length=32)
    path: str | None = Field(default=None, max_length=4096)
    venv_path: str | None = Field(default=None, max_length=4096)
    wheel_path: str | None = Field(default=None, max_length=4096)
    # The package's source archive kept for a reset (Fractal's archive_path): a wheel or,
    # for pixi, the tar.gz of the environment definition.
    archive_path: str | None = Field(default=None, max_length=4096)
    pip_extras: str | None = Field(default=None, max_length=1024)
    # Installed after the package (Fractal's historical meaning of pinned_package_versions).
    pinned_package_versions: dict[str, str] = json_field(dict)
    # Installed before the package.
    pinned_package_versions_pre: dict[str, str] = json_field(dict)
    pip_freeze: str | None = Field(default=None, sa_column=Column(Text))
    active: bool = True
    timestamp_created: datetime = created_at_field()
    timestamp_last_used: datetime = created_at_field()


class Task(SQLModel, table=True):
    __tablename__ = "taskv2"

    id: int | None = Field(default=None, primary_key=True)
    taskgroupv2_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("taskgroupv2.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    name: str = Field(sa_column=Column(String(255), nullable=False))
    type: str = Field(sa_column=Column(String(32), nullable=False))
    version: str | None = Field(default=None, max_length=255)
    command_non_parallel: str | None = Field(default=None, sa_column=Column(String(8192)))
    command_parallel: str | None = Field(default=None, sa_column=Column(String(8192)))
    source: str | None = Field(default=None, max_length=1024)
    meta_non_parallel: dict[str, Any] = json_field(dict)
    meta_parallel: dict[str, Any] = json_field(dict)
    args_schema_non_parallel: dict[str, Any] | None = nullable_json_field()
    args_schema_parallel: dict[str, Any] | None = nullable_json_field()
    args_schema_version: str | None = Field(default=None, max_length=64)
    docs_info: str | None = Field(default=None, sa_column=Column(Text))
    docs_link: str | None = Field(default=None, max_length=2048)
    input_types: dict[str, bool] = json_field(dict)
    output_types: dict[str, bool] = json_field(dict)
    category: str | None = Field(default=None, max_length=255)
    modality: str | None = Field(default=None, max_length=255)
    authors: str | None = Field(default=None, max_length=1024)
    tags: list[str] = json_field(list)
    is_core: bool = False


class TaskGroupActivity(SQLModel, table=True):
    __tablename__ = "taskgroupactivityv2"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("user_oauth.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    taskgroupv2_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("taskgroupv2.id", ondelete="SET NULL"), index=True),
    )
    pkg_name: str = Field(max_length=255)
    version: str | None = Field(default=None, max_length=255)
    status: str = Field(default="pending", max_length=16)
    action: str = Field(max_length=32)
    log: str | None = Field(default=None, sa_column=Column(Text))
    timestamp_started: datetime = created_at_field()
    timestamp_ended: datetime | None = optional_timestamp_field()
    # The runner working on it (host:pid:random) and its last sign of life, so that an
    # activity whose process died is found and finished by another runner.
    runner_id: str | None = Field(default=None, max_length=255)
    runner_heartbeat: datetime | None = optional_timestamp_field()
