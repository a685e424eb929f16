"""Compute resources (backends) and the profiles users reach them with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Integer, String
from sqlmodel import Field, SQLModel

from ._types import created_at_field, json_field


class Resource(SQLModel, table=True):
    __tablename__ = "resource"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(255), unique=True, nullable=False))
    type: str = Field(sa_column=Column(String(32), nullable=False))
    host: str | None = Field(default=None, max_length=255)
    jobs_local_dir: str = Field(sa_column=Column(String(4096), nullable=False))
    jobs_runner_config: dict[str, Any] = json_field(dict)
    jobs_slurm_python_worker: str | None = Field(default=None, max_length=4096)
    jobs_poll_interval: int = 5
    tasks_local_dir: str = Field(sa_column=Column(String(4096), nullable=False))
    tasks_python_config: dict[str, Any] = json_field(dict)
    tasks_pixi_config: dict[str, Any] = json_field(dict)
    prevent_new_submissions: bool = False
    timestamp_created: datetime = created_at_field()


class Profile(SQLModel, table=True):
    __tablename__ = "profile"

    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("resource.id", ondelete="RESTRICT"), nullable=False, index=True
        )
    )
    name: str = Field(sa_column=Column(String(255), unique=True, nullable=False))
    resource_type: str = Field(sa_column=Column(String(32), nullable=False))
    username: str | None = Field(default=None, max_length=255)
    ssh_key_path: str | None = Field(default=None, max_length=4096)
    jobs_remote_dir: str | None = Field(default=None, max_length=4096)
    tasks_remote_dir: str | None = Field(default=None, max_length=4096)
    pixi_cache_dir: str | None = Field(default=None, max_length=4096)
    timestamp_created: datetime = created_at_field()
