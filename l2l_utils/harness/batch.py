"""Batch runner (``l2l-reproduce``): notebooks × seeds × grid points as papermill jobs, one after another or on
Dask, each in ``<out>/<notebook>/<job>/``; the finished jobs' claims gathered into ``<out>/claims.{csv,md}``."""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from ..reporting.claims import frame_to_markdown
from ..storage.paths import project_root
from .engine import Engine, dask_client, run_on_dask, run_sequentially
from .execution import finished, finished_before, job_paths, read_record
from .jobs import (check_settings, expand, notebook_parameters, parameters, parse_grid, parse_parameter,
                   parse_seeds)
from .progress import JobBoard
from .summary import job_claims, write

__all__ = ["NOTEBOOKS", "find_root", "main", "parse_parameter", "run_batch", "select_notebooks"]

# short name (also the figures folder name) -> notebook path relative to the project root
NOTEBOOKS = {
    "andrychowicz2016": "notebooks/andrychowicz2016_l2l.ipynb",
    "huisman2022": "notebooks/huisman2022_turtle.ipynb",
    "kuo2020": "notebooks/kuo2020_mtl2l.ipynb",
    "metamd": "notebooks/metamd.ipynb",
    "simple_optimizer": "notebooks/simple_optimizer.ipynb",
    "head_to_head": "notebooks/head_to_head.ipynb",
}


def find_root(start=None) -> Path:
    """The project root (folder with pyproject.toml and l2l_utils/) above ``start`` (default: cwd)."""
    root = project_root(start)
    if not (root / "pyproject.toml").exists():
        raise FileNotFoundError(f"no pyproject.toml in {root} or any parent; pass --root")
    return root


def select_notebooks(names, notebooks=None) -> list[str]:
    """Return the chosen short names (all when ``names`` is empty); unknown names raise ValueError."""
    notebooks = NOTEBOOKS if notebooks is None else notebooks
    if not names:
        return list(notebooks)
    unknown = [n for n in names if n not in notebooks]
    if unknown:
        raise ValueError(f"unknown notebook(s) {', '.join(unknown)}; allowed: {', '.join(notebooks)}")
    return list(dict.fromkeys(names))


def figures_dirs(jobs, root: Path, out: Path | None = None, profile: str = "smoke") -> dict:
    """For a notebook with one job in this batch, at its profile's own settings: ``$L2L_FIGURES_DIR/<notebook>`` when
    that is set, else ``figures/<notebook>`` at the smoke profile (what ``make figures`` redraws) and
    ``<out>/figures/<notebook>`` at any other (a reference run keeps its figures beside its notebooks); with several
    jobs or settings changed by ``-p``, each job's own ``<job folder>/figures`` (jobs never draw over each other)."""
    per_notebook = Counter(job.notebook for job in jobs)
    if os.environ.get("L2L_FIGURES_DIR"):
        base = Path(os.environ["L2L_FIGURES_DIR"])
    else:
        base = root / "figures" if profile == "smoke" or out is None else Path(out) / "figures"
    return {job.key: base / job.notebook if per_notebook[job.notebook] == 1 and job.name == f"seed{job.seed}"
            else job.folder / "figures"
            for job in jobs}


