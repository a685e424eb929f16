"""Which Python interpreter and which pip options a resource gives task collection."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from ...models import Resource


class PythonNotAvailableError(ValueError):
    """The requested Python version cannot be used on this resource; the message says why."""


@dataclass(frozen=True)
class PythonChoice:
    version: str  # "3.12"
    interpreter: str  # absolute path


@dataclass(frozen=True)
class PipOptions:
    extra_args: list[str] = field(default_factory=list)
    cache_dir: str | None = None


def _server_python() -> PythonChoice:
    return PythonChoice(f"{sys.version_info.major}.{sys.version_info.minor}", sys.executable)


def _configured(resource: Resource) -> dict[str, Any]:
    config = resource.tasks_python_config or {}
    return config if config.get("versions") else {}


def choose_python(resource: Resource, requested: str | None) -> PythonChoice:
    """The interpreter for `requested` (default: the resource's default version).

    A resource without `tasks_python_config` offers the Python that runs the server,
    which is what the embedded single-machine setup wants (never on slurm_ssh, whose
    interpreters are on the login node).
    """
    config = _configured(resource)
    remote = resource.type == "slurm_ssh"  # its interpreters are paths on the login node
    if not config and remote:
        raise PythonNotAvailableError(
            f"resource {resource.name!r} is reached over SSH and lists no Python interpreter "
            "of the cluster in its tasks_python_config: tell an admin"
        )
    if not config:
        server = _server_python()
        if requested not in (None, server.version):
            raise PythonNotAvailableError(
                f"Python {requested} is not available on resource {resource.name!r}: it only "
                f"offers Python {server.version} (an admin can add versions in its "
                "tasks_python_config)"
            )
        return server
    versions: dict[str, str] = config["versions"]
    version = requested or config.get("default_version")
    if version not in versions:
        offered = ", ".join(sorted(versions))
        raise PythonNotAvailableError(
            f"Python {version} is not available on resource {resource.name!r}: "
            f"choose one of {offered}"
        )
    interpreter = versions[version]
    if remote:
        return PythonChoice(version, interpreter)  # checked when the venv is made there
    if not os.path.isfile(interpreter) or not os.access(interpreter, os.X_OK):
        raise PythonNotAvailableError(
            f"the interpreter of Python {version} on resource {resource.name!r} "
            f"({interpreter}) is not an executable file on the server: tell an admin"
        )
    return PythonChoice(version, interpreter)


def pip_options(resource: Resource) -> PipOptions:
    config = _configured(resource)
    return PipOptions(
        extra_args=list(config.get("pip_extra_args") or []),
        cache_dir=config.get("pip_cache_dir"),
    )
