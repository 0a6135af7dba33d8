#!/bin/bash
# A job array of independent searches: one config per array task, e.g. one per
# Zn_xCd_(13-x)Se_13 composition. Each task has its own database, so tasks never
# contend for a lock. Configs are listed one per line in CONFIG_LIST.
#   sbatch --array=1-14 jobs/slurm_array.sh configs.txt
#SBATCH --job-name=airss-msc-array
#SBATCH --nodes=1
#SBATCH --ntasks=9
#SBATCH --cpus-per-task=1
#SBATCH --time=08:00:00
#SBATCH --signal=USR1@300
#SBATCH --output=airss-msc-%A_%a.log

set -euo pipefail
LIST=${1:?usage: sbatch --array=1-N slurm_array.sh CONFIG_LIST}
cd "${SLURM_SUBMIT_DIR:-.}"
CONFIG=$(sed -n "${SLURM_ARRAY_TASK_ID}p" "$LIST")
[ -n "$CONFIG" ] || { echo "no config on line $SLURM_ARRAY_TASK_ID of $LIST" >&2; exit 2; }

source "${AIRSS_MSC_VENV:-.venv}/bin/activate"
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
export OPENBLAS_NUM_THREADS=$OMP_NUM_THREADS
export OMP_STACKSIZE=1G

srun --mpi=pmi2 airss-msc search "$CONFIG"
