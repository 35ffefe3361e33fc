"""Products pinned in shows (with flash prices), and the show's pins event number.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shows", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pins_seq", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.create_table(
        "show_pins",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("show_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("flash_price_minor", sa.BigInteger(), nullable=True),
        sa.Column("flash_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unpinned_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "flash_price_minor IS NULL OR flash_price_minor >= 0",
            name=op.f("ck_show_pins_flash_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_show_pins_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["show_id"], ["shows.id"], name=op.f("fk_show_pins_show_id_shows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_show_pins")),
    )
    with op.batch_alter_table("show_pins", schema=None) as batch_op:
        batch_op.create_index(
            "uq_show_pins_active",
            ["show_id", "product_id"],
            unique=True,
            sqlite_where=sa.text("unpinned_at IS NULL"),
            postgresql_where=sa.text("unpinned_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("show_pins", schema=None) as batch_op:
        batch_op.drop_index("uq_show_pins_active")
    op.drop_table("show_pins")
    with op.batch_alter_table("shows", schema=None) as batch_op:
        batch_op.drop_column("pins_seq")
