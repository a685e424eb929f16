"""User management for the command line, outside the web app."""

from __future__ import annotations

from sqlmodel import func, select

from ..config import Settings
from ..db import make_async_engine, make_session_factory
from ..models import UserOAuth
from .groups import add_member, ensure_default_group
from .passwords import check_password_length, hash_password


def _validated_email(email: str) -> str:
    from pydantic import TypeAdapter, ValidationError
    from pydantic.networks import EmailStr

    try:
        return TypeAdapter(EmailStr).validate_python(email)
    except ValidationError:
        raise ValueError(f"{email!r} is not a valid e-mail address") from None


async def create_user(
    settings: Settings, email: str, password: str, superuser: bool, project_dirs: list[str]
) -> int:
    email = _validated_email(email)
    check_password_length(password, settings.MIN_PASSWORD_LENGTH)
    if any(not item.startswith("/") for item in project_dirs):
        raise ValueError("project dirs must be absolute paths")
    engine = make_async_engine(settings.database_url)
    try:
        async with make_session_factory(engine)() as session:
            taken = (
                await session.exec(
                    select(UserOAuth).where(func.lower(UserOAuth.email) == email.lower())
                )
            ).first()
            if taken is not None:
                raise ValueError(f"a user with e-mail {email} already exists")
            group = await ensure_default_group(session, settings.DEFAULT_GROUP_NAME)
            user = UserOAuth(
                email=email,
                hashed_password=hash_password(password),
                is_superuser=superuser,
                is_verified=True,
                project_dirs=project_dirs,
            )
            session.add(user)
            await session.flush()
            assert user.id is not None and group.id is not None
            await add_member(session, group.id, user.id)
            await session.commit()
            return user.id
    finally:
        await engine.dispose()


async def set_password(settings: Settings, email: str, password: str) -> None:
    check_password_length(password, settings.MIN_PASSWORD_LENGTH)
    engine = make_async_engine(settings.database_url)
    try:
        async with make_session_factory(engine)() as session:
            user = (
                await session.exec(
                    select(UserOAuth).where(func.lower(UserOAuth.email) == email.lower())
                )
            ).first()
            if user is None:
                raise ValueError(f"no user with e-mail {email}")
            user.hashed_password = hash_password(password)
            await session.commit()
    finally:
        await engine.dispose()
