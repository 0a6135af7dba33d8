#!/bin/bash
# A PBS job array of independent searches, one config per sub-job (line of CONFIG_LIST).
#   qsub -J 1-14 -v CONFIG_LIST=configs.txt jobs/pbs_array.sh
#PBS -N airss-msc-array
#PBS -l select=1:ncpus=9:mpiprocs=9:ompthreads=1
#PBS -l walltime=08:00:00
#PBS -j oe

set -euo pipefail
cd "${PBS_O_WORKDIR:-.}"
: "${CONFIG_LIST:?submit with qsub -J 1-N -v CONFIG_LIST=configs.txt}"
CONFIG=$(sed -n "${PBS_ARRAY_INDEX}p" "$CONFIG_LIST")
[ -n "$CONFIG" ] || { echo "no config on line $PBS_ARRAY_INDEX of $CONFIG_LIST" >&2; exit 2; }

source "${AIRSS_MSC_VENV:-.venv}/bin/activate"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_STACKSIZE=1G
mpiexec -n 9 airss-msc search "$CONFIG"
