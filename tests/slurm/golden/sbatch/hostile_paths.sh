#!/bin/sh
#SBATCH --job-name=fl-j13-r1-b0
#SBATCH --partition=main
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
umask 0022
export SNEAKY='it'"'"'s a "dir" $(rm -rf /) `id` ; & | > %j
#SBATCH --uid=0'
exec '/opt/my python/bin/python3' -I -S '/home/o'"'"'brien/it'"'"'s a "dir" $(rm -rf /) `id` ; & | > %j
#SBATCH --uid=0/remote.py' '/data/$(rm -rf /)/`reboot`/a
b/%j'"'"'s batch.json'
