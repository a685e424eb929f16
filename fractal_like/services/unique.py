"""Committing rows whose names must be unique: the database decides, the user is told why."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from .errors import InvalidError


async def commit_unique(session: AsyncSession, taken: str) -> None:
    """Commit; when a unique constraint refuses it, roll back and refuse with `taken` (422)."""
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise InvalidError(taken) from None
