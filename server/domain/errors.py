"""Rule violations the domain raises; services and HTTP map them to answers."""

from __future__ import annotations


class DomainError(Exception):
    """A request broke a shop rule. `field` names the offending input when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidValue(DomainError):
    """A value is well-formed but not acceptable (answers 422)."""


class Conflict(DomainError):
    """The request conflicts with the current state (answers 409)."""


class NotFound(DomainError):
    """The thing asked for does not exist, or is not visible to the caller (answers 404)."""
