"""The node worker run as a real process, on real commands that follow the task-call contract."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fractal_like.runner import node
from fractal_like.runner.node.batch import FORMAT, KILL_GRACE_SECONDS, BatchError, check_batch
from fractal_like.runner.node.report import STOPPED

from ..support.runner_support import FILE_KEYS, check_node_package, node_batch

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")

# A task following the contract; what it does is driven by its args.
TASK = """\
import json, os, signal, sys, time
args_path = sys.argv[sys.argv.index("--args-json") + 1]
out_path = sys.argv[sys.argv.index("--out-json") + 1]
args = json.load(open(args_path))
print("stdout of", args["name"], flush=True)
print("stderr of", args["name"], file=sys.stderr, flush=True)
time.sleep(args.get("sleep", 0))
if args.get("signal"):
    os.kill(os.getpid(), args["signal"])
out = {"image_list_updates": [{"zarr_url": args["name"]}], "env": os.environ.get("UNIT_ENV"),
       "cwd": os.getcwd()}
json.dump(out, open(out_path, "w"))
sys.exit(args.get("exit_code", 0))
"""

# A unit that leaves a grandchild in its process group and waits for it.
SPAWNER = """\
#!/bin/sh
{trap}
sleep 30 &
echo $! > "$(dirname "$0")/grandchild-$1"
wait
"""


@pytest.fixture
def task(tmp_path: Path) -> list[str]:
    path = tmp_path / "task.py"
    path.write_text(TASK)
    return [sys.executable, str(path)]


def unit(folder: Path, unit_id: int, argv: list[str], **extra: Any) -> dict[str, Any]:
    """One unit's entry; its files live in `folder`, named like the runner names them."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / f"par_{unit_id:06d}"
    return {
        "unit_id": unit_id,
        "argv": argv,
        "args": extra.pop("args", {"name": f"unit-{unit_id}"}),
        "args_file": f"{prefix}-args.json",
        "out_file": f"{prefix}-metadiff.json",
        "log_file": f"{prefix}-log.txt",
        "exit_code_file": f"{prefix}-exitcode",
        "result_file": f"{prefix}-result.json",
        **extra,
    }


def write_batch(path: Path, units: list[dict[str, Any]], **top: Any) -> Path:
    path.write_text(json.dumps(node_batch(units, **top)))
    return path


def worker_argv(batch: Path, how: str = "module") -> list[str]:
    if how == "module":
        return [sys.executable, "-m", "fractal_like.runner.node", str(batch)]
    # The copy a runner puts next to a job, run by the system's Python in isolated mode
    # without site-packages, so only the stdlib is importable.
    copy = node.install(str(batch.parent))
    return node.worker_argv(str(SYSTEM_PYTHON), copy, str(batch))


def run_worker(
    batch: Path, how: str = "module", timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        worker_argv(batch, how),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO if how == "module" else batch.parent,
    )


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def exit_code(entry: dict[str, Any]) -> str | None:
    path = Path(entry["exit_code_file"])
    return path.read_text() if path.exists() else None


