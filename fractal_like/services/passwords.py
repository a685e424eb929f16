"""The one password rule every way of setting a password applies."""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher


class PasswordTooShortError(ValueError):
    """A password below FRACTAL_LIKE_MIN_PASSWORD_LENGTH."""


def check_password_length(password: str, min_length: int) -> None:
    if len(password) < min_length:
        raise PasswordTooShortError(f"the password must have at least {min_length} characters")


# The hashers fastapi-users verifies with (argon2 first, bcrypt for older hashes), used
# directly so that services hash without importing the web stack.
_PASSWORD_HASH = PasswordHash((Argon2Hasher(), BcryptHasher()))


def hash_password(password: str) -> str:
    return _PASSWORD_HASH.hash(password)
