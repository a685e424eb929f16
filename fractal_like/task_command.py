"""Task commands: what a stored one may hold, and how it is split into an argv.

Standard library only, and free of the API and the database: the request schemas check a
command with `check_command` when it is saved, task collection checks the commands it
builds, and the runner splits them with `split_command` when it runs them, so a command
that was accepted is one the runner can split.
"""

from __future__ import annotations

import functools
import re
import shlex

MAX_COMMAND_LENGTH = 8192
# Control characters other than tab: NUL (PostgreSQL refuses it), and newlines or escape
# sequences, which would make one stored command look like several in logs and scripts.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class CommandError(ValueError):
    """A task command that could not be run as it is; the message says why."""


def check_command(command: str) -> str:
    """The command, if it splits into a non-empty argv of printable text; else CommandError."""
    found = _CONTROL.search(command)
    if found is not None:
        raise CommandError(
            f"a task command cannot contain control characters: found {found.group()!r} "
            f"at position {found.start()}"
        )
    if len(command) > MAX_COMMAND_LENGTH:
        raise CommandError(f"a task command is at most {MAX_COMMAND_LENGTH} characters")
    try:
        argv = _split(command)
    except ValueError as error:
        raise CommandError(
            f"the task command does not split into arguments ({error}): "
            "check for an unbalanced quote or a trailing backslash"
        ) from None
    if not argv or not argv[0]:
        raise CommandError("a task command needs at least a program to run")
    return command


@functools.lru_cache(maxsize=256)
def _split(command: str) -> tuple[str, ...]:
    return tuple(shlex.split(command))


def split_command(command: str) -> list[str]:
    """A task command's argv: split once per distinct command, not once per unit."""
    return list(_split(command))
