"""The sbatch script of one SLURM job, and the sbatch command line that submits it.

Every value that lands on a `#SBATCH` line must match a strict pattern (no spaces, quotes,
`;`, `$`, line breaks): anything else is refused with a plain ValueError, never quoted,
because sbatch reads those lines itself and a newline would start a second directive.
Paths never go on `#SBATCH` lines: the output and error files go in sbatch's argv (no
shell), and the worker's paths go on the final `exec` line, quoted with shlex.quote.
sbatch stops reading directives at the first command (`umask`), so nothing after it can
become a directive, whatever a quoted value contains.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ...worker_init import parse_worker_init, shell_lines
from ..node import worker_argv
from .batching import format_time_minutes

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.,:=@+%/\-\[\]]{1,255}$")
_JOB_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
_EXPORT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DIRECTIVE = re.compile(r"^#SBATCH\s+(--?[A-Za-z][A-Za-z0-9\-]*)")
_SHORT_OPTIONS = {
    "-J": "job-name",
    "-p": "partition",
    "-n": "ntasks",
    "-c": "cpus-per-task",
    "-t": "time",
    "-A": "account",
    "-C": "constraint",
    "-G": "gpus",
    "-x": "exclude",
    "-w": "nodelist",
    "-o": "output",
    "-e": "error",
}
# Set on the command line by sbatch_argv: a directive for them would be misleading.
_ALWAYS_OURS = ("output", "error", "requeue", "no-requeue")


@dataclass(frozen=True, kw_only=True)
class SbatchSpec:
    """One SLURM job. cpus_per_task is the whole job's CPUs: the job is one task (the worker)."""

    job_name: str
    partition: str
    cpus_per_task: int
    mem_mb: int | None
    time_minutes: int | None
    worker_python: str
    worker_script: str  # the node package (its copy beside the job), run by path
    batch_file: str
    account: str | None = None
    constraint: str | None = None
    gres: str | None = None
    gpus: str | None = None
    exclude: str | None = None
    nodelist: str | None = None
    extra_lines: Sequence[str] = ()
    exports: Mapping[str, str] = field(default_factory=dict)
    shebang_line: str = "#!/bin/sh"
    worker_init: str | None = None  # the job's (worker_init.py), checked again here


# ---------------------------------------------------------------------------- checks


def _no_control(value: str, what: str) -> str:
    if "\n" in value or "\r" in value or "\x00" in value:
        raise ValueError(f"{what} cannot contain line breaks or NUL characters")
    return value


