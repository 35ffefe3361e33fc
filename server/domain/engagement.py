"""Q&A and reaction rules: question states and ordering, the reaction kinds."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from server.domain.chat import check_chat_text

QUESTION_MAX_CHARACTERS = 300
REACTION_KINDS = ("heart", "clap", "fire", "laugh", "wow")
MAX_REACTIONS_PER_EVENT = 20  # a client may batch taps; more than this in one event is refused


class QuestionState(StrEnum):
    OPEN = "open"
    ANSWERING = "answering"  # the host is answering it now
    ANSWERED = "answered"
    DISMISSED = "dismissed"


# Questions still waiting for the host; the join snapshot and the queue show these.
WAITING = (QuestionState.OPEN, QuestionState.ANSWERING)


def check_question_text(text: str) -> str:
    return check_chat_text(text, max_characters=QUESTION_MAX_CHARACTERS)


def queue_order(votes: int, created_at: datetime) -> tuple[int, datetime]:
    """Most votes first; among equals, the one asked first."""
    return (-votes, created_at)
