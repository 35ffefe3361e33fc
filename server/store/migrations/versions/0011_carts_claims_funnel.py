"""Selling during a show: how a show checks out (native or hand-off), its comment-to-order
keyword, buyers' carts, claims made in chat, and the sales funnel's counters.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shows", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("checkout_mode", sa.String(length=8), server_default="native", nullable=False)
        )
        batch_op.add_column(sa.Column("handoff_url", sa.String(length=2048), nullable=True))
        batch_op.add_column(
            sa.Column("claim_keyword", sa.String(length=16), server_default="+1", nullable=True)
        )
    op.create_table(
        "cart_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_role", sa.String(length=8), nullable=False),
        sa.Column("owner_subject", sa.String(length=128), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("show_id", sa.Uuid(), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_cart_items_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_cart_items_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["show_id"], ["shows.id"], name=op.f("fk_cart_items_show_id_shows"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cart_items")),
        sa.UniqueConstraint(
            "owner_role", "owner_subject", "product_id", name=op.f("uq_cart_items_owner_product")
        ),
    )
    op.create_table(
        "claims",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("show_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("buyer_role", sa.String(length=8), nullable=False),
        sa.Column("buyer_subject", sa.String(length=128), nullable=False),
        sa.Column("author_name", sa.String(length=100), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("cart_quantity", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["show_id"], ["shows.id"], name=op.f("fk_claims_show_id_shows"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_claims_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index("ix_claims_show_created", ["show_id", "created_at"], unique=False)
    op.create_table(
        "funnel_counts",
        sa.Column("show_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=24), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["show_id"],
            ["shows.id"],
            name=op.f("fk_funnel_counts_show_id_shows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("show_id", "sku", "step", name=op.f("pk_funnel_counts")),
    )


def downgrade() -> None:
    op.drop_table("funnel_counts")
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index("ix_claims_show_created")
    op.drop_table("claims")
    op.drop_table("cart_items")
    with op.batch_alter_table("shows", schema=None) as batch_op:
        batch_op.drop_column("claim_keyword")
        batch_op.drop_column("handoff_url")
        batch_op.drop_column("checkout_mode")
