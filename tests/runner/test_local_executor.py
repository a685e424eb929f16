"""The local executor and its launcher process, driven directly (no database, no API).

Tests that run a Python task script run twice: warm (units forked by a warm parent, the
default for `<python> <script.py>` commands) and cold (`warm_start` off); both must behave
the same."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fractal_like
from fractal_like.runner.executors.base import TaskInfo, UnitResult
from fractal_like.runner.executors.local import (
    LAUNCHER_PREFIX,
    SKIPPED,
    STOPPED,
    LocalExecutor,
    _live_launcher,
)
from fractal_like.runner.taskcall import UnitCall, UnitFiles, read_exit_code

# A unit following the contract; what it does is driven by its args.
TASK = """\
import json, os, signal, subprocess, sys, time
args = json.load(open(sys.argv[sys.argv.index("--args-json") + 1]))
out = sys.argv[sys.argv.index("--out-json") + 1]
marker = args.get("marker")
if marker:
    with open(marker, "a") as handle:
        handle.write(f"{os.getpid()}\\n")
print("log of", args["name"], flush=True)
if args.get("grandchild"):
    child = subprocess.Popen(["sleep", "60"])
    open(args["grandchild"], "w").write(str(child.pid))
time.sleep(args.get("sleep", 0))
if args.get("signal"):
    os.kill(os.getpid(), args["signal"])
