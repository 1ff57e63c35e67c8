"""`selectivity compare` refuses a change between sweeps that differ in more than what is compared."""
import pandas as pd
import pytest
from tests.test_cost_change import FIRST, SECOND, tidy, write_sweep

from selectivity.cli import main
from selectivity.errors import SelectivityError
from selectivity.report.cost_change import compare_sweeps
from selectivity.report.provenance import confounds, sweep_factors


def _compare(tmp_path, *options, **second_recorded):
    first = write_sweep(tmp_path / "first", FIRST, "a")
    second = write_sweep(tmp_path / "second", SECOND, "b", **second_recorded)
    return main(["compare", str(first), str(second), "--out", str(tmp_path / "change.csv"), *options])


def test_sweeps_recorded_to_agree_are_compared_without_a_flag(tmp_path, capsys):
    assert _compare(tmp_path) == 0
    assert set(pd.read_csv(tmp_path / "change.csv")["confounds"]) == {"none"}
    assert "confounded" not in capsys.readouterr().out


@pytest.mark.parametrize("recorded, named", [
    ({"precision": "bf16"}, "precision (fp32 vs bf16)"),
    ({"cpu": "Intel Xeon (AVX512, AMX)"}, "machine (cpu: AMD EPYC 7B13 (AVX2) vs cpu: Intel Xeon (AVX512, AMX))"),
    ({"warmup_epochs": 3.0}, "warmup_epochs (1 vs 3)"),
    ({"lr": 0.1}, "lr (0.2 vs 0.1)"),
])
def test_a_difference_in_recipe_precision_or_machine_is_refused(tmp_path, capsys, recorded, named):
    assert _compare(tmp_path, **recorded) == 2
    captured = capsys.readouterr()
    error = captured.err.strip()
    assert error.startswith("selectivity compare: error: a change between these sweeps has more than one possible "
                            "cause (") and named in error
    assert "--allow-confounds" in error and "\n" not in error
    assert not (tmp_path / "change.csv").exists() and "higher" not in captured.out  # no direction is called


def test_allowed_confounds_are_named_beside_every_direction(tmp_path, capsys):
    assert _compare(tmp_path, "--allow-confounds", precision="bf16") == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("test_accuracy", "mean_si"))]
    assert lines and all("[confounded: precision (fp32 vs bf16)]" in line for line in lines)
    written = pd.read_csv(tmp_path / "change.csv")
    assert set(written["confounds"]) == {"precision (fp32 vs bf16)"} and set(written["varied"]) == {"none"}


def test_the_factor_a_comparison_is_about_is_no_confound(tmp_path, capsys):
    first = write_sweep(tmp_path / "first", FIRST, "a")
    table = tidy(SECOND, "b").assign(epoch=18)  # a longer schedule
    second = write_sweep(tmp_path / "second", SECOND, "b", epochs=18)
    table.to_csv(second, index=False)
    assert main(["compare", str(first), str(second)]) == 2
    assert "epochs (6 vs 18)" in capsys.readouterr().err
    assert main(["compare", str(first), str(second), "--vary", "epochs", "--out", str(tmp_path / "c.csv")]) == 0
    written = pd.read_csv(tmp_path / "c.csv")
    assert set(written["confounds"]) == {"none"} and set(written["varied"]) == {"epochs"}


def test_tables_without_provenance_are_not_known_to_agree():
    with pytest.raises(SelectivityError, match="recipe, precision, machine not recorded") as caught:
        compare_sweeps(tidy(FIRST, "a"), tidy(SECOND, "b"))
    assert "\n" not in str(caught.value)
    table = compare_sweeps(tidy(FIRST, "a"), tidy(SECOND, "b"), allow_confounds=True)
    assert set(table["confounds"]) == {"recipe, precision, machine not recorded"}


def test_another_model_is_a_confound_unless_varied():
    vgg = tidy(SECOND, "b").assign(model="vgg16")
    found = confounds(sweep_factors(tidy(FIRST, "a")), sweep_factors(vgg))
    assert found == ["model (resnet20 vs vgg16)", "recipe, precision, machine not recorded"]
    assert confounds(sweep_factors(tidy(FIRST, "a")), sweep_factors(vgg), ["model"]) == [
        "recipe, precision, machine not recorded"]


def test_an_unknown_factor_is_a_one_line_error():
    with pytest.raises(SelectivityError, match="--vary 'colour' is not a factor: expected one of model, "):
        compare_sweeps(tidy(FIRST, "a"), tidy(SECOND, "b"), varied=["colour"])
