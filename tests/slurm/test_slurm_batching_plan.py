"""Batching plans, the effective SLURM section of a task, and SLURM time strings."""

from __future__ import annotations

import pytest

from fractal_like.runner.slurm.batching import (
    BatchingError,
    BatchPlan,
    UnitRequest,
    effective_section,
    format_time_minutes,
    parse_time_minutes,
    plan_batches,
    split_into_batches,
)
from fractal_like.slurm_config import BatchingConfig, SlurmConfig

BATCHING = BatchingConfig(
    target_cpus_per_job=4,
    max_cpus_per_job=8,
    target_mem_per_job="8G",
    max_mem_per_job="16G",
    target_num_jobs=10,
    max_num_jobs=50,
)


def config(**changes: object) -> BatchingConfig:
    return BatchingConfig.model_validate({**BATCHING.model_dump(), **changes})


# ---------------------------------------------------------------------------- plans


def test_200_units_make_10_jobs_of_20() -> None:
    plan = plan_batches(200, UnitRequest(cpus_per_task=1, mem_mb=1000, time_minutes=10), BATCHING)
    assert plan == BatchPlan(
        units_per_job=20,
        parallel_per_job=4,  # CPU target 4 binds before memory (8 units of 1 GB)
        num_jobs=10,
        cpus_per_job=4,
        mem_per_job_mb=4000,
        time_per_job_minutes=50,  # 20 units in 5 waves of 4
    )


def test_the_example_in_docs_slurm_md() -> None:
    batching = config(target_cpus_per_job=2, target_mem_per_job=400, target_num_jobs=4)
    plan = plan_batches(200, UnitRequest(cpus_per_task=1, mem_mb=200, time_minutes=1), batching)
    assert (plan.num_jobs, plan.units_per_job, plan.parallel_per_job) == (4, 50, 2)
    assert (plan.cpus_per_job, plan.mem_per_job_mb, plan.time_per_job_minutes) == (2, 400, 25)


def test_memory_target_can_bind_first() -> None:
    plan = plan_batches(40, UnitRequest(cpus_per_task=1, mem_mb=3000), BATCHING)
    assert plan.parallel_per_job == 2  # 8000 MB / 3000 MB
    assert plan.mem_per_job_mb == 6000 and plan.cpus_per_job == 2


def test_few_units_make_one_job_no_wider_than_needed() -> None:
    plan = plan_batches(3, UnitRequest(cpus_per_task=1, mem_mb=100, time_minutes=5), BATCHING)
    assert (plan.num_jobs, plan.units_per_job, plan.parallel_per_job) == (1, 3, 3)
    assert plan.cpus_per_job == 3 and plan.time_per_job_minutes == 5


def test_a_unit_bigger_than_the_targets_still_runs_alone() -> None:
    plan = plan_batches(5, UnitRequest(cpus_per_task=6, mem_mb=12000), BATCHING)
    assert plan.parallel_per_job == 1 and plan.cpus_per_job == 6 and plan.mem_per_job_mb == 12000


def test_units_per_job_is_raised_to_respect_max_num_jobs() -> None:
    plan = plan_batches(1000, UnitRequest(), config(target_num_jobs=1000, max_num_jobs=1000))
    assert plan.num_jobs == 250 and plan.units_per_job == 4  # at least the parallelism
    plan = plan_batches(10_000, UnitRequest(), config(target_num_jobs=1000, max_num_jobs=1000))
    assert plan.num_jobs == 1000 and plan.units_per_job == 10
    plan = plan_batches(10_001, UnitRequest(), config(target_num_jobs=1000, max_num_jobs=1000))
    assert plan.num_jobs <= 1000


def test_uneven_split_keeps_every_unit() -> None:
    plan = plan_batches(201, UnitRequest(), BATCHING)
    batches = split_into_batches(list(range(201)), plan.units_per_job)
    assert len(batches) == plan.num_jobs == 10
    assert [item for batch in batches for item in batch] == list(range(201))
    assert all(len(batch) <= plan.units_per_job for batch in batches)


