"""worker_init on a real SLURM job: its lines run before the worker, as the cluster user."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fractal_like.config import Settings

from ..support.helpers import ApiClient
from ..support.runner_support import build_workflow, images, run_until_final, submit
from ..support.slurm_scene import SlurmScene, cleanup, slurm_scene

ONE_DATABASE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture(params=["slurm_sudo", "slurm_ssh"])
def scene(
    api: ApiClient,
    slurm_conf: str,
    slurm_user: tuple[str, int, int],
    request: pytest.FixtureRequest,
) -> Iterator[SlurmScene]:
    """The same scene on both transports: worker_init lives in the sbatch script."""
    ssh = request.getfixturevalue("ssh_server") if request.param == "slurm_ssh" else None
    made = slurm_scene(api, slurm_user, ssh=ssh)
    yield made
    cleanup(made)


def _submit(scene: SlurmScene, worker_init: str) -> int:
    workflow = build_workflow(
        scene.user,
        scene.project["id"],
        [
            (scene.tasks["create_images"], {"args_non_parallel": {"num_images": 2}}),
            (scene.tasks["dump_env"], {}),
        ],
    )
    return submit(
        scene.user,
        scene.project["id"],
        workflow["id"],
        scene.dataset["id"],
        worker_init=worker_init,
    )["id"]


@ONE_DATABASE
def test_exported_and_sourced_variables_reach_the_tasks(
    scene: SlurmScene, settings: Settings
) -> None:
    sourced = scene.root / "worker-env.sh"
    sourced.write_text("export FL_FROM_SOURCE=sourced\n")
    sourced.chmod(0o644)
    job_id = _submit(
        scene, f"# set up\nsource {sourced}\n\nexport FL_THREADS=3\nexport FL_PATHS=/a:/b"
    )
    assert run_until_final(settings, [job_id], timeout=120)[job_id] == "done", scene.job(job_id)[
        "log"
    ]
    found = images(scene.user, scene.project["id"], scene.dataset["id"])
    assert len(found) == 2
    for image in found:
        report = json.loads((Path(image["zarr_url"]) / "dump_env.json").read_text())
        assert report["uid"] == scene.uid
        environ = report["environ"]
        assert (environ["FL_FROM_SOURCE"], environ["FL_THREADS"], environ["FL_PATHS"]) == (
            "sourced",
            "3",
            "/a:/b",
        )
    # The lines as the sbatch scripts hold them, before the worker.
    job = scene.job(job_id)
    # Beside the server's job folder (slurm_sudo) or the cluster's (slurm_ssh).
    scripts = [*Path(job["working_dir"]).rglob("fl-*.sh")]
    scripts += Path(job["working_dir_user"]).rglob("fl-*.sh")
    script = sorted(scripts)[0].read_text()
    assert f". {sourced} || {{" in script
    assert script.index("export FL_THREADS=3") < script.index("exec ")


@ONE_DATABASE
def test_a_worker_init_line_that_fails_ends_the_job_in_plain_words(
    scene: SlurmScene, settings: Settings
) -> None:
    # No environment modules on this machine: `module load` fails, and says which line.
    job_id = _submit(scene, "export FL_A=1\nmodule load no-such-module/1.0")
    assert run_until_final(settings, [job_id], timeout=120)[job_id] == "failed"
    message = scene.job(job_id)["executor_error_log"]
    assert (
        "never started: worker_init line 2 failed: module load no-such-module/1.0 (SLURM job"
        in message
    )
    assert "correct worker_init and submit again" in message
