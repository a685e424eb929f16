"""fastapi-users wiring: user database adapter, manager, JWT bearer authentication."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi_users import BaseUserManager, FastAPIUsers, IntegerIDMixin, InvalidPasswordException
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users_db_sqlalchemy import SQLAlchemyUserDatabase
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import UserOAuth
from .deps import get_session

MIN_PASSWORD_LENGTH = 4


class UserManager(IntegerIDMixin, BaseUserManager[UserOAuth, int]):
    async def validate_password(self, password: str, user: Any) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidPasswordException(
                reason=f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
            )


async def get_user_db(
    session: Annotated[AsyncSession, Depends(get_session)],
) -> AsyncIterator[SQLAlchemyUserDatabase[UserOAuth, int]]:
    yield SQLAlchemyUserDatabase(session, UserOAuth)


async def get_user_manager(
    request: Request,
    user_db: Annotated[SQLAlchemyUserDatabase[UserOAuth, int], Depends(get_user_db)],
) -> AsyncIterator[UserManager]:
    manager = UserManager(user_db)
    manager.reset_password_token_secret = request.app.state.jwt_secret
    manager.verification_token_secret = request.app.state.jwt_secret
    yield manager


def get_jwt_strategy(request: Request) -> JWTStrategy[UserOAuth, int]:
    return JWTStrategy(
        secret=request.app.state.jwt_secret,
        lifetime_seconds=request.app.state.settings.JWT_EXPIRE_SECONDS,
    )


bearer_transport = BearerTransport(tokenUrl="auth/token/login/")
auth_backend = AuthenticationBackend(
    name="bearer-jwt", transport=bearer_transport, get_strategy=get_jwt_strategy
)
fastapi_users = FastAPIUsers[UserOAuth, int](get_user_manager, [auth_backend])

current_active_user = fastapi_users.current_user(active=True)
current_superuser = fastapi_users.current_user(active=True, superuser=True)

CurrentUser = Annotated[UserOAuth, Depends(current_active_user)]
Superuser = Annotated[UserOAuth, Depends(current_superuser)]
UserManagerDep = Annotated[UserManager, Depends(get_user_manager)]


async def current_user_with_profile(user: CurrentUser) -> UserOAuth:
    """The /api/v2/ routes need to know where the user's jobs would run."""
    if user.profile_id is None:
        raise HTTPException(
            403,
            detail=f"user {user.email} has no computing profile yet: an admin must assign one "
            "(PATCH /auth/users/{id}/ with profile_id) before /api/v2/ can be used",
        )
    return user


ApiUser = Annotated[UserOAuth, Depends(current_user_with_profile)]
