"""docs/integrations.md's two examples run as written, and log what the page says they log."""
import contextlib
import io
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"


def example(heading: str) -> str:
    text = PAGE.read_text()
    section = text[text.index(f"## {heading}"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.parametrize("heading, framework", [("PyTorch Lightning", "lightning"),
                                                ("Hugging Face `Trainer`", "transformers")])
def test_the_page_example_runs_and_logs_the_selectivity_keys(heading, framework, tmp_path, monkeypatch):
    pytest.importorskip(framework)
    monkeypatch.chdir(tmp_path)  # whatever a framework writes beside it stays out of the checkout
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example(heading), f"{PAGE.name}: {heading}", "exec"), {"__name__": "__main__"})
    logged = printed.getvalue()
    for key in ("selectivity/mean_si", "selectivity/penalty", "selectivity/si/"):
        assert key in logged, (key, logged[-500:])
    # both examples use alpha = -1 and one unit layer: penalty = -alpha * mu_SI = mu_SI = that layer's SI
    layer = [float(v) for v in re.findall(r"'selectivity/si/[^']+': '?([0-9.]+)", logged)]
    mean = [float(v) for v in re.findall(r"'selectivity/mean_si': '?([0-9.]+)", logged)]
    penalty = [float(v) for v in re.findall(r"'selectivity/penalty': '?(-?[0-9.]+)", logged)]
    assert mean and penalty[-len(mean):] == mean and layer[-len(mean):] == mean and all(0 < m < 1 for m in mean)
