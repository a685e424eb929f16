"""What a fresh server needs: the default group and the first superuser."""

from __future__ import annotations

import secrets

from fastapi_users.password import PasswordHelper
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..config import Settings
from ..models import UserOAuth
from .groups import add_member, ensure_default_group


async def ensure_first_admin(
    factory: async_sessionmaker[AsyncSession], settings: Settings
) -> str | None:
    """Create the default group and the first superuser, once.

    Returns the generated password when one had to be invented, so it can be
    shown exactly once; None when the admin already existed or the password
    came from the settings.
    """
    async with factory() as session:
        group = await ensure_default_group(session, settings.DEFAULT_GROUP_NAME)
        email = settings.ADMIN_EMAIL
        existing = (
            await session.exec(
                select(UserOAuth).where(func.lower(UserOAuth.email) == email.lower())
            )
        ).first()
        if existing is not None:
            return None
        generated = None
        password = settings.ADMIN_PASSWORD
        if not password:
            password = generated = secrets.token_urlsafe(12)
        admin = UserOAuth(
            email=email,
            hashed_password=PasswordHelper().hash(password),
            is_active=True,
            is_superuser=True,
            is_verified=True,
            project_dirs=[str(settings.DATA_DIR / "admin-data")],
        )
        session.add(admin)
        await session.flush()
        assert admin.id is not None and group.id is not None
        await add_member(session, group.id, admin.id)
        await session.commit()
        return generated
