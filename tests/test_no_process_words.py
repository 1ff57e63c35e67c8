"""Public docs speak of findings, machines (CPU, instruction set, precision) and commits, not of
how the project was built: no working sessions, machines "lent", helpers or agents, queue
pauses, SIGSTOP stories, paths of the build machine or development tool names."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each pattern is narrow enough that ordinary words pass: "silent" and "talent" are not
# "lent", "helper" only as a noun for a person/process, "/tmp/" only as a path.
PROCESS_WORDS = {
    "session": re.compile(r"\bsessions?\b", re.IGNORECASE),
    "lent": re.compile(r"\blent\b", re.IGNORECASE),
    "helpers": re.compile(r"\bhelpers?'?\b(?!\s+(function|module|script|class|method))", re.IGNORECASE),
    "agents": re.compile(r"\bagents?\b", re.IGNORECASE),
    "engineers": re.compile(r"\bengineers?\b", re.IGNORECASE),
    "queue pause": re.compile(r"\bqueue\b.{0,20}\bpause", re.IGNORECASE),
    "SIGSTOP": re.compile(r"\bSIGSTOP\b|\bSIGCONT\b"),
    "build-machine path": re.compile(r"(?<![\w.])/(work|root|tmp)/|\.\./shared/"),
    "development tool": re.compile(r"\b(claude|codex|copilot|chatgpt)\b|\bsearch tool\b",
                                   re.IGNORECASE),
}


def public_text_files():
    files = [ROOT / "README.md"]
    files += [ROOT / name for name in ("CHANGELOG.md", "mkdocs.yml") if (ROOT / name).exists()]
    for folder in ("docs", "experiments"):
        files += sorted(p for p in (ROOT / folder).rglob("*")
                        if p.is_file() and p.suffix in {".md", ".toml", ".sh", ".csv", ".txt",
                                                        ".yml", ".yaml", ".json"})
    return [f for f in files if f.exists()]


def process_word_hits(text):
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        for name, pattern in PROCESS_WORDS.items():
            if pattern.search(line):
                hits.append(f"{number}: {name}: {line.strip()[:120]}")
    return hits


def test_public_docs_have_no_process_words():
    problems = []
    for path in public_text_files():
        for hit in process_word_hits(path.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{path.relative_to(ROOT)}:{hit}")
    assert not problems, "process words in public docs:\n" + "\n".join(problems)


def test_no_folder_is_named_after_a_working_session():
    named = [p.relative_to(ROOT) for folder in ("docs", "experiments")
             for p in (ROOT / folder).rglob("*") if re.search(r"session", p.name, re.IGNORECASE)]
    assert not named, named


@pytest.mark.parametrize("line", [
    "measured in session 4 on the EPYC",
    "no GPU was lent to this project",
    "other helpers' tests shared the CPU",
    "the background sweep paused (SIGSTOP)",
    "the queue was paused for an hour",
    "fetched into /work/.mirror first",
    "pip install --target /tmp/x torchattacks",
    "an agent reran the sweep",
    "found with the search tool",
])
def test_each_process_word_is_caught(line):
    assert process_word_hits(line)


@pytest.mark.parametrize("line", [
    "ReLU's silent responses", "a talented model", "the helper function below",
    "python -m selectivity report runs/x", "docs/results/vgg16-cifar10/bf16-avx512-round1/",
    "an HTTP request", "paused training resumes from its checkpoint",
])
def test_ordinary_words_pass(line):
    assert not process_word_hits(line)
