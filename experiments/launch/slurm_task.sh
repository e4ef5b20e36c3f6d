#!/usr/bin/env bash
# One SLURM task = one training process; slurm.sbatch starts one per GPU with srun. Usage (inside a job step):
#   srun experiments/launch/slurm_task.sh --config=ffhq1024 --workdir=/shared/workdir/ffhq [more train flags]
#
# JAX's SLURM detection (`--distributed=slurm`) reads SLURM_JOB_ID, SLURM_STEP_NODELIST, SLURM_NTASKS,
# SLURM_PROCID and SLURM_LOCALID: the coordinator is process 0 on the step's first node, at port
# 61440 + SLURM_JOB_ID % 4096 (JAX_COORDINATOR_PORT overrides it), and each task sees GPU number SLURM_LOCALID.
# --num_processes makes every task check that the cluster has the job's SLURM_NTASKS processes.
# TRAIN is the training command (default: the installed `stylegan-jax train`).
set -euo pipefail
exec ${TRAIN:-stylegan-jax train} --distributed=slurm --num_processes="${SLURM_NTASKS:?not in a SLURM job step}" "$@"
