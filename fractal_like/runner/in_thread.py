"""The embedded runner: a Runner in a thread of its own, with its own event loop and engine.

`serve` runs one beside the API. On the API's event loop, the runner's work (claiming,
history flushes, writing batch files, reading results) delayed requests; in its own
thread it competes for the GIL only, never for the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from ..config import Settings
from .main import Runner

logger = logging.getLogger("fractal_like.runner")


class RunnerThread:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fractal-like-runner", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def stop(self, timeout: float = 60.0) -> None:
        """Cancel the runner (its jobs are taken over later, as after any stop) and wait."""
        if self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("the embedded runner did not stop within %.0f s", timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            # Made inside the thread: its database engine belongs to this loop.
            self._task = loop.create_task(Runner(self.settings).run_forever())
            self._loop = loop
            self._started.set()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
        except Exception:
            logger.exception("the embedded runner stopped on an error")
        finally:
            self._started.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
