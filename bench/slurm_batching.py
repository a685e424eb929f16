"""Benchmark: 2,000 no-op units through the SLURM executor, against one SLURM job array.

Not a test: it prints the sbatch calls, both times and the ratio to the target of the
SLURM issue (runner <= 1.3 x a job array running the same commands).

    bash scripts/slurm-dev-cluster.sh start          # prints: export SLURM_CONF=...
    export SLURM_CONF=/tmp/fractal-like-slurm/slurm.conf
    .venv/bin/python bench/slurm_batching.py                 # 2,000 units
    .venv/bin/python bench/slurm_batching.py --units 200 --target-jobs 4
    .venv/bin/python bench/slurm_batching.py --cold      # runner without warm start only
    .venv/bin/python bench/slurm_batching.py --ssh --warm   # slurm_ssh against slurm_sudo

The runner runs twice, with warm start (the default) and without (the workflow task's
meta `warm_start: false`), unless --warm or --cold picks one.

(a) the runner: a dataset of N images, a workflow of one parallel task whose command is
    `python noop.py`, on a `slurm_sudo` resource whose profile is this account (so no
    sudo hop), submitted through the API (the real app in a TestClient) and run by the
    real Runner in this process; timed from the submit request to the job's end.
(a') with --ssh, the runner twice more as a non-root user (`fl-bench`, made if missing),
    with Debian's /usr/bin/python3: on slurm_sudo (through sudo) and on slurm_ssh (through a
    real sshd started on 127.0.0.1 for the run, tests/support/ssh_support.py); prints the
    ratio ssh/sudo. Needs root and openssh-server.
(b) the array: the same N command lines, their args files written beforehand, as one
    `sbatch --array=0-(N-1)` whose task i runs line i; timed from sbatch to the moment
    the last task's exit-code file exists (each task writes one, as our worker does).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from runner_overhead import ADMIN_EMAIL, ADMIN_PASSWORD, load_images, log, ok
from runner_overhead import prepare as prepare_workflow

from fractal_like.api.app import create_app
from fractal_like.config import Settings
from fractal_like.db import make_async_engine
from fractal_like.migrate import upgrade
from fractal_like.runner.main import Runner

TARGET_RATIO = 1.3
BENCH_USER = "fl-bench"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, for --ssh


@dataclass(frozen=True)
class Login:
    """Who the units run as and how the runner reaches SLURM."""

    label: str
    username: str
    python: str
    ssh: object | None = None  # a tests.support.ssh_support.SshServer for slurm_ssh

    @property
    def kind(self) -> str:
        return "slurm_ssh" if self.ssh is not None else "slurm_sudo"


def slurm_config(target_jobs: int, parallel: int) -> dict:
    return {
        "default_slurm_config": {
            "partition": "main",
            "cpus_per_task": 1,
            "mem": "100M",
            "time": "00:01:00",
        },
        "batching_config": {
            "target_cpus_per_job": parallel,
            "max_cpus_per_job": parallel,
            "target_mem_per_job": f"{100 * parallel}M",
            "max_mem_per_job": "4G",
            "target_num_jobs": target_jobs,
            "max_num_jobs": max(target_jobs, 100),
        },
    }


def prepare(
    client: TestClient,
    workdir: Path,
    noop: Path,
    target_jobs: int,
    parallel: int,
    warm: bool,
    login: Login,
):
    token = ok(
        client.post(
            "/auth/token/login/", data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        ),
        200,
    )["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    config = slurm_config(target_jobs, parallel)
    reach: dict = {}
    profile_extra: dict = {}
    if login.ssh is not None:
        server = login.ssh
        config["ssh"] = {
            "port": server.port,  # type: ignore[attr-defined]
            "known_hosts": str(server.known_hosts),  # type: ignore[attr-defined]
            "slurm_conf": os.environ["SLURM_CONF"],
        }
        reach = {"host": "127.0.0.1"}
        profile_extra = {"ssh_key_path": str(server.user_key)}  # type: ignore[attr-defined]
    resource = ok(
        client.post(
            "/admin/v2/resource/",
            headers=headers,
            json={
                "name": "bench-slurm",
                "type": login.kind,
                "jobs_local_dir": str(workdir / "jobs"),
                "tasks_local_dir": str(workdir / "tasks"),
                "jobs_runner_config": config,
                "jobs_slurm_python_worker": login.python,
                "jobs_poll_interval": 2,
                **reach,
            },
        ),
        201,
    )
    profile = ok(
        client.post(
            f"/admin/v2/resource/{resource['id']}/profile/",
            headers=headers,
            json={
                "name": "bench-profile",
                "resource_type": login.kind,
                "username": login.username,
                "jobs_remote_dir": str(workdir / "user-jobs"),
                **profile_extra,
            },
        ),
        201,
    )
    me = ok(client.get("/auth/current-user/", headers=headers), 200)
    ok(
        client.patch(
            f"/auth/users/{me['id']}/", headers=headers, json={"profile_id": profile["id"]}
        ),
        200,
    )
    # The task, project, dataset and one-task workflow: as in runner_overhead.py.
    setup = prepare_workflow(client, noop, python=login.python)
    workflow = ok(
        client.get(
            f"/api/v2/project/{setup.project_id}/workflow/{setup.workflow_id}/", headers=headers
        ),
        200,
    )
    ok(
        client.patch(
            f"/api/v2/project/{setup.project_id}/workflow/{setup.workflow_id}/wftask/"
            f"{workflow['task_list'][0]['id']}/",
            headers=headers,
            json={"meta_parallel": {"warm_start": warm}},
        ),
        200,
    )
    dataset = {"id": setup.dataset_id, "zarr_dir": setup.zarr_dir}
    return headers, setup.project_id, dataset, setup.workflow_id


async def run_job(settings: Settings, job_id: int) -> tuple[str, int]:
    runner = Runner(settings.model_copy(update={"RUNNER_POLL_SECONDS": 0.05}))
    task = asyncio.create_task(runner.run_forever())
    try:
        while True:
            status = (await runner.queue.statuses([job_id])).get(job_id)
            if status in ("done", "failed"):
                pollers = runner.workflow_runner.slurm.pollers
                return status, sum(poller.squeue_calls for poller in pollers)
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def count_sbatch(url: str, job_id: int) -> int:
    from sqlalchemy import create_engine, text

    from fractal_like.db import sync_url

    engine = create_engine(sync_url(url))
    with engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM slurmjob WHERE job_id = :j"), {"j": job_id}
        ).scalar_one()
    engine.dispose()
    return int(count)


def run_with_runner(
    workdir: Path, units: int, target_jobs: int, parallel: int, warm: bool, login: Login
) -> dict:
    noop = workdir / "noop.py"
    # A database and folders of its own.
    workdir = workdir / f"{login.label}-{'warm' if warm else 'cold'}"
    workdir.mkdir(mode=0o755)
    url = f"sqlite:///{workdir / 'bench.db'}"
    upgrade(url)
    settings = Settings(
        DB_URL=url,
        DATA_DIR=workdir / "data",
        JWT_SECRET="bench-secret-" + secrets.token_hex(20),
        ADMIN_EMAIL=ADMIN_EMAIL,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        EMBEDDED_RUNNER=False,
        BOOTSTRAP_LOCAL_RESOURCE=False,
    )
    (workdir / "user-jobs").mkdir()
    shutil.chown(workdir / "user-jobs", login.username)
    with TestClient(create_app(settings)) as client:
        headers, pid, dataset, workflow_id = prepare(
            client, workdir, noop, target_jobs, parallel, warm, login
        )
        asyncio.run(load_images(url, dataset["id"], dataset["zarr_dir"], units))
        log(f"runner: submitting {units} units")
        started = time.perf_counter()
        job = ok(
            client.post(
                f"/api/v2/project/{pid}/job/submit/"
                f"?workflow_id={workflow_id}&dataset_id={dataset['id']}",
                headers=headers,
                json={},
            ),
            202,
        )
        status, squeue_calls = asyncio.run(run_job(settings, job["id"]))
        seconds = time.perf_counter() - started
        if status != "done":
            shown = ok(client.get(f"/api/v2/project/{pid}/job/{job['id']}/", headers=headers), 200)
            raise RuntimeError(f"the job failed: {shown['executor_error_log']}")
    asyncio.run(make_async_engine(url).dispose())
    return {
        "seconds": seconds,
        "sbatch": count_sbatch(url, job["id"]),
        "squeue": squeue_calls,
    }


ARRAY_SCRIPT = """#!/bin/sh
#SBATCH --job-name=fl-bench-array
#SBATCH --partition=main
#SBATCH --cpus-per-task=1
#SBATCH --mem=100M
#SBATCH --time=00:01:00
i=$SLURM_ARRAY_TASK_ID
{python} {noop} --args-json {folder}/args_$i.json --out-json {folder}/out_$i.json \
    > {folder}/log_$i.txt 2>&1
