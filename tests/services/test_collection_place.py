"""Where task groups live: the tasks root of a resource and profile, the interpreters of a
slurm_ssh resource (paths on the login node), and the one rule for removing folders."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from fractal_like.models import Profile, Resource
from fractal_like.services.collection.files import UnsafeRemovalError, checked_target
from fractal_like.services.collection.place import LocalPlace, tasks_root
from fractal_like.services.collection.python import PythonNotAvailableError, choose_python


def _resource(kind: str, **fields: object) -> Resource:
    return Resource(
        name="r", type=kind, tasks_local_dir="/srv/tasks", jobs_local_dir="/srv/jobs", **fields
    )


def test_slurm_ssh_groups_live_under_the_profiles_tasks_remote_dir() -> None:
    ssh = _resource("slurm_ssh", host="login")
    assert tasks_root(ssh, Profile(name="p", resource_id=1, tasks_remote_dir="/home/a/t")) == (
        "/home/a/t"
    )
    with pytest.raises(ValueError, match="has no tasks_remote_dir"):
        tasks_root(ssh, Profile(name="p", resource_id=1))
    with pytest.raises(ValueError, match="must be different folders"):
        tasks_root(ssh, Profile(name="p", resource_id=1, tasks_remote_dir="/srv/tasks/"))
    assert tasks_root(_resource("slurm_sudo"), None) == "/srv/tasks"


def test_a_slurm_ssh_resource_offers_only_its_listed_cluster_pythons() -> None:
    with pytest.raises(PythonNotAvailableError, match="lists no Python interpreter"):
        choose_python(_resource("slurm_ssh", host="login"), None)
    listed = _resource(
        "slurm_ssh",
        host="login",
        tasks_python_config={
            "default_version": "3.12",
            "versions": {"3.12": "/opt/py/bin/python3"},
        },
    )
    # A path on the login node: not looked for on the server.
    assert choose_python(listed, None).interpreter == "/opt/py/bin/python3"
    with pytest.raises(PythonNotAvailableError, match=r"choose one of 3\.12"):
        choose_python(listed, "3.9")


def test_removal_is_refused_outside_the_root_wherever_the_links_are(tmp_path: Path) -> None:
    assert str(checked_target("/t/1/pkg/1.0", "/t", "/t", "/t/1/pkg")) == "/t/1/pkg/1.0"
    for path, parent in (("/t", "/"), ("/other/x", "/other"), ("/t/1/../../etc", "/")):
        with pytest.raises(UnsafeRemovalError):
            checked_target(path, "/t", "/t", parent)
    # A parent that is a link out of the root (resolved where the files are) is refused.
    root, outside = tmp_path / "root", tmp_path / "outside"
    (outside / "x").mkdir(parents=True)
    root.mkdir()
    os.symlink(outside, root / "link")
    place = LocalPlace(str(root), confine=None)
    with pytest.raises(UnsafeRemovalError):
        asyncio.run(place.remove_folder(str(root / "link" / "x"), tidy_parents=False))
    assert (outside / "x").is_dir()
