"""Preferred-class agreement across evaluations, on hand-made per-unit snapshots."""
import pandas as pd
import pytest

from selectivity.units.dynamics import agreement_table


def snapshot(preferred: list[int], dead: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({"layer": "l", "unit": range(len(preferred)), "preferred_class": preferred, "dead": dead})


def test_a_unit_agrees_only_when_live_and_on_its_final_class():
    snapshots = {
        2: snapshot([3, 1, 2, 0], [True, False, False, False]),  # unit 0 dead then: its argmax 3 means nothing
        5: snapshot([3, 4, 2, 0], [False, False, False, True]),
        9: snapshot([3, 1, 2, 7], [False, False, False, True]),  # final; unit 3 dead -> left out
    }
    table = agreement_table(snapshots).set_index(["epoch", "unit"])["agrees"]
    assert set(table.index.get_level_values("unit")) == {0, 1, 2}
    assert [table[(2, u)] for u in range(3)] == [False, True, True]
    assert [table[(5, u)] for u in range(3)] == [True, False, True]
    assert table.xs(9, level="epoch").all()
    assert table.xs(2, level="epoch").mean() == pytest.approx(2 / 3)
