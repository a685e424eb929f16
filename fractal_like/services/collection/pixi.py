"""Building a pixi task group's environment (the collector's side of pixi collection).

From the archive kept in the group's folder: unpack its top folder as `source_dir`, run
the resource's pixi (`<versions[pixi_version]>/bin/pixi`, configured in the resource's
`tasks_pixi_config`) to install the workspace's environment, write an activation script
and a `project_python.sh` wrapper (the environment's Python, activated, which the tasks'
commands call), then read the package's manifest and register its tasks.

Every command is an argv list run confined like pip's (venv.run); pixi's settings reach it
through `env NAME=value` items, never a shell. The same build serves an admin's reset
(`reinstall_pixi`), which rebuilds an inactive group from its archive.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ...models import Profile, TaskGroup, UserOAuth
from ..tasks import ManifestError, build_tasks
from .collect import _read_manifest
from .context import ActivityRun, GroupView, load
from .files import UnsafeRemovalError, remove_folder
from .pixi_start import OPTIONS_FILE, PixiRequestError, pixi_config
from .place import LocalPlace, StepFailedError
from .venv import MANIFEST_NAME, QUICK_TIMEOUT_SECONDS, STEP_TIMEOUT_SECONDS, logged_step

SOURCE_DIR = "source_dir"
ACTIVATION_SCRIPT = "activate_project.sh"
PYTHON_WRAPPER = "project_python.sh"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Run by the environment's Python: where it is, and where the package's code is.
_PROBE = """\
import importlib, json, os, sys
package = importlib.import_module(sys.argv[1])
print(json.dumps({"python": sys.executable, "root": os.path.dirname(package.__file__)}))
"""


@dataclass(frozen=True)
class Built:
    package_root: Path  # the folder of the installed package (its manifest is there)
    wrapper: Path  # project_python.sh
    lock: str | None  # pixi.lock as installed


def _options(group: TaskGroup) -> bool:
    """Whether the install is --frozen to the archive's pixi.lock (what the request asked)."""
    try:
        data = json.loads((Path(group.path or "") / OPTIONS_FILE).read_text())
        return bool(data["use_pixi_lockfile"])
    except (OSError, ValueError, KeyError, TypeError):
        return True  # Fractal's default


async def _cache_dir(run: ActivityRun, default: str) -> str:
    """The profile's pixi_cache_dir, or the pixi version's own cache folder."""
    async with run.factory() as session:
        user = await session.get(UserOAuth, run.user_id)
        profile = await session.get(Profile, user.profile_id) if user and user.profile_id else None
        return (profile.pixi_cache_dir if profile else None) or default


def _extract(archive: Path, folder: Path, top: str) -> Path:
    """Unpack the archive's `top` folder as folder/source_dir (safely: no links out, no
    absolute paths, no device files); the new source folder."""
    source = folder / SOURCE_DIR
    staging = folder / ".unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            inside = f"{top}/"
            members = [m for m in tar.getmembers() if m.name.removeprefix("./").startswith(inside)]
            tar.extractall(staging, members=members, filter="data")
        unpacked = staging / top
        if not (unpacked / "pyproject.toml").is_file():
            raise StepFailedError(f"{archive.name} has no {top}/pyproject.toml")
        unpacked.rename(source)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return source


def _json_of(output: str, what: str) -> dict:
    """The last JSON object a command printed (pixi may print notes before it)."""
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    start = output.find("{")
    try:
        value, _ = json.JSONDecoder().raw_decode(output[start:]) if start >= 0 else (None, 0)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise StepFailedError(f"{what}: no JSON answer in its output")
    return value