json.dump({"env": os.environ.get("UNIT_ENV"), "cwd": os.getcwd()}, open(out, "w"))
sys.exit(args.get("exit_code", 0))
"""


@pytest.fixture(params=[True, False], ids=["warm", "cold"])
def warm(request: pytest.FixtureRequest) -> bool:
    return request.param


@pytest.fixture
def command(tmp_path: Path) -> str:
    path = tmp_path / "task.py"
    path.write_text(TASK)
    return f"{sys.executable} {path}"


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "1_task"
    path.mkdir()
    yield path
    # Never leave a unit behind, whatever the test did.
    for pid_file in tmp_path.glob("grandchild-*"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def task_info(warm: bool) -> TaskInfo:
    """A task as the workflow run describes it; `warm`: its warm_start meta."""
    return TaskInfo(run_id=1, order=0, name="test", warm_start=warm)


def calls_of(folder: Path, command: str, args: list[dict[str, Any]]) -> list[UnitCall]:
    return [
        UnitCall(
            100 + index,
            command,
            {"name": f"u{index}", **extra},
            UnitFiles(folder, f"par_{index:06d}"),
        )
        for index, extra in enumerate(args)
    ]


def run(
    calls: list[UnitCall],
    parallelism: int = 2,
    stop: asyncio.Event | None = None,
    fail_fast: bool = True,
    warm: bool = True,
    memory_limit_mb: int | None = None,
) -> dict[int, UnitResult]:
    results: dict[int, UnitResult] = {}

    def on_result(result: UnitResult) -> None:
        assert result.unit_id not in results, "a unit was reported twice"
        results[result.unit_id] = result

    async def go() -> None:
        executor = LocalExecutor(parallelism, memory_limit_mb)
        await executor.run(task_info(warm), calls, on_result, stop or asyncio.Event(), fail_fast)

    asyncio.run(go())
    return results


def ended(unit_id: int, code: int | None, reason: str | None, warm: bool) -> UnitResult:
    """What the executor reports for a unit that ran (warm or cold) and ended so."""
    return UnitResult(unit_id, code, reason, warm=warm)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_units_run_with_the_contract_files(folder: Path, command: str, warm: bool) -> None:
    calls = calls_of(folder, command, [{}, {"exit_code": 3}, {}])
    calls[2].env = {"UNIT_ENV": "value with spaces"}
    results = run(calls, fail_fast=False, warm=warm)
    assert all(r.warm is warm for r in results.values())
    assert {r.unit_id: r.exit_code for r in results.values()} == {100: 0, 101: 3, 102: 0}
    assert all(r.reason is None for r in results.values())
    first, second, third = (call.files for call in calls)
    assert json.loads(first.args.read_text()) == {"name": "u0"}
    assert "log of u0" in first.log.read_text()
    assert first.exit_code.read_text() == "0\n" and second.exit_code.read_text() == "3\n"
    output = json.loads(third.output.read_text())
    assert output == {"env": "value with spaces", "cwd": str(folder)}
    assert json.loads(first.output.read_text())["env"] is None
    assert not first.pid.exists(), "the launcher records its own pid, not one per unit"
    assert int(UnitFiles(folder, LAUNCHER_PREFIX).pid.read_text()) > 0
    assert not list(folder.glob("launcher-batch-*")), "the batch file is removed once read"


def test_a_program_that_cannot_start_fails_like_under_a_shell(folder: Path) -> None:
    calls = calls_of(folder, "no-such-program-here --flag", [{}])
    results = run(calls)
    assert results[100].exit_code == 127
    assert "cannot run no-such-program-here" in calls[0].files.log.read_text()
    assert read_exit_code(calls[0].files) == 127


def test_a_unit_killed_by_a_signal_records_128_plus_the_signal(
    folder: Path, command: str, warm: bool
) -> None:
    calls = calls_of(folder, command, [{"signal": int(signal.SIGKILL)}])
    results = run(calls, warm=warm)
    assert results[100].exit_code == 128 + signal.SIGKILL
    assert results[100].reason == "killed by SIGKILL"
    assert read_exit_code(calls[0].files) == 128 + signal.SIGKILL


def test_fail_fast_stops_the_other_units_promptly(folder: Path, command: str, warm: bool) -> None:
    slow = {"sleep": 30}
    calls = calls_of(folder, command, [slow, {"exit_code": 1, "sleep": 0.5}, slow, slow, slow])
    started = time.monotonic()
    results = run(calls, parallelism=2, warm=warm)
    assert time.monotonic() - started < 15
    assert results[101] == ended(101, 1, None, warm)
    assert results[100] == ended(100, None, STOPPED, warm)  # killed: no exit-code file
    assert read_exit_code(calls[0].files) is None
    for unit_id in (102, 103, 104):
        assert results[unit_id] == UnitResult(unit_id, None, SKIPPED)
        assert not calls[unit_id - 100].files.args.exists(), "never started"


def test_without_fail_fast_every_unit_runs(folder: Path, command: str, warm: bool) -> None:
    calls = calls_of(folder, command, [{"exit_code": 1}, {}, {"exit_code": 2}, {}])
    results = run(calls, parallelism=1, fail_fast=False, warm=warm)
    assert [results[100 + i].exit_code for i in range(4)] == [1, 0, 2, 0]


def test_stop_kills_each_units_process_group(
    tmp_path: Path, folder: Path, command: str, warm: bool
) -> None:
    grandchildren = [tmp_path / f"grandchild-{i}" for i in range(2)]
    stubborn = [{"sleep": 60, "grandchild": str(path)} for path in grandchildren]
    calls = calls_of(folder, command, [*stubborn, {}])

    async def go() -> dict[int, UnitResult]:
        stop = asyncio.Event()
        results: dict[int, UnitResult] = {}
        task = asyncio.create_task(
            LocalExecutor(2).run(
                task_info(warm), calls, lambda r: results.__setitem__(r.unit_id, r), stop
            )
        )
        deadline = time.monotonic() + 30
        while not all(path.exists() and path.read_text() for path in grandchildren):
            assert time.monotonic() < deadline, "the units did not start"
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 20)
        return results

    results = asyncio.run(go())
    assert results[100] == ended(100, None, STOPPED, warm)
    assert results[101] == ended(101, None, STOPPED, warm)
    assert results[102] == UnitResult(102, None, SKIPPED)
    deadline = time.monotonic() + 5
    pids = [int(path.read_text()) for path in grandchildren]
    while any(alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "a unit's child survived the stop"
        time.sleep(0.05)


def test_a_runner_that_goes_away_leaves_running_units_to_finish_once(
    tmp_path: Path, folder: Path, command: str, warm: bool
) -> None:
    """Cancelled (graceful shutdown) while units run: the launcher starts no more units,
    the running ones finish and are recorded; `adopt` waits for them; the rest run later;
    every unit runs exactly once."""
    markers = [tmp_path / f"ran-{i}" for i in range(5)]
    calls = calls_of(folder, command, [{"sleep": 1.5, "marker": str(m)} for m in markers])

    async def cancel_while_running() -> dict[int, UnitResult]:
        results: dict[int, UnitResult] = {}
        task = asyncio.create_task(
            LocalExecutor(2).run(
                task_info(warm),
                calls,
                lambda r: results.__setitem__(r.unit_id, r),
                asyncio.Event(),
                True,
            )
        )
        deadline = time.monotonic() + 30
        while not all(marker.exists() for marker in markers[:2]):
            assert time.monotonic() < deadline, "the units did not start"
            await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return results

    assert asyncio.run(cancel_while_running()) == {}
    assert _live_launcher(folder) is not None, "the launcher outlives the cancelled run"
    assert read_exit_code(calls[0].files) is None  # still running

    async def take_over() -> list[UnitCall]:
        executor = LocalExecutor(2)
        left = []
        for call in calls:
            adopted = await executor.adopt(call)
            if adopted is None:
                left.append(call)
            else:
                assert adopted.exit_code == 0
        return left

    left = asyncio.run(take_over())
    assert _live_launcher(folder) is None
    assert [call.unit_id for call in left] == [102, 103, 104]
    assert read_exit_code(calls[0].files) == 0 and read_exit_code(calls[1].files) == 0
    results = run(left, warm=warm)
    assert {r.unit_id: r.exit_code for r in results.values()} == {102: 0, 103: 0, 104: 0}
    for marker in markers:
        assert len(marker.read_text().splitlines()) == 1, f"{marker.name}: not run exactly once"


def test_a_killed_runner_leaves_the_launcher_to_record_its_units(
    tmp_path: Path, folder: Path, command: str, warm: bool
) -> None:
    """SIGKILL of the runner's process: its pipes close, the launcher starts no more units
    and records the running ones."""
    markers = [tmp_path / f"ran-{i}" for i in range(4)]
    calls = calls_of(folder, command, [{"sleep": 1.0, "marker": str(m)} for m in markers])
    script = tmp_path / "runner.py"
    script.write_text(
        "import asyncio, pickle, sys\n"
        "from fractal_like.runner.executors.base import TaskInfo\n"
        "from fractal_like.runner.executors.local import LocalExecutor\n"
        "calls = pickle.load(open(sys.argv[1], 'rb'))\n"
        f"task = TaskInfo(1, 0, 'test', warm_start={warm})\n"
        "asyncio.run(LocalExecutor(1).run(task, calls, print, asyncio.Event(), True))\n"
    )
    (tmp_path / "calls.pickle").write_bytes(pickle.dumps(calls))
    # The runner imports the fractal_like under test, wherever this checkout lies.
    env = {**os.environ, "PYTHONPATH": str(Path(fractal_like.__file__).parents[1])}
    runner = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "calls.pickle")], env=env
    )
    try:
        deadline = time.monotonic() + 30
        while not markers[0].exists():
            assert time.monotonic() < deadline, "the first unit did not start"
            time.sleep(0.02)
    finally:
        runner.kill()
        runner.wait()
    deadline = time.monotonic() + 30
    while _live_launcher(folder) is not None:
        assert time.monotonic() < deadline, "the launcher did not end"
        time.sleep(0.05)
    assert read_exit_code(calls[0].files) == 0
    assert [m.exists() for m in markers] == [True, False, False, False]


# A unit that records who started it and can allocate memory.
PROBE = """\
import json, os, sys, time
args = json.load(open(sys.argv[sys.argv.index("--args-json") + 1]))
out = sys.argv[sys.argv.index("--out-json") + 1]
print("probe", os.getpid(), flush=True)
block = bytearray(args.get("megabytes", 0) * 1024 * 1024)
time.sleep(args.get("sleep", 0))
json.dump({"pid": os.getpid(), "ppid": os.getppid()}, open(out, "w"))
"""


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    path = tmp_path / "probe.py"
    path.write_text(PROBE)
    return path


def test_warm_units_are_forks_of_one_warm_parent(folder: Path, probe: Path) -> None:
    calls = calls_of(folder, f"{sys.executable} {probe}", [{}, {}, {}, {}])
    results = run(calls, parallelism=2)
    assert all(result == ended(result.unit_id, 0, None, True) for result in results.values())
    outputs = [json.loads(call.files.output.read_text()) for call in calls]
    parents = {output["ppid"] for output in outputs}
    launcher = int(UnitFiles(folder, LAUNCHER_PREFIX).pid.read_text())
    assert len(parents) == 1 and launcher not in parents, "forked by a warm parent"
    assert len({output["pid"] for output in outputs}) == 4

    # A new folder: units whose exit-code files exist already are never run again.
    cold_folder = folder.with_name("2_cold")
    cold_folder.mkdir()
    cold = calls_of(cold_folder, f"{sys.executable} {probe}", [{}, {}])
    results = run(cold, warm=False)
    assert all(result.warm is False for result in results.values())
    launcher = int(UnitFiles(cold_folder, LAUNCHER_PREFIX).pid.read_text())
    assert {json.loads(c.files.output.read_text())["ppid"] for c in cold} == {launcher}


@pytest.mark.parametrize(
    "form",
    ["{python} -u {script}", "{python} {script} --verbose", "python3 {script}"],
    ids=["interpreter option", "extra argument", "relative interpreter"],
)
def test_other_command_forms_run_cold(folder: Path, probe: Path, form: str) -> None:
    command = form.format(python=sys.executable, script=probe)
    if "--verbose" in command:  # the probe must accept it: a wrapper script that drops it
        wrapper = probe.with_name("probe_verbose.py")
        wrapper.write_text("import sys\nsys.argv.remove('--verbose')\n" + PROBE)
        command = f"{sys.executable} {wrapper} --verbose"
    results = run(calls_of(folder, command, [{}]))
    assert results[100] == ended(100, 0, None, False)


def test_a_warm_parent_that_dies_fails_its_running_units_plainly(folder: Path, probe: Path) -> None:
    calls = calls_of(folder, f"{sys.executable} {probe}", [{"sleep": 30}, {"sleep": 30}])

    async def go() -> dict[int, UnitResult]:
        results: dict[int, UnitResult] = {}
        task = asyncio.create_task(
            LocalExecutor(2).run(
                task_info(True), calls, lambda r: results.__setitem__(r.unit_id, r), asyncio.Event()
            )
        )
        deadline = time.monotonic() + 30
        logs = [call.files.log for call in calls]
        while not all(log.exists() and "probe" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, "the units did not start"
            await asyncio.sleep(0.05)
        unit_pid = int(logs[0].read_text().split()[1])
        parent = int(Path(f"/proc/{unit_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(parent, signal.SIGKILL)
        await asyncio.wait_for(task, 20)
        return results

    started = time.monotonic()
    results = asyncio.run(go())
    assert time.monotonic() - started < 20, "the units were killed, not waited for"
    for unit_id, call in zip((100, 101), calls, strict=True):
        assert results[unit_id].exit_code == 125 and results[unit_id].warm is True
        assert "the warm parent process running the unit died" in (results[unit_id].reason or "")
        assert "warm parent" in call.files.log.read_text()
        assert read_exit_code(call.files) == 125, "recorded: a restart never runs it again"


def test_memory_limit_per_unit_holds_warm_and_cold(folder: Path, probe: Path, warm: bool) -> None:
    calls = calls_of(folder, f"{sys.executable} {probe}", [{"megabytes": 400}, {"megabytes": 8}])
    results = run(calls, fail_fast=False, warm=warm, memory_limit_mb=200)
    assert results[100].exit_code == 1 and results[100].warm is warm
    assert results[100].reason == (
        "it ran out of memory: the resource allows 200 MB per unit "
        "(jobs_runner_config.memory_limit_per_unit_mb)"
    )
    assert "MemoryError" in calls[0].files.log.read_text()
    assert results[101] == ended(101, 0, None, warm)
    # Without the limit the same unit runs (in a new folder: a finished unit never reruns).
    again_folder = folder.with_name("2_again")
    again_folder.mkdir()
    again = calls_of(again_folder, f"{sys.executable} {probe}", [{"megabytes": 400}])
    assert run(again, warm=warm)[100] == ended(100, 0, None, warm)
