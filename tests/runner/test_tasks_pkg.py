"""The test task package (tests/support/tasks_pkg): every script run as the runner runs it.

Each task is called as a real process, `python <script> --args-json A --out-json B`, with an
argv list and a temporary working folder, exactly as the task-call contract prescribes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PKG_ROOT = Path(__file__).parents[1] / "support" / "tasks_pkg" / "fl_test_tasks"
MANIFEST_PATH = PKG_ROOT / "__FRACTAL_MANIFEST__.json"
MANIFEST: dict[str, Any] = json.loads(MANIFEST_PATH.read_text())
TASKS: dict[str, dict[str, Any]] = {task["name"]: task for task in MANIFEST["task_list"]}
OUTPUT_KEYS = {"image_list_updates", "image_list_removals"}
TIMEOUT = 30


@dataclass
class Call:
    returncode: int
    stdout: str
    stderr: str
    out_path: Path

    @property
    def output(self) -> Any:
        return json.loads(self.out_path.read_text())


def script(task: str, step: str = "parallel") -> Path:
    """The script of one step (`parallel` or `non_parallel`) of a manifest task."""
    executable = TASKS[task][f"executable_{step}"]
    return PKG_ROOT / executable


def call(tmp_path: Path, task: str, args: dict[str, Any], step: str = "parallel") -> Call:
    """Run one task step as a process in a fresh working folder under tmp_path."""
    workdir = tmp_path / f"call-{task}-{step}-{time.monotonic_ns()}"
    workdir.mkdir()
    args_path = workdir / "args.json"
    args_path.write_text(json.dumps(args))
    out_path = workdir / "metadiff.json"
    command = [
        sys.executable,
        str(script(task, step)),
        "--args-json",
        str(args_path),
        "--out-json",
        str(out_path),
    ]
    proc = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=TIMEOUT)
    return Call(proc.returncode, proc.stdout, proc.stderr, out_path)


def assert_ok(result: Call) -> None:
    assert result.returncode == 0, result.stderr


def assert_contract_output(output: Any) -> None:
    """Only the keys a Fractal task output may have, and zarr_url on every update."""
    assert isinstance(output, dict)
    assert set(output) <= OUTPUT_KEYS
    for update in output.get("image_list_updates", []):
        assert set(update) <= {"zarr_url", "origin", "attributes", "types"}
        assert isinstance(update["zarr_url"], str)


# --- The manifest ----------------------------------------------------------------------------


def test_manifest_lists_every_script_and_every_executable_exists() -> None:
    assert MANIFEST["manifest_version"] == "2"
    assert MANIFEST["has_args_schemas"] is False
    assert MANIFEST["authors"] == "fractal-like"
    assert len(TASKS) == len(MANIFEST["task_list"]), "task names must be unique"

    executables = set()
    for task in MANIFEST["task_list"]:
        for key in ("input_types", "output_types", "meta_non_parallel", "meta_parallel"):
            assert isinstance(task[key], dict), (task["name"], key)
        assert task["category"] and isinstance(task["tags"], list) and task["docs_info"]
        for step in ("non_parallel", "parallel"):
            executable = task.get(f"executable_{step}")
            if executable is not None:
                assert not Path(executable).is_absolute()
                assert (PKG_ROOT / executable).is_file(), executable
                executables.add(executable)

    scripts = {path.name for path in PKG_ROOT.glob("*.py") if not path.name.startswith("_")}
    assert scripts == executables


def test_manifest_types_match_the_executables() -> None:
    expected = {
        "converter_non_parallel": (True, False),
        "non_parallel": (True, False),
        "parallel": (False, True),
        "compound": (True, True),
        "converter_compound": (True, True),
    }
    for task in MANIFEST["task_list"]:
        has = ("executable_non_parallel" in task, "executable_parallel" in task)
        assert expected[task["type"]] == has, task["name"]
    assert TASKS["create_images"]["type"] == "converter_non_parallel"
    assert TASKS["create_images_compound"]["type"] == "converter_compound"
    assert TASKS["illumination_correction"]["type"] == "compound"
    assert TASKS["project_to_2d"]["input_types"] == {"is_3D": True}
    assert TASKS["project_to_2d"]["output_types"] == {"is_3D": False}


def test_manifest_is_accepted_by_the_server_schema() -> None:
    from fractal_like.schemas.task import Manifest

    manifest = Manifest.model_validate(MANIFEST)
    assert [task.name for task in manifest.task_list] == list(TASKS)


def test_scripts_import_only_the_standard_library(tmp_path: Path) -> None:
    """Run without site-packages (-S) and list every module outside the standard library."""
    modules = sorted(path.stem for path in PKG_ROOT.glob("*.py") if path.stem != "__init__")
    probe = (
        "import sys\n"
        f"sys.path.insert(0, {str(PKG_ROOT)!r})\n"
        f"own = {modules!r}\n"
        "for name in own:\n"
        "    __import__(name)\n"
        "top = {name.split('.')[0] for name in sys.modules}\n"
        # multiprocessing names the main module __mp_main__ too (use_threads imports it)
        "print(sorted(top - set(sys.stdlib_module_names) - set(own) - {'__main__', "
        "'__mp_main__'}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --- The contract itself ---------------------------------------------------------------------


@pytest.mark.parametrize("flags", [[], ["--args-json", "a.json"], ["--out-json", "o.json"]])
def test_both_flags_are_required(tmp_path: Path, flags: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, str(script("no_output")), *flags],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 2
    assert "required" in proc.stderr


def test_an_existing_out_json_is_never_overwritten(tmp_path: Path) -> None:
    zarr_dir = tmp_path / "zarr"
    args_path = tmp_path / "args.json"
    args_path.write_text(json.dumps({"zarr_dir": str(zarr_dir)}))
    out_path = tmp_path / "out.json"
    out_path.write_text("previous")
    proc = subprocess.run(
        [
            sys.executable,
            str(script("create_images", "non_parallel")),
            "--args-json",
            str(args_path),
            "--out-json",
            str(out_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 1
    assert "already exists" in proc.stderr
    assert out_path.read_text() == "previous"
    assert not zarr_dir.exists(), "the task must not run when its output cannot be written"


def test_unknown_or_missing_arguments_fail_clearly(tmp_path: Path) -> None:
    unknown = call(tmp_path, "no_output", {"zarr_url": "/x", "surprise": 1})
    assert unknown.returncode == 1
    assert "invalid arguments for task no_output" in unknown.stderr
    missing = call(tmp_path, "no_output", {})
    assert missing.returncode == 1
    assert "zarr_url" in missing.stderr
    assert not unknown.out_path.exists() and not missing.out_path.exists()


# --- Each task -------------------------------------------------------------------------------


def test_create_images(tmp_path: Path) -> None:
    zarr_dir = tmp_path / "zarr"
    result = call(
        tmp_path,
        "create_images",
        {"zarr_dir": str(zarr_dir), "num_images": 2, "plate": "p1", "attribute_extra": {"x": 1}},
        step="non_parallel",
    )
    assert_ok(result)
    output = result.output
    assert_contract_output(output)
    updates = output["image_list_updates"]
    assert [update["zarr_url"] for update in updates] == [
        str(zarr_dir / "p1.zarr" / "A" / "1" / "0"),
        str(zarr_dir / "p1.zarr" / "A" / "2" / "0"),
    ]
    assert updates[1]["attributes"] == {"plate": "p1", "well": "A02", "index": 2, "x": 1}
    assert all(update["types"] == {"is_3D": True} for update in updates)
    for update in updates:
        assert (Path(update["zarr_url"]) / "data.txt").is_file()


def test_create_images_defaults(tmp_path: Path) -> None:
    result = call(tmp_path, "create_images", {"zarr_dir": str(tmp_path / "z")}, "non_parallel")
    assert_ok(result)
    updates = result.output["image_list_updates"]
    assert len(updates) == 3
    assert updates[0]["attributes"] == {"plate": "plate", "well": "A01", "index": 1}


def test_measure_intensity_records_every_call(tmp_path: Path) -> None:
    zarr_url = tmp_path / "zarr" / "img"
    results = [call(tmp_path, "measure_intensity", {"zarr_url": str(zarr_url)}) for _ in range(2)]
    for result in results:
        assert_ok(result)
        assert result.output == {
            "image_list_updates": [{"zarr_url": str(zarr_url), "attributes": {"measured": True}}]
        }
    lines = (zarr_url / "runs.log").read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        name, pid, stamp = line.split()
        assert name == "measure_intensity" and int(pid) > 0
        assert abs(float(stamp) - time.time()) < 60
    assert lines[0].split()[1] != lines[1].split()[1]
    measurement = json.loads((zarr_url / "measurement.json").read_text())
    assert measurement["zarr_url"] == str(zarr_url)
    assert str(measurement["pid"]) == lines[1].split()[1]


def test_project_to_2d_creates_a_derived_image(tmp_path: Path) -> None:
    zarr_url = tmp_path / "zarr" / "plate.zarr" / "A" / "1" / "0"
    result = call(tmp_path, "project_to_2d", {"zarr_url": f"{zarr_url}/"})
    assert_ok(result)
    new_url = f"{zarr_url}_mip"
    assert result.output == {"image_list_updates": [{"zarr_url": new_url, "origin": str(zarr_url)}]}
    assert (Path(new_url) / "data.txt").is_file()


def test_aggregate_writes_a_summary_and_no_output(tmp_path: Path) -> None:
    zarr_dir = tmp_path / "zarr"
    urls = [str(zarr_dir / "a"), str(zarr_dir / "b")]
    args = {"zarr_urls": urls, "zarr_dir": str(zarr_dir), "output_name": "s.json"}
    result = call(tmp_path, "aggregate", args, "non_parallel")
    assert_ok(result)
    assert not result.out_path.exists()
    assert json.loads((zarr_dir / "s.json").read_text()) == {"count": 2, "zarr_urls": urls}


def test_illumination_correction_compound(tmp_path: Path) -> None:
    zarr_dir = tmp_path / "zarr"
    urls = [str(zarr_dir / "a"), str(zarr_dir / "b")]
    init = call(
        tmp_path,
        "illumination_correction",
        {"zarr_urls": urls, "zarr_dir": str(zarr_dir), "suffix": "flat"},
        "non_parallel",
    )
    assert_ok(init)
    items = init.output["parallelization_list"]
    assert items == [{"zarr_url": url, "init_args": {"suffix": "flat"}} for url in urls]

    compute = call(tmp_path, "illumination_correction", items[0])
    assert_ok(compute)
    assert_contract_output(compute.output)
    assert compute.output["image_list_updates"] == [
        {
            "zarr_url": urls[0],
            "attributes": {"corrected": "flat"},
            "types": {"illumination_corrected": True},
        }
    ]
    (line,) = (Path(urls[0]) / "runs.log").read_text().splitlines()
    assert line.startswith("illumination_correction ")


def test_illumination_correction_default_suffix(tmp_path: Path) -> None:
    args = {"zarr_urls": ["/z/a"], "zarr_dir": "/z"}
    init = call(tmp_path, "illumination_correction", args, "non_parallel")
    assert_ok(init)
    assert init.output["parallelization_list"][0]["init_args"] == {"suffix": "corrected"}


def test_create_images_compound(tmp_path: Path) -> None:
    zarr_dir = tmp_path / "zarr"
    init = call(tmp_path, "create_images_compound", {"zarr_dir": str(zarr_dir)}, "non_parallel")
    assert_ok(init)
    items = init.output["parallelization_list"]
    assert len(items) == 2
    assert all(item["zarr_url"].startswith(f"{zarr_dir}/") for item in items)
    assert not zarr_dir.exists(), "the init step only plans the images"

    for item in items:
        compute = call(tmp_path, "create_images_compound", item)
        assert_ok(compute)
        assert_contract_output(compute.output)
        (update,) = compute.output["image_list_updates"]
        assert update["zarr_url"] == item["zarr_url"]
        assert update["types"] == {"is_3D": True}
        assert update["attributes"]["index"] == item["init_args"]["index"]
        assert (Path(item["zarr_url"]) / "data.txt").is_file()


def test_fail_by_default(tmp_path: Path) -> None:
    result = call(tmp_path, "fail", {"zarr_url": "/z/a"})
    assert result.returncode == 1
    assert "planned failure" in result.stderr
    assert "RuntimeError: planned failure" in result.stderr
    assert not result.out_path.exists()


def test_fail_only_on_matching_images(tmp_path: Path) -> None:
    args = {"fail_on": "B03", "message": "boom on B03"}
    failed = call(tmp_path, "fail", {"zarr_url": "/z/plate.zarr/B03/0", **args})
    assert failed.returncode == 1
    assert "boom on B03" in failed.stderr
    passed = call(tmp_path, "fail", {"zarr_url": "/z/plate.zarr/A01/0", **args})
    assert_ok(passed)
    assert not passed.out_path.exists()


@pytest.mark.parametrize(("args", "code"), [({}, 3), ({"code": 7}, 7)])
def test_exit_code(tmp_path: Path, args: dict[str, Any], code: int) -> None:
    result = call(
        tmp_path, "exit_code", {"zarr_urls": [], "zarr_dir": "/z", **args}, "non_parallel"
    )
    assert result.returncode == code
    assert f"exiting with code {code}" in result.stderr
    assert not result.out_path.exists()


def test_sleep_writes_its_pid_first_and_can_be_killed(tmp_path: Path) -> None:
    zarr_url = tmp_path / "zarr" / "img"
    args_path = tmp_path / "args.json"
    args_path.write_text(json.dumps({"zarr_url": str(zarr_url), "seconds": 30}))
    command = [
        sys.executable,
        str(script("sleep")),
        "--args-json",
        str(args_path),
        "--out-json",
        str(tmp_path / "out.json"),
    ]
    proc = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        pid_file = zarr_url / "sleep.pid"
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.02)
        assert int(pid_file.read_text()) == proc.pid
        assert proc.poll() is None, "the task must still be sleeping"
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert not (tmp_path / "out.json").exists()


def test_sleep_short(tmp_path: Path) -> None:
    result = call(tmp_path, "sleep", {"zarr_url": str(tmp_path / "img"), "seconds": 0.1})
    assert_ok(result)
    assert not result.out_path.exists()
    assert (tmp_path / "img" / "sleep.pid").read_text().strip().isdigit()


def test_allocate_memory(tmp_path: Path) -> None:
    result = call(tmp_path, "allocate_memory", {"zarr_url": "/z/a", "megabytes": 20})
    assert_ok(result)
    assert not result.out_path.exists()
    assert "20 MiB allocated" in result.stdout
    reported = result.stdout.split("max_rss_kb=")[1].split()[0]
    if reported != "None":
        assert int(reported) >= 20 * 1024


def test_noisy_output(tmp_path: Path) -> None:
    result = call(tmp_path, "noisy_output", {"zarr_url": "/z/a", "lines": 101})
    assert_ok(result)
    assert not result.out_path.exists()
    stdout = [line for line in result.stdout.splitlines() if line.startswith("noisy ")]
    stderr = [line for line in result.stderr.splitlines() if line.startswith("noisy ")]
    assert len(stdout) == 51 and len(stderr) == 50
    assert stdout[-1] == "noisy stdout line 100 for /z/a"
    assert stderr[0] == "noisy stderr line 1 for /z/a"


def test_noisy_output_default_is_2000_lines(tmp_path: Path) -> None:
    result = call(tmp_path, "noisy_output", {"zarr_url": "/z/a"})
    assert_ok(result)
    assert sum(line.startswith("noisy ") for line in result.stdout.splitlines()) == 1000
    assert sum(line.startswith("noisy ") for line in result.stderr.splitlines()) == 1000


def test_no_output(tmp_path: Path) -> None:
    result = call(tmp_path, "no_output", {"zarr_url": "/z/a"})
    assert_ok(result)
    assert not result.out_path.exists()


def test_bad_output_outside_zarr_dir(tmp_path: Path) -> None:
    result = call(tmp_path, "bad_output", {"zarr_url": str(tmp_path / "img")})
    assert_ok(result)
    assert result.output == {"image_list_updates": [{"zarr_url": "/outside/zarr_dir"}]}


def test_bad_output_extra_key(tmp_path: Path) -> None:
    result = call(tmp_path, "bad_output_extra_key", {"zarr_url": str(tmp_path / "img")})
    assert_ok(result)
    assert result.output == {"unexpected": 1}
    assert set(result.output) - OUTPUT_KEYS == {"unexpected"}
