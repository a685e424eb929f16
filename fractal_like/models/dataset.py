"""Datasets and their images (one row per image, never a rewritten list).

Two tables derived from the images make a query of a large dataset fast; every writer
of `imagev2` keeps them up to date in the same transaction, through
`fractal_like.services.images.ImageIndexChanges` (`apply_image_changes` and the image
functions of `services.images` do; `rebuild_image_index` recomputes them from scratch):

- `imagev2_summary`: per dataset, how many images have each attribute value and each
  type key. The images query returns the distinct values from it, not from a scan.
- `imagev2_attribute`: one row per image and attribute, the lookup behind attribute
  filters on SQLite (PostgreSQL uses a GIN index on `imagev2.attributes` instead, and
  leaves this table empty).

Values are stored as canonical JSON text (`services.images.value_text`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    false,
)
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
        # Attribute filters (JSONB containment) on PostgreSQL. Not on `types`: a type
        # filter matches a large share of the images, and the planner then builds a huge
        # bitmap. SQLite has no GIN: there the index is declared empty (WHERE false), so
        # both databases carry the same schema; SQLite filters with `imagev2_attribute`.
        Index(
            "ix_imagev2_attributes",
            "attributes",
            postgresql_using="gin",
            postgresql_ops={"attributes": "jsonb_path_ops"},
            sqlite_where=false(),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("datasetv2.id", ondelete="CASCADE"), nullable=False)
    )
    zarr_url: str = Field(sa_column=Column(String(4096), nullable=False))
    origin: str | None = Field(default=None, sa_column=Column(String(4096)))
    attributes: dict[str, Any] = json_field(dict)
    types: dict[str, bool] = json_field(dict)


class ImageSummary(SQLModel, table=True):
    """How many images of a dataset have each attribute value (kind "a") or type key ("t").

    `value` is the canonical JSON text of the attribute value; "" for a type. Rows
    whose count drops to zero are deleted.
    """

    __tablename__ = "imagev2_summary"
    __table_args__ = (
        PrimaryKeyConstraint("dataset_id", "kind", "key", "value", name="pk_imagev2_summary"),
    )

    dataset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("datasetv2.id", ondelete="CASCADE"), nullable=False)
    )
    kind: str = Field(sa_column=Column(String(1), nullable=False))
    key: str = Field(sa_column=Column(Text, nullable=False))
    value: str = Field(sa_column=Column(Text, nullable=False))
    n: int = Field(sa_column=Column(Integer, nullable=False))


class ImageAttribute(SQLModel, table=True):
    """One row per image and attribute: the attribute-filter lookup, filled on SQLite only.

    No foreign key to `imagev2`: a cascade would need a second index on image_id; the
    writers delete these rows themselves, knowing each image's attributes.
    """

    __tablename__ = "imagev2_attribute"
    __table_args__ = (
        PrimaryKeyConstraint("dataset_id", "key", "value", "image_id", name="pk_imagev2_attribute"),
        {"sqlite_with_rowid": False},
    )

    dataset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("datasetv2.id", ondelete="CASCADE"), nullable=False)
    )
    key: str = Field(sa_column=Column(Text, nullable=False))
    value: str = Field(sa_column=Column(Text, nullable=False))
    image_id: int = Field(sa_column=Column(Integer, nullable=False))
