"""Warm start, the parent side: run `<python> <script.py>` units as forks of a parent that
imported the script once.

STDLIB ONLY, Python >= 3.9 syntax, no relative imports: the worker starts this file by path
(`<task python> warm.py SCRIPT`) with the task's own interpreter, which may be any Python
3.9+ on a cluster node. Its client, `WarmPool`, lives in `warm_pool.py`. Whether a unit runs
warm is decided by the runner and written into the batch; this file never decides it.

* the **warm parent**, `<python> warm.py <script>`: one long-lived, single-threaded process
  per (interpreter, task script, interpreter environment). It prepares the script once:
  with a top-level `if __name__ == "__main__":` guard, everything before the guard (imports,
  definitions, decorators) runs in the parent, in a module that is already `__main__` (so
  functions and classes pickle by name for multiprocessing); without a guard the top level
  is the task's work, so only its top-level imports run in the parent. A script whose
  preparation fails (syntax error, an exception before the guard) runs cold. For each unit
  request read from its stdin, the parent forks a child. The child starts a new session,
  restores the signal handlers Python starts with, sets argv, the working folder, the
  environment, stdin (/dev/null) and stdout/stderr (the unit's log, appended), and runs the
  guard and what follows it (or, without a guard, the whole script in a new `__main__` with
  `__file__` = the script and `__spec__` None, as for `python script.py`). It ends as a
  cold interpreter would: SystemExit codes, an uncaught exception's traceback (without this
  file's frames) and exit code 1, non-daemon threads joined, atexit handlers run, stdio
  flushed, `os._exit`. The parent writes JSON lines to its original stdout:
  `{"event": "ready"}` once, then `{"event": "started", "id", "pid"}` and `{"event":
  "exited", "id", "pid", "code", "signal"}` per unit (code 128 + n for a death by signal n,
  like the batch worker).

What differs from a cold run, by design: what runs in the parent is not run again (output
printed while importing or before the guard shows only in a cold unit's log; state computed
there from the environment, the working folder or argv is the parent's, which started with
the first unit's environment and folder), all children share the parent's hash seed, and
objects of the parent are frozen for the garbage collector (`gc.freeze`). Tasks for which
this matters set the task meta `warm_start: false`. `random` reseeds itself after a fork;
numpy's legacy global generator does not, so the child reseeds it when numpy is loaded.
"""

from __future__ import annotations
import __future__

import ast
import atexit
import builtins
import contextlib
import gc
import json
import os
import select
import signal
import sys
import types
import warnings
from collections.abc import Callable
from importlib.machinery import SourceFileLoader
from typing import Any

PROTOCOL = "fractal-like-warm/1"
PRELOAD_NAME = "__fractal_like_warm_preload__"

# Python's own handlers as this interpreter started (SIGINT raises KeyboardInterrupt, SIGPIPE
# and SIGXFSZ ignored): what a child gets back, whatever the parent installs later.
_STARTUP_HANDLERS: dict[int, Any] = {}
for _signum in signal.valid_signals():
    with contextlib.suppress(OSError, ValueError, RuntimeError):
        _handler = signal.getsignal(_signum)
        if _handler is not None:
            _STARTUP_HANDLERS[_signum] = _handler


# ---------------------------------------------------------------------------- the parent


def _imports_only(nodes: list[ast.stmt]) -> bool:
    return all(isinstance(node, (ast.Import, ast.ImportFrom, ast.Pass)) for node in nodes)


