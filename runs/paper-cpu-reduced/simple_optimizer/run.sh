#!/usr/bin/env bash
# Reduced paper-profile CPU run of notebooks/simple_optimizer.ipynb (README.md here says what is cut and why).
# Estimated CPU time on one thread: see costs.py (same overrides). Run from the project root.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT="$PWD/runs/paper-cpu-reduced/simple_optimizer"
export OMP_NUM_THREADS=1 MPLBACKEND=Agg
PAPERMILL="${PAPERMILL:-.venv/bin/papermill}"
"$PAPERMILL" notebooks/simple_optimizer.ipynb "$OUT/simple_optimizer.ipynb" --cwd notebooks \
  -p profile paper -p results_dir "$OUT/results" -p figures_dir "$OUT/figures" -p progress False \
  -y "overrides: {train_hidden: 50, epochs: 4, trajectories: 5, val_problems: 2, test_runs: 2, long_steps: 2000, lstm_long_steps: 300, lenet_steps: 1500, transfer_steps: 1500, subset_tune_steps: 500, deep_steps: 100}"
