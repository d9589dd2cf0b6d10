"""The claims table: one row per figure/table claim of a paper, with the criterion it is judged by, what was
measured and a verdict computed by a tested function of :mod:`l2l_utils.reporting.verdicts` (at the smoke profile every
verdict reads "smoke: pipeline ran": toy runs are no evidence)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..storage.results import atomic_write_text
from .verdicts import VERDICTS, Result, smoke

CLAIM_COLUMNS = ["paper", "claim", "statement", "paper_value", "criterion", "measured", "profile", "verdict"]


def check_verdict(verdict: str) -> str:
    """Return ``verdict`` if it starts with an allowed prefix, else raise ValueError."""
    text = str(verdict).strip()
    if not any(text.lower().startswith(prefix) for prefix in VERDICTS):
        allowed = ", ".join(repr(v) for v in VERDICTS)
        raise ValueError(f"verdict {verdict!r} must start with one of {allowed}")
    return text


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def frame_to_markdown(frame: pd.DataFrame) -> str:
    """GitHub-style pipe table of ``frame`` (no index)."""
    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |",
             "| " + " | ".join("---" for _ in columns) + " |"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


class ClaimsTable:
    """Claims of one paper measured at one profile."""

    def __init__(self, paper: str, profile: str):
        self.paper = paper
        self.profile = profile
        self._rows: list[dict] = []

    @property
    def is_smoke(self) -> bool:
        return self.profile.startswith("smoke")

    def add(self, claim: str, statement: str, paper_value, criterion: str, result: Result,
            published: bool = False) -> Result:
        """Add one claim judged by ``criterion`` (what is compared with what, how); ``result`` comes from a function
        of :mod:`l2l_utils.reporting.verdicts`. Returns the row's result (the smoke label applied, except to verdicts on
        ``published`` data, e.g. the authors' own curves, which do not depend on our profile)."""
        if self.is_smoke and not published:
            result = smoke(result)
        self._rows.append({
            "paper": self.paper, "claim": claim, "statement": statement, "paper_value": paper_value,
            "criterion": criterion, "measured": result.measured, "profile": self.profile,
            "verdict": check_verdict(result.verdict),
        })
        return result

    def not_run(self, claim: str, statement: str, paper_value, why: str, criterion: str = "—") -> None:
        """A claim whose measurement could not be made here, and why."""
        self.add(claim, statement, paper_value, criterion, Result(f"not run: {why}", "—"))

    def rows(self, claims) -> pd.DataFrame:
        """The rows of the given claim ids (to show a figure's claims right below it)."""
        frame = self.frame
        return frame[frame["claim"].isin(list(claims))][["claim", "criterion", "measured", "verdict"]]

    def show(self, *claims) -> None:
        """Display the rows of these claims in the notebook, right below the figure or table they are about."""
        from IPython.display import display

        display(self.rows(claims))

    @property
    def frame(self) -> pd.DataFrame:
        """The claims as a DataFrame with columns ``CLAIM_COLUMNS``."""
        return pd.DataFrame(self._rows, columns=CLAIM_COLUMNS)

    def counts(self) -> str:
        """One line counting the verdicts by kind, e.g. "12 claims: 3 reproduced · 1 partly · 2 inconclusive ·
        1 not reproduced · 5 not run" (at the smoke profile, "smoke: pipeline ran" is counted as such)."""
        kinds = [Result(v, "").kind for v in self.frame["verdict"]]
        order = [v for v in VERDICTS if v != "smoke"] + (["smoke"] if self.is_smoke else [])
        label = {"smoke": "smoke: pipeline ran"}
        parts = [f"{kinds.count(kind)} {label.get(kind, kind)}" for kind in order]
        return f"{len(kinds)} claims: " + " · ".join(parts)

    def to_markdown(self) -> str:
        """GitHub-style pipe table."""
        return frame_to_markdown(self.frame)

    def save(self, path) -> Path:
        """Write the table as CSV atomically."""
        return atomic_write_text(path, self.frame.to_csv(index=False))

    def display_verdicts(self) -> str:
        """Plain-text table of ``claim`` and ``verdict`` only (stable output for nbval)."""
        frame = self.frame
        width = max([len("claim")] + [len(str(c)) for c in frame["claim"]])
        lines = [f"{'claim':<{width}}  verdict"]
        lines += [f"{str(c):<{width}}  {v}" for c, v in zip(frame["claim"], frame["verdict"])]
        return "\n".join(lines)


def gather_claims(csv_paths) -> pd.DataFrame:
    """Concatenate claims CSV files (missing ones are skipped) into one frame."""
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in csv_paths if Path(p).exists()]
    if not frames:
        return pd.DataFrame(columns=CLAIM_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=CLAIM_COLUMNS)


def write_summary(frame: pd.DataFrame, out_dir) -> tuple[Path, Path]:
    """Write ``claims.csv`` and ``claims.md`` under ``out_dir``; return both paths."""
    out_dir = Path(out_dir)
    csv_path = atomic_write_text(out_dir / "claims.csv", frame.to_csv(index=False))
    md_path = atomic_write_text(out_dir / "claims.md", frame_to_markdown(frame))
    return csv_path, md_path
