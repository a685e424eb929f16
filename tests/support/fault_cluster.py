"""A SLURM cluster of one test process's own, for faults that disrupt every job on it.

Setting a node down or preempting jobs would break the tests other workers (and other
engineers) run on the shared cluster at the same moment. So these faults happen on a
second cluster, started by scripts/slurm-dev-cluster.sh in a fresh folder with the
preemption partitions (`low`, preempted by `high`), and purged afterwards. Each xdist
worker that needs one starts its own: the script picks free ports under a lock.

Every command here names this cluster's slurm.conf explicitly and refuses the shared one.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "slurm-dev-cluster.sh"
SHARED_CONF_VAR = "FRACTAL_LIKE_TEST_SLURM_CONF"
START_TIMEOUT = 180  # the script waits up to 2 minutes for locks, then 30 s for the node


class FaultClusterError(RuntimeError):
    """The cluster did not start; the message ends with the script's last words."""


@dataclass(frozen=True)
class FaultCluster:
    folder: Path
    conf: str
    node: str

    def env(self) -> dict[str, str]:
        """This process's environment with SLURM_CONF naming this cluster, never another."""
        shared = os.environ.get(SHARED_CONF_VAR)
        if shared and Path(shared).resolve() == Path(self.conf).resolve():
            raise AssertionError(f"refusing to disrupt the shared cluster of {shared}")
        return {**os.environ, "SLURM_CONF": self.conf}

    def scontrol(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["scontrol", *args], env=self.env(), capture_output=True, text=True, timeout=30
        )

    def node_state(self) -> str:
        result = subprocess.run(
            ["sinfo", "-h", "-n", self.node, "-o", "%T"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout.strip()

    def set_node_down(self, reason: str) -> None:
        """What an admin (or slurmctld, for a node that stops answering) does: running jobs
        on the node end as NODE_FAIL."""
        done = self.scontrol("update", f"nodename={self.node}", "state=down", f"reason={reason}")
        if done.returncode != 0:
            raise AssertionError(f"scontrol could not set {self.node} down: {done.stderr}")

    def resume_node(self) -> None:
        """Back to service if it is still down (ReturnToService=2 often did it already)."""
        if "down" in self.node_state() or "drain" in self.node_state():
            self.scontrol("update", f"nodename={self.node}", "state=resume")


def _run_script(*args: str) -> subprocess.CompletedProcess[str]:
    # The preemption test needs the node full with one exclusive job: two CPUs are plenty.
    env = {**os.environ, "FRACTAL_LIKE_SLURM_CPUS": "2"}
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def start_fault_cluster() -> FaultCluster:
    """A fresh cluster with the preemption partitions; FaultClusterError if it fails."""
    folder = Path(tempfile.mkdtemp(prefix="fl-fault-cluster-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        done = _run_script("start", "--preemption", str(folder))
    except subprocess.TimeoutExpired:
        purge_fault_cluster(folder)
        raise FaultClusterError(
            f"{SCRIPT.name} start did not finish in {START_TIMEOUT} s"
        ) from None
    conf = folder / "slurm.conf"
    if done.returncode != 0 or not conf.is_file():
        purge_fault_cluster(folder)
        tail = " | ".join(done.stderr.strip().splitlines()[-5:])
        raise FaultClusterError(f"{SCRIPT.name} start failed ({done.returncode}): {tail}")
    node = ""
    for line in conf.read_text().splitlines():
        if line.startswith("NodeName="):
            node = line.split()[0].removeprefix("NodeName=")
    if not node:
        purge_fault_cluster(folder)
        raise FaultClusterError(f"no NodeName in {conf}")
    return FaultCluster(folder, str(conf), node)


def purge_fault_cluster(folder: Path) -> None:
    """Stop the cluster (its jobs cancelled first) and remove its folder."""
    try:
        _run_script("purge", str(folder))
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(folder)], check=False)
