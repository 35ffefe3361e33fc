"""Live room: questions with votes, and reaction totals.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "questions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("show_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("author_role", sa.String(length=8), nullable=False),
        sa.Column("author_id", sa.String(length=128), nullable=False),
        sa.Column("author_name", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("votes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('open', 'answering', 'answered', 'dismissed')",
            name=op.f("ck_questions_state_known"),
        ),
        sa.CheckConstraint("votes >= 0", name=op.f("ck_questions_votes_non_negative")),
        sa.ForeignKeyConstraint(
            ["show_id"], ["shows.id"], name=op.f("fk_questions_show_id_shows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_questions")),
    )
    with op.batch_alter_table("questions", schema=None) as batch_op:
        batch_op.create_index("ix_questions_show_seq", ["show_id", "seq"], unique=False)

    op.create_table(
        "show_reactions",
        sa.Column("show_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["show_id"],
            ["shows.id"],
            name=op.f("fk_show_reactions_show_id_shows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("show_id", "kind", name=op.f("pk_show_reactions")),
    )
    op.create_table(
        "question_votes",
        sa.Column("question_id", sa.Uuid(), nullable=False),
        sa.Column("voter", sa.String(length=140), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["questions.id"],
            name=op.f("fk_question_votes_question_id_questions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("question_id", "voter", name=op.f("pk_question_votes")),
    )


def downgrade() -> None:

    op.drop_table("question_votes")
    op.drop_table("show_reactions")
    with op.batch_alter_table("questions", schema=None) as batch_op:
        batch_op.drop_index("ix_questions_show_seq")

    op.drop_table("questions")
