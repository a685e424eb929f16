"""The `fractal-like` command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from fastapi import FastAPI

from .banner import describe_database, serve_banner
from .config import ConfigError, Settings, load_settings
from .db import display_url
from .listen import PortUnavailableError, listen_on
from .migrate import SchemaMismatchError, check_schema, upgrade

app = typer.Typer(
    help="fractal-like: an HPC workflow manager speaking the Fractal v2 API.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
resource_app = typer.Typer(help="Compute resources.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(resource_app, name="resource")
console = Console(stderr=True, soft_wrap=True)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


def _prepare_database(settings: Settings) -> None:
    """Create or migrate the database; an unreachable one stops with a plain message."""
    from sqlalchemy.exc import OperationalError

    settings.ensure_data_dir()
    try:
        upgrade(settings.database_url)
    except OperationalError as error:
        console.print(
            f"[red]error:[/red] cannot reach the database at "
            f"{display_url(settings.database_url)}: {error.orig}"
        )
        raise typer.Exit(1) from None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database, or bring it to the schema of this version."""
    settings = _settings()
    _prepare_database(settings)
    console.print(f"database {describe_database(settings)} is up to date")


@db_app.command("check")
def db_check() -> None:
    """Exit 1 unless the database is at the schema of this version (never creates it)."""
    settings = _settings()
    console.print(f"database {describe_database(settings)}")
    try:
        check_schema(settings.database_url)
    except SchemaMismatchError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    console.print("database schema is current")


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: FRACTAL_LIKE_HOST].")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port to listen on [default: FRACTAL_LIKE_PORT]."),
    ] = None,
    migrate: Annotated[bool, typer.Option(help="Create or migrate the database first.")] = True,
) -> None:
    """Start the API server (creating and migrating the database first)."""
    import uvicorn

    from .api.app import create_app

    settings = _settings()
    host = host or settings.HOST
    port = port or settings.PORT
    # The port first: a busy one must stop us before a database, an admin or a
    # one-time password exists.
    try:
        sock = listen_on(host, port)
    except PortUnavailableError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    with sock:
        if migrate:
            _prepare_database(settings)
        url = f"http://{host}:{port}"

        def announce(application: FastAPI) -> None:
            console.print(serve_banner(url, settings, application.state.first_admin), markup=False)

        try:
            application = create_app(settings, on_ready=announce)
        except SchemaMismatchError as error:
            console.print(f"[red]error:[/red] {error}")
            raise typer.Exit(1) from None
        config = uvicorn.Config(application, log_level="info")
        uvicorn.Server(config).run(sockets=[sock])


@app.command()
def runner() -> None:
    """Run a standalone runner: claims jobs from the database and runs them (any number of
    runners, on any host that reaches the database, may run at once)."""
    import logging

    from .runner.main import Runner

    settings = _settings()
    try:
        check_schema(settings.database_url)
    except SchemaMismatchError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    console.print(f"runner started on {display_url(settings.database_url)}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Runner(settings).run_forever())


@app.command()
def demo(
    images: Annotated[int, typer.Option(help="How many images the example converter makes.")] = 8,
    keep: Annotated[bool, typer.Option(help="Keep the demo's folder afterwards.")] = True,
) -> None:
    """Start an embedded server, register example tasks, run an example workflow with a
    progress bar, and print the resulting images and where the logs are."""
    from .demo import run_demo

    raise typer.Exit(run_demo(images=images, keep=keep))


@user_app.command("create")
def user_create(
    email: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    superuser: Annotated[bool, typer.Option(help="Make the user a superuser.")] = False,
    project_dir: Annotated[list[str] | None, typer.Option(help="An allowed data folder.")] = None,
) -> None:
    """Create a user (the database must be migrated)."""
    from .services.users_cli import create_user

    settings = _settings()
    try:
        check_schema(settings.database_url)
        user_id = asyncio.run(create_user(settings, email, password, superuser, project_dir or []))
    except (SchemaMismatchError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    console.print(f"created user {email} with id {user_id}")


@user_app.command("set-password")
def user_set_password(
    email: str, password: Annotated[str, typer.Option(prompt=True, hide_input=True)]
) -> None:
    """Set a user's password."""
    from .services.users_cli import set_password

    settings = _settings()
    try:
        check_schema(settings.database_url)
        asyncio.run(set_password(settings, email, password))
    except (SchemaMismatchError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    console.print(f"password of {email} changed")


@resource_app.command("check")
def resource_check(resource_id: int) -> None:
    """Run the setup checks of a SLURM resource and its profiles; exit 1 if one fails."""
    from .services.errors import DomainError
    from .services.resources import setup_checks_by_id

    settings = _settings()
    try:
        check_schema(settings.database_url)
        checks = asyncio.run(setup_checks_by_id(settings, resource_id))
    except (SchemaMismatchError, DomainError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    if not checks:
        console.print(f"resource {resource_id} is not a SLURM resource: nothing to check")
    for check in checks:
        if check.ok:
            mark = "[green]ok[/green]  "
        else:
            mark = "[yellow]??[/yellow]  " if check.inconclusive else "[red]FAIL[/red]"
        console.print(f"{mark} {check.name}: {check.message}", highlight=False)
    # A check that could not be made is not a pass either: exit 1 says "not all verified".
    raise typer.Exit(0 if all(check.ok for check in checks) else 1)


@app.command()
def openapi() -> None:
    """Print the OpenAPI schema as JSON."""
    from .api.app import create_app

    application = create_app(_settings(), check_migrations=False)
    json.dump(application.openapi(), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    app()
