#!/usr/bin/env bash
# CPU run of notebooks/kuo2020_mtl2l.ipynb at the `paper` profile in the authors' set-up (README.md here gives its
# results): the authors' MTL2L layout and LSTM optimiser, their truncation (20) and trajectory counts (10, 50), and
# their number of test runs per neural optimiser (5); the tuned-baseline extra with one tuning run per rate.
# One thread; cached results under results/ make it resumable. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT="$PWD/runs/paper-cpu/kuo2020_mtl2l_authors"
export OMP_NUM_THREADS=1 MPLBACKEND=Agg
PAPERMILL="${PAPERMILL:-.venv/bin/papermill}"
"$PAPERMILL" notebooks/kuo2020_mtl2l.ipynb "$OUT/kuo2020_mtl2l.ipynb" --cwd notebooks \
  -p profile paper -p results_dir "$OUT/results" -p figures_dir "$OUT/figures" -p progress False \
  -y 'overrides: {unroll: 20, trajectories: 10, trajectories_s2: 50, architecture: authors, lstm: authors, test_runs: 5, tune_runs: 1}'
