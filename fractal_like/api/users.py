"""fastapi-users wiring: user database adapter, manager, JWT bearer authentication."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi_users import BaseUserManager, FastAPIUsers, IntegerIDMixin, InvalidPasswordException
from fastapi_users.authentication import (
    AuthenticationBackend,
    BearerTransport,
    CookieTransport,
    JWTStrategy,
)
from fastapi_users.jwt import decode_jwt, generate_jwt
from fastapi_users_db_sqlalchemy import SQLAlchemyUserDatabase
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import UserOAuth
from ..services.passwords import PasswordTooShortError, check_password_length
from .deps import get_session

# The token claim that binds a token to the password its user had when it was issued.
PASSWORD_CLAIM = "pwd"


class UserManager(IntegerIDMixin, BaseUserManager[UserOAuth, int]):
    def __init__(
        self, user_db: SQLAlchemyUserDatabase[UserOAuth, int], min_password_length: int
    ) -> None:
        super().__init__(user_db)
        self.min_password_length = min_password_length

    async def validate_password(self, password: str, user: Any) -> None:
        try:
            check_password_length(password, self.min_password_length)
        except PasswordTooShortError as error:
            raise InvalidPasswordException(reason=str(error)) from None


async def get_user_db(
    session: Annotated[AsyncSession, Depends(get_session)],
) -> AsyncIterator[SQLAlchemyUserDatabase[UserOAuth, int]]:
    yield SQLAlchemyUserDatabase(session, UserOAuth)


async def get_user_manager(
    request: Request,
    user_db: Annotated[SQLAlchemyUserDatabase[UserOAuth, int], Depends(get_user_db)],
) -> AsyncIterator[UserManager]:
    manager = UserManager(user_db, request.app.state.settings.MIN_PASSWORD_LENGTH)
    manager.reset_password_token_secret = request.app.state.jwt_secret
    manager.verification_token_secret = request.app.state.jwt_secret
    yield manager


def password_fingerprint(secret: str, hashed_password: str) -> str:
    """A keyed digest of the password hash: changes with the password, reveals nothing of it."""
    digest = hmac.new(secret.encode(), hashed_password.encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


class PasswordBoundJWTStrategy(JWTStrategy[UserOAuth, int]):
    """JWTs that stop being valid when their user's password changes.

    A JWT cannot be revoked; binding it to a fingerprint of the password hash makes a
    password change (by the user, an admin or the CLI) refuse every token issued before.
    """

    def _fingerprint(self, user: UserOAuth) -> str:
        return password_fingerprint(str(self.encode_key), user.hashed_password)

    async def write_token(self, user: UserOAuth) -> str:
        data = {
            "sub": str(user.id),
            "aud": self.token_audience,
            PASSWORD_CLAIM: self._fingerprint(user),
        }
        return generate_jwt(data, self.encode_key, self.lifetime_seconds, algorithm=self.algorithm)

    async def read_token(
        self, token: str | None, user_manager: BaseUserManager[UserOAuth, int]
    ) -> UserOAuth | None:
        if token is None:
            return None
        try:
            claims = decode_jwt(
                token, self.decode_key, self.token_audience, algorithms=[self.algorithm]
            )
        except jwt.PyJWTError:
            return None
        user = await super().read_token(token, user_manager)
        claimed = claims.get(PASSWORD_CLAIM)
        if user is None or not isinstance(claimed, str):
            return None
        return user if hmac.compare_digest(claimed, self._fingerprint(user)) else None


def get_jwt_strategy(request: Request) -> JWTStrategy[UserOAuth, int]:
    return PasswordBoundJWTStrategy(
        secret=request.app.state.jwt_secret,
        lifetime_seconds=request.app.state.settings.JWT_EXPIRE_SECONDS,
    )


bearer_transport = BearerTransport(tokenUrl="auth/token/login/")
auth_backend = AuthenticationBackend(
    name="bearer-jwt", transport=bearer_transport, get_strategy=get_jwt_strategy
)
# The Fractal web page sends the very same JWT in this cookie (it sets the cookie itself
# from the login's access_token), so every route reads either; the strategy is shared, so
# a cookie token too dies with a password change.
AUTH_COOKIE = "fastapiusersauth"
cookie_transport = CookieTransport(
    cookie_name=AUTH_COOKIE, cookie_httponly=True, cookie_samesite="lax"
)
cookie_backend = AuthenticationBackend(
    name="cookie-jwt", transport=cookie_transport, get_strategy=get_jwt_strategy
)
fastapi_users = FastAPIUsers[UserOAuth, int](get_user_manager, [auth_backend, cookie_backend])

current_active_user = fastapi_users.current_user(active=True)
current_superuser = fastapi_users.current_user(active=True, superuser=True)

GUEST_REFUSED = "This feature is not available for guest users."
# What a guest account (is_guest) may do besides reading: the POSTs that only query
# (as Fractal's guests may), and logging out. Fractal's stop and squeue are GETs that
# guests may not call. Route templates, so that no concrete URL can dodge the list.
GUEST_READ_POSTS = frozenset(
    {
        "/auth/token/logout/",
        "/api/v2/project/{project_id}/dataset/{dataset_id}/images/query/",
        "/api/v2/project/{project_id}/dataset/{dataset_id}/images/verify-unique-types/",
        "/api/v2/project/{project_id}/dataset/{dataset_id}/images/non-processed/",
        "/api/v2/project/{project_id}/status/images/",
        "/api/v2/project/{project_id}/status/image-log/",
    }
)
GUEST_REFUSED_GETS = frozenset(
    {"/api/v2/project/{project_id}/job/{job_id}/stop/", "/api/v2/job/squeue/"}
)


def guest_may_call(method: str, route_path: str) -> bool:
    """Whether a guest account may call this route: reads only."""
    if method in ("GET", "HEAD"):
        return route_path not in GUEST_REFUSED_GETS
    return method == "POST" and route_path in GUEST_READ_POSTS


async def current_user_guarded(
    request: Request, user: Annotated[UserOAuth, Depends(current_active_user)]
) -> UserOAuth:
    """The logged-in user; a guest account is refused every write here, in one place, for
    every route that takes a (non-admin) user."""
    if user.is_guest:
        route = request.scope.get("route")
        path = getattr(route, "path", request.url.path)
        if not guest_may_call(request.method, path):
            raise HTTPException(403, detail=GUEST_REFUSED)
    return user


CurrentUser = Annotated[UserOAuth, Depends(current_user_guarded)]
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
