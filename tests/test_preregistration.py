"""A decision rule is checkable: the commit that fixed it comes from git, its timing from the committed runs.

For every sweep spec with a [rule] table, the pages that cite the spec name the first commit
whose spec holds the rule's text, with its UTC time, and say "fixed before the data" only when
every run of the published sweep started after that commit (provenance.csv), "fixed after the
data" when one did not, and "not checkable" when the committed tables record no start times.
"""
import datetime
import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from selectivity.cli import main
from selectivity.errors import SelectivityError
from selectivity.report.preregistration import (AFTER, BEFORE, UNCHECKABLE, fixing_commit, read_rule, rule_verdict,
                                                timing)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
RULED = sorted(spec for spec in (ROOT / "experiments" / "sweeps").glob("*.toml") if "\n[rule]" in spec.read_text())


def _git(*args: str, cwd: Path = ROOT) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def _first_commit_with(spec: Path, text: str) -> tuple[str, str]:
    """Written out here: the oldest commit whose spec, comment marks and line breaks removed, holds text."""
    relative = spec.relative_to(ROOT).as_posix()
    words = " ".join(text.split())
    for line in _git("log", "--reverse", "--format=%h %cI", "--", relative).splitlines():
        commit, date = line.split()
        content = " ".join(line.lstrip().lstrip("#") for line in _git("show", f"{commit}:{relative}").splitlines())
        if words in " ".join(content.split()):
            return commit, date
    raise AssertionError(f"no commit of {relative} holds its rule")


def _citing_pages(spec: Path) -> list[Path]:
    return [page for page in sorted(RESULTS.glob("*.md")) if page.name != "README.md" and spec.name in page.read_text()]


def test_only_the_18_epoch_sweep_has_a_rule():
    assert [spec.name for spec in RULED] == ["resnet20-cifar10-cpu-18ep.toml"]


@pytest.mark.parametrize("spec", RULED, ids=lambda path: path.name)
def test_the_citing_page_names_the_fixing_commit_and_what_the_committed_runs_show(spec):
    if _git("rev-parse", "--git-dir") is None:
        pytest.skip("not a git checkout: the commit that fixed the rule cannot be read")
    rule = read_rule(spec)
    commit, date = _first_commit_with(spec, rule.text)
    assert fixing_commit(spec, rule) == (commit, date)
    fixed = datetime.datetime.fromisoformat(date).astimezone(datetime.timezone.utc)
    pages = _citing_pages(spec)
    assert pages, f"no results page cites {spec.name}"
    for page in pages:
        text = " ".join(page.read_text().split())
        assert f"commit {commit}" in text, page.name
        assert fixed.strftime("%H:%M UTC on %Y-%m-%d") in text, page.name
        provenance = RESULTS / page.stem / "provenance.csv"
        started = list(pd.read_csv(provenance)["started"]) if provenance.exists() else []
        starts = [datetime.datetime.fromisoformat(value) for value in started if isinstance(value, str)]
        expected = ("fixed after the data" if any(start <= fixed for start in starts) else
                    "fixed before the data" if starts and len(starts) == len(started) else "not checkable")
        assert expected in text, (page.name, expected)
        others = {"fixed after the data", "fixed before the data", "not checkable"} - {expected}
        assert not [phrase for phrase in others if phrase in text], (page.name, expected)


@pytest.mark.parametrize("spec", RULED, ids=lambda path: path.name)
def test_the_rule_decides_the_committed_comparison_as_the_page_says(spec):
    rule = read_rule(spec)
    for page in _citing_pages(spec):
        comparisons = sorted((RESULTS / page.stem).glob("cost_change_vs_*.csv"))
        if not comparisons:
            continue
        table = pd.read_csv(comparisons[0], dtype={"alpha_label": str})
        row = table[(table["metric"] == rule.metric) & (table["alpha"] == rule.alpha)].iloc[0]
        side = "above" if row["change_ci_low"] > 0 else "below" if row["change_ci_high"] < 0 else None
        expected = "undetermined" if side is None else "holds" if side == rule.holds else "fails"
        assert rule_verdict(rule, table)[0] == expected
        assert f"**{expected}** on a short CPU schedule (the spec's rule" in page.read_text(), page.name


