"""`fractal-like demo`: a real embedded server, the example tasks, a job run to its end."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fractal_like import demo
from fractal_like.cli import app
from fractal_like.examples import DEMO_TASKS_ROOT


@pytest.fixture
def demo_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo's temporary folders and its current folder live in this test's tmp_path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _image_names(count: int) -> list[str]:
    return [f"demo.zarr/A/{index:02d}/0" for index in range(1, count + 1)]


def _check_success(output: str, images: int) -> None:
    assert "job 1 done" in output
    for name in _image_names(images):
        assert name in output, output
    assert f"demo.zarr/A/{images + 1:02d}/0" not in output
    assert output.count("mean_intensity=") == images
    assert output.count("measured=True") == images
    assert re.search(r"workflow log: +/\S+/jobs/\S+/workflow\.log", output), output
    assert re.search(r"http://127\.0\.0\.1:\d+/api/v2/project/1/job/1/download/", output)
    assert "FRACTAL_USER=admin@example.org" in output and "FRACTAL_PASSWORD=" in output


def test_demo_runs_the_example_workflow(demo_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = demo.run_demo(images=4, keep=False)
    output = capsys.readouterr().out
    assert code == 0, output
    _check_success(output, 4)
    # The progress bar shows every task's units (history tables through the progress route).
    assert re.search(r"2\. measure_demo_image .* 4/4 done", output), output
    assert not list(demo_tmp.iterdir()), "the temporary demo folder must be removed"


def test_demo_command(demo_tmp: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--images", "3", "--no-keep"])
    assert result.exit_code == 0, result.output
    _check_success(result.output, 3)
    assert not list(demo_tmp.iterdir())


def test_failed_job_exits_1_with_the_task_log(
    demo_tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An argument the measure task does not take: its units fail with a TypeError.
    monkeypatch.setattr(demo, "MEASURE_ARGS", {"no_such_argument": 1})
    code = demo.run_demo(images=2, keep=True)
    output = capsys.readouterr().out
    assert code == 1, output
    assert "job 1 failed" in output
    assert "measure_demo_image" in output and "no_such_argument" in output
    (folder,) = demo_tmp.glob("fractal-like-demo-*")  # kept, in the current folder
    assert (folder / "fractal-like.db").exists()
    logs = list(folder.glob("jobs/*/workflow.log"))
    assert logs and str(logs[0]) in output


def test_bad_image_count_is_refused(demo_tmp: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--images", "0", "--no-keep"])
    assert result.exit_code == 2
    assert "--images must be between 1 and" in result.output


def test_demo_tasks_ship_a_manifest_naming_existing_scripts() -> None:
    import json

    manifest = json.loads((DEMO_TASKS_ROOT / "__FRACTAL_MANIFEST__.json").read_text())
    names = [task["name"] for task in manifest["task_list"]]
    assert names == ["create_demo_images", "measure_demo_image", "summarise_demo"]
    for task in manifest["task_list"]:
        for key in ("executable_non_parallel", "executable_parallel"):
            if key in task:
                assert (DEMO_TASKS_ROOT / task[key]).is_file()
