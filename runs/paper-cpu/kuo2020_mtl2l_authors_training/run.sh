#!/usr/bin/env bash
# CPU run of notebooks/kuo2020_mtl2l.ipynb at the `paper` profile with the paper's networks but the authors' meta-training
# settings (README.md here gives its results): truncation 20, 10 / 50 trajectories, 5 test runs, one tuning run
# One thread; cached results under results/ make it resumable. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT="$PWD/runs/paper-cpu/kuo2020_mtl2l_authors_training"
export OMP_NUM_THREADS=1 MPLBACKEND=Agg
PAPERMILL="${PAPERMILL:-.venv/bin/papermill}"
"$PAPERMILL" notebooks/kuo2020_mtl2l.ipynb "$OUT/kuo2020_mtl2l.ipynb" --cwd notebooks \
  -p profile paper -p results_dir "$OUT/results" -p figures_dir "$OUT/figures" -p progress False \
  -y 'overrides: {unroll: 20, trajectories: 10, trajectories_s2: 50, test_runs: 5, tune_runs: 1}'
