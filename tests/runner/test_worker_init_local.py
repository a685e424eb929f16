"""worker_init on the local executor: its exports reach every unit's environment."""

from __future__ import annotations

import json
from pathlib import Path

from fractal_like.config import Settings

from ..support.helpers import ApiClient
from ..support.runner_support import build_workflow, images, new_scene, run_until_final, submit


def test_exports_of_worker_init_reach_local_units(api: ApiClient, settings: Settings) -> None:
    scene = new_scene(api)
    workflow = build_workflow(
        scene.user,
        scene.project["id"],
        [
            (scene.tasks["create_images"], {"args_non_parallel": {"num_images": 2}}),
            (scene.tasks["dump_env"], {}),
        ],
    )
    job_id = submit(
        scene.user,
        scene.project["id"],
        workflow["id"],
        scene.dataset["id"],
        worker_init="# for the tasks\nexport FL_GREETING=hello:world\nexport FL_EMPTY=",
    )["id"]
    assert run_until_final(settings, [job_id])[job_id] == "done", scene.job(job_id)["log"]
    found = images(scene.user, scene.project["id"], scene.dataset["id"])
    assert len(found) == 2
    for image in found:
        environ = json.loads((Path(image["zarr_url"]) / "dump_env.json").read_text())["environ"]
        assert environ["FL_GREETING"] == "hello:world"
        assert environ["FL_EMPTY"] == ""