def test_the_robustness_rules_are_said_to_be_fixed_after_the_data_by_the_commit_that_published_it():
    """That page's rules first appear in the commit that added the page and its results.csv."""
    if _git("rev-parse", "--git-dir") is None:
        pytest.skip("not a git checkout")
    page = (RESULTS / "resnet20-cifar10-robustness.md").read_text()
    named = re.search(r"first appear in the commit that published its numbers \(([0-9a-f]{7}),", " ".join(page.split()))
    assert named and "were **fixed after the data**" in page
    for path in ("docs/results/resnet20-cifar10-robustness.md", "docs/results/resnet20-cifar10-robustness/results.csv"):
        assert _git("log", "--diff-filter=A", "--format=%h", "--", path).split()[-1] == named[1], path


@pytest.mark.parametrize("started, expected", [
    (["2026-12-02T02:48:00+00:00", "2026-12-02T03:00:00+00:00"], BEFORE),
    (["2026-12-02T01:00:00+00:00", "2026-12-02T03:00:00+00:00"], AFTER),
    (["2026-12-02T02:04:22+00:00"], AFTER),  # at the same second: not before
    ([None, "2026-12-02T03:00:00+00:00"], UNCHECKABLE),  # the unrecorded run may have started earlier
    ([None, "2026-12-02T01:00:00+00:00"], AFTER),
    ([], UNCHECKABLE),
])
def test_a_rule_precedes_the_data_only_when_every_run_started_after_it(started, expected):
    assert timing("2026-12-02T02:04:22+00:00", started) == expected


RULE = '''
[rule]
claim = "a longer schedule shrinks the cost"
metric = "test_accuracy"
alpha = -10
holds = "above"
text = """the change's CI above 0
holds it"""
'''


def test_the_fixing_commit_is_the_first_that_holds_the_rule_text(tmp_path):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org"}

    def commit(text: str, message: str, when: str) -> str:
        spec.write_text(text)
        subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True, env=env)
        subprocess.run(["git", "-C", str(tmp_path), "commit", "-qm", message], check=True,
                       env={**env, "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when})
        return _git("rev-parse", "--short", "HEAD", cwd=tmp_path).strip()

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env)
    spec = tmp_path / "sweep.toml"
    commit('name = "s"\n', "a spec without a rule", "2026-12-01T10:00:00+00:00")
    commented = 'name = "s"\n# the rule: the change\'s CI\n#   above 0 holds it\n'
    first = commit(commented, "the rule in a comment", "2026-12-01T11:00:00+00:00")
    commit(commented + RULE, "restated", "2026-12-01T12:00:00+00:00")
    assert fixing_commit(spec, read_rule(spec)) == (first, "2026-12-01T11:00:00+00:00")
    later = commit('name = "s"\n' + RULE.replace("above 0", "above zero"), "reworded", "2026-12-01T13:00:00+00:00")
    assert fixing_commit(spec, read_rule(spec)) == (later, "2026-12-01T13:00:00+00:00")  # rewording moves it


@pytest.mark.parametrize("table, message", [
    ('name = "s"\n', "has no \\[rule\\] table"),
    ('[rule]\nclaim = "c"\n', "\\[rule\\] lacks metric, alpha, holds, text"),
    (RULE.replace('"above"', '"higher"'), "holds = 'higher'; expected 'above' or 'below'"),
])
def test_a_malformed_rule_is_a_one_line_error(tmp_path, table, message):
    (tmp_path / "s.toml").write_text(table)
    with pytest.raises(SelectivityError, match=message) as caught:
        read_rule(tmp_path / "s.toml")
    assert "\n" not in str(caught.value)


def test_compare_prints_the_rule_verdict_and_its_commit(capsys):
    spec = RULED[0]
    first, second = RESULTS / "resnet20-cifar10" / "results.csv", RESULTS / "resnet20-cifar10-18ep" / "results.csv"
    assert main(["compare", str(first), str(second), "--vary", "epochs", "--allow-confounds", "--rule", str(spec)]) == 0
    printed = capsys.readouterr().out
    claim = '"a longer schedule shrinks the cost of near-zero selectivity"'
    assert f"{claim} (alpha = -10, test_accuracy): holds" in printed
    if _git("rev-parse", "--git-dir") is not None:
        assert "fixed by commit 524249d (2026-12-02T02:04:22+00:00)" in printed and "not checkable" in printed
