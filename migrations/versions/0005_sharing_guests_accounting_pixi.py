"""guests, accounting, pixi and template versions

Users may be guests (they read shared projects and write nothing). Ended jobs leave
accounting records (units, new images, SLURM job ids), kept when the job row goes.
Resources carry a pixi configuration and profiles a pixi cache folder; task groups their
pixi version and the archive kept for a reset; templates the Fractal version they were
written for.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 05:09:14.359258
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from fractal_like.models._types import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _accounting_table(name: str, *columns: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("resource_id", sa.Integer(), nullable=True),
        sa.Column("timestamp", UTCDateTime(timezone=True), nullable=False),
        *columns,
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_oauth.id"],
            name=op.f(f"fk_{name}_user_id_user_oauth"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )
    with op.batch_alter_table(name, schema=None) as batch_op:
        for column in ("job_id", "resource_id", "user_id"):
            batch_op.create_index(batch_op.f(f"ix_{name}_{column}"), [column], unique=False)


def upgrade() -> None:
    _accounting_table(
        "accountingrecord",
        sa.Column("num_tasks", sa.Integer(), nullable=False),
        sa.Column("num_new_images", sa.Integer(), nullable=False),
    )
    _accounting_table("accountingrecordslurm", sa.Column("slurm_job_ids", JSON, nullable=False))
    with op.batch_alter_table("profile", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pixi_cache_dir", sa.String(length=4096), nullable=True))
    with op.batch_alter_table("resource", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tasks_pixi_config", JSON, nullable=False, server_default=sa.text("'{}'"))
        )
    with op.batch_alter_table("taskgroupv2", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pixi_version", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("archive_path", sa.String(length=4096), nullable=True))
    with op.batch_alter_table("user_oauth", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("is_guest", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("workflowtemplate", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "fractal_server_version",
                sa.String(length=32),
                server_default="2.26.0",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("workflowtemplate", schema=None) as batch_op:
        batch_op.drop_column("fractal_server_version")
    with op.batch_alter_table("user_oauth", schema=None) as batch_op:
        batch_op.drop_column("is_guest")
    with op.batch_alter_table("taskgroupv2", schema=None) as batch_op:
        batch_op.drop_column("archive_path")
        batch_op.drop_column("pixi_version")
    with op.batch_alter_table("resource", schema=None) as batch_op:
        batch_op.drop_column("tasks_pixi_config")
    with op.batch_alter_table("profile", schema=None) as batch_op:
        batch_op.drop_column("pixi_cache_dir")
    for name in ("accountingrecordslurm", "accountingrecord"):
        with op.batch_alter_table(name, schema=None) as batch_op:
            for column in ("user_id", "resource_id", "job_id"):
                batch_op.drop_index(batch_op.f(f"ix_{name}_{column}"))
        op.drop_table(name)
