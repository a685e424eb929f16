"""A task group's virtual environment: creating it, pip in it, and what is installed in it.

Every command is an argv list run without a shell (or, on a login node, joined with shlex);
values from requests reach pip as single argv items. Where the commands run is the venv's
`Place` (place.py): this machine, or a slurm_ssh login node over SSH.

On this machine the environment is created without pip and seeded with a copy of the pip
that runs this server (as virtualenv seeds its environments): a fraction of a second
instead of the several seconds `ensurepip` spends installing and compiling pip. When the
server has no pip, or its pip does not support the chosen Python (its Requires-Python),
`ensurepip` is the fallback, as it is always on a login node.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import json
import os
import posixpath
import re
import shlex
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from .place import Place, StepFailedError
from .python import PipOptions, PythonChoice

__all__ = ["Installed", "StepFailedError", "Venv", "logged_step", "requirements_from_freeze"]

Log = Callable[[str], Awaitable[None]]

# pip 22.2 is the first with `install --dry-run --report`, used to resolve a version.
MIN_PIP = Version("22.2")
STEP_TIMEOUT_SECONDS = 3600.0
QUICK_TIMEOUT_SECONDS = 120.0
TAIL_LINES_OK = 15
TAIL_LINES_FAILED = 80
MANIFEST_NAME = "__FRACTAL_MANIFEST__.json"
MAX_REPORT_BYTES = 1_000_000  # pip's report of one requirement, without its dependencies

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


@dataclass(frozen=True)
class Installed:
    name: str
    version: str
    manifest: PurePosixPath  # at the venv's place


def _shown(argv: list[str]) -> str:
    """The command for the log, without credentials in URLs (e.g. a private index)."""
    return _URL_CREDENTIALS.sub(r"\1***@", shlex.join(argv))


def _tail(text: str, lines: int) -> str:
    kept = _URL_CREDENTIALS.sub(r"\1***@", text).rstrip().splitlines()
    if len(kept) > lines:
        kept = [f"[... {len(kept) - lines} lines above ...]", *kept[-lines:]]
    return "\n".join(kept)


async def logged_step(
    log: Log,
    what: str,
    argv: list[str],
    *,
    place: Place,
    cwd: str | PurePath,
    timeout: float = STEP_TIMEOUT_SECONDS,
    shown: list[str] | None = None,
) -> str:
    """One command of a piece of work: logged, run at its place (confined, here), its
    output's tail logged; StepFailedError when it fails. Returns its whole output."""
    await log(f"{what}\n$ {_shown(shown or argv)}")
    try:
        code, output = await place.run(argv, cwd=str(cwd), timeout=timeout)
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
    """The venv of one task group at its place, with the resource's pip options and a log.

    Paths are POSIX paths of the place (this machine or a login node): nothing here looks at
    them on this machine unless the place is this machine."""

    def __init__(self, path: PurePath, pip: PipOptions, log: Log, place: Place, cwd: PurePath):
        self.path = PurePosixPath(path)
        self.pip = pip
        self.log = log
        self.place = place
        self.cwd = PurePosixPath(cwd)

    @property
    def python(self) -> PurePosixPath:
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
            self.log, what, argv, place=self.place, cwd=self.cwd, timeout=timeout, shown=shown
        )

    def _pip(self, *args: str) -> list[str]:
        argv = [str(self.python), "-m", "pip", args[0], *_PIP_GENERAL]
        if self.pip.cache_dir:
            argv += ["--cache-dir", self.pip.cache_dir]
        return [*argv, *args[1:]]

    # --- Creating ------------------------------------------------------------------------------

    async def create(self, python: PythonChoice) -> None:
        if await self.place.exists(str(self.path)):
            raise StepFailedError(f"{self.path} already exists: refusing to install over it")
        if self.place.remote:
            # The server's pip is on this machine, not on the login node: there the venv
            # gets its pip from the cluster Python's own ensurepip (`venv`'s default).
            await self._step(
                f"creating the environment with {python.interpreter} (pip from ensurepip)",
                [python.interpreter, "-m", "venv", str(self.path)],
                timeout=QUICK_TIMEOUT_SECONDS,
            )
            version: str | None = await self._pip_version()
        else:
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
                version = await self._pip_version()
        assert version is not None
        await self._upgrade_pip_if_old(version)

    async def _pip_version(self) -> str:
        output = await self._step(
            "checking pip",
            [str(self.python), "-m", "pip", "--version"],
            timeout=QUICK_TIMEOUT_SECONDS,
        )
        return output.split()[1] if len(output.split()) > 1 else output

    async def _seed_from_server(self, python_version: str) -> str | None:
        """Copy the server's pip into the venv (on this machine) when it supports that
        Python; its version."""
        source = _server_pip()
        if source is None or not source.requires_python.contains(python_version):
            return None
        code, output = await self.place.run(
            [str(self.python), "-I", "-c", _PURELIB],
            cwd=str(self.cwd),
            timeout=QUICK_TIMEOUT_SECONDS,
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
        # In the probe's own folder, removed with it (see collect._resolve_version).
        report = str(self.cwd / "pip-report.json")
        try:
            await self.install(
                f"finding the version pip would install for {requirement}",
                [requirement],
                "--dry-run",
                "--no-deps",
                "--ignore-installed",
                "--quiet",
                "--report",
                report,
            )
            data = json.loads(await self.place.read_bytes(report, MAX_REPORT_BYTES))
            return str(data["install"][0]["metadata"]["version"])
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise StepFailedError(f"cannot read pip's report for {requirement}: {error}") from None

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
            manifests = [PurePosixPath(posixpath.normpath(item)) for item in data["manifests"]]
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
