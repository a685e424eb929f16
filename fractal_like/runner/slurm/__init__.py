"""The SLURM backend of the runner.

`batching` (how units are grouped into jobs) and `script` (the sbatch script and command
line) are pure; the executor and its helpers call sbatch, squeue and scancel. The worker
that runs a batch on the node is the package `fractal_like.runner.node` (stdlib only).
"""
