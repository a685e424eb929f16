"""Workflows, their ordered tasks, and shareable workflow templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from ._types import created_at_field, json_field, nullable_json_field


class Workflow(SQLModel, table=True):
    __tablename__ = "workflowv2"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("projectv2.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    name: str = Field(sa_column=Column(String(255), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(String(4096)))
    template_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("workflowtemplate.id", ondelete="SET NULL")),
    )
    is_starred: bool = False
    timestamp_created: datetime = created_at_field()


class WorkflowTask(SQLModel, table=True):
    __tablename__ = "workflowtaskv2"

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("workflowv2.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    task_id: int = Field(
        sa_column=Column(Integer, ForeignKey("taskv2.id", ondelete="RESTRICT"), nullable=False)
    )
    order: int = Field(sa_column=Column("order", Integer, nullable=False))
    task_type: str = Field(sa_column=Column(String(32), nullable=False))
    meta_non_parallel: dict[str, Any] | None = nullable_json_field()
    meta_parallel: dict[str, Any] | None = nullable_json_field()
    args_non_parallel: dict[str, Any] | None = nullable_json_field()
    args_parallel: dict[str, Any] | None = nullable_json_field()
    type_filters: dict[str, bool] = json_field(dict)
    alias: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, sa_column=Column(String(4096)))


class WorkflowTemplate(SQLModel, table=True):
    __tablename__ = "workflowtemplate"
    __table_args__ = (UniqueConstraint("user_id", "name", "version", name="uq_template_user"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("user_oauth.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    user_group_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("usergroup.id", ondelete="SET NULL")),
    )
    name: str = Field(sa_column=Column(String(255), nullable=False))
    version: int = 1
    description: str | None = Field(default=None, sa_column=Column(String(4096)))
    data: dict[str, Any] = json_field(dict)
    # The Fractal server version the template was written for (what its reader can expect).
    fractal_server_version: str = Field(
        default="2.26.0", sa_column=Column(String(32), nullable=False, server_default="2.26.0")
    )
    timestamp_created: datetime = created_at_field()
    timestamp_last_used: datetime = created_at_field()
