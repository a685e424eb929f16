#!/bin/sh
#SBATCH --job-name=fl-j12-r3-b0
#SBATCH --partition=main
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=1000M
#SBATCH --time=00:20:00
umask 0022
module purge || { echo 'fractal-like: worker_init line 2 failed: module purge' >&2; exit 1; }
module load gcc/12.2.0 || { echo 'fractal-like: worker_init line 3 failed: module load gcc/12.2.0' >&2; exit 1; }
. /opt/venv/bin/activate || { echo 'fractal-like: worker_init line 4 failed: source /opt/venv/bin/activate' >&2; exit 1; }
export OMP_NUM_THREADS=8
export MODELS=/m:/n
export OMP_NUM_THREADS=2
exec /usr/bin/python3 -I -S /srv/fractal/jobs/12/fractal_like_node /srv/fractal/jobs/12/1_task/fl-j12-r3-b0.json
