"""Claims table: columns, verdicts from :mod:`l2l_utils.reporting.verdicts`, the smoke label, markdown and the summary."""

import pandas as pd
import pytest

from l2l_utils.reporting.claims import CLAIM_COLUMNS, VERDICTS, ClaimsTable, gather_claims, write_summary
from l2l_utils.reporting.verdicts import Result


def make_table(paper="L2L", profile="paper"):
    table = ClaimsTable(paper, profile)
    table.add("Fig. 2", "LSTM beats Adam | RMSprop on quadratics", 0.1, "mean final loss, lower",
              Result("reproduced", "0.2 vs 0.3"))
    table.not_run("Fig. 4 left", "generalises to 200 steps", None, "paper profile only")
    return table


def test_columns_and_rows():
    frame = make_table().frame
    assert list(frame.columns) == CLAIM_COLUMNS
    assert list(frame["profile"]) == ["paper", "paper"]
    assert list(frame["paper"]) == ["L2L", "L2L"]
    assert list(frame["verdict"]) == ["reproduced", "not run: paper profile only"]
    assert VERDICTS == ("reproduced", "partly", "inconclusive", "not reproduced", "not run", "smoke")


def test_smoke_profile_never_says_reproduced():
    table = make_table(profile="smoke (overridden: quad_epochs)")
    assert list(table.frame["verdict"]) == ["smoke: pipeline ran", "not run: paper profile only"]
    assert list(table.frame["measured"]) == ["0.2 vs 0.3", "—"]


def test_bad_verdict_names_allowed_ones():
    table = ClaimsTable("L2L", "paper")
    with pytest.raises(ValueError, match="reproduced.*partly.*inconclusive.*not reproduced.*not run"):
        table.add("Fig. 2", "x", 1, "c", Result("maybe", "2"))
    table.add("Fig. 2", "x", 1, "c", Result("Not reproduced: loss diverged", "2"))
    assert len(table.frame) == 1


def test_markdown_escapes_pipes_and_rows_for_a_figure():
    md = make_table().to_markdown().splitlines()
    assert md[0] == "| " + " | ".join(CLAIM_COLUMNS) + " |"
    assert md[1].count("---") == len(CLAIM_COLUMNS)
    assert "LSTM beats Adam \\| RMSprop" in md[2]
    assert len(md) == 4
    assert all(line.startswith("| ") and line.endswith(" |") for line in md)
    assert list(make_table().rows(["Fig. 2"])["claim"]) == ["Fig. 2"]


def test_display_verdicts():
    text = make_table().display_verdicts()
    lines = text.splitlines()
    assert lines[0].split() == ["claim", "verdict"]
    assert lines[1].startswith("Fig. 2") and lines[1].endswith("reproduced")
    assert "statement" not in text


def test_save_gather_and_summary(tmp_path):
    make_table("L2L").save(tmp_path / "a" / "claims.csv")
    make_table("MTL2L", "smoke").save(tmp_path / "b" / "claims.csv")
    frame = gather_claims([tmp_path / "a" / "claims.csv", tmp_path / "b" / "claims.csv",
                           tmp_path / "missing" / "claims.csv"])
    assert list(frame.columns) == CLAIM_COLUMNS
    assert list(frame["paper"]) == ["L2L", "L2L", "MTL2L", "MTL2L"]
    assert list(frame["profile"]) == ["paper", "paper", "smoke", "smoke"]
    assert frame.loc[1, "paper_value"] == ""
    csv_path, md_path = write_summary(frame, tmp_path / "out")
    assert list(pd.read_csv(csv_path).columns) == CLAIM_COLUMNS
    assert md_path.read_text().count("\n") == 6
    assert gather_claims([]).columns.tolist() == CLAIM_COLUMNS


def test_a_verdict_qualified_without_a_colon_counts_as_its_kind():
    """A notebook may qualify a verdict in parentheses (MetaMD: "reproduced (with the 5 corrections listed above)");
    it still counts as that kind, so the counts add up to the number of claims."""
    table = ClaimsTable("p", "paper")
    for i, verdict in enumerate(["reproduced (with the 5 corrections listed above)", "not reproduced (0.9 vs 1.0)",
                                 "not run (no data)", "inconclusive: undecided", "reproducedish"]):
        table.add(f"c{i}", "s", "", "criterion", Result(verdict, "m"))
    assert [Result(v, "").kind for v in ("reproduced (x)", "not reproduced (x)", "partly (x): y", "reproducedish")] \
        == ["reproduced", "not reproduced", "partly", "reproducedish"]
    assert table.counts().startswith("5 claims: 1 reproduced · 0 partly · 1 inconclusive · 1 not reproduced · 1 not run")


def test_the_counts_line_counts_every_kind_of_verdict():
    table = ClaimsTable("p", "paper")
    for i, verdict in enumerate(["reproduced", "reproduced", "partly: holds in 1 of 2 settings", "inconclusive",
                                 "not reproduced", "not run: data missing", "not run: no GPU"]):
        table.add(f"c{i}", "s", "", "criterion", Result(verdict, "m"))
    assert table.counts() == "7 claims: 2 reproduced · 1 partly · 1 inconclusive · 1 not reproduced · 2 not run"
    smoke = ClaimsTable("p", "smoke")
    smoke.add("c", "s", "", "criterion", Result("reproduced", "m"))
    smoke.not_run("d", "s", "", "data missing")
    assert smoke.counts().endswith("0 not reproduced · 1 not run · 1 smoke: pipeline ran")
