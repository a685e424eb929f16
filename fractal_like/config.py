"""Settings, read from the environment with the prefix FRACTAL_LIKE_."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .secret_strength import secret_weakness
from .services.passwords import PasswordTooShortError, check_password_length

logger = logging.getLogger("fractal_like")


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class RunnerBackend(StrEnum):
    LOCAL = "local"
    SLURM_SUDO = "slurm_sudo"
    SLURM_SSH = "slurm_ssh"


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRACTAL_LIKE_", extra="ignore")

    ENVIRONMENT: Environment = Environment.PRODUCTION
    DATA_DIR: Path = Field(default_factory=lambda: Path.cwd() / "fractal-like-data")
    DB_URL: str | None = None
    JWT_SECRET: str | None = None
    JWT_EXPIRE_SECONDS: int = Field(default=3600 * 8, gt=0)
    ADMIN_EMAIL: str = "admin@example.org"
    # Unset: a random password is generated for the first admin and printed once.
    ADMIN_PASSWORD: str | None = None
    DEFAULT_GROUP_NAME: str = "All"
    RUNNER_BACKEND: RunnerBackend = RunnerBackend.LOCAL
    # On a fresh database, create a local resource with a profile for the first admin,
    # so the embedded default can run workflows without any admin step.
    BOOTSTRAP_LOCAL_RESOURCE: bool = True
    # `serve` runs a runner inside the server process unless this is false.
    EMBEDDED_RUNNER: bool = True
    RUNNER_MAX_JOBS: int = Field(default=4, gt=0, le=256)
    RUNNER_POLL_SECONDS: float = Field(default=0.5, gt=0, le=60)
    # A running job whose runner sent no heartbeat for this long is taken over.
    RUNNER_STALE_SECONDS: float = Field(default=30, gt=0)
    # Units run at once per job on the local backend (default: the resource's setting,
    # else the number of cores).
    RUNNER_PARALLELISM: int | None = Field(default=None, gt=0, le=4096)
    # Bodies above this size get 413: every route but the upload ones. The largest real JSON
    # bodies (workflow imports, custom task manifests with their args schemas) are well under
    # 1 MB; 4 MiB leaves room while bounding what one request costs the server to parse.
    MAX_JSON_BYTES: int = Field(default=4 * 1024 * 1024, gt=0)
    # The larger limit of the routes that take uploads (wheels for task collection).
    MAX_REQUEST_BYTES: int = Field(default=200 * 1024 * 1024, gt=0)
    # Applied to every password set: registration, updates, the CLI and the first admin.
    MIN_PASSWORD_LENGTH: int = Field(default=8, ge=1, le=1024)
    # Failed logins: after this many for one account, or from one client address, within
    # the window, the login answers 429 (even for the right password) until it passes.
    LOGIN_MAX_FAILURES_PER_ACCOUNT: int = Field(default=10, gt=0)
    LOGIN_MAX_FAILURES_PER_ADDRESS: int = Field(default=50, gt=0)
    LOGIN_FAILURE_WINDOW_SECONDS: int = Field(default=900, gt=0)
    # Take the client address from X-Forwarded-For (only behind a proxy that sets it).
    LOGIN_TRUST_FORWARDED_FOR: bool = False
    HOST: str = "127.0.0.1"
    PORT: int = Field(default=8000, ge=1, le=65535)

    @field_validator("DATA_DIR")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("DB_URL")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("only sqlite:/// and postgresql:// URLs are supported")
        return value

    @field_validator("ADMIN_EMAIL")
    @classmethod
    def _email_shape(cls, value: str) -> str:
        # The same check registration applies, so the admin can always log in and be read.
        from pydantic import TypeAdapter
        from pydantic.networks import EmailStr

        try:
            return TypeAdapter(EmailStr).validate_python(value)
        except ValidationError as error:
            raise ValueError(error.errors()[0]["msg"].removeprefix("value is not ")) from None

    @model_validator(mode="after")
    def _strong_secret(self) -> Settings:
        secret = self.JWT_SECRET
        if secret is None or self.ENVIRONMENT == Environment.DEVELOPMENT:
            return self
        weakness = secret_weakness(secret)
        if weakness is not None:
            raise ValueError(
                f"FRACTAL_LIKE_JWT_SECRET is too weak ({weakness}): use a random one "
                "(e.g. `openssl rand -hex 32`), or unset it to let fractal-like generate "
                "and keep one in FRACTAL_LIKE_DATA_DIR"
            )
        return self

    @model_validator(mode="after")
    def _admin_password_long_enough(self) -> Settings:
        # Checked at start, before the first admin would be made with it.
        if self.ADMIN_PASSWORD:
            try:
                check_password_length(self.ADMIN_PASSWORD, self.MIN_PASSWORD_LENGTH)
            except PasswordTooShortError as error:
                raise ValueError(
                    f"FRACTAL_LIKE_ADMIN_PASSWORD is too short: {error} "
                    "(FRACTAL_LIKE_MIN_PASSWORD_LENGTH)"
                ) from None
        return self

    @property
    def database_url(self) -> str:
        """The configured URL, or the embedded SQLite file in DATA_DIR."""
        return self.DB_URL or f"sqlite:///{self.DATA_DIR / 'fractal-like.db'}"

    @property
    def jwt_secret_file(self) -> Path:
        """Where a generated secret is kept."""
        return self.DATA_DIR / "jwt-secret"

    def jwt_secret(self) -> str:
        """The configured secret, or one generated once and kept in DATA_DIR."""
        if self.JWT_SECRET:
            return self.JWT_SECRET
        path = self.jwt_secret_file
        if path.exists():
            return path.read_text().strip()
        self.ensure_data_dir()
        value = secrets.token_hex(32)
        # Written with 0600 from the start: the secret signs every token.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        return value

    def ensure_data_dir(self) -> Path:
        """Create the data folder 0700 whatever the umask; tighten an existing open one.

        It holds the database and the JWT secret, which are the server's alone. An
        existing folder readable by others is tightened rather than only warned about:
        a warning in a log is easy to miss, while the files inside are what an attacker
        needs to forge an admin's token.
        """
        path = self.DATA_DIR
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            try:
                path.chmod(mode & 0o700)
            except OSError as error:
                logger.warning("data folder %s is open to others (%o): %s", path, mode, error)
            else:
                logger.warning(
                    "data folder %s was open to others (%o): now %o", path, mode, mode & 0o700
                )
        return path


def _explain(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        name = "FRACTAL_LIKE_" + ".".join(str(part) for part in item["loc"]) if item["loc"] else ""
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message}" if name else message)
    return "invalid configuration: " + "; ".join(lines)


def load_settings() -> Settings:
    """Read the settings, turning validation errors into a message naming the variable."""
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigError(_explain(error)) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
