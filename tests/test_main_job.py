"""The README's main job at smoke size: the digits sweep through the CCA analysis to the report, via the CLI."""
import json
from pathlib import Path

import pandas as pd

from selectivity.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_sweep_with_cca_and_report_end_to_end(tmp_path, capsys):
    code = main([
        "sweep", str(REPO / "experiments/sweeps/digits-alpha.toml"), "--store", str(tmp_path / "sweep"),
        "--workers", "0", "--no-progress", "--report",
        "--set", "alphas=[-1, 0, 1]", "--set", "seeds=2", "--set", "train.epochs=2", "--set", "train.warmup_epochs=1",
    ])
    out = capsys.readouterr().out
    assert code == 0
    assert "test accuracy (%)" in out and "report:" in out
    table_lines = [line.split() for line in out.splitlines() if line.strip().split(" ")[0] in ("-1", "0", "1")]
    assert [line[0] for line in table_lines] == ["-1", "0", "1"] and all(line[1] == "2" for line in table_lines)
    results = pd.read_parquet(tmp_path / "sweep" / "results.parquet")
    trained = results[~results["run_id"].str.startswith("off_axis/")]  # the off-axis rows pool a condition's seeds
    assert trained["run_id"].nunique() == 6
    # the console's ± is the sample std over seeds (the report's is a CI), and says so
    assert "(mean ± std over seeds, not a confidence interval" in out
    accuracy = results[(results["layer"] == "network") & (results["metric"] == "test_accuracy")]
    for line in table_lines:
        values = 100 * accuracy[accuracy["alpha"] == float(line[0])]["value"].to_numpy()
        assert line[2:5] == [f"{values.mean():.2f}", "±", f"{values.std(ddof=1):.2f}"]
    ratios = results[results["metric"] == "pwcca_ratio"]
    assert set(ratios["alpha"]) == {-1.0, 1.0} and len(ratios) == 2 * 4  # regularized conditions x layers
    assert set(ratios["run_id"]) == {"off_axis/-1", "off_axis/1"} and set(ratios["seed"]) == {-1}
    page = (tmp_path / "sweep" / "report" / "index.html").read_text()
    assert "fig5_cca_ratio_vs_alpha" in page and page.count("data:image/png;base64") >= 6
    assert (tmp_path / "sweep" / "report" / "headline.csv").exists()


def test_train_command_and_its_errors(tmp_path, capsys):
    config = str(REPO / "experiments/small-cnn-digits.toml")
    # the config warms up for 3 epochs: a 1-epoch run must shorten the warm-up too (refused otherwise)
    assert main(["train", config, "--epochs", "1", "--alpha", "-1", "--out", str(tmp_path), "--no-progress",
                 "--set", "train.lr=0.02", "--set", "train.warmup_epochs=1"]) == 0
    out = capsys.readouterr().out
    run_dir = Path(out.splitlines()[0].removeprefix("run folder: "))
    stored = json.loads((run_dir / "config.json").read_text())["config"]
    assert stored["train"]["lr"] == 0.02 and stored["regularizer"]["alpha"] == -1.0 and (run_dir / "done.json").exists()
    assert main(["train", config, "--set", "train.learning_rate=1"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("selectivity train: error: unknown key 'train.learning_rate'") and "\n" not in error
