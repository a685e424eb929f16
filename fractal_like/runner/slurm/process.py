"""Run a local program as an argv list (never through a shell) and collect what it printed.

Shared by the SLURM commands (commands.py) and the cluster hosts (cluster_host.py), so the
result of a command looks the same whether it ran here through sudo or over SSH.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..accounts import AccountCommandError

COMMAND_TIMEOUT_SECONDS = 120.0


class SlurmCommandError(AccountCommandError):
    """A SLURM command failed; the message carries what it printed."""


@dataclass
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


async def run_command(
    argv: list[str], timeout: float = COMMAND_TIMEOUT_SECONDS, stdin: bytes | None = None
) -> CommandResult:
    """Run argv here; `stdin` is fed to it (None: it reads nothing)."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as error:
        raise SlurmCommandError(f"cannot run {argv[0]!r}: {error.strerror}") from None
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise SlurmCommandError(
            f"{' '.join(argv[:6])} did not answer within {timeout:.0f} s"
        ) from None
    return CommandResult(
        process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
    )


def last_line(result: CommandResult) -> str:
    """The last words a command printed (its error output first), or its exit code."""
    lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit code {result.returncode}"
