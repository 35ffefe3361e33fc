"""Live room: chat messages and the per-show event sequence.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("show_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("author_role", sa.String(length=8), nullable=False),
        sa.Column("author_id", sa.String(length=128), nullable=False),
        sa.Column("author_name", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["show_id"],
            ["shows.id"],
            name=op.f("fk_chat_messages_show_id_shows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
    )
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.create_index("uq_chat_messages_show_seq", ["show_id", "seq"], unique=True)

    with op.batch_alter_table("shows", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("event_seq", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:

    with op.batch_alter_table("shows", schema=None) as batch_op:
        batch_op.drop_column("event_seq")

    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.drop_index("uq_chat_messages_show_seq")

    op.drop_table("chat_messages")
