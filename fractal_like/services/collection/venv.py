"""A task group's virtual environment: creating it, pip in it, and what is installed in it.

Every command is an argv list run without a shell; values from requests reach pip as
single argv items. The environment is created without pip and seeded with a copy of the
pip that runs this server (as virtualenv seeds its environments): a fraction of a second
instead of the several seconds `ensurepip` spends installing and compiling pip. When the
server has no pip, or its pip does not support the chosen Python (its Requires-Python),
`ensurepip` is the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ...runner.node import sandbox
from ...runner.unit_env import pip_environment
from .python import PipOptions, PythonChoice

Log = Callable[[str], Awaitable[None]]

# pip 22.2 is the first with `install --dry-run --report`, used to resolve a version.
MIN_PIP = Version("22.2")
STEP_TIMEOUT_SECONDS = 3600.0
QUICK_TIMEOUT_SECONDS = 120.0
TAIL_LINES_OK = 15
TAIL_LINES_FAILED = 80
MANIFEST_NAME = "__FRACTAL_MANIFEST__.json"

_PIP_GENERAL = ["--disable-pip-version-check", "--no-input"]
_URL_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")

# Run by the venv's Python (isolated mode): where the installed distribution's manifest is.
_FIND_MANIFEST = f"""\
import json, sys
from importlib.metadata import PackageNotFoundError, distribution
try:
    dist = distribution(sys.argv[1])
except PackageNotFoundError:
    sys.exit(f"{{sys.argv[1]}} is not installed in this environment")
found = [str(dist.locate_file(f)) for f in (dist.files or []) if f.name == "{MANIFEST_NAME}"]
print(json.dumps({{"name": dist.metadata["Name"], "version": dist.version, "manifests": found}}))
"""

_PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


class StepFailedError(Exception):
    """A step of the work failed; the message says what happened, in plain words."""


@dataclass(frozen=True)
class Installed:
    name: str
    version: str
    manifest: Path


def _child_env() -> dict[str, str]:
    # The server's own settings (database URL, JWT secret) are none of pip's business, nor of
    # the build scripts of the packages it installs: they get the units' allow-list, plus the
    # site's network settings and pip's own (PYTHONPATH, VIRTUAL_ENV... of the server stay out).
    return pip_environment()


def _shown(argv: list[str]) -> str:
    """The command for the log, without credentials in URLs (e.g. a private index)."""
    return _URL_CREDENTIALS.sub(r"\1***@", shlex.join(argv))


def _tail(text: str, lines: int) -> str:
    kept = _URL_CREDENTIALS.sub(r"\1***@", text).rstrip().splitlines()
    if len(kept) > lines:
        kept = [f"[... {len(kept) - lines} lines above ...]", *kept[-lines:]]
    return "\n".join(kept)


async def run(
    argv: list[str], *, cwd: Path, timeout: float, confine: Sequence[str] | None = None
) -> tuple[int, str]:
    """Run a command; its exit code and its combined output. Killed on timeout or cancel.

    `confine`: the server's files the command must not reach (see runner/node/sandbox.py): pip
    runs the build scripts of the packages it installs, which are the users' code."""
    env = _child_env()
    shown_name = argv[0]
    with contextlib.ExitStack() as cleanup:
        if confine is not None:
            argv = [sys.executable, "-I", "-S", sandbox.__file__, *confine, "--", *argv]
            usual = env.get("TMPDIR") or tempfile.gettempdir()
            if sandbox.creation_blocked_in(usual, confine):
                # pip builds in temporary folders: one it may create things in.
                env["TMPDIR"] = cleanup.enter_context(
                    tempfile.TemporaryDirectory(prefix="tmp-", dir=cwd)
                )
        return await _run_process(argv, cwd, timeout, env, name=shown_name)


