"""Packaging: one version everywhere, CITATION.cff as the Citation File Format asks, the freeze
comparison the oldest-stack CI check relies on, and optional torchvision failing in one line."""
import builtins
import contextlib
import importlib.util
import io
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import selectivity
from selectivity.cli import main
from selectivity.errors import SelectivityError

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def load_freeze_diff():
    spec = importlib.util.spec_from_file_location("freeze_diff", REPO / ".ci" / "freeze_diff.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_version_flag_prints_the_pyproject_version():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert out.getvalue().strip() == f"selectivity {PYPROJECT['project']['version']}"
    assert selectivity.__version__ == PYPROJECT["project"]["version"]


def test_version_is_written_once():
    init = (REPO / "selectivity" / "__init__.py").read_text()
    assert PYPROJECT["project"]["version"] not in init, "the version is read from the metadata, not written twice"


def test_citation_cff_has_the_required_fields_and_cites_the_paper():
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    for field in ("cff-version", "message", "title", "authors"):  # required by CFF 1.2.0
        assert citation.get(field), f"CITATION.cff lacks {field}"
    assert citation["version"] == PYPROJECT["project"]["version"]
    assert citation["license"] == "MIT" == PYPROJECT["project"]["license"]["text"]
    paper = [ref for ref in citation["references"] if "Selectivity considered harmful" in ref["title"]]
    assert len(paper) == 1 and paper[0]["year"] == 2021
    assert [a["family-names"] for a in paper[0]["authors"]] == ["Leavitt", "Morcos"]
    for reference in citation["references"]:
        assert {"type", "title", "authors"} <= set(reference), reference


def test_license_is_mit():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_py_typed_is_package_data():
    assert (REPO / "selectivity" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["selectivity"]


def test_core_dependencies_are_ranges_and_ci_pins_each_one():
    pins = load_freeze_diff().parse_freeze((REPO / "constraints" / "ci.txt").read_text())
    for requirement in PYPROJECT["project"]["dependencies"]:
        assert "==" not in requirement, f"{requirement}: a core dependency is a range, not a pin"
        name = requirement.split(">=")[0].split(";")[0].strip().lower()
        if "python_version" not in requirement:
            assert name in pins, f"constraints/ci.txt does not pin {name}"


def test_freeze_diff_names_a_replaced_and_a_removed_package(tmp_path):
    freeze_diff = load_freeze_diff()
    before = "torch==2.13.0+cpu\nnumpy==2.2.6\nPandas==2.3.3\n-e git+x#egg=selectivity\n"
    (tmp_path / "before.txt").write_text(before)
    (tmp_path / "same.txt").write_text("numpy==2.2.6\ntorch==2.13.0+cpu\npandas==2.3.3\nselectivity==0.1.0\n")
    (tmp_path / "after.txt").write_text("torch==2.14.1\npandas==2.3.3\n")
    assert freeze_diff.main([str(tmp_path / "before.txt"), str(tmp_path / "same.txt")]) == 0
    assert freeze_diff.main([str(tmp_path / "before.txt"), str(tmp_path / "after.txt")]) == 1
    assert freeze_diff.replaced(freeze_diff.parse_freeze(before),
                                freeze_diff.parse_freeze("torch==2.14.1\npandas==2.3.3\n")) == [
        "numpy: 2.2.6 -> removed", "torch: 2.13.0+cpu -> 2.14.1"]


@pytest.mark.parametrize("failure", [ImportError("No module named 'torchvision'"),
                                     RuntimeError("operator torchvision::nms does not exist")])
def test_a_missing_or_mismatched_torchvision_is_one_clear_error(monkeypatch, failure):
    from selectivity import model_loading
    from selectivity.data import base

    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name.startswith("torchvision"):
            raise failure
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(SelectivityError, match="needs torchvision built for the installed torch") as error:
        model_loading.import_torchvision()
    assert "\n" not in str(error.value) and str(failure) in str(error.value)
    with pytest.raises(SelectivityError, match="--download needs torchvision"):
        base.download_and_extract_archive("https://example.org/x.tar.gz", download_root="unused")


def test_readme_cpu_line_and_quick_start_use_the_ci_versions():
    readme = (REPO / "README.md").read_text()
    pins = load_freeze_diff().parse_freeze((REPO / "constraints" / "ci.txt").read_text())
    cpu_lines = [line for line in readme.splitlines() if "--index-url https://download.pytorch.org/whl/cpu" in line]
    assert cpu_lines, "the README has no CPU-only torch line"
    for line in cpu_lines:
        for package in ("torch", "torchvision"):
            assert f" {package}=={pins[package]} " in f" {line} ", f"{line!r} does not install {package}=={pins[package]}"
    assert readme.index(cpu_lines[0]) < readme.index("# 1. set up"), "the CPU-only line comes after the quick start"
    assert 'python3 -m pip install -c constraints/ci.txt -e ".[test]" && python3 -m selectivity sweep' in readme
