"""The worker: runs one batch of units (`batch.py`), N at a time, then exits.

STDLIB ONLY, Python >= 3.9 syntax: part of the node package (see `__init__.py`). The local
executor starts it as a process of its own session; on SLURM it is the job's one process.

Per unit it writes the args file, removes a stale output, opens the log for the unit's
stdout and stderr and starts the command with `posix_spawn` in its own process group (no
`/bin/sh`, no thread). A unit whose exit-code file already holds a number finished in an
earlier run (a restart, a runner that took the job over): it is skipped, never run twice.
Once a unit has ended, before its process is reaped, the worker writes its result file
(when the batch asks for them) and then its exit-code file (`report.py`): so while the
worker runs, a unit without an exit-code file has not finished; once it is gone, such a
unit never will. Exit codes: 128 + the signal for a unit killed by a signal, 127/126 like
a shell for a program that cannot start, 125 for a warm unit whose parent died.

Stopping: a "stop" line on stdin (with `"control": "stdin"`), SIGTERM or SIGINT (scancel,
a time limit, a runner that took the job over) or, with fail_fast, a failed unit: the
worker starts no more units, sends SIGTERM to every running unit's process group and
SIGKILL after the grace. Killed units get no exit-code file (they did not finish; a
restart may run them again) and a report line with no code. End of file on stdin (the
runner died or shuts down gracefully) starts no more units but lets the running ones end
and records them; a runner that takes the job over waits for this process (`pid_file`).

Memory: with `memory_limit_mb`, every unit (and warm parent, whose children inherit it)
gets that limit on its private writable memory (RLIMIT_DATA) as soon as it has started.
Confinement: with `confine`, the worker confines itself with Landlock (`sandbox.py`)
before any unit starts, so that every unit inherits it.

Output: one report line per ended unit on stdout (`report.py`), written in batches (after
the freed slots got new units, at most every REPORT_SECONDS while units run, at once when
none does): the runner wakes for each write, and each wake-up takes a core from a unit.
Exit status: 0 when it ran what it was asked (even if units failed, or a stop line or
fail_fast stopped it), 1 when it could not write its pid file, 2 for a malformed batch,
143 when a signal stopped it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import select
import shutil
import signal
import sys
import time
from typing import Any

from . import report
from .batch import (
    ARGS_SUFFIX,
    EXIT_CODE_SUFFIX,
    KILL_GRACE_SECONDS,
    LOG_SUFFIX,
    OUTPUT_SUFFIX,
    RESULT_SUFFIX,
    BatchError,
    load_batch,
    unit_file,
)

EXIT_OK = 0
EXIT_SETUP_FAILED = 1
EXIT_MALFORMED = 2
EXIT_STOPPED = 143
# Ended units are reported at most this often (and at once when none runs).
REPORT_SECONDS = 0.25


class Worker:
    def __init__(self, batch: dict[str, Any]) -> None:
        self.units: list[dict[str, Any]] = batch["units"]
        self.commands: list[dict[str, Any]] = batch["commands"]
        self.parallelism: int = batch.get("parallelism", 1)
        self.fail_fast: bool = batch.get("fail_fast", False)
        self.kill_grace = float(batch.get("kill_grace", KILL_GRACE_SECONDS))
        self.result_files: bool = batch.get("result_files", False)
        self.controlled = batch.get("control") == "stdin"
        limit = batch.get("memory_limit_mb")
        self.memory_limit = int(limit) * 1024 * 1024 if limit else None
        self.host = _hostname() if self.result_files else ""
        self.next = 0
        self.running: dict[int, dict[str, Any]] = {}  # pid -> unit
        self.signalled: set[int] = set()  # pids we killed: their end is "stopped"
        self.groups: set[int] = set()  # every process group we killed, for a final SIGKILL
        self.stopping = False
        self.stop_requested = False  # by a "stop" line or a signal: not by fail_fast
        self.stop_signal: int | None = None
        self.runner_gone = False
        self.kill_at: float | None = None
        self.cwd = ""
        # The units' environment, which the runner started us with. A plain copy: posix_spawn
        # converts the mapping at every call, and os.environ decodes each entry on the way.
        self.environ = dict(os.environ)
        self.executables: dict[tuple[int, str | None], str | None] = {}
        self.pool: Any = None  # a WarmPool, made when a unit first runs warm
        self.warm_off = False  # warm start cannot work here: every unit runs cold
        self.warm_running: dict[int, dict[str, Any]] = {}  # unit id -> unit, run warm
        self.warm_signalled: set[int] = set()  # warm unit ids we killed
        self.watched: set[int] = set()  # warm parents' event pipes registered with poll
        self.outbox: list[str] = []  # report lines not yet written (see _send_reports)
        self.last_report = 0.0

    # ------------------------------------------------------------ limits

    def _limit(self, pid: int) -> None:
        """Put the units' memory limit on a process just started (soft and hard, so the
        unit cannot lift it). Set right after the start rather than inherited: lowering
        this process's own limit could fail its own allocations."""
        if self.memory_limit is not None:
            with contextlib.suppress(ProcessLookupError):  # it ended already
                resource.prlimit(pid, resource.RLIMIT_DATA, (self.memory_limit, self.memory_limit))

    # ------------------------------------------------------------ starting units

    def _executable(self, index: int, env: dict[str, str]) -> str | None:
        """The program of a command, looked up once per command and PATH (as exec would)."""
        name = self.commands[index]["argv"][0]
        path = env.get("PATH")
        key = (index, path)
        if key not in self.executables:
            self.executables[key] = name if "/" in name else shutil.which(name, path=path)
        return self.executables[key]

    def _start(self, unit: dict[str, Any]) -> None:
        previous = report.read_exit_code(unit_file(unit, EXIT_CODE_SUFFIX))
        if previous is not None:  # an earlier run finished it: never run it twice
            self._report(unit, previous, None, False, skipped=True)
            return
        env = {**self.environ, **unit["env"]} if unit.get("env") else self.environ
        command = self.commands[unit["command"]]
        output = unit_file(unit, OUTPUT_SUFFIX)
        args_file = unit_file(unit, ARGS_SUFFIX)
        argv = [*command["argv"], "--args-json", args_file, "--out-json", output]
        unit["started"] = time.time()
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(output)
            with open(args_file, "w") as handle:
                json.dump(unit["args"], handle)
            if command.get("warm") and self._start_warm(unit, argv, env):
                return
            if self.stopping or self.runner_gone:
                return  # told to stop while a warm parent was starting: the unit never ran
            if unit["folder"] != self.cwd:
                os.chdir(unit["folder"])  # posix_spawn has no cwd of its own; units share one
                self.cwd = unit["folder"]
            executable = self._executable(unit["command"], env)
            if executable is None:
                raise FileNotFoundError(errno.ENOENT, "command not found", argv[0])
            pid = self._spawn(executable, argv, env, unit_file(unit, LOG_SUFFIX))
        except OSError as error:
            self._cannot_start(unit, argv[0], error)
            return
        unit["pid"] = pid
        self.running[pid] = unit
        self._limit(pid)

    def _spawn(self, executable: str, argv: list[str], env: dict[str, str], log: str) -> int:
        return os.posix_spawn(
            executable,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            # Its own process group, so a stop kills the whole tree. Not its own session:
            # the units share the worker's, so Linux's autogroup scheduling weighs them
            # as one group against other sessions, rather than one group per unit.
            setpgroup=0,
            # Python ignores SIGPIPE; the unit must not inherit that (subprocess resets
            # these too).
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )

    def _start_warm(self, unit: dict[str, Any], argv: list[str], env: dict[str, str]) -> bool:
        """Hand the unit to a warm parent; False when it must run cold instead.

        Raises OSError (e.g. its folder is missing) like a cold start would."""
        pool = self._warm_pool()
        if pool is None:
            return False
        from .warm_pool import WarmUnavailableError

        try:
            pool.submit(unit["id"], argv, unit["folder"], env, unit_file(unit, LOG_SUFFIX))
        except WarmUnavailableError:
            return False  # it runs cold and meets, in its own log, what stopped warm
        self.warm_running[unit["id"]] = unit
        return True

    def _warm_pool(self) -> Any:
        """The warm pool, made on first use (imported late: a cold batch never pays)."""
        if self.pool is None and not self.warm_off:
            try:
                from .warm_pool import WarmPool
            except Exception as error:  # an unusable copy must not stop the cold path
                sys.stderr.write(f"fractal-like worker: warm start off ({error})\n")
                self.warm_off = True
                return None
            self.pool = WarmPool(
                should_abort=self._abort_wait,
                on_parent_started=self._limit,  # its children, the units, inherit the limit
            )
        return self.pool

    def _abort_wait(self) -> bool:
        """While a warm parent imports its script: stop waiting when told to stop."""
        self._read_control()
        return self.stopping or self.stop_requested or self.runner_gone

    def _cannot_start(self, unit: dict[str, Any], program: str, error: OSError) -> None:
        """A program that cannot run fails its unit as it would under a shell (127 / 126)."""
        code = report.start_failure_code(error)
        message = f"fractal-like worker: cannot run {program}: {error}\n"
        _log_line(unit, message)
        sys.stderr.write(message)
        self._finished(unit, code, None, False, error=str(error))

    # ------------------------------------------------------------ units ending

    def _finished(
        self,
        unit: dict[str, Any],
        code: int,
        reason: str | None,
        warm: bool,
        signum: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record a unit that ended by itself: result file, then exit-code file, then line."""
        try:
            if self.result_files:
                self._write_result(unit, code, reason, warm, signum, error)
            report.write_exit_code(unit_file(unit, EXIT_CODE_SUFFIX), code)
        except OSError as problem:
            sys.stderr.write(f"fractal-like worker: cannot record unit {unit['id']}: {problem}\n")
        self._report(unit, code, reason, warm)

    def _write_result(
        self,
        unit: dict[str, Any],
        code: int,
        reason: str | None,
        warm: bool,
        signum: int | None,
        error: str | None,
    ) -> None:
        ended = time.time()
        started = unit.get("started", ended)
        result: dict[str, Any] = {
            "id": unit["id"],
            "code": code,
            "reason": reason,
            "warm": warm,
            "started": report.utc(started),
            "ended": report.utc(ended),
            "seconds": round(ended - started, 6),
            "host": self.host,
            "pid": unit.get("pid"),
        }
        if signum is not None:
            result["signal"] = report.signal_name(signum)
        if error is not None:
            result["error"] = error
        report.write_result(unit_file(unit, RESULT_SUFFIX), result)

    def _reap(self) -> None:
        while True:
            try:
                # WNOWAIT: the exit-code file is written while the process still exists (as a
                # zombie), so "process gone" always implies "exit code recorded".
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            unit = self.running.pop(pid, None)
            if unit is not None:
                self._ended(pid, unit, info)
            _, status = os.waitpid(pid, 0)
            if unit is None and self.pool is not None:
                self.pool.reaped(pid, status)  # a warm parent: the pool reports its units lost

    def _ended(self, pid: int, unit: dict[str, Any], info: os.waitid_result) -> None:
        if pid in self.signalled:
            self.signalled.discard(pid)
            self._report(unit, None, report.STOPPED, False)
            return
        if info.si_code == os.CLD_EXITED:
            self._finished(unit, info.si_status, None, False)
        else:
            signum = info.si_status
            reason = f"killed by {report.signal_name(signum)}"
            self._finished(unit, report.SIGNAL_BASE + signum, reason, False, signum)

    def _collect_warm(self) -> None:
        """Warm units that started or ended, as their parents report them."""
        if self.pool is None:
            return
        for event in self.pool.collect():
            unit = self.warm_running.get(event.token)
            if unit is None:
                continue
            if event.kind == "started":
                unit["pid"] = event.pid
                if self.stopping:  # started after the stop went out: it goes too
                    self._kill_warm(event.token, signal.SIGTERM)
                continue
            del self.warm_running[event.token]
            killed_by_us = event.token in self.warm_signalled
            self.warm_signalled.discard(event.token)
            # A parent that died under a stop we were asked for (scancel signals it too) is
            # part of that stop; one that died by itself fails its units plainly, even when
            # fail_fast has meanwhile signalled them.
            if killed_by_us and (event.kind != "lost" or self.stop_requested):
                self._report(unit, None, report.STOPPED, True)
                continue
            code = event.code if event.code is not None else report.LOST_EXIT_CODE
            reason = event.reason
            if reason is None and event.signum is not None:
                reason = f"killed by {report.signal_name(event.signum)}"
            if event.reason:
                _log_line(unit, f"fractal-like worker: {event.reason}\n")
            self._finished(unit, code, reason, True, event.signum, error=event.reason)

    def _report(
        self,
        unit: dict[str, Any],
        code: int | None,
        reason: str | None,
        warm: bool,
        skipped: bool = False,
    ) -> None:
        if self.fail_fast and code not in (0, None):
            self._stop()
        if self.runner_gone:
            return
        self.outbox.append(report.report_line(unit["id"], code, reason, warm, skipped))

    def _send_reports(self, force: bool = False) -> None:
        """Write the queued lines, once the freed slots have new units, and at most every
        REPORT_SECONDS while units run."""
        if not self.outbox or self.runner_gone:
            self.outbox.clear()
            return
        now = time.monotonic()
        if not force and now < self.last_report + REPORT_SECONDS:
            return  # the poll's timeout brings the loop back in time
        self.last_report = now
        data = "".join(self.outbox).encode()
        self.outbox.clear()
        try:
            while data:
                data = data[os.write(1, data) :]
        except OSError:
            self.runner_gone = True  # the reader went away; the files still record it

    # ------------------------------------------------------------ stopping

    def _stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.kill_at = time.monotonic() + self.kill_grace
        self._kill(signal.SIGTERM)

    def _kill(self, how: signal.Signals) -> None:
        for pid in self.running:
            self.signalled.add(pid)
            self.groups.add(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, how)
        for unit_id in self.warm_running:
            self._kill_warm(unit_id, how)

    def _kill_warm(self, unit_id: int, how: signal.Signals) -> None:
        self.warm_signalled.add(unit_id)
        pid = self.pool.pid_of(unit_id)
        if pid is not None:
            self.groups.add(pid)  # a warm child leads a session (and group) of its own
            self.pool.kill(unit_id, how)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # Only recorded here: the loop acts, when nothing is half-way through.
        self.stop_requested = True
        self.stop_signal = signum

    def _read_control(self) -> None:
        if not self.controlled or self.runner_gone:
            return
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        if not data:
            self.runner_gone = True  # start no more; the running units end by themselves
        elif b"stop" in data:
            self.stop_requested = True

    # ------------------------------------------------------------ the loop

    def run(self) -> int:
        try:
            self._run()
        finally:
            if self.pool is not None:
                self.pool.close()
        return EXIT_STOPPED if self.stop_signal is not None else EXIT_OK

    def _run(self) -> None:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        # Each signal writes a byte to the pipe, so a SIGCHLD that lands between reaping
        # and poll() still wakes poll(): no lost wake-up, no polling.
        signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        poller = select.poll()
        poller.register(wake_read, select.POLLIN)
        if self.controlled:
            os.set_blocking(0, False)
            poller.register(0, select.POLLIN)
        watching_stdin = self.controlled
        while True:
            while (
                not self.stopping
                and not self.stop_requested
                and not self.runner_gone
                and self.next < len(self.units)
                and len(self.running) + len(self.warm_running) < self.parallelism
            ):
                self.next += 1
                self._start(self.units[self.next - 1])
            idle = not self.running and not self.warm_running
            self._send_reports(force=idle or self.stopping)
            if self.stop_requested:
                self._stop()
            if not self.running and not self.warm_running:
                # What a stopped unit left in its group (its children) goes with it.
                for group in self.groups:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(group, signal.SIGKILL)
                self._send_reports(force=True)
                return
            if self.runner_gone and watching_stdin:
                poller.unregister(0)
                watching_stdin = False
            timeout = None
            if self.kill_at is not None:
                timeout = max(0.0, self.kill_at - time.monotonic()) * 1000
            if self.outbox:
                due = max(0.0, self.last_report + REPORT_SECONDS - time.monotonic()) * 1000
                timeout = due if timeout is None else min(timeout, due)
            self._watch_warm_parents(poller)
            for fd, _event in poller.poll(timeout):
                if fd == wake_read:
                    _drain(wake_read)
                elif fd == 0:
                    self._read_control()
            # A stop is acted on before reaping: units killed by the same scancel must not
            # be recorded as finished.
            if self.stop_requested:
                self._stop()
            self._reap()
            self._collect_warm()
            if self.kill_at is not None and time.monotonic() >= self.kill_at:
                self.kill_at = None
                self._kill(signal.SIGKILL)

    def _watch_warm_parents(self, poller: Any) -> None:
        """Poll the event pipes of the warm parents alive now (they come and go)."""
        current = set(self.pool.fds()) if self.pool is not None else set()
        for fd in self.watched - current:
            poller.unregister(fd)
        for fd in current - self.watched:
            poller.register(fd, select.POLLIN)
        self.watched = current


def _hostname() -> str:
    import socket  # only for result files: a local batch never pays for the import

    return socket.gethostname()


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 512):
            pass


def _log_line(unit: dict[str, Any], message: str) -> None:
    with contextlib.suppress(OSError), open(unit_file(unit, LOG_SUFFIX), "a") as handle:
        handle.write(message)


def _confine(paths: list[str]) -> None:
    """Keep every unit to come away from the server's files and process (see sandbox.py)."""
    from . import sandbox

    problem = sandbox.confine(paths)
    if problem:
        sys.stderr.write(f"fractal-like worker: {problem}\n")


def _write_pid_file(path: str) -> None:
    # One small write: a reader never sees a partial number as a whole one.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    """`worker BATCH_JSON`: run the batch; the exit status as the module docstring says."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m fractal_like.runner.node BATCH_JSON\n")
        return EXIT_MALFORMED
    try:
        batch = load_batch(argv[0])
    except BatchError as error:
        sys.stderr.write(f"fractal-like worker: malformed batch: {error}\n")
        return EXIT_MALFORMED
    if batch.get("remove_batch"):
        # Run as a profile's account, the batch lies in the runner's folder: the runner
        # deletes it then.
        with contextlib.suppress(PermissionError):
            os.unlink(argv[0])
    if batch.get("umask") is not None:
        os.umask(batch["umask"])
    if batch.get("pid_file"):
        # Before any unit starts: a runner that takes the job over must find this process.
        try:
            _write_pid_file(batch["pid_file"])
        except OSError as error:
            sys.stderr.write(f"fractal-like worker: cannot write the pid file: {error}\n")
            return EXIT_SETUP_FAILED
    if batch.get("confine") is not None:
        _confine(batch["confine"])
    return Worker(batch).run()
