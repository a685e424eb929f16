"""A runner in the same process as the API claims a submitted job at once, not at its next poll."""

from __future__ import annotations

import asyncio
import contextlib
import time

from fractal_like.config import Settings
from fractal_like.runner.main import Runner
from fractal_like.services.jobs import job_submitted_hooks

from ..support.helpers import ApiClient
from ..support.runner_support import new_scene

POLL_SECONDS = 30.0  # far longer than the test may wait: only the wake-up can claim in time


def test_a_job_submitted_in_this_process_is_claimed_at_once(
    api: ApiClient, settings: Settings
) -> None:
    scene = new_scene(api)

    async def go() -> float:
        runner = Runner(settings.model_copy(update={"RUNNER_POLL_SECONDS": POLL_SECONDS}))
        task = asyncio.create_task(runner.run_forever())
        try:
            await asyncio.sleep(1.0)  # its first poll is behind it: now it waits 30 s
            started = time.monotonic()
            # The API runs in the TestClient's own thread and loop, as in the benchmark.
            job_id = await asyncio.to_thread(
                scene.submit_steps, ("create_images", {"args_non_parallel": {"num_images": 1}})
            )
            while (await runner.queue.statuses([job_id]))[job_id] == "submitted":
                assert time.monotonic() - started < 10, "the job waited for the next poll"
                await asyncio.sleep(0.02)
            return time.monotonic() - started
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    assert asyncio.run(go()) < 10
    assert job_submitted_hooks == [], "a stopped runner leaves no hook behind"
