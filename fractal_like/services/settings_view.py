"""What the admin's settings pages show: the configuration, never a secret in it.

The reference answers these four routes with its own settings objects, whose names the
Fractal web page shows as they are. Ours differ, so each view gives the reference's names
with our counterpart's value (None where we have none), plus, for the app, every setting
of ours under its environment variable's name. Secrets are masked, not left out, so an
admin sees that one is set.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ..config import Settings

MASK = "**********"

# Settings whose value is a secret, by name: any new one named like this is masked too.
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|KEY", re.IGNORECASE)


def _masked(value: Any) -> Any:
    return MASK if value else None


def _safe_db_url(url: str) -> str | None:
    # The password is masked and the query dropped: libpq also takes a password there.
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    return parsed.set(query={}).render_as_string(hide_password=True)


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def app_settings(settings: Settings) -> dict[str, Any]:
    view: dict[str, Any] = {
        "JWT_EXPIRE_SECONDS": settings.JWT_EXPIRE_SECONDS,
        "JWT_SECRET_KEY": MASK,  # always set: configured or generated in DATA_DIR
        # The cookie carries the very same token, so it lives as long.
        "COOKIE_EXPIRE_SECONDS": settings.JWT_EXPIRE_SECONDS,
        "FRACTAL_DEFAULT_GROUP_NAME": settings.DEFAULT_GROUP_NAME,
        "FRACTAL_RUNNER_BACKEND": settings.RUNNER_BACKEND.value,
        "FRACTAL_HELP_URL": None,
    }
    for name, value in settings.model_dump().items():
        if name == "DB_URL":
            shown = _safe_db_url(value) if value else None
        elif _SECRET_NAME.search(name):
            shown = _masked(value)
        else:
            shown = _jsonable(value)
        view[f"FRACTAL_LIKE_{name}"] = shown
    return view


def database_settings(settings: Settings) -> dict[str, Any]:
    url = settings.database_url
    view: dict[str, Any] = {
        "DB_ENGINE": None,
        "DB_ECHO": False,
        "POSTGRES_USER": None,
        "POSTGRES_PASSWORD": None,
        "POSTGRES_HOST": None,
        "POSTGRES_PORT": None,
        "POSTGRES_DB": None,
        "SQLITE_PATH": None,
        "DATABASE_URL": _safe_db_url(url),
    }
    try:
        parsed = make_url(url)
    except ArgumentError:
        return view
    backend = parsed.get_backend_name()
    view["DB_ENGINE"] = backend
    if backend == "sqlite":
        view["SQLITE_PATH"] = parsed.database
    else:
        password = parsed.password or parsed.query.get("password")
        view.update(
            POSTGRES_USER=parsed.username,
            POSTGRES_PASSWORD=_masked(password),
            POSTGRES_HOST=parsed.host,
            POSTGRES_PORT=parsed.port,
            POSTGRES_DB=parsed.database,
        )
    return view


def email_settings(_settings: Settings) -> dict[str, Any]:
    # fractal-like sends no email: nothing of the reference's email settings is set.
    return {
        "FRACTAL_EMAIL_SENDER": None,
        "FRACTAL_EMAIL_SMTP_SERVER": None,
        "FRACTAL_EMAIL_SMTP_PORT": None,
        "FRACTAL_EMAIL_INSTANCE_NAME": None,
        "FRACTAL_EMAIL_RECIPIENTS": None,
        "FRACTAL_EMAIL_USE_STARTTLS": None,
        "FRACTAL_EMAIL_USE_LOGIN": None,
        "FRACTAL_EMAIL_PASSWORD": None,
    }


def oauth_settings(_settings: Settings) -> dict[str, Any]:
    # No OAuth client is configured in fractal-like: login is by password only.
    return {
        "OAUTH_CLIENT_NAME": None,
        "OAUTH_CLIENT_ID": None,
        "OAUTH_CLIENT_SECRET": None,
        "OAUTH_OIDC_CONFIG_ENDPOINT": None,
        "OAUTH_REDIRECT_URL": None,
    }
