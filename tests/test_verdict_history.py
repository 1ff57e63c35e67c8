"""A verdict is kept with the seeds it was made with: re-running the report appends a look, never replaces one."""
import pandas as pd
import pytest
from tests.report_fixture import sweep_table

from selectivity.errors import SelectivityError
from selectivity.report import write_report
from selectivity.report.verdict_history import HISTORY_COLUMNS, looks_phrase, read_history

FIRST, SECOND = ("1111111", "2026-01-01T00:00:00+00:00"), ("2222222", "2026-01-02T00:00:00+00:00")


def _report(out_dir, seeds, look):
    write_report(sweep_table(alphas=(-10.0, 0.0, 1.0), seeds=seeds, with_cca=False), out_dir, look=look)
    return pd.read_csv(out_dir / "verdict_history.csv", dtype={"alpha_label": str, "commit": str})


@pytest.fixture(scope="module")
def two_looks(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("report")
    first = _report(out_dir, (0, 1), FIRST)
    second = _report(out_dir, (0, 1, 2), SECOND)
    return out_dir, first, second


def test_a_report_with_more_seeds_appends_its_looks_and_keeps_the_earlier_ones(two_looks):
    _, first, second = two_looks
    assert list(second.columns) == list(HISTORY_COLUMNS)
    assert list(zip(first["alpha_label"], first["n_alpha"], first["commit"])) == [("-10", 2, "1111111"),
                                                                                   ("1", 2, "1111111")]
    pd.testing.assert_frame_equal(second.iloc[:2], first)  # never rewritten
    later = second.iloc[2:]
    assert list(zip(later["alpha_label"], later["n_alpha"], later["n_baseline"], later["commit"], later["date"])) == [
        ("-10", 3, 3, "2222222", SECOND[1]), ("1", 3, 3, "2222222", SECOND[1])]
    assert set(second["correction"]) <= {"Holm over 2"}


def test_the_page_shows_both_looks(two_looks):
    out_dir, _, second = two_looks
    page = (out_dir / "report.md").read_text()
    for label in ("-10", "1"):
        verdicts = list(second.loc[second["alpha_label"] == label, "verdict"])
        assert f"alpha = {label}: " in page
        assert f"looks at n = 2 vs 2: {verdicts[0]}, 3 vs 3: {verdicts[1]}" in page, label


def test_the_same_seeds_again_record_no_new_look(two_looks, tmp_path):
    out_dir, _, second = two_looks
    (tmp_path / "verdict_history.csv").write_text((out_dir / "verdict_history.csv").read_text())
    again = _report(tmp_path, (0, 1, 2), ("3333333", "2026-01-03T00:00:00+00:00"))
    pd.testing.assert_frame_equal(again, second)


def _history(looks):
    return pd.DataFrame([{"claim": "test accuracy vs alpha = 0", "alpha_label": "-1", "n_alpha": n, "n_baseline": m,
                          "verdict": verdict, "correction": "Holm over 3", "commit": "", "date": ""}
                         for n, m, verdict in looks])


@pytest.mark.parametrize("looks, expected", [
    ([(2, 2, "undetermined"), (3, 3, "undetermined"), (5, 5, "loss")],
     "looks at n = 2 vs 2: undetermined, 3 vs 3: undetermined, 5 vs 5: loss; decided at n = 5 vs 5"),
    ([(2, 3, "no loss"), (3, 3, "undetermined")], "looks at n = 2 vs 3: no loss, 3 vs 3: undetermined"),
    ([(2, 2, "loss"), (3, 3, "undetermined"), (4, 4, "loss"), (5, 5, "loss")],
     "looks at n = 2 vs 2: loss, 3 vs 3: undetermined, 4 vs 4: loss, 5 vs 5: loss; decided at n = 4 vs 4"),
])
def test_decided_at_is_the_first_look_of_the_last_run_of_the_current_verdict(looks, expected):
    assert looks_phrase(_history(looks), "-1") == expected
    assert looks_phrase(_history(looks), "-2") == ""


def test_a_damaged_history_is_a_one_line_error(tmp_path):
    (tmp_path / "verdict_history.csv").write_text("claim,alpha_label\nx,-1\n")
    with pytest.raises(SelectivityError, match=r"lacks columns \['n_alpha'") as caught:
        read_history(tmp_path / "verdict_history.csv")
    assert "\n" not in str(caught.value)
