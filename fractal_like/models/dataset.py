"""Datasets and their images (one row per image, never a rewritten list)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from ._types import created_at_field, json_field


class Dataset(SQLModel, table=True):
    __tablename__ = "datasetv2"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("projectv2.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    name: str = Field(sa_column=Column(String(255), nullable=False))
    zarr_dir: str = Field(sa_column=Column(String(4096), nullable=False))
    is_starred: bool = False
    timestamp_created: datetime = created_at_field()


class Image(SQLModel, table=True):
    __tablename__ = "imagev2"
    __table_args__ = (
        UniqueConstraint("dataset_id", "zarr_url", name="uq_imagev2_dataset_zarr_url"),
        Index("ix_imagev2_dataset_id_id", "dataset_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("datasetv2.id", ondelete="CASCADE"), nullable=False)
    )
    zarr_url: str = Field(sa_column=Column(String(4096), nullable=False))
    origin: str | None = Field(default=None, sa_column=Column(String(4096)))
    attributes: dict[str, Any] = json_field(dict)
    types: dict[str, bool] = json_field(dict)
