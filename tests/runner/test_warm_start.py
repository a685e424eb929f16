"""Warm start through the batch worker and the local executor: real processes, real task
scripts, no mocks.

Every task of tests/support/tasks_pkg runs once warm and once cold, through each; outputs, exit
codes and logs must match (after normalising pids, times and the two batches' folders), and
each unit must say it ran warm or cold. Then, through the batch worker, isolation:
a killed child, a killed parent, stop, fail-fast, and which units may run warm at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fractal_like.runner import node
from fractal_like.runner.executors.base import TaskInfo, UnitResult
from fractal_like.runner.executors.local import LocalExecutor
from fractal_like.runner.node.batch import check_batch
from fractal_like.runner.node.report import LOST_EXIT_CODE
from fractal_like.runner.node.worker import EXIT_STOPPED
from fractal_like.runner.slurm.executor import SlurmExecutor
from fractal_like.runner.taskcall import UnitCall, UnitFiles
from fractal_like.runner.warm_choice import warm_wanted

from ..support.runner_support import node_batch

REPO = Path(__file__).resolve().parents[2]
PKG_ROOT = REPO / "tests" / "support" / "tasks_pkg" / "fl_test_tasks"
MANIFEST = json.loads((PKG_ROOT / "__FRACTAL_MANIFEST__.json").read_text())
PYTHON = sys.executable
SYSTEM_PYTHON = Path("/usr/bin/python3")

# Arguments for every script of the package, `{root}` being the batch's own folder.
ARGS: dict[str, dict[str, Any]] = {
    "create_images.py": {"zarr_dir": "{root}/zarr", "num_images": 2},
    "measure_intensity.py": {"zarr_url": "{root}/zarr/img1"},
    "project_to_2d.py": {"zarr_url": "{root}/zarr/img1"},
    "aggregate.py": {"zarr_urls": ["{root}/zarr/img1"], "zarr_dir": "{root}/zarr"},
    "illumination_correction_init.py": {"zarr_urls": ["{root}/zarr/a"], "zarr_dir": "{root}"},
    "illumination_correction_compute.py": {
        "zarr_url": "{root}/zarr/img2",
        "init_args": {"suffix": "warm"},
    },
    "create_images_compound_init.py": {"zarr_dir": "{root}/zarr"},
    "create_images_compound_compute.py": {
        "zarr_url": "{root}/zarr/B/1/0",
        "init_args": {"well": "B01", "index": 1},
    },
    "fail.py": {"zarr_url": "{root}/zarr/img1"},  # raises: traceback, exit code 1
    "exit_code.py": {"zarr_urls": [], "zarr_dir": "{root}", "code": 3},  # sys.exit(3)
    "sleep.py": {"zarr_url": "{root}/zarr/sleepy", "seconds": 0.2},
    "allocate_memory.py": {"zarr_url": "{root}/zarr/img1", "megabytes": 16, "hold_seconds": 0},
    "noisy_output.py": {"zarr_url": "{root}/zarr/img1", "lines": 20000},
    "no_output.py": {"zarr_url": "{root}/zarr/img1"},
    "bad_output.py": {"zarr_url": "{root}/zarr/img1"},
    "bad_output_extra_key.py": {"zarr_url": "{root}/zarr/img1"},
    "use_threads.py": {"zarr_url": "{root}/zarr/img1"},
    "change_cwd_env.py": {"zarr_url": "{root}/zarr/moved"},
    "dump_env.py": {"zarr_url": "{root}/zarr/img1"},
}
# Extra cases: sys.exit(<str>) from the contract (unknown argument) and a second unit of a
# script whose first unit changed folder and environment (it must not see those changes).
EXTRA = [
    ("measure_intensity.py", {"bogus": 1}),
    ("change_cwd_env.py", {"zarr_url": "{root}/zarr/moved-again"}),
]
NORMALISE = [
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"), "<time>"),
    (re.compile(r"pid \d+"), "pid <pid>"),
    (re.compile(r"after \d+\.\d+ s"), "after <seconds> s"),
    (re.compile(r"max_rss_kb=\d+"), "max_rss_kb=<kb>"),
]


def scripts_of_manifest() -> set[str]:
    return {
        task[key]
        for task in MANIFEST["task_list"]
        for key in ("executable_parallel", "executable_non_parallel")
        if task.get(key)
    }


def fill(value: Any, root: Path) -> Any:
    return json.loads(json.dumps(value).replace("{root}", str(root)))


def unit(
    folder: Path,
    unit_id: int,
    argv: list[str],
    args: dict[str, Any],
    warm_start: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / f"par_{unit_id:06d}"
    return {
        "unit_id": unit_id,
        "argv": argv,
        "args": args,
        "args_file": f"{prefix}-args.json",
        "out_file": f"{prefix}-metadiff.json",
        "log_file": f"{prefix}-log.txt",
        "exit_code_file": f"{prefix}-exitcode",
        "result_file": f"{prefix}-result.json",
        "warm": warm_start,
        **extra,
    }


def write_batch(path: Path, units: list[dict[str, Any]], **top: Any) -> Path:
    path.write_text(json.dumps(node_batch(units, **top)))
    return path


def start_worker(batch: Path, argv: list[str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv or [PYTHON, "-m", "fractal_like.runner.node", str(batch)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_worker(batch: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "fractal_like.runner.node", str(batch)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def result(entry: dict[str, Any]) -> dict[str, Any]:
    return json.loads(Path(entry["result_file"]).read_text())


def exit_code(entry: dict[str, Any]) -> str | None:
    path = Path(entry["exit_code_file"])
    return path.read_text() if path.exists() else None


def normalised(text: str, root: Path) -> str:
    text = text.replace(str(root), "<root>")
    for pattern, replacement in NORMALISE:
        text = pattern.sub(replacement, text)
    return text


def wait_for(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def parent_pid_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def read_pid(path: Path) -> int:
    wait_for(lambda: path.exists() and path.read_text().strip())
    return int(path.read_text())


# ---------------------------------------------------------------------------- the stdlib rule


# ---------------------------------------------------------------------------- equivalence


BACKENDS = ["worker", "local"]  # the node worker alone (as on SLURM), the local executor


def run_units(
    units: list[dict[str, Any]], backend: str, warm_start: bool, parallelism: int = 2
) -> list[bool | None]:
    """Run the units (all in one folder) through the batch worker or the local executor;
    whether each one ran warm, as the worker's result file or the executor's result says."""
    if backend == "worker":
        batch = Path(units[0]["log_file"]).parent / "batch.json"
        done = run_worker(write_batch(batch, units, parallelism=parallelism))
        assert done.returncode == 0, done.stderr
        return [result(entry)["warm"] for entry in units]
    # The files the worker's units name, as UnitFiles names them for the local launcher.
    files = [UnitFiles(Path(e["log_file"]).parent, f"par_{e['unit_id']:06d}") for e in units]
    keys = ("args_file", "out_file", "log_file", "exit_code_file")
    for entry, named in zip(units, files, strict=True):
        paths = (named.args, named.output, named.log, named.exit_code)
        assert [str(path) for path in paths] == [entry[key] for key in keys]
    calls = [
        UnitCall(e["unit_id"], shlex.join(e["argv"]), e["args"], named, e.get("env") or {})
        for e, named in zip(units, files, strict=True)
    ]
    reported: list[UnitResult] = []

    async def go() -> None:
        stop = asyncio.Event()
        task = TaskInfo(1, 0, "test", warm_start=warm_start)
        await LocalExecutor(parallelism).run(task, calls, reported.append, stop, False)

    asyncio.run(go())
    results = {r.unit_id: r for r in reported}
    assert sorted(r.unit_id for r in reported) == [e["unit_id"] for e in units], "each once"
    for entry in units:  # the reported exit code is the recorded one
        assert results[entry["unit_id"]].exit_code == int(exit_code(entry) or -1)
    return [results[entry["unit_id"]].warm for entry in units]


def run_every_task(
    root: Path, warm_start: bool, backend: str
) -> tuple[list[dict[str, Any]], list[bool | None]]:
    cases = [(name, ARGS[name]) for name in sorted(ARGS)] + EXTRA
    units = []
    for number, (name, args) in enumerate(cases, start=1):
        extra: dict[str, Any] = {}
        if name == "change_cwd_env.py":
            # Units start in their task's folder (the task changes folder itself).
            workdir = root / "task"
            workdir.mkdir(parents=True, exist_ok=True)
            extra = {"cwd": str(workdir), "env": {"FL_TEST_VALUE": f"unit {number}"}}
        units.append(
            unit(
                root / "task",
                number,
                [PYTHON, str(PKG_ROOT / name)],
                fill(args, root),
                warm_start,
                **extra,
            )
        )
    return units, run_units(units, backend, warm_start)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_task_gives_the_same_results_warm_and_cold(tmp_path: Path, backend: str) -> None:
    assert set(ARGS) == scripts_of_manifest(), "every script of the package is compared"
    warm_root, cold_root = tmp_path / "warm", tmp_path / "cold"
    warm_units, warm_flags = run_every_task(warm_root, True, backend)
    cold_units, cold_flags = run_every_task(cold_root, False, backend)
    assert warm_flags == [True] * len(warm_units), "every unit ran warm"
    assert cold_flags == [False] * len(cold_units), "every unit ran cold"
    codes = {}
    for hot, cold in zip(warm_units, cold_units, strict=True):
        name = Path(hot["argv"][1]).name
        assert exit_code(hot) == exit_code(cold), name
        codes[name] = int(exit_code(hot) or -1)
        for key in ("out_file", "log_file"):
            hot_path, cold_path = Path(hot[key]), Path(cold[key])
            assert hot_path.exists() == cold_path.exists(), (name, key)
            if hot_path.exists():
                assert normalised(hot_path.read_text(), warm_root) == normalised(
                    cold_path.read_text(), cold_root
                ), (name, key)
    # The comparison covered the cases it claims to.
    assert codes["fail.py"] == 1 and codes["exit_code.py"] == 3
    assert codes["use_threads.py"] == 0 and codes["noisy_output.py"] == 0
    fail_log = Path(warm_units[sorted(ARGS).index("fail.py")]["log_file"]).read_text()
    assert 'fail.py", line' in fail_log and "RuntimeError: planned failure" in fail_log
    assert "warm.py" not in fail_log, "the traceback starts at the script, as in a cold run"
    unknown = Path(warm_units[-2]["log_file"]).read_text()
    assert "invalid arguments for task measure_intensity" in unknown
    noisy = Path(warm_units[sorted(ARGS).index("noisy_output.py")]["log_file"]).read_text()
    assert noisy.count("noisy stdout line") == noisy.count("noisy stderr line") == 10000
    for unit_ in (warm_units[sorted(ARGS).index("change_cwd_env.py")], warm_units[-1]):
        output = json.loads(Path(unit_["out_file"]).read_text())
        attributes = output["image_list_updates"][0]["attributes"]
        assert attributes["started_in"] == unit_["cwd"]
        assert attributes["value"] == unit_["env"]["FL_TEST_VALUE"]
    threads = json.loads(
        Path(warm_units[sorted(ARGS).index("use_threads.py")]["out_file"]).read_text()
    )
    assert threads["image_list_updates"][0]["attributes"] == {
        "threads": 14,
        "fork": 14,
        "spawn": 14,
    }


def test_a_script_that_does_not_compile_runs_cold_with_the_same_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def (:\n")
    entry = unit(tmp_path / "task", 1, [PYTHON, str(broken)], {})
    done = run_worker(write_batch(tmp_path / "b.json", [entry]))
    assert done.returncode == 0, done.stderr
    assert exit_code(entry) == "1\n" and result(entry)["warm"] is False
    assert "SyntaxError" in Path(entry["log_file"]).read_text()


# ---------------------------------------------------------------------------- which units


@pytest.mark.parametrize(
    "argv",
    [
        [PYTHON, "-u", str(PKG_ROOT / "no_output.py")],  # an option: not the plain form
        ["python3", str(PKG_ROOT / "no_output.py")],  # a relative interpreter
        [PYTHON, "no_output.py"],  # a relative script
        ["/bin/sh", "-c", "exit 0", "sh"],  # not Python at all
    ],
    ids=["option", "relative-python", "relative-script", "shell"],
)
def test_other_command_forms_run_cold(tmp_path: Path, argv: list[str]) -> None:
    # A unit starts in its folder: the relative script must lie there.
    (tmp_path / "task").mkdir()
    for name in ("no_output.py", "_contract.py"):
        shutil.copyfile(PKG_ROOT / name, tmp_path / "task" / name)
    entry = unit(tmp_path / "task", 1, argv, {"zarr_url": str(tmp_path)})
    done = run_worker(write_batch(tmp_path / "b.json", [entry]))
    assert done.returncode == 0, done.stderr
    assert exit_code(entry) == "0\n"
    assert result(entry)["warm"] is False
    line = {"id": 1, "code": 0, "reason": None, "warm": False}
    assert json.loads(done.stdout.splitlines()[0]) == line


def test_warm_false_in_the_batch_runs_cold(tmp_path: Path) -> None:
    entry = unit(tmp_path / "t", 1, [PYTHON, str(PKG_ROOT / "no_output.py")], {"zarr_url": "x"})
    entry["warm"] = False
    run_worker(write_batch(tmp_path / "b.json", [entry]))
    assert exit_code(entry) == "0\n" and result(entry)["warm"] is False


def test_the_meta_switch_and_the_command_form_set_warm_in_the_batch(tmp_path: Path) -> None:
    assert warm_wanted() and warm_wanted({}, {"mem": 1})
    assert not warm_wanted({"warm_start": False})
    assert warm_wanted({"warm_start": False}, {"warm_start": True}), "the last one wins"
    assert not warm_wanted({"warm_start": True}, {"warm_start": False})
    files = UnitFiles(tmp_path, "par_000001")
    plain = UnitCall(1, f"{PYTHON} {PKG_ROOT / 'no_output.py'}", {}, files)
    other = UnitCall(2, f"{PYTHON} -u {PKG_ROOT / 'no_output.py'}", {}, files)
    for meta, expected in (({}, [True, False]), ({"warm_start": False}, [False, False])):
        document = SlurmExecutor._batch_document([plain, other], 2, warm_wanted(meta))
        assert [command["warm"] for command in document["commands"]] == expected
        check_batch(document)


# ---------------------------------------------------------------------------- isolation


PPID_TASK = """\
import json, os, sys, time
args = json.load(open(sys.argv[sys.argv.index("--args-json") + 1]))
print("ppid", os.getppid(), flush=True)
if args.get("pid_file"):
    with open(args["pid_file"] + ".tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(args["pid_file"] + ".tmp", args["pid_file"])
if args.get("grandchild"):
    import subprocess
    child = subprocess.Popen(["sleep", "60"])
    with open(args["grandchild"], "w") as handle:
        handle.write(str(child.pid))
time.sleep(args.get("sleep", 0))
sys.exit(args.get("code", 0))
"""


@pytest.fixture
def ppid_task(tmp_path: Path) -> list[str]:
    path = tmp_path / "ppid_task.py"
    path.write_text(PPID_TASK)
    return [PYTHON, str(path)]


@pytest.fixture
def leftovers(tmp_path: Path) -> Any:
    yield
    for path in tmp_path.glob("**/*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
            os.killpg(int(path.read_text()), signal.SIGKILL)


def test_a_sigkilled_child_fails_only_its_unit(
    tmp_path: Path, ppid_task: list[str], leftovers: None
) -> None:
    victim = unit(tmp_path / "t", 1, ppid_task, {"sleep": 60, "pid_file": str(tmp_path / "v.pid")})
    others = [unit(tmp_path / "t", n, ppid_task, {"sleep": 0.3}) for n in (2, 3, 4)]
    worker = start_worker(write_batch(tmp_path / "b.json", [victim, *others], parallelism=2))
    pid = read_pid(tmp_path / "v.pid")
    parent = parent_pid_of(pid)
    os.kill(pid, signal.SIGKILL)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    assert exit_code(victim) == "137\n"
    assert result(victim)["signal"] == "SIGKILL" and result(victim)["warm"] is True
    for entry in others:
        assert exit_code(entry) == "0\n" and result(entry)["warm"] is True
        assert logged_parent(entry) == parent, "one parent ran them all: it did not notice"


def logged_parent(entry: dict[str, Any]) -> int:
    """The warm parent of a unit of PPID_TASK, which prints its parent's pid first."""
    found = re.search(r"ppid (\d+)", Path(entry["log_file"]).read_text())
    assert found is not None
    return int(found.group(1))


def test_a_killed_parent_fails_its_units_and_is_restarted(
    tmp_path: Path, ppid_task: list[str], leftovers: None
) -> None:
    pid_file = tmp_path / "long.pid"
    long = unit(tmp_path / "t", 1, ppid_task, {"sleep": 60, "pid_file": str(pid_file)})
    after = unit(tmp_path / "t", 2, ppid_task, {})
    worker = start_worker(write_batch(tmp_path / "b.json", [long, after], parallelism=1))
    child = read_pid(pid_file)
    first_parent = parent_pid_of(child)
    os.kill(first_parent, signal.SIGKILL)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    assert exit_code(long) == f"{LOST_EXIT_CODE}\n"
    assert "warm parent" in result(long)["error"] and "SIGKILL" in result(long)["error"]
    assert "warm parent process running the unit died" in Path(long["log_file"]).read_text()
    wait_for(lambda: gone(child))  # the orphan was killed with its parent's death
    assert exit_code(after) == "0\n" and result(after)["warm"] is True
    second_parent = logged_parent(after)
    assert second_parent != first_parent, "a new warm parent ran the next unit"


def test_stop_kills_warm_children_and_their_groups(
    tmp_path: Path, ppid_task: list[str], leftovers: None
) -> None:
    units = [
        unit(
            tmp_path / "t",
            n,
            ppid_task,
            {
                "sleep": 60,
                "pid_file": str(tmp_path / f"u{n}.pid"),
                "grandchild": str(tmp_path / f"g{n}"),
            },
        )
        for n in (1, 2)
    ]
    worker = start_worker(write_batch(tmp_path / "b.json", units, parallelism=2))
    for n in (1, 2):
        wait_for(lambda n=n: (tmp_path / f"g{n}").exists() and (tmp_path / f"g{n}").read_text())
    pids = [read_pid(tmp_path / f"u{n}.pid") for n in (1, 2)]
    grandchildren = [int((tmp_path / f"g{n}").read_text()) for n in (1, 2)]
    worker.send_signal(signal.SIGTERM)
    worker.communicate(timeout=30)
    assert worker.returncode == EXIT_STOPPED
    for pid in pids + grandchildren:
        wait_for(lambda pid=pid: gone(pid))
    assert all(exit_code(entry) is None for entry in units), "killed units did not finish"


def test_fail_fast_kills_running_warm_units(
    tmp_path: Path, ppid_task: list[str], leftovers: None
) -> None:
    long = unit(
        tmp_path / "t",
        1,
        ppid_task,
        {"sleep": 60, "pid_file": str(tmp_path / "l.pid"), "grandchild": str(tmp_path / "g")},
    )
    failing = unit(tmp_path / "t", 2, ppid_task, {"sleep": 0.5, "code": 4})
    never = unit(tmp_path / "t", 3, ppid_task, {})
    batch = write_batch(tmp_path / "b.json", [long, failing, never], parallelism=2, fail_fast=True)
    done = run_worker(batch)
    assert done.returncode == 0, done.stderr
    assert exit_code(failing) == "4\n" and result(failing)["warm"] is True
    assert exit_code(long) is None and exit_code(never) is None
    wait_for(lambda: gone(int((tmp_path / "l.pid").read_text())))
    wait_for(lambda: gone(int((tmp_path / "g").read_text())))


def test_the_copies_beside_a_job_run_warm_with_the_system_python(tmp_path: Path) -> None:
    if not SYSTEM_PYTHON.exists():
        pytest.skip("no system python3")
    copy = node.install(str(tmp_path))
    entry = unit(
        tmp_path / "t",
        1,
        [str(SYSTEM_PYTHON), str(PKG_ROOT / "measure_intensity.py")],
        {"zarr_url": str(tmp_path / "img")},
    )
    batch = write_batch(tmp_path / "b.json", [entry])
    done = subprocess.run(
        node.worker_argv(str(SYSTEM_PYTHON), copy, str(batch)),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert exit_code(entry) == "0\n" and result(entry)["warm"] is True


# ---------------------------------------------------------------------------- end to end


def warm_by_task(settings: Any, scene: Any, timeout: float) -> dict[str, set[bool]]:
    """Run a job of four tasks, warm_start off in the task's own meta (as a manifest would
    set it) of one and in the workflow task's meta of another; each task's history `warm`."""
    from sqlalchemy import create_engine, text

    from fractal_like.db import sync_url

    from ..support.runner_support import run_until_final

    engine = create_engine(sync_url(settings.database_url))
    try:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE taskv2 SET meta_parallel = :meta WHERE id = :id"),
                {"meta": json.dumps({"warm_start": False}), "id": scene.tasks["no_output"]["id"]},
            )
        job_id = scene.submit_steps(
            ("create_images", {"args_non_parallel": {"num_images": 3}}),
            ("measure_intensity", {}),  # warm by default
            ("project_to_2d", {"meta_parallel": {"warm_start": False}}),
            ("no_output", {}),
        )
        statuses = run_until_final(settings, [job_id], timeout=timeout)
        assert statuses[job_id] == "done", scene.job(job_id)["log"]
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT r.workflowtask_dump, u.warm FROM historyunit u "
                    "JOIN historyrun r ON r.id = u.history_run_id WHERE r.job_id = :j"
                ),
                {"j": job_id},
            ).all()
    finally:
        engine.dispose()
    found: dict[str, set[bool]] = {}
    for dump, warm_flag in rows:
        dump = json.loads(dump) if isinstance(dump, str) else dump
        found.setdefault(dump["task_name"], set()).add(bool(warm_flag))
    return found


