"""One summary of a batch: every finished job's claims table with the job's columns (notebook, job, seed, grid
values) in ``claims.csv``; ``claims.md`` opens with one line per paper counting its verdicts, adds, where several
seeds ran, how many seeds gave each verdict per claim (seeds are counted, not pooled: README "Several seeds"), and
lists the failed jobs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..reporting.claims import CLAIM_COLUMNS, frame_to_markdown, gather_claims
from ..reporting.verdicts import VERDICTS, Result
from ..storage.results import atomic_write_text

JOB_COLUMNS = ["notebook", "job", "seed"]


def job_claims(jobs, records, grid_keys) -> pd.DataFrame:
    """The claims of the jobs whose record says done, one block per job, job columns first."""
    frames = []
    for job, record in zip(jobs, records):
        if record.get("state") not in ("done", "skipped"):
            continue
        frame = gather_claims([job.results_dir / "claims.csv"])
        for column, value in reversed([("notebook", job.notebook), ("job", job.name), ("seed", job.seed)]
                                      + [(k, _text(job.point.get(k))) for k in grid_keys]):
            frame.insert(0, column, value)
        frames.append(frame)
    columns = JOB_COLUMNS + list(grid_keys) + CLAIM_COLUMNS
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def _text(value) -> str:
    return "" if value is None else str(value)


def seed_counts(frame: pd.DataFrame, grid_keys) -> pd.DataFrame:
    """Per claim (and grid point): the seeds that ran it and how many gave each verdict kind."""
    keys = ["notebook", "paper", "claim", *grid_keys]
    rows = []
    for values, group in frame.groupby(keys, sort=False):
        kinds = [Result(v, "").kind for v in group["verdict"]]
        counts = {kind: kinds.count(kind) for kind in VERDICTS if kind in kinds}
        seeds = ",".join(str(s) for s in sorted(group["seed"].astype(int).unique()))
        rows.append({**dict(zip(keys, values)), "seeds": seeds,
                     "verdicts across seeds": " · ".join(f"{n} {kind}" for kind, n in counts.items())})
    return pd.DataFrame(rows, columns=keys + ["seeds", "verdicts across seeds"])


def several_seeds(frame: pd.DataFrame, grid_keys) -> bool:
    if frame.empty:
        return False
    return bool((frame.groupby(["notebook", *grid_keys])["seed"].nunique() > 1).any())


COUNTED = [kind for kind in VERDICTS if kind != "smoke"]


def verdict_counts(frame: pd.DataFrame, notebooks=()) -> pd.DataFrame:
    """One row per paper and job: its number of claims and how many got each verdict kind (a ``smoke`` column only
    where smoke verdicts occur); each of ``notebooks`` with no finished job gets a row saying so."""
    kinds = COUNTED + (["smoke"] if any(Result(v, "").kind == "smoke" for v in frame.get("verdict", [])) else [])
    rows = []
    for (notebook, paper, job), group in frame.groupby(["notebook", "paper", "job"], sort=False):
        found = [Result(v, "").kind for v in group["verdict"]]
        rows.append({"notebook": notebook, "paper": paper, "job": job, "claims": str(len(found)),
                     **{kind: str(found.count(kind)) for kind in kinds}})
    done = set(frame["notebook"]) if len(frame) else set()
    rows += [{"notebook": name, "paper": "", "job": "no finished run", "claims": "", **{kind: "" for kind in kinds}}
             for name in notebooks if name not in done]
    return pd.DataFrame(rows, columns=["notebook", "paper", "job", "claims", *kinds])


def write(out: Path, frame: pd.DataFrame, grid_keys, failed: dict, notebooks=()) -> tuple[Path, Path]:
    """Write ``<out>/claims.csv`` (one row per claim and job) and ``<out>/claims.md`` (verdicts counted per paper
    first, ``notebooks`` without a finished job named there)."""
    out = Path(out)
    csv_path = atomic_write_text(out / "claims.csv", frame.to_csv(index=False))
    parts = ["## Verdicts per paper\n", frame_to_markdown(verdict_counts(frame, notebooks))]
    if several_seeds(frame, grid_keys):
        parts += ["## Verdicts across seeds\n",
                  "Each seed's verdict is its own decision over that run's units; the seeds are counted here, not "
                  "pooled into one verdict (README, \"Several seeds\").\n",
                  frame_to_markdown(seed_counts(frame, grid_keys)), "## Claims per job\n"]
    else:
        parts.append("## Claims\n")
    parts.append(frame_to_markdown(frame))
    if failed:
        parts += ["## Failed jobs\n", frame_to_markdown(pd.DataFrame(
            [{"job": key, "error": error} for key, error in failed.items()]))]
    md_path = atomic_write_text(out / "claims.md", "\n".join(parts))
    return csv_path, md_path
