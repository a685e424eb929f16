"""What the command line prints about the server: its database and how to log in."""

from __future__ import annotations

from .config import Settings
from .db import display_url, sqlite_file
from .services.bootstrap import FirstAdmin

SET_PASSWORD_COMMAND = "`fractal-like user set-password`"


def describe_database(settings: Settings) -> str:
    """The database in use, password masked; for SQLite also its file and the data folder,
    so that a command run from the wrong folder shows it at once."""
    url = display_url(settings.database_url)
    path = sqlite_file(settings.database_url)
    if path is None:
        return url
    return f"{url} (SQLite file {path}, data folder {settings.DATA_DIR})"


def serve_banner(server_url: str, settings: Settings, first_admin: FirstAdmin) -> str:
    """The lines `serve` prints once it is ready."""
    shown, note = _admin_password(settings, first_admin)
    return (
        f"fractal-like is serving at {server_url} "
        f"(database {display_url(settings.database_url)})\n"
        f"log in with: FRACTAL_SERVER={server_url} FRACTAL_USER={settings.ADMIN_EMAIL} "
        f"FRACTAL_PASSWORD={shown} fractal user whoami\n"
        f"{note}\n"
        f"API documentation: {server_url}/docs"
    )


def _admin_password(settings: Settings, first_admin: FirstAdmin) -> tuple[str, str]:
    """What to show as the admin's password, and a note saying where it comes from."""
    if first_admin.generated_password is not None:
        return (
            first_admin.generated_password,
            f"this password is shown only once: keep it, or change it with {SET_PASSWORD_COMMAND}",
        )
    if first_admin.created:
        return (
            "<FRACTAL_LIKE_ADMIN_PASSWORD>",
            "the admin was created just now with the password in FRACTAL_LIKE_ADMIN_PASSWORD",
        )
    placeholder = "<the admin's password>"
    if settings.ADMIN_PASSWORD:
        return (
            placeholder,
            "the admin already exists: FRACTAL_LIKE_ADMIN_PASSWORD is set, but it is used only "
            "when the admin is first created, so the password is the one the admin got then, "
            f"or one set since with {SET_PASSWORD_COMMAND}",
        )
    return (
        placeholder,
        "the admin already exists: its password is the one printed when this server first "
        "started (or FRACTAL_LIKE_ADMIN_PASSWORD, if it was set then), or one set since "
        f"with {SET_PASSWORD_COMMAND}",
    )
