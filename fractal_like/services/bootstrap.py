"""What a fresh server needs: the default group and the first superuser."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..config import Settings
from ..models import Profile, Resource, UserOAuth
from .groups import add_member, ensure_default_group
from .passwords import hash_password


@dataclass(frozen=True)
class FirstAdmin:
    """What `ensure_first_admin` did, for the start banner to tell the truth."""

    created: bool
    # Set only when the admin was created just now with an invented password,
    # so that it can be shown exactly once.
    generated_password: str | None = None


async def ensure_first_admin(
    factory: async_sessionmaker[AsyncSession], settings: Settings
) -> FirstAdmin:
    """Create the default group and the first superuser, once."""
    async with factory() as session:
        group = await ensure_default_group(session, settings.DEFAULT_GROUP_NAME)
        email = settings.ADMIN_EMAIL
        existing = (
            await session.exec(
                select(UserOAuth).where(func.lower(UserOAuth.email) == email.lower())
            )
        ).first()
        if existing is not None:
            return FirstAdmin(created=False)
        generated = None
        password = settings.ADMIN_PASSWORD
        if not password:
            # token_urlsafe(n) gives about 1.3 n characters: never below the minimum length.
            password = generated = secrets.token_urlsafe(max(12, settings.MIN_PASSWORD_LENGTH))
        profile_id = await _embedded_local_profile(session, settings)
        admin = UserOAuth(
            email=email,
            profile_id=profile_id,
            hashed_password=hash_password(password),
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
        return FirstAdmin(created=True, generated_password=generated)


LOCAL_RESOURCE_NAME = "embedded-local"


async def _embedded_local_profile(session: AsyncSession, settings: Settings) -> int | None:
    """A local resource and profile for a fresh database, when the settings ask for it."""
    if not settings.BOOTSTRAP_LOCAL_RESOURCE or settings.RUNNER_BACKEND != "local":
        return None
    if (await session.exec(select(Resource))).first() is not None:
        return None  # an admin has set resources up already
    resource = Resource(
        name=LOCAL_RESOURCE_NAME,
        type="local",
        jobs_local_dir=str(settings.DATA_DIR / "jobs"),
        tasks_local_dir=str(settings.DATA_DIR / "tasks"),
    )
    session.add(resource)
    await session.flush()
    assert resource.id is not None
    profile = Profile(resource_id=resource.id, name=LOCAL_RESOURCE_NAME, resource_type="local")
    session.add(profile)
    await session.flush()
    return profile.id
