#!/bin/bash -l
#SBATCH --job-name=fl-j12-r4-b7
#SBATCH --partition=gpu
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64000M
#SBATCH --time=1-01:00:00
#SBATCH --account=lab-a
#SBATCH --constraint=a100
#SBATCH --gres=gpu:1
#SBATCH --gpus=1
#SBATCH --exclude=node[01-02]
#SBATCH --nodelist=gpu[1-4]
#SBATCH --mail-type=FAIL
#SBATCH --qos=high
module load cuda/12.1
umask 0022
export CELLPOSE_LOCAL_MODELS_PATH='/home/u/.cache/cellpose models'
export OMP_NUM_THREADS=8
exec /opt/python3.9/bin/python3 -I -S /srv/fractal/jobs/12/fractal_like_node /srv/fractal/jobs/12/2_gpu/fl-j12-r4-b7.json
