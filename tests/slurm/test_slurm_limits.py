"""The association limits a task's SLURM jobs would break (pure: no cluster needed)."""

from __future__ import annotations

from fractal_like.runner.slurm.associations import Association
from fractal_like.runner.slurm.limits import TaskDemand, association_for, breaches


def _association(partition: str = "", **limits: object) -> Association:
    fields: dict[str, object] = {
        "account": "lab",
        "partition": partition,
        "qos": ("normal",),
        "default_qos": "",
        "max_jobs": None,
        "max_submit_jobs": None,
        "max_wall": "",
        "grp_tres": "",
        "max_tres": "",
    }
    return Association(**{**fields, **limits})  # type: ignore[arg-type]


DEMAND = TaskDemand("task 't'", "main", cpus=4, mem_mb=3000, time_minutes=90, num_jobs=5)


def test_the_partitions_own_association_wins_over_the_accounts_general_one() -> None:
    general, main = _association(), _association("main", max_wall="1:00:00")
    assert association_for([general, main], "lab", "main") is main
    assert association_for([general, main], "lab", "gpu") is general
    assert association_for([general], "other", "main") is None


def test_no_limit_no_breach() -> None:
    assert breaches(_association(), DEMAND, "account 'lab'") == []
    unreadable = _association(max_wall="UNLIMITED", grp_tres="gres/gpu=2")
    assert breaches(unreadable, DEMAND, "account 'lab'") == []


def test_each_limit_broken_is_named_with_its_value() -> None:
    strict = _association(
        max_wall="1-00:00:00", max_submit_jobs=5, grp_tres="cpu=8,mem=2G", max_tres="cpu=2"
    )
    found = breaches(strict, DEMAND, "account 'lab'")
    assert found == [
        "task 't' asks for 4 CPUs per SLURM job, over the MaxTRES cpu=2 that SLURM sets for "
        "account 'lab': SLURM would never start it",
        "task 't' asks for 3000 MB per SLURM job, over the GrpTRES mem=2048 MB that SLURM "
        "sets for account 'lab': SLURM would never start it",
    ]
    tight = _association(max_wall="01:00:00", max_submit_jobs=4)
    words = " ".join(breaches(tight, DEMAND, "account 'lab'"))
    assert "asks for 90 min per SLURM job, over the MaxWall of 60 min" in words
    assert "would submit 5 SLURM jobs at once, over the MaxSubmitJobs=4" in words
    unknown_count = TaskDemand("task 't'", "main", 1, None, None, num_jobs=None)
    assert breaches(tight, unknown_count, "account 'lab'") == []
