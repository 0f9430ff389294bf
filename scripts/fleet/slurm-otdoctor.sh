#!/usr/bin/env bash
# Run `otdoctor check --format json` on every node of a Slurm allocation, one report per node,
# then compare them. Submit with sbatch, or run the srun line inside `salloc -N 4`:
#
#   sbatch -N 4 scripts/fleet/slurm-otdoctor.sh
#   otdoctor merge fleet-reports/
#
# OT_DIR (the OneTrainer checkout on each node) and OTDOCTOR (the executable) can be set in the
# environment; srun passes the environment to every task.
#SBATCH --job-name=otdoctor
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:1
#SBATCH --time=00:05:00
#SBATCH --output=otdoctor-%j.log
set -euo pipefail
reports="${OTDOCTOR_REPORTS_DIR:-fleet-reports}"
mkdir -p "$reports"
# One task per node; each writes its own file (a shared folder), named after the node.
# `|| true`: an unhealthy node (exit 1) still leaves its report.
srun --ntasks-per-node=1 bash -c '"${OTDOCTOR:-otdoctor}" check --format json --require-gpu \
  --output "'"$reports"'/${SLURMD_NODENAME:-$(hostname)}.json" || test -s "'"$reports"'/${SLURMD_NODENAME:-$(hostname)}.json"'
"${OTDOCTOR:-otdoctor}" merge "$reports"
