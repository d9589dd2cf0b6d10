"""One summary: job columns, and per claim how many seeds gave each verdict."""

import pandas as pd

from l2l_utils.harness.summary import seed_counts, several_seeds, verdict_counts, write
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
    assert md.startswith("## Verdicts per paper") and "## Verdicts across seeds" in md and "| nb | P | Fig. 1 | 0.1 | 0,1,2 | 2 reproduced · 1" in md
    assert "## Failed jobs" in md and "| nb/seed3_lr=0.1 | ValueError: bad (see log) |" in md
    assert pd.read_csv(tmp_path / "claims.csv", dtype=str).shape == (6, 4 + len(CLAIM_COLUMNS))
    write(tmp_path, frame[frame.seed == 0], ["lr"], {})  # one seed: just the table
    assert "## Claims\n\n| notebook | job | seed | lr | paper |" in (tmp_path / "claims.md").read_text()


def test_verdict_counts_one_line_per_paper_and_the_papers_not_run():
    rows = [{"notebook": nb, "paper": paper, "job": "seed0", "seed": 0, "claim": claim, "verdict": verdict}
            for nb, paper, claim, verdict in [
                ("a", "A", "1", "reproduced"), ("a", "A", "2", "not reproduced: 1.3 > 1"),
                ("a", "A", "3", "inconclusive: CI [0.9, 1.1]"), ("a", "A", "4", "reproduced"),
                ("b", "B", "1", "not run: needs CIFAR-10"), ("b", "B", "2", "partly: 2 of 3")]]
    counts = verdict_counts(_frame(rows), notebooks=["a", "b", "c"])
    assert list(counts.columns) == ["notebook", "paper", "job", "claims", "reproduced", "partly", "inconclusive",
                                    "not reproduced", "not run"]
    assert counts.values.tolist() == [["a", "A", "seed0", "4", "2", "0", "1", "1", "0"],
                                      ["b", "B", "seed0", "2", "0", "1", "0", "0", "1"],
                                      ["c", "", "no finished run", "", "", "", "", "", ""]]
    smoke = verdict_counts(_frame([{**rows[0], "verdict": "smoke: pipeline ran"}]))
    assert smoke.loc[0, "smoke"] == "1" and smoke.loc[0, "reproduced"] == "0"