def run_batch(profile="smoke", names=None, seeds=(0,), out=None, overrides=None, grid=None, root=None,
              kernel="python3", notebooks=None, engine: Engine | None = None, force=False, progress="auto",
              stream=None, summary_only=False) -> dict:
    """Run every (notebook, seed, grid point) job not finished before (all with ``force``) on ``engine`` (default:
    a LocalCluster sized to the machine), then write ``<out>/claims.{csv,md}``.

    ``summary_only``: run nothing; gather the claims of every job finished in ``out`` (whatever its parameters).

    Returns ``{"failed": {job key: error}, "claims": DataFrame, "out": Path, "records": [job record], "jobs": [Job]}``.
    """
    notebooks = NOTEBOOKS if notebooks is None else notebooks
    chosen = select_notebooks(names, notebooks)
    root = Path(root).resolve() if root is not None else find_root()
    out = Path(out) if out is not None else root / "runs" / profile
    out = (out if out.is_absolute() else Path.cwd() / out).resolve()
    grid = dict(grid or {})
    jobs = expand({n: notebooks[n] for n in chosen}, root, out, seeds, overrides, grid)
    names_of = {n: notebook_parameters(root / notebooks[n]) for n in chosen}
    figures = figures_dirs(jobs, root, out, profile)
    tasks = [(job, parameters(job, profile, figures[job.key], names_of[job.notebook])) for job in jobs]
    engine = engine or Engine()

    board = JobBoard([job.key for job in jobs], stream, progress)
    records, todo = {}, []
    for job, params in tasks:
        if summary_only and finished_before(job) or not force and finished(job, params):
            records[job.key] = {**read_record(job), "state": "skipped"}
            board.update(job.key, "skipped", "finished before")
        elif summary_only:
            records[job.key] = {"key": job.key, "state": "not run"}
            board.update(job.key, "skipped", "not run (--summary)")
        else:
            todo.append((job, params))
    cwd = root / "notebooks"
    try:
        if todo and engine.kind == "sequential":
            ran = run_sequentially(todo, board, kernel, cwd, engine.threads)
        elif todo:
            with dask_client(engine, len(todo), board) as (client, threads, gpus):
                link = getattr(client, "dashboard_link", None)
                if link:
                    board.note(f"Dask dashboard: {link}")
                ran = run_on_dask(client, todo, board, kernel, cwd, threads, gpus)
        else:
            ran = []
    finally:
        board.close()
    records.update({record["key"]: record for record in ran})
    ordered = [records[job.key] for job in jobs]
    failed = {r["key"]: r.get("error", "failed") + (f" (see {job_paths(r)})" if job_paths(r) else "")
              for r in ordered if r["state"] == "failed"}
    # the summary covers every notebook finished in this folder, also those run by an earlier command (one notebook
    # at a time), and names the notebooks with no finished run
    others = [job for job in expand({n: notebooks[n] for n in notebooks if n not in chosen}, root, out, seeds,
                                    overrides, grid) if finished_before(job)]
    claims = job_claims(jobs + others, ordered + [read_record(job) for job in others], list(grid))
    write(out, claims, list(grid), failed, notebooks=list(notebooks))
    return {"failed": failed, "claims": claims, "out": out, "records": ordered, "jobs": jobs}