async def _run_process(
    argv: list[str], cwd: Path, timeout: float, env: dict[str, str], name: str
) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=cwd,
        env=env,
        start_new_session=True,  # its own process group, so pip's children die with it
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except BaseException as error:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        if isinstance(error, TimeoutError):
            raise StepFailedError(
                f"{name} took more than {timeout:.0f} s and was stopped"
            ) from None
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def logged_step(
    log: Log,
    what: str,
    argv: list[str],
    *,
    cwd: Path,
    confine: Sequence[str] | None,
    timeout: float = STEP_TIMEOUT_SECONDS,
    shown: list[str] | None = None,
) -> str:
    """One command of a piece of work: logged, run (confined), its output's tail logged;
    StepFailedError when it fails. Returns its whole output."""
    await log(f"{what}\n$ {_shown(shown or argv)}")
    try:
        code, output = await run(argv, cwd=cwd, timeout=timeout, confine=confine)
    except OSError as error:
        raise StepFailedError(f"{what}: cannot run {argv[0]}: {error}") from None
    if code != 0:
        await log(f"exit code {code}:\n{_tail(output, TAIL_LINES_FAILED)}")
        raise StepFailedError(f"{what} failed (exit code {code}): see the lines above")
    if output.strip():
        await log(_tail(output, TAIL_LINES_OK))
    return output


@dataclass(frozen=True)
class ServerPip:
    package: Path  # .../site-packages/pip
    dist_info: Path  # .../site-packages/pip-<version>.dist-info
    version: str
    requires_python: SpecifierSet


def _server_pip() -> ServerPip | None:
    """The pip of this server's environment, if it has one."""
    spec = importlib.util.find_spec("pip")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    try:
        metadata = importlib.metadata.metadata("pip")
        requires = SpecifierSet(metadata["Requires-Python"] or "")
    except (importlib.metadata.PackageNotFoundError, InvalidSpecifier):
        return None
    version = metadata["Version"]
    dist_info = package.parent / f"pip-{version}.dist-info"
    if not package.is_dir() or not dist_info.is_dir():
        return None
    return ServerPip(package, dist_info, version, requires)


