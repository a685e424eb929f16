"""The one password rule every way of setting a password applies."""

from __future__ import annotations


class PasswordTooShortError(ValueError):
    """A password below FRACTAL_LIKE_MIN_PASSWORD_LENGTH."""


def check_password_length(password: str, min_length: int) -> None:
    if len(password) < min_length:
        raise PasswordTooShortError(f"the password must have at least {min_length} characters")
