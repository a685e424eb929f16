"""Run a batch of units on a compute node: the worker inside one SLURM job.

STDLIB ONLY. The runner copies this single file next to a job and runs it with whatever
Python >= 3.9 the node has (`python remote.py BATCH_JSON`); it can also be run as
`python -m fractal_like.runner.remote BATCH_JSON`. Nothing here may import fractal_like or
a third-party package, and the syntax must stay 3.9-compatible.

Batch file (JSON only, never pickle)::

    {"format": "fractal-like-batch/1",
     "parallelism": 2,              # optional, default 1: units running at once
     "fail_fast": false,            # optional: after a failed unit start no more units
     "pid_file": "/job/worker.pid", # optional: where the worker writes its own pid
     "units": [{"unit_id": 17,
                "argv": ["/usr/bin/python3", "/pkg/task.py"],
                "cwd": "/job/1_task",          # optional
                "args": {...},                 # written to args_file as JSON
                "args_file": ".../par_000001-args.json",
                "out_file": ".../par_000001-metadiff.json",
                "log_file": ".../par_000001-log.txt",
                "exit_code_file": ".../par_000001-exitcode",
                "result_file": ".../par_000001-result.json",
                "env": {"K": "V"},              # optional, added to the worker's env
                "warm": true}]}                 # optional: may run from a warm parent

A unit runs `argv + ["--args-json", args_file, "--out-json", out_file]` in its own session
(process group), stdin from /dev/null, stdout and stderr appended to log_file. When it ends
the worker writes result_file (unit_id, exit_code, signal, started, ended, host, pid,
seconds; "error" when the command could not start) and then, last, exit_code_file holding
the bare integer (128 + signal number for a signal death, 127/126 like a shell when the
command cannot start), written in one write under a temporary name and renamed into place:
its presence means "the unit finished". A unit whose exit_code_file already
holds an integer is skipped, so a restarted batch never runs a unit twice. Each finished or
skipped unit is also reported as one JSON line on stdout, e.g. `{"unit_id": 17,
"exit_code": 0, "warm": false}` (plus `"skipped": true` for a skipped one).

Warm start: a unit with `"warm": true` whose argv is `<absolute python> <absolute
script.py>` runs as a fork of a warm parent (`warm.py`, which must lie beside this file;
without it every unit runs cold): same files, same exit codes, same log. The result file
and the stdout line say `"warm": true` or false. A unit whose warm parent died while it ran
is killed and ends with exit code 125 and an "error" saying so (it is never re-run).

Units the worker kills (fail_fast, or SIGTERM/SIGINT to the worker: scancel, a time limit,
a stop) get SIGTERM on their process group, SIGKILL after a grace period, and no
exit_code_file: they did not finish. Exit codes: 0 when the worker ran what it was asked
(even if units failed, and also when fail_fast stopped it), 1 when it could not write its
pid file, 2 for a malformed batch, 143 when it was stopped by a signal.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

FORMAT = "fractal-like-batch/1"
KILL_GRACE_SECONDS = 2.0
EXIT_OK = 0
EXIT_SETUP_FAILED = 1
EXIT_MALFORMED = 2
EXIT_STOPPED = 143

_TOP_KEYS = {"format", "parallelism", "fail_fast", "pid_file", "units"}
_FILE_KEYS = ("args_file", "out_file", "log_file", "exit_code_file", "result_file")
_UNIT_KEYS = {"unit_id", "argv", "cwd", "args", "env", "warm", *_FILE_KEYS}
# warm.py beside this file: its name when it is copied next to a job, or in the package.
_WARM_FILES = ("fractal_like_warm.py", "warm.py")


class BatchError(ValueError):
    """The batch file breaks the format; the message says where, in plain words."""


# ---------------------------------------------------------------------------- validation


def _text(value: Any, where: str) -> str:
    # NUL cannot reach an argv, a path or the environment: refuse it up front.
    if not isinstance(value, str) or not value or "\x00" in value:
        raise BatchError(f"{where} must be a non-empty string without NUL characters")
    return value


def _check_unit(unit: Any, index: int) -> dict[str, Any]:
    where = f"units[{index}]"
    if not isinstance(unit, dict):
        raise BatchError(f"{where} must be an object")
    unknown = sorted(set(unit) - _UNIT_KEYS)
    if unknown:
        raise BatchError(f"{where} has unknown keys: {', '.join(unknown)}")
    unit_id = unit.get("unit_id")
    if not isinstance(unit_id, int) or isinstance(unit_id, bool):
        raise BatchError(f"{where}.unit_id must be an integer")
    argv = unit.get("argv")
    if not isinstance(argv, list) or not argv:
        raise BatchError(f"{where}.argv must be a non-empty list of strings")
    for position, item in enumerate(argv):
        _text(item, f"{where}.argv[{position}]")
    if not isinstance(unit.get("args"), dict):
        raise BatchError(f"{where}.args must be an object")
    for key in _FILE_KEYS:
        _text(unit.get(key), f"{where}.{key}")
    if unit.get("cwd") is not None:
        _text(unit["cwd"], f"{where}.cwd")
    if not isinstance(unit.get("warm", False), bool):
        raise BatchError(f"{where}.warm must be true or false")
    env = unit.get("env") or {}
    if not isinstance(env, dict):
        raise BatchError(f"{where}.env must be an object of strings")
    for name, value in env.items():
        if not name or "=" in name or "\x00" in name or not isinstance(value, str):
            raise BatchError(f"{where}.env has an invalid entry {name!r}")
        if "\x00" in value:
            raise BatchError(f"{where}.env[{name!r}] contains a NUL character")
    return unit


def check_batch(data: Any) -> dict[str, Any]:
    """Validate a parsed batch file; raise BatchError with a plain sentence."""
    if not isinstance(data, dict):
        raise BatchError("the batch must be a JSON object")
    if data.get("format") != FORMAT:
        raise BatchError(f"format must be {FORMAT!r}, got {data.get('format')!r}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise BatchError(f"unknown keys: {', '.join(unknown)}")
    parallelism = data.get("parallelism", 1)
    if not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism < 1:
        raise BatchError("parallelism must be a positive integer")
    if not isinstance(data.get("fail_fast", False), bool):
        raise BatchError("fail_fast must be true or false")
    if data.get("pid_file") is not None:
        _text(data["pid_file"], "pid_file")
    units = data.get("units")
    if not isinstance(units, list):
        raise BatchError("units must be a list")
    seen: set[int] = set()
    for index, unit in enumerate(units):
        _check_unit(unit, index)
        if unit["unit_id"] in seen:
            raise BatchError(f"units[{index}].unit_id {unit['unit_id']} appears twice")
        seen.add(unit["unit_id"])
    return data


def load_batch(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as error:
        raise BatchError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:  # JSONDecodeError and bad UTF-8 alike
        raise BatchError(f"{path} is not valid JSON ({error})") from None
    return check_batch(data)


# ---------------------------------------------------------------------------- unit files


def _utc(timestamp: float) -> str:
    # time.strftime rather than datetime: identical on every Python this file may meet.
    micros = int((timestamp % 1) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{micros:06d}Z"


def finished_code(unit: dict[str, Any]) -> int | None:
    """The exit code a previous run recorded, or None when the unit never finished."""
    try:
        with open(unit["exit_code_file"]) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def _write_exit_code(path: str, code: int) -> None:
    # One write into a temporary name, then an atomic rename: a reader (maybe on another
    # host, over NFS) sees either no file or the whole number, never a partial one.
    temporary = f"{path}.tmp{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, f"{code}\n".encode())
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _prepare(unit: dict[str, Any]) -> None:
    with open(unit["args_file"], "w", encoding="utf-8") as handle:
        json.dump(unit["args"], handle)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(unit["out_file"])


# ---------------------------------------------------------------------------- processes


class _Running:
    """One started unit: what is needed to finish its files once it is reaped."""

    __slots__ = ("pid", "process", "started", "started_monotonic", "unit", "warm")

    def __init__(
        self, unit: dict[str, Any], process: subprocess.Popen[bytes] | None, warm: bool = False
    ) -> None:
        self.unit = unit
        self.process = process
        self.pid: int | None = process.pid if process is not None else None
        self.warm = warm  # run by a warm parent: its pid comes later, from the parent
        self.started = time.time()
        self.started_monotonic = time.monotonic()


class Worker:
    """Runs one batch: at most `parallelism` units at once, in order, reaped with waitpid."""

    def __init__(self, batch: dict[str, Any]) -> None:
        self.units: list[dict[str, Any]] = batch["units"]
        self.parallelism: int = batch.get("parallelism", 1)
        self.fail_fast: bool = batch.get("fail_fast", False)
        self.host = socket.gethostname()
        self.running: dict[int, _Running] = {}
        self.stop_signal: int | None = None
        self.failed = False
        self.can_print = True
        self.devnull = os.open(os.devnull, os.O_RDONLY)
        self.wakeup_read, self.wakeup_write = os.pipe()
        self.warm_running: dict[int, _Running] = {}  # by unit_id
        self.warm = _load_warm()  # warm.py beside this file, or None: all units cold
        self.pool = (
            self.warm.WarmPool(warm_file=self.warm.__file__, should_abort=self._stopping)
            if self.warm is not None
            else None
        )

    def _stopping(self) -> bool:
        return self.stop_signal is not None

    # -- signals: handlers only record; the main loop acts (nothing runs half-way)

    def _on_stop(self, signum: int, _frame: Any) -> None:
        self.stop_signal = signum

    def _on_child(self, _signum: int, _frame: Any) -> None:
        pass  # the wakeup fd already woke the loop; reaping happens there

    def install_signals(self) -> None:
        for fd in (self.wakeup_read, self.wakeup_write):
            os.set_blocking(fd, False)
        # Each signal writes a byte to the pipe, so a SIGCHLD that lands between reaping
        # and select() still wakes select(): no lost wake-up, no polling.
        signal.set_wakeup_fd(self.wakeup_write, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, self._on_child)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)

    def _wait_for_event(self, timeout: float | None = None) -> None:
        pool_fds = self.pool.fds() if self.pool is not None else []
        select.select([self.wakeup_read, *pool_fds], [], [], timeout)
        try:
            while os.read(self.wakeup_read, 4096):
                pass
        except BlockingIOError:
            pass

    # -- starting and finishing units

    def _report(self, line: dict[str, Any]) -> None:
        if not self.can_print:
            return
        try:
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
        except OSError:
            self.can_print = False  # the reader went away; the units still matter

    def _start(self, unit: dict[str, Any]) -> int | None:
        """Start a unit; return its exit code at once when it could not even start."""
        argv = [*unit["argv"], "--args-json", unit["args_file"], "--out-json", unit["out_file"]]
        env = {**os.environ, **unit["env"]} if unit.get("env") else None
        try:
            _prepare(unit)
            log = os.open(unit["log_file"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as error:
            return self._failed_start(unit, error, log_it=False)
        if self._wants_warm(unit):
            try:
                return self._start_warm(unit, argv, log)
            except self.warm.WarmUnavailableError:
                pass  # it runs cold and meets, in its own log, whatever stopped warm
            except OSError as error:
                os.close(log)
                return self._failed_start(unit, error, log_it=True)
        try:
            process = subprocess.Popen(
                argv,
                cwd=unit.get("cwd"),
                env=env,
                stdin=self.devnull,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        except OSError as error:
            return self._failed_start(unit, error, log_it=True)
        finally:
            os.close(log)
        self.running[process.pid] = _Running(unit, process)
        return None

    def _wants_warm(self, unit: dict[str, Any]) -> bool:
        return (
            self.pool is not None and bool(unit.get("warm")) and self.warm.warm_form(unit["argv"])
        )

    def _start_warm(self, unit: dict[str, Any], argv: list[str], log: int) -> None:
        """Hand the unit to a warm parent (raises WarmUnavailableError: run it cold)."""
        env = {**os.environ, **unit["env"]} if unit.get("env") else dict(os.environ)
        self.pool.submit(
            unit["unit_id"], argv, unit.get("cwd") or os.getcwd(), env, unit["log_file"]
        )
        os.close(log)
        self.warm_running[unit["unit_id"]] = _Running(unit, None, warm=True)

    def _failed_start(self, unit: dict[str, Any], error: OSError, log_it: bool) -> int:
        # Like a shell: 127 for "not found", 126 for anything else that stops the exec.
        code = 127 if isinstance(error, FileNotFoundError) else 126
        message = f"fractal-like worker: cannot start unit {unit['unit_id']}: {error}\n"
        if log_it:
            try:
                with open(unit["log_file"], "a", encoding="utf-8") as handle:
                    handle.write(message)
            except OSError:
                pass
        sys.stderr.write(message)
        self._finish(_Running(unit, None), code, None, error=str(error))
        return code

    def _finish(
        self,
        entry: _Running,
        code: int,
        signum: int | None,
        error: str | None = None,
    ) -> None:
        unit = entry.unit
        ended = time.time()
        result: dict[str, Any] = {
            "unit_id": unit["unit_id"],
            "exit_code": code,
            "started": _utc(entry.started),
            "ended": _utc(ended),
            "host": self.host,
            "pid": entry.pid,
            "seconds": round(time.monotonic() - entry.started_monotonic, 6),
            "warm": entry.warm,
        }
        if signum is not None:
            result["signal"] = _signal_name(signum)
        if error is not None:
            result["error"] = error
        try:
            with open(unit["result_file"], "w", encoding="utf-8") as handle:
                json.dump(result, handle)
            _write_exit_code(unit["exit_code_file"], code)  # last: "the unit is finished"
        except OSError as problem:
            sys.stderr.write(
                f"fractal-like worker: cannot record unit {unit['unit_id']}: {problem}\n"
            )
        self._report({"unit_id": unit["unit_id"], "exit_code": code, "warm": entry.warm})

    def _reap(self) -> list[tuple[_Running, int, int | None, str | None]]:
        """Collect every unit that ended, without blocking: children, and warm ones."""
        ended: list[tuple[_Running, int, int | None, str | None]] = []
        while self.running or (self.pool is not None and self.pool.parents):
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            entry = self.running.pop(pid, None)
            if entry is None:
                if self.pool is not None:
                    self.pool.reaped(pid, status)  # a warm parent: the pool handles its death
                continue
            if os.WIFSIGNALED(status):
                signum: int | None = os.WTERMSIG(status)
                code = 128 + signum
            else:
                signum, code = None, os.WEXITSTATUS(status)
            if entry.process is not None:
                entry.process.returncode = code  # so Popen never waits for it again
            ended.append((entry, code, signum, None))
        if self.pool is not None:
            for event in self.pool.collect():
                warm = self.warm_running.get(event.token)
                if warm is None:
                    continue
                warm.pid = event.pid
                if event.kind != "started":
                    del self.warm_running[event.token]
                    ended.append((warm, event.code or 0, event.signum, event.reason))
        return ended

    # -- killing

    def _group_alive(self, pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return _has_live_member(pgid)

    def _signal_groups(self, groups: list[int], signum: int) -> None:
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signum)

    def kill_running(self) -> None:
        """SIGTERM every running unit's process group, SIGKILL what is left after the grace.

        Killed units get no files: they did not finish, and a restart may run them again.
        """
        groups = list(self.running)  # each unit leads its own session, so pgid == pid
        self._signal_groups(groups, signal.SIGTERM)
        if self.pool is not None:
            self._reap()  # learn the pids of warm units that just started
            for unit_id in self.warm_running:
                self.pool.kill(unit_id, signal.SIGTERM)
        groups += [entry.pid for entry in self.warm_running.values() if entry.pid is not None]
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while time.monotonic() < deadline:
            self._reap()
            # A group outlives its leader while grandchildren remain: wait for all of them.
            if (
                not self.running
                and not self.warm_running
                and not any(self._group_alive(pgid) for pgid in groups)
            ):
                break
            self._wait_for_event(0.05)
        self._signal_groups([pgid for pgid in groups if self._group_alive(pgid)], signal.SIGKILL)
        if self.pool is not None:
            for unit_id in self.warm_running:
                self.pool.kill(unit_id, signal.SIGKILL)  # even one whose pid came only now
            self.warm_running.clear()
        for pid in list(self.running):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            entry = self.running.pop(pid)
            if entry.process is not None:
                entry.process.returncode = -signal.SIGKILL

    # -- the loop

    def _fill(self, pending: Iterator[dict[str, Any]]) -> None:
        """Start units in order until `parallelism` run, the list ends, or we must stop."""
        while self.stop_signal is None and not self.failed:
            if len(self.running) + len(self.warm_running) >= self.parallelism:
                return
            unit = next(pending, None)
            if unit is None:
                return
            previous = finished_code(unit)
            if previous is not None:
                self._report({"unit_id": unit["unit_id"], "exit_code": previous, "skipped": True})
                continue
            code = self._start(unit)
            self.failed = self.fail_fast and code not in (None, 0)

    def busy(self) -> bool:
        return bool(self.running or self.warm_running)

    def run(self) -> int:
        try:
            return self._run()
        finally:
            if self.pool is not None:
                self.pool.close()

    def _run(self) -> int:
        pending = iter(self.units)
        while True:
            self._fill(pending)
            if self.stop_signal is not None:
                break
            if self.failed and self.busy():
                self.kill_running()
                continue
            if not self.busy():
                return EXIT_OK
            self._wait_for_event()
            # A stop is checked before reaping: units killed by the same scancel must not
            # be recorded as finished.
            if self.stop_signal is not None:
                break
            for entry, code, signum, error in self._reap():
                if error is not None:
                    _log_line(entry.unit, f"fractal-like worker: {error}\n")
                self._finish(entry, code, signum, error=error)
                self.failed = self.failed or (self.fail_fast and code != 0)
        self.kill_running()
        return EXIT_STOPPED


def _log_line(unit: dict[str, Any], message: str) -> None:
    with contextlib.suppress(OSError), open(unit["log_file"], "a", encoding="utf-8") as handle:
        handle.write(message)


def _load_warm() -> Any:
    """warm.py beside this file as a module, or None (then every unit runs cold).

    Loaded by path, not imported: this file may run alone, copied next to a job.
    """
    folder = os.path.dirname(os.path.abspath(__file__))
    for name in _WARM_FILES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        spec = importlib.util.spec_from_file_location("fractal_like_warm", path)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # an unusable copy must not stop the cold path
            sys.stderr.write(f"fractal-like worker: warm start off ({error})\n")
            return None
        return module
    return None


def _has_live_member(pgid: int) -> bool:
    """Whether a process group still has a member that is not a zombie.

    Orphaned grandchildren are adopted by init; where init is slow to reap (containers),
    their zombies keep the group "alive" for kill(0) although nothing runs any more.
    """
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no /proc: trust kill(0)
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _write_pid_file(path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: remote.py BATCH_JSON\n")
        return EXIT_MALFORMED
    try:
        batch = load_batch(args[0])
    except BatchError as error:
        sys.stderr.write(f"fractal-like worker: malformed batch: {error}\n")
        return EXIT_MALFORMED
    worker = Worker(batch)
    worker.install_signals()
    if batch.get("pid_file"):
        try:
            _write_pid_file(batch["pid_file"])
        except OSError as error:
            sys.stderr.write(f"fractal-like worker: cannot write the pid file: {error}\n")
            return EXIT_SETUP_FAILED
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