def _names(values) -> list[str] | None:
    """``--notebooks a,b c`` -> [a, b, c]."""
    if not values:
        return None
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l2l-reproduce", description=__doc__)
    parser.add_argument("--profile", default="smoke", help="profile name (default: smoke)")
    parser.add_argument("--notebooks", nargs="+", default=None, metavar="NAME",
                        help=f"notebooks to run, comma- or space-separated (default: all of {', '.join(NOTEBOOKS)})")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", default="0", help="seeds, e.g. 0-4 or 0,2,5 (default: 0)")
    seeds.add_argument("--seed", type=int, default=None, help="one seed (same as --seeds N)")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="a notebook parameter or profile field (goes into overrides), for every job; repeatable")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="one job per value (several --grid: their product); repeatable")
    parser.add_argument("--out", default=None, help="output folder (default: runs/<profile>)")
    parser.add_argument("--root", default=None, help="project root (default: folder with pyproject.toml)")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    parser.add_argument("--force", action="store_true", help="re-run finished jobs too (stored results are reused)")
    parser.add_argument("--summary", action="store_true",
                        help="run nothing: write <out>/claims.{csv,md} from the jobs finished there")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=int, default=None, metavar="N",
                       help="jobs at once on a LocalCluster (default: one per core, one per GPU where there are "
                            "GPUs); 1: one after another in this process, without Dask")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="use a running Dask cluster")
    where.add_argument("--slurm", action="store_true", help="start SLURM workers with dask-jobqueue")
    parser.add_argument("--threads-per-job", type=int, default=None, metavar="T",
                        help="torch/BLAS threads per job (default: cores // jobs at once; SLURM: --slurm-cores)")
    parser.add_argument("--retries", type=int, default=1,
                        help="runs again of a job whose Dask worker died, resuming from its checkpoints (default: 1)")
    slurm = parser.add_argument_group("SLURM (with --slurm): each SLURM job is one worker running one notebook")
    slurm.add_argument("--slurm-cores", type=int, default=4, help="CPUs per SLURM job (default: 4)")
    slurm.add_argument("--slurm-memory", default="16GB", help="memory per SLURM job (default: 16GB)")
    slurm.add_argument("--slurm-walltime", default="04:00:00", help="time limit per SLURM job (default: 04:00:00)")
    slurm.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per SLURM job, as --gres=gpu:N (default: 0)")
    slurm.add_argument("--slurm-queue", default=None, help="partition")
    slurm.add_argument("--slurm-account", default=None, help="account")
    slurm.add_argument("--slurm-jobs", type=int, default=None, help="SLURM jobs to start (default: min(jobs, 10))")
    slurm.add_argument("--slurm-prologue", action="append", default=[], metavar="LINE",
                       help="shell line run before the worker (module load, source .venv/bin/activate); repeatable")
    slurm.add_argument("--slurm-option", action="append", default=[], metavar="OPTION",
                       help="extra #SBATCH option, e.g. --constraint=a100; repeatable")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--quiet", action="store_true", help="no progress lines and no claims table (CI)")
    shown.add_argument("--progress", choices=["auto", "live", "lines"], default="auto",
                       help="live: lines redrawn in place; lines: a line per change (default: live on a terminal)")
    return parser


def engine_from(args) -> Engine:
    """The :class:`Engine` the command line asks for."""
    if args.scheduler:
        return Engine("scheduler", threads=args.threads_per_job, scheduler=args.scheduler, retries=args.retries)
    if args.slurm:
        options = {"cores": args.slurm_cores, "memory": args.slurm_memory, "walltime": args.slurm_walltime,
                   "gpus": args.slurm_gpus, "queue": args.slurm_queue, "account": args.slurm_account,
                   "prologue": args.slurm_prologue, "directives": args.slurm_option}
        return Engine("slurm", threads=args.threads_per_job, slurm=options, slurm_jobs=args.slurm_jobs,
                      retries=args.retries)
    if args.jobs == 1:
        return Engine("sequential", threads=args.threads_per_job)
    return Engine("local", workers=args.jobs, threads=args.threads_per_job, retries=args.retries)


def main(argv=None) -> int:
    """Command-line entry point."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        names = _names(args.notebooks)
        select_notebooks(names)
        seeds = [args.seed] if args.seed is not None else parse_seeds(args.seeds)
        if args.seed is not None and args.seed < 0:
            raise ValueError("--seed must be a non-negative integer")
        overrides = dict(parse_parameter(p) for p in args.parameter)
        grid = dict(parse_grid(g) for g in args.grid)
        root = Path(args.root).resolve() if args.root else find_root()
        if args.jobs is not None and args.jobs < 1:
            raise ValueError("--jobs must be at least 1")
        check_settings(overrides, grid)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    out = Path(args.out) if args.out else root / "runs" / args.profile

    result = run_batch(profile=args.profile, names=names, seeds=seeds, out=out, overrides=overrides, grid=grid,
                       root=root, kernel=args.kernel, engine=engine_from(args), force=args.force,
                       summary_only=args.summary,
                       progress="quiet" if args.quiet else args.progress)
    if not args.quiet:
        print(frame_to_markdown(result["claims"]))
    print(f"claims summary: {result['out'] / 'claims.csv'}, {result['out'] / 'claims.md'}")
    if result["failed"]:
        print(f"{len(result['failed'])} failed job(s):", file=sys.stderr)
        for key, error in result["failed"].items():
            print(f"  {key}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
