"""slurm jobs the runner submitted

One row per `sbatch` call, written before sbatch runs, so that a runner that restarts
finds the SLURM jobs of its units again instead of submitting them twice.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 22:01:16.137575
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slurmjob",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("history_run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("slurm_job_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "unit_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("folder", sa.String(length=4096), nullable=False),
        sa.Column("timestamp_created", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["history_run_id"],
            ["historyrun.id"],
            name=op.f("fk_slurmjob_history_run_id_historyrun"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobv2.id"], name=op.f("fk_slurmjob_job_id_jobv2"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slurmjob")),
        sa.UniqueConstraint("name", name=op.f("uq_slurmjob_name")),
    )
    with op.batch_alter_table("slurmjob", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_slurmjob_history_run_id"), ["history_run_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_slurmjob_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("slurmjob", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slurmjob_job_id"))
        batch_op.drop_index(batch_op.f("ix_slurmjob_history_run_id"))
    op.drop_table("slurmjob")
