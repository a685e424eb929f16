"""image summary, attribute lookup and GIN index: fast image queries on large datasets

- imagev2_summary: per dataset, how many images have each attribute value ("a") and
  each type key ("t"); the images query reads its summary here.
- imagev2_attribute: one row per image and attribute, for attribute filters on SQLite
  (created on both databases, filled on SQLite only).
- ix_imagev2_attributes: GIN (jsonb_path_ops) on imagev2.attributes on PostgreSQL; an
  empty partial index on SQLite, so that both databases have the same schema.

Both tables are filled from the existing images. Values are stored as canonical JSON
text; `canonical` below is a frozen copy of `fractal_like.services.images.value_text`
at this revision (a migration does not import the application).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 20:07:32.043086
"""

import json
import math
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def indexed(value: Any) -> bool:
    """A value the summary counts: a string, a finite number or a boolean (no null, list...)."""
    kind = type(value)
    return kind is str or kind is int or kind is bool or (kind is float and math.isfinite(value))


def canonical(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is str:
        return json.dumps(value)
    if type(value) is int:
        return str(value)
    if type(value) is float and math.isfinite(value):
        shown = repr(value)
        if "e+" in shown:
            return str(int(Decimal(shown)))
        return "0.0" if value == 0 else shown
    raise ValueError(f"attribute value {value!r} is not a string, finite number or boolean")


def upgrade() -> None:
    op.create_table(
        "imagev2_summary",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=1), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasetv2.id"],
            name=op.f("fk_imagev2_summary_dataset_id_datasetv2"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "kind", "key", "value", name="pk_imagev2_summary"),
    )
    op.create_table(
        "imagev2_attribute",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasetv2.id"],
            name=op.f("fk_imagev2_attribute_dataset_id_datasetv2"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "dataset_id", "key", "value", "image_id", name="pk_imagev2_attribute"
        ),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_imagev2_attributes",
        "imagev2",
        ["attributes"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"attributes": "jsonb_path_ops"},
        sqlite_where=sa.text("0"),
    )
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        _fill_postgresql(connection)
    else:
        _fill_sqlite(connection)


def _insert_summary(connection: sa.Connection, counts: Counter[tuple[int, str, str, str]]) -> None:
    rows = [
        {"d": dataset_id, "kind": kind, "key": key, "value": value, "n": n}
        for (dataset_id, kind, key, value), n in sorted(counts.items())
        if n
    ]
    if rows:
        connection.execute(
            sa.text(
                "INSERT INTO imagev2_summary (dataset_id, kind, key, value, n) "
                "VALUES (:d, :kind, :key, :value, :n)"
            ),
            rows,
        )


def _fill_postgresql(connection: sa.Connection) -> None:
    counts: Counter[tuple[int, str, str, str]] = Counter()
    # Distinct values in SQL; their canonical text in Python (jsonb's text of a number is
    # not Python's, and 1.0 and 1.00 are one value).
    grouped = connection.exec_driver_sql(
        "SELECT i.dataset_id, e.key, CAST(e.value AS text), count(*) "
        "FROM imagev2 i, jsonb_each(i.attributes) AS e GROUP BY 1, 2, 3"
    )
    for dataset_id, key, shown, n in grouped:
        value = json.loads(shown)
        if indexed(value):
            counts[dataset_id, "a", key, canonical(value)] += n
    grouped = connection.exec_driver_sql(
        "SELECT i.dataset_id, k, count(*) FROM imagev2 i, jsonb_object_keys(i.types) AS k "
        "GROUP BY 1, 2"
    )
    for dataset_id, key, n in grouped:
        counts[dataset_id, "t", key, ""] += n
    _insert_summary(connection, counts)


# The canonical text of the values SQL writes exactly as `canonical` does: booleans,
# 64-bit integers and printable-ASCII strings; NULL for the others, written from Python.
SQLITE_SIMPLE_TEXT = (
    "CASE WHEN e.type IN ('true', 'false') THEN e.type "
    "WHEN e.type = 'integer' AND typeof(e.atom) = 'integer' THEN CAST(e.atom AS TEXT) "
    "WHEN e.type = 'text' AND e.atom NOT GLOB '*[^ -~]*' THEN json_quote(e.atom) END"
)


def _fill_sqlite(connection: sa.Connection) -> None:
    connection.exec_driver_sql(
        "INSERT INTO imagev2_attribute (dataset_id, key, value, image_id) "
        f"SELECT * FROM (SELECT i.dataset_id, e.key, {SQLITE_SIMPLE_TEXT} AS value, i.id "
        "FROM imagev2 i, json_each(i.attributes) AS e) "
        "WHERE value IS NOT NULL ORDER BY 1, 2, 3, 4"
    )
    others = connection.exec_driver_sql(
        "SELECT i.id, i.dataset_id, i.attributes FROM imagev2 i WHERE EXISTS "
        f"(SELECT 1 FROM json_each(i.attributes) AS e WHERE ({SQLITE_SIMPLE_TEXT}) IS NULL)"
    )
    rows = [
        (dataset_id, key, canonical(value), image_id)
        for image_id, dataset_id, attributes in others
        for key, value in json.loads(attributes).items()
        if indexed(value)
    ]
    if rows:
        connection.exec_driver_sql(
            "INSERT INTO imagev2_attribute (dataset_id, key, value, image_id) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            rows,
        )
    connection.exec_driver_sql(
        "INSERT INTO imagev2_summary (dataset_id, kind, key, value, n) "
        "SELECT dataset_id, 'a', key, value, count(*) FROM imagev2_attribute "
        "GROUP BY dataset_id, key, value"
    )
    connection.exec_driver_sql(
        "INSERT INTO imagev2_summary (dataset_id, kind, key, value, n) "
        "SELECT i.dataset_id, 't', e.key, '', count(*) FROM imagev2 i, json_each(i.types) AS e "
        "GROUP BY i.dataset_id, e.key"
    )


def downgrade() -> None:
    op.drop_index(
        "ix_imagev2_attributes",
        table_name="imagev2",
        postgresql_using="gin",
        postgresql_ops={"attributes": "jsonb_path_ops"},
        sqlite_where=sa.text("0"),
    )
    op.drop_table("imagev2_attribute")
    op.drop_table("imagev2_summary")