def _activation_script(variables: dict) -> str:
    """`export` lines for the environment's variables, each value quoted."""
    lines = ["# Written by fractal-like from `pixi shell-hook --json`."]
    for name, value in sorted(variables.items()):
        if _ENV_NAME.match(str(name)) and isinstance(value, str):
            lines.append(f"export {name}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


def _wrapper_script(activation: Path, python: str) -> str:
    return (
        "#!/bin/bash\n"
        f"source {shlex.quote(str(activation))}\n"
        "export PYTHONNOUSERSITE=1\n"
        f'exec {shlex.quote(python)} "$@"\n'
    )


def _write_scripts(source: Path, variables: dict, python: str) -> Path:
    activation = source / ACTIVATION_SCRIPT
    activation.write_text(_activation_script(variables))
    wrapper = source / PYTHON_WRAPPER
    wrapper.write_text(_wrapper_script(activation, python))
    wrapper.chmod(0o755)  # the tasks' commands run it
    return wrapper


def _readable_by_all(folder: Path) -> None:
    """Tasks may run under other accounts (SLURM, a profile's user): the code is theirs to read."""
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(root) / name
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            extra = stat.S_IRGRP | stat.S_IROTH
            if path.is_dir() or mode & stat.S_IXUSR:
                extra |= stat.S_IXGRP | stat.S_IXOTH
            path.chmod(mode | extra)
    folder.chmod(folder.stat().st_mode | 0o055)


async def build_environment(
    run: ActivityRun, view: GroupView, *, recorded_lock: str | None = None
) -> Built:
    """Unpack the archive, install the environment with the resource's pixi, write the
    activation script and the Python wrapper. StepFailedError on any failure.

    `recorded_lock`: the pixi.lock of an earlier install, to install exactly that again
    (--frozen), as a reactivation does."""
    group, resource = view.group, view.resource
    if not group.path or not group.archive_path or not group.pixi_version:
        raise StepFailedError(f"task group {group.id} has no pixi archive to install from")
    try:
        config = pixi_config(resource)
    except PixiRequestError as error:
        raise StepFailedError(str(error)) from None
    home = config.versions.get(group.pixi_version)
    if home is None:
        raise StepFailedError(
            f"pixi {group.pixi_version} is no longer offered by resource {resource.name!r}"
        )
    pixi = str(Path(home) / "bin" / "pixi")
    if not os.access(pixi, os.X_OK):
        raise StepFailedError(f"{pixi} (pixi {group.pixi_version}) is not an executable file")
    folder, archive = Path(group.path), Path(group.archive_path)
    frozen = recorded_lock is not None or _options(group)
    top = archive.name.removesuffix(".tar.gz")
    await run.log.add(f"unpacking {top}/ of {archive} as {folder / SOURCE_DIR}")
    try:
        source = await asyncio.to_thread(_extract, archive, folder, top)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise StepFailedError(f"cannot unpack {archive}: {error}") from None
    run.touched = True
    if recorded_lock is not None:
        await asyncio.to_thread((source / "pixi.lock").write_text, recorded_lock)
        await run.log.add("installing the pixi.lock recorded at collection")
    manifest_path = str(source / "pyproject.toml")
    environment = config.DEFAULT_ENVIRONMENT
    settings = [
        "env",
        f"PIXI_HOME={home}",
        f"PIXI_CACHE_DIR={await _cache_dir(run, str(Path(home) / 'cache'))}",
        f"RATTLER_AUTH_FILE={Path(home) / 'credentials.json'}",
        f"TOKIO_WORKER_THREADS={config.TOKIO_WORKER_THREADS}",
        pixi,
    ]
    where = ["--manifest-path", manifest_path, "--environment", environment]

    async def step(what: str, *args: str, quick: bool = False) -> str:
        return await logged_step(
            run.log.add,
            what,
            [*settings, *args],
            place=LocalPlace(view.resource.tasks_local_dir, run.private_paths),
            cwd=folder,
            timeout=QUICK_TIMEOUT_SECONDS if quick else STEP_TIMEOUT_SECONDS,
        )

    await step(
        f"installing the pixi environment {environment!r}"
        + (" from pixi.lock (--frozen)" if frozen else ""),
        "install",
        *where,
        "--concurrent-solves",
        str(config.PIXI_CONCURRENT_SOLVES),
        "--concurrent-downloads",
        str(config.PIXI_CONCURRENT_DOWNLOADS),
        *(["--frozen"] if frozen else []),
    )
    hook = _json_of(
        await step("reading the environment's activation", "shell-hook", *where, "--json"),
        "pixi shell-hook",
    )
    variables = hook.get("environment_variables")
    if not isinstance(variables, dict):
        raise StepFailedError("pixi shell-hook --json gave no environment_variables")
    import_name = group.pkg_name.replace("-", "_")
    probe = _json_of(
        await step(
            f"finding the environment's Python and the package {import_name}",
            "run",
            *where,
            "python",
            "-c",
            _PROBE,
            import_name,
            quick=True,
        ),
        "the package probe",
    )
    python, root = probe.get("python"), probe.get("root")
    if not isinstance(python, str) or not isinstance(root, str) or not os.path.isabs(root):
        raise StepFailedError(f"unexpected answer of the package probe: {probe}")
    # The package's code answers the probe: its manifest is read only from inside the
    # workspace (its environment included), never from another place of the server.
    real_source = os.path.realpath(source)
    if os.path.commonpath([os.path.realpath(root), real_source]) != real_source:
        raise StepFailedError(
            f"the package {import_name} was found in {root[:300]}, outside {source}: its "
            "environment must stay in the workspace"
        )
    wrapper = await asyncio.to_thread(_write_scripts, source, variables, python)
    await asyncio.to_thread(_readable_by_all, source)
    lock = source / "pixi.lock"
    lock_text = await asyncio.to_thread(lock.read_text) if lock.is_file() else None
    await run.log.add(f"environment ready: the tasks run with {wrapper}")
    return Built(Path(root), wrapper, lock_text)


async def collect_pixi(run: ActivityRun) -> None:
    """The collection of a pixi task group; on failure `collect.undo_collect` removes it."""
    view = await load(run)
    group = view.group
    await run.log.add(
        f"collecting {group.pkg_name} {group.version} with pixi {group.pixi_version} "
        f"into {group.path}"
    )
    built = await build_environment(run, view)
    manifest = await asyncio.to_thread(_read_manifest, built.package_root / MANIFEST_NAME)
    try:
        tasks = build_tasks(manifest, str(built.wrapper), str(built.package_root), group.version)
    except ManifestError as error:
        raise StepFailedError(f"the manifest does not fit the package: {error}") from None
    async with run.factory() as session:
        saved = await session.get(TaskGroup, group.id)
        if saved is None:
            raise StepFailedError(f"task group {group.id} was removed during the collection")
        # A pixi group's record of what was installed is its pixi.lock (Fractal's env_info).
        saved.pip_freeze = built.lock
        for task in tasks:
            task.taskgroupv2_id = saved.id or 0
            session.add(task)
        await session.commit()
    names = ", ".join(task.name for task in tasks)
    await run.log.add(f"registered {len(tasks)} task(s): {names}")


async def reinstall_pixi(run: ActivityRun) -> None:
    """An admin's reset of an inactive pixi group (see pixi_start.start_pixi_reset): the
    environment rebuilt from the kept archive, then the group is active again."""
    view = await load(run)
    group = view.group
    await _remove_source(run, view)
    built = await build_environment(run, view)
    async with run.factory() as session:
        saved = await session.get(TaskGroup, group.id)
        if saved is None:
            raise StepFailedError(f"task group {group.id} was removed during the reset")
        saved.pip_freeze = built.lock
        saved.active = True
        await session.commit()
    await run.log.add(f"task group {group.id} is installed afresh: active")


async def deactivate_pixi(run: ActivityRun) -> None:
    """Remove the environment (source_dir); the archive and the recorded pixi.lock stay, so
    that reactivating installs the same environment again. The group is inactive already."""
    view = await load(run)
    run.touched = True
    await _remove_source(run, view)


async def reactivate_pixi(run: ActivityRun) -> None:
    """Rebuild a deactivated group's environment from its archive and recorded pixi.lock."""
    view = await load(run)
    group = view.group
    if not group.pip_freeze:
        raise StepFailedError(f"task group {group.id} has no pixi.lock to rebuild it from")
    await _remove_source(run, view)
    await build_environment(run, view, recorded_lock=group.pip_freeze)
    async with run.factory() as session:
        saved = await session.get(TaskGroup, group.id)
        if saved is None:
            raise StepFailedError(f"task group {group.id} was removed during the reactivation")
        saved.active = True
        await session.commit()
    await run.log.add(f"task group {group.id} is installed again: active")


async def undo_reinstall_pixi(run: ActivityRun) -> None:
    """A failed reset or reactivation leaves no half-built environment; the group stays
    inactive."""
    view = await load(run)
    await _remove_source(run, view)
    await run.log.add("the task group stays inactive")


async def _remove_source(run: ActivityRun, view: GroupView) -> None:
    if not view.group.path:
        return
    source = str(Path(view.group.path) / SOURCE_DIR)
    try:
        if await asyncio.to_thread(
            remove_folder, source, view.resource.tasks_local_dir, tidy_parents=False
        ):
            await run.log.add(f"removed {source}")
    except (UnsafeRemovalError, OSError) as error:
        raise StepFailedError(f"could not remove {source}: {error}") from None
