"""Wall time of the five smoke notebooks through ``l2l-reproduce``: one after another (``--jobs 1``, no Dask) vs on
the engine (a LocalCluster sized to the machine), the same command otherwise. Each run starts from nothing: its own
output folder, dataset cache and figures folder (all in a temporary folder), so neither reuses the other's results.
The environment is passed through unchanged (say OMP_NUM_THREADS: unset, a sequential run's kernel uses every core).

    .venv/bin/python benchmarks/bench_batch.py [--profile smoke] [--order sequential,engine] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINES = {"sequential": ["--jobs", "1"], "engine": []}


def run(name: str, profile: str, folder: Path) -> dict:
    """One ``l2l-reproduce`` run from nothing; its wall time, exit status and the load around it."""
    env = {**os.environ, "L2L_CACHE_DIR": str(folder / f"cache-{name}"),
           "L2L_FIGURES_DIR": str(folder / f"figures-{name}"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "l2l_utils.harness.batch", "--profile", profile, "--root", str(ROOT),
               "--out", str(folder / f"runs-{name}"), "--quiet", *ENGINES[name]]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return {"engine": name, "seconds": round(seconds, 1), "status": done.returncode,
            "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2),
            "failed": done.stderr.strip().splitlines()[-5:] if done.returncode else []}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--order", default="sequential,engine", help="which runs, in this order")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        results = [run(name, args.profile, Path(tmp)) for name in args.order.split(",")]
    info = {"cores": len(os.sched_getaffinity(0)), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "results": results}
    for r in results:
        print(f"{r['engine']:<10} {r['seconds']:>8.1f} s  exit {r['status']}  load {r['load_before']} -> "
              f"{r['load_after']}")
    if args.out:
        Path(args.out).write_text(json.dumps(info, indent=2))
    return max(r["status"] for r in results)


if __name__ == "__main__":
    sys.exit(main())
