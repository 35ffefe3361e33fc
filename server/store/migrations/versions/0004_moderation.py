"""Live room moderation: participants, sanctions, moderators, deletes, pin and slow mode.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "sanctions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("show_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("created_by", sa.String(length=140), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('mute', 'ban')", name=op.f("ck_sanctions_kind_known")),
        sa.ForeignKeyConstraint(
            ["show_id"], ["shows.id"], name=op.f("fk_sanctions_show_id_shows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sanctions")),
    )
    with op.batch_alter_table("sanctions", schema=None) as batch_op:
        batch_op.create_index("ix_sanctions_who", ["role", "subject"], unique=False)

    op.create_table(
        "show_moderators",
        sa.Column("show_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["show_id"],
            ["shows.id"],
            name=op.f("fk_show_moderators_show_id_shows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("show_id", "role", "subject", name=op.f("pk_show_moderators")),
    )
    op.create_table(
        "show_participants",
        sa.Column("show_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["show_id"],
            ["shows.id"],
            name=op.f("fk_show_participants_show_id_shows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("show_id", "author_id", name=op.f("pk_show_participants")),
    )
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("deleted_seq", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "ix_chat_messages_show_author", ["show_id", "author_role", "author_id"], unique=False
        )

    with op.batch_alter_table("shows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pinned_message_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("slow_mode_seconds", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("room_seq", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:

    with op.batch_alter_table("shows", schema=None) as batch_op:
        batch_op.drop_column("room_seq")
        batch_op.drop_column("slow_mode_seconds")
        batch_op.drop_column("pinned_message_id")

    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_messages_show_author")
        batch_op.drop_column("deleted_seq")
        batch_op.drop_column("deleted_at")

    op.drop_table("show_participants")
    op.drop_table("show_moderators")
    with op.batch_alter_table("sanctions", schema=None) as batch_op:
        batch_op.drop_index("ix_sanctions_who")

    op.drop_table("sanctions")
