"""Videos made by staff: uploads and clips cut from a replay, each with product tags.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "videos",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("show_id", sa.Uuid(), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("progress_pct", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("start_s", sa.Float(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("source_path", sa.String(length=500), nullable=True),
        sa.Column("path", sa.String(length=500), nullable=True),
        sa.Column("poster_path", sa.String(length=500), nullable=True),
        sa.Column("transcoded", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('upload', 'clip')", name=op.f("ck_videos_kind_known")),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_videos_state_known")
        ),
        sa.CheckConstraint(
            "progress_pct >= 0 AND progress_pct <= 100", name=op.f("ck_videos_progress_in_range")
        ),
        sa.CheckConstraint(
            "kind = 'upload' OR (show_id IS NOT NULL AND start_s >= 0 AND duration_s > 0)",
            name=op.f("ck_videos_clip_has_range"),
        ),
        sa.ForeignKeyConstraint(
            ["show_id"], ["shows.id"], name=op.f("fk_videos_show_id_shows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_videos")),
    )
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.create_index("ix_videos_due", ["state", "created_at"], unique=False)
    op.create_table(
        "video_tags",
        sa.Column("video_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("at_s", sa.Float(), nullable=False),
        sa.CheckConstraint("at_s >= 0", name=op.f("ck_video_tags_at_non_negative")),
        sa.ForeignKeyConstraint(
            ["video_id"],
            ["videos.id"],
            name=op.f("fk_video_tags_video_id_videos"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_video_tags_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("video_id", "position", name=op.f("pk_video_tags")),
    )
    with op.batch_alter_table("video_tags", schema=None) as batch_op:
        batch_op.create_index("ix_video_tags_sku", ["sku"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("video_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_video_tags_sku")
    op.drop_table("video_tags")
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.drop_index("ix_videos_due")
    op.drop_table("videos")