class Venv:
    """The venv of one task group, with the resource's pip options and a log to write to."""

    def __init__(
        self, path: Path, pip: PipOptions, log: Log, cwd: Path, confine: Sequence[str] | None
    ) -> None:
        self.path = path
        self.pip = pip
        self.log = log
        self.cwd = cwd
        self.confine = confine  # the server's files its commands must not reach

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    async def _step(
        self,
        what: str,
        argv: list[str],
        *,
        timeout: float = STEP_TIMEOUT_SECONDS,
        shown: list[str] | None = None,
    ) -> str:
        return await logged_step(
            self.log, what, argv, cwd=self.cwd, confine=self.confine, timeout=timeout, shown=shown
        )

    def _pip(self, *args: str) -> list[str]:
        argv = [str(self.python), "-m", "pip", args[0], *_PIP_GENERAL]
        if self.pip.cache_dir:
            argv += ["--cache-dir", self.pip.cache_dir]
        return [*argv, *args[1:]]

    # --- Creating ------------------------------------------------------------------------------

    async def create(self, python: PythonChoice) -> None:
        if self.path.exists():
            raise StepFailedError(f"{self.path} already exists: refusing to install over it")
        await self._step(
            f"creating the environment with {python.interpreter}",
            [python.interpreter, "-m", "venv", "--without-pip", str(self.path)],
            timeout=QUICK_TIMEOUT_SECONDS,
        )
        version = await self._seed_from_server(python.version)
        if version is None:
            await self._step(
                "installing pip with ensurepip",
                [str(self.python), "-m", "ensurepip", "--default-pip"],
                timeout=QUICK_TIMEOUT_SECONDS,
            )
            output = await self._step(
                "checking pip",
                [str(self.python), "-m", "pip", "--version"],
                timeout=QUICK_TIMEOUT_SECONDS,
            )
            version = output.split()[1] if len(output.split()) > 1 else output
        await self._upgrade_pip_if_old(version)

    async def _seed_from_server(self, python_version: str) -> str | None:
        """Copy the server's pip into the venv when it supports that Python; its version."""
        source = _server_pip()
        if source is None or not source.requires_python.contains(python_version):
            return None
        code, output = await run(
            [str(self.python), "-I", "-c", _PURELIB],
            cwd=self.cwd,
            timeout=QUICK_TIMEOUT_SECONDS,
            confine=self.confine,
        )
        site = Path(output.strip())
        real_venv = Path(os.path.realpath(self.path))
        if (
            code != 0
            or not site.is_absolute()
            or real_venv not in Path(os.path.realpath(site)).parents
        ):
            return None
        await asyncio.to_thread(_copy_trees, [source.package, source.dist_info], site)
        await self.log(f"pip {source.version} copied from the server's environment")
        return source.version

    async def _upgrade_pip_if_old(self, pip_version: str) -> None:
        try:
            version = Version(pip_version)
        except InvalidVersion:
            raise StepFailedError(f"cannot read the pip version {pip_version.strip()!r}") from None
        if version < MIN_PIP:
            await self._step(
                f"pip {version} is older than {MIN_PIP}: upgrading it",
                self._pip("install", *self.pip.extra_args, "--upgrade", "pip"),
            )

    # --- pip -----------------------------------------------------------------------------------

    async def install(self, what: str, requirements: list[str], *options: str) -> None:
        argv = self._pip("install", *self.pip.extra_args, *options, *requirements)
        await self._step(what, argv)

    async def resolve_version(self, requirement: str) -> str:
        """The version pip would install for `requirement`, without installing it."""
        report = self.cwd / "pip-report.json"
        try:
            await self.install(
                f"finding the version pip would install for {requirement}",
                [requirement],
                "--dry-run",
                "--no-deps",
                "--ignore-installed",
                "--quiet",
                "--report",
                str(report),
            )
            data = json.loads(report.read_text())
            return str(data["install"][0]["metadata"]["version"])
        except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
            raise StepFailedError(f"cannot read pip's report for {requirement}: {error}") from None
        finally:
            report.unlink(missing_ok=True)

    async def freeze(self) -> str:
        output = await self._step(
            "recording the installed packages (pip freeze)",
            self._pip("freeze", "--all"),
            timeout=QUICK_TIMEOUT_SECONDS,
        )
        return output.strip() + "\n"

    async def find_manifest(self, distribution: str) -> Installed:
        output = await self._step(
            f"looking for {MANIFEST_NAME} in {distribution}",
            [str(self.python), "-I", "-c", _FIND_MANIFEST, distribution],
            timeout=QUICK_TIMEOUT_SECONDS,
            shown=[str(self.python), "-I", "-c", "<find the manifest>", distribution],
        )
        try:
            data = json.loads(output.strip().splitlines()[-1])
            manifests = [Path(os.path.abspath(item)) for item in data["manifests"]]
            name, version = str(data["name"]), str(data["version"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise StepFailedError(f"unexpected answer when looking for {MANIFEST_NAME}") from None
        if not manifests:
            raise StepFailedError(
                f"{distribution} {version} has no {MANIFEST_NAME}: it is not a Fractal task "
                "package (or its build left the manifest out of the package data)"
            )
        if len(manifests) > 1:
            listed = ", ".join(str(path) for path in manifests)
            raise StepFailedError(
                f"{distribution} has {len(manifests)} manifests ({listed}); need one"
            )
        return Installed(name, version, manifests[0])


def _copy_trees(sources: list[Path], site: Path) -> None:
    for source in sources:
        shutil.copytree(source, site / source.name, symlinks=True)


def requirements_from_freeze(freeze: str) -> list[str]:
    """The lines of a `pip freeze --all` to reinstall: pip itself comes with the new venv."""
    lines = []
    for line in freeze.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name = line.split("==", 1)[0].split(" @ ", 1)[0].strip().lower()
        if name == "pip":
            continue
        lines.append(line)
    return lines