echo $? > {folder}/exit_$i
"""


def run_with_array(workdir: Path, units: int) -> dict:
    folder = workdir / "array"
    folder.mkdir()
    for index in range(units):
        (folder / f"args_{index}.json").write_text(f'{{"zarr_url": "/data/{index}"}}')
    script = folder / "array.sh"
    script.write_text(
        ARRAY_SCRIPT.format(
            python=shlex.quote(sys.executable),
            noop=shlex.quote(str(workdir / "noop.py")),
            folder=shlex.quote(str(folder)),
        )
    )
    log(f"array: submitting {units} array tasks")
    started = time.perf_counter()
    subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--array=0-{units - 1}",
            f"--output={folder}/slurm-%A_%a.out",
            str(script),
        ],
        check=True,
        capture_output=True,
    )
    remaining = set(range(units))
    while remaining:
        time.sleep(0.2)
        remaining = {index for index in remaining if not (folder / f"exit_{index}").exists()}
    return {"seconds": time.perf_counter() - started, "sbatch": 1}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--target-jobs", type=int, default=10, help="batching: target_num_jobs")
    parser.add_argument(
        "--parallel", type=int, default=os.cpu_count() or 1, help="units at once in a job"
    )
    parser.add_argument("--warm", action="store_true", help="only the runner with warm start")
    parser.add_argument("--cold", action="store_true", help="only the runner without it")
    parser.add_argument(
        "--ssh", action="store_true", help="also slurm_ssh against slurm_sudo, as a non-root user"
    )
    args = parser.parse_args()
    modes = [warm for warm, asked in ((True, args.warm), (False, args.cold)) if asked]
    modes = modes or [True, False]  # neither flag: both, for the warm/cold ratio
    if not os.environ.get("SLURM_CONF"):
        log("SLURM_CONF is not set: start the dev cluster (scripts/slurm-dev-cluster.sh start)")
        return 2
    with tempfile.TemporaryDirectory(prefix="fl-bench-slurm-") as name:
        workdir = Path(name)
        workdir.chmod(0o755)  # the bench user's jobs read the task from here
        (workdir / "noop.py").write_text("")
        logins = [Login("runner", getpass.getuser(), sys.executable)]
        server = None
        if args.ssh:
            server = start_bench_sshd(workdir)
            logins += [
                Login("sudo", BENCH_USER, SYSTEM_PYTHON),
                Login("ssh", BENCH_USER, SYSTEM_PYTHON, server),
            ]
        try:
            sides = {
                f"{login.label} ({'warm' if warm else 'cold'})": run_with_runner(
                    workdir, args.units, args.target_jobs, args.parallel, warm, login
                )
                for login in logins
                for warm in modes
            }
        finally:
            if server is not None:
                server.stop()
        array = run_with_array(workdir, args.units)
    print(f"SLURM batching benchmark: {args.units} no-op units, {os.cpu_count()} cores")
    print("| side          | sbatch calls | squeue calls | seconds | per unit |")
    print("|---------------|--------------|--------------|---------|----------|")
    for label, side in (*sides.items(), ("array", array)):
        print(
            f"| {label:<13} | {side['sbatch']:>12} | {side.get('squeue', '-'):>12} | "
            f"{side['seconds']:>7.2f} | {1000 * side['seconds'] / args.units:>5.1f} ms |"
        )
    for label, side in sides.items():
        ratio = side["seconds"] / array["seconds"]
        print(f"ratio {label}/array: {ratio:.2f} (target <= {TARGET_RATIO})")
    if len(modes) == 2:
        warm, cold = (sides[f"runner ({mode})"]["seconds"] for mode in ("warm", "cold"))
        print(f"ratio warm/cold through SLURM: {warm / cold:.2f}")
    if args.ssh:
        for mode in ("warm" if warm else "cold" for warm in modes):
            ssh, sudo = (sides[f"{label} ({mode})"]["seconds"] for label in ("ssh", "sudo"))
            print(f"ratio slurm_ssh/slurm_sudo ({mode}, as {BENCH_USER}): {ssh / sudo:.2f}")
    return 0


SYSTEM_PYTHON = "/usr/bin/python3"  # readable by the bench user, unlike this venv


def start_bench_sshd(workdir: Path):
    """A real sshd on 127.0.0.1 letting the bench user in (made if missing)."""
    from tests.support.ssh_support import start_sshd

    folder = workdir / "sshd"
    folder.mkdir(mode=0o755)
    return start_sshd(folder, BENCH_USER)


if __name__ == "__main__":
    sys.exit(main())
