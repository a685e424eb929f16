"""slurm usage

SLURM jobs keep how many units they run at once. What each SLURM job used, as sacct
reported it once the job had ended: elapsed, CPU time, allocated CPUs, MaxRSS, requested
memory and time. One row per slurmjob row, kept when the job row goes (like the
accounting records).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 00:09:16.791195
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fractal_like.models._types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXED = ("job_id", "task_id", "timestamp_ended", "user_id", "workflowtask_id")


def upgrade() -> None:
    op.create_table(
        "slurmusage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("slurmjob_id", sa.Integer(), nullable=False),
        sa.Column("workflowtask_id", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("slurm_job_id", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=256), nullable=True),
        sa.Column("partition", sa.String(length=256), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("num_units", sa.Integer(), nullable=False),
        sa.Column("parallel_units", sa.Integer(), nullable=False),
        sa.Column("elapsed_seconds", sa.Integer(), nullable=False),
        sa.Column("cpu_seconds", sa.Float(), nullable=False),
        sa.Column("alloc_cpus", sa.Integer(), nullable=False),
        sa.Column("max_rss_bytes", sa.BigInteger(), nullable=True),
        sa.Column("req_mem_bytes", sa.BigInteger(), nullable=True),
        sa.Column("time_limit_seconds", sa.Integer(), nullable=True),
        sa.Column("timestamp_ended", UTCDateTime(timezone=True), nullable=False),
        sa.Column("timestamp_recorded", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_oauth.id"],
            name=op.f("fk_slurmusage_user_id_user_oauth"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slurmusage")),
        sa.UniqueConstraint("slurmjob_id", name=op.f("uq_slurmusage_slurmjob_id")),
    )
    with op.batch_alter_table("slurmjob", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parallel_units", sa.Integer(), nullable=True))
    with op.batch_alter_table("slurmusage", schema=None) as batch_op:
        for column in INDEXED:
            batch_op.create_index(batch_op.f(f"ix_slurmusage_{column}"), [column], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("slurmusage", schema=None) as batch_op:
        for column in INDEXED:
            batch_op.drop_index(batch_op.f(f"ix_slurmusage_{column}"))
    op.drop_table("slurmusage")
    with op.batch_alter_table("slurmjob", schema=None) as batch_op:
        batch_op.drop_column("parallel_units")
