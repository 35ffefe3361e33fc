"""Product clips: one job per product moment of an ended show, cut from its replay.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clip_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("show_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("progress_pct", sa.Integer(), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed')",
            name=op.f("ck_clip_jobs_state_known"),
        ),
        sa.CheckConstraint(
            "progress_pct >= 0 AND progress_pct <= 100",
            name=op.f("ck_clip_jobs_progress_in_range"),
        ),
        sa.CheckConstraint("start_s >= 0 AND duration_s > 0", name=op.f("ck_clip_jobs_span_valid")),
        sa.ForeignKeyConstraint(
            ["show_id"], ["shows.id"], name=op.f("fk_clip_jobs_show_id_shows"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_clip_jobs_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clip_jobs")),
    )
    with op.batch_alter_table("clip_jobs", schema=None) as batch_op:
        batch_op.create_index("uq_clip_jobs_show_sku", ["show_id", "sku"], unique=True)
        batch_op.create_index("ix_clip_jobs_due", ["state", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("clip_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_clip_jobs_due")
        batch_op.drop_index("uq_clip_jobs_show_sku")
    op.drop_table("clip_jobs")
