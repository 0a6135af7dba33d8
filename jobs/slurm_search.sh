#!/bin/bash
# One airss-msc search as a single SLURM job: 1 coordinator + (ntasks - 1) workers.
# Submit from the directory holding the config:   sbatch jobs/slurm_search.sh cdtese_search.toml
# Resubmit the same command after a walltime stop: the search resumes where it stopped.
#SBATCH --job-name=airss-msc
#SBATCH --nodes=1
#SBATCH --ntasks=33              # 32 workers + 1 light coordinator
#SBATCH --cpus-per-task=1        # OpenMP threads per rank (airss-msc reads SLURM_CPUS_PER_TASK)
#SBATCH --time=12:00:00          # keep [search] walltime about 10 minutes shorter
#SBATCH --signal=USR1@300        # ask for a graceful stop 5 minutes before the end
#SBATCH --output=airss-msc-%j.log

set -euo pipefail
CONFIG=${1:?usage: sbatch slurm_search.sh CONFIG.toml}
cd "${SLURM_SUBMIT_DIR:-.}"

# The environment made by `make demo` / `make test`, or your own with `pip install .`
source "${AIRSS_MSC_VENV:-.venv}/bin/activate"

export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
export OPENBLAS_NUM_THREADS=$OMP_NUM_THREADS
export OMP_STACKSIZE=1G

# --mpi=pmi2 matters: plain srun without PMI starts independent copies that all
# do all the work (airss-msc refuses to run that way).
srun --mpi=pmi2 airss-msc search "$CONFIG"
