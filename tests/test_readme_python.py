"""The README's Python examples run verbatim (a reader copies them as they are)."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_python_examples():
    assert python_blocks(), "README.md has no ```python block"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_each_readme_python_block_runs_as_written(index, tmp_path, monkeypatch, capsys):
    pytest.importorskip("timm")
    monkeypatch.chdir(tmp_path)  # anything it writes lands here, not in the checkout
    exec(compile(python_blocks()[index], f"README.md python block {index + 1}", "exec"), {"__name__": "__main__"})