def test_explicit_meta_wins_within_the_caps() -> None:
    plan = plan_batches(100, UnitRequest(tasks_per_job=7, parallel_tasks_per_job=6), BATCHING)
    assert (plan.units_per_job, plan.parallel_per_job, plan.num_jobs) == (7, 6, 15)
    assert plan.cpus_per_job == 6  # above the target of 4, within the cap of 8
    capped = plan_batches(100, UnitRequest(cpus_per_task=2, parallel_tasks_per_job=10), BATCHING)
    assert capped.parallel_per_job == 4 and capped.cpus_per_job == 8  # cap: 8 CPUs
    by_memory = plan_batches(
        100, UnitRequest(mem_mb=5000, parallel_tasks_per_job=10, tasks_per_job=10), BATCHING
    )
    assert by_memory.parallel_per_job == 3  # cap: 16000 MB
    assert by_memory.time_per_job_minutes is None and by_memory.mem_per_job_mb == 15000


def test_explicit_tasks_per_job_is_raised_by_max_num_jobs() -> None:
    plan = plan_batches(500, UnitRequest(tasks_per_job=1), BATCHING)
    assert plan.units_per_job == 10 and plan.num_jobs == 50 and plan.parallel_per_job == 4


def test_parallelism_never_exceeds_units_per_job() -> None:
    plan = plan_batches(100, UnitRequest(tasks_per_job=2), BATCHING)
    assert plan.parallel_per_job == 2 and plan.time_per_job_minutes is None


def test_memory_unset_does_not_limit() -> None:
    plan = plan_batches(8, UnitRequest(cpus_per_task=1), config(target_cpus_per_job=8))
    assert plan.parallel_per_job == 8 and plan.mem_per_job_mb is None


def test_time_is_per_unit_time_times_waves() -> None:
    request = UnitRequest(time_minutes=30, tasks_per_job=10, parallel_tasks_per_job=4)
    assert plan_batches(10, request, BATCHING).time_per_job_minutes == 90  # 3 waves


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            UnitRequest(cpus_per_task=9),
            "task asks for 9 CPUs per unit; this resource allows at most 8 per SLURM job",
        ),
        (
            UnitRequest(mem_mb=17000),
            "task asks for 17000 MB of memory per unit; "
            "this resource allows at most 16000 MB per SLURM job",
        ),
    ],
)
def test_a_unit_too_big_for_the_caps_is_refused(request_: UnitRequest, message: str) -> None:
    with pytest.raises(BatchingError) as error:
        plan_batches(10, request_, BATCHING)
    assert str(error.value) == message


def test_no_units_no_plan() -> None:
    with pytest.raises(ValueError, match="no units"):
        plan_batches(0, UnitRequest(), BATCHING)
    assert split_into_batches([], 3) == []


# ---------------------------------------------------------------------------- time strings


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("60", 60),
        (90, 90),
        ("1:00:00", 60),
        ("00:10:00", 10),
        ("00:00:01", 1),  # seconds round up
        ("10:30", 11),  # MM:SS
        ("10:00", 10),
        ("1-00:00", 1440),
        ("2-3", 2 * 1440 + 180),
        ("1-01:02:03", 1440 + 62 + 1),
        (" 5 ", 5),
    ],
)
def test_parse_time(text: str | int, minutes: int) -> None:
    assert parse_time_minutes(text) == minutes


@pytest.mark.parametrize("text", ["", "1h", "0", "00:00:00", "1:60:00", "1-24:00", "-5", "1.5"])
def test_parse_time_refuses(text: str) -> None:
    with pytest.raises(BatchingError):
        parse_time_minutes(text)


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(1, "00:01:00"), (90, "01:30:00"), (1439, "23:59:00"), (1500, "1-01:00:00")],
)
def test_format_time(minutes: int, text: str) -> None:
    assert format_time_minutes(minutes) == text
    assert parse_time_minutes(text) == minutes


# ---------------------------------------------------------------------------- sections


