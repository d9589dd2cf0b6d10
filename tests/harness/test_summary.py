"""One summary: job columns, and per claim how many seeds gave each verdict."""

import pandas as pd

from l2l_utils.harness.summary import seed_counts, several_seeds, write
from l2l_utils.reporting.claims import CLAIM_COLUMNS


def _frame(rows):
    base = {"notebook": "nb", "paper": "P", "statement": "s", "paper_value": "1", "criterion": "c", "measured": "m",
            "profile": "paper"}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_seed_counts_per_claim_and_grid_point(tmp_path):
    rows = [{"job": f"seed{s}_lr={lr}", "seed": s, "lr": lr, "claim": claim, "verdict": verdict}
            for s, lr, claim, verdict in [
                (0, "0.1", "Fig. 1", "reproduced"), (1, "0.1", "Fig. 1", "reproduced"),
                (2, "0.1", "Fig. 1", "inconclusive: CI [0.9, 1.1]"), (0, "0.1", "Fig. 2", "not run: data missing"),
                (1, "0.1", "Fig. 2", "not run: data missing"), (0, "1", "Fig. 1", "not reproduced")]]
    frame = _frame(rows)[["notebook", "job", "seed", "lr"] + CLAIM_COLUMNS]
    counts = seed_counts(frame, ["lr"])
    assert counts.to_dict("records") == [
        {"notebook": "nb", "paper": "P", "claim": "Fig. 1", "lr": "0.1", "seeds": "0,1,2",
         "verdicts across seeds": "2 reproduced · 1 inconclusive"},
        {"notebook": "nb", "paper": "P", "claim": "Fig. 2", "lr": "0.1", "seeds": "0,1",
         "verdicts across seeds": "2 not run"},
        {"notebook": "nb", "paper": "P", "claim": "Fig. 1", "lr": "1", "seeds": "0",
         "verdicts across seeds": "1 not reproduced"}]
    assert several_seeds(frame, ["lr"]) and not several_seeds(frame[frame.seed == 0], ["lr"])
    write(tmp_path, frame, ["lr"], {"nb/seed3_lr=0.1": "ValueError: bad (see log)"})
    md = (tmp_path / "claims.md").read_text()
    assert md.startswith("## Verdicts across seeds") and "| nb | P | Fig. 1 | 0.1 | 0,1,2 | 2 reproduced · 1" in md
    assert "## Failed jobs" in md and "| nb/seed3_lr=0.1 | ValueError: bad (see log) |" in md
    assert pd.read_csv(tmp_path / "claims.csv", dtype=str).shape == (6, 4 + len(CLAIM_COLUMNS))
    write(tmp_path, frame[frame.seed == 0], ["lr"], {})  # one seed: just the table
    assert (tmp_path / "claims.md").read_text().startswith("| notebook | job | seed | lr | paper |")
