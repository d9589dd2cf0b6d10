#!/usr/bin/env bash
# CPU run of notebooks/kuo2020_mtl2l.ipynb at the `paper` profile, no overrides (README.md here gives its results).
# One thread; cached results under results/ make it resumable. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT="$PWD/runs/paper-cpu/kuo2020_mtl2l"
export OMP_NUM_THREADS=1 MPLBACKEND=Agg
PAPERMILL="${PAPERMILL:-.venv/bin/papermill}"
"$PAPERMILL" notebooks/kuo2020_mtl2l.ipynb "$OUT/kuo2020_mtl2l.ipynb" --cwd notebooks \
  -p profile paper -p results_dir "$OUT/results" -p figures_dir "$OUT/figures" -p progress False
