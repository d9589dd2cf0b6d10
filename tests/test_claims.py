"""Claims table."""

import pandas as pd
import pytest

from l2l_utils.claims import (CLAIM_COLUMNS, VERDICTS, ClaimsTable, gather_claims,
                              write_summary)


def make_table(paper="L2L", profile="smoke"):
    table = ClaimsTable(paper, profile)
    table.add("Fig. 2", "LSTM beats Adam | RMSprop on quadratics", 0.1, 0.2,
              "reproduced: final loss lower than all baselines")
    table.add("Fig. 4 left", "generalises to 200 steps", None, None, "not run (paper profile only)")
    return table


def test_columns_and_rows():
    frame = make_table().frame
    assert list(frame.columns) == CLAIM_COLUMNS
    assert list(frame["profile"]) == ["smoke", "smoke"]
    assert list(frame["paper"]) == ["L2L", "L2L"]
    assert VERDICTS == ("reproduced", "partly", "not reproduced", "not run")


def test_bad_verdict_names_allowed_ones():
    table = ClaimsTable("L2L", "smoke")
    with pytest.raises(ValueError, match="reproduced.*partly.*not reproduced.*not run"):
        table.add("Fig. 2", "x", 1, 2, "maybe")
    table.add("Fig. 2", "x", 1, 2, "Not reproduced: loss diverged")
    assert len(table.frame) == 1


def test_markdown_escapes_pipes():
    md = make_table().to_markdown().splitlines()
    assert md[0] == "| " + " | ".join(CLAIM_COLUMNS) + " |"
    assert md[1].count("---") == len(CLAIM_COLUMNS)
    assert "LSTM beats Adam \\| RMSprop" in md[2]
    assert len(md) == 4
    assert all(line.startswith("| ") and line.endswith(" |") for line in md)


def test_display_verdicts():
    text = make_table().display_verdicts()
    lines = text.splitlines()
    assert lines[0].split() == ["claim", "verdict"]
    assert lines[1].startswith("Fig. 2") and "reproduced: final loss" in lines[1]
    assert "statement" not in text and "smoke" not in text


def test_save_gather_and_summary(tmp_path):
    make_table("L2L").save(tmp_path / "a" / "claims.csv")
    make_table("MTL2L", "paper").save(tmp_path / "b" / "claims.csv")
    frame = gather_claims([tmp_path / "a" / "claims.csv", tmp_path / "b" / "claims.csv",
                           tmp_path / "missing" / "claims.csv"])
    assert list(frame.columns) == CLAIM_COLUMNS
    assert list(frame["paper"]) == ["L2L", "L2L", "MTL2L", "MTL2L"]
    assert list(frame["profile"]) == ["smoke", "smoke", "paper", "paper"]
    assert frame.loc[1, "paper_value"] == ""
    csv_path, md_path = write_summary(frame, tmp_path / "out")
    assert list(pd.read_csv(csv_path).columns) == CLAIM_COLUMNS
    assert md_path.read_text().count("\n") == 6
    assert gather_claims([]).columns.tolist() == CLAIM_COLUMNS