def _worth_preloading(node: ast.stmt) -> bool:
    """An import, or a `try` made of imports (the `from . import x` / `import x` fallback)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return True
    return (
        isinstance(node, ast.Try)
        and _imports_only(node.body + node.orelse + node.finalbody)
        and all(_imports_only(handler.body) for handler in node.handlers)
    )


def _is_main_guard(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":` (either way round) at the top level of the script."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [side.id for side in sides if isinstance(side, ast.Name)]
    values = [side.value for side in sides if isinstance(side, ast.Constant)]
    return names == ["__name__"] and values == ["__main__"]


def _compile(nodes: list[ast.stmt], script: str, flags: int = 0) -> types.CodeType:
    # dont_inherit: this file's own `from __future__ import annotations` must not leak in.
    module = ast.Module(body=nodes, type_ignores=[])
    return compile(module, script, "exec", flags=flags, dont_inherit=True)


def _future_flags(nodes: list[ast.stmt]) -> int:
    flags = 0
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                feature = getattr(__future__, alias.name, None)
                flags |= getattr(feature, "compiler_flag", 0)
    return flags


def _new_main(script: str) -> types.ModuleType:
    """A `__main__` module as `python script.py` makes it (spawn re-runs it by path)."""
    main = types.ModuleType("__main__")
    main.__dict__.update(
        {
            "__file__": script,
            "__cached__": None,
            "__loader__": SourceFileLoader("__main__", script),
            "__spec__": None,
            "__package__": None,
            "__builtins__": builtins,
        }
    )
    return main


class _Prepared:
    """A script split into what the parent runs once and what each child runs.

    With a top-level `if __name__ == "__main__":` guard, the parent runs everything before
    it (imports, definitions, decorators) in a module that is `__main__` already, so
    functions and classes belong to `__main__` and pickle by name; each child runs the guard
    and what follows it in that module. Without a guard, the top level is the task's work:
    the parent runs only its imports, and each child runs the whole script in a new module.
    """

    def __init__(self, source: bytes, script: str) -> None:
        tree = ast.parse(source, script)
        body = tree.body
        guard = next((i for i, node in enumerate(body) if _is_main_guard(node)), None)
        self.script = script
        self.main: types.ModuleType | None = None
        if guard is None:
            self.head: list[types.CodeType] = [
                _compile([node], script) for node in body if _worth_preloading(node)
            ]
            self.tail = _compile(body, script)
        else:
            self.head = [_compile(body[:guard], script)]
            self.tail = _compile(body[guard:], script, _future_flags(body[:guard]))
            self.main = _new_main(script)

    def preload(self) -> None:
        """Run the head once; raises when a guarded script's head fails (then: cold)."""
        if self.main is not None:
            sys.modules["__main__"] = self.main  # for code that looks itself up by name
            exec(self.head[0], self.main.__dict__)
            return
        namespace: dict[str, Any] = {"__name__": PRELOAD_NAME, "__builtins__": builtins}
        # One by one: a failing import (a relative one, say) must not stop the rest, and
        # costs nothing, since the child runs the whole script again anyway.
        for statement in self.head:
            try:
                exec(statement, namespace)
            except BaseException:
                continue

    def child_module(self) -> types.ModuleType:
        return self.main if self.main is not None else _new_main(self.script)


class _Parent:
    """The warm parent's loop: read requests, fork children, reap them, report."""

    def __init__(self, prepared: _Prepared, requests: int, events: int) -> None:
        self.prepared = prepared
        self.requests = requests
        self.events = events
        self.children: dict[int, int] = {}  # pid -> request id
        self.buffer = b""
        self.wakeup_read, self.wakeup_write = os.pipe()

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            written = os.write(self.events, data)
            data = data[written:]

    def serve(self) -> int:
        for fd in (self.wakeup_read, self.wakeup_write):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wakeup_write, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        self.send({"event": "ready", "protocol": PROTOCOL, "pid": os.getpid()})
        open_requests = True
        while open_requests or self.children:
            watched = [self.wakeup_read] + ([self.requests] if open_requests else [])
            readable, _, _ = select.select(watched, [], [])
            if self.wakeup_read in readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self.wakeup_read, 4096):
                        pass
            self.reap()
            if open_requests and self.requests in readable:
                chunk = os.read(self.requests, 1 << 16)
                if not chunk:
                    # The client is gone or done: nobody would read what children report.
                    return 0
                self.buffer += chunk
                *lines, self.buffer = self.buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.start(json.loads(line))
        return 0

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            request_id = self.children.pop(pid, None)
            if request_id is None:
                continue
            signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            code = 128 + signum if signum is not None else os.WEXITSTATUS(status)
            self.send(
                {"event": "exited", "id": request_id, "pid": pid, "code": code, "signal": signum}
            )

    def start(self, request: dict[str, Any]) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()  # nothing buffered here may end up in a unit's log
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() once a library started threads; the parent is
            # single-threaded itself and the child runs one thread of Python, like a cold run.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            code = 127
            try:
                code = _run_child(self, request)
            finally:
                os._exit(code)
        self.children[pid] = request["id"]
        self.send({"event": "started", "id": request["id"], "pid": pid})


# ---------------------------------------------------------------------------- the child


