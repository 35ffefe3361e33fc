"""Watch checkpoints: the watching a live show's accrual holds and has not written yet.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watch_checkpoints",
        sa.Column("show_id", sa.Uuid(), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("held", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("show_id", name=op.f("pk_watch_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("watch_checkpoints")
