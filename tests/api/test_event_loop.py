"""A real server stays responsive while large bodies and a large download are in flight.

Measured against `fractal-like serve` in its own process: every `/api/alive/` probe must
answer in under 200 ms, and the server's resident memory must stay bounded, while 20 MB
bodies (authenticated and anonymous), the largest JSON body the default limit accepts, a
200 MB job download read slowly, and 100 MB anonymous bodies go on at the same time. The
probe runs in a process of its own; a round whose slowest probe misses the bound is run again
(at most three rounds in all), since under `pytest -n auto` other tests share the two cores.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..support.helpers import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    UserClient,
    expect,
    make_dataset,
    make_project,
    make_task,
    make_workflow,
)
from ..support.live_server import LiveServer, give_admin_a_profile, start_server

MB = 1024 * 1024
MAX_ALIVE_SECONDS = 0.2
MAX_GROWTH_BYTES = 100 * MB
WARM_UP_PROBES = 3
ROUNDS = 3  # see held_in_one_of_the_rounds


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc")


# The probe runs in a process of its own: in the test's process it would share the GIL with
# the threads that send and read hundreds of MB, and time them rather than the server.
PROBE_SCRIPT = """
import json, select, sys, time
import httpx

with httpx.Client(base_url=sys.argv[1], timeout=30) as client:
    # Not timed: a fresh server's first requests fill its caches, the first one connects.
    for _ in range(int(sys.argv[2])):
        client.get("/api/alive/")
    print("ready", flush=True)
    times = []
    while not select.select([sys.stdin], [], [], 0.05)[0]:
        started = time.perf_counter()
        response = client.get("/api/alive/")
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
print(json.dumps(times), flush=True)
"""


class AliveProbe:
    """Asks /api/alive/ every 50 ms from a process of its own; keeps each answer's time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.times: list[float] = []
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> AliveProbe:
        self._process = subprocess.Popen(
            [sys.executable, "-c", PROBE_SCRIPT, self.url, str(WARM_UP_PROBES)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        assert self._process.stdout.readline().strip() == "ready"
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._process is not None
        output, _ = self._process.communicate("stop\n", timeout=60)
        assert self._process.returncode == 0, output
        self.times = json.loads(output)


def in_threads(*works: Callable[[], Any]) -> list[Any]:
    """Run the works at the same time; their results, or re-raise the first error."""
    results: list[Any] = [None] * len(works)

    def run(index: int, work: Callable[[], Any]) -> None:
        try:
            results[index] = work()
        except BaseException as error:  # handed to the test's thread
            results[index] = error

    threads = [threading.Thread(target=run, args=item) for item in enumerate(works)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def chunks(total: int, chunk: bytes) -> Iterator[bytes]:
    for _ in range(total // len(chunk)):
        yield chunk


def small_ints_json(size: int) -> bytes:
    """The costliest JSON to parse per byte: a long list of one-digit integers."""
    return b'{"name": "p", "pad": [' + b"1," * (size // 2 - 20) + b"1]}"


def post_body(server: LiveServer, token: str | None, body: Any, **headers: str) -> int | str:
    """POST a body to a route that needs a user; the status, or how the server cut it off."""
    if token:
        headers["Authorization"] = f"Bearer {token}"
    headers["content-type"] = "application/json"
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            return client.post("/api/v2/project/", content=body, headers=headers).status_code
    except httpx.TransportError as error:
        # The server answered without reading the body and closed the connection while the
        # client was still sending: the body was refused unread.
        return type(error).__name__


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    live = start_server(db_url, tmp_path, FRACTAL_LIKE_JWT_SECRET=secrets.token_hex(32))
    try:
        yield live
    finally:
        live.stop()


def _job_with_a_big_file(server: LiveServer, tmp_path: Path) -> tuple[str, str]:
    """A submitted job whose folder holds a 200 MB file; its download URL, a token."""
    me = give_admin_a_profile(server, tmp_path)
    client = httpx.Client(base_url=server.url, timeout=30)
    token = client.post(
        "/auth/token/login/", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    ).json()["access_token"]
    admin = UserClient(client, token, me)  # type: ignore[arg-type]
    project = make_project(admin)
    dataset = make_dataset(admin, project["id"])
    workflow = make_workflow(admin, project["id"], [make_task(admin)["id"]])
    job = expect(
        admin.post(
            f"/api/v2/project/{project['id']}/job/submit/"
            f"?workflow_id={workflow['id']}&dataset_id={dataset['id']}",
            json={},
        ),
        202,
    )
    with open(Path(job["working_dir"]) / "big.bin", "wb") as handle:
        for _ in range(200):
            handle.write(os.urandom(MB))  # incompressible: the zip is 200 MB too
    return f"/api/v2/project/{project['id']}/job/{job['id']}/download/", token


def _download_slowly(server: LiveServer, url: str, token: str, peak: list[int]) -> int:
    received = 0
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=server.url, timeout=120) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_bytes(MB):
            received += len(chunk)
            peak.append(resident_bytes(server.process.pid))
            time.sleep(0.01)
    return received


def held_in_one_of_the_rounds(round_: Callable[[], list[float]]) -> list[list[float]]:
    """Run a measured round until its slowest probe answers within the bound, at most
    ROUNDS times; every round's times. A server that blocks its loop on big requests misses
    the bound in every round; a machine busy with other tests only now and then."""
    rounds: list[list[float]] = []
    while len(rounds) < ROUNDS:
        rounds.append(round_())
        if max(rounds[-1]) < MAX_ALIVE_SECONDS:
            break
    print("alive, slowest probe per round (ms):", [round(max(t) * 1000) for t in rounds])
    assert max(rounds[-1]) < MAX_ALIVE_SECONDS, [sorted(times)[-3:] for times in rounds]
    return rounds


def test_alive_answers_quickly_while_big_requests_are_served(
    server: LiveServer, tmp_path: Path
) -> None:
    url, token = _job_with_a_big_file(server, tmp_path)
    pid = server.process.pid
    baseline = resident_bytes(pid)
    rss: list[int] = []
    twenty_mb = b"1," * (10 * MB)

    def round_() -> list[float]:
        with AliveProbe(server.url) as probe:
            statuses = in_threads(
                lambda: _download_slowly(server, url, token, rss),
                lambda: post_body(server, token, twenty_mb),
                lambda: post_body(server, token, chunks(20 * MB, b"1," * (MB // 2))),
                lambda: post_body(server, None, twenty_mb),
                lambda: post_body(server, None, chunks(20 * MB, b"1," * (MB // 2))),
                # Accepted by the default limit (4 MiB), so parsed: in a worker thread.
                lambda: post_body(server, token, small_ints_json(3 * MB)),
            )
        received, *answers = statuses
        assert received > 200 * MB
        assert answers[0] == 413  # declared size over the limit: refused unread
        assert answers[1] in (413, "WriteError", "RemoteProtocolError")  # cut at the limit
        assert answers[2] in (413, "WriteError", "RemoteProtocolError")  # declared: size first
        assert answers[3] in (401, "WriteError", "RemoteProtocolError")
        assert answers[4] == 422  # parsed, then refused: "pad" is not a field
        assert len(probe.times) > 20
        return probe.times

    held_in_one_of_the_rounds(round_)
    assert max(rss) - baseline < MAX_GROWTH_BYTES, (baseline, max(rss))
    print(f"resident: {baseline / MB:.0f} MB, peak {max(rss) / MB:.0f} MB")


def test_anonymous_huge_bodies_leave_memory_alone(server: LiveServer) -> None:
    pid = server.process.pid
    baseline = resident_bytes(pid)
    size = 100 * MB
    declared = {"content-length": str(size)}

    def streamed() -> int | str:
        return post_body(server, None, chunks(size, b"x" * MB))

    def with_length() -> int | str:
        return post_body(server, None, chunks(size, b"x" * MB), **declared)

    def round_() -> list[float]:
        with AliveProbe(server.url) as probe:
            answers = in_threads(streamed, streamed, with_length, with_length)
        refused = (401, 413, "WriteError", "RemoteProtocolError")
        assert all(answer in refused for answer in answers), answers
        return probe.times

    held_in_one_of_the_rounds(round_)
    assert resident_bytes(pid) - baseline < MAX_GROWTH_BYTES