def _safe(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SAFE_VALUE.match(value):
        raise ValueError(
            f"{what} {value!r} is not allowed in an sbatch script: use letters, digits "
            "and _ . , : = @ + % / - [ ] only"
        )
    return value


def _positive(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def _path(value: str, what: str) -> str:
    # Quoting makes anything else safe; sbatch refuses scripts with carriage returns.
    if not isinstance(value, str) or not value or "\x00" in value or "\r" in value:
        raise ValueError(f"{what} must be a non-empty path without NUL or carriage returns")
    return value


def _option_name(option: str) -> str:
    if option.startswith("--"):
        return option[2:]
    return _SHORT_OPTIONS.get(option[:2], option[:2])  # "-c4" is "-c 4"


def _clashes(name: str, ours: set[str]) -> bool:
    # sbatch accepts unambiguous prefixes of long options ("--part=x"): a prefix of one of
    # ours is as much a duplicate as the full name.
    return any(option == name or option.startswith(name) for option in ours)


def _split_extra_lines(lines: Sequence[str], ours: set[str]) -> tuple[list[str], list[str]]:
    """Admin lines as (#SBATCH directives, plain shell lines), checked."""
    directives, commands = [], []
    for line in lines:
        _no_control(line, "an extra line")
        if not line.startswith("#SBATCH"):
            commands.append(line)
            continue
        match = _DIRECTIVE.match(line)
        if not line.startswith("#SBATCH ") or not match:
            raise ValueError(f"extra line {line!r} must read '#SBATCH --option[=value]'")
        name = _option_name(match.group(1)).split("=", 1)[0]
        if _clashes(name, ours):
            raise ValueError(f"extra line {line!r} repeats --{name}, which is set already")
        directives.append(line)
    return directives, commands


# ---------------------------------------------------------------------------- building


def _directives(spec: SbatchSpec) -> list[tuple[str, str]]:
    """(option, value) pairs for the #SBATCH lines, every value checked."""
    if not isinstance(spec.job_name, str) or not _JOB_NAME.match(spec.job_name):
        raise ValueError(
            f"job name {spec.job_name!r} must be 1-128 letters, digits, '_', '.' or '-'"
        )
    pairs = [
        ("job-name", spec.job_name),
        ("partition", _safe(spec.partition, "partition")),
        ("ntasks", "1"),
        ("cpus-per-task", str(_positive(spec.cpus_per_task, "cpus_per_task"))),
    ]
    if spec.mem_mb is not None:
        pairs.append(("mem", f"{_positive(spec.mem_mb, 'mem_mb')}M"))
    if spec.time_minutes is not None:
        pairs.append(("time", format_time_minutes(_positive(spec.time_minutes, "time_minutes"))))
    for option in ("account", "constraint", "gres", "gpus", "exclude", "nodelist"):
        value = getattr(spec, option)
        if value is not None:
            pairs.append((option, _safe(value, option)))
    return pairs


def _exports(exports: Mapping[str, str]) -> list[str]:
    lines = []
    for name, value in exports.items():
        if not isinstance(name, str) or not _EXPORT_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
        if not isinstance(value, str) or "\x00" in value or "\r" in value:
            raise ValueError(f"export {name} must be a string without NUL or carriage returns")
        lines.append(f"export {name}={shlex.quote(value)}")
    return lines


def build_sbatch_script(spec: SbatchSpec) -> str:
    """The script text; raises ValueError (plain message) for any unsafe value."""
    shebang = _no_control(spec.shebang_line, "the shebang line")
    if not shebang.startswith("#!"):
        raise ValueError("the shebang line must start with '#!'")
    pairs = _directives(spec)
    ours = {option for option, _ in pairs} | set(_ALWAYS_OURS)
    if spec.mem_mb is not None:
        ours |= {"mem-per-cpu", "mem-per-gpu"}  # sbatch refuses them beside --mem
    extra_directives, extra_commands = _split_extra_lines(spec.extra_lines, ours)
    worker = [
        _path(spec.worker_python, "worker_python"),
        _path(spec.worker_script, "worker_script"),
        _path(spec.batch_file, "batch_file"),
    ]
    lines = [
        shebang,
        *(f"#SBATCH --{option}={value}" for option, value in pairs),
        *extra_directives,
        *extra_commands,
        "umask 0022",  # the runner, another uid, must be able to read what the job writes
        # The user's lines before the resource's exports, so that those always hold.
        *shell_lines(parse_worker_init(spec.worker_init)),
        *_exports(spec.exports),
        "exec " + " ".join(shlex.quote(part) for part in worker_argv(*worker)),
    ]
    return "\n".join(lines) + "\n"


def _slurm_filename(path: str, what: str) -> str:
    # sbatch expands %j, %x, ... in these names; %% is a literal %. A backslash switches
    # all expansion off (and is dropped), so no escaping could keep such a path intact.
    if not path or "\x00" in path or "\n" in path or "\\" in path:
        raise ValueError(f"the {what} path must be non-empty, one line, without backslashes")
    return path.replace("%", "%%")


def sbatch_argv(script_path: str, output_path: str, error_path: str) -> list[str]:
    """The sbatch command line, for an exec without shell; --parsable prints the job id.

    --no-requeue: when its node fails or it is preempted, SLURM would otherwise put the job
    back in the queue (JobRequeue=1 is SLURM's default) to run the whole batch again, even
    its units that already ended, while the runner sees it pending for as long as the node
    stays down. It ends instead (NODE_FAIL, PREEMPTED), its units are reported in plain
    words at once, and resubmitting is the user's choice."""
    return [
        "sbatch",
        "--parsable",
        "--no-requeue",
        f"--output={_slurm_filename(output_path, 'output')}",
        f"--error={_slurm_filename(error_path, 'error')}",
        _path(script_path, "script"),
    ]