def process_gone(pid: int) -> bool:
    """Gone or a zombie: an orphan's zombie may wait a while for whoever adopts it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_for(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def spawner(tmp_path: Path) -> Iterator[Any]:
    """Write a unit script that leaves a `sleep` grandchild; kill leftovers after the test."""

    def make(ignore_term: bool = False) -> list[str]:
        path = tmp_path / ("stubborn.sh" if ignore_term else "spawner.sh")
        path.write_text(SPAWNER.format(trap="trap '' TERM" if ignore_term else ""))
        path.chmod(0o755)
        return [str(path)]

    yield make
    for pid_file in tmp_path.glob("grandchild-*"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


# ---------------------------------------------------------------------------- the stdlib rule


def test_every_file_of_the_node_package_is_stdlib_only_and_python39() -> None:
    checked = check_node_package()
    assert {"batch.py", "report.py", "worker.py", "warm.py", "warm_pool.py"} <= set(checked)
    assert "sandbox.py" in checked and "__main__.py" in checked and "__init__.py" in checked


# ---------------------------------------------------------------------------- running units


@pytest.mark.parametrize("how", ["module", "copy"])
def test_units_run_with_contract_files(tmp_path: Path, task: list[str], how: str) -> None:
    if how == "copy" and not SYSTEM_PYTHON.exists():
        pytest.skip("no system python3")
    folder = tmp_path / "1_task"
    units = [
        unit(folder, 17, task, env={"UNIT_ENV": "value with spaces"}),
        unit(folder, 18, task, args={"name": "unit-18", "exit_code": 3}),
    ]
    batch = write_batch(tmp_path / "batch.json", units, pid_file=str(tmp_path / "worker.pid"))

    done = run_worker(batch, how)

    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == [
        {"id": 17, "code": 0, "reason": None, "warm": False},
        {"id": 18, "code": 3, "reason": None, "warm": False},
    ]
    first, second = units
    assert json.loads(Path(first["args_file"]).read_text()) == {"name": "unit-17"}
    output = json.loads(Path(first["out_file"]).read_text())
    assert output["image_list_updates"] == [{"zarr_url": "unit-17"}]
    assert output["env"] == "value with spaces"
    assert output["cwd"] == str(folder), "a unit runs in its folder"
    log = Path(first["log_file"]).read_text()
    assert "stdout of unit-17" in log and "stderr of unit-17" in log
    assert exit_code(first) == "0\n" and exit_code(second) == "3\n"
    result = json.loads(Path(second["result_file"]).read_text())
    assert result["id"] == 18 and result["code"] == 3 and "signal" not in result
    assert result["started"].endswith("Z") and result["ended"] >= result["started"]
    assert result["host"] and result["pid"] > 0 and result["seconds"] >= 0
    assert int((tmp_path / "worker.pid").read_text()) > 0
    assert not list(folder.glob("*.tmp*")), "no temporary files left behind"


def test_log_is_appended_and_stale_output_removed(tmp_path: Path, task: list[str]) -> None:
    entry = unit(tmp_path, 1, task, args={"name": "x", "exit_code": 1})
    Path(entry["log_file"]).write_text("earlier attempt\n")
    Path(entry["out_file"]).write_text('{"stale": true}')
    assert run_worker(write_batch(tmp_path / "b.json", [entry])).returncode == 0
    assert Path(entry["log_file"]).read_text().startswith("earlier attempt\nstdout of x")
    assert '"stale": true' not in Path(entry["out_file"]).read_text()


def test_parallelism_is_honoured(tmp_path: Path) -> None:
    sleeper = tmp_path / "sleeper.sh"  # sh, not Python: start-up must not blur the timing
    sleeper.write_text("#!/bin/sh\nsleep 0.5\n")
    sleeper.chmod(0o755)
    units = [unit(tmp_path, i, [str(sleeper)]) for i in range(4)]
    batch = write_batch(tmp_path / "b.json", units, parallelism=2)
    start = time.monotonic()
    done = run_worker(batch)
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    assert 1.0 <= elapsed < 1.9
    # Never more than two at once, and started in order.
    results = [json.loads(Path(u["result_file"]).read_text()) for u in units]
    for result in results:
        at_once = [r for r in results if r["started"] <= result["started"] < r["ended"]]
        assert len(at_once) <= 2
    assert [r["started"] for r in results] == sorted(r["started"] for r in results)


def test_finished_units_are_skipped(tmp_path: Path, task: list[str]) -> None:
    done_before, garbage, fresh = (unit(tmp_path, i, task) for i in (1, 2, 3))
    Path(done_before["exit_code_file"]).write_text("5\n")
    Path(garbage["exit_code_file"]).write_text("")  # caught half-written: not finished
    batch = write_batch(tmp_path / "b.json", [done_before, garbage, fresh])

    done = run_worker(batch)

    assert lines(done.stdout) == [
        {"id": 1, "code": 5, "reason": None, "warm": False, "skipped": True},
        {"id": 2, "code": 0, "reason": None, "warm": False},
        {"id": 3, "code": 0, "reason": None, "warm": False},
    ]
    assert not Path(done_before["args_file"]).exists()
    assert not Path(done_before["result_file"]).exists()
    assert exit_code(done_before) == "5\n"


def test_fail_fast_starts_nothing_after_a_failure(tmp_path: Path, task: list[str]) -> None:
    ok = unit(tmp_path, 1, task)
    failing = unit(tmp_path, 2, task, args={"name": "bad", "exit_code": 4})
    never = unit(tmp_path, 3, task)
    batch = write_batch(tmp_path / "b.json", [ok, failing, never], fail_fast=True)

    done = run_worker(batch)

    assert done.returncode == 0, done.stderr
    assert [line["code"] for line in lines(done.stdout)] == [0, 4]
    assert exit_code(failing) == "4\n"
    assert not any(Path(never[key]).exists() for key in FILE_KEYS)


def test_fail_fast_kills_running_units(tmp_path: Path, task: list[str], spawner: Any) -> None:
    slow = unit(tmp_path, 1, spawner(), args={})
    slow["argv"].append("1")
    failing = unit(tmp_path, 2, task, args={"name": "bad", "exit_code": 1, "sleep": 0.3})
    batch = write_batch(tmp_path / "b.json", [slow, failing], parallelism=2, fail_fast=True)

    start = time.monotonic()
    done = run_worker(batch)

    assert done.returncode == 0, done.stderr
    assert time.monotonic() - start < 5
    assert exit_code(failing) == "1\n"
    assert exit_code(slow) is None and not Path(slow["result_file"]).exists()
    assert process_gone(int((tmp_path / "grandchild-1").read_text()))


def test_signal_death_is_128_plus_signal(tmp_path: Path, task: list[str]) -> None:
    entry = unit(tmp_path, 1, task, args={"name": "x", "signal": int(signal.SIGKILL)})
    done = run_worker(write_batch(tmp_path / "b.json", [entry]))
    assert lines(done.stdout) == [
        {"id": 1, "code": 137, "reason": "killed by SIGKILL", "warm": False}
    ]
    result = json.loads(Path(entry["result_file"]).read_text())
    assert result["code"] == 137 and result["signal"] == "SIGKILL"
    assert exit_code(entry) == "137\n"


def test_a_command_that_cannot_start_fails_like_a_shell(tmp_path: Path) -> None:
    entry = unit(tmp_path, 1, [str(tmp_path / "no-such-task")])
    done = run_worker(write_batch(tmp_path / "b.json", [entry]))
    assert done.returncode == 0
    assert exit_code(entry) == "127\n"
    assert "cannot run" in Path(entry["log_file"]).read_text()
    assert "error" in json.loads(Path(entry["result_file"]).read_text())


# ---------------------------------------------------------------------------- stopping


def _start_and_wait_for_grandchildren(
    batch: Path, tmp_path: Path, count: int, how: str = "module"
) -> subprocess.Popen:
    worker = subprocess.Popen(
        worker_argv(batch, how),
        cwd=REPO if how == "module" else batch.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: len([p for p in tmp_path.glob("grandchild-*") if p.read_text()]) == count)
    return worker


@pytest.mark.parametrize("how", ["module", "copy"])
def test_sigterm_kills_running_units_and_their_groups(
    tmp_path: Path, spawner: Any, how: str
) -> None:
    if how == "copy" and not SYSTEM_PYTHON.exists():
        pytest.skip("no system python3")
    argv = spawner()
    running = [unit(tmp_path, i, [*argv, str(i)], args={}) for i in (1, 2)]
    queued = unit(tmp_path, 3, [*argv, "3"], args={})
    batch = write_batch(tmp_path / "b.json", [*running, queued], parallelism=2)
    worker = _start_and_wait_for_grandchildren(batch, tmp_path, 2, how)

    start = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    stdout, _ = worker.communicate(timeout=10)

    assert worker.returncode == 143
    assert time.monotonic() - start < KILL_GRACE_SECONDS  # units obeyed SIGTERM
    # Killed units are reported without a code: they did not finish.
    assert sorted(line["id"] for line in lines(stdout)) == [1, 2]
    assert all(line["code"] is None and line["reason"] == STOPPED for line in lines(stdout))
    for entry in running:
        assert exit_code(entry) is None and not Path(entry["result_file"]).exists()
    assert not Path(queued["args_file"]).exists()
    for pid_file in tmp_path.glob("grandchild-*"):
        wait_for(lambda pid_file=pid_file: process_gone(int(pid_file.read_text())), 3)


def test_units_ignoring_sigterm_get_sigkill_after_the_grace(tmp_path: Path, spawner: Any) -> None:
    entry = unit(tmp_path, 1, [*spawner(ignore_term=True), "1"], args={})
    worker = _start_and_wait_for_grandchildren(
        write_batch(tmp_path / "b.json", [entry]), tmp_path, 1
    )
    start = time.monotonic()
    worker.send_signal(signal.SIGINT)
    worker.communicate(timeout=10)
    assert worker.returncode == 143
    assert KILL_GRACE_SECONDS <= time.monotonic() - start < KILL_GRACE_SECONDS + 2
    assert exit_code(entry) is None
    wait_for(lambda: process_gone(int((tmp_path / "grandchild-1").read_text())), 3)


# ---------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not valid JSON"),
        ('{"format": "other/1", "units": []}', "format must be"),
        (json.dumps({"format": FORMAT, "units": [], "parallelism": 0}), "parallelism"),
        (json.dumps({"format": FORMAT, "commands": [], "units": [{"id": 1}]}), "units[0].command"),
        (json.dumps({"format": FORMAT, "units": [], "pickle": "x"}), "unknown keys"),
        (json.dumps({"format": "fractal-like-batch/1", "units": []}), "format must be"),
    ],
)
def test_malformed_batch_exits_2_with_a_plain_message(
    tmp_path: Path, content: str, message: str
) -> None:
    batch = tmp_path / "b.json"
    batch.write_text(content)
    done = run_worker(batch)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_missing_batch_file_exits_2(tmp_path: Path) -> None:
    done = run_worker(tmp_path / "absent.json")
    assert done.returncode == 2 and "cannot read" in done.stderr


def test_unit_errors_name_the_unit() -> None:
    entry = {"id": 1, "command": 0, "args": {}, "folder": "/tmp", "prefix": "x"}
    batch = {"format": FORMAT, "commands": [{"argv": ["/bin/true"], "warm": False}]}
    with pytest.raises(BatchError, match=r"units\[1\]\.id 1 appears twice"):
        check_batch({**batch, "units": [entry, entry]})
    with pytest.raises(BatchError, match=r"commands\[0\]\.argv\[1\]"):
        check_batch({**batch, "commands": [{"argv": ["a", "b\0"]}], "units": [entry]})
    with pytest.raises(BatchError, match=r"commands\[0\] runs warm but is not"):
        check_batch({**batch, "commands": [{"argv": ["python3", "t.py"], "warm": True}]})
    with pytest.raises(BatchError, match=r"units\[0\]\.prefix must not contain"):
        check_batch({**batch, "units": [{**entry, "prefix": "../x"}]})


# ---------------------------------------------------------------------------- overhead


def test_200_noop_units_are_quick(tmp_path: Path) -> None:
    # CPU time is the load-proof measure. Wall time is compared with the same 200 no-op
    # commands through xargs, measured just before, with a wide factor: on an overloaded
    # machine a Python loop (about 1 ms of CPU per unit) is preempted far more than xargs.
    # One at a time on both sides: a parallel spawn waits for the child's exec, which a
    # busy machine delays more than xargs' plain fork.
    start = time.monotonic()
    subprocess.run(
        "seq 200 | xargs -P 1 -n 1 /bin/true --args-json a --out-json",
        shell=True,
        check=True,
    )
    xargs_elapsed = time.monotonic() - start
    units = [unit(tmp_path / "units", i, ["/bin/true"], args={}) for i in range(200)]
    batch = write_batch(tmp_path / "b.json", units, parallelism=1)
    start = time.monotonic()
    worker = subprocess.Popen(worker_argv(batch), cwd=REPO, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(worker.pid, 0)
    worker.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - start
    assert worker.returncode == 0
    assert all(exit_code(entry) == "0\n" for entry in units)
    cpu = usage.ru_utime + usage.ru_stime  # the worker and all 200 units together
    assert cpu < 2.0, f"{cpu:.2f} s of CPU"
    assert elapsed < max(3.0, 10 * xargs_elapsed), f"{elapsed:.2f} s, xargs {xargs_elapsed:.2f} s"


# ---------------------------------------------------------------------------- control on stdin


def _controlled_worker(batch: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        worker_argv(batch),
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_stop_line_on_stdin_kills_the_running_units(tmp_path: Path, spawner: Any) -> None:
    argv = spawner()
    running = [unit(tmp_path, i, [*argv, str(i)], args={}) for i in (1, 2)]
    queued = unit(tmp_path, 3, [*argv, "3"], args={})
    batch = write_batch(tmp_path / "b.json", [*running, queued], parallelism=2, control="stdin")
    worker = _controlled_worker(batch)
    wait_for(lambda: len([p for p in tmp_path.glob("grandchild-*") if p.read_text()]) == 2)

    assert worker.stdin is not None
    worker.stdin.write("stop\n")
    worker.stdin.flush()
    worker.wait(timeout=10)  # stdin stays open: its end would mean "the runner is gone"
    assert worker.stdout is not None and worker.stderr is not None
    stdout, stderr = worker.stdout.read(), worker.stderr.read()
    worker.stdin.close()

    assert worker.returncode == 0, stderr  # asked to stop: not stopped by a signal
    assert sorted(line["id"] for line in lines(stdout)) == [1, 2]
    assert all(line["code"] is None and line["reason"] == STOPPED for line in lines(stdout))
    assert all(exit_code(entry) is None for entry in running), "stopped units did not finish"
    assert not Path(queued["args_file"]).exists(), "nothing starts after a stop"
    for pid_file in tmp_path.glob("grandchild-*"):
        wait_for(lambda pid_file=pid_file: process_gone(int(pid_file.read_text())), 3)


def test_end_of_file_on_stdin_lets_the_running_units_finish(
    tmp_path: Path, task: list[str]
) -> None:
    """The runner went away: start no more units, let the running one end and record it."""
    units = [unit(tmp_path, i, task, args={"name": f"u{i}", "sleep": 1.0}) for i in (1, 2, 3)]
    batch = write_batch(tmp_path / "b.json", units, parallelism=1, control="stdin")
    worker = _controlled_worker(batch)
    wait_for(lambda: Path(units[0]["log_file"]).exists())

    assert worker.stdin is not None
    worker.stdin.close()
    worker.wait(timeout=20)

    assert worker.returncode == 0
    assert exit_code(units[0]) == "0\n", "the running unit ended and was recorded"
    assert not any(Path(entry["args_file"]).exists() for entry in units[1:])


def test_without_stdin_control_end_of_file_changes_nothing(tmp_path: Path, task: list[str]) -> None:
    """A SLURM job's stdin is /dev/null: every unit runs."""
    units = [unit(tmp_path, i, task) for i in (1, 2)]
    batch = write_batch(tmp_path / "b.json", units)
    done = subprocess.run(
        worker_argv(batch), cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, timeout=60
    )
    assert done.returncode == 0
    assert [exit_code(entry) for entry in units] == ["0\n", "0\n"]