def slurm_config(gpu: bool = True) -> SlurmConfig:
    return SlurmConfig.model_validate(
        {
            "default_slurm_config": {
                "partition": "main",
                "cpus_per_task": 1,
                "mem": "500M",
                "time": "00:10:00",
                "account": "lab",
                "extra_lines": ["#SBATCH --qos=normal"],
            },
            **(
                {
                    "gpu_slurm_config": {
                        "partition": "gpu",
                        "gres": "gpu:1",
                        "mem": "8G",
                        "extra_lines": ["module load cuda"],
                    }
                }
                if gpu
                else {}
            ),
            "batching_config": BATCHING.model_dump(),
        }
    )


def test_default_section() -> None:
    section = effective_section(slurm_config(), {})
    assert section.partition == "main" and section.account == "lab"
    assert (section.cpus_per_task, section.mem_mb, section.time_minutes) == (1, 500, 10)
    assert section.extra_lines == ("#SBATCH --qos=normal",) and section.gres is None
    assert section.shebang_line == "#!/bin/sh" and not section.needs_gpu


def test_gpu_section_overrides_what_it_sets() -> None:
    section = effective_section(slurm_config(), {"needs_gpu": True})
    assert (section.partition, section.gres, section.mem_mb) == ("gpu", "gpu:1", 8000)
    assert section.account == "lab" and section.time_minutes == 10  # kept from the default
    assert section.extra_lines == ("#SBATCH --qos=normal", "module load cuda")


def test_meta_overrides_only_what_a_user_may_set() -> None:
    meta = {
        "cpus_per_task": 4,
        "mem": "2G",
        "time": "1:30:00",
        "tasks_per_job": 3,
        "parallel_tasks_per_job": 2,
        "partition": "admin-only",  # not a user's choice: ignored
        "something_else": [1, 2],
    }
    section = effective_section(slurm_config(), meta)
    assert (section.cpus_per_task, section.mem_mb, section.time_minutes) == (4, 2000, 90)
    assert (section.tasks_per_job, section.parallel_tasks_per_job) == (3, 2)
    assert section.partition == "main"
    assert effective_section(slurm_config(), {"mem": 1234}).mem_mb == 1234
    assert effective_section(slurm_config(), None) == effective_section(slurm_config(), {})


def test_section_feeds_the_plan() -> None:
    section = effective_section(slurm_config(), {"cpus_per_task": 2, "mem": "1G"})
    plan = plan_batches(20, section, BATCHING)
    assert (plan.parallel_per_job, plan.cpus_per_job, plan.mem_per_job_mb) == (2, 4, 2000)


def test_mem_per_cpu_scales_the_admin_memory() -> None:
    data = slurm_config(gpu=False).model_dump(exclude_none=True)
    data["default_slurm_config"]["use_mem_per_cpu"] = True
    section = effective_section(SlurmConfig.model_validate(data), {"cpus_per_task": 3})
    assert section.mem_mb == 1500 and section.use_mem_per_cpu


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"needs_gpu": "yes"}, "needs_gpu must be true or false"),
        ({"cpus_per_task": 0}, "cpus_per_task must be a positive integer"),
        ({"cpus_per_task": "4"}, "cpus_per_task must be a positive integer"),
        ({"cpus_per_task": True}, "cpus_per_task must be a positive integer"),
        ({"tasks_per_job": -1}, "tasks_per_job must be a positive integer"),
        ({"parallel_tasks_per_job": 1.5}, "parallel_tasks_per_job must be a positive integer"),
        ({"mem": "lots"}, "task meta mem"),
        ({"mem": 0}, "task meta mem"),
        ({"mem": [1]}, "task meta mem"),
        ({"time": "forever"}, "task meta time"),
        ({"time": "0"}, "task meta time"),
    ],
)
def test_bad_meta_is_refused_plainly(meta: dict, message: str) -> None:
    with pytest.raises(BatchingError, match=message):
        effective_section(slurm_config(), meta)


def test_gpu_needed_but_not_configured() -> None:
    with pytest.raises(BatchingError, match="no GPU configuration"):
        effective_section(slurm_config(gpu=False), {"needs_gpu": True})
