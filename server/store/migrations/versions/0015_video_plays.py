"""Plays of made videos: each browser that played an upload or a staff clip, once.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "video_plays",
        sa.Column("video_id", sa.Uuid(), nullable=False),
        sa.Column("viewer", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["video_id"],
            ["videos.id"],
            name=op.f("fk_video_plays_video_id_videos"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("video_id", "viewer", name=op.f("pk_video_plays")),
    )


def downgrade() -> None:
    op.drop_table("video_plays")