# ---------------------------------------------------------------------------- warm and stops

# A warm-form task that records its pid, then waits.
WAITER = """\
import os, sys, time
if __name__ == "__main__":
    print("pid", os.getpid(), flush=True)
    time.sleep(60)
"""


def test_a_scancel_of_warm_units_is_a_stop_not_a_lost_parent(tmp_path: Path) -> None:
    """scancel signals every process of the job, the warm parent among them: its units are
    stopped (no exit-code file, so a restart may run them), not failed as "parent died"."""
    script = tmp_path / "waiter.py"
    script.write_text(WAITER)
    units = [
        unit(tmp_path / "t", i, [sys.executable, str(script)], args={}, warm=True) for i in (1, 2)
    ]
    batch = write_batch(tmp_path / "b.json", units, parallelism=2)
    worker = subprocess.Popen(
        worker_argv(batch), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    logs = [Path(entry["log_file"]) for entry in units]
    wait_for(lambda: all(log.exists() and "pid" in log.read_text() for log in logs), 60)
    children = [int(log.read_text().split()[1]) for log in logs]
    parent = int(Path(f"/proc/{children[0]}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent != worker.pid, "the units are forks of a warm parent"

    for pid in (worker.pid, parent, *children):  # as scancel does, all at once
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    stdout, stderr = worker.communicate(timeout=20)

    assert worker.returncode == 143, stderr
    reported = lines(stdout)
    assert sorted(line["id"] for line in reported) == [1, 2]
    assert all(line["code"] is None and line["reason"] == STOPPED for line in reported)
    assert all(exit_code(entry) is None for entry in units)
