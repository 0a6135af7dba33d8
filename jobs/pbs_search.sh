#!/bin/bash
# One airss-msc search as a single PBS Pro / Torque job.
#   qsub -v CONFIG=cdtese_search.toml jobs/pbs_search.sh
#PBS -N airss-msc
#PBS -l select=1:ncpus=33:mpiprocs=33:ompthreads=1
#PBS -l walltime=12:00:00
#PBS -j oe

set -euo pipefail
cd "${PBS_O_WORKDIR:-.}"
: "${CONFIG:?submit with qsub -v CONFIG=your.toml}"

source "${AIRSS_MSC_VENV:-.venv}/bin/activate"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_STACKSIZE=1G

NP=$(wc -l < "${PBS_NODEFILE:-/dev/null}" 2>/dev/null || echo 2)
# PBS sends SIGTERM before killing at the walltime; set [search] walltime a few
# minutes shorter than the job so the stop is always graceful. Rerun to resume.
mpiexec -n "${NP:-2}" airss-msc search "$CONFIG"
