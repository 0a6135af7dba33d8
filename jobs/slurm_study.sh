#!/bin/bash
# One airss-msc study (search, DFT refinement, spectra, capping, report) as a single SLURM job:
# 1 coordinator + (ntasks - 1) workers; every stage is spread over the workers.
#   sbatch jobs/slurm_study.sh analysis/msc399/msc399.toml full
# Resubmit the same command after a walltime stop: each stage resumes what is stored.
# DFT stages want more memory and threads per rank than the ML search: for the full MSC-399
# study 2-4 threads per rank and ~4 GB per rank are comfortable (def2-SVP, <= 16 atoms + ligands).
#SBATCH --job-name=airss-msc-study
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=32
#SBATCH --cpus-per-task=2        # OpenMP threads per rank (airss-msc reads SLURM_CPUS_PER_TASK)
#SBATCH --mem-per-cpu=2G
#SBATCH --time=24:00:00          # keep the config's [search] walltime about 30 minutes shorter
#SBATCH --signal=USR1@600        # graceful stop 10 minutes before the end
#SBATCH --output=airss-msc-study-%j.log

set -euo pipefail
CONFIG=${1:?usage: sbatch slurm_study.sh CONFIG.toml [MODE]}
MODE=${2:-}
cd "${SLURM_SUBMIT_DIR:-.}"

source "${AIRSS_MSC_VENV:-.venv}/bin/activate"

export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
export OPENBLAS_NUM_THREADS=$OMP_NUM_THREADS
export OMP_STACKSIZE=1G
# PySCF scratch on node-local disk where the site has one
export PYSCF_TMPDIR=${TMPDIR:-/tmp}

# --mpi=pmi2: plain srun without PMI starts independent copies that all do all the work.
srun --mpi=pmi2 airss-msc study "$CONFIG" ${MODE:+--mode "$MODE"}
