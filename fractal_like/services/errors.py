"""Domain errors: what the services raise when a request cannot be honoured.

They know no HTTP: the API maps each class to a status code in one place
(`fractal_like.api.errors`), so the runner and the command line can call services
without depending on a web framework.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal with a message; `detail` is what a client is shown (a text or a structure)."""

    def __init__(self, detail: Any) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail


class NotFoundError(DomainError):
    """The object asked for does not exist (or must not be revealed)."""


class ForbiddenError(DomainError):
    """The object exists, but this user may not do this with it."""


class ConflictError(DomainError):
    """The request clashes with the current state of another object."""


class InvalidError(DomainError):
    """The request is well formed but breaks a domain rule."""


class TooLargeError(DomainError):
    """An upload or a body beyond the configured limit."""


class UnavailableError(DomainError):
    """The server cannot do it right now for a reason of its own (a folder, a resource)."""


class InternalError(DomainError):
    """The server's own records are inconsistent (e.g. a default row is missing)."""
