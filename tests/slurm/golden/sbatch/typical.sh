#!/bin/sh
#SBATCH --job-name=fl-j12-r3-b0
#SBATCH --partition=main
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=1000M
#SBATCH --time=00:20:00
umask 0022
exec /usr/bin/python3 -I -S /srv/fractal/jobs/12/fractal_like_node /srv/fractal/jobs/12/1_task/fl-j12-r3-b0.json