WARM_BY_TASK = {
    "create_images": {True},
    "measure_intensity": {True},
    "project_to_2d": {False},
    "no_output": {False},
}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_history_rows_say_warm_or_cold_on_slurm(
    api: Any, settings: Any, slurm_conf: str, slurm_user: tuple[str, int, int]
) -> None:
    from ..support.slurm_scene import cleanup, slurm_scene

    scene = slurm_scene(api, slurm_user)
    try:
        assert warm_by_task(settings, scene, timeout=180) == WARM_BY_TASK
    finally:
        cleanup(scene)


def test_history_rows_say_warm_or_cold_locally(api: Any, settings: Any) -> None:
    from ..support.runner_support import new_scene

    assert warm_by_task(settings, new_scene(api), timeout=60) == WARM_BY_TASK


ODD_SCRIPTS = {
    # No main guard: the top level is the work. Annotations are evaluated (no future import
    # of warm.py may leak into the script's compilation).
    "unguarded.py": "import sys\ndef f(x: int): pass\nprint(f.__annotations__, sys.argv[1:2])\n",
    # A guard, and a head that fails when imported: the parent cannot preload it.
    "head_fails.py": "raise RuntimeError('at import')\nif __name__ == '__main__':\n    pass\n",
    # Code after the guard runs in the child too, in order.
    "after_guard.py": (
        "from __future__ import annotations\nimport sys\nif __name__ == '__main__':\n"
        "    def g(y: int): pass\n    print(g.__annotations__)\nprint('after', __name__)\n"
        "sys.exit('done with a message')\n"
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_odd_scripts_run_warm_or_cold_as_a_cold_run_would(tmp_path: Path, backend: str) -> None:
    for name, source in ODD_SCRIPTS.items():
        (tmp_path / name).write_text(source)
    logs = {}
    for warm_start in (True, False):
        root = tmp_path / str(warm_start)
        entries = [
            unit(root, n, [PYTHON, str(tmp_path / name)], {}, warm_start)
            for n, name in enumerate(ODD_SCRIPTS, start=1)
        ]
        flags = run_units(entries, backend, warm_start)
        logs[warm_start] = [
            (exit_code(entry), normalised(Path(entry["log_file"]).read_text(), root))
            for entry in entries
        ]
        # head_fails.py cannot be preloaded by a warm parent: it runs cold.
        assert flags == ([True, False, True] if warm_start else [False, False, False])
    assert logs[True] == logs[False]
    assert "{'x': <class 'int'>}" in logs[True][0][1]
    assert logs[True][2] == ("1\n", "{'y': 'int'}\nafter __main__\ndone with a message\n")