def _run_child(parent: _Parent, request: dict[str, Any]) -> int:
    """Become the unit; return its exit code (the caller `os._exit`s with it)."""
    os.setsid()  # own session and process group: the unit can be killed as a whole
    signal.set_wakeup_fd(-1)
    for signum, handler in _STARTUP_HANDLERS.items():
        if signal.getsignal(signum) is not handler:  # only what the parent changed
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                signal.signal(signum, handler)
    for fd in (parent.requests, parent.events, parent.wakeup_read, parent.wakeup_write):
        with contextlib.suppress(OSError):
            os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    try:
        os.chdir(request["cwd"])
    except OSError as error:
        sys.stderr.write(f"fractal-like warm start: cannot enter {request['cwd']}: {error}\n")
        sys.stderr.flush()
        return 127 if isinstance(error, FileNotFoundError) else 126
    if request.get("env") is not None:  # None: the parent's own, which it started with
        os.environ.clear()
        os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    with contextlib.suppress(AttributeError):
        sys.orig_argv = [sys.executable, *request["argv"]]
    _reseed_numpy()
    main = parent.prepared.child_module()
    sys.modules["__main__"] = main
    interrupted = False
    try:
        exec(parent.prepared.tail, main.__dict__)
        code = 0
    except SystemExit as stop:
        code = _system_exit_code(stop)
    except BaseException as error:
        interrupted = isinstance(error, KeyboardInterrupt)
        _print_uncaught(error)
        code = 1
    code = _finalize(code)
    if interrupted:
        # A cold Python killed by an uncaught KeyboardInterrupt dies of SIGINT.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def _reseed_numpy() -> None:
    numpy_random = sys.modules.get("numpy.random")
    seed = getattr(numpy_random, "seed", None)
    if callable(seed):
        with contextlib.suppress(Exception):
            seed()


def _system_exit_code(stop: SystemExit) -> int:
    value = stop.code
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    with contextlib.suppress(Exception):
        sys.stderr.write(f"{value}\n")
    return 1


def _print_uncaught(error: BaseException) -> None:
    # Drop this file's frames: the traceback starts at the script, as in a cold run.
    traceback_ = error.__traceback__
    while traceback_ is not None and traceback_.tb_frame.f_code.co_filename == __file__:
        traceback_ = traceback_.tb_next
    error.__traceback__ = traceback_
    try:
        sys.excepthook(type(error), error, traceback_)
    except BaseException:
        import traceback

        traceback.print_exception(type(error), error, traceback_)


def _finalize(code: int) -> int:
    """What a cold interpreter does on its way out, in its order: threads, atexit, flush."""
    threading = sys.modules.get("threading")
    shutdown: Callable[[], None] | None = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        with contextlib.suppress(BaseException):
            shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            if stream is sys.stdout and code == 0:
                code = 120  # what Python exits with when flushing stdout fails at exit
    return code


def parent_main(script: str) -> int:
    """`python warm.py SCRIPT`: preload SCRIPT's imports, then serve unit requests."""
    requests = os.dup(0)
    events = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)  # the preload's own output goes nowhere (the child repeats it)
    os.close(devnull)
    sys.path[0] = os.path.dirname(script)  # as for `python script.py`
    sys.argv = [script]
    try:
        with open(script, "rb") as handle:
            prepared = _Prepared(handle.read(), script)
        prepared.preload()
    except BaseException as error:
        # A cold run meets this in the unit's own log: the client runs such units cold.
        reason = f"{type(error).__name__}: {error}"[:2000]
        _send_once(events, {"event": "unusable", "reason": reason})
        return 0
    _warm_up_argparse()
    # Objects that exist now are never collected by the children's garbage collector: its
    # passes would write to (and so copy) every page the parent's heap shares with them.
    gc.freeze()
    parent = _Parent(prepared, requests, events)
    try:
        return parent.serve()
    except BrokenPipeError:
        return 0  # the client went away


def _warm_up_argparse() -> None:
    """Parse the contract's two flags once here, when the script uses argparse.

    Pure computation, nothing a unit could see: it fills caches (compiled regular
    expressions, mostly) that each child would otherwise rebuild, page fault by page fault
    on memory it shares with the parent — measured here: 860 page faults and ~10 ms per
    unit without it, 310 and ~2.5 ms with it.
    """
    argparse = sys.modules.get("argparse")
    if argparse is None:
        return
    with contextlib.suppress(Exception):
        parser = argparse.ArgumentParser(prog="fractal-like-warm-up")
        parser.add_argument("--args-json", required=True)
        parser.add_argument("--out-json", required=True)
        parser.parse_args(["--args-json", "args.json", "--out-json", "out.json"])


def _send_once(fd: int, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, (json.dumps(message) + "\n").encode())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: warm.py SCRIPT\n")
        sys.exit(2)
    sys.exit(parent_main(os.path.abspath(sys.argv[1])))
