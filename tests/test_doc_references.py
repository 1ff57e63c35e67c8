"""Docs and code cite sources a user has: no private spec file, no link to a missing section."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRIVATE_SPEC = "PAPER" + ".md"  # spelled apart so this file does not cite it
SCANNED = ["selectivity", "docs", "tests", "benchmarks", "experiments", "README.md"]
SUFFIXES = {".py", ".md", ".toml", ".txt", ".yml", ".yaml", ".cfg"}
ANCHOR_LINK = re.compile(r"([\w-]+\.md)#([\w-]+)")


def _files() -> list[Path]:
    found = []
    for name in SCANNED:
        root = REPO / name
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        found += [path for path in candidates if path.is_file() and path.suffix in SUFFIXES]
    return found


def _citing(files: list[Path]) -> list[str]:
    return [f"{path.relative_to(REPO)}:{number}" for path in files
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if PRIVATE_SPEC in line]


def test_no_file_cites_the_private_spec():
    """Definitions live in docs/definitions.md, which every user has (README and results pages included)."""
    assert _citing(_files()) == []


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces -> '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    return {github_slug(line.lstrip("#")) for line in markdown.read_text().splitlines() if line.startswith("#")}


def test_github_slug_by_hand():
    assert github_slug("The paper's experiments") == "the-papers-experiments"
    assert github_slug("Off-axis control") == "off-axis-control"


def test_every_section_link_names_an_existing_heading():
    broken = []
    for path in _files():
        for document, anchor in ANCHOR_LINK.findall(path.read_text(errors="replace")):
            target = REPO / "docs" / document if (REPO / "docs" / document).exists() else REPO / document
            if not target.exists() or anchor not in _anchors(target):
                broken.append(f"{path.relative_to(REPO)}: {document}#{anchor}")
    assert broken == []
