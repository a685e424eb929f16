"""`worker_init` of a job (Fractal's submit field): a few lines run before the worker starts.

Only a small, checked language is accepted, never free shell text: blank lines and
`# comments` (dropped), `source PATH` (or `. PATH`), `module load NAME...`, `module purge`
and `export NAME=VALUE`. Every word must match a strict pattern (no quotes, `$`, `;`,
backquotes, globs, ...), and is still quoted with shlex.quote when it is written into the
sbatch script. Anything else is refused at submit (a 422 naming the line) and again when
the script is built: a submitted job never has part of its worker_init silently dropped.

`source` and `module` need a shell on the cluster; `export` lines are plain variables, so
the local executor can apply them too (to each unit's environment).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# An absolute path of plain characters: no spaces, quotes, `$`, globs or `~` (which a
# quoted word would not expand, silently naming another file).
_PATH = re.compile(r"^/[A-Za-z0-9_.+@/-]*$")
# Lmod/Environment Modules names such as `gcc/12.2.0` or `Python/3.11.3-GCCcore-12.3.0`;
# never starting with `-`, which `module` would read as an option.
_MODULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+@/-]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Values without any character a shell treats specially (no `$`: no expansion of $PATH).
_VALUE = re.compile(r"^[A-Za-z0-9_.,:/@%+=-]*$")
# The server's own settings never pass to units (see unit_env.py).
_SERVER_PREFIX = "FRACTAL_LIKE_"

ACCEPTED = (
    "empty lines, '# comments', 'source /absolute/path', 'module load NAME...', "
    "'module purge' and 'export NAME=VALUE' (VALUE of letters, digits and _ . , : / @ % + = -)"
)

Kind = Literal["source", "module", "export"]
# How the sbatch script says a line failed; the runner quotes that line of the error file.
WORKER_INIT_FAILED = "fractal-like: worker_init line "


class WorkerInitError(ValueError):
    """A line of worker_init outside the accepted forms; the message names it."""


@dataclass(frozen=True)
class InitLine:
    """One accepted line: its number in the text (from 1), kind and checked words."""

    number: int
    kind: Kind
    words: tuple[str, ...]  # source: (path,); module: ("load", names...) or ("purge",);
    # export: (name, value)
    text: str  # as the user wrote it, for messages

    def shell(self) -> str:
        """The line as a POSIX sh command, every word quoted."""
        if self.kind == "source":
            return ". " + shlex.quote(self.words[0])  # dash has no `source`; `.` is POSIX
        if self.kind == "module":
            return "module " + " ".join(shlex.quote(word) for word in self.words)
        name, value = self.words
        return f"export {name}={shlex.quote(value)}"


def _refuse(number: int, line: str, why: str) -> WorkerInitError:
    shown = line if len(line) <= 120 else line[:117] + "..."
    return WorkerInitError(f"worker_init line {number} ({shown!r}) is not accepted: {why}")


def _parse_line(number: int, line: str) -> InitLine | None:
    words = line.split()
    if not words or words[0].startswith("#"):
        return None
    command, rest = words[0], words[1:]
    if command in ("source", "."):
        if len(rest) != 1 or not _PATH.match(rest[0]):
            raise _refuse(
                number, line, "source takes one absolute path of letters, digits and _ . + @ / -"
            )
        return InitLine(number, "source", (rest[0],), line.strip())
    if command == "module":
        if rest == ["purge"]:
            return InitLine(number, "module", ("purge",), line.strip())
        if len(rest) >= 2 and rest[0] == "load" and all(_MODULE.match(name) for name in rest[1:]):
            return InitLine(number, "module", tuple(rest), line.strip())
        raise _refuse(
            number,
            line,
            "only 'module load NAME...' (names of letters, digits and _ . + @ / -, not "
            "starting with -) and "
            "'module purge' are accepted",
        )
    if command == "export":
        if len(rest) != 1 or "=" not in rest[0]:
            raise _refuse(number, line, "export takes exactly one NAME=VALUE")
        name, value = rest[0].split("=", 1)
        if not _NAME.match(name):
            raise _refuse(number, line, f"{name!r} is not a variable name")
        if name.startswith(_SERVER_PREFIX):
            raise _refuse(number, line, f"variables named {_SERVER_PREFIX}* are the server's")
        if not _VALUE.match(value):
            raise _refuse(
                number,
                line,
                "the value may hold letters, digits and _ . , : / @ % + = - only "
                "(no quotes, spaces, $ or other shell characters)",
            )
        return InitLine(number, "export", (name, value), line.strip())
    raise _refuse(number, line, f"only {ACCEPTED} are accepted")


def parse_worker_init(text: str | None) -> list[InitLine]:
    """The accepted lines of `text`, in order; WorkerInitError names the first refused one."""
    if not text:
        return []
    if "\x00" in text:
        raise WorkerInitError("worker_init cannot contain NUL characters")
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        parsed = _parse_line(number, line)
        if parsed is not None:
            lines.append(parsed)
    return lines


def check_worker_init(text: str | None) -> str | None:
    """`text` unchanged if every line is accepted (for a pydantic validator)."""
    parse_worker_init(text)
    return text


def shell_lines(lines: Sequence[InitLine]) -> list[str]:
    """The sbatch script's lines: a line that fails ends the job before the worker starts,
    saying which one (in the job's error file, which the runner quotes)."""
    rendered = []
    for line in lines:
        command = line.shell()
        if line.kind == "export":
            rendered.append(command)  # an assignment of a quoted word cannot fail
            continue
        said = shlex.quote(f"{WORKER_INIT_FAILED}{line.number} failed: {line.text}")
        rendered.append(f"{command} || {{ echo {said} >&2; exit 1; }}")
    return rendered


def exports(lines: Sequence[InitLine]) -> dict[str, str]:
    """The variables the `export` lines set, later lines winning."""
    return {line.words[0]: line.words[1] for line in lines if line.kind == "export"}


def needs_shell(lines: Sequence[InitLine]) -> list[InitLine]:
    """The lines that only a shell can apply (source, module)."""
    return [line for line in lines if line.kind != "export"]


def local_refusal(line: InitLine) -> str:
    """Why a `source`/`module` line cannot apply to units run on the server's machine: there
    is no job script there, and the runner does not source users' files into its own shell."""
    return (
        f"worker_init line {line.number} ({line.text!r}) needs a shell before the tasks "
        "start, which only a SLURM job has: this resource runs tasks on the server's own "
        "machine, where only 'export NAME=VALUE' lines apply. Remove the line, or submit "
        "on a SLURM resource"
    )
