"""task collection from packages

A collection (and deactivate, reactivate, delete) runs in a runner, not in the request:
activities get the claim of the runner working on them and its heartbeat, so that one left
`ongoing` by a process that died is finished by another runner. Task groups keep the
versions pinned before the package, next to the ones pinned after it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 23:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("taskgroupactivityv2", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runner_id", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("runner_heartbeat", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("taskgroupv2", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "pinned_package_versions_pre",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                # Existing task groups had nothing pinned before their package.
                server_default=sa.text("'{}'"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("taskgroupv2", schema=None) as batch_op:
        batch_op.drop_column("pinned_package_versions_pre")
    with op.batch_alter_table("taskgroupactivityv2", schema=None) as batch_op:
        batch_op.drop_column("runner_heartbeat")
        batch_op.drop_column("runner_id")
